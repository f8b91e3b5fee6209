/* ExecSync: a command in a running container through its shim, with the
 * request's timeout (the process is killed when it passes and the call
 * fails with DeadlineExceeded). The streaming exec backend joins here. */
#include <string.h>

#include "cri/ctr-internal.h"
#include "shim/shim.h"

static int ctr_exec_sync(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                         ProtobufCMessage **resp, struct err *e)
{
        const Runtime__V1__ExecSyncRequest *rq = (const Runtime__V1__ExecSyncRequest *)req;
        if (rq->n_cmd == 0 || rq->cmd[0] == NULL || *rq->cmd[0] == '\0')
                return err_set(e, ERR_INVALID, "ExecSync in container %s: no command", rq->container_id);
        if (rq->timeout < 0)
                return err_set(e, ERR_INVALID, "ExecSync in container %s: negative timeout %lld",
                               rq->container_id, (long long)rq->timeout);
        struct store_container c = {0};
        if (ctr_resolve(d, rq->container_id, &c, e) < 0)
                return -1;
        ctr_refresh(d, &c);
        int r = -1;
        struct shim_conn *sc = NULL;
        struct shim_exec_result res = {0};
        char **args = NULL;
        if (c.state != STORE_CTR_RUNNING) {
                err_set(e, ERR_PRECONDITION, "container %s is not running: cannot exec in it", c.id);
                goto out;
        }
        if (ctr_connect(&c, &sc, e) < 0)
                goto out;
        int64_t timeout_ms = rq->timeout > 0 ? rq->timeout * 1000 : 0;
        /* The caller's own deadline bounds it too: nobody waits for the answer after that. */
        int64_t dl = cri_call_deadline_ns(call);
        if (dl != INT64_MAX) {
                int64_t left = (dl - time_mono_ns()) / 1000000;
                if (left < 1)
                        left = 1;
                if (timeout_ms == 0 || left < timeout_ms)
                        timeout_ms = left;
        }
        args = xcalloc(rq->n_cmd + 1, sizeof(char *));
        for (size_t i = 0; i < rq->n_cmd; i++)
                args[i] = rq->cmd[i];
        int64_t t0 = time_mono_ns();
        r = shim_exec_sync(sc, args, NULL, timeout_ms, &res, e);
        log_debug("cri", "exec sync container=%s cmd=%s exit=%d ms=%.3f", c.id, rq->cmd[0], res.exit_code,
                  (double)(time_mono_ns() - t0) / 1e6);
        if (r < 0) {
                if (err_is(e, ERR_DEADLINE))
                        err_set(e, ERR_DEADLINE,
                                "command %s in container %s timed out after %lld s and was killed",
                                rq->cmd[0], c.id, (long long)rq->timeout);
                else
                        err_wrap(e, "exec in container %s", c.id);
                goto out;
        }
        Runtime__V1__ExecSyncResponse *o = xmalloc(sizeof(*o));
        runtime__v1__exec_sync_response__init(o);
        o->stdout.data = (uint8_t *)steal_ptr(&res.out);
        o->stdout.len = res.out_len;
        o->stderr.data = (uint8_t *)steal_ptr(&res.err);
        o->stderr.len = res.err_len;
        o->exit_code = res.exit_code;
        *resp = &o->base;
        r = 0;
out:
        free(args);
        shim_exec_result_clear(&res);
        shim_close(sc);
        store_ctr_clear(&c);
        return r;
}

const struct cri_handler cri_ctr_exec_handlers[] = {
        {.name = "ExecSync", .unary = ctr_exec_sync},
        {0},
};
