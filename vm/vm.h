/* vm: microVMs for VM pods. A VMM driver (QEMU, cloud-hypervisor) behind
 * one vtable, and the host side of the agent protocol
 * (proto/agent/v1/agent.proto) spoken with corral-agent in the guest.
 *
 * Life of a VM:
 *     struct vm *v;
 *     vm_create(&cfg, &v, e);               nothing runs yet; checks paths
 *     vm_add_share(v, &share, e);           cold-plugged before boot
 *     vm_add_net(v, &net, e);
 *     vm_boot(v, e);                        VMM started, agent answered a ping
 *     vm_agent_exec(vm_agent(v), ...);
 *     vm_shutdown(v, 5000, e);              agent Shutdown -> QMP -> SIGKILL
 *     vm_free(v);                           kills what is left, removes files
 * Any failure of vm_boot leaves nothing: the VMM is killed and reaped, its
 * sockets and files under state_dir are removed.
 *
 * The VMM is a child of the calling process (waitpid/pidfd): the caller is
 * meant to be the per-VM shim. Not thread-safe: one thread per struct vm.
 */
#ifndef CORRAL_VM_H
#define CORRAL_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct err;

enum vm_vmm { VM_VMM_QEMU = 0, VM_VMM_CLOUD_HYPERVISOR = 1 }; /* = enum cfg_vmm */
enum vm_accel { VM_ACCEL_AUTO = 0, VM_ACCEL_KVM, VM_ACCEL_TCG };
/* How host directories reach the guest (= enum cfg_share). AUTO: virtio-fs
 * when a virtiofsd binary is found, else 9p (QEMU only: cloud-hypervisor
 * has no 9p). */
enum vm_share_type { VM_SHARE_AUTO = 0, VM_SHARE_9P = 1, VM_SHARE_VIRTIOFS = 2 };

/* The vsock port corral-agent listens on in the guest (cloud-hypervisor's
 * hybrid vsock, QEMU's vhost-vsock). */
#define VM_AGENT_VSOCK_PORT 1024u

/* In the guest: the pod's shared PID namespace (namespace_options.pid =
 * POD), a bind mount of the agent's pod init's, made when a container first
 * joins it. Container specs name it as the PID namespace to join. */
#define VM_GUEST_POD_PIDNS "/run/corral/pod-pidns"

struct vm_config {
        enum vm_vmm vmm;
        const char *vmm_path;      /* NULL/"": qemu-system-x86_64 or cloud-hypervisor from PATH */
        const char *kernel;        /* uncompressed vmlinux (PVH) */
        const char *initrd;        /* initramfs with corral-agent as /init */
        uint32_t cpus;             /* 0: 1 */
        uint32_t memory_mib;       /* 0: 256 */
        uint32_t agent_timeout_ms; /* boot until the agent answers; 0: 30 s */
        enum vm_accel accel;       /* AUTO: KVM when /dev/kvm works, else TCG */
        const char *state_dir;     /* created if missing; holds qmp.sock, agent.sock,
                                      console.log; keep it short (sun_path is 108 bytes) */
        const char *netns;         /* the VMM runs in this netns (taps live there); NULL: ours */
        const char *extra_cmdline;
        enum vm_share_type share;   /* resolved by vm_create (vm_share_fstype) */
        const char *virtiofsd_path; /* NULL/"": /usr/libexec/virtiofsd (Rust), then
                                       /usr/lib/qemu/virtiofsd (C), then PATH */
};

struct vm_share {
        const char *tag;  /* mount_tag; the agent mounts it at /run/corral/shares/<tag> */
        const char *path; /* host directory */
        bool readonly;
};

struct vm_net {
        const char *tap; /* existing tap in cfg.netns (net_link_tap_create) */
        const char *mac; /* "52:54:00:..."; NULL: derived from the tap name */
};

struct vm;
struct vm_agent;

/* Host capabilities, detected once. */
bool vm_kvm_usable(void); /* /dev/kvm opens and KVM_CREATE_VM succeeds */
/* Non-NULL once an AUTO boot found that KVM creates VMs but a guest does
 * not boot under it (nested or emulated KVM): later AUTO boots in this
 * process use TCG. For Status. */
const char *vm_kvm_broken_reason(void);
/* Why a VMM cannot run here (NULL when it can): for Status verbose info. */
const char *vm_vmm_unavailable_reason(enum vm_vmm vmm, const char *vmm_path);
/* Why a share type cannot be used with a VMM here (NULL when it can); AUTO
 * asks about what AUTO would pick. For Status verbose info. */
const char *vm_share_unavailable_reason(enum vm_vmm vmm, enum vm_share_type share,
                                        const char *virtiofsd_path);
/* What AUTO resolves to here for this VMM (VM_SHARE_9P or VM_SHARE_VIRTIOFS). */
enum vm_share_type vm_share_resolve(enum vm_vmm vmm, enum vm_share_type share, const char *virtiofsd_path);
/* The virtiofsd binary that would be used (caller frees), NULL if none. */
char *vm_virtiofsd_binary(const char *virtiofsd_path);

int vm_create(const struct vm_config *c, struct vm **out, struct err *e);
int vm_add_share(struct vm *v, const struct vm_share *s, struct err *e);
int vm_add_net(struct vm *v, const struct vm_net *n, struct err *e);
/* Start the VMM and wait for the agent (cfg.agent_timeout_ms). With
 * VM_ACCEL_AUTO and a usable /dev/kvm, KVM is tried first; if its guest
 * does not reach the agent within 5 s (or QEMU dies), the boot is redone
 * under TCG within the same timeout. vm_accel_used says which ran. Errors:
 * ERR_NOT_FOUND (kernel/initrd/VMM missing), ERR_DEADLINE (no agent in
 * time), ERR_UNAVAILABLE (the VMM exited during boot; its console log tail
 * is in the message), ERR_DATA_LOSS (malformed agent frames). */
int vm_boot(struct vm *v, struct err *e);
/* The agent connection of a booted VM (owned by v). */
struct vm_agent *vm_agent(struct vm *v);
/* The filesystem type the guest mounts this VM's shares with: "9p" or
 * "virtiofs". */
const char *vm_share_fstype(const struct vm *v);
/* Ask the agent to mount share `tag` with this VM's share type. */
int vm_mount_share(struct vm *v, const char *tag, bool readonly, int timeout_ms, struct err *e);

/* Orderly: agent Shutdown, then QMP system_powerdown, then quit, then
 * SIGKILL, within timeout_ms overall. The VMM is reaped, files removed. */
int vm_shutdown(struct vm *v, int timeout_ms, struct err *e);
/* SIGKILL the VMM and reap it. */
int vm_kill(struct vm *v, struct err *e);
/* Kills what still runs, removes the state files (not the dir if it
 * held other files), frees. NULL ok. */
void vm_free(struct vm *v);

enum vm_state { VM_NEW = 0, VM_RUNNING, VM_STOPPED /* shut down by us */, VM_DIED /* ended on its own */ };
struct vm_status {
        enum vm_state state;
        int wait_status; /* waitpid status once stopped or died */
        char *reason;    /* VM_DIED: "qemu killed by signal 9", ...; owned by v */
};
/* Non-blocking check (waitpid WNOHANG): a VMM that died is reported as
 * VM_DIED with the reason, and its files are cleaned up. */
void vm_status(struct vm *v, struct vm_status *out);
pid_t vm_pid(const struct vm *v); /* 0 when not running */
/* A pidfd of the VMM (readable when it exits) for the caller's epoll, or -1. */
int vm_pidfd(const struct vm *v);
const char *vm_accel_used(const struct vm *v);  /* "kvm", "tcg", or NULL before boot */
const char *vm_console_log(const struct vm *v); /* path of the guest console log */

struct vm_stats {
        pid_t pid;
        uint64_t rss_bytes;           /* VmRSS of the VMM process */
        uint64_t boot_ms;             /* VMM start -> agent ready */
        char vmm_status[32];          /* QMP query-status / vm.info state: "running", "Running", ... */
        uint32_t n_virtiofsd;         /* virtiofsd daemons alive for this VM */
        uint64_t virtiofsd_rss_bytes; /* their VmRSS, summed */
};
int vm_stats(struct vm *v, struct vm_stats *out, struct err *e);

/* ---------- the agent protocol, host side ---------- */

/* Connect to an agent stream at a unix socket `path` (a QEMU chardev
 * socket), retrying until `timeout_ms`. */
int vm_agent_connect(const char *path, int timeout_ms, struct vm_agent **out, struct err *e);
/* Take an already connected fd (tests, vsock). */
struct vm_agent *vm_agent_from_fd(int fd);
/* Hybrid vsock (cloud-hypervisor): connect to the unix socket `path`, send
 * "CONNECT <port>\n", expect "OK <port>\n"; the fd is then the guest's
 * stream. ERR_UNAVAILABLE when nobody listens (yet) on either side,
 * ERR_DATA_LOSS on a malformed answer, ERR_DEADLINE after timeout_ms. */
int vm_hvsock_connect(const char *path, uint32_t port, int timeout_ms, int *fd_out, struct err *e);
void vm_agent_free(struct vm_agent *a);
/* Every call takes a timeout (ms, < 0: none) and fails with ERR_DEADLINE
 * when it passes; a malformed frame from the agent is ERR_DATA_LOSS and
 * breaks the connection (later calls fail with ERR_UNAVAILABLE). An error
 * the agent reports comes back with its kind and message. */

struct vm_agent_info {
        char *agent_version;
        char *kernel_release;
        uint64_t uptime_ms;
};
int vm_agent_ping(struct vm_agent *a, int timeout_ms, struct vm_agent_info *out, struct err *e);
void vm_agent_info_clear(struct vm_agent_info *i);

struct vm_route {
        const char *dst; /* CIDR or NULL/"default" */
        const char *gw;  /* NULL: on-link */
};
struct vm_net_config {
        const char *ifname;           /* NULL: eth0 */
        const char *mac;              /* pick by MAC instead */
        const char *const *addresses; /* CIDRs, NULL-terminated */
        const struct vm_route *routes;
        size_t n_routes;
        uint32_t mtu;
        const char *hostname;
};
int vm_agent_setup_network(struct vm_agent *a, const struct vm_net_config *n, int timeout_ms, struct err *e);
/* The pod's sysctls, written in the guest (the guest kernel is the pod's
 * own: any key). The first key the guest refuses fails the call, named. */
int vm_agent_sysctls(struct vm_agent *a, char *const *keys, char *const *values, size_t n, int timeout_ms,
                     struct err *e);
int vm_agent_mount_share(struct vm_agent *a, const char *tag, bool readonly, int timeout_ms, struct err *e);
/* fstype: "9p" or "virtiofs" (vm_share_fstype). */
int vm_agent_mount_share_fs(struct vm_agent *a, const char *tag, const char *fstype, bool readonly,
                            int timeout_ms, struct err *e);

/* spec_json: rt_spec_to_json(); with share_tag, root.path is relative to
 * the share. The container's stdout/stderr come back as stream data
 * (vm_agent_set_output). */
int vm_agent_create_container(struct vm_agent *a, const char *id, const char *spec_json,
                              const char *share_tag, int timeout_ms, struct err *e);
/* The same with a stdin for the main process, fed with vm_agent_exec_send
 * (exec_id ""); stdin_window (bytes, 0: none) is its flow-control window.
 * A spec with process.tty runs on a pty in the guest (vm_agent_resize). */
int vm_agent_create_container_stdin(struct vm_agent *a, const char *id, const char *spec_json,
                                    const char *share_tag, bool stdin_open, uint32_t stdin_window,
                                    int timeout_ms, struct err *e);
/* Who the process runs as in the guest, when the agent could read it. */
struct vm_agent_user {
        bool has_user;
        uint32_t uid, gid;
        uint32_t *groups; /* caller frees */
        size_t n_groups;
};
/* out may be NULL. */
int vm_agent_start_container(struct vm_agent *a, const char *id, int timeout_ms, struct vm_agent_user *out,
                             struct err *e);
/* UpdateContainerResources in the guest: spec_json's resources (only the
 * set fields) applied to the container's cgroup there. */
int vm_agent_update_resources(struct vm_agent *a, const char *id, const char *spec_json, int timeout_ms,
                              struct err *e);
int vm_agent_signal(struct vm_agent *a, const char *id, int sig, int timeout_ms, struct err *e);
/* Until the container exits (or timeout): its exit code (128+sig if killed). */
int vm_agent_wait(struct vm_agent *a, const char *id, int timeout_ms, int *exit_code, struct err *e);
int vm_agent_remove_container(struct vm_agent *a, const char *id, int timeout_ms, struct err *e);

/* ExecSync: run args (in container `id`, or in the guest when id is NULL),
 * collect output. *out / *err_out are NUL-terminated (caller frees; may be
 * NULL to discard). On timeout the process is killed and ERR_DEADLINE
 * returned. */
int vm_agent_exec(struct vm_agent *a, const char *id, char *const *args, int timeout_ms, char **out,
                  char **err_out, int *exit_code, struct err *e);

struct vm_agent_stats {
        uint64_t cpu_usage_ns, memory_usage, memory_total, memory_available;
        uint32_t pids;
        /* A container's other cgroup figures (0 from an older agent). */
        uint64_t cpu_user_ns, cpu_system_ns, mem_usage, mem_rss, mem_cache, mem_mapped_file, mem_max_usage,
                mem_failcnt, mem_limit, oom_kills, processes, threads;
};
int vm_agent_stats(struct vm_agent *a, const char *id, int timeout_ms, struct vm_agent_stats *out,
                   struct err *e);
/* Ask the guest to power off; returns once the agent acknowledged. */
int vm_agent_shutdown(struct vm_agent *a, int timeout_ms, struct err *e);

/* Container output: called for each StreamData frame that arrives while a
 * call waits, or during vm_agent_poll. stream is 1 (stdout) or 2 (stderr);
 * eof marks the end of that stream. */
typedef void vm_output_fn(void *arg, const char *container_id, const char *exec_id, int stream,
                          const void *data, size_t len, bool eof);
void vm_agent_set_output(struct vm_agent *a, vm_output_fn *fn, void *arg);
/* Read and dispatch frames for up to timeout_ms (stream data only). */
int vm_agent_poll(struct vm_agent *a, int timeout_ms, struct err *e);
/* Asynchronous Wait and Exec, for a caller with its own event loop (the
 * per-VM shim): the request is sent now; the reply goes to `fn` from
 * whichever later call or vm_agent_dispatch reads it. `fn` must not call
 * the agent. error_kind is 0 or the agent's enum err_kind; the pointers
 * are valid during the callback only. */
struct vm_agent_reply {
        int error_kind;
        const char *error;
        int exit_code; /* wait: exit code (128+sig if killed); exec: the command's */
        int signal;    /* wait: the killing signal, 0 if it exited */
        int64_t finished_ns;
        const void *out, *err; /* exec output */
        size_t out_len, err_len;
        bool timed_out;  /* exec: killed at its timeout */
        bool oom_killed; /* wait: an OOM kill in the container's cgroup */
};
typedef void vm_reply_fn(void *arg, const struct vm_agent_reply *r);
int vm_agent_wait_async(struct vm_agent *a, const char *id, vm_reply_fn *fn, void *arg, struct err *e);
int vm_agent_exec_async(struct vm_agent *a, const char *id, char *const *args, int timeout_ms,
                        vm_reply_fn *fn, void *arg, struct err *e);
/* Port-forward: open a TCP connection to the guest's loopback `port`,
 * named conn_id (non-zero, unique while open); the reply (no body, or the
 * connect error) goes to fn. Then the connection's bytes come back through
 * the conn callback and go out with vm_agent_conn_send. window (bytes,
 * 0: none) turns on flow control both ways (vm_agent_credit). */
int vm_agent_portforward_async(struct vm_agent *a, uint64_t conn_id, uint16_t port, uint32_t window,
                               vm_reply_fn *fn, void *arg, struct err *e);
/* Bytes for connection conn_id; eof: the host side will send no more
 * (half-close); reset: the host side is gone, the guest closes. */
int vm_agent_conn_send(struct vm_agent *a, uint64_t conn_id, const void *data, size_t len, bool eof,
                       bool reset, struct err *e);
/* Interactive exec: run args in container `id` (NULL: the guest) with its
 * stdio relayed, named exec_id (non-empty, unique while it runs). Its
 * stdout/stderr come back through the output callback (exec_id set, eof
 * per stream), all of it before the reply (exit_code, no output) goes to
 * fn once the process has exited; a start failure is the reply's error.
 * o may be NULL (pipes, no flow control). */
struct vm_stream_opts {
        bool tty;            /* a pty in the guest: stdout only, resizable (vm_agent_resize) */
        uint16_t rows, cols; /* its first size; 0: the kernel's default */
        uint32_t window;     /* flow control both ways (vm_agent_credit), bytes; 0: none */
};
int vm_agent_exec_stream_async(struct vm_agent *a, const char *id, const char *exec_id, char *const *args,
                               const struct vm_stream_opts *o, vm_reply_fn *fn, void *arg, struct err *e);
/* Stdin bytes for an interactive exec; eof: close its stdin once written;
 * kill: the host side is gone, the process is killed (the reply still comes). */
int vm_agent_exec_send(struct vm_agent *a, const char *id, const char *exec_id, const void *data, size_t len,
                       bool eof, bool kill, struct err *e);
/* Connection bytes from the guest, dispatched as the output callback. */
typedef void vm_conn_fn(void *arg, uint64_t conn_id, const void *data, size_t len, bool eof, bool reset);
void vm_agent_set_conn_output(struct vm_agent *a, vm_conn_fn *fn, void *arg);
/* Terminal size of an exec with a tty (exec_id) or of a container's main
 * process on a tty (exec_id NULL or ""). Zero rows or cols: nothing sent. */
int vm_agent_resize(struct vm_agent *a, const char *id, const char *exec_id, uint16_t rows, uint16_t cols,
                    struct err *e);
/* Flow control (agent.proto StreamData.credit): grant the guest `credit`
 * more bytes of output on the stream (id, exec_id) or connection conn_id,
 * once as many were passed on. */
int vm_agent_credit(struct vm_agent *a, const char *id, const char *exec_id, uint64_t conn_id,
                    uint64_t credit, struct err *e);
/* Credit from the guest: it took `credit` more bytes of what we sent on the
 * stream (container_id, exec_id; exec_id "" = a container's stdin) or the
 * connection conn_id (non-zero). Called like the output callback. */
typedef void vm_credit_fn(void *arg, const char *container_id, const char *exec_id, uint64_t conn_id,
                          uint64_t credit);
void vm_agent_set_credit(struct vm_agent *a, vm_credit_fn *fn, void *arg);
/* Pending async calls with this arg will not call back (their owner goes). */
void vm_agent_cancel_async(struct vm_agent *a, void *arg);
/* One read from the connection (it was readable), then every whole frame
 * dispatched: stream data to the output callback, replies to async calls.
 * Fails (ERR_UNAVAILABLE) when the agent closed the connection. */
int vm_agent_dispatch(struct vm_agent *a, struct err *e);
/* The connection fd, for the caller's epoll. */
int vm_agent_fd(const struct vm_agent *a);

#endif
