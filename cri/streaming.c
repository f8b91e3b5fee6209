/* Exec, Attach, PortForward: the RPCs hand out single-use URLs on the
 * streaming server (stream/); the server speaks SPDY and WebSocket and calls
 * the backend here with plain descriptors:
 *   exec        a `corral-shim exec` helper per session (corrald is
 *               multi-threaded: rt_exec runs in that fresh process), with
 *               the session's pipes as its stdio; its exit is the exit code;
 *               in a VM pod, the VM shim's exec socket, relayed through
 *               the agent to the process in the guest (a pty there for tty)
 *   attach      the container's shim attach socket, relayed both ways (in
 *               a VM pod the VM shim serves it for each container)
 *   portforward a TCP socket made inside the pod's network namespace and
 *               connected to its loopback; for a VM pod, a socket from the
 *               VM shim relayed through the agent to the guest's loopback
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "net/net.h"
#include "shim/shim.h"
#include "store/store.h"
#include "stream/stream.h"

/* How long a helper gets between SIGTERM and SIGKILL when the session ends. */
#define EXEC_KILL_GRACE_MS 2000

struct streaming {
        struct cri_daemon *d;
};

static struct streaming g_streaming;

static const char *ctr_state_name(int s)
{
        switch (s) {
        case STORE_CTR_CREATED:
                return "created";
        case STORE_CTR_RUNNING:
                return "running";
        case STORE_CTR_EXITED:
                return "exited";
        default:
                return "in an unknown state";
        }
}

/* The container by id, up to date with its shim, RUNNING; its private state in *x. */
static int running_container(struct cri_daemon *d, const char *id, const char *what,
                             struct store_container *c, struct ctr_extra *x, struct err *e)
{
        if (ctr_running(d, id, what, c, x, e) < 0)
                return -1;
        /* A VM pod's container has no host pid: its process is in the guest. */
        if (c->pid <= 0 && cri_handler_of_pod_id(d, c->pod_id)->host_process)
                return err_set(e, ERR_INTERNAL, "container %s has no shim state", c->id);
        return 0;
}

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

/* The private state of the container's pod: its handler serves the session. */
static int container_pod(struct cri_daemon *d, const char *ctr_id, struct cri_pod_extra *x, struct err *e)
{
        struct store_container c = {0};
        struct store_pod p = {0};
        memset(x, 0, sizeof(*x));
        int r = ctr_resolve(d, ctr_id, &c, e);
        if (r == 0 && (r = model_pod_get(d->model, c.pod_id, &p, e)) == 0)
                r = cri_pod_extra_parse(p.extra_json, x, e);
        store_pod_clear(&p);
        store_ctr_clear(&c);
        return r;
}

static int be_exec(void *data, const struct stream_exec_req *req, struct stream_io *io, int *exit_code,
                   struct err *e)
{
        struct streaming *s = data;
        struct cri_pod_extra px;
        if (container_pod(s->d, req->container_id, &px, e) < 0)
                return -1;
        int r = cri_handler_of_pod(&px)->exec(s->d, &px, req, io, exit_code, e);
        cri_pod_extra_clear(&px);
        return r;
}

/* ---------- attach ---------- */

struct attach_ctx {
        int fd;
};

static void attach_on_resize(void *data, uint16_t width, uint16_t height)
{
        struct attach_ctx *a = data;
        char pkt[1 + sizeof(struct shim_attach_resize)];
        struct shim_attach_resize m = {.rows = height, .cols = width};
        pkt[0] = SHIM_ATTACH_RESIZE;
        memcpy(pkt + 1, &m, sizeof(m));
        (void)send(a->fd, pkt, sizeof(pkt), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static int be_attach(void *data, const struct stream_attach_req *req, struct stream_io *io, struct err *e)
{
        struct streaming *s = data;
        struct store_container c = {0};
        struct ctr_extra x;
        int r = running_container(s->d, req->container_id, "attach to it", &c, &x, e);
        struct attach_ctx a = {.fd = -1};
        if (r == 0 && (r = shim_attach_connect(x.state_dir, &a.fd, e)) < 0)
                err_wrap(e, "attach to container %s", c.id);
        if (r < 0)
                goto out;
        if (req->tty)
                stream_io_set_resize(io, attach_on_resize, &a);
        /* The client's stdin ending is a detach (crictl's and kubectl's
         * ctrl-p ctrl-q, or a pipe that ran dry): the session ends and the
         * container goes on, as in containerd. Only a stdin_once container
         * without a tty keeps the session: its stdin closes (the shim does
         * that) and its output is relayed until it exits. */
        bool detach_on_eof = true;
        Runtime__V1__ContainerConfig *cc = ctr_config(&c);
        if (cc) {
                detach_on_eof = !(cc->stdin_once && !cc->tty);
                runtime__v1__container_config__free_unpacked(cc, NULL);
        }
        char *buf = xmalloc(SHIM_ATTACH_MAX_PACKET);
        bool in_open = io->stdin_fd >= 0;
        for (;;) {
                struct pollfd p[3] = {
                        {.fd = a.fd, .events = POLLIN},
                        {.fd = in_open ? io->stdin_fd : -1, .events = POLLIN},
                        {.fd = io->cancel_fd, .events = POLLIN},
                };
                if (poll(p, 3, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[2].revents & POLLIN)
                        break; /* detach */
                if (p[0].revents) {
                        ssize_t n = recv(a.fd, buf, SHIM_ATTACH_MAX_PACKET, 0);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0 || buf[0] == SHIM_ATTACH_EXIT)
                                break; /* the container exited (or its shim went) */
                        int out = buf[0] == SHIM_ATTACH_STDOUT   ? io->stdout_fd
                                  : buf[0] == SHIM_ATTACH_STDERR ? io->stderr_fd
                                                                 : -1;
                        if (out >= 0 && n > 1 && fd_write_all(out, buf + 1, (size_t)n - 1) < 0) {
                                /* the client stopped reading this stream */
                                if (out == io->stdout_fd)
                                        close_fd(&io->stdout_fd);
                                else
                                        close_fd(&io->stderr_fd);
                        }
                }
                if (in_open && p[1].revents) {
                        ssize_t n = read(io->stdin_fd, buf + 1, SHIM_ATTACH_MAX_PACKET - 1);
                        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (n <= 0) {
                                in_open = false;
                                buf[0] = SHIM_ATTACH_CLOSE_STDIN;
                                (void)send(a.fd, buf, 1, MSG_NOSIGNAL);
                                if (detach_on_eof)
                                        break;
                        } else {
                                buf[0] = SHIM_ATTACH_STDIN;
                                if (send(a.fd, buf, (size_t)n + 1, MSG_NOSIGNAL) < 0)
                                        break;
                        }
                }
        }
        free(buf);
        if (req->tty)
                stream_io_set_resize(io, NULL, NULL);
        close_fd(&a.fd);
        r = 0;
out:
        ctr_extra_clear(&x);
        store_ctr_clear(&c);
        return r;
}

/* ---------- port-forward ---------- */

static int be_portforward(void *data, const char *pod_id, uint16_t port, int *fd_out, struct err *e)
{
        struct streaming *s = data;
        *fd_out = -1;
        struct store_pod p = {0};
        struct cri_pod_extra x = {0};
        int r = -1;
        if (model_pod_get(s->d->model, pod_id, &p, e) < 0) {
                err_wrap(e, "port-forward to pod %s", pod_id);
                goto out;
        }
        if (p.state != STORE_POD_READY) {
                err_set(e, ERR_PRECONDITION, "pod sandbox %s is not ready", pod_id);
                goto out;
        }
        if (cri_pod_extra_parse(p.extra_json, &x, e) < 0)
                goto out;
        r = cri_handler_of_pod(&x)->port_forward(s->d, pod_id, &x, port, fd_out, e);
out:
        cri_pod_extra_clear(&x);
        store_pod_clear(&p);
        return r;
}

static const struct stream_backend backend = {
        .exec = be_exec,
        .attach = be_attach,
        .portforward = be_portforward,
};

/* ---------- RPCs ---------- */

static int need_server(struct cri_daemon *d, struct err *e)
{
        if (d->streaming == NULL)
                return err_set(e, ERR_UNAVAILABLE, "the streaming server is not running");
        return 0;
}

static int exec_rpc(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                    ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__ExecRequest *rq = (const Runtime__V1__ExecRequest *)req;
        if (need_server(d, e) < 0)
                return -1;
        if (rq->n_cmd == 0 || rq->cmd[0] == NULL || rq->cmd[0][0] == '\0')
                return err_set(e, ERR_INVALID, "Exec in container %s: no command given", rq->container_id);
        struct cri_pod_extra px;
        if (container_pod(d, rq->container_id, &px, e) < 0)
                return -1;
        bool host_process = cri_handler_of_pod(&px)->host_process;
        cri_pod_extra_clear(&px);
        if (rq->tty && rq->stderr)
                return err_set(e, ERR_INVALID, "Exec in container %s: tty and stderr cannot both be set",
                               rq->container_id);
        if (!rq->stdin && !rq->stdout && !rq->stderr)
                return err_set(e, ERR_INVALID,
                               "Exec in container %s: one of stdin, stdout or stderr must be set",
                               rq->container_id);
        struct store_container c = {0};
        int r;
        if (!host_process) {
                /* No host-side process state: running is what counts. */
                r = ctr_resolve(d, rq->container_id, &c, e);
                if (r == 0) {
                        ctr_refresh(d, &c);
                        if (c.state != STORE_CTR_RUNNING)
                                r = err_set(e, ERR_PRECONDITION,
                                            "container %s is %s, not running: cannot exec in it", c.id,
                                            ctr_state_name(c.state));
                }
        } else {
                struct ctr_extra x;
                r = running_container(d, rq->container_id, "exec in it", &c, &x, e);
                ctr_extra_clear(&x);
        }
        if (r < 0) {
                store_ctr_clear(&c);
                return -1;
        }
        char **cmd = xcalloc(rq->n_cmd + 1, sizeof(char *));
        for (size_t i = 0; i < rq->n_cmd; i++)
                cmd[i] = rq->cmd[i];
        struct stream_exec_req sr = {
                .container_id = c.id,
                .cmd = cmd,
                .tty = rq->tty,
                .use_stdin = rq->stdin,
                .use_stdout = rq->stdout,
                .use_stderr = rq->stderr,
        };
        char *url = NULL;
        r = stream_token_exec(d->streaming, &sr, &url, e);
        free(cmd);
        store_ctr_clear(&c);
        if (r < 0)
                return err_wrap(e, "Exec");
        Runtime__V1__ExecResponse *out = xmalloc(sizeof(*out));
        runtime__v1__exec_response__init(out);
        out->url = url;
        *resp = &out->base;
        return 0;
}

static int attach_rpc(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                      ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__AttachRequest *rq = (const Runtime__V1__AttachRequest *)req;
        if (need_server(d, e) < 0)
                return -1;
        if (rq->tty && rq->stderr)
                return err_set(e, ERR_INVALID, "Attach to container %s: tty and stderr cannot both be set",
                               rq->container_id);
        if (!rq->stdin && !rq->stdout && !rq->stderr)
                return err_set(e, ERR_INVALID,
                               "Attach to container %s: one of stdin, stdout or stderr must be set",
                               rq->container_id);
        struct store_container c = {0};
        struct ctr_extra x;
        int r = running_container(d, rq->container_id, "attach to it", &c, &x, e);
        ctr_extra_clear(&x);
        if (r < 0) {
                store_ctr_clear(&c);
                return -1;
        }
        struct stream_attach_req sr = {
                .container_id = c.id,
                .tty = rq->tty,
                .use_stdin = rq->stdin,
                .use_stdout = rq->stdout,
                .use_stderr = rq->stderr,
        };
        char *url = NULL;
        r = stream_token_attach(d->streaming, &sr, &url, e);
        store_ctr_clear(&c);
        if (r < 0)
                return err_wrap(e, "Attach");
        Runtime__V1__AttachResponse *out = xmalloc(sizeof(*out));
        runtime__v1__attach_response__init(out);
        out->url = url;
        *resp = &out->base;
        return 0;
}

static int portforward_rpc(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                           ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__PortForwardRequest *rq = (const Runtime__V1__PortForwardRequest *)req;
        if (need_server(d, e) < 0)
                return -1;
        for (size_t i = 0; i < rq->n_port; i++)
                if (rq->port[i] <= 0 || rq->port[i] > 65535)
                        return err_set(e, ERR_INVALID, "PortForward to pod %s: port %d out of range",
                                       rq->pod_sandbox_id, (int)rq->port[i]);
        struct store_pod p = {0};
        if (cri_pod_resolve(d, rq->pod_sandbox_id, &p, e) < 0)
                return -1;
        int r = 0;
        if (p.state != STORE_POD_READY)
                r = err_set(e, ERR_PRECONDITION, "pod sandbox %s is not ready: cannot forward ports to it",
                            p.id);
        char *url = NULL;
        if (r == 0 && stream_token_portforward(d->streaming, p.id, &url, e) < 0)
                r = err_wrap(e, "PortForward");
        store_pod_clear(&p);
        if (r < 0)
                return r;
        Runtime__V1__PortForwardResponse *out = xmalloc(sizeof(*out));
        runtime__v1__port_forward_response__init(out);
        out->url = url;
        *resp = &out->base;
        return 0;
}

/* ---------- start, stop ---------- */

static const char *nonempty(const char *s)
{
        return s && *s ? s : NULL;
}

int cri_streaming_init(struct cri_daemon *d, struct err *e)
{
        const struct cfg *cfg = d->cfg;
        g_streaming.d = d;
        struct stream_config sc = {
                .address = nonempty(cfg->streaming.address),
                .port = (uint16_t)cfg->streaming.port,
                .tls_cert = nonempty(cfg->streaming.tls_cert),
                .tls_key = nonempty(cfg->streaming.tls_key),
                .token_ttl_sec = (int)cfg->streaming.token_ttl_seconds,
        };
        if (stream_server_new(&sc, &backend, &g_streaming, &d->streaming, e) < 0) {
                return err_wrap(e, "streaming server on %s:%u", sc.address ? sc.address : "127.0.0.1",
                                (unsigned)sc.port);
        }
        log_info("cri", "streaming server url=%s", stream_server_url(d->streaming));
        return 0;
}

void cri_streaming_fini(struct cri_daemon *d)
{
        stream_server_free(d->streaming);
        d->streaming = NULL;
}

const struct cri_handler cri_streaming_handlers[] = {
        {.name = "Exec", .unary = exec_rpc},
        {.name = "Attach", .unary = attach_rpc},
        {.name = "PortForward", .unary = portforward_rpc},
        {0},
};
