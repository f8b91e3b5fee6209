/* runtime private helpers shared between the files of runtime/. */
#ifndef CORRAL_RUNTIME_INTERNAL_H
#define CORRAL_RUNTIME_INTERNAL_H

#include <sys/types.h>

#include "runtime/runtime.h"

/* ----- devices cgroup rules (cgroup_devices.c) ----- */

enum { DEV_ACC_READ = 1, DEV_ACC_WRITE = 2, DEV_ACC_MKNOD = 4, DEV_ACC_ALL = 7 };

/* One rule, as a line of v1's devices.allow/devices.deny ("c 1:3 rwm"). */
struct dev_rule {
        bool allow;
        char type;       /* 'a' (every device, major/minor ignored), 'c' or 'b' */
        int64_t major;   /* -1 = '*' */
        int64_t minor;   /* -1 = '*' */
        unsigned access; /* DEV_ACC_* */
};

/* A container's rules, last match wins: deny all; containerd's default
 * allow-list without tun/tap (null zero full random urandom tty console
 * ptmx, and 136:* for /dev/pts); then spec->devices with their permissions
 * ("rwm" when NULL; fifos skipped). Privileged: allow all. ERR_INVALID for
 * a bad type or permission string. Caller frees *out. */
int dev_rules_for_spec(const struct rt_spec *s, struct dev_rule **out, size_t *n, struct err *e);
/* "rwm" subset -> DEV_ACC_* (NULL or "" -> all), -1 otherwise. */
int dev_parse_access(const char *s);
/* v1: the rules, in order, to <dir>/devices.allow and devices.deny. */
int dev_v1_write(const char *dir, const struct dev_rule *r, size_t n, struct err *e);
/* v2: the BPF_PROG_TYPE_CGROUP_DEVICE program for the rules (caller frees
 * *out). */
struct bpf_insn;
void dev_bpf_compile(const struct dev_rule *r, size_t n, struct bpf_insn **out, size_t *n_insns);
/* Load it and attach it to the cgroup2 directory `dirfd` (BPF_F_ALLOW_MULTI),
 * then detach the device programs that were attached there before. */
int dev_bpf_attach(int dirfd, const struct dev_rule *r, size_t n, struct err *e);
/* Ids of the device programs attached to the cgroup itself (not inherited). */
int dev_bpf_query(int dirfd, uint32_t *ids, uint32_t cap, uint32_t *n, struct err *e);
/* Apply the spec's rules to the (resolved) cgroup `path` through the
 * host's driver. create calls it once the child has made its /dev nodes. */
int cg_devices_apply(const char *path, const struct rt_spec *s, struct err *e);

/* ----- cgroup driver vtable (crun's libcrun_cgroup_manager idea) ----- */

struct rt_cgroup_ops {
        const char *name;
        /* `root` is the mount of the hierarchy for v2 (tests point it at
         * /sys/fs/cgroup/unified); v1 ignores it and uses every mounted
         * v1 hierarchy. */
        int (*create)(const char *root, const char *path, const struct rt_resources *r, struct err *e);
        int (*enter)(const char *root, const char *path, pid_t pid, struct err *e);
        int (*update)(const char *root, const char *path, const struct rt_resources *r, struct err *e);
        int (*stats)(const char *root, const char *path, struct rt_cgroup_stats *out, struct err *e);
        int (*oom_kills)(const char *root, const char *path, uint64_t *out, struct err *e);
        int (*oom_fd)(const char *root, const char *path, struct err *e);
        int (*pids)(const char *root, const char *path, pid_t **pids, size_t *n, struct err *e);
        int (*kill_all)(const char *root, const char *path, int sig, struct err *e);
        int (*remove)(const char *root, const char *path, int timeout_ms, struct err *e);
        /* Replace the device rules: v1 devices controller, v2 eBPF. */
        int (*devices)(const char *root, const char *path, const struct dev_rule *r, size_t n, struct err *e);
};

extern const struct rt_cgroup_ops rt_cgroup_v1_ops;
extern const struct rt_cgroup_ops rt_cgroup_v2_ops;

/* The ops and root chosen once for this host. */
const struct rt_cgroup_ops *cg_ops(const char **root);
/* The systemd driver's ops once corrald enabled it (cgroup_systemd.c), for
 * paths whose last component is a unit (cg_systemd_is_unit); else NULL. */
extern const struct rt_cgroup_ops *cg_unit_ops;
bool cg_systemd_is_unit(const char *path);
/* A container whose cgroup is a systemd scope (cgroup v2) runs in this
 * child of it, as crun does: systemd rewrites the scope's own files on every
 * daemon-reload (memory.oom.group back to 0 on systemd 252), never those of
 * a delegated child. */
#define CG_SCOPE_LEAF "container"
/* A resolved path that is a scope becomes its leaf (cgroup v2 only). */
void cg_scope_leaf(char **path);
/* Enable in `dir`'s cgroup.subtree_control every controller corral uses that
 * it has (best effort). */
void cg_v2_enable_controllers(const char *dir);
/* kubelet/runc: cpu shares [2, 262144] -> cgroup v2 weight [1, 10000]. */
uint64_t cg_shares_to_weight(uint64_t shares);
/* An O_DIRECTORY fd of the v2 cgroup for CLONE_INTO_CGROUP, or -1 (v1). */
int cg_v2_dirfd(const char *path, struct err *e);
/* The v1 directory of `path` in the hierarchy holding `controller`, or NULL
 * when none is mounted (cgroup_metrics.c). Caller frees. */
char *cg_v1_dir(const char *controller, const char *path);

/* Small file helpers for cgroup files: write a string / read a u64 / read
 * a "key value" line from a flat-keyed file. */
int cg_write(const char *dir, const char *file, const char *value, struct err *e);
int cg_read_u64(const char *dir, const char *file, uint64_t *out, struct err *e);
int cg_read_key(const char *dir, const char *file, const char *key, uint64_t *out, struct err *e);
int cg_read_pids(const char *dir, pid_t **pids, size_t *n, struct err *e);
int cg_rmdir_retry(const char *dir, int timeout_ms, struct err *e);

/* ----- capabilities ----- */

/* Parse a name ("CAP_SYS_ADMIN", "sys_admin") or number; -1 if unknown. */
int caps_parse(const char *name);
/* RLIMIT_NOFILE -> "RLIMIT_NOFILE", NULL when unknown (spec_json.c). */
const char *rlimit_name(int res);
bool caps_has(char *const *set, int cap);
/* Apply in the child: bounding drop, keep caps across setuid done by the
 * caller around user switching, then eff/perm/inh and ambient. */
int caps_drop_bounding(const struct rt_caps *c, bool privileged, struct err *e);
int caps_apply(const struct rt_caps *c, bool privileged, struct err *e);

/* ----- seccomp ----- */

/* Install a compiled filter (SECCOMP_SET_MODE_FILTER). */
int seccomp_install(const void *bpf, size_t len, struct err *e);

/* ----- files inside a root (user.c) ----- */

/* openat2(RESOLVE_IN_ROOT) relative to rootfd; falls back to openat with
 * O_NOFOLLOW on kernels without openat2. */
int openat_in_root(int rootfd, const char *path, int flags, mode_t mode);

/* ----- mounts (child side) ----- */

/* Build the mount namespace under spec->root.path and pivot_root into it. */
int mounts_setup(const struct rt_spec *spec, struct err *e);

/* ----- idmapped mounts for a joined user namespace (idmap.c) ----- */

/* *fd: the spec's user namespace to join (RT_NS_JOIN), or -1 without one. */
int idmap_open_userns(const struct rt_spec *s, int *fd, struct err *e);
/* The host id of container id `id` (65534 when unmapped). */
uint32_t idmap_to_host(const struct rt_id_map *m, size_t n, uint32_t id);
/* Stack an idmapped clone of the mount tree at `path` on `path` itself. */
int idmap_stack(const char *path, int userns_fd, struct err *e);
/* Bind `src` onto `dest` inside the root `rootfd`, idmapped where the
 * filesystem allows, a plain bind otherwise. */
int idmap_bind(const char *src, bool recursive, int userns_fd, int rootfd, const char *dest, struct err *e);
/* Mount data for a filesystem the runtime makes in a userns container:
 * tmpfs owned by the container's root, devpts gid= in host ids. NULL when
 * nothing changes (no user namespace, another type). Caller frees. */
char *idmap_fs_data(const struct rt_spec *s, const char *type, const char *data);
/* Before the rootfs overlay is mounted: idmapped binds of each lower layer
 * over itself (this mount namespace only); the upper's root directory is
 * chowned to the container's root. */
int idmap_layers(const struct rt_spec *s, int userns_fd, struct err *e);
/* Whether an overlay mount takes MOUNT_ATTR_IDMAP itself (*overlay), and
 * whether an overlay over an idmapped layer works (*layers: what
 * containers use; *why, caller frees, says why not). `mapped_root`: the
 * host id container id 0 maps to in `userns_fd`. */
void idmap_probe(int userns_fd, uid_t mapped_root, bool *overlay, bool *layers, char **why);

/* ----- process set-up shared by create and exec (child side) ----- */

struct proc_plan {
        const struct rt_spec *spec;
        char **args;
        char **env;
        const char *cwd;
        bool tty;
        uint32_t uid, gid;
        uint32_t *gids;
        size_t n_gids;
        const char *username;
        bool group_set, strict_groups; /* as in struct rt_process */
        const struct rt_caps *caps;
        bool no_new_privs;
        const void *bpf; /* compiled seccomp, NULL = none */
        size_t bpf_len;
        char *exe; /* args[0] resolved */
};

int proc_stdio(const struct rt_stdio *stdio, bool tty, struct err *e);
int proc_rlimits(const struct rt_process *p, struct err *e);
int proc_oom_score_adj(const struct rt_process *p, struct err *e);
/* User, caps, nnp, cwd, resolve args[0]; seccomp before caps when !nnp. */
int proc_identity(struct proc_plan *pl, struct err *e);
/* Seccomp (when nnp) and execve. Returns only on error. */
int proc_exec(struct proc_plan *pl, struct err *e);

/* ----- sync protocol over the SOCK_SEQPACKET socketpair ----- */

enum {
        SYNC_GO = 'g',    /* parent -> child: cgroup joined, uid maps written */
        SYNC_READY = 'r', /* child -> parent: set up, waiting */
        SYNC_START = 's', /* parent -> child: exec */
        SYNC_PID = 'p',   /* child -> parent: pid of the real process (after a pid ns join) */
        SYNC_ERROR = 'e', /* child -> parent: kind, errno, message */
};

int sync_send(int fd, char type, const void *data, size_t len);
/* Receive one message; returns its type, 0 on EOF, -1 on error (errno).
 * data (may be NULL) gets up to cap bytes, *len the size. */
int sync_recv(int fd, char *data, size_t cap, size_t *len);
/* Child: send the error and _exit(1). */
void sync_fail(int fd, struct err *e) __attribute__((noreturn));
/* Parent: turn an error message into *e. */
int sync_error_to_err(const char *data, size_t len, struct err *e);

/* ----- JSON helpers (spec_json.c) ----- */

struct yajl_val_s;
/* Numbers of any size: yajl keeps the text for values beyond int64. */
bool jv_u64(struct yajl_val_s *v, uint64_t *out);
bool jv_i64(struct yajl_val_s *v, int64_t *out);
char **jv_strv(struct yajl_val_s *v);
void seccomp_to_json(struct sbuf *b, const struct rt_seccomp *s);
/* The same as an OCI config's linux.seccomp: errno values only where OCI takes them. */
void seccomp_to_oci_json(struct sbuf *b, const struct rt_seccomp *s);
struct rt_seccomp *seccomp_from_val(struct yajl_val_s *v, struct err *e);
/* FNV-1a 64 over the canonical JSON: the cache key of compiled filters. */
uint64_t seccomp_hash(const struct rt_seccomp *s);

/* Namespace helpers. */
const char *ns_proc_name(enum rt_ns_type t); /* "mnt", "pid", ... */
int ns_clone_flag(enum rt_ns_type t);

#endif
