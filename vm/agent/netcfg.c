/* Guest network set-up over raw rtnetlink: the agent is linked statically
 * and libmnl ships no archive, and it needs only four messages: link
 * set (up, mtu), address add, route add. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>

#include "vm/agent/agent-internal.h"

/* A request buffer; the header sits at its start. */
struct nlreq {
        char buf[1024] __attribute__((aligned(8)));
};
#define REQ_HDR(r) ((struct nlmsghdr *)(void *)(r)->buf)

static void addattr(struct nlmsghdr *h, int type, const void *data, size_t len)
{
        struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
        a->rta_type = (unsigned short)type;
        a->rta_len = (unsigned short)RTA_LENGTH(len);
        memcpy(RTA_DATA(a), data, len);
        h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

static int nl_talk(struct nlmsghdr *h, const char *what, struct err *e)
{
        cleanup_close int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0)
                return err_make(e, errno, "netlink socket");
        h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
        h->nlmsg_seq = 1;
        struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
        if (sendto(fd, h, h->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return err_make(e, errno, "netlink %s", what);
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0)
                return err_make(e, errno, "netlink %s", what);
        for (struct nlmsghdr *r = (struct nlmsghdr *)buf; NLMSG_OK(r, (size_t)n); r = NLMSG_NEXT(r, n)) {
                if (r->nlmsg_type == NLMSG_ERROR) {
                        struct nlmsgerr *ne = NLMSG_DATA(r);
                        if (ne->error && ne->error != -EEXIST)
                                return err_make(e, -ne->error, "netlink %s", what);
                        return 0;
                }
        }
        return 0;
}

static int link_set(int idx, unsigned mtu, struct err *e)
{
        struct nlreq r = {0};
        REQ_HDR(&r)->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
        REQ_HDR(&r)->nlmsg_type = RTM_NEWLINK;
        struct ifinfomsg *ifi = NLMSG_DATA(REQ_HDR(&r));
        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = idx;
        ifi->ifi_flags = IFF_UP;
        ifi->ifi_change = IFF_UP;
        if (mtu)
                addattr(REQ_HDR(&r), IFLA_MTU, &mtu, sizeof(mtu));
        return nl_talk(REQ_HDR(&r), "set link up", e);
}

/* "10.0.0.2/24" -> family, bytes, prefix. */
static int parse_cidr(const char *s, int *family, unsigned char addr[16], int *plen, struct err *e)
{
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "%s", s);
        char *slash = strchr(tmp, '/');
        if (slash)
                *slash = '\0';
        *family = strchr(tmp, ':') ? AF_INET6 : AF_INET;
        if (inet_pton(*family, tmp, addr) != 1)
                return err_set(e, ERR_INVALID, "bad address %s", s);
        int max = *family == AF_INET ? 32 : 128;
        *plen = max;
        if (slash) {
                char *end;
                long p = strtol(slash + 1, &end, 10);
                if (*end || p < 0 || p > max)
                        return err_set(e, ERR_INVALID, "bad prefix length in %s", s);
                *plen = (int)p;
        }
        return 0;
}

static int addr_add(int idx, const char *cidr, struct err *e)
{
        int fam, plen;
        unsigned char a[16] = {0};
        if (parse_cidr(cidr, &fam, a, &plen, e) < 0)
                return -1;
        struct nlreq r = {0};
        REQ_HDR(&r)->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
        REQ_HDR(&r)->nlmsg_type = RTM_NEWADDR;
        REQ_HDR(&r)->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
        struct ifaddrmsg *ifa = NLMSG_DATA(REQ_HDR(&r));
        ifa->ifa_family = (unsigned char)fam;
        ifa->ifa_prefixlen = (unsigned char)plen;
        ifa->ifa_index = (unsigned)idx;
        size_t alen = fam == AF_INET ? 4 : 16;
        addattr(REQ_HDR(&r), IFA_LOCAL, a, alen);
        addattr(REQ_HDR(&r), IFA_ADDRESS, a, alen);
        if (nl_talk(REQ_HDR(&r), "add address", e) < 0)
                return err_wrap(e, "%s", cidr);
        return 0;
}

static int route_add(int idx, const char *dst, const char *gw, struct err *e)
{
        int fam = AF_INET, plen = 0, gfam;
        unsigned char d[16] = {0}, g[16];
        bool deflt = !dst || !*dst || strcmp(dst, "default") == 0;
        if (!deflt && parse_cidr(dst, &fam, d, &plen, e) < 0)
                return -1;
        if (gw && *gw) {
                int gplen;
                if (parse_cidr(gw, &gfam, g, &gplen, e) < 0)
                        return -1;
                if (deflt)
                        fam = gfam;
        }
        struct nlreq r = {0};
        REQ_HDR(&r)->nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
        REQ_HDR(&r)->nlmsg_type = RTM_NEWROUTE;
        REQ_HDR(&r)->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
        struct rtmsg *rt = NLMSG_DATA(REQ_HDR(&r));
        rt->rtm_family = (unsigned char)fam;
        rt->rtm_dst_len = (unsigned char)plen;
        rt->rtm_table = RT_TABLE_MAIN;
        rt->rtm_protocol = RTPROT_BOOT;
        rt->rtm_type = RTN_UNICAST;
        rt->rtm_scope = (gw && *gw) ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
        size_t alen = fam == AF_INET ? 4 : 16;
        if (!deflt)
                addattr(REQ_HDR(&r), RTA_DST, d, alen);
        if (gw && *gw)
                addattr(REQ_HDR(&r), RTA_GATEWAY, g, alen);
        uint32_t oif = (uint32_t)idx;
        addattr(REQ_HDR(&r), RTA_OIF, &oif, sizeof(oif));
        if (nl_talk(REQ_HDR(&r), "add route", e) < 0)
                return err_wrap(e, "route %s via %s", deflt ? "default" : dst, gw && *gw ? gw : "(link)");
        return 0;
}

/* The interface whose /sys/class/net/<if>/address is `mac`. */
static int find_by_mac(const char *mac, char name[IF_NAMESIZE], struct err *e)
{
        cleanup_dir DIR *d = opendir("/sys/class/net");
        if (!d)
                return err_make(e, errno, "open /sys/class/net");
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char p[300];
                snprintf(p, sizeof(p), "/sys/class/net/%s/address", de->d_name);
                cleanup_free char *a = NULL;
                if (file_read_all(p, &a, NULL, 64, NULL) < 0)
                        continue;
                if (strncasecmp(a, mac, strlen(mac)) == 0) {
                        snprintf(name, IF_NAMESIZE, "%.15s", de->d_name);
                        return 0;
                }
        }
        return err_set(e, ERR_NOT_FOUND, "no interface with MAC %s", mac);
}

int agent_net_setup(const Corral__Agent__V1__SetupNetworkRequest *r, struct err *e)
{
        char name[IF_NAMESIZE] = "eth0";
        if (r->mac && *r->mac) {
                if (find_by_mac(r->mac, name, e) < 0)
                        return -1;
        } else if (r->interface && *r->interface) {
                snprintf(name, sizeof(name), "%.15s", r->interface);
        }
        int lo = (int)if_nametoindex("lo");
        if (lo > 0 && link_set(lo, 0, e) < 0)
                return err_wrap(e, "lo");
        int idx = (int)if_nametoindex(name);
        if (idx <= 0)
                return err_set(e, ERR_NOT_FOUND, "interface %s not found in the guest", name);
        for (size_t i = 0; i < r->n_addresses; i++)
                if (addr_add(idx, r->addresses[i], e) < 0)
                        return err_wrap(e, "%s", name);
        if (link_set(idx, r->mtu, e) < 0)
                return err_wrap(e, "%s", name);
        for (size_t i = 0; i < r->n_routes; i++)
                if (route_add(idx, r->routes[i]->destination, r->routes[i]->gateway, e) < 0)
                        return err_wrap(e, "%s", name);
        if (r->hostname && *r->hostname && sethostname(r->hostname, strlen(r->hostname)) < 0)
                return err_make(e, errno, "sethostname %s", r->hostname);
        return 0;
}
