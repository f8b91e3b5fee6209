/* A pod's user namespace (KEP-127, namespace_options.userns_options): what
 * RunPodSandbox accepts, as kubelet sends it and critest checks it. Mode
 * NODE (or no options) is the host's; mode POD gets one user namespace for
 * the whole pod with exactly the one uid and one gid range kubelet
 * allocated, container id 0 mapped. The namespace itself is made and pinned
 * in pods.c (rt_userns_new, net_ns_pin_userns); containers join it
 * (ctr_spec.c). */
#include <string.h>
#include <yajl/yajl_tree.h>

#include "config/config.h"
#include "cri/cri-internal.h"
#include "cri/handler-internal.h"
#include "runtime/runtime.h"

static const char *mode_name(Runtime__V1__NamespaceMode m)
{
        switch (m) {
        case RUNTIME__V1__NAMESPACE_MODE__POD:
                return "POD";
        case RUNTIME__V1__NAMESPACE_MODE__CONTAINER:
                return "CONTAINER";
        case RUNTIME__V1__NAMESPACE_MODE__NODE:
                return "NODE";
        case RUNTIME__V1__NAMESPACE_MODE__TARGET:
                return "TARGET";
        default:
                return "unknown";
        }
}

static int one_mapping(const char *what, Runtime__V1__IDMapping *const *m, size_t n, uint32_t out[3],
                       struct err *e)
{
        if (n != 1)
                return err_set(e, ERR_INVALID,
                               "user namespace mode POD needs exactly one %s mapping, got %zu (kubelet "
                               "allocates one range per pod)",
                               what, n);
        if (m[0]->container_id != 0)
                return err_set(e, ERR_INVALID,
                               "user namespace %s mapping %u:%u:%u does not map container id 0 (the "
                               "container's root)",
                               what, m[0]->container_id, m[0]->host_id, m[0]->length);
        if (m[0]->length == 0 || (uint64_t)m[0]->host_id + m[0]->length > (uint64_t)UINT32_MAX)
                return err_set(e, ERR_INVALID, "user namespace %s mapping %u:%u:%u is empty or past 2^32-1",
                               what, m[0]->container_id, m[0]->host_id, m[0]->length);
        out[0] = m[0]->container_id;
        out[1] = m[0]->host_id;
        out[2] = m[0]->length;
        return 0;
}

int cri_pod_userns(const Runtime__V1__PodSandboxConfig *cfg, const struct cfg_runtime *rt,
                   struct cri_pod_extra *x, struct err *e)
{
        const Runtime__V1__LinuxPodSandboxConfig *lx = cfg ? cfg->linux : NULL;
        const Runtime__V1__NamespaceOption *no =
                lx && lx->security_context ? lx->security_context->namespace_options : NULL;
        const Runtime__V1__UserNamespace *u = no ? no->userns_options : NULL;
        if (u == NULL)
                return 0;
        if (u->mode == RUNTIME__V1__NAMESPACE_MODE__NODE) {
                if (u->n_uids || u->n_gids)
                        return err_set(
                                e, ERR_INVALID,
                                "user namespace mode NODE takes no uid/gid mappings (it is the host's)");
                return 0;
        }
        if (u->mode != RUNTIME__V1__NAMESPACE_MODE__POD)
                return err_set(e, ERR_INVALID, "user namespace mode %s is not supported (only POD or NODE)",
                               mode_name(u->mode));
        if (cri_handler_of(rt)->no_userns)
                return err_set(e, ERR_INVALID,
                               "user namespace mode POD is not supported by runtime handler \"%s\": %s",
                               rt->name, cri_handler_of(rt)->no_userns);
        const char *shared = no->network == RUNTIME__V1__NAMESPACE_MODE__NODE ? "network"
                             : no->pid == RUNTIME__V1__NAMESPACE_MODE__NODE   ? "PID"
                             : no->ipc == RUNTIME__V1__NAMESPACE_MODE__NODE   ? "IPC"
                                                                              : NULL;
        if (shared)
                return err_set(e, ERR_INVALID,
                               "user namespace mode POD with the host's %s namespace: a pod's user namespace "
                               "cannot own the host's namespaces",
                               shared);
        uint32_t um[3], gm[3];
        if (one_mapping("uid", u->uids, u->n_uids, um, e) < 0 ||
            one_mapping("gid", u->gids, u->n_gids, gm, e) < 0)
                return -1;
        const struct rt_features *f = rt_host_features();
        if (!f->userns_pods)
                return err_set(e, ERR_INVALID, "user namespace mode POD is not possible on this host: %s",
                               f->userns_pods_why ? f->userns_pods_why : "unknown");
        if (x) {
                x->userns = true;
                memcpy(x->userns_uid, um, sizeof(um));
                memcpy(x->userns_gid, gm, sizeof(gm));
        }
        return 0;
}
