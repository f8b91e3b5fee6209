/* Every link's counters in one RTM_GETLINK dump, for the CRI metrics: one
 * netlink socket opened in the pod's netns by a setns of the calling thread
 * (nl_open), no process per call and no /sys walk. */
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>

#include "net/net-internal.h"

struct dump_q {
        struct net_link_counters *v;
        size_t n;
};

static int attr_cb(const struct nlattr *attr, void *data)
{
        const struct nlattr **tb = data;
        if (mnl_attr_type_valid(attr, IFLA_MAX) > 0)
                tb[mnl_attr_get_type(attr)] = attr;
        return MNL_CB_OK;
}

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
        struct dump_q *q = data;
        const struct nlattr *tb[IFLA_MAX + 1] = {0};
        const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
        if (nlh->nlmsg_type != RTM_NEWLINK)
                return MNL_CB_OK;
        mnl_attr_parse(nlh, sizeof(*ifm), attr_cb, tb);
        if (!tb[IFLA_IFNAME])
                return MNL_CB_OK;
        q->v = xrealloc(q->v, (q->n + 1) * sizeof(*q->v));
        struct net_link_counters *c = &q->v[q->n++];
        memset(c, 0, sizeof(*c));
        snprintf(c->name, sizeof(c->name), "%s", mnl_attr_get_str(tb[IFLA_IFNAME]));
        c->loopback = (ifm->ifi_flags & IFF_LOOPBACK) != 0;
        c->up = (ifm->ifi_flags & IFF_UP) != 0;
        if (tb[IFLA_STATS64] &&
            mnl_attr_get_payload_len(tb[IFLA_STATS64]) >= sizeof(struct rtnl_link_stats64)) {
                struct rtnl_link_stats64 st;
                memcpy(&st, mnl_attr_get_payload(tb[IFLA_STATS64]), sizeof(st));
                c->st = (struct net_link_stats){
                        .rx_bytes = st.rx_bytes,
                        .tx_bytes = st.tx_bytes,
                        .rx_packets = st.rx_packets,
                        .tx_packets = st.tx_packets,
                        .rx_errors = st.rx_errors,
                        .tx_errors = st.tx_errors,
                        .rx_dropped = st.rx_dropped,
                        .tx_dropped = st.tx_dropped,
                };
        }
        return MNL_CB_OK;
}

int net_links_counters(const char *netns, struct net_link_counters **out, size_t *n, struct err *e)
{
        *out = NULL;
        *n = 0;
        cleanup_nl struct mnl_socket *s = nl_open(netns, NETLINK_ROUTE, e);
        if (!s)
                return -1;
        char buf[512] = {0}; /* padding goes out on the wire too */
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = RTM_GETLINK;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
        ifm->ifi_family = AF_UNSPEC;
        struct dump_q q = {0};
        if (nl_talk(s, nlh, dump_cb, &q, "dump links", e) < 0) {
                free(q.v);
                return err_wrap(e, "link counters in %s", netns ? netns : "host netns");
        }
        *out = q.v;
        *n = q.n;
        return 0;
}
