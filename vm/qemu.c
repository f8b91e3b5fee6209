/* The QEMU driver: qemu-system-x86_64 -M microvm, KVM when /dev/kvm works,
 * TCG otherwise; the agent on a virtio-serial port backed by a unix socket,
 * the console on a virtconsole into a file, shares over virtio-9p, taps
 * opened inside the pod netns (QEMU runs there), QMP on a unix socket. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "vm/vm-internal.h"

#define QEMU_BIN "qemu-system-x86_64"

static int64_t now_ms(void)
{
        return time_mono_ns() / 1000000;
}

static const char *qemu_unavailable(const char *vmm_path)
{
        cleanup_free char *p = vm_find_binary(vmm_path && *vmm_path ? vmm_path : QEMU_BIN);
        if (!p)
                return "qemu-system-x86_64 not found (apt-get install qemu-system-x86)";
        return NULL;
}

static int qemu_add_share(struct vm *v, const struct vm_share *s, struct err *e)
{
        (void)v, (void)s, (void)e;
        return 0;
}

static int qemu_add_net(struct vm *v, const struct vm_net *n, struct err *e)
{
        (void)v, (void)n, (void)e;
        return 0;
}

static void argv_add(char ***argv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void argv_add(char ***argv, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *s = xvasprintf(fmt, ap);
        va_end(ap);
        strv_push(argv, s);
        free(s);
}

static char **build_argv(struct vm *v, const char *bin, bool kvm)
{
        char **a = NULL;
        strv_push(&a, bin);
        argv_add(&a, "-M");
        /* The kernel's console is the ISA serial port (built in, so a panic
         * before any module loads is still seen); the agent logs on hvc0
         * (virtio_console, a module). Both append to console.log. */
        argv_add(&a, "microvm,accel=%s,isa-serial=on,rtc=on", kvm ? "kvm" : "tcg");
        argv_add(&a, "-cpu");
        /* Without arch-capabilities: QEMU 7.2 aborts on hosts whose KVM
         * refuses MSR 0x10a ("failed to set MSR 0x10a"). */
        argv_add(&a, "%s", kvm ? "host,-arch-capabilities" : "max");
        argv_add(&a, "-smp");
        argv_add(&a, "%u", v->cpus);
        argv_add(&a, "-m");
        argv_add(&a, "%u", v->memory_mib);
        argv_add(&a, "-nodefaults");
        argv_add(&a, "-no-user-config");
        argv_add(&a, "-nographic");
        argv_add(&a, "-no-reboot");
        argv_add(&a, "-kernel");
        argv_add(&a, "%s", v->kernel);
        argv_add(&a, "-initrd");
        argv_add(&a, "%s", v->initrd);
        struct sbuf cl = {0};
        sbuf_puts(&cl,
                  "console=ttyS0 quiet panic=-1 reboot=t rdinit=/init random.trust_cpu=on 8250.nr_uarts=1");
        unsigned long khz = vm_tsc_khz();
        if (khz)
                sbuf_printf(&cl, " tsc_early_khz=%lu", khz);
        if (v->extra_cmdline && *v->extra_cmdline)
                sbuf_printf(&cl, " %s", v->extra_cmdline);
        argv_add(&a, "-append");
        strv_push(&a, cl.buf);
        sbuf_free(&cl);
        /* QMP */
        argv_add(&a, "-chardev");
        argv_add(&a, "socket,id=qmp,path=%s,server=on,wait=off", v->qmp_path);
        argv_add(&a, "-mon");
        argv_add(&a, "chardev=qmp,mode=control");
        /* virtio-serial: port 0 the console (hvc0), then the agent. */
        argv_add(&a, "-device");
        argv_add(&a, "virtio-serial-device,id=vser0,max_ports=4");
        argv_add(&a, "-chardev");
        argv_add(&a, "file,id=serial,path=%s,append=on", v->console_path);
        argv_add(&a, "-serial");
        argv_add(&a, "chardev:serial");
        argv_add(&a, "-chardev");
        argv_add(&a, "file,id=console,path=%s,append=on", v->console_path);
        argv_add(&a, "-device");
        argv_add(&a, "virtconsole,bus=vser0.0,chardev=console,nr=0");
        argv_add(&a, "-chardev");
        argv_add(&a, "socket,id=agent,path=%s,server=on,wait=off", v->agent_path);
        argv_add(&a, "-device");
        argv_add(&a, "virtserialport,bus=vser0.0,chardev=agent,nr=1,name=corral.agent");
        for (size_t i = 0; i < v->n_shares; i++) {
                argv_add(&a, "-fsdev");
                argv_add(&a, "local,id=fs%zu,path=%s,security_model=passthrough%s", i, v->shares[i].path,
                         v->shares[i].readonly ? ",readonly=on" : "");
                argv_add(&a, "-device");
                argv_add(&a, "virtio-9p-device,fsdev=fs%zu,mount_tag=%s", i, v->shares[i].tag);
        }
        for (size_t i = 0; i < v->n_nets; i++) {
                argv_add(&a, "-netdev");
                argv_add(&a, "tap,id=net%zu,ifname=%s,script=no,downscript=no,vhost=off", i, v->nets[i].tap);
                argv_add(&a, "-device");
                argv_add(&a, "virtio-net-device,netdev=net%zu,mac=%s", i, v->nets[i].mac);
        }
        return a;
}

static int qemu_boot(struct vm *v, struct err *e)
{
        cleanup_free char *bin = vm_find_binary(v->vmm_path ? v->vmm_path : QEMU_BIN);
        if (!bin)
                return err_set(e, ERR_NOT_FOUND, "qemu: %s not found", v->vmm_path ? v->vmm_path : QEMU_BIN);
        bool kvm = v->use_kvm; /* chosen by vm_boot */
        cleanup_strv char **argv = build_argv(v, bin, kvm);
        cleanup_close int nsfd = -1;
        if (v->netns) {
                nsfd = open(v->netns, O_RDONLY | O_CLOEXEC);
                if (nsfd < 0)
                        return err_make(e, errno, "qemu: open netns %s", v->netns);
        }
        (void)unlink(v->agent_path);
        (void)unlink(v->qmp_path);
        cleanup_close int logfd = open(v->vmm_log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (logfd < 0)
                return err_make(e, errno, "qemu: create %s", v->vmm_log_path);
        int sync[2];
        if (pipe2(sync, O_CLOEXEC) < 0)
                return err_make(e, errno, "pipe");
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                close(sync[0]);
                close(sync[1]);
                return err_make(e, errno, "qemu: fork");
        }
        if (pid == 0) {
                /* The VM goes with its owner (the shim). */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                sigset_t all;
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                setsid();
                int er = 0;
                if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0)
                        er = errno;
                int devnull = open("/dev/null", O_RDWR);
                if (!er && (devnull < 0 || dup2(devnull, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0))
                        er = errno;
                if (!er) {
                        execv(bin, argv);
                        er = errno;
                }
                (void)!write(sync[1], &er, sizeof(er));
                _exit(127);
        }
        close(sync[1]);
        int er = 0;
        ssize_t n = read(sync[0], &er, sizeof(er));
        close(sync[0]);
        if (n == sizeof(er)) {
                waitpid(pid, NULL, 0);
                return err_make(e, er, "qemu: start %s%s%s", bin, v->netns ? " in netns " : "",
                                v->netns ? v->netns : "");
        }
        v->pid = pid;
        v->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        return 0;
}

static int qemu_connect_agent(struct vm *v, int64_t deadline, struct err *e)
{
        /* QEMU creates the socket while it starts; it may also fail first. */
        for (;;) {
                if (vm_reap(v))
                        return err_set(e, ERR_UNAVAILABLE, "vm: %s during start", v->reason);
                if (access(v->agent_path, F_OK) == 0) {
                        cleanup_err struct err ce = ERR_INIT;
                        if (vm_agent_connect(v->agent_path, 0, &v->agent, &ce) == 0)
                                return 0;
                }
                if (now_ms() >= deadline)
                        return err_set(e, ERR_DEADLINE, "vm: qemu did not open %s in time", v->agent_path);
                struct timespec ts = {0, 5 * 1000000};
                nanosleep(&ts, NULL);
        }
}

static int qemu_shutdown(struct vm *v, int timeout_ms, struct err *e)
{
        /* The ACPI power button first; QEMU's quit if the guest ignores it. */
        int half = timeout_ms / 2 > 0 ? timeout_ms / 2 : 1;
        if (vm_qmp_execute(v->qmp_path, "system_powerdown", half, NULL, NULL) == 0) {
                int64_t until = now_ms() + half;
                while (now_ms() < until) {
                        if (vm_reap(v))
                                return 0;
                        struct timespec ts = {0, 10 * 1000000};
                        nanosleep(&ts, NULL);
                }
        }
        return vm_qmp_execute(v->qmp_path, "quit", half, NULL, e);
}

static int qemu_kill(struct vm *v, struct err *e)
{
        if (v->pid > 0 && kill(v->pid, SIGKILL) < 0 && errno != ESRCH)
                return err_make(e, errno, "kill qemu %d", (int)v->pid);
        return 0;
}

static int qemu_stats(struct vm *v, struct vm_stats *out, struct err *e)
{
        cleanup_free char *reply = NULL;
        if (vm_qmp_execute(v->qmp_path, "query-status", 2000, &reply, e) < 0)
                return -1;
        yajl_val j = json_parse(reply, strlen(reply), "query-status", e);
        if (!j)
                return -1;
        const char *st = json_get_str(json_get(j, "return"), "status");
        snprintf(out->vmm_status, sizeof(out->vmm_status), "%s", st ? st : "unknown");
        yajl_tree_free(j);
        return 0;
}

const struct vm_driver_ops vm_qemu_ops = {
        .name = "qemu",
        .unavailable = qemu_unavailable,
        .add_share = qemu_add_share,
        .add_net = qemu_add_net,
        .boot = qemu_boot,
        .connect_agent = qemu_connect_agent,
        .shutdown = qemu_shutdown,
        .kill = qemu_kill,
        .stats = qemu_stats,
};
