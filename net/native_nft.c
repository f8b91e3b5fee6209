/* ipMasq without iptables: corral's rule in table inet corral, and the
 * removal of the chains the bridge plugin made through iptables-nft, so a
 * pod the plugins made can be deleted here. */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <openssl/evp.h>
#include <string.h>

#include "net/native-internal.h"
#include "net/nft-internal.h"

/* The bridge plugin's chain name for the pod: CNI- and the start of
 * sha512(network name + container id) in hex, 28 characters in all. */
static void ipt_chain_name(const char *net_name, const char *pod_id, char out[29])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        cleanup_free char *in = xasprintf("%s%s", net_name, pod_id);
        (void)EVP_Digest(in, strlen(in), md, &n, EVP_sha512(), NULL);
        memcpy(out, "CNI-", 4);
        for (int i = 0; i < 12; i++)
                snprintf(out + 4 + 2 * i, 3, "%02x", md[i]);
}

static void batch_ipt_chain(struct nft_batch *bt, uint16_t type, const char *name)
{
        struct nftnl_chain *c = nftnl_chain_alloc();
        nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_IPV4);
        nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, "nat");
        nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
        nftnl_chain_nlmsg_build_payload(
                nft_batch_hdr_family(bt, NFPROTO_IPV4, type, type == NFT_MSG_NEWCHAIN ? NLM_F_CREATE : 0), c);
        nftnl_chain_free(c);
        nft_batch_next(bt);
}

/* The bridge plugin's DEL (1.1 with iptables 1.8.9) fails when the pod's
 * CNI-* chain is missing, so a pod made here leaves that chain, empty,
 * in iptables' nat table: the plugins can then delete the pod. */
static int ipt_marker_add(const char *net_name, const char *pod_id, struct err *e)
{
        char chain[29];
        ipt_chain_name(net_name, pod_id, chain);
        struct nft_batch bt = {0};
        nft_batch_init(&bt, 8192);
        struct nftnl_table *t = nftnl_table_alloc();
        nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_IPV4);
        nftnl_table_set_str(t, NFTNL_TABLE_NAME, "nat");
        nftnl_table_nlmsg_build_payload(
                nft_batch_hdr_family(&bt, NFPROTO_IPV4, NFT_MSG_NEWTABLE, NLM_F_CREATE), t);
        nftnl_table_free(t);
        nft_batch_next(&bt);
        batch_ipt_chain(&bt, NFT_MSG_NEWCHAIN, chain);
        int ret = nft_batch_send(&bt, "add the ipMasq chain for the plugins", e);
        nft_batch_free(&bt);
        return ret;
}

static int ipt_marker_del(const char *net_name, const char *pod_id, struct err *e)
{
        char chain[29];
        struct err ie = ERR_INIT;
        ipt_chain_name(net_name, pod_id, chain);
        struct nft_batch bt = {0};
        nft_batch_init(&bt, 8192);
        batch_ipt_chain(&bt, NFT_MSG_DELCHAIN, chain);
        int ret = nft_batch_send(&bt, "remove the ipMasq chain for the plugins", &ie);
        nft_batch_free(&bt);
        if (ret < 0 && ie.errnum == ENOENT) {
                err_clear(&ie);
                return 0;
        }
        if (ret < 0)
                err_move(e, &ie);
        return ret;
}

int native_masq_add(const char *net_name, const char *pod_id, const struct native_ip *ip, struct err *e)
{
        uint32_t net = htonl(ip->addr & native_mask(ip->prefix)), pod = htonl(ip->addr);
        if (nft_masq_add(pod_id, pod, net, ip->prefix, e) < 0)
                return -1;
        return ipt_marker_add(net_name, pod_id, e);
}

struct ipt_jump {
        uint64_t handle;
        char chain[64];
};

struct ipt_q {
        const uint32_t *ips; /* network order */
        size_t n_ips;
        struct ipt_jump *v;
        size_t n;
};

struct expr_scan {
        const uint32_t *ips;
        size_t n_ips;
        bool src_match;
        const char *jump;
};

static int expr_cb(struct nftnl_expr *x, void *data)
{
        struct expr_scan *s = data;
        const char *name = nftnl_expr_get_str(x, NFTNL_EXPR_NAME);
        if (!strcmp(name, "cmp")) {
                uint32_t len = 0;
                const void *d = nftnl_expr_get(x, NFTNL_EXPR_CMP_DATA, &len);
                for (size_t i = 0; d && len == 4 && i < s->n_ips; i++)
                        if (!memcmp(d, &s->ips[i], 4))
                                s->src_match = true;
        } else if (!strcmp(name, "immediate") && nftnl_expr_is_set(x, NFTNL_EXPR_IMM_CHAIN)) {
                if ((int)nftnl_expr_get_u32(x, NFTNL_EXPR_IMM_VERDICT) == NFT_JUMP)
                        s->jump = nftnl_expr_get_str(x, NFTNL_EXPR_IMM_CHAIN);
        }
        return 0;
}

static int rule_cb(const struct nlmsghdr *nlh, void *data)
{
        struct ipt_q *q = data;
        struct nftnl_rule *r = nftnl_rule_alloc();
        if (nftnl_rule_nlmsg_parse(nlh, r) == 0) {
                struct expr_scan s = {q->ips, q->n_ips, false, NULL};
                nftnl_expr_foreach(r, expr_cb, &s);
                if (s.src_match && s.jump && str_has_prefix(s.jump, "CNI-") && strlen(s.jump) < 64) {
                        q->v = xrealloc(q->v, (q->n + 1) * sizeof(*q->v));
                        q->v[q->n].handle = nftnl_rule_get_u64(r, NFTNL_RULE_HANDLE);
                        snprintf(q->v[q->n].chain, sizeof(q->v[q->n].chain), "%s", s.jump);
                        q->n++;
                }
        }
        nftnl_rule_free(r);
        return MNL_CB_OK;
}

static struct nftnl_rule *ipt_rule(const char *chain)
{
        struct nftnl_rule *r = nftnl_rule_alloc();
        nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_IPV4);
        nftnl_rule_set_str(r, NFTNL_RULE_TABLE, "nat");
        nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
        return r;
}

static int ipt_del(const uint32_t *ips, size_t n_ips, struct err *e)
{
        char buf[4096];
        struct err ie = ERR_INIT;
        struct ipt_q q = {ips, n_ips, NULL, 0};
        cleanup_nl struct mnl_socket *s = nl_open(NULL, NETLINK_NETFILTER, e);
        if (!s)
                return -1;
        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, NFPROTO_IPV4, NLM_F_DUMP, 0);
        struct nftnl_rule *r = ipt_rule("POSTROUTING");
        nftnl_rule_nlmsg_build_payload(nlh, r);
        nftnl_rule_free(r);
        if (nl_talk(s, nlh, rule_cb, &q, "list ip nat POSTROUTING", &ie) < 0) {
                free(q.v);
                if (ie.errnum == ENOENT) { /* no iptables nat table or chain */
                        err_clear(&ie);
                        return 0;
                }
                err_move(e, &ie);
                return -1;
        }
        if (q.n == 0)
                return 0;
        struct nft_batch bt = {0};
        nft_batch_init(&bt, 8192 + q.n * 1024);
        for (size_t i = 0; i < q.n; i++) {
                r = ipt_rule("POSTROUTING");
                nftnl_rule_set_u64(r, NFTNL_RULE_HANDLE, q.v[i].handle);
                nftnl_rule_nlmsg_build_payload(nft_batch_hdr_family(&bt, NFPROTO_IPV4, NFT_MSG_DELRULE, 0),
                                               r);
                nftnl_rule_free(r);
                nft_batch_next(&bt);
                /* A rule delete without a handle flushes the chain. */
                r = ipt_rule(q.v[i].chain);
                nftnl_rule_nlmsg_build_payload(nft_batch_hdr_family(&bt, NFPROTO_IPV4, NFT_MSG_DELRULE, 0),
                                               r);
                nftnl_rule_free(r);
                nft_batch_next(&bt);
                struct nftnl_chain *c = nftnl_chain_alloc();
                nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_IPV4);
                nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, "nat");
                nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, q.v[i].chain);
                nftnl_chain_nlmsg_build_payload(nft_batch_hdr_family(&bt, NFPROTO_IPV4, NFT_MSG_DELCHAIN, 0),
                                                c);
                nftnl_chain_free(c);
                nft_batch_next(&bt);
        }
        free(q.v);
        int ret = nft_batch_send(&bt, "remove the bridge plugin's ipMasq chains", e);
        nft_batch_free(&bt);
        return ret;
}

int native_masq_del(const char *net_name, const char *pod_id, const uint32_t *ips, size_t n, struct err *e)
{
        if (net_hostport_del(NULL, pod_id, e) < 0)
                return -1;
        if (n == 0)
                return ipt_marker_del(net_name, pod_id, e);
        uint32_t be[16];
        size_t m = 0;
        for (size_t i = 0; i < n && m < ARRAY_SIZE(be); i++)
                be[m++] = htonl(ips[i]);
        if (ipt_del(be, m, e) < 0 || ipt_marker_del(net_name, pod_id, e) < 0)
                return err_wrap(e, "ipMasq of pod %s (iptables-nft)", pod_id);
        return 0;
}
