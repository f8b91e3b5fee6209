/* Links over rtnetlink with libmnl: state, taps, namespaces, addresses,
 * statistics, and the tc ingress + mirred redirect of VM pods. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_mirred.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>

#include "net/net-internal.h"

#define NLBUF 8192

static struct nlmsghdr *link_req(char *buf, int type, int flags, const char *ifname)
{
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = NLM_F_REQUEST | flags;
        struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
        ifm->ifi_family = AF_UNSPEC;
        if (ifname)
                mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
        return nlh;
}

static const char *ns_name(const char *netns)
{
        return netns ? netns : "host netns";
}

/* ---- RTM_GETLINK ---- */

struct link_q {
        struct net_link_info *info;
        struct net_link_stats *stats;
};

static int link_attr_cb(const struct nlattr *attr, void *data)
{
        const struct nlattr **tb = data;
        int type = mnl_attr_get_type(attr);
        if (mnl_attr_type_valid(attr, IFLA_MAX) > 0)
                tb[type] = attr;
        return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
        struct link_q *q = data;
        const struct nlattr *tb[IFLA_MAX + 1] = {0};
        struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);

        mnl_attr_parse(nlh, sizeof(*ifm), link_attr_cb, tb);
        if (q->info) {
                q->info->index = ifm->ifi_index;
                q->info->up = (ifm->ifi_flags & IFF_UP) != 0;
                if (tb[IFLA_MTU])
                        q->info->mtu = (int)mnl_attr_get_u32(tb[IFLA_MTU]);
                if (tb[IFLA_ADDRESS] && mnl_attr_get_payload_len(tb[IFLA_ADDRESS]) == 6) {
                        memcpy(q->info->mac, mnl_attr_get_payload(tb[IFLA_ADDRESS]), 6);
                        const unsigned char *m = q->info->mac;
                        snprintf(q->info->mac_str, sizeof(q->info->mac_str), "%02x:%02x:%02x:%02x:%02x:%02x",
                                 m[0], m[1], m[2], m[3], m[4], m[5]);
                }
        }
        if (q->stats && tb[IFLA_STATS64] &&
            mnl_attr_get_payload_len(tb[IFLA_STATS64]) >= sizeof(struct rtnl_link_stats64)) {
                struct rtnl_link_stats64 st;
                memcpy(&st, mnl_attr_get_payload(tb[IFLA_STATS64]), sizeof(st));
                q->stats->rx_bytes = st.rx_bytes;
                q->stats->tx_bytes = st.tx_bytes;
                q->stats->rx_packets = st.rx_packets;
                q->stats->tx_packets = st.tx_packets;
                q->stats->rx_errors = st.rx_errors;
                q->stats->tx_errors = st.tx_errors;
                q->stats->rx_dropped = st.rx_dropped;
                q->stats->tx_dropped = st.tx_dropped;
        }
        return MNL_CB_OK;
}

static int get_link(struct mnl_socket *s, const char *netns, const char *ifname, struct link_q *q,
                    struct err *e)
{
        char buf[NLBUF] = {0}; /* padding goes out on the wire too */
        struct nlmsghdr *nlh = link_req(buf, RTM_GETLINK, 0, ifname);
        if (nl_talk(s, nlh, link_cb, q, "get link", e) < 0) {
                if (e && (e->errnum == ENODEV || e->errnum == ENOENT)) {
                        err_clear(e);
                        return err_set(e, ERR_NOT_FOUND, "link %s not found in %s", ifname, ns_name(netns));
                }
                return err_wrap(e, "link %s in %s", ifname, ns_name(netns));
        }
        return 0;
}

int net_link_index(const char *netns, const char *ifname, struct err *e)
{
        struct net_link_info info = {0};
        struct link_q q = {.info = &info};
        cleanup_nl struct mnl_socket *s = nl_open(netns, NETLINK_ROUTE, e);
        if (!s || get_link(s, netns, ifname, &q, e) < 0)
                return -1;
        return info.index;
}

int net_link_stats(const char *netns, const char *ifname, struct net_link_stats *out, struct err *e)
{
        struct link_q q = {.stats = out};
        memset(out, 0, sizeof(*out));
        cleanup_nl struct mnl_socket *s = nl_open(netns, NETLINK_ROUTE, e);
        if (!s)
                return -1;
        return get_link(s, netns, ifname, &q, e);
}

/* ---- addresses ---- */

struct addr_q {
        int index;
        struct net_link_info *info;
};

static int addr_attr_cb(const struct nlattr *attr, void *data)
{
        const struct nlattr **tb = data;
        if (mnl_attr_type_valid(attr, IFA_MAX) > 0)
                tb[mnl_attr_get_type(attr)] = attr;
        return MNL_CB_OK;
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
        struct addr_q *q = data;
        const struct nlattr *tb[IFA_MAX + 1] = {0};
        struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);

        if ((int)ifa->ifa_index != q->index)
                return MNL_CB_OK;
        mnl_attr_parse(nlh, sizeof(*ifa), addr_attr_cb, tb);
        const struct nlattr *a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
        if (!a)
                return MNL_CB_OK;
        struct net_link_info *i = q->info;
        i->addrs = xrealloc(i->addrs, (i->n_addrs + 1) * sizeof(*i->addrs));
        struct net_link_addr *na = &i->addrs[i->n_addrs++];
        memset(na, 0, sizeof(*na));
        na->family = ifa->ifa_family;
        na->prefixlen = ifa->ifa_prefixlen;
        inet_ntop(ifa->ifa_family, mnl_attr_get_payload(a), na->addr, sizeof(na->addr));
        return MNL_CB_OK;
}

int net_link_info(const char *netns, const char *ifname, struct net_link_info *out, struct err *e)
{
        char buf[NLBUF] = {0}; /* padding goes out on the wire too */
        struct link_q q = {.info = out};
        memset(out, 0, sizeof(*out));
        cleanup_nl struct mnl_socket *s = nl_open(netns, NETLINK_ROUTE, e);
        if (!s || get_link(s, netns, ifname, &q, e) < 0)
                return -1;

        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = RTM_GETADDR;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
        ifa->ifa_family = AF_UNSPEC;
        struct addr_q aq = {out->index, out};
        if (nl_talk(s, nlh, addr_cb, &aq, "dump addresses", e) < 0) {
                net_link_info_free(out);
                return err_wrap(e, "link %s in %s", ifname, ns_name(netns));
        }
        return 0;
}

void net_link_info_free(struct net_link_info *i)
{
        if (!i)
                return;
        free(i->addrs);
        i->addrs = NULL;
        i->n_addrs = 0;
}

/* ---- changes ---- */

static int set_link(const char *netns, const char *ifname, int up, int mtu, struct err *e)
{
        char buf[NLBUF] = {0}; /* padding goes out on the wire too */
        cleanup_nl struct mnl_socket *s = nl_open(netns, NETLINK_ROUTE, e);
        if (!s)
                return -1;
        struct nlmsghdr *nlh = link_req(buf, RTM_NEWLINK, 0, ifname);
        struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
        if (up >= 0) {
                ifm->ifi_change = IFF_UP;
                ifm->ifi_flags = up ? IFF_UP : 0;
        }
        if (mtu > 0)
                mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)mtu);
        if (nl_talk(s, nlh, NULL, NULL, "set link", e) < 0)
                return err_wrap(e, "link %s in %s", ifname, ns_name(netns));
        return 0;
}

int net_link_set_up(const char *netns, const char *ifname, bool up, struct err *e)
{
        return set_link(netns, ifname, up ? 1 : 0, 0, e);
}

int net_link_delete(const char *netns, const char *ifname, struct err *e)
{
        char buf[NLBUF] = {0}; /* padding goes out on the wire too */
        struct err ie = ERR_INIT;
        cleanup_nl struct mnl_socket *s = nl_open(netns, NETLINK_ROUTE, e);
        if (!s)
                return -1;
        struct nlmsghdr *nlh = link_req(buf, RTM_DELLINK, 0, ifname);
        if (nl_talk(s, nlh, NULL, NULL, "delete link", &ie) < 0) {
                if (ie.errnum == ENODEV || ie.errnum == ENOENT) {
                        err_clear(&ie);
                        return 0;
                }
                err_move(e, &ie);
                return err_wrap(e, "link %s in %s", ifname, ns_name(netns));
        }
        return 0;
}

int net_link_move(const char *from, const char *ifname, const char *to, struct err *e)
{
        char buf[NLBUF] = {0}; /* padding goes out on the wire too */
        cleanup_close int fd = open(to ? to : "/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return err_make(e, errno, "open netns %s", ns_name(to));
        cleanup_nl struct mnl_socket *s = nl_open(from, NETLINK_ROUTE, e);
        if (!s)
                return -1;
        struct nlmsghdr *nlh = link_req(buf, RTM_NEWLINK, 0, ifname);
        mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)fd);
        if (nl_talk(s, nlh, NULL, NULL, "move link", e) < 0)
                return err_wrap(e, "move %s from %s to %s", ifname, ns_name(from), ns_name(to));
        return 0;
}

int net_link_tap_create(const char *netns, const char *name, int mtu, bool multi_queue, struct err *e)
{
        struct ifreq ifr = {0};
        int saved = -1;

        if (strlen(name) >= IFNAMSIZ)
                return err_set(e, ERR_INVALID, "tap name %s is longer than %d bytes", name, IFNAMSIZ - 1);
        /* The tap lands in the netns of the opener of /dev/net/tun. */
        if (netns && net_ns_enter(netns, &saved, e) < 0)
                return -1;
        cleanup_close int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        int errnum = errno;
        net_ns_leave(&saved);
        if (fd < 0)
                return err_make(e, errnum, "open /dev/net/tun");
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi_queue ? IFF_MULTI_QUEUE : 0);
        if (ioctl(fd, TUNSETIFF, &ifr) < 0)
                return err_make(e, errno, "create tap %s in %s", name, ns_name(netns));
        if (ioctl(fd, TUNSETPERSIST, 1) < 0)
                return err_make(e, errno, "make tap %s persistent", name);
        if (set_link(netns, name, 1, mtu, e) < 0) {
                /* Closing a non-persistent tap deletes it: leave nothing. */
                (void)ioctl(fd, TUNSETPERSIST, 0);
                return err_wrap(e, "set up tap");
        }
        return 0;
}

/* ---- tc: ingress qdisc + u32 match-all + mirred egress redirect ---- */

static struct nlmsghdr *tc_req(char *buf, int type, int flags, int ifindex, uint32_t handle, uint32_t parent,
                               uint32_t info)
{
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = NLM_F_REQUEST | flags;
        struct tcmsg *t = mnl_nlmsg_put_extra_header(nlh, sizeof(*t));
        t->tcm_family = AF_UNSPEC;
        t->tcm_ifindex = ifindex;
        t->tcm_handle = handle;
        t->tcm_parent = parent;
        t->tcm_info = info;
        return nlh;
}

#define INGRESS_HANDLE TC_H_MAKE(TC_H_INGRESS, 0) /* ffff: */

static int del_ingress(struct mnl_socket *s, int ifindex, struct err *e)
{
        char buf[NLBUF] = {0}; /* padding goes out on the wire too */
        struct err ie = ERR_INIT;
        struct nlmsghdr *nlh = tc_req(buf, RTM_DELQDISC, 0, ifindex, INGRESS_HANDLE, TC_H_INGRESS, 0);
        if (nl_talk(s, nlh, NULL, NULL, "delete ingress qdisc", &ie) < 0) {
                /* No ingress qdisc: EINVAL or ENOENT depending on the kernel. */
                if (ie.errnum == ENOENT || ie.errnum == EINVAL || ie.errnum == ENODEV) {
                        err_clear(&ie);
                        return 0;
                }
                err_move(e, &ie);
                return -1;
        }
        return 0;
}

static int add_redirect(struct mnl_socket *s, int from, int to, struct err *e)
{
        char buf[NLBUF] = {0}; /* padding goes out on the wire too */
        struct nlmsghdr *nlh =
                tc_req(buf, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, from, INGRESS_HANDLE, TC_H_INGRESS, 0);
        mnl_attr_put_strz(nlh, TCA_KIND, "ingress");
        if (nl_talk(s, nlh, NULL, NULL, "add ingress qdisc", e) < 0)
                return -1;

        /* tc filter add dev FROM parent ffff: protocol all prio 1 u32
         *   match u32 0 0 action mirred egress redirect dev TO */
        nlh = tc_req(buf, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, from, 0, INGRESS_HANDLE,
                     TC_H_MAKE(1u << 16, htons(ETH_P_ALL)));
        mnl_attr_put_strz(nlh, TCA_KIND, "u32");
        struct nlattr *opts = mnl_attr_nest_start(nlh, TCA_OPTIONS);
        /* tc_u32_sel ends in a flexible array of keys: one key follows it. */
        _Alignas(struct tc_u32_sel) unsigned char
                selbuf[sizeof(struct tc_u32_sel) + sizeof(struct tc_u32_key)];
        memset(selbuf, 0, sizeof(selbuf));
        struct tc_u32_sel *sel = (struct tc_u32_sel *)selbuf;
        sel->flags = TC_U32_TERMINAL;
        sel->nkeys = 1; /* mask 0, value 0: matches every packet */
        mnl_attr_put(nlh, TCA_U32_SEL, sizeof(selbuf), selbuf);
        struct nlattr *acts = mnl_attr_nest_start(nlh, TCA_U32_ACT);
        struct nlattr *act = mnl_attr_nest_start(nlh, 1);
        mnl_attr_put_strz(nlh, TCA_ACT_KIND, "mirred");
        struct nlattr *aopts = mnl_attr_nest_start(nlh, TCA_ACT_OPTIONS);
        struct tc_mirred m = {0};
        m.action = TC_ACT_STOLEN;
        m.eaction = TCA_EGRESS_REDIR;
        m.ifindex = (uint32_t)to;
        mnl_attr_put(nlh, TCA_MIRRED_PARMS, sizeof(m), &m);
        mnl_attr_nest_end(nlh, aopts);
        mnl_attr_nest_end(nlh, act);
        mnl_attr_nest_end(nlh, acts);
        mnl_attr_nest_end(nlh, opts);
        if (nl_talk(s, nlh, NULL, NULL, "add u32 mirred filter", e) < 0)
                return -1;
        return 0;
}

int net_tc_redirect_add(const char *netns, const char *a, const char *b, struct err *e)
{
        struct net_link_info ia = {0}, ib = {0};
        struct link_q qa = {.info = &ia}, qb = {.info = &ib};
        cleanup_nl struct mnl_socket *s = nl_open(netns, NETLINK_ROUTE, e);
        if (!s)
                return -1;
        if (get_link(s, netns, a, &qa, e) < 0 || get_link(s, netns, b, &qb, e) < 0)
                return err_wrap(e, "tc redirect %s <-> %s", a, b);
        if (del_ingress(s, ia.index, e) < 0 || del_ingress(s, ib.index, e) < 0 ||
            add_redirect(s, ia.index, ib.index, e) < 0 || add_redirect(s, ib.index, ia.index, e) < 0) {
                (void)del_ingress(s, ia.index, NULL);
                (void)del_ingress(s, ib.index, NULL);
                return err_wrap(e, "tc redirect %s <-> %s in %s", a, b, ns_name(netns));
        }
        return 0;
}

int net_tc_redirect_del(const char *netns, const char *a, const char *b, struct err *e)
{
        const char *names[2] = {a, b};
        cleanup_nl struct mnl_socket *s = nl_open(netns, NETLINK_ROUTE, e);
        if (!s)
                return -1;
        for (int i = 0; i < 2; i++) {
                struct net_link_info info = {0};
                struct link_q q = {.info = &info};
                struct err ie = ERR_INIT;
                if (!names[i])
                        continue;
                if (get_link(s, netns, names[i], &q, &ie) < 0) {
                        bool gone = ie.kind == ERR_NOT_FOUND;
                        err_move(e, &ie);
                        if (gone) {
                                err_clear(e);
                                continue;
                        }
                        return -1;
                }
                if (del_ingress(s, info.index, e) < 0)
                        return err_wrap(e, "remove ingress qdisc of %s in %s", names[i], ns_name(netns));
        }
        return 0;
}

struct filter_q {
        int to;
        bool found;
};

static int nest_cb(const struct nlattr *attr, void *data)
{
        /* Store up to 32 attributes by type; enough for u32 / act nests. */
        const struct nlattr **tb = data;
        int t = mnl_attr_get_type(attr);
        if (t >= 0 && t < 32)
                tb[t] = attr;
        return MNL_CB_OK;
}

static int filter_cb(const struct nlmsghdr *nlh, void *data)
{
        struct filter_q *q = data;
        const struct nlattr *tb[32] = {0}, *ob[32] = {0};
        mnl_attr_parse(nlh, sizeof(struct tcmsg), nest_cb, tb);
        if (!tb[TCA_KIND] || strcmp(mnl_attr_get_str(tb[TCA_KIND]), "u32") || !tb[TCA_OPTIONS])
                return MNL_CB_OK;
        mnl_attr_parse_nested(tb[TCA_OPTIONS], nest_cb, ob);
        if (!ob[TCA_U32_ACT])
                return MNL_CB_OK;
        const struct nlattr *act;
        mnl_attr_for_each_nested(act, ob[TCA_U32_ACT])
        {
                const struct nlattr *ab[32] = {0}, *mb[32] = {0};
                mnl_attr_parse_nested(act, nest_cb, ab);
                if (!ab[TCA_ACT_KIND] || strcmp(mnl_attr_get_str(ab[TCA_ACT_KIND]), "mirred") ||
                    !ab[TCA_ACT_OPTIONS])
                        continue;
                mnl_attr_parse_nested(ab[TCA_ACT_OPTIONS], nest_cb, mb);
                if (!mb[TCA_MIRRED_PARMS] ||
                    mnl_attr_get_payload_len(mb[TCA_MIRRED_PARMS]) < sizeof(struct tc_mirred))
                        continue;
                struct tc_mirred m;
                memcpy(&m, mnl_attr_get_payload(mb[TCA_MIRRED_PARMS]), sizeof(m));
                if (m.eaction == TCA_EGRESS_REDIR && (int)m.ifindex == q->to)
                        q->found = true;
        }
        return MNL_CB_OK;
}

int net_tc_redirect_check(const char *netns, const char *ifname, const char *to, bool *found, struct err *e)
{
        char buf[NLBUF] = {0}; /* padding goes out on the wire too */
        struct net_link_info from = {0}, dst = {0};
        struct link_q qf = {.info = &from}, qt = {.info = &dst};
        *found = false;
        cleanup_nl struct mnl_socket *s = nl_open(netns, NETLINK_ROUTE, e);
        if (!s)
                return -1;
        if (get_link(s, netns, ifname, &qf, e) < 0 || get_link(s, netns, to, &qt, e) < 0)
                return -1;
        struct nlmsghdr *nlh = tc_req(buf, RTM_GETTFILTER, NLM_F_DUMP, from.index, 0, INGRESS_HANDLE, 0);
        struct filter_q q = {dst.index, false};
        struct err ie = ERR_INIT;
        if (nl_talk(s, nlh, filter_cb, &q, "dump tc filters", &ie) < 0) {
                /* No ingress qdisc: nothing redirects. */
                if (ie.errnum == EINVAL || ie.errnum == ENOENT) {
                        err_clear(&ie);
                        return 0;
                }
                err_move(e, &ie);
                return -1;
        }
        *found = q.found;
        return 0;
}
