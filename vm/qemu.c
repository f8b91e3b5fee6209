/* The QEMU driver: qemu-system-x86_64 -M microvm, KVM when /dev/kvm works,
 * TCG otherwise; the agent on a virtio-serial port backed by a unix socket
 * (or on vsock through vhost-vsock when the host has /dev/vhost-vsock), the
 * console on a virtconsole into a file, shares over virtio-9p or virtio-fs
 * (vhost-user-fs-device to a virtiofsd per share, guest RAM in a shared
 * memfd so the daemon can map it; this works under TCG as well), taps
 * opened inside the pod netns (QEMU runs there), QMP on a unix socket. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/vm_sockets.h>
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

/* vhost-vsock needs the host module's device; without it the agent stays on
 * virtio-serial. */
static bool host_vhost_vsock(void)
{
        return access("/dev/vhost-vsock", R_OK | W_OK) == 0;
}

/* A guest CID unique among this host's VMs: pid and a per-process count
 * (QEMU refuses a CID in use, and the boot fails with that in its log). */
static uint32_t pick_cid(void)
{
        static uint32_t n;
        uint32_t c = ((uint32_t)getpid() << 8) | (__atomic_fetch_add(&n, 1, __ATOMIC_RELAXED) & 0xff);
        return 3 + c % 0x7ffffff0u;
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
        argv_add(&a, "microvm,isa-serial=on,rtc=on%s",
                 v->share_type == VM_SHARE_VIRTIOFS ? ",memory-backend=mem" : "");
        argv_add(&a, "-accel");
        /* TCG's translation cache defaults to 1 GiB (huge pages where the
         * host allows them) and is never given back: after a boot it holds
         * ~45 MiB of unshared anonymous memory per VM. A boot to the agent
         * needs ~20 MiB of translations (16 MiB costs ~2 s of start in
         * retranslation, 32 MiB costs nothing measurable); when full, the
         * cache is flushed and refilled, it does not fail. */
        argv_add(&a, "%s", kvm ? "kvm" : "tcg,tb-size=32");
        argv_add(&a, "-cpu");
        /* Without arch-capabilities: QEMU 7.2 aborts on hosts whose KVM
         * refuses MSR 0x10a ("failed to set MSR 0x10a"). */
        argv_add(&a, "%s", kvm ? "host,-arch-capabilities" : "max");
        argv_add(&a, "-smp");
        argv_add(&a, "%u", v->cpus);
        argv_add(&a, "-m");
        argv_add(&a, "%u", v->memory_mib);
        if (v->share_type == VM_SHARE_VIRTIOFS) {
                /* vhost-user: virtiofsd maps guest RAM, so it must be a
                 * shareable memfd (microvm takes it as memory-backend). */
                argv_add(&a, "-object");
                argv_add(&a, "memory-backend-memfd,id=mem,size=%uM,share=on", v->memory_mib);
                /* microvm's virtio-mmio devices are legacy (v1) by default;
                 * libvhost-user (virtiofsd) refuses legacy devices. */
                argv_add(&a, "-global");
                argv_add(&a, "virtio-mmio.force-legacy=false");
        }
        argv_add(&a, "-nodefaults");
        argv_add(&a, "-no-user-config");
        argv_add(&a, "-nographic");
        argv_add(&a, "-no-reboot");
        argv_add(&a, "-kernel");
        argv_add(&a, "%s", v->kernel);
        argv_add(&a, "-initrd");
        argv_add(&a, "%s", v->initrd);
        argv_add(&a, "-append");
        char *cl = vm_kernel_cmdline(v);
        strv_push(&a, cl);
        free(cl);
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
        if (v->vsock_cid) {
                /* The agent listens on vsock; no agent port, so it cannot
                 * pick the serial one instead. */
                argv_add(&a, "-device");
                argv_add(&a, "vhost-vsock-device,guest-cid=%u", v->vsock_cid);
        } else {
                argv_add(&a, "-chardev");
                argv_add(&a, "socket,id=agent,path=%s,server=on,wait=off", v->agent_path);
                argv_add(&a, "-device");
                argv_add(&a, "virtserialport,bus=vser0.0,chardev=agent,nr=1,name=corral.agent");
        }
        for (size_t i = 0; i < v->n_shares; i++) {
                if (v->share_type == VM_SHARE_VIRTIOFS) {
                        argv_add(&a, "-chardev");
                        argv_add(&a, "socket,id=fsc%zu,path=%s", i, v->shares[i].fsd.socket_path);
                        argv_add(&a, "-device");
                        argv_add(&a, "vhost-user-fs-device,chardev=fsc%zu,tag=%s,queue-size=1024", i,
                                 v->shares[i].tag);
                        continue;
                }
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
        v->vsock_cid = host_vhost_vsock() ? pick_cid() : 0;
        cleanup_strv char **argv = build_argv(v, bin, kvm);
        (void)unlink(v->agent_path);
        (void)unlink(v->qmp_path);
        /* The daemons listen before QEMU connects to them (as a client). */
        if (vm_shares_start(v, 5000, e) < 0)
                return -1;
        return vm_spawn(v, bin, argv, e);
}

/* vhost-vsock: the guest listens on VM_AGENT_VSOCK_PORT once it is up. */
static int connect_vsock(struct vm *v, int64_t deadline, struct err *e)
{
        for (;;) {
                if (vm_reap(v))
                        return err_set(e, ERR_UNAVAILABLE, "vm: %s during start", v->reason);
                int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return err_make(e, errno, "vm: vsock socket");
                struct sockaddr_vm sa = {
                        .svm_family = AF_VSOCK, .svm_cid = v->vsock_cid, .svm_port = VM_AGENT_VSOCK_PORT};
                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        v->agent = vm_agent_from_fd(fd);
                        return 0;
                }
                close(fd);
                if (now_ms() >= deadline)
                        return err_set(e, ERR_DEADLINE, "vm: the agent did not listen on vsock %u:%u in time",
                                       v->vsock_cid, VM_AGENT_VSOCK_PORT);
                struct timespec ts = {0, 20 * 1000000};
                nanosleep(&ts, NULL);
        }
}

static int qemu_connect_agent(struct vm *v, int64_t deadline, struct err *e)
{
        if (v->vsock_cid)
                return connect_vsock(v, deadline, e);
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
