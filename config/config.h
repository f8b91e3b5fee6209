/* config: corrald's configuration (/etc/corral/corral.json).
 *
 * Every key has a compiled-in default, so corrald runs with no file at all;
 * a file only names what differs. docs/config.md lists every key. A typo
 * or a value of the wrong type is an error naming the full key path and
 * the file (with "did you mean" when a known key is one edit away): a
 * daemon silently ignoring a misspelt "insecure" is worse than one that
 * refuses to start.
 *
 * Usage:
 *     struct cfg c;
 *     cfg_init_defaults(&c);
 *     if (cfg_load(&c, "/etc/corral/corral.json", false, e) < 0) ...
 *     ...
 *     cfg_clear(&c);
 */
#ifndef CORRAL_CONFIG_H
#define CORRAL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

#define CFG_DEFAULT_PATH "/etc/corral/corral.json"

enum cfg_log_format { CFG_LOG_LOGFMT = 0, CFG_LOG_JSON = 1 };
enum cfg_cgroup_driver { CFG_CGROUP_AUTO = 0, CFG_CGROUP_CGROUPFS = 1, CFG_CGROUP_SYSTEMD = 2 };
enum cfg_runtime_type { CFG_RUNTIME_NAMESPACE = 0, CFG_RUNTIME_VM = 1, CFG_RUNTIME_OCI = 2 };
enum cfg_vmm { CFG_VMM_QEMU = 0, CFG_VMM_CLOUD_HYPERVISOR = 1 };
/* = enum vm_share_type */
enum cfg_share { CFG_SHARE_AUTO = 0, CFG_SHARE_9P = 1, CFG_SHARE_VIRTIOFS = 2 };

/* registries."<host[:port]>" */
struct cfg_registry {
        char *host;     /* the key, e.g. "docker.io" or "myreg:5000" */
        char **mirrors; /* NULL-terminated URLs, tried in order before the origin; never NULL */
        bool insecure;  /* plain HTTP allowed and TLS verification skipped */
        char *ca_file;  /* extra CA bundle ("" = system CAs) */
};

/* runtimes."<handler>" (the CRI runtime_handler) */
struct cfg_runtime {
        char *name;     /* "" is the default handler */
        int type;       /* enum cfg_runtime_type */
        int vmm;        /* enum cfg_vmm */
        char *vmm_path; /* "" = look the VMM binary up in PATH */
        char *kernel;   /* resolved: "" in the file means <root>/vm/vmlinux (vm handlers) */
        char *initrd;   /* resolved: "" in the file means <root>/vm/initramfs.img (vm handlers) */
        uint32_t cpus;
        uint32_t memory_mib;
        uint32_t agent_timeout_seconds;
        int share;            /* enum cfg_share: how container files reach the guest */
        char *virtiofsd_path; /* "" = /usr/libexec/virtiofsd, /usr/lib/qemu/virtiofsd, PATH */
        char *runtime_path;   /* oci handlers: the OCI runtime binary (absolute) */
};

struct cfg {
        char *path; /* the file that was applied; NULL when only defaults */

        char *root;        /* persistent state: store, content, snapshots */
        char *state;       /* runtime state: sockets, namespaces (tmpfs) */
        char *listen;      /* "unix:///path" or "/path" */
        int log_level;     /* enum log_level */
        int log_format;    /* enum cfg_log_format */
        int cgroup_driver; /* enum cfg_cgroup_driver */
        uint64_t max_message_bytes;

        struct {
                char *conf_dir;
                char **bin_dirs; /* NULL-terminated, never NULL */
                char *cache_dir; /* resolved: "" in the file means <root>/cni */
                bool native;     /* the reference plugins run in-process (net/native.c) */
        } cni;

        struct {
                char *address;
                uint32_t port;  /* 0 = ephemeral */
                char *tls_cert; /* both or neither */
                char *tls_key;
                uint32_t token_ttl_seconds;
        } streaming;

        struct cfg_registry *registries;
        size_t n_registries;

        struct {
                uint32_t max_concurrent_downloads;
                uint32_t pull_progress_timeout_seconds; /* 0 = never time out */
                bool gc_on_remove;
        } image;

        struct cfg_runtime *runtimes; /* runtimes[0] is always the default handler "" */
        size_t n_runtimes;
        char *default_runtime; /* handler used when a pod names none ("" = the "" handler) */

        struct {
                char *address; /* host:port for Prometheus; "" = disabled */
        } metrics;
};

/* The compiled-in defaults (every field allocated; release with cfg_clear). */
void cfg_init_defaults(struct cfg *c);
/* Apply the JSON file at `path` over *c (normally fresh defaults). A
 * missing file is ERR_NOT_FOUND when must_exist, else leaves *c as it was
 * (paths still resolved). Unknown keys, wrong types, bad values: ERR_INVALID
 * naming the key path and the file. On error *c is unchanged. */
int cfg_load(struct cfg *c, const char *path, bool must_exist, struct err *e);
/* Same, from a buffer; `what` names it in errors (a file name). */
int cfg_load_buffer(struct cfg *c, const char *buf, size_t len, const char *what, struct err *e);
/* Deep copy. */
void cfg_copy(struct cfg *dst, const struct cfg *src);
void cfg_clear(struct cfg *c);
/* The effective configuration as one JSON object in the file's format
 * (loading it back yields the same configuration). */
void cfg_to_json(const struct cfg *c, struct sbuf *out);

/* The handler for a CRI runtime_handler; NULL and "" mean the default
 * (default_runtime). NULL when there is no such handler. */
const struct cfg_runtime *cfg_runtime_find(const struct cfg *c, const char *handler);
/* Settings for a registry host ("host" or "host:port"). The Docker Hub names
 * (docker.io, index.docker.io, registry-1.docker.io) find each other's
 * entry. NULL when the host has none (use the defaults: TLS, no mirrors). */
const struct cfg_registry *cfg_registry_find(const struct cfg *c, const char *host);
/* The socket path of `listen` (without "unix://"). */
const char *cfg_listen_path(const struct cfg *c);

#endif
