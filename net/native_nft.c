/* ipMasq without iptables: corral's rule in table inet corral, and the
 * removal of the chains the bridge plugin made through iptables-nft, so a
 * pod the plugins made can be deleted here. */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
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

int native_masq_add(const char *net_name, const char *pod_id, const struct native_ip *ip, struct err *e)
{
        char chain[29];
        uint32_t net = htonl(ip->addr & native_mask(ip->prefix)), pod = htonl(ip->addr);
        /* The bridge plugin's DEL (1.1 with iptables 1.8.9) fails when the
         * pod's CNI-* chain is missing: an empty one lets the plugins
         * delete a pod made here. */
        ipt_chain_name(net_name, pod_id, chain);
        return nft_masq_add(pod_id, pod, net, ip->prefix, chain, e);
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

static void batch_ipt_rule_del(struct nft_batch *bt, const char *chain, uint64_t handle)
{
        struct nftnl_rule *r = ipt_rule(chain);
        if (handle) /* without a handle: the whole chain is flushed */
                nftnl_rule_set_u64(r, NFTNL_RULE_HANDLE, handle);
        nftnl_rule_nlmsg_build_payload(nft_batch_hdr_family(bt, NFPROTO_IPV4, NFT_MSG_DELRULE, 0), r);
        nftnl_rule_free(r);
        nft_batch_next(bt);
}

static void batch_ipt_chain_del(struct nft_batch *bt, const char *name)
{
        struct nftnl_chain *c = nftnl_chain_alloc();
        nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_IPV4);
        nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, "nat");
        nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
        nftnl_chain_nlmsg_build_payload(nft_batch_hdr_family(bt, NFPROTO_IPV4, NFT_MSG_DELCHAIN, 0), c);
        nftnl_chain_free(c);
        nft_batch_next(bt);
}

static void ipt_q_reset(void *data)
{
        struct ipt_q *q = data;
        free(q->v);
        q->v = NULL;
        q->n = 0;
}

/* The POSTROUTING rules of table ip nat that match one of the pod's
 * addresses and jump to a CNI-* chain. No table or chain: none. */
static int ipt_jumps(struct mnl_socket *s, struct ipt_q *q, struct err *e)
{
        char buf[4096];
        struct err ie = ERR_INIT;
        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, NFPROTO_IPV4, NLM_F_DUMP, 0);
        struct nftnl_rule *r = ipt_rule("POSTROUTING");
        nftnl_rule_nlmsg_build_payload(nlh, r);
        nftnl_rule_free(r);
        if (nl_dump(s, nlh, rule_cb, q, ipt_q_reset, "list ip nat POSTROUTING", &ie) < 0) {
                if (ie.errnum == ENOENT) {
                        err_clear(&ie);
                        return 0;
                }
                err_move(e, &ie);
                return -1;
        }
        return 0;
}

static int chain_cb(const struct nlmsghdr *nlh, void *data)
{
        (void)nlh;
        *(bool *)data = true;
        return MNL_CB_OK;
}

static int ipt_chain_exists(struct mnl_socket *s, const char *name, bool *found, struct err *e)
{
        char buf[4096];
        struct err ie = ERR_INIT;
        *found = false;
        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETCHAIN, NFPROTO_IPV4, 0, 0);
        struct nftnl_chain *c = nftnl_chain_alloc();
        nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, "nat");
        nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
        nftnl_chain_nlmsg_build_payload(nlh, c);
        nftnl_chain_free(c);
        if (nl_talk(s, nlh, chain_cb, found, "get chain", &ie) < 0) {
                if (ie.errnum == ENOENT) {
                        err_clear(&ie);
                        return 0;
                }
                err_move(e, &ie);
                return -1;
        }
        return 0;
}

/* One netlink socket and one batch for all: our rules, the plugin's jump
 * rules with their chains, and the empty chain we left for the plugins. */
static int masq_del_once(struct mnl_socket *s, const char *net_name, const char *pod_id, const uint32_t *be,
                         size_t n_be, struct err *e)
{
        struct net_hostport_rule *ours = NULL;
        size_t n_ours = 0;
        struct ipt_q q = {be, n_be, NULL, 0};
        char marker[29];
        bool have_marker = false;
        int ret = -1;

        ipt_chain_name(net_name, pod_id, marker);
        if (nft_rules_of_pod(s, NULL, pod_id, &ours, &n_ours, e) < 0 || ipt_jumps(s, &q, e) < 0 ||
            ipt_chain_exists(s, marker, &have_marker, e) < 0)
                goto out;
        for (size_t i = 0; i < q.n; i++)
                if (!strcmp(q.v[i].chain, marker))
                        have_marker = false; /* deleted with the jump below */
        if (n_ours == 0 && q.n == 0 && !have_marker) {
                ret = 0;
                goto out;
        }
        struct nft_batch bt = {.sock = s};
        nft_batch_init(&bt, 8192 + (n_ours + q.n) * 1024);
        for (size_t i = 0; i < n_ours; i++) {
                struct nftnl_rule *r = nftnl_rule_alloc();
                nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
                nftnl_rule_set_str(r, NFTNL_RULE_TABLE, NET_HOSTPORT_TABLE);
                nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, ours[i].chain);
                nftnl_rule_set_u64(r, NFTNL_RULE_HANDLE, ours[i].handle);
                nft_batch_rule(&bt, NFT_MSG_DELRULE, 0, r);
        }
        for (size_t i = 0; i < q.n; i++) {
                batch_ipt_rule_del(&bt, "POSTROUTING", q.v[i].handle);
                batch_ipt_rule_del(&bt, q.v[i].chain, 0);
                batch_ipt_chain_del(&bt, q.v[i].chain);
        }
        if (have_marker)
                batch_ipt_chain_del(&bt, marker);
        ret = nft_batch_send(&bt, "remove ipMasq rules", e);
        nft_batch_free(&bt);
out:
        net_hostport_rules_free(ours, n_ours);
        free(q.v);
        return ret;
}

int native_masq_del(const char *net_name, const char *pod_id, const uint32_t *ips, size_t n, struct err *e)
{
        uint32_t be[16];
        size_t m = 0;
        struct err ie = ERR_INIT;
        for (size_t i = 0; i < n && m < ARRAY_SIZE(be); i++)
                be[m++] = htonl(ips[i]);
        cleanup_nl struct mnl_socket *s = nl_open(NULL, NETLINK_NETFILTER, e);
        if (!s)
                return -1;
        /* ENOENT: something else removed a rule between our list and our
         * batch (which then did nothing): list again. */
        for (int attempt = 0; attempt < 3; attempt++) {
                if (masq_del_once(s, net_name, pod_id, be, m, &ie) == 0)
                        return 0;
                if (ie.errnum != ENOENT)
                        break;
                err_clear(&ie);
        }
        err_move(e, &ie);
        return err_wrap(e, "remove the ipMasq rules of pod %s", pod_id);
}
