/* UpdateContainerResources and ReopenContainerLog: through the container's
 * shim (its cgroup, its log file), falling back to the cgroup directly when
 * the shim is gone. */
#include <string.h>

#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "runtime/runtime.h"
#include "shim/shim.h"

static int ctr_update_resources(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                                ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__UpdateContainerResourcesRequest *rq =
                (const Runtime__V1__UpdateContainerResourcesRequest *)req;
        if (rq->linux == NULL)
                return err_set(e, ERR_INVALID, "UpdateContainerResources: no linux resources given");
        if (ctr_resources_validate(rq->linux, e) < 0)
                return err_wrap(e, "container %s", rq->container_id);
        struct store_container c = {0};
        if (ctr_resolve(d, rq->container_id, &c, e) < 0)
                return -1;
        int r = -1;
        struct ctr_extra x;
        (void)ctr_extra_parse(c.extra_json, &x);
        cleanup_free char *spec_path = x.bundle ? path_join(x.bundle, "spec.json") : NULL;
        struct rt_spec *spec = NULL;
        Runtime__V1__ContainerConfig *cfg = NULL;
        cleanup_free char *json = NULL;
        ctr_refresh(d, &c);
        if (c.state != STORE_CTR_CREATED && c.state != STORE_CTR_RUNNING) {
                err_set(e, ERR_PRECONDITION, "container %s is %s: cannot update its resources", c.id,
                        ctr_state_str(c.state));
                goto out;
        }
        if (spec_path == NULL || (spec = rt_spec_read_file(spec_path, e)) == NULL) {
                err_wrap(e, "container %s", c.id);
                goto out;
        }
        ctr_resources_to_rt(rq->linux, &spec->resources);
        json = rt_spec_to_json(spec);
        struct shim_conn *sc = NULL;
        /* Under the systemd driver the limits go through systemd (a
         * daemon-reload would put back what the unit says): corrald's to do. */
        bool host = cri_handler_of_pod_id(d, c.pod_id)->host_process;
        bool direct = rt_cgroup_systemd_enabled() && host;
        if (ctr_deferred(&c)) {
                r = 0; /* no process yet: StartContainer makes it from spec.json */
        } else if (!direct && ctr_connect(&c, &sc, e) == 0) {
                r = shim_update_resources(sc, json, e);
                shim_close(sc);
        } else if (!host) {
                /* Its cgroup is in the guest: nothing on the host to fall back to. */
                err_wrap(e, "the VM pod's shim");
        } else {
                err_clear(e);
                char *cg = NULL;
                r = rt_cgroup_resolve(spec->cgroup_path, &cg, e);
                if (r == 0)
                        r = rt_cgroup_update(cg, &spec->resources, e);
                free(cg);
        }
        if (r < 0) {
                err_wrap(e, "update resources of container %s", c.id);
                goto out;
        }
        /* Keep spec.json and the stored config in step for status and restarts. */
        (void)rt_spec_write_file(spec, spec_path, NULL);
        cfg = ctr_config(&c);
        if (cfg) {
                if (cfg->linux == NULL) {
                        cfg->linux = xmalloc(sizeof(*cfg->linux));
                        runtime__v1__linux_container_config__init(cfg->linux);
                }
                size_t len = protobuf_c_message_get_packed_size(&rq->linux->base);
                uint8_t *buf = xmalloc(len ? len : 1);
                protobuf_c_message_pack(&rq->linux->base, buf);
                if (cfg->linux->resources)
                        protobuf_c_message_free_unpacked(&cfg->linux->resources->base, NULL);
                cfg->linux->resources = runtime__v1__linux_container_resources__unpack(NULL, len, buf);
                free(buf);
                model_lock(d->model, c.id);
                struct store_container cur = {0};
                if (model_ctr_get(d->model, c.id, &cur, NULL) == 0) {
                        free(cur.config);
                        cur.config_len = protobuf_c_message_get_packed_size(&cfg->base);
                        cur.config = xmalloc(cur.config_len ? cur.config_len : 1);
                        protobuf_c_message_pack(&cfg->base, cur.config);
                        (void)model_ctr_put(d->model, &cur, NULL);
                }
                store_ctr_clear(&cur);
                model_unlock(d->model, c.id);
        }
        Runtime__V1__UpdateContainerResourcesResponse *out = xmalloc(sizeof(*out));
        runtime__v1__update_container_resources_response__init(out);
        *resp = &out->base;
        r = 0;
out:
        if (cfg)
                runtime__v1__container_config__free_unpacked(cfg, NULL);
        rt_spec_free(spec);
        ctr_extra_clear(&x);
        store_ctr_clear(&c);
        return r;
}

static int ctr_reopen_log(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                          ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__ReopenContainerLogRequest *rq =
                (const Runtime__V1__ReopenContainerLogRequest *)req;
        struct store_container c = {0};
        if (ctr_resolve(d, rq->container_id, &c, e) < 0)
                return -1;
        int r = -1;
        ctr_refresh(d, &c);
        struct shim_conn *sc = NULL;
        if (c.state != STORE_CTR_RUNNING)
                err_set(e, ERR_PRECONDITION, "container %s is %s, not running: cannot reopen its log", c.id,
                        ctr_state_str(c.state));
        else if (ctr_connect(&c, &sc, e) == 0)
                r = shim_reopen_log(sc, e);
        shim_close(sc);
        store_ctr_clear(&c);
        if (r < 0)
                return err_wrap(e, "reopen log");
        Runtime__V1__ReopenContainerLogResponse *out = xmalloc(sizeof(*out));
        runtime__v1__reopen_container_log_response__init(out);
        *resp = &out->base;
        return 0;
}

const struct cri_handler cri_ctr_update_handlers[] = {
        {.name = "UpdateContainerResources", .unary = ctr_update_resources},
        {.name = "ReopenContainerLog", .unary = ctr_reopen_log},
        {0},
};
