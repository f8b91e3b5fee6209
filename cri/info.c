/* Version, Status, RuntimeConfig, UpdateRuntimeConfig: what kubelet asks
 * first and then every few seconds. */
#include <string.h>

#include "config/config.h"
#include "vm/vm.h"
#include "cri/cri-internal.h"
#include "runtime/runtime.h"
#include "store/store.h"

#define CRI_API_VERSION "v1"

static int version(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                   ProtobufCMessage **resp, struct err *e)
{
        (void)d, (void)call, (void)req, (void)e;
        Runtime__V1__VersionResponse *r = xmalloc(sizeof(*r));
        runtime__v1__version_response__init(r);
        r->version = xstrdup("0.1.0"); /* the kubelet runtime API version */
        r->runtime_name = xstrdup("corral");
        r->runtime_version = xstrdup(CORRAL_VERSION);
        r->runtime_api_version = xstrdup(CRI_API_VERSION);
        *resp = &r->base;
        return 0;
}

static Runtime__V1__RuntimeCondition *condition(const char *type, bool status, const char *reason,
                                                const char *msg)
{
        Runtime__V1__RuntimeCondition *c = xmalloc(sizeof(*c));
        runtime__v1__runtime_condition__init(c);
        c->type = xstrdup(type);
        c->status = status;
        c->reason = xstrdup(reason ? reason : "");
        c->message = xstrdup(msg ? msg : "");
        return c;
}

static Runtime__V1__StatusResponse__InfoEntry *info_entry(const char *key, char *value /* owned */)
{
        Runtime__V1__StatusResponse__InfoEntry *kv = xmalloc(sizeof(*kv));
        runtime__v1__status_response__info_entry__init(kv);
        kv->key = xstrdup(key);
        kv->value = value;
        return kv;
}

bool cri_rro_supported(bool vm)
{
        /* In a VM pod the agent applies "rro" in the guest (same runtime/,
         * the guest kernel has mount_setattr), to the volume and to each of
         * its submounts, which the VM shim shares one by one. */
        return vm || rt_host_features()->new_mount_api;
}

/* Whether a handler can run on this host, and why not. */
static bool handler_usable(const struct cri_daemon *d, const struct cfg_runtime *rt, const char **why)
{
        *why = "";
        if (rt->type != CFG_RUNTIME_VM)
                return true;
        /* The reason stays valid for the reply: kept per handler until the next Status. */
        static __thread char buf[1024];
        char *not = cri_vm_handler_unusable(d, rt);
        if (not ) {
                snprintf(buf, sizeof(buf), "%s", not );
                free(not );
                *why = buf;
                return false;
        }
        char *note = cri_vm_handler_note(d);
        snprintf(buf, sizeof(buf), "%s", note);
        free(note);
        *why = buf;
        return true;
}

/* What a VM pod cannot do, by design, with the reason; Status verbose lists
 * it per handler ("unsupported") so that an operator, and a conformance run,
 * can tell a declared limit from a bug. RunPodSandbox and CreateContainer
 * refuse each of them with InvalidArgument before anything is made. */
static const struct {
        const char *feature;
        const char *reason;
} vm_unsupported[] = {
        {"hostNetwork", "the containers run on the guest's kernel, which cannot use the host's network "
                        "namespace (port-forward into such a pod neither)"},
        {"hostPID", "the guest's kernel cannot see the host's processes"},
        {"hostIPC", "the guest's kernel cannot share the host's IPC objects"},
        {"mountPropagationBidirectional",
         "a mount made in the guest cannot appear on the host: volumes reach the guest as a virtio-fs or 9p "
         "share (host-to-container propagation works)"},
};

static void unsupported_json(struct sbuf *b, const struct cfg_runtime *rt)
{
        sbuf_puts(b, ",\"unsupported\":[");
        for (size_t k = 0; rt->type == CFG_RUNTIME_VM && k < ARRAY_SIZE(vm_unsupported); k++) {
                sbuf_printf(b, "%s{\"feature\":", k ? "," : "");
                json_quote(b, vm_unsupported[k].feature);
                sbuf_puts(b, ",\"reason\":");
                json_quote(b, vm_unsupported[k].reason);
                sbuf_putc(b, '}');
        }
        sbuf_putc(b, ']');
}

/* Status verbose: per handler whether it can run here and why not; for VM
 * handlers the share type AUTO picks and why a VMM or share cannot run.
 * Only for verbose Status: kubelet's periodic Status need not pay for it. */
static char *handlers_json(const struct cri_daemon *d)
{
        const struct cfg *cfg = d->cfg;
        struct sbuf hb = {0};
        sbuf_putc(&hb, '[');
        for (size_t i = 0; i < cfg->n_runtimes; i++) {
                const struct cfg_runtime *rt = &cfg->runtimes[i];
                const char *why;
                bool ok = handler_usable(d, rt, &why);
                sbuf_printf(&hb, "%s{\"name\":", i ? "," : "");
                json_quote(&hb, rt->name);
                sbuf_printf(&hb, ",\"type\":\"%s\",\"usable\":%s,\"reason\":",
                            rt->type == CFG_RUNTIME_VM ? "vm" : "namespace", ok ? "true" : "false");
                json_quote(&hb, why);
                const struct rt_features *f = rt_host_features();
                bool userns = rt->type == CFG_RUNTIME_NAMESPACE && f->userns_pods;
                sbuf_printf(&hb,
                            ",\"userNamespaces\":%s,\"userNamespacesReason\":", userns ? "true" : "false");
                json_quote(
                        &hb,
                        rt->type == CFG_RUNTIME_VM
                                ? "a VM pod runs its own guest kernel: the VM isolates it, not a host user "
                                  "namespace (KEP-127 user namespaces are not supported)"
                        : userns ? ""
                                 : f->userns_pods_why);
                unsupported_json(&hb, rt);
                if (rt->type == CFG_RUNTIME_VM) {
                        enum vm_share_type t = vm_share_resolve(
                                (enum vm_vmm)rt->vmm, (enum vm_share_type)rt->share, rt->virtiofsd_path);
                        const char *swhy = vm_share_unavailable_reason(
                                (enum vm_vmm)rt->vmm, (enum vm_share_type)rt->share, rt->virtiofsd_path);
                        cleanup_free char *fsd = vm_virtiofsd_binary(rt->virtiofsd_path);
                        sbuf_printf(&hb, ",\"share\":\"%s\",\"shareReason\":",
                                    t == VM_SHARE_VIRTIOFS ? "virtiofs" : "9p");
                        json_quote(&hb, swhy ? swhy : "");
                        sbuf_puts(&hb, ",\"virtiofsd\":");
                        json_quote(&hb, fsd ? fsd : "");
                        const char *vwhy = vm_vmm_unavailable_reason((enum vm_vmm)rt->vmm, rt->vmm_path);
                        sbuf_puts(&hb, ",\"vmmReason\":");
                        json_quote(&hb, vwhy ? vwhy : "");
                }
                sbuf_putc(&hb, '}');
        }
        sbuf_putc(&hb, ']');
        return sbuf_steal(&hb);
}

static char *host_json(const struct cri_daemon *d)
{
        const struct rt_features *f = rt_host_features();
        /* "kvm" means guests run under it: /dev/kvm that creates VMs but
         * boots none (nested, emulated) is reported with the reason. */
        cleanup_free char *kvm_broken = d->has_kvm ? cri_vm_kvm_broken(d) : NULL;
        bool kvm = d->has_kvm && kvm_broken == NULL;
        struct sbuf b = {0};
        sbuf_puts(&b, "{\"cgroupMode\":");
        json_quote(&b, d->cgroup_mode);
        sbuf_puts(&b, ",\"cgroupDriver\":");
        json_quote(&b, d->cgroup_driver);
        sbuf_puts(&b, ",\"cgroupControllers\":");
        json_quote(&b, f->cgroup_controllers ? f->cgroup_controllers : "");
        sbuf_printf(&b,
                    ",\"capSysResource\":%s,\"seccomp\":%s,\"openat2\":%s,\"clone3\":%s,\"kvm\":%s,"
                    "\"userNamespaces\":%s,\"systemd\":%s",
                    f->cap_sys_resource ? "true" : "false", f->seccomp ? "true" : "false",
                    f->openat2 ? "true" : "false", f->clone3 ? "true" : "false", kvm ? "true" : "false",
                    f->user_namespaces ? "true" : "false", f->systemd_running ? "true" : "false");
        cleanup_free char *caps_missing = rt_caps_missing_string(f);
        sbuf_puts(&b, ",\"capsMissing\":[");
        cleanup_free char *cm = xstrdup(caps_missing);
        for (char *save = NULL, *t = strtok_r(cm, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                sbuf_puts(&b, t == cm ? "" : ",");
                json_quote(&b, t);
        }
        sbuf_puts(&b, "],\"missing\":[");
        const char *sep = "";
        if (!f->cap_sys_resource) {
                sbuf_printf(&b, "%s\"CAP_SYS_RESOURCE (oom_score_adj is clamped)\"", sep);
                sep = ",";
        }
        if (caps_missing[0]) {
                cleanup_free char *m = xasprintf(
                        "capabilities %s (not in corrald's bounding set: left out of every container's sets, "
                        "ALL and privileged included)",
                        caps_missing);
                sbuf_puts(&b, sep);
                json_quote(&b, m);
                sep = ",";
        }
        if (!d->has_kvm) {
                sbuf_printf(&b, "%s\"/dev/kvm (VM pods run under QEMU TCG only)\"", sep);
                sep = ",";
        } else if (kvm_broken) {
                cleanup_free char *m = xasprintf("KVM: %s (VM pods run under QEMU TCG)", kvm_broken);
                sbuf_puts(&b, sep);
                json_quote(&b, m);
                sep = ",";
        }
        if (f->cgroup_mode != RT_CGROUP_V2_UNIFIED)
                sbuf_printf(&b, "%s\"cgroup v2 unified hierarchy (using v1 controllers)\"", sep);
        if (f->cgroup_mode != RT_CGROUP_V2_UNIFIED)
                sep = ",";
        if (d->cgroup_note) {
                sbuf_puts(&b, sep);
                json_quote(&b, d->cgroup_note);
        }
        sbuf_puts(&b, "]}");
        return sbuf_steal(&b);
}

static int status(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                  ProtobufCMessage **resp, struct err *e)
{
        (void)call, (void)e;
        const Runtime__V1__StatusRequest *rq = (const Runtime__V1__StatusRequest *)req;
        Runtime__V1__StatusResponse *r = xmalloc(sizeof(*r));
        runtime__v1__status_response__init(r);
        Runtime__V1__RuntimeStatus *st = xmalloc(sizeof(*st));
        runtime__v1__runtime_status__init(st);
        r->status = st;
        st->n_conditions = 2;
        st->conditions = xcalloc(2, sizeof(*st->conditions));
        st->conditions[0] = condition("RuntimeReady", true, NULL, NULL);
        cleanup_free char *net_reason = NULL, *net_msg = NULL;
        bool net_ready = cri_network_ready(d, &net_reason, &net_msg);
        st->conditions[1] = condition("NetworkReady", net_ready, net_reason, net_msg);

        const struct cfg *cfg = d->cfg;
        r->n_runtime_handlers = cfg->n_runtimes;
        r->runtime_handlers = xcalloc(cfg->n_runtimes ? cfg->n_runtimes : 1, sizeof(*r->runtime_handlers));
        for (size_t i = 0; i < cfg->n_runtimes; i++) {
                const struct cfg_runtime *rt = &cfg->runtimes[i];
                Runtime__V1__RuntimeHandler *h = xmalloc(sizeof(*h));
                runtime__v1__runtime_handler__init(h);
                h->name = xstrdup(rt->name);
                h->features = xmalloc(sizeof(*h->features));
                runtime__v1__runtime_handler_features__init(h->features);
                h->features->recursive_read_only_mounts =
                        cri_rro_supported(rt->type != CFG_RUNTIME_NAMESPACE);
                /* A VM pod is its own kernel: no host user namespace for it. */
                h->features->user_namespaces =
                        rt->type == CFG_RUNTIME_NAMESPACE && rt_host_features()->userns_pods;
                r->runtime_handlers[i] = h;
        }
        r->features = xmalloc(sizeof(*r->features));
        runtime__v1__runtime_features__init(r->features);
        r->features->supplemental_groups_policy = true;
        if (rq->verbose) {
                struct sbuf cb = {0};
                cfg_to_json(cfg, &cb);
                r->n_info = 3;
                r->info = xcalloc(3, sizeof(*r->info));
                r->info[0] = info_entry("config", sbuf_steal(&cb));
                r->info[1] = info_entry("host", host_json(d));
                r->info[2] = info_entry("runtimeHandlers", handlers_json(d));
        }
        *resp = &r->base;
        return 0;
}

static int runtime_config(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                          ProtobufCMessage **resp, struct err *e)
{
        (void)call, (void)req, (void)e;
        Runtime__V1__RuntimeConfigResponse *r = xmalloc(sizeof(*r));
        runtime__v1__runtime_config_response__init(r);
        r->linux = xmalloc(sizeof(*r->linux));
        runtime__v1__linux_runtime_configuration__init(r->linux);
        r->linux->cgroup_driver = strcmp(d->cgroup_driver, "systemd") == 0
                                          ? RUNTIME__V1__CGROUP_DRIVER__SYSTEMD
                                          : RUNTIME__V1__CGROUP_DRIVER__CGROUPFS;
        *resp = &r->base;
        return 0;
}

static int update_runtime_config(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                                 ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__UpdateRuntimeConfigRequest *rq =
                (const Runtime__V1__UpdateRuntimeConfigRequest *)req;
        const char *cidr = rq->runtime_config && rq->runtime_config->network_config
                                   ? rq->runtime_config->network_config->pod_cidr
                                   : NULL;
        if (cidr && *cidr) {
                if (strchr(cidr, '/') == NULL)
                        return err_set(e, ERR_INVALID, "pod CIDR %s is not in CIDR notation", cidr);
                if (store_meta_set(d->store, "pod_cidr", cidr, e) < 0)
                        return err_wrap(e, "store pod CIDR");
                log_info("cri", "pod CIDR updated cidr=%s", cidr);
        }
        Runtime__V1__UpdateRuntimeConfigResponse *r = xmalloc(sizeof(*r));
        runtime__v1__update_runtime_config_response__init(r);
        *resp = &r->base;
        return 0;
}

const struct cri_handler cri_info_handlers[] = {
        {.name = "Version", .unary = version, .flags = CRI_INLINE},
        {.name = "Status", .unary = status},
        {.name = "RuntimeConfig", .unary = runtime_config, .flags = CRI_INLINE},
        {.name = "UpdateRuntimeConfig", .unary = update_runtime_config},
        {0},
};
