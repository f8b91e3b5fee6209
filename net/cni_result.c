/* CNI results: 0.3.0 .. 1.0.0 (ips / interfaces / routes / dns) and 0.2.0
 * (ip4 / ip6), and picking the pod's IPs out of one. */
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <yajl/yajl_tree.h>

#include "net/net-internal.h"

static char **str_array(yajl_val v)
{
        char **out = NULL;
        if (!v || !YAJL_IS_ARRAY(v))
                return NULL;
        for (size_t i = 0; i < v->u.array.len; i++)
                if (YAJL_IS_STRING(v->u.array.values[i]))
                        strv_push(&out, v->u.array.values[i]->u.string);
        return out;
}

static void add_route(struct net_cni_result *r, yajl_val o)
{
        const char *dst = json_get_str(o, "dst");
        if (!dst)
                return;
        r->routes = xrealloc(r->routes, (r->n_routes + 1) * sizeof(*r->routes));
        r->routes[r->n_routes].dst = xstrdup(dst);
        r->routes[r->n_routes].gw = xstrdup(json_get_str(o, "gw"));
        r->n_routes++;
}

static int add_ip(struct net_cni_result *r, const char *cidr, const char *gw, int iface, struct err *e)
{
        char ip[64];
        const char *slash = strchr(cidr, '/');
        size_t n = slash ? (size_t)(slash - cidr) : strlen(cidr);
        unsigned char bin[16];
        if (n >= sizeof(ip))
                return err_set(e, ERR_INVALID, "CNI result: bad address %s", cidr);
        memcpy(ip, cidr, n);
        ip[n] = '\0';
        int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
        if (inet_pton(family, ip, bin) != 1)
                return err_set(e, ERR_INVALID, "CNI result: bad address %s", cidr);
        r->ips = xrealloc(r->ips, (r->n_ips + 1) * sizeof(*r->ips));
        struct net_cni_ip *x = &r->ips[r->n_ips++];
        x->family = family;
        x->address = xstrdup(cidr);
        x->ip = xstrdup(ip);
        x->gateway = xstrdup(gw);
        x->interface = iface;
        return 0;
}

int net_cni_result_parse(const char *json, size_t len, struct net_cni_result *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        yajl_val t = json_parse(json, len, "CNI result", e);
        if (!t)
                return -1;
        if (!YAJL_IS_OBJECT(t)) {
                yajl_tree_free(t);
                return err_set(e, ERR_INVALID, "CNI result: not a JSON object");
        }
        out->cni_version = xstrdup(json_get_str(t, "cniVersion"));
        out->json = xstrndup(json, len);

        yajl_val v = json_get(t, "interfaces");
        for (size_t i = 0; v && YAJL_IS_ARRAY(v) && i < v->u.array.len; i++) {
                yajl_val o = v->u.array.values[i];
                out->ifaces = xrealloc(out->ifaces, (out->n_ifaces + 1) * sizeof(*out->ifaces));
                struct net_cni_iface *f = &out->ifaces[out->n_ifaces++];
                f->name = xstrdup(json_get_str(o, "name"));
                f->mac = xstrdup(json_get_str(o, "mac"));
                const char *sb = json_get_str(o, "sandbox");
                f->sandbox = sb && sb[0] ? xstrdup(sb) : NULL;
        }
        v = json_get(t, "ips");
        for (size_t i = 0; v && YAJL_IS_ARRAY(v) && i < v->u.array.len; i++) {
                yajl_val o = v->u.array.values[i];
                const char *addr = json_get_str(o, "address");
                int64_t idx = -1;
                if (!json_get_int(o, "interface", &idx) || idx < 0 || (size_t)idx >= out->n_ifaces)
                        idx = -1;
                if (!addr || add_ip(out, addr, json_get_str(o, "gateway"), (int)idx, e) < 0) {
                        if (!addr)
                                err_set(e, ERR_INVALID, "CNI result: ip without address");
                        goto fail;
                }
        }
        /* 0.2.0: "ip4" / "ip6" objects with their own routes. */
        const char *old[] = {"ip4", "ip6"};
        for (size_t i = 0; i < 2; i++) {
                yajl_val o = json_get(t, old[i]);
                const char *addr = json_get_str(o, "ip");
                if (!addr)
                        continue;
                if (add_ip(out, addr, json_get_str(o, "gateway"), -1, e) < 0)
                        goto fail;
                yajl_val rs = json_get(o, "routes");
                for (size_t j = 0; rs && YAJL_IS_ARRAY(rs) && j < rs->u.array.len; j++)
                        add_route(out, rs->u.array.values[j]);
        }
        v = json_get(t, "routes");
        for (size_t i = 0; v && YAJL_IS_ARRAY(v) && i < v->u.array.len; i++)
                add_route(out, v->u.array.values[i]);
        v = json_get(t, "dns");
        if (v && YAJL_IS_OBJECT(v)) {
                out->dns.servers = str_array(json_get(v, "nameservers"));
                out->dns.searches = str_array(json_get(v, "search"));
                out->dns.options = str_array(json_get(v, "options"));
                out->dns_domain = xstrdup(json_get_str(v, "domain"));
        }
        yajl_tree_free(t);
        return 0;
fail:
        yajl_tree_free(t);
        net_cni_result_free(out);
        return -1;
}

void net_cni_result_free(struct net_cni_result *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n_ips; i++) {
                free(r->ips[i].address);
                free(r->ips[i].ip);
                free(r->ips[i].gateway);
        }
        for (size_t i = 0; i < r->n_ifaces; i++) {
                free(r->ifaces[i].name);
                free(r->ifaces[i].mac);
                free(r->ifaces[i].sandbox);
        }
        for (size_t i = 0; i < r->n_routes; i++) {
                free(r->routes[i].dst);
                free(r->routes[i].gw);
        }
        free(r->ips);
        free(r->ifaces);
        free(r->routes);
        strv_free(r->dns.servers);
        strv_free(r->dns.searches);
        strv_free(r->dns.options);
        free(r->dns_domain);
        free(r->cni_version);
        free(r->json);
        memset(r, 0, sizeof(*r));
}

char **net_cni_result_pod_ips(const struct net_cni_result *r, const char *ifname)
{
        char **out = NULL;
        bool any_on_if = false;
        if (!ifname)
                ifname = "eth0";
        for (size_t i = 0; i < r->n_ips; i++) {
                int f = r->ips[i].interface;
                if (f >= 0 && r->ifaces[f].sandbox && r->ifaces[f].name && !strcmp(r->ifaces[f].name, ifname))
                        any_on_if = true;
        }
        /* IPv4 first: kubelet takes the first IP as the primary one. */
        for (int pass = 0; pass < 2; pass++) {
                for (size_t i = 0; i < r->n_ips; i++) {
                        const struct net_cni_ip *x = &r->ips[i];
                        if ((pass == 0) != (x->family == AF_INET))
                                continue;
                        if (any_on_if) {
                                int f = x->interface;
                                if (f < 0 || !r->ifaces[f].sandbox || !r->ifaces[f].name ||
                                    strcmp(r->ifaces[f].name, ifname))
                                        continue;
                        }
                        strv_push(&out, x->ip);
                }
        }
        if (!out)
                out = xzalloc(sizeof(char *));
        return out;
}
