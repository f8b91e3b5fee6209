/* net: pod networking for corral.
 *
 * - ns.c        pinned pod namespaces (net, ipc, uts) without a pause process
 * - cni.c       CNI 1.0 plugin chains: ADD / DEL / CHECK, result cache, status
 * - native*.c   the reference plugins (bridge, host-local, loopback, portmap)
 *               done in-process, in their own formats (native-internal.h)
 * - cni_conf.c  finding and loading the network configuration
 * - hostport.c  hostPort DNAT with nftables over netlink (libnftnl)
 * - link.c      links over rtnetlink (libmnl): up/down, tap, move, info,
 *               stats, tc ingress + mirred redirect (the VM pod network)
 * - podfiles.c  hostname, hosts and resolv.conf for a pod
 *
 * Errors follow util.h: `struct err *e` last, negative return on failure.
 * A `netns` argument is the path of a pinned network namespace
 * (e.g. /run/corral/ns/<pod>/net) or NULL for the caller's own.
 */
#ifndef CORRAL_NET_H
#define CORRAL_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

/* ---------- pinned namespaces (ns.c) ---------- */

struct net_ns_paths {
        char *net;  /* <dir>/net, NULL when CLONE_NEWNET was not asked for */
        char *ipc;  /* <dir>/ipc */
        char *uts;  /* <dir>/uts */
        char *user; /* <dir>/user, net_ns_pin_userns only */
};

/* Create fresh namespaces for `flags` (any of CLONE_NEWNET, CLONE_NEWIPC,
 * CLONE_NEWUTS) and pin each by a bind mount on <dir>/{net,ipc,uts}. A
 * short-lived child unshares; no process is left behind. The parent of `dir`
 * (the ns root, e.g. /run/corral/ns) is made a private bind mount of itself
 * once, so the pins neither propagate into nor vanish with other mount
 * namespaces. `hostname` (may be NULL) is set in the new uts namespace; `lo`
 * is brought up in the new net namespace. On failure nothing is left. */
int net_ns_pin(const char *dir, int flags, const char *hostname, struct net_ns_paths *out, struct err *e);
/* The same, with the namespaces owned by the user namespace `userns_fd`
 * (the child joins it before unsharing, as runc creates a pod's namespaces
 * inside its userns: a root of the pod may then use them, and sysfs mounts
 * in the netns), which is pinned too, on <dir>/user. */
int net_ns_pin_userns(const char *dir, int flags, const char *hostname, int userns_fd,
                      struct net_ns_paths *out, struct err *e);
/* Unmount and unlink <dir>/{net,ipc,uts,user} and remove `dir`. Idempotent: a
 * missing file or directory is fine. */
int net_ns_unpin(const char *dir, struct err *e);
void net_ns_paths_free(struct net_ns_paths *p);
/* True when `path` is a mounted namespace file (nsfs). */
bool net_ns_is_pinned(const char *path);
/* Switch the calling thread into the netns at `path`. *saved receives an fd
 * of the previous netns for net_ns_leave. */
int net_ns_enter(const char *path, int *saved, struct err *e);
/* Return to the netns saved by net_ns_enter and close it. Aborts if that
 * fails: a thread stuck in a pod's netns would corrupt later work. */
void net_ns_leave(int *saved);

/* ---------- CNI (cni.c, cni_conf.c) ---------- */

struct net_cni;

struct net_cni_opts {
        const char *conf_dir;  /* NULL: /etc/cni/net.d */
        char *const *bin_dirs; /* NULL-terminated; NULL: /opt/cni/bin, /usr/lib/cni */
        const char *cache_dir; /* NULL: /var/lib/corral/cni */
        int timeout_ms;        /* per plugin call; 0: 60 s */
        /* A network of only bridge + host-local, loopback and portmap is set
         * up and torn down in-process (net/native.c) instead of by running
         * the plugins; the result, the cache and the host are the same. */
        bool native;
};

struct net_cni *net_cni_new(const struct net_cni_opts *o, struct err *e);
void net_cni_free(struct net_cni *c);

struct net_cni_status {
        bool ready;
        char *reason;    /* "NoCNIConfig" when not ready */
        char *message;   /* why; NULL when ready */
        char *conf_file; /* the config in use, when ready */
        char *net_name;  /* its network name */
};
/* Re-reads the conf dir (configs may appear after start) and checks that
 * every plugin of the first config exists in a bin dir. Never fails. */
void net_cni_status(struct net_cni *c, struct net_cni_status *out);
void net_cni_status_free(struct net_cni_status *s);

enum net_proto { NET_PROTO_TCP = 0, NET_PROTO_UDP, NET_PROTO_SCTP };
const char *net_proto_name(enum net_proto p); /* "tcp", "udp", "sctp" */

struct net_port_mapping {
        enum net_proto proto;
        const char *host_ip; /* NULL or "" = every local address */
        uint16_t host_port;
        uint16_t container_port;
};

struct net_dns {
        char **servers; /* NULL-terminated, may be NULL */
        char **searches;
        char **options;
};

struct net_bandwidth {
        uint64_t ingress_rate;  /* bits/s; 0 = unlimited */
        uint64_t ingress_burst; /* bits */
        uint64_t egress_rate;
        uint64_t egress_burst;
};

/* One pod's attachment: CNI_CONTAINERID is pod_id, CNI_IFNAME is ifname. */
struct net_cni_args {
        const char *pod_id;
        const char *netns;         /* pinned netns path; for DEL may be gone */
        const char *ifname;        /* NULL: eth0 */
        const char *k8s_namespace; /* CNI_ARGS K8S_POD_NAMESPACE */
        const char *k8s_name;      /* K8S_POD_NAME */
        const char *k8s_uid;       /* K8S_POD_UID */
        /* runtimeConfig, given to plugins that declare the capability */
        const struct net_port_mapping *port_mappings; /* portMappings */
        size_t n_port_mappings;
        const struct net_bandwidth *bandwidth; /* bandwidth */
        const char *pod_cidr;                  /* ipRanges */
        const struct net_dns *dns;             /* dns */
        /* DEL on the native path may return before the veth is deleted (the
         * kernel takes ~20 ms): the address is released, and the cached
         * result removed, once the link is gone. net_cni_settle waits. */
        bool defer_link_delete;
};

struct net_cni_ip {
        int family;    /* AF_INET or AF_INET6 */
        char *address; /* CIDR, e.g. 10.88.0.5/16 */
        char *ip;      /* the address without the prefix */
        char *gateway; /* may be NULL */
        int interface; /* index into interfaces, -1 if absent */
};
struct net_cni_iface {
        char *name;
        char *mac;
        char *sandbox; /* netns path for the pod side, NULL for host side */
};
struct net_cni_route {
        char *dst;
        char *gw; /* may be NULL */
};

struct net_cni_result {
        char *cni_version;
        struct net_cni_ip *ips;
        size_t n_ips;
        struct net_cni_iface *ifaces;
        size_t n_ifaces;
        struct net_cni_route *routes;
        size_t n_routes;
        struct net_dns dns;
        char *dns_domain;
        char *json; /* the final result as the plugins returned it */
};

/* Run ADD for every plugin of the config in order, each with the previous
 * result. Before the first plugin, the config and args are cached under the
 * cache dir, so DEL works after a crash or restart. If a plugin fails, the
 * chain is deleted again (nothing left behind) and the error names the
 * plugin and carries its JSON error code, msg and details. */
int net_cni_add(struct net_cni *c, const struct net_cni_args *a, struct net_cni_result *out, struct err *e);
/* Run DEL in reverse order with the cached config and result (or the current
 * config when nothing is cached), then drop the cache entry. Idempotent;
 * a netns that is gone is fine. `a->netns` may be NULL. */
int net_cni_del(struct net_cni *c, const struct net_cni_args *a, struct err *e);
/* Wait for a deferred DEL of `pod_id` to finish; 1 when its cached result
 * is still there (a DEL did not finish: run it again), 0 otherwise. */
int net_cni_settle(struct net_cni *c, const char *pod_id);
/* CHECK in order with the cached result (config versions >= 0.4.0). */
int net_cni_check(struct net_cni *c, const struct net_cni_args *a, struct err *e);
/* The cached result of a pod's ADD (after a restart, for PodSandboxStatus). */
int net_cni_cached_result(struct net_cni *c, const char *pod_id, struct net_cni_result *out, struct err *e);
/* The pod's IPs: those on the sandbox interface `ifname` (NULL: eth0),
 * else all; first IPv4 first. NULL-terminated, caller frees with strv_free. */
char **net_cni_result_pod_ips(const struct net_cni_result *r, const char *ifname);
/* Parse a CNI result (0.3.0 .. 1.0.0, and 0.2.0's ip4/ip6). */
int net_cni_result_parse(const char *json, size_t len, struct net_cni_result *out, struct err *e);
void net_cni_result_free(struct net_cni_result *r);

/* ---------- hostPorts (hostport.c) ---------- */

/* The nftables table (family inet) holding every hostPort rule. */
#define NET_HOSTPORT_TABLE "corral"

/* Add DNAT rules for a pod in table `table` (NULL: NET_HOSTPORT_TABLE),
 * created on first use with chains prerouting/output (nat, dstnat) and
 * postrouting (nat, srcnat). Every rule carries the comment "corral:<pod_id>".
 * Rules: traffic to host_port on host_ip (or any local address when host_ip
 * is empty) is DNATed to pod_ip:container_port, from outside (prerouting)
 * and from the host itself (output, including 127.0.0.1); postrouting
 * masquerades the pod reaching itself through its hostPort (hairpin) and
 * DNATed traffic from 127.0.0.0/8. For IPv4 mappings that can be reached on
 * 127.0.0.1, route_localnet is set on the host interface routing to pod_ip
 * (the bridge), since the kernel otherwise drops loopback sources there.
 * All rules go in one netlink batch: all or none. */
int net_hostport_add(const char *table, const char *pod_id, const char *pod_ip,
                     const struct net_port_mapping *m, size_t n, struct err *e);
/* Remove every rule tagged with pod_id (the native path's ipMasq rule has
 * the same tag). Idempotent (no table is fine). */
int net_hostport_del(const char *table, const char *pod_id, struct err *e);

struct net_hostport_rule {
        char *pod_id;
        char *chain;
        uint64_t handle;
};
/* Every rule in the table with its pod id (NULL pod_id: all pods). */
int net_hostport_list(const char *table, const char *pod_id, struct net_hostport_rule **out, size_t *n,
                      struct err *e);
void net_hostport_rules_free(struct net_hostport_rule *r, size_t n);
/* Delete the whole table (tests, and a "reset" command). Idempotent. */
int net_hostport_flush(const char *table, struct err *e);

/* ---------- links (link.c) ---------- */

int net_link_set_up(const char *netns, const char *ifname, bool up, struct err *e);
/* Index of `ifname` in `netns`; ERR_NOT_FOUND when absent. */
int net_link_index(const char *netns, const char *ifname, struct err *e);
/* Idempotent: a link that is not there is fine. */
int net_link_delete(const char *netns, const char *ifname, struct err *e);
/* Move `ifname` from netns `from` to netns `to` (either may be NULL). */
int net_link_move(const char *from, const char *ifname, const char *to, struct err *e);
/* A persistent tap (IFF_TAP|IFF_NO_PI, plus IFF_VNET_HDR) created inside
 * `netns`, with MTU `mtu` (0: kernel default), up. A VMM opens it by name. */
int net_link_tap_create(const char *netns, const char *name, int mtu, bool multi_queue, struct err *e);

struct net_link_addr {
        int family;
        char addr[48]; /* text form */
        int prefixlen;
};
struct net_link_info {
        int index;
        int mtu;
        bool up;
        unsigned char mac[6];
        char mac_str[18];
        struct net_link_addr *addrs;
        size_t n_addrs;
};
int net_link_info(const char *netns, const char *ifname, struct net_link_info *out, struct err *e);
void net_link_info_free(struct net_link_info *i);

struct net_link_stats {
        uint64_t rx_bytes, tx_bytes;
        uint64_t rx_packets, tx_packets;
        uint64_t rx_errors, tx_errors;
        uint64_t rx_dropped, tx_dropped;
};
int net_link_stats(const char *netns, const char *ifname, struct net_link_stats *out, struct err *e);
/* Every link of `netns` (NULL: ours) with its counters, from one RTM_GETLINK
 * dump (link_counters.c). Caller frees *out. */
struct net_link_counters {
        char name[16];
        bool loopback, up;
        struct net_link_stats st;
};
int net_links_counters(const char *netns, struct net_link_counters **out, size_t *n, struct err *e);

/* Kata's tcfilter model: an ingress qdisc on `a` and on `b` in `netns`, each
 * with a u32 match-all filter whose action is `mirred egress redirect` to
 * the other, so frames arriving on the CNI veth leave on the tap and the
 * reverse. Idempotent (existing qdiscs are replaced). */
int net_tc_redirect_add(const char *netns, const char *a, const char *b, struct err *e);
/* Remove the ingress qdiscs (and so the filters) of both; missing is fine. */
int net_tc_redirect_del(const char *netns, const char *a, const char *b, struct err *e);
/* True when `ifname` has a mirred redirect filter on its ingress qdisc
 * pointing at `to`. */
int net_tc_redirect_check(const char *netns, const char *ifname, const char *to, bool *found, struct err *e);

/* ---------- pod files (podfiles.c) ---------- */

struct net_podfiles {
        const char *hostname;
        char *const *pod_ips;      /* NULL-terminated, may be NULL */
        const struct net_dns *dns; /* NULL or all empty: host's resolv.conf */
        bool host_network;         /* hosts from the host's /etc/hosts */
        const char *host_resolv;   /* NULL: /etc/resolv.conf */
        const char *host_hosts;    /* NULL: /etc/hosts */
};
/* Write <dir>/hostname, <dir>/hosts and <dir>/resolv.conf, each atomically
 * (mode 0644). */
int net_podfiles_write(const char *dir, const struct net_podfiles *p, struct err *e);
/* Build the texts without writing (caller frees). */
char *net_podfiles_hosts(const struct net_podfiles *p, struct err *e);
char *net_podfiles_resolv(const struct net_podfiles *p, struct err *e);

#endif
