/* vm/ internals: the VMM driver vtable and the VM object. */
#ifndef CORRAL_VM_INTERNAL_H
#define CORRAL_VM_INTERNAL_H

#include "vm/vm.h"
#include "util/util.h"

struct vm;

/* One per VMM, chosen once per VM (like crun's cgroup manager). */
struct vm_driver_ops {
        const char *name;
        /* NULL when this VMM can run here, else why not. */
        const char *(*unavailable)(const char *vmm_path);
        /* Validate a share / net before boot (cold plug). */
        int (*add_share)(struct vm *v, const struct vm_share *s, struct err *e);
        int (*add_net)(struct vm *v, const struct vm_net *n, struct err *e);
        /* Start the VMM process: sets v->pid, v->pidfd, v->agent_path. */
        int (*boot)(struct vm *v, struct err *e);
        /* Open the agent stream (after boot), retrying until deadline_ms
         * (CLOCK_MONOTONIC ms) while the VMM lives. */
        int (*connect_agent)(struct vm *v, int64_t deadline_ms, struct err *e);
        /* Ask the VMM to stop the guest (ACPI power button, then quit). */
        int (*shutdown)(struct vm *v, int timeout_ms, struct err *e);
        int (*kill)(struct vm *v, struct err *e);
        int (*stats)(struct vm *v, struct vm_stats *out, struct err *e);
};

extern const struct vm_driver_ops vm_qemu_ops;
extern const struct vm_driver_ops vm_chv_ops;

/* A running virtiofsd (virtiofsd.c), one per virtio-fs share. */
struct vm_virtiofsd {
        pid_t pid; /* 0: not running */
        int pidfd;
        char *socket_path, *log_path;
        int wait_status;
};

struct vm_share_rec {
        char *tag, *path;
        bool readonly;
        struct vm_virtiofsd fsd; /* virtio-fs only */
};
struct vm_net_rec {
        char *tap, *mac;
};

struct vm {
        const struct vm_driver_ops *ops;
        /* the config, owned copies */
        enum vm_vmm vmm;
        char *vmm_path, *kernel, *initrd, *state_dir, *netns, *extra_cmdline;
        uint32_t cpus, memory_mib, agent_timeout_ms;
        enum vm_accel accel;
        enum vm_share_type share_type; /* resolved: 9P or VIRTIOFS */
        char *virtiofsd_bin;           /* VIRTIOFS: the daemon */
        struct vm_share_rec *shares;
        size_t n_shares;
        struct vm_net_rec *nets;
        size_t n_nets;
        bool made_state_dir;

        pid_t pid;
        int pidfd;
        bool use_kvm; /* this boot's accelerator, set before ops->boot */
        const char *accel_used;
        char *agent_path, *qmp_path, *console_path, *vmm_log_path;
        char *api_path;   /* cloud-hypervisor: its REST API socket */
        char *vsock_path; /* hybrid vsock socket (cloud-hypervisor) */
        uint32_t vsock_cid;
        struct vm_agent *agent;
        enum vm_state state;
        int wait_status;
        char *reason;
        int64_t start_ns;
        uint64_t boot_ms;
};

/* vm.c helpers for the drivers */
/* waitpid WNOHANG: true (and state/reason set) when the VMM has ended. */
bool vm_reap(struct vm *v);
/* The last lines of the VMM's own log and the guest console, for errors. */
char *vm_log_tail(const struct vm *v);
/* `name` through PATH (or as given when it has a '/'); NULL if absent. */
char *vm_find_binary(const char *name);
/* The guest kernel command line (both VMMs); caller frees. */
char *vm_kernel_cmdline(const struct vm *v);
/* Fork and exec `bin` as a child that dies with us (PDEATHSIG), in its own
 * session, in `netns` (NULL: ours), stdin /dev/null, stdout and stderr to
 * `log_path` (truncated). An exec failure is our error, the child reaped.
 * `what` names it in errors. */
int vm_spawn_process(const char *what, const char *bin, char *const *argv, const char *netns,
                     const char *log_path, pid_t *pid_out, int *pidfd_out, struct err *e);
/* The VMM through vm_spawn_process: in v->netns, stdout/stderr into v->vmm_log_path,
 * killed when we die, in its own session. Sets v->pid and v->pidfd. */
int vm_spawn(struct vm *v, const char *bin, char *const *argv, struct err *e);
/* Host TSC frequency in kHz (for tsc_early_khz), 0 if unknown. */
unsigned long vm_tsc_khz(void);

/* Start a virtiofsd for each share (VIRTIOFS), waiting until each listens;
 * drivers call it in ops->boot before the VMM. On failure the ones started
 * are stopped. */
int vm_shares_start(struct vm *v, int timeout_ms, struct err *e);
/* Kill, reap and unlink every share's virtiofsd (idempotent). */
void vm_shares_stop(struct vm *v);

/* virtiofsd.c */
enum vm_virtiofsd_flavor { VM_VIRTIOFSD_C = 0, VM_VIRTIOFSD_RUST = 1 };
/* Which command line the binary takes: the Rust daemon has --shared-dir,
 * the C one (QEMU <= 7) -o source=. Decided by its --help, cached. */
enum vm_virtiofsd_flavor vm_virtiofsd_flavor(const char *bin);
/* The argv for one share (NULL-terminated; strv_free). */
char **vm_virtiofsd_argv(const char *bin, enum vm_virtiofsd_flavor fl, const char *socket, const char *dir);
/* Start it (a child that dies with us) and wait up to timeout_ms until its
 * socket listens. d->socket_path and d->log_path must be set. Failure:
 * nothing left running, the log tail in the message. */
int vm_virtiofsd_start(const char *bin, const char *dir, struct vm_virtiofsd *d, int timeout_ms,
                       struct err *e);
/* true when it has exited (reaped; d->wait_status set). */
bool vm_virtiofsd_reap(struct vm_virtiofsd *d);
/* SIGKILL, reap, unlink the socket. Idempotent. */
void vm_virtiofsd_stop(struct vm_virtiofsd *d);
/* Is a unix socket at `path` listening (from /proc/net/unix, without
 * connecting: virtiofsd takes exactly one connection)? */
bool vm_unix_listening(const char *path);

/* VmRSS of a pid in bytes, 0 if unknown. */
uint64_t vm_pid_rss(pid_t pid);

/* qmp.c: one QMP exchange per connection. *reply (may be NULL) gets the
 * "return" member's JSON text. */
int vm_qmp_execute(const char *sock, const char *command, int timeout_ms, char **reply, struct err *e);

#endif
