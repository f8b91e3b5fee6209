/* The bridge plugin's links over rtnetlink: the bridge with its gateway
 * address, the veth pair, the pod's addresses and routes, hairpin mode. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "net/native-internal.h"

#define NLBUF 4096

static struct nlmsghdr *req(char *buf, int type, int flags, int family, int index, const char *name)
{
        memset(buf, 0, NLBUF); /* padding goes out on the wire too */
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = NLM_F_REQUEST | flags;
        struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
        ifm->ifi_family = family;
        ifm->ifi_index = index;
        if (name)
                mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
        return nlh;
}

void native_sysctl(const char *key, const char *val)
{
        cleanup_free char *p = xasprintf("/proc/sys/%s", key);
        cleanup_close int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd >= 0)
                (void)fd_write_all(fd, val, strlen(val));
}

/* ---------- RTM_GETLINK ---------- */

static int attr_cb(const struct nlattr *a, void *data)
{
        const struct nlattr **tb = data;
        if (mnl_attr_type_valid(a, IFLA_MAX) > 0)
                tb[mnl_attr_get_type(a)] = a;
        return MNL_CB_OK;
}

static int info_cb(const struct nlattr *a, void *data)
{
        const struct nlattr **tb = data;
        if (mnl_attr_type_valid(a, IFLA_INFO_MAX) > 0)
                tb[mnl_attr_get_type(a)] = a;
        return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
        struct native_link *l = data;
        const struct nlattr *tb[IFLA_MAX + 1] = {0};
        struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
        mnl_attr_parse(nlh, sizeof(*ifm), attr_cb, tb);
        l->index = ifm->ifi_index;
        l->up = (ifm->ifi_flags & IFF_UP) != 0;
        if (tb[IFLA_ADDRESS] && mnl_attr_get_payload_len(tb[IFLA_ADDRESS]) == 6) {
                const unsigned char *m = mnl_attr_get_payload(tb[IFLA_ADDRESS]);
                snprintf(l->mac, sizeof(l->mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
                         m[4], m[5]);
        }
        if (tb[IFLA_MASTER])
                l->master = (int)mnl_attr_get_u32(tb[IFLA_MASTER]);
        if (tb[IFLA_LINKINFO]) {
                const struct nlattr *ib[IFLA_INFO_MAX + 1] = {0};
                mnl_attr_parse_nested(tb[IFLA_LINKINFO], info_cb, ib);
                if (ib[IFLA_INFO_KIND])
                        snprintf(l->kind, sizeof(l->kind), "%s", mnl_attr_get_str(ib[IFLA_INFO_KIND]));
        }
        return MNL_CB_OK;
}

int native_link_get(struct mnl_socket *s, const char *name, struct native_link *out, struct err *e)
{
        char buf[NLBUF];
        struct err ie = ERR_INIT;
        memset(out, 0, sizeof(*out));
        struct nlmsghdr *nlh = req(buf, RTM_GETLINK, 0, AF_UNSPEC, 0, name);
        if (nl_talk(s, nlh, link_cb, out, "get link", &ie) < 0) {
                if (ie.errnum == ENODEV || ie.errnum == ENOENT) {
                        err_clear(&ie);
                        return err_set(e, ERR_NOT_FOUND, "link %s not found", name);
                }
                err_move(e, &ie);
                return err_wrap(e, "link %s", name);
        }
        return 0;
}

static int set_flags(struct mnl_socket *s, int index, unsigned change, unsigned flags, int master,
                     const char *what, struct err *e)
{
        char buf[NLBUF];
        struct nlmsghdr *nlh = req(buf, RTM_NEWLINK, 0, AF_UNSPEC, index, NULL);
        struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
        ifm->ifi_change = change;
        ifm->ifi_flags = flags;
        if (master > 0)
                mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master);
        return nl_talk(s, nlh, NULL, NULL, what, e);
}

/* ---------- the bridge ---------- */

int native_bridge_ensure(struct mnl_socket *host, const char *name, int mtu, bool promisc,
                         struct native_link *out, struct err *e)
{
        struct err ie = ERR_INIT;
        /* The common case, the bridge as a previous pod left it, costs one
         * request; the plugin's create-then-fix steps reach the same state. */
        if (native_link_get(host, name, out, &ie) == 0) {
                if (strcmp(out->kind, "bridge"))
                        return err_set(e, ERR_PRECONDITION, "%s already exists but is not a bridge", name);
                if (out->up && !promisc)
                        return 0;
        } else if (ie.kind != ERR_NOT_FOUND) {
                err_move(e, &ie);
                return -1;
        } else {
                err_clear(&ie);
                char buf[NLBUF];
                struct nlmsghdr *nlh = req(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, AF_UNSPEC, 0, name);
                if (mtu > 0)
                        mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)mtu);
                struct nlattr *li = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
                mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
                mnl_attr_nest_end(nlh, li);
                if (nl_talk(host, nlh, NULL, NULL, "add bridge", &ie) < 0 && ie.errnum != EEXIST) {
                        err_move(e, &ie);
                        return err_wrap(e, "could not add %s", name);
                }
                err_clear(&ie);
                if (native_link_get(host, name, out, e) < 0)
                        return -1;
                if (strcmp(out->kind, "bridge"))
                        return err_set(e, ERR_PRECONDITION, "%s already exists but is not a bridge", name);
        }
        cleanup_free char *ra = xasprintf("net/ipv6/conf/%s/accept_ra", name);
        native_sysctl(ra, "0");
        unsigned flags = IFF_UP | (promisc ? IFF_PROMISC : 0);
        if (set_flags(host, out->index, flags, flags, 0, "set bridge up", e) < 0)
                return err_wrap(e, "bridge %s", name);
        out->up = true;
        return 0;
}

static void put_addr(struct nlmsghdr *nlh, uint32_t addr, int prefix, bool brd)
{
        uint32_t a = htonl(addr);
        mnl_attr_put(nlh, IFA_LOCAL, 4, &a);
        mnl_attr_put(nlh, IFA_ADDRESS, 4, &a);
        if (brd && prefix < 31) {
                /* vishvananda/netlink adds the broadcast address for IPv4. */
                uint32_t b = htonl(addr | ~native_mask(prefix));
                mnl_attr_put(nlh, IFA_BROADCAST, 4, &b);
        }
}

static struct nlmsghdr *addr_req(char *buf, int type, int flags, int index, int prefix)
{
        memset(buf, 0, NLBUF);
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = NLM_F_REQUEST | flags;
        struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
        ifa->ifa_family = AF_INET;
        ifa->ifa_prefixlen = (unsigned char)prefix;
        ifa->ifa_index = (unsigned)index;
        return nlh;
}

struct addr_q {
        int index;
        struct native_ip *v;
        size_t max, n;
};

static int addr_attr_cb(const struct nlattr *a, void *data)
{
        const struct nlattr **tb = data;
        if (mnl_attr_type_valid(a, IFA_MAX) > 0)
                tb[mnl_attr_get_type(a)] = a;
        return MNL_CB_OK;
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
        struct addr_q *q = data;
        const struct nlattr *tb[IFA_MAX + 1] = {0};
        struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
        if ((int)ifa->ifa_index != q->index || ifa->ifa_family != AF_INET || q->n >= q->max)
                return MNL_CB_OK;
        mnl_attr_parse(nlh, sizeof(*ifa), addr_attr_cb, tb);
        const struct nlattr *a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
        if (!a || mnl_attr_get_payload_len(a) != 4)
                return MNL_CB_OK;
        uint32_t v;
        memcpy(&v, mnl_attr_get_payload(a), 4);
        q->v[q->n].addr = ntohl(v);
        q->v[q->n].prefix = ifa->ifa_prefixlen;
        q->v[q->n].gw = 0;
        q->n++;
        return MNL_CB_OK;
}

static int list_addrs(struct mnl_socket *s, int index, struct native_ip *v, size_t max, size_t *n,
                      struct err *e)
{
        char buf[NLBUF];
        struct nlmsghdr *nlh = addr_req(buf, RTM_GETADDR, NLM_F_DUMP, 0, 0);
        struct addr_q q = {index, v, max, 0};
        if (nl_talk(s, nlh, addr_cb, &q, "dump addresses", e) < 0)
                return -1;
        *n = q.n;
        return 0;
}

int native_bridge_addr(struct mnl_socket *host, const struct native_link *br, const char *br_name,
                       uint32_t addr, int prefix, bool force, struct err *e)
{
        struct native_ip have[32];
        size_t n = 0;
        char buf[NLBUF];
        if (list_addrs(host, br->index, have, ARRAY_SIZE(have), &n, e) < 0)
                return err_wrap(e, "could not get list of IP addresses of %s", br_name);
        for (size_t i = 0; i < n; i++) {
                if (have[i].addr == addr && have[i].prefix == prefix)
                        return 0;
                if (!force) {
                        char s[16];
                        native_ip_str(addr, s);
                        return err_set(e, ERR_PRECONDITION,
                                       "\"%s\" already has an IP address different from %s/%d", br_name, s,
                                       prefix);
                }
                struct nlmsghdr *nlh = addr_req(buf, RTM_DELADDR, 0, br->index, have[i].prefix);
                put_addr(nlh, have[i].addr, have[i].prefix, false);
                if (nl_talk(host, nlh, NULL, NULL, "delete address", e) < 0)
                        return err_wrap(e, "could not remove IP address from %s", br_name);
        }
        struct err ie = ERR_INIT;
        struct nlmsghdr *nlh = addr_req(buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, br->index, prefix);
        put_addr(nlh, addr, prefix, true);
        if (nl_talk(host, nlh, NULL, NULL, "add address", &ie) < 0 && ie.errnum != EEXIST) {
                err_move(e, &ie);
                return err_wrap(e, "could not add IP address to %s", br_name);
        }
        err_clear(&ie);
        /* The bridge keeps this MAC instead of taking its lowest port's. */
        unsigned char mac[6];
        if (sscanf(br->mac, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4],
                   &mac[5]) != 6)
                return 0;
        nlh = req(buf, RTM_NEWLINK, 0, AF_UNSPEC, br->index, NULL);
        mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
        if (nl_talk(host, nlh, NULL, NULL, "set bridge mac", e) < 0)
                return err_wrap(e, "could not set %s's mac", br_name);
        return 0;
}

/* ---------- the veth pair ---------- */

int native_veth_create(struct mnl_socket *pod, const char *ifname, int mtu, int host_ns_fd, char peer[16],
                       struct native_link *cont, struct err *e)
{
        char buf[NLBUF];
        struct err ie = ERR_INIT;
        for (int attempt = 0;; attempt++) {
                uint32_t rnd;
                if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
                        return err_make(e, errno, "getrandom");
                snprintf(peer, 16, "veth%08x", rnd);
                struct nlmsghdr *nlh = req(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, AF_UNSPEC, 0, ifname);
                struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
                ifm->ifi_change = IFF_UP;
                ifm->ifi_flags = IFF_UP;
                if (mtu > 0)
                        mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)mtu);
                struct nlattr *li = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
                mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
                struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
                struct nlattr *pa = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
                /* The peer's attributes follow its own ifinfomsg. */
                struct ifinfomsg *pi = mnl_nlmsg_get_payload_tail(nlh);
                memset(pi, 0, sizeof(*pi));
                pi->ifi_family = AF_UNSPEC;
                nlh->nlmsg_len += MNL_ALIGN(sizeof(*pi));
                mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
                mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)host_ns_fd);
                if (mtu > 0)
                        mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)mtu);
                mnl_attr_nest_end(nlh, pa);
                mnl_attr_nest_end(nlh, data);
                mnl_attr_nest_end(nlh, li);
                if (nl_talk(pod, nlh, NULL, NULL, "add veth", &ie) == 0)
                        break;
                /* EEXIST: the random peer name is taken on the host (try
                 * another, as the plugin does), or ifname is in the pod. */
                if (ie.errnum != EEXIST || attempt == 9) {
                        err_move(e, &ie);
                        return err_wrap(e, "failed to make veth pair %s", ifname);
                }
                struct native_link l;
                if (native_link_get(pod, ifname, &l, NULL) == 0)
                        return err_set(e, ERR_EXISTS, "container veth name provided (%s) already exists",
                                       ifname);
                err_clear(&ie);
        }
        if (native_link_get(pod, ifname, cont, e) < 0)
                return -1;
        if (!cont->up && set_flags(pod, cont->index, IFF_UP, IFF_UP, 0, "set veth up", e) < 0)
                return err_wrap(e, "link %s", ifname);
        return 0;
}

int native_port_attach(struct mnl_socket *host, const char *peer, int br_index, bool hairpin,
                       struct native_link *out, struct err *e)
{
        char buf[NLBUF];
        if (native_link_get(host, peer, out, e) < 0)
                return -1;
        if (set_flags(host, out->index, IFF_UP, IFF_UP, br_index, "set veth up on the bridge", e) < 0)
                return err_wrap(e, "failed to connect %s to the bridge", peer);
        if (hairpin) {
                struct nlmsghdr *nlh = req(buf, RTM_SETLINK, 0, AF_BRIDGE, out->index, NULL);
                struct nlattr *pi = mnl_attr_nest_start(nlh, IFLA_PROTINFO);
                /* Without the flag the bridge reads the old binary STP state. */
                pi->nla_type |= NLA_F_NESTED;
                mnl_attr_put_u8(nlh, IFLA_BRPORT_MODE, 1);
                mnl_attr_nest_end(nlh, pi);
                if (nl_talk(host, nlh, NULL, NULL, "set hairpin", e) < 0)
                        return err_wrap(e, "failed to setup hairpin mode for %s", peer);
        }
        /* The MAC as the plugin reports it: read after joining the bridge. */
        return native_link_get(host, peer, out, e);
}

/* ---------- the pod's side ---------- */

static int add_route(struct mnl_socket *s, int index, const struct native_route *r, uint32_t gw,
                     struct err *e)
{
        char buf[NLBUF] = {0};
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = RTM_NEWROUTE;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND;
        struct rtmsg *rt = mnl_nlmsg_put_extra_header(nlh, sizeof(*rt));
        rt->rtm_family = AF_INET;
        rt->rtm_dst_len = (unsigned char)r->prefix;
        rt->rtm_table = RT_TABLE_MAIN;
        rt->rtm_protocol = RTPROT_BOOT;
        rt->rtm_scope = RT_SCOPE_UNIVERSE;
        rt->rtm_type = RTN_UNICAST;
        uint32_t dst = htonl(r->dst), g = htonl(gw);
        mnl_attr_put(nlh, RTA_DST, 4, &dst);
        if (gw)
                mnl_attr_put(nlh, RTA_GATEWAY, 4, &g);
        mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)index);
        return nl_talk(s, nlh, NULL, NULL, "add route", e);
}

int native_iface_configure(struct mnl_socket *pod, int index, const struct native_ip *ips, size_t n_ips,
                           const struct native_route *routes, size_t n_routes, struct err *e)
{
        char buf[NLBUF];
        for (size_t i = 0; i < n_ips; i++) {
                struct nlmsghdr *nlh =
                        addr_req(buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, index, ips[i].prefix);
                put_addr(nlh, ips[i].addr, ips[i].prefix, true);
                if (nl_talk(pod, nlh, NULL, NULL, "add address", e) < 0) {
                        char s[16];
                        native_ip_str(ips[i].addr, s);
                        return err_wrap(e, "failed to add IP addr %s/%d", s, ips[i].prefix);
                }
        }
        uint32_t gw = n_ips ? ips[0].gw : 0;
        for (size_t i = 0; i < n_routes; i++) {
                if (add_route(pod, index, &routes[i], routes[i].has_gw ? routes[i].gw : gw, e) < 0) {
                        char s[16];
                        native_ip_str(routes[i].dst, s);
                        return err_wrap(e, "failed to add route %s/%d", s, routes[i].prefix);
                }
        }
        return 0;
}

int native_iface_delete(struct mnl_socket *pod, const char *ifname, bool del, struct native_ip *ips,
                        size_t max, size_t *n, struct err *e)
{
        struct native_link l;
        struct err ie = ERR_INIT;
        char buf[NLBUF];
        *n = 0;
        if (native_link_get(pod, ifname, &l, &ie) < 0) {
                if (ie.kind == ERR_NOT_FOUND) {
                        err_clear(&ie);
                        return 0;
                }
                err_move(e, &ie);
                return -1;
        }
        if (list_addrs(pod, l.index, ips, max, n, e) < 0)
                return err_wrap(e, "addresses of %s", ifname);
        if (!del)
                return 0;
        struct nlmsghdr *nlh = req(buf, RTM_DELLINK, 0, AF_UNSPEC, l.index, NULL);
        if (nl_talk(pod, nlh, NULL, NULL, "delete link", &ie) < 0 && ie.errnum != ENODEV) {
                err_move(e, &ie);
                return err_wrap(e, "failed to delete %s", ifname);
        }
        err_clear(&ie);
        return 0;
}
