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

struct vm_share_rec {
        char *tag, *path;
        bool readonly;
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
/* Host TSC frequency in kHz (for tsc_early_khz), 0 if unknown. */
unsigned long vm_tsc_khz(void);

/* qmp.c: one QMP exchange per connection. *reply (may be NULL) gets the
 * "return" member's JSON text. */
int vm_qmp_execute(const char *sock, const char *command, int timeout_ms, char **reply, struct err *e);

#endif
