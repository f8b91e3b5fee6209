/* The runtime handler of a configured handler or of a pod: one table per
 * type (handler-internal.h). A pod's type is in its private state, written
 * at RunPodSandbox, so a pod keeps its type if the config changes. */
#include "config/config.h"
#include "cri/handler-internal.h"
#include "store/store.h"

const struct cri_handler_ops *cri_handler_of(const struct cfg_runtime *rt)
{
        switch (rt->type) {
        case CFG_RUNTIME_VM:
                return &cri_handler_vm;
        case CFG_RUNTIME_OCI:
                return &cri_handler_oci;
        default:
                return &cri_handler_ns;
        }
}

const struct cri_handler_ops *cri_handler_of_pod(const struct cri_pod_extra *x)
{
        if (x->vm)
                return &cri_handler_vm;
        if (x->oci_runtime)
                return &cri_handler_oci;
        return &cri_handler_ns;
}

const struct cri_handler_ops *cri_handler_of_pod_id(struct cri_daemon *d, const char *pod_id)
{
        struct store_pod p = {0};
        cleanup_err struct err e = ERR_INIT;
        if (model_pod_get(d->model, pod_id, &p, &e) < 0)
                return &cri_handler_ns;
        struct cri_pod_extra x = {0};
        const struct cri_handler_ops *h =
                cri_pod_extra_parse(p.extra_json, &x, &e) == 0 ? cri_handler_of_pod(&x) : &cri_handler_ns;
        cri_pod_extra_clear(&x);
        store_pod_clear(&p);
        return h;
}
