/* The private state of pod and container records (the extra_json the
 * store keeps for cri/) to and from JSON, and the small facts every layer
 * asks of a record. The bottom of cri/: it calls the model and util only.
 * See docs/architecture.md, "The state model". */
#include <libgen.h>
#include <limits.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"

/* ---------- private state ---------- */

int ctr_extra_parse(const char *json, struct ctr_extra *out)
{
        memset(out, 0, sizeof(*out));
        if (json == NULL)
                return -1;
        yajl_val v = json_parse(json, strlen(json), "container state", NULL);
        if (v == NULL)
                return -1;
        out->bundle = xstrdup(json_get_str(v, "bundle"));
        out->state_dir = xstrdup(json_get_str(v, "state_dir"));
        out->cgroup = xstrdup(json_get_str(v, "cgroup"));
        out->stop_signal = xstrdup(json_get_str(v, "stop_signal"));
        out->image_ref = xstrdup(json_get_str(v, "image_ref"));
        out->user = xstrdup(json_get_str(v, "user"));
        int64_t pid = 0;
        if (json_get_int(v, "shim_pid", &pid))
                out->shim_pid = (int)pid;
        (void)json_get_bool(v, "ready", &out->ready);
        (void)json_get_bool(v, "deferred", &out->deferred);
        yajl_tree_free(v);
        return 0;
}

static void put_str(struct sbuf *b, const char *key, const char *val, bool comma)
{
        sbuf_printf(b, "%s\"%s\":", comma ? "," : "", key);
        if (val)
                json_quote(b, val);
        else
                sbuf_puts(b, "null");
}

char *ctr_extra_json(const struct ctr_extra *x)
{
        struct sbuf b = {0};
        sbuf_putc(&b, '{');
        put_str(&b, "bundle", x->bundle, false);
        put_str(&b, "state_dir", x->state_dir, true);
        put_str(&b, "cgroup", x->cgroup, true);
        put_str(&b, "stop_signal", x->stop_signal, true);
        put_str(&b, "image_ref", x->image_ref, true);
        if (x->user)
                put_str(&b, "user", x->user, true);
        sbuf_printf(&b, ",\"shim_pid\":%d,\"ready\":%s", x->shim_pid, x->ready ? "true" : "false");
        if (x->deferred)
                sbuf_puts(&b, ",\"deferred\":true");
        sbuf_putc(&b, '}');
        return sbuf_steal(&b);
}

bool ctr_deferred(const struct store_container *c)
{
        if (c->state != STORE_CTR_CREATED)
                return false;
        struct ctr_extra x;
        (void)ctr_extra_parse(c->extra_json, &x);
        bool d = x.deferred;
        ctr_extra_clear(&x);
        return d;
}

void ctr_extra_clear(struct ctr_extra *x)
{
        free(x->bundle);
        free(x->state_dir);
        free(x->cgroup);
        free(x->stop_signal);
        free(x->image_ref);
        free(x->user);
        memset(x, 0, sizeof(*x));
}

Runtime__V1__ContainerConfig *ctr_config(const struct store_container *c)
{
        if (c->config == NULL || c->config_len == 0)
                return NULL;
        return runtime__v1__container_config__unpack(NULL, c->config_len, c->config);
}

char *cri_shim_binary(void)
{
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
                return xstrdup("corral-shim");
        exe[n] = '\0';
        return path_join(dirname(exe), "corral-shim");
}

const char *ctr_state_str(int st)
{
        switch (st) {
        case STORE_CTR_CREATED:
                return "created";
        case STORE_CTR_RUNNING:
                return "running";
        case STORE_CTR_EXITED:
                return "exited";
        default:
                return "unknown";
        }
}

/* ---------- the pod's private state ---------- */

char *cri_pod_extra_json(const struct cri_pod_extra *x)
{
        struct sbuf b = {0};
        sbuf_puts(&b, "{\"ns_dir\":");
        json_quote(&b, x->ns_dir);
        sbuf_puts(&b, ",\"pod_dir\":");
        json_quote(&b, x->pod_dir);
        sbuf_puts(&b, ",\"cgroup\":");
        json_quote(&b, x->cgroup);
        sbuf_printf(&b,
                    ",\"host_net\":%s,\"host_ipc\":%s,\"host_pid\":%s,\"shared_pid\":%s,\"pod_init_pid\":%d,"
                    "\"net_setup\":%s}",
                    x->host_net ? "true" : "false", x->host_ipc ? "true" : "false",
                    x->host_pid ? "true" : "false", x->shared_pid ? "true" : "false", x->pod_init_pid,
                    x->net_setup ? "true" : "false");
        cri_pod_userns_to_json(&b, x);
        if (x->vm) {
                /* Only VM pods carry these: namespace records stay as they were. */
                b.len--; /* the closing brace */
                sbuf_puts(&b, ",\"vm\":true,\"vm_dir\":");
                json_quote(&b, x->vm_dir);
                sbuf_printf(&b, ",\"vm_shim_pid\":%d}", x->vm_shim_pid);
        }
        if (x->oci_runtime) {
                /* Only OCI-handler pods: the runtime binary stays the pod's for its life. */
                b.len--;
                sbuf_puts(&b, ",\"oci_runtime\":");
                json_quote(&b, x->oci_runtime);
                sbuf_putc(&b, '}');
        }
        return sbuf_steal(&b);
}

int cri_pod_extra_parse(const char *json, struct cri_pod_extra *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        if (json == NULL)
                return err_set(e, ERR_INTERNAL, "pod record has no private state");
        yajl_val v = json_parse(json, strlen(json), "pod state", e);
        if (v == NULL)
                return -1;
        out->ns_dir = xstrdup(json_get_str(v, "ns_dir"));
        out->pod_dir = xstrdup(json_get_str(v, "pod_dir"));
        out->cgroup = xstrdup(json_get_str(v, "cgroup"));
        (void)json_get_bool(v, "host_net", &out->host_net);
        (void)json_get_bool(v, "host_ipc", &out->host_ipc);
        (void)json_get_bool(v, "host_pid", &out->host_pid);
        (void)json_get_bool(v, "shared_pid", &out->shared_pid);
        (void)json_get_bool(v, "net_setup", &out->net_setup);
        int64_t pid = 0;
        if (json_get_int(v, "pod_init_pid", &pid))
                out->pod_init_pid = (int)pid;
        cri_pod_userns_from_json(v, out);
        (void)json_get_bool(v, "vm", &out->vm);
        out->vm_dir = xstrdup(json_get_str(v, "vm_dir"));
        if (json_get_int(v, "vm_shim_pid", &pid))
                out->vm_shim_pid = (int)pid;
        out->oci_runtime = xstrdup(json_get_str(v, "oci_runtime"));
        yajl_tree_free(v);
        return 0;
}

void cri_pod_extra_clear(struct cri_pod_extra *x)
{
        free(x->ns_dir);
        free(x->pod_dir);
        free(x->cgroup);
        free(x->vm_dir);
        free(x->oci_runtime);
        memset(x, 0, sizeof(*x));
}

int cri_pod_save_extra(struct cri_daemon *d, struct store_pod *p, const struct cri_pod_extra *x,
                       struct err *e)
{
        free(p->extra_json);
        p->extra_json = cri_pod_extra_json(x);
        return model_pod_put(d->model, p, e);
}

void cri_pod_userns_to_json(struct sbuf *b, const struct cri_pod_extra *x)
{
        if (!x->userns)
                return;
        b->len--; /* the closing brace */
        sbuf_printf(b, ",\"userns\":[%u,%u,%u,%u,%u,%u]}", x->userns_uid[0], x->userns_uid[1],
                    x->userns_uid[2], x->userns_gid[0], x->userns_gid[1], x->userns_gid[2]);
}

void cri_pod_userns_from_json(yajl_val v, struct cri_pod_extra *x)
{
        const char *path[] = {"userns", NULL};
        yajl_val u = yajl_tree_get(v, path, yajl_t_array);
        if (u == NULL || !YAJL_IS_ARRAY(u) || u->u.array.len != 6)
                return;
        x->userns = true;
        for (size_t i = 0; i < 6; i++) {
                yajl_val n = u->u.array.values[i];
                uint32_t id = YAJL_IS_INTEGER(n) ? (uint32_t)YAJL_GET_INTEGER(n) : 0;
                if (i < 3)
                        x->userns_uid[i] = id;
                else
                        x->userns_gid[i - 3] = id;
        }
}
