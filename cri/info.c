/* Version, Status, RuntimeConfig, UpdateRuntimeConfig: what kubelet asks
 * first and then every few seconds. */
#include <string.h>

#include "config/config.h"
#include "cri/cri-internal.h"
#include "cri/handler-internal.h"
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

/* Whether a handler can run on this host, and why not. */
static bool handler_usable(const struct cri_daemon *d, const struct cfg_runtime *rt, const char **why)
{
        const struct cri_handler_ops *h = cri_handler_of(rt);
        *why = "";
        /* The reason stays valid for the reply: kept per handler until the next Status. */
        static __thread char buf[1024];
        char *not = h->unusable(d, rt);
        if (not ) {
                snprintf(buf, sizeof(buf), "%s", not );
                free(not );
                *why = buf;
                return false;
        }
        char *note = h->note ? h->note(d, rt) : NULL;
        if (note) {
                snprintf(buf, sizeof(buf), "%s", note);
                free(note);
                *why = buf;
        }
        return true;
}

/* What a handler cannot do, by design, with the reason ("unsupported"),
 * so that an operator, and a conformance run, can tell a declared limit
 * from a bug. */
static void unsupported_json(struct sbuf *b, const struct cri_handler_ops *h)
{
        sbuf_puts(b, ",\"unsupported\":[");
        for (size_t k = 0; h->unsupported[k].feature; k++) {
                sbuf_printf(b, "%s{\"feature\":", k ? "," : "");
                json_quote(b, h->unsupported[k].feature);
                sbuf_puts(b, ",\"reason\":");
                json_quote(b, h->unsupported[k].reason);
                sbuf_putc(b, '}');
        }
        sbuf_putc(b, ']');
}

/* Status verbose: per handler whether it can run here and why not, and
 * what its type adds (a VM handler's share type and VMM).
 * Only for verbose Status: kubelet's periodic Status need not pay for it. */
static char *handlers_json(const struct cri_daemon *d)
{
        const struct cfg *cfg = d->cfg;
        struct sbuf hb = {0};
        sbuf_putc(&hb, '[');
        for (size_t i = 0; i < cfg->n_runtimes; i++) {
                const struct cfg_runtime *rt = &cfg->runtimes[i];
                const struct cri_handler_ops *h = cri_handler_of(rt);
                const char *why;
                bool ok = handler_usable(d, rt, &why);
                sbuf_printf(&hb, "%s{\"name\":", i ? "," : "");
                json_quote(&hb, rt->name);
                sbuf_printf(&hb, ",\"type\":\"%s\",\"usable\":%s,\"reason\":", h->type,
                            ok ? "true" : "false");
                json_quote(&hb, why);
                const char *uwhy = "";
                bool userns = h->userns(&uwhy);
                sbuf_printf(&hb,
                            ",\"userNamespaces\":%s,\"userNamespacesReason\":", userns ? "true" : "false");
                json_quote(&hb, uwhy ? uwhy : "");
                unsupported_json(&hb, h);
                if (h->status_json)
                        h->status_json(d, rt, &hb);
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
                const struct cri_handler_ops *ops = cri_handler_of(rt);
                h->features->recursive_read_only_mounts = ops->rro();
                h->features->user_namespaces = ops->userns(NULL);
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
