/* hostPorts with nftables, over netlink with libnftnl (no nft binary).
 *
 *   table inet corral {
 *     chain prerouting  { type nat hook prerouting priority dstnat; }
 *     chain output      { type nat hook output priority dstnat; }
 *     chain postrouting { type nat hook postrouting priority srcnat; }
 *   }
 *
 * Per pod and mapping, in prerouting and output:
 *   meta nfproto ipv4 (ip daddr HOST_IP | fib daddr type local)
 *   meta l4proto tcp th dport HOST_PORT dnat ip to POD_IP:CONTAINER_PORT
 * and per pod in postrouting:
 *   ip saddr POD_IP ip daddr POD_IP ct status dnat masquerade     (hairpin)
 *   ip saddr 127.0.0.0/8 ip daddr POD_IP ct status dnat masquerade (localhost)
 * every rule with the comment "corral:<pod id>", by which del finds them. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>

#include "net/nft-internal.h"

#define TAG_PREFIX "corral:"

static const char *tname(const char *t)
{
        return t && t[0] ? t : NET_HOSTPORT_TABLE;
}

/* ---------- expression builders ---------- */

static void add_meta(struct nftnl_rule *r, uint32_t key)
{
        struct nftnl_expr *x = nftnl_expr_alloc("meta");
        nftnl_expr_set_u32(x, NFTNL_EXPR_META_KEY, key);
        nftnl_expr_set_u32(x, NFTNL_EXPR_META_DREG, NFT_REG_1);
        nftnl_rule_add_expr(r, x);
}

static void add_cmp(struct nftnl_rule *r, uint32_t op, const void *data, size_t len)
{
        struct nftnl_expr *x = nftnl_expr_alloc("cmp");
        nftnl_expr_set_u32(x, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(x, NFTNL_EXPR_CMP_OP, op);
        nftnl_expr_set(x, NFTNL_EXPR_CMP_DATA, data, (uint32_t)len);
        nftnl_rule_add_expr(r, x);
}

static void add_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len)
{
        struct nftnl_expr *x = nftnl_expr_alloc("payload");
        nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_BASE, base);
        nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_OFFSET, off);
        nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_LEN, len);
        nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
        nftnl_rule_add_expr(r, x);
}

static void add_bitwise(struct nftnl_rule *r, const void *mask, const void * xor, uint32_t len)
{
        struct nftnl_expr *x = nftnl_expr_alloc("bitwise");
        nftnl_expr_set_u32(x, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
        nftnl_expr_set_u32(x, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
        nftnl_expr_set_u32(x, NFTNL_EXPR_BITWISE_LEN, len);
        nftnl_expr_set(x, NFTNL_EXPR_BITWISE_MASK, mask, len);
        nftnl_expr_set(x, NFTNL_EXPR_BITWISE_XOR, xor, len);
        nftnl_rule_add_expr(r, x);
}

static void add_immediate(struct nftnl_rule *r, uint32_t reg, const void *data, size_t len)
{
        struct nftnl_expr *x = nftnl_expr_alloc("immediate");
        nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_DREG, reg);
        nftnl_expr_set(x, NFTNL_EXPR_IMM_DATA, data, (uint32_t)len);
        nftnl_rule_add_expr(r, x);
}

static void match_nfproto(struct nftnl_rule *r, int family)
{
        uint8_t p = family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6;
        add_meta(r, NFT_META_NFPROTO);
        add_cmp(r, NFT_CMP_EQ, &p, 1);
}

/* ip/ip6 saddr or daddr == addr */
static void match_addr(struct nftnl_rule *r, int family, bool dst, const void *addr)
{
        uint32_t len = family == AF_INET ? 4 : 16;
        uint32_t off = family == AF_INET ? (dst ? 16 : 12) : (dst ? 24 : 8);
        add_payload(r, NFT_PAYLOAD_NETWORK_HEADER, off, len);
        add_cmp(r, NFT_CMP_EQ, addr, len);
}

static void match_local_daddr(struct nftnl_rule *r)
{
        struct nftnl_expr *x = nftnl_expr_alloc("fib");
        nftnl_expr_set_u32(x, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
        nftnl_expr_set_u32(x, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
        nftnl_expr_set_u32(x, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
        nftnl_rule_add_expr(r, x);
        uint32_t local = RTN_LOCAL;
        add_cmp(r, NFT_CMP_EQ, &local, sizeof(local));
}

static void match_ct_dnat(struct nftnl_rule *r)
{
        struct nftnl_expr *x = nftnl_expr_alloc("ct");
        nftnl_expr_set_u32(x, NFTNL_EXPR_CT_KEY, NFT_CT_STATUS);
        nftnl_expr_set_u32(x, NFTNL_EXPR_CT_DREG, NFT_REG_1);
        nftnl_rule_add_expr(r, x);
        uint32_t mask = IPS_DST_NAT, zero = 0;
        add_bitwise(r, &mask, &zero, sizeof(mask));
        add_cmp(r, NFT_CMP_NEQ, &zero, sizeof(zero));
}

static struct nftnl_rule *new_rule(const char *table, const char *chain, const char *pod_id)
{
        struct nftnl_rule *r = nftnl_rule_alloc();
        nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
        nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
        nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
        /* The comment `nft list` shows, and how del finds the pod's rules. */
        struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
        cleanup_free char *tag = xasprintf(TAG_PREFIX "%s", pod_id);
        nftnl_udata_put_strz(u, NFTNL_UDATA_RULE_COMMENT, tag);
        nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(u), nftnl_udata_buf_len(u));
        nftnl_udata_buf_free(u);
        return r;
}

/* ---------- batches ---------- */

void nft_batch_init(struct nft_batch *bt, size_t size)
{
        bt->buf = xmalloc(size * 2);
        bt->b = mnl_nlmsg_batch_start(bt->buf, size);
        bt->seq = (uint32_t)time_mono_ns();
        nftnl_batch_begin(mnl_nlmsg_batch_current(bt->b), bt->seq++);
        mnl_nlmsg_batch_next(bt->b);
}

void nft_batch_free(struct nft_batch *bt)
{
        if (bt->b)
                mnl_nlmsg_batch_stop(bt->b);
        free(bt->buf);
}

struct nlmsghdr *nft_batch_hdr_family(struct nft_batch *bt, uint16_t family, uint16_t type, uint16_t flags)
{
        bt->nmsg++;
        return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(bt->b), type, family, flags | NLM_F_ACK,
                                     bt->seq++);
}

struct nlmsghdr *nft_batch_hdr(struct nft_batch *bt, uint16_t type, uint16_t flags)
{
        return nft_batch_hdr_family(bt, NFPROTO_INET, type, flags);
}

bool nft_batch_next(struct nft_batch *bt)
{
        return mnl_nlmsg_batch_next(bt->b);
}

void nft_batch_rule(struct nft_batch *bt, uint16_t type, uint16_t flags, struct nftnl_rule *r)
{
        struct nlmsghdr *nlh = nft_batch_hdr(bt, type, flags);
        nftnl_rule_nlmsg_build_payload(nlh, r);
        nftnl_rule_free(r);
        nft_batch_next(bt);
}

/* Send the batch and collect the acks. The kernel runs the whole batch
 * inside sendmsg, so every answer is queued when it returns. The batch is
 * a transaction: on any error nothing of it stays. */
int nft_batch_send(struct nft_batch *bt, const char *what, struct err *e)
{
        nftnl_batch_end(mnl_nlmsg_batch_current(bt->b), bt->seq++);
        mnl_nlmsg_batch_next(bt->b);
        cleanup_nl struct mnl_socket *own = bt->sock ? NULL : nl_open(NULL, NETLINK_NETFILTER, e);
        struct mnl_socket *s = bt->sock ? bt->sock : own;
        if (!s)
                return err_wrap(e, "%s", what);
        int one = 1;
        (void)mnl_socket_setsockopt(s, NETLINK_CAP_ACK, &one, sizeof(one));
        if (mnl_socket_sendto(s, mnl_nlmsg_batch_head(bt->b), mnl_nlmsg_batch_size(bt->b)) < 0)
                return err_make(e, errno, "%s: netlink send", what);

        int acks = 0, first = 0;
        char buf[16384];
        while (acks < bt->nmsg) {
                ssize_t n = recv(mnl_socket_get_fd(s), buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return err_make(e, errno, "%s: netlink receive", what);
                }
                const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
                int len = (int)n;
                for (; mnl_nlmsg_ok(h, len); h = mnl_nlmsg_next(h, &len)) {
                        if (h->nlmsg_type != NLMSG_ERROR)
                                continue;
                        const struct nlmsgerr *er = mnl_nlmsg_get_payload(h);
                        acks++;
                        if (er->error && !first)
                                first = -er->error;
                }
        }
        if (first)
                return err_make(e, first, "%s", what);
        return 0;
}

/* ---------- route_localnet for 127.0.0.1 ---------- */

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
        int *oif = data;
        const struct nlattr *a;
        mnl_attr_for_each(a, nlh, sizeof(struct rtmsg))
        {
                if (mnl_attr_get_type(a) == RTA_OIF)
                        *oif = (int)mnl_attr_get_u32(a);
        }
        return MNL_CB_OK;
}

/* The kernel drops packets with a 127/8 source leaving on a non-loopback
 * interface unless route_localnet is on for it. After the output DNAT,
 * 127.0.0.1 -> POD_IP leaves on the bridge: switch it on there only (the
 * portmap plugin does the same), not host-wide as kube-proxy does. */
static int enable_route_localnet(const struct in_addr *pod, struct err *e)
{
        char buf[4096], ifname[IF_NAMESIZE];
        int oif = 0;
        cleanup_nl struct mnl_socket *s = nl_open(NULL, NETLINK_ROUTE, e);
        if (!s)
                return -1;
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = RTM_GETROUTE;
        nlh->nlmsg_flags = NLM_F_REQUEST;
        struct rtmsg *rt = mnl_nlmsg_put_extra_header(nlh, sizeof(*rt));
        rt->rtm_family = AF_INET;
        rt->rtm_dst_len = 32;
        mnl_attr_put(nlh, RTA_DST, 4, pod);
        if (nl_talk(s, nlh, route_cb, &oif, "route lookup", e) < 0)
                return -1;
        if (oif <= 0 || !if_indextoname((unsigned)oif, ifname))
                return err_set(e, ERR_INTERNAL, "no interface routes to the pod");
        if (!strcmp(ifname, "lo"))
                return 0;
        cleanup_free char *path = xasprintf("/proc/sys/net/ipv4/conf/%s/route_localnet", ifname);
        cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "1", 1) != 1)
                return err_make(e, errno, "set %s", path);
        return 0;
}

/* ---------- add / del / list ---------- */

static uint8_t proto_num(enum net_proto p)
{
        return p == NET_PROTO_UDP ? IPPROTO_UDP : p == NET_PROTO_SCTP ? IPPROTO_SCTP : IPPROTO_TCP;
}

static void dnat_rule(struct nft_batch *bt, const char *table, const char *chain, const char *pod_id,
                      int family, const unsigned char *pod, const unsigned char *host,
                      const struct net_port_mapping *m)
{
        struct nftnl_rule *r = new_rule(table, chain, pod_id);
        match_nfproto(r, family);
        if (host)
                match_addr(r, family, true, host);
        else
                match_local_daddr(r);
        uint8_t l4 = proto_num(m->proto);
        add_meta(r, NFT_META_L4PROTO);
        add_cmp(r, NFT_CMP_EQ, &l4, 1);
        uint16_t hp = htons(m->host_port), cp = htons(m->container_port);
        add_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2); /* th dport */
        add_cmp(r, NFT_CMP_EQ, &hp, 2);
        add_immediate(r, NFT_REG_1, pod, family == AF_INET ? 4 : 16);
        add_immediate(r, NFT_REG_2, &cp, 2);
        struct nftnl_expr *x = nftnl_expr_alloc("nat");
        nftnl_expr_set_u32(x, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
        nftnl_expr_set_u32(x, NFTNL_EXPR_NAT_FAMILY, family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6);
        nftnl_expr_set_u32(x, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
        nftnl_expr_set_u32(x, NFTNL_EXPR_NAT_REG_PROTO_MIN, NFT_REG_2);
        nftnl_rule_add_expr(r, x);
        nft_batch_rule(bt, NFT_MSG_NEWRULE, NLM_F_APPEND | NLM_F_CREATE, r);
}

static void masq_rule(struct nft_batch *bt, const char *table, const char *pod_id, int family,
                      const unsigned char *pod, bool from_loopback)
{
        struct nftnl_rule *r = new_rule(table, "postrouting", pod_id);
        match_nfproto(r, family);
        if (from_loopback) {
                uint32_t mask = htonl(0xff000000), zero = 0, net = htonl(0x7f000000);
                add_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 12, 4);
                add_bitwise(r, &mask, &zero, 4);
                add_cmp(r, NFT_CMP_EQ, &net, 4);
        } else {
                match_addr(r, family, false, pod);
        }
        match_addr(r, family, true, pod);
        match_ct_dnat(r);
        nftnl_rule_add_expr(r, nftnl_expr_alloc("masq"));
        nft_batch_rule(bt, NFT_MSG_NEWRULE, NLM_F_APPEND | NLM_F_CREATE, r);
}

static void batch_table_and_chains(struct nft_batch *bt, const char *table)
{
        struct nftnl_table *t = nftnl_table_alloc();
        nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
        nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
        nftnl_table_nlmsg_build_payload(nft_batch_hdr(bt, NFT_MSG_NEWTABLE, NLM_F_CREATE), t);
        nftnl_table_free(t);
        nft_batch_next(bt);

        static const struct {
                const char *name;
                uint32_t hook;
                int32_t prio;
        } chains[] = {
                {"prerouting", NF_INET_PRE_ROUTING, -100}, /* dstnat */
                {"output", NF_INET_LOCAL_OUT, -100},       /* dstnat */
                {"postrouting", NF_INET_POST_ROUTING, 100} /* srcnat */
        };
        for (size_t i = 0; i < ARRAY_SIZE(chains); i++) {
                struct nftnl_chain *c = nftnl_chain_alloc();
                nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
                nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
                nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, chains[i].name);
                nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "nat");
                nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, chains[i].hook);
                nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, chains[i].prio);
                nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
                /* No NLM_F_EXCL: an existing chain with the same hook is fine. */
                nftnl_chain_nlmsg_build_payload(nft_batch_hdr(bt, NFT_MSG_NEWCHAIN, NLM_F_CREATE), c);
                nftnl_chain_free(c);
                nft_batch_next(bt);
        }
}

int nft_masq_add(const char *pod_id, uint32_t pod_be, uint32_t net_be, int prefix, const char *ipt_chain,
                 struct err *e)
{
        const char *table = NET_HOSTPORT_TABLE;
        uint32_t mask = prefix <= 0 ? 0 : htonl(0xffffffffu << (32 - prefix)), zero = 0;
        uint32_t mcast_mask = htonl(0xf0000000), mcast = htonl(0xe0000000);
        struct nft_batch bt = {0};
        nft_batch_init(&bt, 8192);
        batch_table_and_chains(&bt, table);
        struct nftnl_rule *r = new_rule(table, "postrouting", pod_id);
        match_nfproto(r, AF_INET);
        match_addr(r, AF_INET, false, &pod_be);
        add_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 16, 4);
        add_bitwise(r, &mask, &zero, 4);
        add_cmp(r, NFT_CMP_NEQ, &net_be, 4);
        add_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 16, 4);
        add_bitwise(r, &mcast_mask, &zero, 4);
        add_cmp(r, NFT_CMP_NEQ, &mcast, 4);
        nftnl_rule_add_expr(r, nftnl_expr_alloc("masq"));
        nft_batch_rule(&bt, NFT_MSG_NEWRULE, NLM_F_APPEND | NLM_F_CREATE, r);
        if (ipt_chain) {
                struct nftnl_table *t = nftnl_table_alloc();
                nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_IPV4);
                nftnl_table_set_str(t, NFTNL_TABLE_NAME, "nat");
                nftnl_table_nlmsg_build_payload(
                        nft_batch_hdr_family(&bt, NFPROTO_IPV4, NFT_MSG_NEWTABLE, NLM_F_CREATE), t);
                nftnl_table_free(t);
                nft_batch_next(&bt);
                struct nftnl_chain *c = nftnl_chain_alloc();
                nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_IPV4);
                nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, "nat");
                nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, ipt_chain);
                nftnl_chain_nlmsg_build_payload(
                        nft_batch_hdr_family(&bt, NFPROTO_IPV4, NFT_MSG_NEWCHAIN, NLM_F_CREATE), c);
                nftnl_chain_free(c);
                nft_batch_next(&bt);
        }
        int ret = nft_batch_send(&bt, "add masquerade rule", e);
        nft_batch_free(&bt);
        if (ret < 0)
                return err_wrap(e, "ipMasq for pod %s in table inet %s", pod_id, table);
        return 0;
}

int net_hostport_add(const char *table, const char *pod_id, const char *pod_ip,
                     const struct net_port_mapping *m, size_t n, struct err *e)
{
        unsigned char pod[16], host[16];
        int family;
        bool localhost = false;
        size_t used = 0;

        table = tname(table);
        if (!pod_id || !pod_id[0] || strlen(pod_id) > 200)
                return err_set(e, ERR_INVALID, "hostPort: invalid pod id");
        if (inet_pton(AF_INET, pod_ip, pod) == 1)
                family = AF_INET;
        else if (inet_pton(AF_INET6, pod_ip, pod) == 1)
                family = AF_INET6;
        else
                return err_set(e, ERR_INVALID, "hostPort for pod %s: bad pod IP %s", pod_id, pod_ip);

        for (size_t i = 0; i < n; i++) {
                if (m[i].container_port == 0)
                        return err_set(e, ERR_INVALID, "hostPort %u for pod %s: container port 0",
                                       m[i].host_port, pod_id);
                if (m[i].proto > NET_PROTO_SCTP)
                        return err_set(e, ERR_INVALID, "hostPort %u for pod %s: unknown protocol",
                                       m[i].host_port, pod_id);
                if (m[i].host_ip && m[i].host_ip[0] && inet_pton(AF_INET, m[i].host_ip, host) != 1 &&
                    inet_pton(AF_INET6, m[i].host_ip, host) != 1)
                        return err_set(e, ERR_INVALID, "hostPort %u for pod %s: bad host IP %s",
                                       m[i].host_port, pod_id, m[i].host_ip);
        }

        struct nft_batch bt = {0};
        nft_batch_init(&bt, 8192 + n * 2 * 1024);
        batch_table_and_chains(&bt, table);
        for (size_t i = 0; i < n; i++) {
                const unsigned char *hp = NULL;
                if (m[i].host_port == 0) /* no hostPort: nothing to map */
                        continue;
                if (m[i].host_ip && m[i].host_ip[0] && strcmp(m[i].host_ip, "0.0.0.0") &&
                    strcmp(m[i].host_ip, "::")) {
                        /* A host IP of the other family maps nothing for this pod IP
                         * (dual-stack pods get one call per family). */
                        if (inet_pton(family, m[i].host_ip, host) != 1)
                                continue;
                        hp = host;
                        if (family == AF_INET && host[0] == 127)
                                localhost = true;
                } else if (family == AF_INET) {
                        localhost = true;
                }
                dnat_rule(&bt, table, "prerouting", pod_id, family, pod, hp, &m[i]);
                dnat_rule(&bt, table, "output", pod_id, family, pod, hp, &m[i]);
                used++;
        }
        if (used) {
                masq_rule(&bt, table, pod_id, family, pod, false);
                if (family == AF_INET)
                        masq_rule(&bt, table, pod_id, family, pod, true);
        }
        int ret = nft_batch_send(&bt, "add hostPort rules", e);
        nft_batch_free(&bt);
        if (ret < 0)
                return err_wrap(e, "hostPorts for pod %s (%s) in table inet %s", pod_id, pod_ip, table);
        if (localhost && enable_route_localnet((const struct in_addr *)pod, e) < 0) {
                (void)net_hostport_del(table, pod_id, NULL);
                return err_wrap(e, "hostPorts on 127.0.0.1 for pod %s (%s)", pod_id, pod_ip);
        }
        return 0;
}

struct list_q {
        const char *pod_id;
        struct net_hostport_rule *v;
        size_t n;
};

static int comment_cb(const struct nftnl_udata *attr, void *data)
{
        const char **out = data;
        if (nftnl_udata_type(attr) == NFTNL_UDATA_RULE_COMMENT)
                *out = nftnl_udata_get(attr);
        return MNL_CB_OK;
}

static int rule_cb(const struct nlmsghdr *nlh, void *data)
{
        struct list_q *q = data;
        struct nftnl_rule *r = nftnl_rule_alloc();
        if (nftnl_rule_nlmsg_parse(nlh, r) < 0)
                goto out;
        uint32_t ulen = 0;
        const void *ud = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &ulen);
        const char *comment = NULL;
        if (!ud || nftnl_udata_parse(ud, ulen, comment_cb, &comment) < 0 || !comment ||
            !str_has_prefix(comment, TAG_PREFIX))
                goto out;
        const char *pod = comment + strlen(TAG_PREFIX);
        if (q->pod_id && strcmp(pod, q->pod_id))
                goto out;
        q->v = xrealloc(q->v, (q->n + 1) * sizeof(*q->v));
        q->v[q->n].pod_id = xstrdup(pod);
        q->v[q->n].chain = xstrdup(nftnl_rule_get_str(r, NFTNL_RULE_CHAIN));
        q->v[q->n].handle = nftnl_rule_get_u64(r, NFTNL_RULE_HANDLE);
        q->n++;
out:
        nftnl_rule_free(r);
        return MNL_CB_OK;
}

static void list_q_reset(void *data)
{
        struct list_q *q = data;
        net_hostport_rules_free(q->v, q->n);
        q->v = NULL;
        q->n = 0;
}

int net_hostport_list(const char *table, const char *pod_id, struct net_hostport_rule **out, size_t *n,
                      struct err *e)
{
        return nft_rules_of_pod(NULL, table, pod_id, out, n, e);
}

int nft_rules_of_pod(struct mnl_socket *sock, const char *table, const char *pod_id,
                     struct net_hostport_rule **out, size_t *n, struct err *e)
{
        char buf[4096];
        struct list_q q = {pod_id, NULL, 0};
        struct err ie = ERR_INIT;

        table = tname(table);
        *out = NULL;
        *n = 0;
        cleanup_nl struct mnl_socket *own = sock ? NULL : nl_open(NULL, NETLINK_NETFILTER, e);
        struct mnl_socket *s = sock ? sock : own;
        if (!s)
                return -1;
        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, 0);
        struct nftnl_rule *r = nftnl_rule_alloc();
        nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
        nftnl_rule_nlmsg_build_payload(nlh, r);
        nftnl_rule_free(r);
        if (nl_dump(s, nlh, rule_cb, &q, list_q_reset, "list hostPort rules", &ie) < 0) {
                net_hostport_rules_free(q.v, q.n);
                if (ie.errnum == ENOENT) { /* no table: no rules */
                        err_clear(&ie);
                        return 0;
                }
                err_move(e, &ie);
                return err_wrap(e, "table inet %s", table);
        }
        *out = q.v;
        *n = q.n;
        return 0;
}

void net_hostport_rules_free(struct net_hostport_rule *r, size_t n)
{
        for (size_t i = 0; r && i < n; i++) {
                free(r[i].pod_id);
                free(r[i].chain);
        }
        free(r);
}

static int del_once(const char *table, const char *pod_id, struct err *e)
{
        struct net_hostport_rule *rules = NULL;
        size_t n = 0;

        if (net_hostport_list(table, pod_id, &rules, &n, e) < 0)
                return -1;
        if (n == 0)
                return 0;
        struct nft_batch bt = {0};
        nft_batch_init(&bt, 8192 + n * 256);
        for (size_t i = 0; i < n; i++) {
                struct nftnl_rule *r = nftnl_rule_alloc();
                nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
                nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
                nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, rules[i].chain);
                nftnl_rule_set_u64(r, NFTNL_RULE_HANDLE, rules[i].handle);
                nft_batch_rule(&bt, NFT_MSG_DELRULE, 0, r);
        }
        net_hostport_rules_free(rules, n);
        int ret = nft_batch_send(&bt, "delete hostPort rules", e);
        nft_batch_free(&bt);
        return ret;
}

int net_hostport_del(const char *table, const char *pod_id, struct err *e)
{
        struct err ie = ERR_INIT;

        table = tname(table);
        if (!pod_id || !pod_id[0])
                return err_set(e, ERR_INVALID, "hostPort: invalid pod id");
        /* ENOENT: a concurrent del (or flush) removed some rules between our
         * list and our batch, which then did nothing: list again. */
        for (int attempt = 0; attempt < 3; attempt++) {
                if (del_once(table, pod_id, &ie) == 0)
                        return 0;
                if (ie.errnum != ENOENT)
                        break;
                err_clear(&ie);
        }
        err_move(e, &ie);
        return err_wrap(e, "remove hostPorts of pod %s from table inet %s", pod_id, table);
}

int net_hostport_flush(const char *table, struct err *e)
{
        struct nft_batch bt = {0};
        table = tname(table);
        nft_batch_init(&bt, 8192);
        struct nftnl_table *t = nftnl_table_alloc();
        nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
        nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
        nftnl_table_nlmsg_build_payload(nft_batch_hdr(&bt, NFT_MSG_DELTABLE, 0), t);
        nftnl_table_free(t);
        nft_batch_next(&bt);
        struct err ie = ERR_INIT;
        int ret = nft_batch_send(&bt, "delete table", &ie);
        nft_batch_free(&bt);
        if (ret < 0 && ie.errnum == ENOENT) {
                err_clear(&ie);
                return 0;
        }
        if (ret < 0) {
                err_move(e, &ie);
                return err_wrap(e, "table inet %s", table);
        }
        return 0;
}
