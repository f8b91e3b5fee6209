/* The native path: a network made only of the reference plugins bridge
 * (with host-local), loopback and portmap is set up here, over netlink and
 * nftables, without running a plugin. What a pod gets is what the plugins
 * (containernetworking/plugins 1.x) give it: the same bridge, veth pair,
 * addresses, routes, hairpin mode and host-local files, and the same CNI
 * result, cached where the plugins' DEL finds it. Either side can delete a
 * pod the other made. Anything this file does not know (another plugin, an
 * option such as vlan or resolvConf, IPv6) runs the plugins. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "net/native-internal.h"

#define MAX_IPS 8

struct bridge_conf {
        const char *name; /* the network */
        const char *version;
        const char *br;
        bool is_gw, is_default_gw, force_address, ip_masq, hairpin, promisc;
        int64_t mtu;
        yajl_val dns; /* the plugin's "dns", NULL when unset */
        bool dns_set;
        struct native_ipam ipam;
        bool loopback; /* a loopback plugin is in the list */
};

static bool key_in(const char *k, const char *const *known, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!strcmp(k, known[i]))
                        return true;
        return false;
}

static bool dns_set(yajl_val d)
{
        if (!d || !YAJL_IS_OBJECT(d))
                return false;
        for (size_t i = 0; i < d->u.object.len; i++) {
                yajl_val v = d->u.object.values[i];
                if (!strcmp(d->u.object.keys[i], "domain") ? YAJL_IS_STRING(v) && v->u.string[0]
                                                           : YAJL_IS_ARRAY(v))
                        return true;
        }
        return false;
}

static bool get_flag(yajl_val p, const char *key)
{
        bool b = false;
        return json_get_bool(p, key, &b) && b;
}

/* 0 = ours, 1 = run the plugins (*why says why), -1 = a bad config. */
static int conf_native(const struct cni_conf *conf, const char *pod_cidr, bool del, struct bridge_conf *out,
                       char **why, struct err *e)
{
        static const char *const bridge_keys[] = {
                "type",         "name",   "cniVersion", "bridge",      "isGateway",   "isDefaultGateway",
                "forceAddress", "ipMasq", "mtu",        "hairpinMode", "promiscMode", "ipam",
                "capabilities", "dns"};
        static const char *const versions[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0"};
        yajl_val bridge = NULL;

        memset(out, 0, sizeof(*out));
        *why = NULL;
        if (!conf->version || !key_in(conf->version, versions, ARRAY_SIZE(versions))) {
                *why = xasprintf("cniVersion %s", conf->version ? conf->version : "(none)");
                return 1;
        }
        for (size_t i = 0; i < conf->plugins->u.array.len; i++) {
                yajl_val p = conf->plugins->u.array.values[i];
                const char *type = json_get_str(p, "type");
                if (type && !strcmp(type, "bridge") && !bridge) {
                        bridge = p;
                } else if (type && !strcmp(type, "loopback")) {
                        out->loopback = true;
                } else if (type && !strcmp(type, "portmap") && bridge) {
                        /* corrald maps hostPorts itself and gives the plugin no
                         * portMappings: with none, portmap passes the result on. */
                } else {
                        *why = xasprintf("plugin %s", type ? type : "(no type)");
                        return 1;
                }
        }
        if (!bridge) {
                *why = xstrdup("no bridge plugin");
                return 1;
        }
        for (size_t i = 0; i < bridge->u.object.len; i++)
                if (!key_in(bridge->u.object.keys[i], bridge_keys, ARRAY_SIZE(bridge_keys))) {
                        *why = xasprintf("bridge option %s", bridge->u.object.keys[i]);
                        return 1;
                }
        yajl_val ipam = json_get(bridge, "ipam");
        const char *itype = ipam ? json_get_str(ipam, "type") : NULL;
        if (!ipam || !YAJL_IS_OBJECT(ipam) || !itype || strcmp(itype, "host-local")) {
                *why = xasprintf("ipam %s", itype ? itype : "(none)");
                return 1;
        }
        out->name = conf->name;
        out->version = conf->version;
        out->br = json_get_str(bridge, "bridge");
        if (!out->br || !out->br[0])
                out->br = "cni0";
        if (strlen(out->br) >= 16)
                return err_set(e, ERR_INVALID, "bridge name %s is too long", out->br);
        out->is_default_gw = get_flag(bridge, "isDefaultGateway");
        out->is_gw = get_flag(bridge, "isGateway") || out->is_default_gw;
        out->force_address = get_flag(bridge, "forceAddress");
        out->ip_masq = get_flag(bridge, "ipMasq");
        out->hairpin = get_flag(bridge, "hairpinMode");
        out->promisc = get_flag(bridge, "promiscMode");
        (void)json_get_int(bridge, "mtu", &out->mtu);
        out->dns = json_get(bridge, "dns");
        out->dns_set = dns_set(out->dns);
        if (out->hairpin && out->promisc)
                return err_set(e, ERR_INVALID,
                               "cannot set hairpin mode and promiscuous mode at the same time");
        if (del) {
                /* host-local's DEL releases by container id: only the dir matters. */
                const char *dd = json_get_str(ipam, "dataDir");
                out->ipam.dir = path_join(dd && dd[0] ? dd : NATIVE_IPAM_DATA_DIR, conf->name);
                return 0;
        }
        yajl_val caps = json_get(bridge, "capabilities");
        const char *ranges = get_flag(caps, "ipRanges") ? pod_cidr : NULL;
        return native_ipam_parse(ipam, conf->name, ranges, &out->ipam, why, e);
}

/* ---------- the result ---------- */

static void put_ip(struct sbuf *b, uint32_t ip)
{
        char s[16];
        native_ip_str(ip, s);
        json_quote(b, s);
}

static char *result_json(const struct bridge_conf *bc, const struct native_link *br, const char *peer,
                         const struct native_link *host, const char *ifname, const struct native_link *cont,
                         const char *netns, const struct native_ip *ips, size_t n_ips,
                         const struct native_route *routes, size_t n_routes)
{
        bool old = strcmp(bc->version, "1.0.0") != 0; /* 0.3.x and 0.4.0 carry "version" */
        struct sbuf b = {0};
        sbuf_puts(&b, "{\"cniVersion\":");
        json_quote(&b, bc->version);
        sbuf_puts(&b, ",\"interfaces\":[{\"name\":");
        json_quote(&b, bc->br);
        sbuf_printf(&b, ",\"mac\":\"%s\"},{\"name\":", br->mac);
        json_quote(&b, peer);
        sbuf_printf(&b, ",\"mac\":\"%s\"},{\"name\":", host->mac);
        json_quote(&b, ifname);
        sbuf_printf(&b, ",\"mac\":\"%s\",\"sandbox\":", cont->mac);
        json_quote(&b, netns);
        sbuf_puts(&b, "}],\"ips\":[");
        for (size_t i = 0; i < n_ips; i++) {
                char s[16];
                native_ip_str(ips[i].addr, s);
                sbuf_printf(&b, "%s{%s\"interface\":2,\"address\":\"%s/%d\",\"gateway\":", i ? "," : "",
                            old ? "\"version\":\"4\"," : "", s, ips[i].prefix);
                put_ip(&b, ips[i].gw);
                sbuf_putc(&b, '}');
        }
        sbuf_puts(&b, "],\"routes\":[");
        for (size_t i = 0; i < n_routes; i++) {
                char s[16];
                native_ip_str(routes[i].dst, s);
                sbuf_printf(&b, "%s{\"dst\":\"%s/%d\"", i ? "," : "", s, routes[i].prefix);
                if (routes[i].has_gw) {
                        sbuf_puts(&b, ",\"gw\":");
                        put_ip(&b, routes[i].gw);
                }
                sbuf_putc(&b, '}');
        }
        sbuf_puts(&b, "],\"dns\":");
        if (bc->dns_set)
                json_emit(&b, bc->dns);
        else
                sbuf_puts(&b, "{}");
        sbuf_putc(&b, '}');
        return sbuf_steal(&b);
}

/* ---------- ADD ---------- */

struct pod_side {
        const char *ifname;
        int mtu;
        char peer[16];
        struct native_link cont;
        const struct native_ip *ips;
        size_t n_ips;
        const struct native_route *routes;
        size_t n_routes;
};

/* Everything inside the pod's netns in one visit: the veth pair (the peer
 * lands in ours), its sysctls, addresses and routes. */
static int pod_setup(const char *netns, struct pod_side *p, struct err *e)
{
        int saved = -1, ret = -1;
        /* Before any goto: clang refuses a jump past a cleanup variable. */
        cleanup_free char *dad = xasprintf("net/ipv6/conf/%s/accept_dad", p->ifname);
        cleanup_free char *arp = xasprintf("net/ipv4/conf/%s/arp_notify", p->ifname);
        if (net_ns_enter(netns, &saved, e) < 0)
                return -1;
        cleanup_nl struct mnl_socket *pod = nl_open(NULL, NETLINK_ROUTE, e);
        if (!pod)
                goto out;
        if (native_veth_create(pod, p->ifname, p->mtu, saved, p->peer, &p->cont, e) < 0)
                goto out;
        native_sysctl(dad, "0");
        native_sysctl(arp, "1");
        if (native_iface_configure(pod, p->cont.index, p->ips, p->n_ips, p->routes, p->n_routes, e) < 0)
                goto out;
        ret = 0;
out:
        net_ns_leave(&saved);
        return ret;
}

/* Inside the pod's netns: the addresses of `ifname`, then the link goes;
 * loopback's DEL sets lo down. */
int native_pod_teardown(const char *netns, const char *ifname, bool loopback, bool del, struct native_ip *ips,
                        size_t max, size_t *n, struct err *e)
{
        int saved = -1, ret = -1;
        *n = 0;
        if (net_ns_enter(netns, &saved, e) < 0)
                return -1;
        cleanup_nl struct mnl_socket *pod = nl_open(NULL, NETLINK_ROUTE, e);
        if (!pod || native_iface_delete(pod, ifname, del, ips, max, n, e) < 0)
                goto out;
        if (loopback) {
                struct native_link lo;
                char buf[512] = {0};
                if (native_link_get(pod, "lo", &lo, NULL) == 0 && lo.up) {
                        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
                        nlh->nlmsg_type = RTM_NEWLINK;
                        nlh->nlmsg_flags = NLM_F_REQUEST;
                        struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
                        ifm->ifi_index = lo.index;
                        ifm->ifi_change = IFF_UP;
                        (void)nl_talk(pod, nlh, NULL, NULL, "set lo down", NULL);
                }
        }
        ret = 0;
out:
        net_ns_leave(&saved);
        return ret;
}

int native_add(const struct cni_conf *conf, const struct net_cni_args *a, const char *ifname, char **result,
               struct err *e)
{
        struct bridge_conf bc;
        cleanup_free char *why = NULL;
        struct native_ip ips[MAX_IPS];
        struct native_route routes[16];
        size_t n_routes = 0;
        bool allocated = false, linked = false, masq = false;
        int ret = -1;

        *result = NULL;
        int r = conf_native(conf, a->pod_cidr, false, &bc, &why, e);
        if (r != 0) {
                if (r > 0)
                        log_debug("cni", "network %s runs its plugins: %s", conf->name, why);
                return r < 0 ? -1 : 0;
        }
        if (bc.ipam.n_sets > MAX_IPS || bc.ipam.n_routes + bc.ipam.n_sets > ARRAY_SIZE(routes)) {
                log_debug("cni", "network %s runs its plugins: too many ranges or routes", conf->name);
                native_ipam_free(&bc.ipam);
                return 0;
        }
        memcpy(routes, bc.ipam.routes, bc.ipam.n_routes * sizeof(*routes));
        n_routes = bc.ipam.n_routes;

        cleanup_nl struct mnl_socket *host = nl_open(NULL, NETLINK_ROUTE, e);
        struct native_link br, hostl;
        if (!host || native_bridge_ensure(host, bc.br, (int)bc.mtu, bc.promisc, &br, e) < 0)
                goto fail;
        if (native_ipam_alloc(&bc.ipam, a->pod_id, ifname, ips, e) < 0)
                goto fail;
        allocated = true;
        if (bc.is_default_gw) {
                /* The bridge plugin adds a default route via the gateway
                 * unless one with a gateway is there. */
                bool found = false;
                for (size_t i = 0; i < n_routes; i++)
                        found = found || (routes[i].prefix == 0 && routes[i].has_gw);
                if (!found)
                        routes[n_routes++] = (struct native_route){0, 0, true, ips[0].gw};
        }
        struct pod_side ps = {.ifname = ifname,
                              .mtu = (int)bc.mtu,
                              .ips = ips,
                              .n_ips = bc.ipam.n_sets,
                              .routes = routes,
                              .n_routes = n_routes};
        if (pod_setup(a->netns, &ps, e) < 0) {
                linked = ps.cont.index > 0;
                goto fail;
        }
        linked = true;
        if (native_port_attach(host, ps.peer, br.index, bc.hairpin, &hostl, e) < 0)
                goto fail;
        if (bc.is_gw) {
                for (size_t i = 0; i < bc.ipam.n_sets; i++)
                        if (native_bridge_addr(host, &br, bc.br, ips[i].gw, ips[i].prefix, bc.force_address,
                                               e) < 0)
                                goto fail;
                native_sysctl("net/ipv4/ip_forward", "1");
        }
        if (bc.ip_masq) {
                masq = true;
                for (size_t i = 0; i < bc.ipam.n_sets; i++)
                        if (native_masq_add(conf->name, a->pod_id, &ips[i], e) < 0)
                                goto fail;
        }
        /* The bridge's MAC as it is now (it follows its ports until set). */
        if (native_link_get(host, bc.br, &br, e) < 0)
                goto fail;
        *result = result_json(&bc, &br, ps.peer, &hostl, ifname, &ps.cont, a->netns, ips, bc.ipam.n_sets,
                              routes, n_routes);
        ret = 1;
        goto out;
fail:
        err_wrap(e, "network %s (native bridge)", conf->name);
        if (linked) {
                struct native_ip had[MAX_IPS];
                size_t n;
                (void)native_pod_teardown(a->netns, ifname, false, true, had, MAX_IPS, &n, NULL);
        }
        if (masq) {
                uint32_t v[MAX_IPS];
                for (size_t i = 0; i < bc.ipam.n_sets; i++)
                        v[i] = ips[i].addr;
                (void)native_masq_del(conf->name, a->pod_id, v, bc.ipam.n_sets, NULL);
        }
        if (allocated)
                (void)native_ipam_release(bc.ipam.dir, a->pod_id, ifname, NULL);
out:
        native_ipam_free(&bc.ipam);
        return ret;
}

/* ---------- DEL ---------- */

int native_del(const struct cni_conf *conf, const struct net_cni_args *a, const char *netns,
               const char *ifname, const char *prev_result, const char *cache_path, struct err *e)
{
        struct bridge_conf bc;
        cleanup_free char *why = NULL;
        struct native_ip had[MAX_IPS];
        size_t n = 0;

        int r = conf_native(conf, NULL, true, &bc, &why, e);
        if (r != 0) {
                if (r > 0)
                        log_debug("cni", "network %s runs its plugins: %s", conf->name, why);
                return r < 0 ? -1 : 0;
        }
        int ret = -1;
        /* Deferred: the addresses now (for the masquerade rule), the link's
         * deletion and then the address's release in a thread, holding the
         * netns open: no address is handed out again while its veth lives. */
        cleanup_close int nsfd = -1;
        bool defer = a->defer_link_delete && cache_path && netns && netns[0];
        if (defer && (nsfd = open(netns, O_RDONLY | O_CLOEXEC)) < 0)
                defer = false;
        if (netns && netns[0] &&
            native_pod_teardown(netns, ifname, bc.loopback && !defer, !defer, had, MAX_IPS, &n, e) < 0)
                goto out;
        if (!defer && native_ipam_release(bc.ipam.dir, a->pod_id, ifname, e) < 0)
                goto out;
        if (bc.ip_masq) {
                uint32_t v[MAX_IPS];
                size_t m = 0;
                for (size_t i = 0; i < n; i++)
                        v[m++] = had[i].addr;
                if (m == 0 && prev_result) {
                        /* The netns is gone: the addresses come from the result. */
                        struct net_cni_result res;
                        if (net_cni_result_parse(prev_result, strlen(prev_result), &res, NULL) == 0) {
                                for (size_t i = 0; i < res.n_ips && m < MAX_IPS; i++)
                                        if (res.ips[i].family == AF_INET &&
                                            native_ip_parse(res.ips[i].ip, &v[m]) == 0)
                                                m++;
                                net_cni_result_free(&res);
                        }
                }
                if (native_masq_del(conf->name, a->pod_id, v, m, e) < 0)
                        goto out;
        }
        ret = 1;
        if (defer) {
                struct native_del_job j = {.nsfd = steal_fd(&nsfd),
                                           .ifname = xstrdup(ifname),
                                           .loopback = bc.loopback,
                                           .ipam_dir = xstrdup(bc.ipam.dir),
                                           .pod_id = xstrdup(a->pod_id),
                                           .cache_path = xstrdup(cache_path)};
                ret = native_defer_start(&j, e) < 0 ? -1 : 2;
        }
out:
        if (ret < 0)
                err_wrap(e, "network %s (native bridge) DEL", conf->name);
        native_ipam_free(&bc.ipam);
        return ret;
}
