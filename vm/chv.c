/* The cloud-hypervisor driver: `cloud-hypervisor --api-socket path=...`
 * started in the pod netns, then configured and booted over its REST API
 * (chv_api.c): vm.create with everything cold-plugged (CPUs, shared memory
 * for virtio-fs, kernel/initramfs/cmdline, the serial console into
 * console.log, one fs per share served by a virtiofsd, the tap, a hybrid
 * vsock), vm.boot; the agent over the hybrid vsock socket; vm.info for
 * stats; vm.shutdown, vmm.shutdown, then SIGKILL. KVM only: there is no
 * TCG in cloud-hypervisor, and Debian 12 does not package it. Shares are
 * virtio-fs only (no 9p device). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "vm/chv-internal.h"
#include "vm/vm-internal.h"

#define CHV_BIN "cloud-hypervisor"
/* The guest's CID: only the guest sees it (the host side is the unix
 * socket), so every VM can use the first non-reserved one. */
#define CHV_GUEST_CID 3u

static int64_t now_ms(void)
{
        return time_mono_ns() / 1000000;
}

static void sleep_ms(long ms)
{
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
}

static const char *chv_unavailable(const char *vmm_path)
{
        cleanup_free char *bin = vm_find_binary(vmm_path && *vmm_path ? vmm_path : CHV_BIN);
        bool kvm = vm_kvm_usable();
        if (!bin && !kvm)
                return "no usable /dev/kvm (cloud-hypervisor has no TCG) and the cloud-hypervisor binary "
                       "is not installed (Debian 12 does not package it; set vmm_path)";
        if (!bin)
                return vmm_path && *vmm_path
                               ? "the configured vmm_path is not an executable"
                               : "the cloud-hypervisor binary is not in PATH (Debian 12 does not "
                                 "package it; install it or set vmm_path)";
        if (!kvm)
                return "cloud-hypervisor runs guests only under KVM and /dev/kvm is not usable here (no TCG "
                       "fallback)";
        if (vm_kvm_broken_reason())
                return "cloud-hypervisor runs guests only under KVM, and KVM here creates VMs but booted no "
                       "guest (no TCG fallback)";
        return NULL;
}

static int chv_add_share(struct vm *v, const struct vm_share *s, struct err *e)
{
        if (v->share_type != VM_SHARE_VIRTIOFS)
                return err_set(e, ERR_PRECONDITION, "cloud-hypervisor: share %s: only virtio-fs is supported",
                               s->tag);
        return 0;
}

static int chv_add_net(struct vm *v, const struct vm_net *n, struct err *e)
{
        (void)v, (void)n, (void)e;
        return 0;
}

/* The API socket answers once the VMM is up; it may also die first. */
static int wait_api(struct vm *v, int timeout_ms, struct err *e)
{
        int64_t deadline = now_ms() + timeout_ms;
        for (;;) {
                if (vm_reap(v))
                        return err_set(e, ERR_UNAVAILABLE, "cloud-hypervisor: %s before its API answered",
                                       v->reason);
                cleanup_err struct err pe = ERR_INIT;
                if (vm_chv_api(v->api_path, "GET", "/api/v1/vmm.ping", NULL, 1000, NULL, &pe) == 0)
                        return 0;
                if (!err_is(&pe, ERR_UNAVAILABLE) || now_ms() >= deadline) {
                        err_move(e, &pe);
                        return err_wrap(e, "cloud-hypervisor API at %s", v->api_path);
                }
                sleep_ms(10);
        }
}

static char *create_body(struct vm *v)
{
        cleanup_free char *cmdline = vm_kernel_cmdline(v);
        cleanup_free struct vm_chv_fs *fs = xcalloc(v->n_shares + 1, sizeof(*fs));
        cleanup_free struct vm_chv_net *net = xcalloc(v->n_nets + 1, sizeof(*net));
        for (size_t i = 0; i < v->n_shares; i++)
                fs[i] = (struct vm_chv_fs){v->shares[i].tag, v->shares[i].fsd.socket_path};
        for (size_t i = 0; i < v->n_nets; i++)
                net[i] = (struct vm_chv_net){v->nets[i].tap, v->nets[i].mac};
        struct vm_chv_create c = {
                .cpus = v->cpus,
                .memory_mib = v->memory_mib,
                .shared_memory = v->share_type == VM_SHARE_VIRTIOFS && v->n_shares > 0,
                .kernel = v->kernel,
                .initramfs = v->initrd,
                .cmdline = cmdline,
                .serial_file = v->console_path,
                /* No virtio-console: the agent then logs to the serial one. */
                .console_file = NULL,
                .fs = fs,
                .n_fs = v->n_shares,
                .net = net,
                .n_net = v->n_nets,
                .vsock_cid = CHV_GUEST_CID,
                .vsock_socket = v->vsock_path,
        };
        return vm_chv_create_body(&c);
}

static int chv_boot(struct vm *v, struct err *e)
{
        if (!v->use_kvm)
                return err_set(e, ERR_PRECONDITION, "cloud-hypervisor: no TCG; KVM is required");
        cleanup_free char *bin = vm_find_binary(v->vmm_path ? v->vmm_path : CHV_BIN);
        if (!bin)
                return err_set(e, ERR_NOT_FOUND, "cloud-hypervisor: %s not found",
                               v->vmm_path ? v->vmm_path : CHV_BIN);
        (void)unlink(v->api_path);
        (void)unlink(v->vsock_path);
        if (vm_shares_start(v, 5000, e) < 0)
                return -1;
        cleanup_free char *api = xasprintf("path=%s", v->api_path);
        /* Its log goes to stderr, which vm_spawn sends to vmm.log (the tail
         * that boot errors quote). */
        char *argv[] = {bin, "--api-socket", api, NULL};
        if (vm_spawn(v, bin, argv, e) < 0)
                return -1;
        if (wait_api(v, 5000, e) < 0)
                return -1;
        cleanup_free char *body = create_body(v);
        if (vm_chv_api(v->api_path, "PUT", "/api/v1/vm.create", body, 10000, NULL, e) < 0 ||
            vm_chv_api(v->api_path, "PUT", "/api/v1/vm.boot", NULL, 10000, NULL, e) < 0)
                return -1;
        return 0;
}

static int chv_connect_agent(struct vm *v, int64_t deadline, struct err *e)
{
        /* The VMM drops the connection while nothing listens in the guest. */
        for (;;) {
                if (vm_reap(v))
                        return err_set(e, ERR_UNAVAILABLE, "vm: %s during start", v->reason);
                cleanup_err struct err ce = ERR_INIT;
                int fd = -1;
                int64_t left = deadline - now_ms();
                if (vm_hvsock_connect(v->vsock_path, VM_AGENT_VSOCK_PORT,
                                      left > 1000 ? 1000 : (int)(left > 0 ? left : 1), &fd, &ce) == 0) {
                        v->agent = vm_agent_from_fd(fd);
                        return 0;
                }
                if (err_is(&ce, ERR_DATA_LOSS)) {
                        err_move(e, &ce);
                        return -1;
                }
                if (now_ms() >= deadline) {
                        err_move(e, &ce);
                        return err_wrap(e, "vm: the agent did not answer on hybrid vsock %s port %u in time",
                                        v->vsock_path, VM_AGENT_VSOCK_PORT);
                }
                sleep_ms(20);
        }
}

static int chv_shutdown(struct vm *v, int timeout_ms, struct err *e)
{
        /* vm.shutdown stops the guest but leaves the VMM; vmm.shutdown ends it. */
        int half = timeout_ms / 2 > 0 ? timeout_ms / 2 : 1;
        (void)vm_chv_api(v->api_path, "PUT", "/api/v1/vm.shutdown", NULL, half, NULL, NULL);
        return vm_chv_api(v->api_path, "PUT", "/api/v1/vmm.shutdown", NULL, half, NULL, e);
}

static int chv_kill(struct vm *v, struct err *e)
{
        if (v->pid > 0 && kill(v->pid, SIGKILL) < 0 && errno != ESRCH)
                return err_make(e, errno, "kill cloud-hypervisor %d", (int)v->pid);
        return 0;
}

static int chv_stats(struct vm *v, struct vm_stats *out, struct err *e)
{
        struct vm_http_response r = {0};
        if (vm_chv_api(v->api_path, "GET", "/api/v1/vm.info", NULL, 2000, &r, e) < 0)
                return -1;
        yajl_val j = json_parse(r.body, r.body_len, "vm.info", e);
        vm_http_response_clear(&r);
        if (!j)
                return -1;
        const char *st = json_get_str(j, "state");
        snprintf(out->vmm_status, sizeof(out->vmm_status), "%s", st ? st : "unknown");
        yajl_tree_free(j);
        return 0;
}

const struct vm_driver_ops vm_chv_ops = {
        .name = "cloud-hypervisor",
        .unavailable = chv_unavailable,
        .add_share = chv_add_share,
        .add_net = chv_add_net,
        .boot = chv_boot,
        .connect_agent = chv_connect_agent,
        .shutdown = chv_shutdown,
        .kill = chv_kill,
        .stats = chv_stats,
};
