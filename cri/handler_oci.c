/* The oci handler type: an OCI runtime binary (runc, crun, ...) runs the
 * containers. The pod is the namespace type's (pinned namespaces, CNI,
 * /dev/shm, sysctls, pod init); each container is a corral-shim that writes
 * the OCI bundle's config.json from the same spec and drives the runtime's
 * create/start/delete (shim/oci.c), so logs, exit records, attach, exec and
 * a restart of corrald are the same as for namespace containers. The
 * runtime's state lives under <state>/oci/<runtime>. */
#include <libgen.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "store/store.h"

static char *oci_unusable(const struct cri_daemon *d, const struct cfg_runtime *rt)
{
        (void)d;
        if (!rt->runtime_path || !*rt->runtime_path)
                return xasprintf("runtime handler \"%s\": no runtimes.%s.runtime_path", rt->name, rt->name);
        if (access(rt->runtime_path, X_OK) != 0)
                return xasprintf(
                        "runtime handler \"%s\": OCI runtime %s is not executable (runtimes.%s.runtime_path)",
                        rt->name, rt->runtime_path, rt->name);
        return NULL;
}

static const char oci_no_userns[] =
        "the layers and volumes of a KEP-127 pod are idmapped by corral's own runtime; the OCI handler "
        "type does not pass them to the OCI runtime";

static bool oci_userns(const char **why)
{
        if (why)
                *why = oci_no_userns;
        return false;
}

static bool oci_rro(void)
{
        /* runc 1.1 and crun 1.8 (Debian 12) do not know the "rro" option. */
        return false;
}

static const struct cri_unsupported oci_unsupported[] = {{0}};

/* The runtime's --root: one per binary, so two handlers naming the same
 * runtime see the same containers. Caller frees. */
static char *runtime_root(const struct cri_daemon *d, const char *runtime_path)
{
        cleanup_free char *copy = xstrdup(runtime_path);
        return xasprintf("%s/oci/%s", d->cfg->state, basename(copy));
}

static void oci_status_json(const struct cri_daemon *d, const struct cfg_runtime *rt, struct sbuf *b)
{
        sbuf_puts(b, ",\"runtimePath\":");
        json_quote(b, rt->runtime_path);
        cleanup_free char *root = runtime_root(d, rt->runtime_path);
        sbuf_puts(b, ",\"runtimeRoot\":");
        json_quote(b, root);
}

static int oci_sandbox_check(const struct cri_daemon *d, const struct cfg_runtime *rt,
                             const Runtime__V1__PodSandboxConfig *cfg, struct err *e)
{
        (void)cfg;
        cleanup_free char *why = oci_unusable(d, rt);
        if (why)
                return err_set(e, ERR_PRECONDITION, "%s", why);
        return 0;
}

static int oci_sandbox_init(const struct cri_daemon *d, const struct cfg_runtime *rt,
                            const struct store_pod *p, struct cri_pod_extra *x)
{
        x->oci_runtime = xstrdup(rt->runtime_path);
        return cri_handler_ns.sandbox_init(d, rt, p, x);
}

static int oci_container_create(struct cri_daemon *d, const struct store_pod *p,
                                const struct cri_pod_extra *x, struct cri_ctr_create *c, struct err *e)
{
        (void)p;
        cleanup_free char *root = runtime_root(d, x->oci_runtime);
        return cri_ns_shim_create(x, c, x->oci_runtime, root, e);
}

const struct cri_handler_ops cri_handler_oci = {
        .type = "oci",
        .unusable = oci_unusable,
        .userns = oci_userns,
        .no_userns = oci_no_userns,
        .rro = oci_rro,
        .unsupported = oci_unsupported,
        .status_json = oci_status_json,
        .sandbox_check = oci_sandbox_check,
        .sandbox_init = oci_sandbox_init,
        .sandbox_start = cri_ns_sandbox_start,
        .sandbox_stop = cri_ns_sandbox_stop,
        .container_create = oci_container_create,
        .host_process = true,
        .exec = cri_ns_exec,
        .port_forward = cri_ns_port_forward,
};
