/* net: the native path for the reference plugins (bridge, host-local,
 * loopback, portmap), shared by native*.c and cni.c only.
 *
 * - native.c       which configs qualify, ADD and DEL, the CNI result
 * - native_ipam.c  host-local's allocator and its files under dataDir
 * - native_link.c  bridge, veth pair, addresses, routes, hairpin (rtnetlink)
 * - native_nft.c   ipMasq as nft rules in table inet corral; removal of
 *                  the bridge plugin's iptables-nft masquerade chains
 *
 * IPv4 only: a config with an IPv6 range runs the plugins. Addresses are
 * kept in host byte order. */
#ifndef CORRAL_NET_NATIVE_INTERNAL_H
#define CORRAL_NET_NATIVE_INTERNAL_H

#include "net/cni-internal.h"

struct native_ip;

/* ---------- ADD and DEL (native.c) ---------- */

/* ADD for the network `conf` when it qualifies: 1 done with *result (the
 * CNI result, as the plugins would print it), 0 when the plugins must run
 * (nothing was done), -1 on error (nothing left behind). */
int native_add(const struct cni_conf *conf, const struct net_cni_args *a, const char *ifname, char **result,
               struct err *e);
/* DEL likewise: 1 done, 0 run the plugins. `netns` "" or NULL when gone;
 * `prev_result` (may be NULL) gives the addresses then. */
int native_del(const struct cni_conf *conf, const struct net_cni_args *a, const char *netns,
               const char *ifname, const char *prev_result, const char *cache_path, struct err *e);
/* native_del returns 2 when the link's deletion was handed to a thread
 * (a->defer_link_delete): it releases the address and unlinks `cache_path`
 * after. */

/* ---------- the deferred part of DEL (native_defer.c) ---------- */

struct native_del_job {
        int nsfd; /* the pod's netns, held open */
        char *ifname;
        bool loopback;
        char *ipam_dir;
        char *pod_id;
        char *cache_path;
};
/* Takes the job (and its fd); on error nothing is left running. */
int native_defer_start(struct native_del_job *j, struct err *e);
/* Wait for the jobs of `pod_id` (NULL: all) to end. */
void native_defer_wait(const char *pod_id);
/* Enter `netns`, delete `ifname` (when del) and give its IPv4 addresses;
 * loopback set down when asked. */
int native_pod_teardown(const char *netns, const char *ifname, bool loopback, bool del, struct native_ip *ips,
                        size_t max, size_t *n, struct err *e);

/* ---------- host-local (native_ipam.c) ---------- */

#define NATIVE_IPAM_DATA_DIR "/var/lib/cni/networks"

struct native_range {
        uint32_t subnet; /* as written (host-local does not mask it) */
        int prefix;
        uint32_t start, end, gw; /* inclusive; defaults filled in */
};

struct native_rangeset {
        struct native_range *r;
        size_t n;
};

struct native_route {
        uint32_t dst;
        int prefix;
        bool has_gw;
        uint32_t gw;
};

struct native_ipam {
        char *dir; /* <dataDir>/<network name> */
        struct native_rangeset *sets;
        size_t n_sets;
        struct native_route *routes;
        size_t n_routes;
};

struct native_ip {
        uint32_t addr;
        int prefix;
        uint32_t gw;
};

/* host-local's "ipam" object of network `net_name`. `ip_ranges` (may be
 * NULL) replaces the ranges, as the ipRanges capability does. Returns 0, or
 * 1 with *why set when host-local would be asked for something this code
 * does not do (IPv6, resolvConf, requested IPs), or -1 on a bad config. */
int native_ipam_parse(yajl_val ipam, const char *net_name, const char *ip_ranges, struct native_ipam *out,
                      char **why, struct err *e);
void native_ipam_free(struct native_ipam *c);
/* One address per range set, as host-local's ADD: round robin from
 * last_reserved_ip.<set>, the gateway skipped, a file <ip> holding
 * "<id>\r\n<ifname>", all under an flock of <dir>/lock. `out` has n_sets
 * entries. An id that already holds an address in a set is an error. */
int native_ipam_alloc(const struct native_ipam *c, const char *id, const char *ifname, struct native_ip *out,
                      struct err *e);
/* host-local's DEL: every file of <dir> holding "<id>\r\n<ifname>" goes,
 * or, when there is none, every file holding just "<id>" (older
 * host-local). A missing dir is fine. */
int native_ipam_release(const char *dir, const char *id, const char *ifname, struct err *e);

/* "a.b.c.d" <-> host order */
int native_ip_parse(const char *s, uint32_t *out);
void native_ip_str(uint32_t ip, char out[16]);
/* "a.b.c.d/n"; the address part is kept as written. */
int native_cidr_parse(const char *s, uint32_t *ip, int *prefix);
static inline uint32_t native_mask(int prefix)
{
        return prefix <= 0 ? 0 : 0xffffffffu << (32 - prefix);
}

/* ---------- links (native_link.c) ---------- */

struct mnl_socket;

/* What RTM_GETLINK tells about one link. */
struct native_link {
        int index;
        bool up;
        char mac[18];
        char kind[16]; /* IFLA_INFO_KIND, "" when none */
        int master;
};

/* Each call talks over `s`, a netlink socket opened in the right netns. */

/* ERR_NOT_FOUND when there is no such link. */
int native_link_get(struct mnl_socket *s, const char *name, struct native_link *out, struct err *e);
/* The bridge, made when missing (MTU if > 0, promisc if asked), up, with
 * accept_ra 0 (the host's /proc/sys: call from the host netns). An
 * existing link of another kind is an error. */
int native_bridge_ensure(struct mnl_socket *host, const char *name, int mtu, bool promisc,
                         struct native_link *out, struct err *e);
/* `addr`/`prefix` on the bridge unless there (another IPv4 address on it
 * is an error unless `force`, which removes it), then the bridge's MAC
 * `br->mac` set again so it stops following its ports. */
int native_bridge_addr(struct mnl_socket *host, const struct native_link *br, const char *br_name,
                       uint32_t addr, int prefix, bool force, struct err *e);
/* A veth pair made over `pod` as `ifname` (up), the peer named veth + 8
 * random hex digits put straight into the netns `host_ns_fd`. */
int native_veth_create(struct mnl_socket *pod, const char *ifname, int mtu, int host_ns_fd, char peer[16],
                       struct native_link *cont, struct err *e);
/* The host end: up, a port of bridge `br_index`, hairpin mode when asked. */
int native_port_attach(struct mnl_socket *host, const char *peer, int br_index, bool hairpin,
                       struct native_link *out, struct err *e);
/* The addresses on link `index` (with broadcast), then the routes; a route
 * without a gateway goes via the gateway of the first address. */
int native_iface_configure(struct mnl_socket *pod, int index, const struct native_ip *ips, size_t n_ips,
                           const struct native_route *routes, size_t n_routes, struct err *e);
/* The IPv4 addresses of `ifname` (up to `max`), then, when `del`, the link
 * is deleted (its veth peer goes with it). A missing link gives *n = 0. */
int native_iface_delete(struct mnl_socket *pod, const char *ifname, bool del, struct native_ip *ips,
                        size_t max, size_t *n, struct err *e);
/* Write `val` to /proc/sys/<key> of the calling thread's netns; errors
 * are ignored as the plugins ignore them. */
void native_sysctl(const char *key, const char *val);

/* ---------- masquerade (native_nft.c) ---------- */

/* ipMasq for one pod address: an nft rule in table inet corral tagged with
 * the pod (see nft_masq_add), and the plugin's CNI-<hash> chain, empty, in
 * table ip nat so that the plugins' DEL finds what it expects. */
int native_masq_add(const char *net_name, const char *pod_id, const struct native_ip *ip, struct err *e);
/* Removes the pod's rules from table inet corral, and for each of `ips`
 * what the bridge plugin's ipMasq made with iptables-nft: the rule in
 * table ip nat, chain POSTROUTING, matching the address and jumping to a
 * CNI-* chain, and that chain (or our empty one). Idempotent. */
int native_masq_del(const char *net_name, const char *pod_id, const uint32_t *ips, size_t n, struct err *e);

#endif
