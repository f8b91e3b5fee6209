/* VM pods: a pod whose runtime handler is of type vm runs in its own
 * microVM. pods.c keeps the pod's life (record, CREATING, undo, pinned
 * netns, CNI, hostPorts, pod files) and calls in here where the handler
 * type matters:
 *   start  a tap in the pod netns, tc redirect eth0 <-> tap (Kata's
 *          tcfilter model: the guest's eth0 takes the pod IP, with the
 *          veth's MAC), vm.json, then `corral-shim vm`, which boots the VM
 *          and reports once the agent answered (the pod is READY then)
 *   stop   the shim stops the VM and exits; leftovers (a shim killed from
 *          outside) are swept: mounts under the share, tap, redirect
 *   refresh  a VM that died (vm-exit written by its shim) or a shim that
 *          is gone turns a READY pod NOTREADY
 * The containers of a VM pod are created through its shim
 * (cri_vm_container_create); every later call on them goes to the
 * per-container socket the shim serves, as for namespace containers. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "config/config.h"
#include "cri/cri-internal.h"
#include "net/net.h"
#include "runtime/runtime.h"
#include "shim/shim.h"
#include "store/store.h"
#include "vm/vm.h"

#define VM_TAP "tap0"

static const char *vmm_name(int vmm)
{
        return vmm == CFG_VMM_CLOUD_HYPERVISOR ? "cloud-hypervisor" : "qemu";
}

static const char *share_name(int share)
{
        return share == CFG_SHARE_VIRTIOFS ? "virtiofs" : share == CFG_SHARE_9P ? "9p" : "auto";
}

int cri_vm_handler_check(const struct cri_daemon *d, const struct cfg_runtime *rt, struct err *e)
{
        if (!rt->kernel || access(rt->kernel, R_OK) != 0)
                return err_set(
                        e, ERR_PRECONDITION,
                        "runtime handler \"%s\": guest kernel %s not found (build it with `cmake --build "
                        "<build> --target guest-image` and install vmlinux there, or set "
                        "runtimes.%s.kernel)",
                        rt->name, rt->kernel ? rt->kernel : "(none)", rt->name);
        if (!rt->initrd || access(rt->initrd, R_OK) != 0)
                return err_set(
                        e, ERR_PRECONDITION,
                        "runtime handler \"%s\": guest initrd %s not found (build it with `cmake --build "
                        "<build> --target guest-image` and install initramfs.img there, or set "
                        "runtimes.%s.initrd)",
                        rt->name, rt->initrd ? rt->initrd : "(none)", rt->name);
        const char *why = vm_vmm_unavailable_reason((enum vm_vmm)rt->vmm, rt->vmm_path);
        if (why)
                return err_set(e, ERR_PRECONDITION, "runtime handler \"%s\": %s unavailable: %s", rt->name,
                               vmm_name(rt->vmm), why);
        /* cloud-hypervisor has no TCG to fall back to: the VM shims' verdict
         * that KVM boots no guest here (written by an earlier pod, read back
         * from the state dir: corrald itself never boots a VM) rules it out
         * as surely as an unusable /dev/kvm. */
        if (rt->vmm == CFG_VMM_CLOUD_HYPERVISOR) {
                if (!d->has_kvm)
                        return err_set(e, ERR_PRECONDITION,
                                       "runtime handler \"%s\": cloud-hypervisor unavailable: it runs guests "
                                       "only under KVM and /dev/kvm is not usable here (no TCG fallback)",
                                       rt->name);
                cleanup_free char *broken = cri_vm_kvm_broken(d);
                if (broken)
                        return err_set(e, ERR_PRECONDITION,
                                       "runtime handler \"%s\": cloud-hypervisor unavailable: it runs guests "
                                       "only under KVM, and KVM here boots no guest (%s; no TCG fallback)",
                                       rt->name, broken);
        }
        /* Checked here rather than left to the shim: a share type that cannot
         * run would otherwise fail only after the netns, CNI lease and pod
         * files were made, with a less direct message. */
        why = vm_share_unavailable_reason((enum vm_vmm)rt->vmm, (enum vm_share_type)rt->share,
                                          rt->virtiofsd_path);
        if (why)
                return err_set(e, ERR_PRECONDITION,
                               "runtime handler \"%s\": share \"%s\" cannot run here: %s (set "
                               "runtimes.%s.share or runtimes.%s.virtiofsd_path)",
                               rt->name, share_name(rt->share), why, rt->name, rt->name);
        return 0;
}

char *cri_vm_handler_unusable(const struct cri_daemon *d, const struct cfg_runtime *rt)
{
        cleanup_err struct err e = ERR_INIT;
        if (cri_vm_handler_check(d, rt, &e) < 0)
                return steal_ptr(&e.msg);
        return NULL;
}

/* A VM shim that found KVM unable to boot a guest leaves the reason here, so
 * later pods go straight to TCG instead of paying the probe (the state dir
 * is a tmpfs: a reboot or a new kernel tries KVM again). */
static char *kvm_verdict_path(const struct cri_daemon *d)
{
        return path_join(d->cfg->state, "vm-kvm-broken");
}

char *cri_vm_kvm_broken(const struct cri_daemon *d)
{
        cleanup_free char *vp = kvm_verdict_path(d);
        char *why = NULL;
        if (file_read_all(vp, &why, NULL, 4096, NULL) == 0)
                return why;
        const char *broken = vm_kvm_broken_reason();
        return broken ? xstrdup(broken) : NULL;
}

char *cri_vm_handler_note(const struct cri_daemon *d)
{
        if (!d->has_kvm)
                return xstrdup("no usable /dev/kvm: VMs run under QEMU TCG (slower)");
        char *why = cri_vm_kvm_broken(d);
        if (why)
                return why;
        return xstrdup("KVM is tried first; a guest that does not boot under it within 5 s is rebooted "
                       "under TCG");
}

/* ---------- start ---------- */

static void put_kv_str(struct sbuf *b, const char *k, const char *v)
{
        sbuf_printf(b, ",\"%s\":", k);
        json_quote(b, v ? v : "");
}

static char *vm_json(const struct cri_daemon *d, const struct cfg_runtime *rt, const char *netns,
                     const struct net_link_info *li, const struct net_cni_result *res, const char *hostname,
                     const Runtime__V1__LinuxPodSandboxConfig *lx)
{
        struct sbuf b = {0};
        sbuf_printf(&b, "{\"vmm\":%d,\"cpus\":%u,\"memory_mib\":%u,\"agent_timeout_ms\":%u", rt->vmm,
                    rt->cpus, rt->memory_mib, rt->agent_timeout_seconds * 1000);
        cleanup_free char *vp = kvm_verdict_path(d);
        put_kv_str(&b, "kvm_verdict", vp);
        put_kv_str(&b, "vmm_path", rt->vmm_path);
        sbuf_printf(&b, ",\"share\":%d", rt->share);
        put_kv_str(&b, "virtiofsd_path", rt->virtiofsd_path);
        put_kv_str(&b, "kernel", rt->kernel);
        put_kv_str(&b, "initrd", rt->initrd);
        put_kv_str(&b, "netns", netns);
        put_kv_str(&b, "tap", VM_TAP);
        put_kv_str(&b, "mac", li->mac_str);
        put_kv_str(&b, "hostname", hostname);
        sbuf_printf(&b, ",\"mtu\":%d,\"addresses\":[", li->mtu);
        for (size_t i = 0; i < res->n_ips; i++) {
                if (i)
                        sbuf_putc(&b, ',');
                json_quote(&b, res->ips[i].address);
        }
        sbuf_puts(&b, "],\"routes\":[");
        size_t n = 0;
        for (size_t i = 0; i < res->n_routes; i++) {
                const char *gw = res->routes[i].gw;
                if (!gw) /* a route without its own gateway goes via the address's */
                        for (size_t k = 0; k < res->n_ips && !gw; k++)
                                if ((strchr(res->routes[i].dst, ':') != NULL) ==
                                    (res->ips[k].family != AF_INET))
                                        gw = res->ips[k].gateway;
                sbuf_printf(&b, "%s{\"dst\":", n++ ? "," : "");
                json_quote(&b, res->routes[i].dst);
                sbuf_puts(&b, ",\"gw\":");
                if (gw)
                        json_quote(&b, gw);
                else
                        sbuf_puts(&b, "null");
                sbuf_putc(&b, '}');
        }
        /* The guest kernel is the pod's own: every sysctl is the pod's to set. */
        sbuf_puts(&b, "],\"sysctls\":{");
        for (size_t i = 0; lx && i < lx->n_sysctls; i++) {
                if (i)
                        sbuf_putc(&b, ',');
                json_quote(&b, lx->sysctls[i]->key);
                sbuf_putc(&b, ':');
                json_quote(&b, lx->sysctls[i]->value);
        }
        sbuf_puts(&b, "}}\n");
        return sbuf_steal(&b);
}

int cri_vm_sandbox_start(struct cri_daemon *d, const struct cfg_runtime *rt, const struct store_pod *p,
                         struct cri_pod_extra *x, const char *netns, const struct net_cni_result *res,
                         const char *hostname, const Runtime__V1__LinuxPodSandboxConfig *lx, struct err *e)
{
        (void)d;
        struct net_link_info li = {0};
        if (net_link_info(netns, "eth0", &li, e) < 0)
                return err_wrap(e, "the pod's eth0");
        int r = -1;
        cleanup_free char *json = NULL, *cfgp = NULL, *shim = NULL;
        if (net_link_tap_create(netns, VM_TAP, li.mtu, false, e) < 0) {
                err_wrap(e, "create the VM's tap");
                goto out;
        }
        if (net_tc_redirect_add(netns, "eth0", VM_TAP, e) < 0) {
                err_wrap(e, "redirect eth0 <-> %s", VM_TAP);
                goto out;
        }
        if (mkdir_p(x->vm_dir, 0700, e) < 0)
                goto out;
        json = vm_json(d, rt, netns, &li, res, hostname, lx);
        cfgp = path_join(x->vm_dir, SHIM_VM_CONFIG);
        if (file_write_atomic(cfgp, json, strlen(json), 0600, e) < 0)
                goto out;
        shim = cri_shim_binary();
        struct shim_opts so = {
                .id = p->id,
                .bundle = x->vm_dir,
                .state_dir = x->vm_dir,
                .shim_path = shim,
                .mode = "vm",
                /* the KVM probe, then a TCG boot within the agent timeout */
                .timeout_ms =
                        (int64_t)(rt->agent_timeout_seconds ? rt->agent_timeout_seconds : 30) * 1000 + 15000,
        };
        struct shim_info si;
        int64_t t0 = time_mono_ns();
        if (shim_spawn(&so, &si, e) < 0) {
                err_wrap(e, "boot the pod's VM");
                goto out;
        }
        x->vm_shim_pid = si.shim_pid;
        log_info("pod", "vm booted id=%s qemu_pid=%d shim_pid=%d ms=%.0f", p->id, (int)si.pid,
                 (int)si.shim_pid, (double)(time_mono_ns() - t0) / 1e6);
        r = 0;
out:
        net_link_info_free(&li);
        return r;
}

/* ---------- stop ---------- */

/* Detach every mount below `dir` (deepest first): what a shim killed
 * from outside left. Returns how many are still there. */
static int unmount_below(const char *dir)
{
        cleanup_free char *buf = NULL;
        size_t len;
        if (file_read_all("/proc/self/mountinfo", &buf, &len, 0, NULL) < 0)
                return 0;
        char **points = NULL;
        size_t dl = strlen(dir);
        for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                char mp[4096];
                if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
                        continue;
                if (strncmp(mp, dir, dl) == 0 && mp[dl] == '/')
                        strv_push(&points, mp);
        }
        int left = 0;
        for (size_t i = strv_len(points); i-- > 0;)
                if (umount2(points[i], MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
                        left++;
        strv_free(points);
        return left;
}

int cri_vm_sandbox_stop(struct cri_daemon *d, const struct store_pod *p, struct cri_pod_extra *x,
                        struct err *e)
{
        (void)d;
        if (!x->vm_dir)
                return 0;
        int shim_pid = shim_live_pid(x->vm_dir);
        struct shim_conn *sc = NULL;
        cleanup_err struct err se = ERR_INIT;
        bool asked = false;
        if (shim_pid && shim_connect(x->vm_dir, &sc, &se) == 0) {
                if (shim_vm_shutdown(sc, &se) < 0)
                        log_warn("pod", "stop vm id=%s: %s", p->id, se.msg);
                shim_close(sc);
                asked = true;
        }
        /* A shim that does not serve yet is still booting its VM (a
         * RunPodSandbox cut short by a restart): nothing to wait for. */
        for (int i = 0; asked && i < 1000 && shim_pid_alive(shim_pid); i++) {
                struct timespec ts = {0, 10 * 1000000L};
                nanosleep(&ts, NULL);
        }
        if (shim_pid && shim_pid_alive(shim_pid)) {
                /* QEMU dies with it (PDEATHSIG). */
                log_warn("pod", "stop vm id=%s: shim pid=%d %s, killing it", p->id, shim_pid,
                         asked ? "did not exit" : "does not serve yet (still booting)");
                (void)kill(shim_pid, SIGKILL);
                for (int i = 0; i < 200 && shim_pid_alive(shim_pid); i++) {
                        struct timespec ts = {0, 10 * 1000000L};
                        nanosleep(&ts, NULL);
                }
        }
        if (unmount_below(x->vm_dir) > 0)
                return err_set(e, ERR_INTERNAL, "stop vm of pod %s: mounts under %s are still busy", p->id,
                               x->vm_dir);
        if (x->ns_dir) {
                cleanup_free char *netns = path_join(x->ns_dir, "net");
                if (net_ns_is_pinned(netns)) {
                        (void)net_tc_redirect_del(netns, "eth0", VM_TAP, NULL);
                        if (net_link_delete(netns, VM_TAP, e) < 0)
                                return err_wrap(e, "remove the VM's tap of pod %s", p->id);
                }
        }
        if (rm_rf(x->vm_dir, e) < 0)
                return err_wrap(e, "remove %s", x->vm_dir);
        x->vm_shim_pid = 0;
        return 0;
}

/* ---------- state ---------- */

bool cri_vm_pod_dead(const struct cri_pod_extra *x, char **reason)
{
        *reason = NULL;
        if (!x->vm || !x->vm_dir)
                return false;
        cleanup_free char *p = path_join(x->vm_dir, SHIM_VM_EXIT_FILE);
        cleanup_free char *buf = NULL;
        size_t len;
        if (file_read_all(p, &buf, &len, 1 << 16, NULL) == 0) {
                yajl_val v = json_parse(buf, len, p, NULL);
                const char *r = v ? json_get_str(v, "reason") : NULL;
                *reason = xstrdup(r ? r : "the VM ended");
                if (v)
                        yajl_tree_free(v);
                return true;
        }
        if (!shim_live_pid(x->vm_dir)) {
                *reason = xstrdup("the pod's corral-shim is gone");
                return true;
        }
        return false;
}

char *cri_vm_pod_info(const struct cri_pod_extra *x, const char *vmm)
{
        struct sbuf b = {0};
        sbuf_puts(&b, "{\"vmm\":");
        json_quote(&b, vmm);
        sbuf_puts(&b, ",\"vmDir\":");
        json_quote(&b, x->vm_dir);
        struct shim_conn *sc = NULL;
        struct shim_vm_info vi = {0};
        cleanup_err struct err e = ERR_INIT;
        bool have = x->vm_dir && shim_connect(x->vm_dir, &sc, &e) == 0 && shim_vm_info(sc, &vi, &e) == 0;
        shim_close(sc);
        if (have) {
                sbuf_printf(&b, ",\"state\":\"%s\",\"vmmPid\":%d,\"shimPid\":%d,\"accel\":",
                            vi.vm_state == VM_RUNNING ? "running" : "dead", (int)vi.vmm_pid,
                            (int)vi.shim_pid);
                json_quote(&b, vi.accel);
                sbuf_puts(&b, ",\"consoleLog\":");
                json_quote(&b, vi.console);
                sbuf_puts(&b, ",\"guestKernel\":");
                json_quote(&b, vi.kernel);
                sbuf_printf(&b, ",\"bootMs\":%llu,\"vmmRssBytes\":%llu", (unsigned long long)vi.boot_ms,
                            (unsigned long long)vi.vmm_rss);
                char path[64];
                snprintf(path, sizeof(path), "/proc/%d/status", (int)vi.shim_pid);
                cleanup_free char *st = NULL;
                const char *rss;
                if (vi.shim_pid > 0 && file_read_all(path, &st, NULL, 0, NULL) == 0 &&
                    (rss = strstr(st, "VmRSS:")))
                        sbuf_printf(&b, ",\"shimRssBytes\":%llu", strtoull(rss + 6, NULL, 10) * 1024);
                if (vi.reason[0]) {
                        sbuf_puts(&b, ",\"reason\":");
                        json_quote(&b, vi.reason);
                }
        } else {
                sbuf_puts(&b, ",\"state\":\"gone\",\"error\":");
                json_quote(&b, e.msg ? e.msg : "");
        }
        sbuf_putc(&b, '}');
        return sbuf_steal(&b);
}

/* ---------- containers ---------- */

int cri_vm_container_create(const struct cri_pod_extra *x, const char *id, const struct rt_spec *spec,
                            const char *state_dir, const char *log_path, bool stdin_open, bool stdin_once,
                            struct err *e)
{
        struct shim_conn *sc = NULL;
        if (!x->vm_dir || shim_connect(x->vm_dir, &sc, e) < 0)
                return err_wrap(e, "the pod's VM shim");
        cleanup_free char *json = rt_spec_to_json(spec);
        struct shim_vm_create cc = {
                .id = id,
                .spec_json = json,
                .state_dir = state_dir,
                .log_path = log_path,
                .stdin_open = stdin_open,
                .stdin_once = stdin_once,
        };
        int r = shim_vm_create_container(sc, &cc, e);
        shim_close(sc);
        return r;
}

bool cri_vm_ctr_usage(struct cri_daemon *d, const char *pod_id, const char *ctr_id, uint64_t *cpu_ns,
                      uint64_t *memory)
{
        struct store_pod p = {0};
        struct cri_pod_extra x = {0};
        cleanup_err struct err e = ERR_INIT;
        bool ok = false;
        if (model_pod_get(d->model, pod_id, &p, &e) == 0 && cri_pod_extra_parse(p.extra_json, &x, &e) == 0 &&
            x.vm && x.vm_dir) {
                struct shim_conn *sc = NULL;
                struct shim_vm_stats st;
                if (shim_connect(x.vm_dir, &sc, &e) == 0 && shim_vm_stats(sc, ctr_id, &st, &e) == 0) {
                        *cpu_ns = st.cpu_ns;
                        *memory = st.memory;
                        ok = true;
                } else {
                        log_debug("cri", "vm stats container=%s error=\"%s\"", ctr_id, e.msg);
                }
                shim_close(sc);
        }
        cri_pod_extra_clear(&x);
        store_pod_clear(&p);
        return ok;
}

bool cri_pod_is_vm(struct cri_daemon *d, const char *pod_id)
{
        struct store_pod p = {0};
        cleanup_err struct err e = ERR_INIT;
        if (model_pod_get(d->model, pod_id, &p, &e) < 0)
                return false;
        struct cri_pod_extra x = {0};
        bool vm = cri_pod_extra_parse(p.extra_json, &x, &e) == 0 && x.vm;
        cri_pod_extra_clear(&x);
        store_pod_clear(&p);
        return vm;
}
