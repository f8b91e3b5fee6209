/* runtime: namespace containers. clone3/setns, mounts and pivot_root, cgroups
 * v1 and v2, capabilities (libcap), seccomp (libseccomp), user switching.
 *
 * Nothing here knows protobuf: cri/ translates CRI into `struct rt_spec`,
 * corrald writes it as `<bundle>/spec.json` (rt_spec_to_json) and the shim
 * reads it back (rt_spec_from_json) and calls rt_container_create/start.
 *
 * Ownership: every string and array in these structs is owned by the struct
 * and freed by the matching *_free. Arrays are pointer + count; string
 * vectors (char **) are NULL-terminated (util strv_*).
 *
 * Processes: rt_container_create and rt_exec fork; the created process is a
 * child of the caller (it must waitpid() it). They are meant to be called
 * from a single-threaded process (the shim); the child uses malloc before it
 * execs, as crun does.
 */
#ifndef CORRAL_RUNTIME_H
#define CORRAL_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/util.h"

/* ---------- the spec ---------- */

enum rt_ns_type {
        RT_NS_MNT = 0,
        RT_NS_PID,
        RT_NS_NET,
        RT_NS_IPC,
        RT_NS_UTS,
        RT_NS_USER,
        RT_NS_CGROUP,
        RT_NS_COUNT,
};

enum rt_ns_mode {
        RT_NS_HOST = 0, /* share the caller's namespace */
        RT_NS_NEW,      /* a new one for this container */
        RT_NS_JOIN,     /* setns into `path` (e.g. /run/corral/ns/<pod>/net, /proc/<pid>/ns/pid) */
};

struct rt_namespace {
        enum rt_ns_mode mode;
        char *path; /* RT_NS_JOIN only */
};

/* A mount inside the container. `type` "bind" (or options containing
 * "bind"/"rbind") bind-mounts `source`; a missing bind source is created as
 * a directory (like containerd). Options are mount(8) words: ro, rw, bind,
 * rbind, nosuid, nodev, noexec, relatime, private, rprivate, slave, rslave,
 * shared, rshared, ...; other words go to the filesystem as data
 * ("mode=755", "size=65536k"). "rro" (with "ro") makes every submount
 * read-only too (mount_setattr AT_RECURSIVE; Linux 5.12). A bind with
 * "shared"/"rshared" stays in the peer group of its source's host mount,
 * so mounts propagate both ways when that mount is shared. */
struct rt_mount {
        char *destination; /* absolute path inside the container */
        char *type;        /* "bind", "tmpfs", "proc", "sysfs", "devpts", "mqueue", ... */
        char *source;
        char **options;
};

/* A device node created in the container's /dev, and allowed in the
 * devices cgroup (v1 devices.allow, v2 eBPF) with `permissions` when the
 * container has a cgroup_path. */
struct rt_device {
        char *path; /* "/dev/fuse" */
        char type;  /* 'c', 'b' or 'p' */
        int64_t major;
        int64_t minor;
        uint32_t mode; /* permission bits, 0 -> 0666 */
        uint32_t uid;
        uint32_t gid;
        char *permissions; /* cgroup access "rwm" (NULL -> "rwm") */
};

struct rt_rlimit {
        int resource; /* RLIMIT_NOFILE, ...; JSON uses the name "RLIMIT_NOFILE" */
        uint64_t soft;
        uint64_t hard;
};

/* Capability sets: names ("CAP_NET_RAW", case-insensitive, "CAP_" optional)
 * or decimal numbers. NULL or empty = the empty set (as in OCI).
 * `privileged` in the spec overrides all five with every capability.
 * Every set is clamped to the caller's bounding set: a capability the
 * runtime itself lacks (the host may run it without CAP_SYS_RESOURCE) is
 * left out, not an error (rt_features.caps_missing says which). */
struct rt_caps {
        char **bounding;
        char **effective;
        char **permitted;
        char **inheritable;
        char **ambient;
};

/* ----- seccomp ----- */

enum rt_seccomp_action {
        RT_SECCOMP_ALLOW = 0,
        RT_SECCOMP_ERRNO, /* return -errno_ret (EPERM when 0) */
        RT_SECCOMP_KILL_THREAD,
        RT_SECCOMP_KILL_PROCESS,
        RT_SECCOMP_TRAP,
        RT_SECCOMP_TRACE,
        RT_SECCOMP_LOG,
};

enum rt_seccomp_op {
        RT_SECCOMP_OP_NE = 1,
        RT_SECCOMP_OP_LT,
        RT_SECCOMP_OP_LE,
        RT_SECCOMP_OP_EQ,
        RT_SECCOMP_OP_GE,
        RT_SECCOMP_OP_GT,
        RT_SECCOMP_OP_MASKED_EQ, /* (arg & value) == value_two */
};

struct rt_seccomp_arg {
        unsigned index; /* 0..5 */
        uint64_t value;
        uint64_t value_two;
        enum rt_seccomp_op op;
};

struct rt_seccomp_rule {
        char **names; /* syscall names; unknown names are skipped (as containerd does) */
        enum rt_seccomp_action action;
        unsigned errno_ret;
        struct rt_seccomp_arg *args;
        size_t n_args;
};

struct rt_seccomp {
        enum rt_seccomp_action default_action;
        unsigned default_errno; /* for RT_SECCOMP_ERRNO; 0 -> EPERM */
        char **architectures;   /* "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", ...; NULL = native */
        struct rt_seccomp_rule *rules;
        size_t n_rules;
};

/* containerd's RuntimeDefault: an allow-list, default action ERRNO(EPERM).
 * Blocks unshare/setns/mount/umount/pivot_root/keyctl/add_key/ptrace/bpf/
 * kexec/init_module/... and clone with namespace flags, unless `caps` (the
 * container's bounding set, may be NULL) holds CAP_SYS_ADMIN / CAP_SYS_PTRACE
 * / ..., as containerd does. Caller frees with rt_seccomp_free. */
struct rt_seccomp *rt_seccomp_default_profile(const struct rt_caps *caps);
/* Parse a Docker/OCI seccomp JSON profile (Localhost profiles):
 * {"defaultAction":"SCMP_ACT_ERRNO","architectures":[...],
 *  "syscalls":[{"names":[...],"action":"SCMP_ACT_ALLOW","errnoRet":1,
 *  "args":[{"index":0,"value":1,"valueTwo":0,"op":"SCMP_CMP_EQ"}]}]}.
 * ERR_INVALID naming the field on bad input. */
struct rt_seccomp *rt_seccomp_from_json(const char *buf, size_t len, struct err *e);
void rt_seccomp_free(struct rt_seccomp *s);
/* Compile to BPF once; cached in memory (and on disk under
 * /run/corral/seccomp/<hash>.bpf) by a hash of the profile. Exposed for tests
 * and for warming the cache; create/exec call it themselves. */
int rt_seccomp_compile(const struct rt_seccomp *s, void **bpf, size_t *len, struct err *e);

/* ----- the process ----- */

struct rt_process {
        char **args; /* args[0] is resolved through PATH from `env` when it has no '/' */
        char **env;  /* "KEY=value" */
        char *cwd;   /* NULL -> "/"; must exist in the container (create error otherwise) */
        uint32_t uid;
        uint32_t gid;
        uint32_t *additional_gids;
        size_t n_additional_gids;
        /* When set, overrides uid (and gid unless group_set) from the
         * container's /etc/passwd (after pivot_root), like run_as_username;
         * a numeric string is the uid (gid 0 when /etc/passwd lacks it).
         * Unless strict_groups, the user's groups in /etc/group are added
         * (SupplementalGroupsPolicy Merge). The gid itself is always one of
         * the supplementary groups, as containerd and CRI-O do. */
        char *username;
        bool group_set;     /* gid is explicit (run_as_group, image "user:gid") */
        bool strict_groups; /* SupplementalGroupsPolicy Strict */
        bool tty;           /* stdio fd 0 is a terminal: setsid + TIOCSCTTY */
        bool no_new_privs;
        struct rt_caps caps;
        struct rt_rlimit *rlimits;
        size_t n_rlimits;
        bool has_oom_score_adj;
        int oom_score_adj;      /* clamped to the current value when lowering needs CAP_SYS_RESOURCE */
        char *apparmor_profile; /* accepted and ignored */
};

/* ----- cgroups resources ----- */

struct rt_hugepage_limit {
        char *page_size; /* "2MB", "1GB" */
        uint64_t limit;  /* bytes */
};

struct rt_kv {
        char *key;
        char *value;
};

/* Zero means "not set, leave as is" for every number. */
struct rt_resources {
        uint64_t cpu_shares; /* v1 cpu.shares; v2 cpu.weight via the kubelet formula */
        int64_t cpu_quota;   /* us; < 0 -> unlimited */
        uint64_t cpu_period; /* us */
        char *cpuset_cpus;
        char *cpuset_mems;
        int64_t memory_limit; /* bytes; < 0 -> unlimited */
        int64_t memory_swap;  /* memory+swap total (OCI/memsw semantics); < 0 -> unlimited */
        struct rt_hugepage_limit *hugepages;
        size_t n_hugepages;
        int64_t pids_limit;    /* < 0 -> unlimited */
        struct rt_kv *unified; /* v2 file -> value ("memory.high" -> "1G"); refused on v1 */
        size_t n_unified;
};

struct rt_rootfs {
        /* The root directory. Either already complete (e.g. an overlay the
         * snapshotter mounted), or, with `lowerdirs` set, the (existing or
         * created) directory where an overlay of lowerdirs/upperdir/workdir
         * is mounted inside the container's mount namespace only. */
        char *path;
        char **lowerdirs; /* top first, as overlayfs wants */
        char *upperdir;   /* NULL with lowerdirs -> a read-only overlay */
        char *workdir;
};

struct rt_spec {
        char *id; /* container id, for messages */
        struct rt_rootfs root;
        bool readonly_rootfs;
        char *rootfs_propagation; /* "rprivate" (default), "rslave", "rshared", "private", "slave", "shared"
                                   */
        /* The runtime mounts the standard set itself (proc, /dev tmpfs with
         * null/zero/full/random/urandom/tty/ptmx/fd links, devpts, /dev/shm,
         * /dev/mqueue, sysfs (ro unless privileged), /sys/fs/cgroup (ro));
         * a mount here with the same destination replaces the standard one. */
        struct rt_mount *mounts;
        size_t n_mounts;
        struct rt_device *devices;
        size_t n_devices;
        struct rt_process process;
        struct rt_seccomp *seccomp; /* NULL = unconfined */
        /* Indexed by enum rt_ns_type. The mount namespace is always new for a
         * created container (its mode is ignored). RT_NS_USER NEW needs the maps. */
        struct rt_namespace namespaces[RT_NS_COUNT];
        struct rt_id_map {
                uint32_t container_id;
                uint32_t host_id;
                uint32_t size;
        } * uid_mappings, *gid_mappings;
        size_t n_uid_mappings, n_gid_mappings;
        char *hostname; /* needs a new or joined uts namespace */
        /* Only namespaced sysctls: net.* (needs a non-host net ns),
         * kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* (need a non-host
         * ipc ns). Others: ERR_INVALID naming the sysctl. */
        struct rt_kv *sysctls;
        size_t n_sysctls;
        char **masked_paths;   /* /dev/null bound over files, an empty ro tmpfs over dirs */
        char **readonly_paths; /* bound read-only */
        /* Relative to the controller roots ("/kubepods/burstable/pod<uid>/<id>"),
         * or systemd-driver syntax "parent.slice:prefix:name" (see
         * rt_cgroup_resolve). NULL = stay in the caller's cgroup. */
        char *cgroup_path;
        struct rt_resources resources;
        bool privileged; /* all caps, no seccomp, host /dev, rw sysfs, no masked/readonly paths */
};

struct rt_spec *rt_spec_new(void);
void rt_spec_free(struct rt_spec *s);        /* NULL ok */
void rt_process_clear(struct rt_process *p); /* frees contents, zeroes */
void rt_resources_clear(struct rt_resources *r);
/* JSON (our own schema, stable within a version: written by corrald, read
 * by the shim and the VM agent). Caller frees *out. */
char *rt_spec_to_json(const struct rt_spec *s);
struct rt_spec *rt_spec_from_json(const char *buf, size_t len, struct err *e);
int rt_spec_write_file(const struct rt_spec *s, const char *path, struct err *e);
struct rt_spec *rt_spec_read_file(const char *path, struct err *e);
/* Checks done by create before anything is made (sysctls, namespaces,
 * paths, capability names). ERR_INVALID with the cause. */
int rt_spec_validate(const struct rt_spec *s, struct err *e);

/* ---------- OCI runtime bundles (oci.c) ---------- */

/* The spec as an OCI runtime-spec config.json for runc or crun, with root
 * `rootfs` (mounted already: rt_rootfs_mount); the user name is resolved
 * against it. Caller frees. */
char *rt_spec_to_oci(const struct rt_spec *s, const char *rootfs, struct err *e);
/* The OCI process (`RUNTIME exec --process`) of a command run in that
 * container: its user, capabilities and cwd, `args`, its env with `env`
 * over it. Caller frees. */
char *rt_spec_to_oci_process(const struct rt_spec *s, const char *rootfs, char *const *args, char *const *env,
                             struct err *e);
/* Mount the spec's overlay rootfs at s->root.path on the caller's side (an
 * OCI runtime takes a complete rootfs); nothing for a complete one. */
int rt_rootfs_mount(const struct rt_spec *s, struct err *e);

/* Resolve a user name (or a numeric string) against <rootfs>/etc/passwd and
 * <rootfs>/etc/group, without following symlinks out of rootfs. *groups gets
 * the supplementary gids (caller frees), may be NULL. ERR_NOT_FOUND when the
 * user is unknown. */
int rt_resolve_user(const char *rootfs, const char *name, uint32_t *uid, uint32_t *gid, uint32_t **groups,
                    size_t *n_groups, struct err *e);

/* The identity a process runs with, from /proc/<pid>/status (Uid, Gid,
 * Groups: the real ids), in the ids of its own user namespace (a pod's
 * userns), as the container sees them. A zombie still has it. Caller
 * frees groups. */
struct rt_user {
        uint32_t uid;
        uint32_t gid;
        uint32_t *groups;
        size_t n_groups;
};
int rt_proc_user(pid_t pid, struct rt_user *out, struct err *e);
void rt_user_clear(struct rt_user *u);

/* Capability names the running kernel knows (0 .. cap_last_cap), "CAP_..."
 * (a number for one newer than libcap). NULL-terminated, caller frees
 * (strv_free). What CRI "ALL" means. */
char **rt_caps_all(void);
/* A capability name ("NET_ADMIN", "cap_net_admin", "CAP_NET_ADMIN") or
 * number -> its number, -1 when the kernel does not know it. */
int rt_cap_parse(const char *name);

/* The propagation of the host mount holding `path` (or its nearest
 * existing ancestor): RT_PROP_* bits, 0 for private. *mountpoint (may be
 * NULL) gets that mount's path, for messages; caller frees. */
enum { RT_PROP_SHARED = 1, RT_PROP_SLAVE = 2 };
int rt_mount_propagation(const char *path, unsigned *out, char **mountpoint, struct err *e);

/* ---------- user namespaces ---------- */

/* A new user namespace with these mappings, held only by the returned fd
 * (nsfs, O_CLOEXEC): pin it by bind-mounting /proc/self/fd/<fd>, join it
 * with setns, or give it to idmapped mounts. A pod's containers join it
 * with namespaces[RT_NS_USER] = JOIN its pinned path: they then do all
 * their mounts as host root, with the image's layers and the bind mounts
 * idmapped to it, and enter it just before switching user (setns after
 * pivot_root), so the pod's other namespaces may be owned by it or by the
 * host. The
 * spec's uid/gid mappings must be the namespace's (tmpfs and devpts
 * ownership). Needs CAP_SETUID/CAP_SETGID on the host. */
int rt_userns_new(const struct rt_id_map *uid, size_t n_uid, const struct rt_id_map *gid, size_t n_gid,
                  struct err *e);

/* ---------- create / start ---------- */

/* The container's stdio: fds the child dup2s to 0, 1, 2 (-1 -> /dev/null).
 * For a tty, open a pty (openpty) and pass the slave as all three with
 * spec->process.tty set. The caller keeps its fds (close them after create). */
struct rt_stdio {
        int in;
        int out;
        int err;
};

struct rt_container;

/* Creates the container process, fully set up and waiting to exec:
 * validate; cgroup created and entered (CLONE_INTO_CGROUP on v2); clone3
 * (fallback clone) with the new namespaces; the child joins namespaces,
 * builds the mount namespace and pivot_roots, sets hostname, sysctls,
 * rlimits, oom_score_adj, user, capabilities, no_new_privs, chdir(cwd) and
 * resolves args[0]; then the devices cgroup is set (v1 devices.allow/deny,
 * v2 an eBPF program): containerd's default allow-list plus spec->devices,
 * everything when privileged. Without a cgroup_path there is no device
 * restriction (the caller's cgroup is not ours to change). Any failure is returned (the child's own message,
 * e.g. `chdir to /nope: No such file or directory`) and nothing is left: the child is reaped and the cgroup
 * removed. */
int rt_container_create(const struct rt_spec *spec, const struct rt_stdio *stdio, struct rt_container **out,
                        struct err *e);
/* Loads seccomp and execs args[0]. Returns once execve succeeded (the sync
 * socket closes on exec), or the execve error. */
int rt_container_start(struct rt_container *c, struct err *e);
/* pid in the caller's pid namespace. */
pid_t rt_container_pid(const struct rt_container *c);
/* A pidfd for the process (CLONE_PIDFD / pidfd_open), or -1. Owned by c. */
int rt_container_pidfd(const struct rt_container *c);
/* The resolved cgroup path (systemd syntax expanded), or NULL. */
const char *rt_container_cgroup(const struct rt_container *c);
/* Frees the handle. Before start: kills and reaps the child and removes the
 * cgroup. After start: just the handle (the caller reaps the process and
 * removes the cgroup with rt_cgroup_remove when it is done). */
void rt_container_free(struct rt_container *c);

/* ---------- exec ---------- */

/* Runs `proc` in the namespaces of `target_pid` (every one that differs from
 * the caller's, through /proc/<pid>/ns), in the spec's cgroup (or the
 * target's when spec->cgroup_path is NULL), with the container's security.
 * From `proc`: args (required), env (NULL -> spec env), cwd (NULL -> spec
 * cwd), tty, and the user when proc->username is set or proc->uid/gid are
 * nonzero (else spec->process's user). From spec->process always:
 * capabilities, no_new_privs, rlimits; and spec->seccomp.
 * *out_pid is a child of the caller (waitpid it). Returns after execve
 * succeeded, or with the error (e.g. the binary is missing). */
int rt_exec(pid_t target_pid, const struct rt_spec *spec, const struct rt_process *proc,
            const struct rt_stdio *stdio, pid_t *out_pid, struct err *e);

/* ---------- signals ---------- */

/* True when `sig` sent to `pid` now would be discarded by the kernel: the
 * process ignores it, or it is the init of its PID namespace and has no
 * handler for it (the kernel drops such signals instead of queueing them).
 * False for SIGKILL/SIGSTOP and when /proc cannot tell (e.g. it is gone). */
bool rt_signal_dropped(pid_t pid, int sig);

/* ---------- pod init ---------- */

/* A tiny init holding a new PID namespace for a pod that shares one
 * (namespace_options.pid = POD), without a pause image: pid 1 of the
 * namespace, named "corral-pod-init" (comm; argv "corral-pod-init <name>"
 * where the kernel lets us), reaping zombies, ignoring every signal but
 * SIGKILL. Double-forked: it is not the caller's child (it is reparented
 * to the caller's subreaper, if any, else to init) and outlives the caller;
 * setsid, stdio on /dev/null, no other fd, cwd "/", nothing mounted. It
 * stays in the caller's cgroup: move it with rt_cgroup_enter if wanted.
 * *out_pid is its pid in the caller's namespace; containers join
 * /proc/<pid>/ns/pid (RT_NS_JOIN). Needs CAP_SYS_ADMIN. */
int rt_pod_init_spawn(const char *name, pid_t *out_pid, struct err *e);
/* The same, and the init's pid is written to pid_file (NULL: none) before
 * the call learns it, so that a caller killed meanwhile can still be
 * cleaned up after (rt_pod_init_kill checks that the pid is a pod init). */
int rt_pod_init_spawn_at(const char *name, const char *pid_file, pid_t *out_pid, struct err *e);
/* SIGKILL it, after checking that `pid` is still a pod init (comm and
 * pid 1 of its namespace; ERR_PRECONDITION otherwise, nothing sent). The
 * kernel kills every process of the namespace with it. Waits up to 5 s
 * until the namespace is empty: container processes in it whose parent is
 * outside (the shim) must be reaped by that parent first, else
 * ERR_DEADLINE. A pid that is already gone is success. */
int rt_pod_init_kill(pid_t pid, struct err *e);

/* ---------- cgroups ---------- */

enum rt_cgroup_mode {
        RT_CGROUP_V1_LEGACY = 1, /* only v1 hierarchies */
        RT_CGROUP_V1_HYBRID,     /* v1 controllers + an empty v2 at /sys/fs/cgroup/unified */
        RT_CGROUP_V2_UNIFIED,    /* /sys/fs/cgroup is cgroup2 */
};

/* Detected once (statfs magic of /sys/fs/cgroup) and cached. */
enum rt_cgroup_mode rt_cgroup_mode(void);
const char *rt_cgroup_mode_name(enum rt_cgroup_mode m); /* "v1-legacy", "v1-hybrid", "v2" */
/* Driver name for Status: "cgroupfs-v1", "cgroupfs-v2" or "systemd". */
const char *rt_cgroup_driver_name(void);
/* The systemd driver (cgroup_systemd.c, sd-bus; corrald only: the static
 * shim and agent do not link it): from now on a cgroup path whose last
 * component is a unit ("...slice:prefix:name" -> "<prefix>-<name>.scope", or a
 * ".slice") is a transient systemd unit: rt_cgroup_create starts it over
 * D-Bus (a scope with Delegate=yes, in its parent slice) with the resources
 * as unit properties, rt_cgroup_update sets them, rt_cgroup_remove stops it
 * and waits for the job. Fails, leaving cgroupfs in use, without cgroup v2,
 * without systemd as init or when its bus does not answer. */
int rt_cgroup_systemd_enable(struct err *e);
bool rt_cgroup_systemd_enabled(void);

/* The cgroup v1 hierarchies this process found in /proc/self/mountinfo,
 * as text ("<mount> <controllers>" lines; "" on a v2 host), for a process
 * it starts in the same mount namespace: that one passes it to
 * rt_cgroup_v1_preset() before any other rt_cgroup_ call and reads no
 * mountinfo (which grows with every pod's mounts, and is read under the
 * kernel's global mount lock). */
char *rt_cgroup_v1_layout(void);
void rt_cgroup_v1_preset(const char *layout);

/* Map a cgroup path to the path under the controller roots. Plain paths
 * are made absolute. systemd syntax "parent.slice:prefix:name" becomes
 * "/parent-chain.slice/.../prefix-name.scope" (e.g.
 * "kubepods-burstable-pod1.slice:corral:abc" ->
 * "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/corral-abc.scope");
 * a name ending in ".slice" stays a slice. Without a running systemd the
 * directories are created directly (cgroupfs-style); with systemd running
 * the same is done (no D-Bus transient units) and Status says so. */
int rt_cgroup_resolve(const char *path, char **out, struct err *e);

/* Create the cgroup (all v1 controllers, or v2 with the needed controllers
 * enabled in every ancestor's cgroup.subtree_control) and apply `r`
 * (may be NULL). Existing cgroups are fine. */
int rt_cgroup_create(const char *path, const struct rt_resources *r, struct err *e);
/* Move `pid` into it. */
int rt_cgroup_enter(const char *path, pid_t pid, struct err *e);
/* UpdateContainerResources: apply only the set fields. */
int rt_cgroup_update(const char *path, const struct rt_resources *r, struct err *e);

struct rt_cgroup_stats {
        uint64_t cpu_usage_ns;
        uint64_t memory_usage;       /* bytes */
        uint64_t memory_working_set; /* usage - inactive_file (floored at 0) */
        uint64_t memory_rss;
        uint64_t pids_current;
        uint64_t oom_kills; /* see rt_cgroup_oom_kills */
};
int rt_cgroup_stats(const char *path, struct rt_cgroup_stats *out, struct err *e);
/* The same figures (but oom_kills) from the cgroup's files held open
 * (cgroup_reader.c): one pread per file, for a caller that reads the same
 * cgroups again and again. RT_CGR_PIDS: pids.current too. A read fails
 * once the cgroup is removed; free the reader then. */
struct rt_cgroup_reader;
enum { RT_CGR_PIDS = 1 };
int rt_cgroup_reader_open(const char *path, unsigned flags, struct rt_cgroup_reader **out, struct err *e);
int rt_cgroup_reader_read(struct rt_cgroup_reader *r, struct rt_cgroup_stats *out, struct err *e);
/* How many descriptors it holds. */
int rt_cgroup_reader_fds(const struct rt_cgroup_reader *r);
void rt_cgroup_reader_free(struct rt_cgroup_reader *r);

/* Everything the CRI metrics report of one cgroup (cgroup_metrics.c), each
 * file read once. `have` says which groups could be read; a missing file
 * leaves its figure 0. Limits of "max" are 0. */
enum {
        RT_CGM_CPU = 1,
        RT_CGM_MEMORY = 2,
        RT_CGM_PIDS = 4,
        RT_CGM_IO = 8,
};
struct rt_cgm_io {
        unsigned major, minor;
        uint64_t read_bytes, write_bytes, reads, writes;
};
struct rt_cgroup_metrics {
        unsigned have;
        uint64_t cpu_usage_ns, cpu_user_ns, cpu_system_ns;
        uint64_t cfs_periods, cfs_throttled_periods, cfs_throttled_ns;
        uint64_t cpu_shares, cpu_quota_us, cpu_period_us;
        uint64_t mem_usage, mem_max_usage, mem_working_set, mem_rss, mem_cache;
        uint64_t mem_mapped_file, mem_swap, mem_kernel, mem_failcnt;
        uint64_t mem_limit, mem_reservation, mem_swap_limit;
        uint64_t oom_kills;
        uint64_t processes, threads, threads_max;
        struct rt_cgm_io *io; /* per block device */
        size_t n_io;
};
int rt_cgroup_metrics(const char *path, struct rt_cgroup_metrics *out, struct err *e);
void rt_cgroup_metrics_clear(struct rt_cgroup_metrics *m);
/* The same from given directories (unit tests point them at a fake tree). */
int rt_cgroup_metrics_v2(const char *dir, struct rt_cgroup_metrics *m, struct err *e);
struct rt_cgm_v1_dirs {
        char *cpu, *cpuacct, *memory, *pids, *blkio; /* NULL: not mounted */
};
int rt_cgroup_metrics_v1(const struct rt_cgm_v1_dirs *d, struct rt_cgroup_metrics *m, struct err *e);
/* The parsers: a "key value" line, a line count, v2 io.stat, v1 blkio. */
bool rt_cgm_key(const char *text, const char *key, uint64_t *out);
size_t rt_cgm_count_lines(const char *text);
void rt_cgm_parse_io_stat(const char *text, struct rt_cgroup_metrics *m);
void rt_cgm_parse_blkio(const char *text, bool bytes, struct rt_cgroup_metrics *m);

/* Number of OOM kills in this cgroup so far (v2 memory.events oom_kill;
 * v1 memory.oom_control oom_kill, counting under_oom as 1 on old kernels).
 * The shim reads it when the process exits: > 0 (and killed by SIGKILL)
 * -> reason OOMKilled. */
int rt_cgroup_oom_kills(const char *path, uint64_t *out, struct err *e);
/* An fd that becomes readable (EPOLLIN) on memory events: an eventfd
 * registered through cgroup.event_control (v1) or an inotify watch on
 * memory.events (v2). Drain it (read) and call rt_cgroup_oom_kills. */
int rt_cgroup_oom_fd(const char *path, struct err *e);

/* Pids in the cgroup (cgroup.procs). Caller frees *pids. */
int rt_cgroup_pids(const char *path, pid_t **pids, size_t *n, struct err *e);
/* Kill every process: cgroup.kill on v2, else freeze, kill each pid in
 * cgroup.procs with `sig`, thaw, until empty (SIGKILL) or once (others). */
int rt_cgroup_kill_all(const char *path, int sig, struct err *e);
/* rmdir in every hierarchy, retried for up to `timeout_ms` while processes
 * drain (EBUSY). A missing cgroup is fine. */
int rt_cgroup_remove(const char *path, int timeout_ms, struct err *e);

/* ---------- host features ---------- */

struct rt_features {
        enum rt_cgroup_mode cgroup_mode;
        char *cgroup_controllers; /* usable ones, space separated: "cpu cpuacct memory pids ..." */
        bool cap_sys_resource;    /* false -> oom_score_adj is clamped */
        /* Capabilities the kernel knows that are not in our bounding set:
         * every set a container asks for is clamped to ours (asking for more
         * fails with EPERM). Bit n = capability n. */
        uint64_t caps_missing;
        bool seccomp;
        bool openat2;
        bool clone3;
        bool clone_into_cgroup; /* clone3 and cgroup v2 */
        bool pidfd;
        bool new_mount_api;   /* open_tree / move_mount / mount_setattr */
        bool user_namespaces; /* a user namespace can be made and mapped */
        bool idmap_overlay;   /* an overlay mount takes an idmap itself (informational) */
        bool idmap_layers;    /* overlay over idmapped layers works (Linux 5.19): what pods use */
        /* Pods with their own user namespace (KEP-127) work here:
         * user_namespaces and idmap_layers. Otherwise why not (static). */
        bool userns_pods;
        const char *userns_pods_why;
        bool systemd_running; /* /run/systemd/system exists */
};

/* Detected once and cached; the pointer stays valid. */
const struct rt_features *rt_host_features(void);
/* One-line human summary for Status verbose info. Caller frees. */
char *rt_host_features_string(void);
/* The names of f->caps_missing, space separated ("" for none). Caller frees. */
char *rt_caps_missing_string(const struct rt_features *f);

#endif
