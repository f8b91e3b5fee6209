/* The vm handler type: the pod is a microVM (vm_pods.c does the VM work,
 * vm_stream.c exec and port-forward); its containers are created by the
 * agent in the guest through the pod's VM shim. What used to be `if (vm)`
 * branches across cri/ lives here. */
#include <sched.h>

#include "config/config.h"
#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "runtime/runtime.h"
#include "shim/shim.h"
#include "store/store.h"
#include "vm/vm.h"

/* ----- Status ----- */

static char *vm_unusable(const struct cri_daemon *d, const struct cfg_runtime *rt)
{
        return cri_vm_handler_unusable(d, rt);
}

static char *vm_note(const struct cri_daemon *d, const struct cfg_runtime *rt)
{
        (void)rt;
        return cri_vm_handler_note(d);
}

static bool vm_userns(const char **why)
{
        if (why)
                *why = "a VM pod runs its own guest kernel: the VM isolates it, not a host user namespace "
                       "(KEP-127 user namespaces are not supported)";
        return false;
}

static bool vm_rro(void)
{
        /* The agent applies "rro" in the guest (same runtime/, the guest
         * kernel has mount_setattr), to the volume and to each of its
         * submounts, which the VM shim shares one by one. */
        return true;
}

/* What a VM pod cannot do, by design, with the reason; Status verbose lists
 * it per handler ("unsupported") so that an operator, and a conformance run,
 * can tell a declared limit from a bug. RunPodSandbox and CreateContainer
 * refuse each of them with InvalidArgument before anything is made. */
static const struct cri_unsupported vm_unsupported[] = {
        {"hostNetwork", "the containers run on the guest's kernel, which cannot use the host's network "
                        "namespace (port-forward into such a pod neither)"},
        {"hostPID", "the guest's kernel cannot see the host's processes"},
        {"hostIPC", "the guest's kernel cannot share the host's IPC objects"},
        {"mountPropagationBidirectional",
         "a mount made in the guest cannot appear on the host: volumes reach the guest as a virtio-fs or 9p "
         "share (host-to-container propagation works)"},
        {0},
};

/* The share type AUTO picks and why a VMM or share cannot run. */
static void vm_status_json(const struct cri_daemon *d, const struct cfg_runtime *rt, struct sbuf *b)
{
        (void)d;
        enum vm_share_type t =
                vm_share_resolve((enum vm_vmm)rt->vmm, (enum vm_share_type)rt->share, rt->virtiofsd_path);
        const char *swhy = vm_share_unavailable_reason((enum vm_vmm)rt->vmm, (enum vm_share_type)rt->share,
                                                       rt->virtiofsd_path);
        cleanup_free char *fsd = vm_virtiofsd_binary(rt->virtiofsd_path);
        sbuf_printf(b, ",\"share\":\"%s\",\"shareReason\":", t == VM_SHARE_VIRTIOFS ? "virtiofs" : "9p");
        json_quote(b, swhy ? swhy : "");
        sbuf_puts(b, ",\"virtiofsd\":");
        json_quote(b, fsd ? fsd : "");
        const char *vwhy = vm_vmm_unavailable_reason((enum vm_vmm)rt->vmm, rt->vmm_path);
        sbuf_puts(b, ",\"vmmReason\":");
        json_quote(b, vwhy ? vwhy : "");
}

/* ----- pod sandbox ----- */

static int vm_sandbox_check(const struct cri_daemon *d, const struct cfg_runtime *rt,
                            const Runtime__V1__PodSandboxConfig *cfg, struct err *e)
{
        /* The pod's containers run on the guest's kernel: the host's
         * namespaces are out of their reach. Refused before anything
         * is made, rather than quietly given the guest's own. */
        const Runtime__V1__LinuxPodSandboxConfig *lx = cfg->linux;
        const Runtime__V1__NamespaceOption *nso =
                lx && lx->security_context ? lx->security_context->namespace_options : NULL;
        const char *host_ns = !nso                                                ? NULL
                              : nso->network == RUNTIME__V1__NAMESPACE_MODE__NODE ? "network"
                              : nso->pid == RUNTIME__V1__NAMESPACE_MODE__NODE     ? "PID"
                              : nso->ipc == RUNTIME__V1__NAMESPACE_MODE__NODE     ? "IPC"
                                                                                  : NULL;
        if (host_ns)
                return err_set(
                        e, ERR_INVALID,
                        "the host's %s namespace is not possible for a VM pod (runtime handler \"%s\": "
                        "its containers run on the pod's own guest kernel, which cannot share the "
                        "host's namespaces)",
                        host_ns, rt->name);
        return cri_vm_handler_check(d, rt, e);
}

static int vm_sandbox_init(const struct cri_daemon *d, const struct cfg_runtime *rt,
                           const struct store_pod *p, struct cri_pod_extra *x)
{
        (void)rt;
        /* The guest is the pod: only the network namespace (with the tap)
         * is on the host; a shared PID namespace is the guest's pod init. */
        x->vm = true;
        x->vm_dir = xasprintf("%s/vm/%.16s", d->cfg->state, p->id);
        x->host_ipc = x->host_pid = false;
        return CLONE_NEWNET;
}

static int vm_sandbox_start(struct cri_daemon *d, const struct store_pod *p, struct cri_pod_extra *x,
                            const struct cri_sandbox_start *in, struct err *e)
{
        /* Sysctls are set in the guest by its agent; /dev/shm and a shared
         * PID namespace are the guest's too. */
        return cri_vm_sandbox_start(d, in->rt, p, x, in->netns, in->res, in->hostname, in->lx, e);
}

static int vm_sandbox_stop(struct cri_daemon *d, const struct store_pod *p, struct cri_pod_extra *x,
                           struct err *e)
{
        if (cri_vm_sandbox_stop(d, p, x, e) < 0)
                return err_wrap(e, "its VM");
        return 0;
}

static char *vm_sandbox_info(struct cri_daemon *d, const struct store_pod *p, const struct cri_pod_extra *x)
{
        const struct cfg_runtime *rt = cfg_runtime_find(d->cfg, p->runtime_handler);
        return cri_vm_pod_info(x, rt && rt->vmm == CFG_VMM_CLOUD_HYPERVISOR ? "cloud-hypervisor" : "qemu");
}

/* ----- containers ----- */

/* A VM pod's containers: the guest is the pod, so its network, IPC and UTS
 * namespaces are the pod's (the pod's sysctls are set there, its containers
 * share them); a shared PID namespace is the guest's pod init. The host's
 * are out of reach (RunPodSandbox refuses them for the pod). */
static int vm_spec_namespaces(struct rt_spec *s, const Runtime__V1__NamespaceOption *no,
                              const struct cri_pod_extra *x, struct err *e)
{
        s->namespaces[RT_NS_NET].mode = RT_NS_HOST;
        s->namespaces[RT_NS_IPC].mode = RT_NS_HOST;
        s->namespaces[RT_NS_UTS].mode = RT_NS_HOST;
        Runtime__V1__NamespaceMode pid = no ? no->pid : RUNTIME__V1__NAMESPACE_MODE__POD;
        if (pid == RUNTIME__V1__NAMESPACE_MODE__NODE || (no && no->ipc == RUNTIME__V1__NAMESPACE_MODE__NODE))
                return err_set(e, ERR_INVALID,
                               "the host's %s namespace is not possible in a VM pod (its containers run on "
                               "the pod's own guest kernel)",
                               pid == RUNTIME__V1__NAMESPACE_MODE__NODE ? "PID" : "IPC");
        if (pid == RUNTIME__V1__NAMESPACE_MODE__TARGET)
                return err_set(e, ERR_INVALID, "pid namespace TARGET is not supported in a VM pod");
        if (pid == RUNTIME__V1__NAMESPACE_MODE__POD && x->shared_pid) {
                s->namespaces[RT_NS_PID].mode = RT_NS_JOIN;
                s->namespaces[RT_NS_PID].path = xstrdup(VM_GUEST_POD_PIDNS);
        } else {
                s->namespaces[RT_NS_PID].mode = RT_NS_NEW;
        }
        return 0;
}

static int vm_check_mount(const Runtime__V1__Mount *m, struct err *e)
{
        if (m->propagation == RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL)
                return err_set(e, ERR_INVALID,
                               "mount %s: bidirectional mount propagation is not possible in a VM pod: a "
                               "mount made in the guest cannot appear on the host (HOST_TO_CONTAINER works)",
                               m->container_path);
        return 0;
}

static int vm_container_create(struct cri_daemon *d, const struct store_pod *p, const struct cri_pod_extra *x,
                               struct cri_ctr_create *c, struct err *e)
{
        (void)d;
        (void)p;
        /* The cgroup is the guest's: nothing to remove on the host. */
        c->host_cgroup = false;
        return cri_vm_container_create(x, c->id, c->spec, c->state_dir, c->log_path, c->stdin_open,
                                       c->stdin_once, e);
}

static bool vm_container_usage(struct cri_daemon *d, const struct cri_pod_extra *x, const char *ctr_id,
                               uint64_t *cpu_ns, uint64_t *memory)
{
        (void)d;
        return cri_vm_ctr_usage(x, ctr_id, cpu_ns, memory);
}

static int vm_guest_conn(const struct cri_pod_extra *x, struct shim_conn **out, struct err *e)
{
        if (x->vm_dir == NULL)
                return err_set(e, ERR_PRECONDITION, "the VM pod has no state dir");
        return shim_connect(x->vm_dir, out, e);
}

/* The VM shim answers a wait on its VM socket when the VM ends; a shim that
 * dies hangs the connection up. */
static int vm_sandbox_watch(const struct cri_pod_extra *x, struct shim_conn **out, struct err *e)
{
        *out = NULL;
        if (vm_guest_conn(x, out, e) < 0 || shim_wait_begin(*out, e) < 0) {
                shim_close(*out);
                *out = NULL;
                return -1;
        }
        return 0;
}

const struct cri_handler_ops cri_handler_vm = {
        .type = "vm",
        .unusable = vm_unusable,
        .note = vm_note,
        .userns = vm_userns,
        .no_userns = "a VM pod runs its own kernel and is isolated by the VM",
        .rro = vm_rro,
        .unsupported = vm_unsupported,
        .status_json = vm_status_json,
        .sandbox_check = vm_sandbox_check,
        .sandbox_init = vm_sandbox_init,
        .sandbox_start = vm_sandbox_start,
        .sandbox_stop = vm_sandbox_stop,
        .sandbox_dead = cri_vm_pod_dead,
        .sandbox_watch = vm_sandbox_watch,
        .info_key = "vm",
        .sandbox_info = vm_sandbox_info,
        .stop_again_on_remove = true,
        .spec_namespaces = vm_spec_namespaces,
        .check_mount = vm_check_mount,
        .container_create = vm_container_create,
        .host_process = false,
        .container_usage = vm_container_usage,
        .guest_conn = vm_guest_conn,
        .exec = cri_vm_exec,
        .port_forward = cri_vm_port_forward,
};
