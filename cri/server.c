/* The gRPC server on gRPC core's C API.
 *
 * Every CRI method is registered before start with its payload read up
 * front. Poller threads block on one completion queue and run the tag
 * callbacks; a request that arrives is re-armed at once, then its handler
 * runs inline (cheap methods) or on the growing worker pool. A call's life:
 * arrive -> RECV_CLOSE_ON_SERVER armed (to see cancellation) -> handler ->
 * one batch of initial metadata + message + status. Streaming handlers send
 * one message at a time and wait for each write, so there is never more than
 * one outstanding write on a call.
 */
#include <errno.h>
#include <fcntl.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <libgen.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "cri/cri-internal.h"

#define POLLERS 2
/* Requests kept armed per method: a burst of one method queues in gRPC
 * only while all are taken, and each is re-armed on arrival. */
#define ARMED_PER_METHOD 2

struct tag {
        void (*fn)(struct tag *t, bool ok);
};

struct cri_call {
        struct tag arrive;
        struct tag closed;
        struct tag sent;
        struct tag wrote;
        struct tag read;
        struct cri_server *srv;
        const struct cri_method *m; /* NULL: an unregistered path */
        size_t idx;
        grpc_call *call;
        gpr_timespec deadline;
        grpc_metadata_array md;
        grpc_call_details details;
        grpc_byte_buffer *payload;
        int cancelled;
        atomic_bool closed_done;
        atomic_int refs;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        bool write_done;
        bool write_ok;
        bool read_done;
        bool read_ok;
        grpc_byte_buffer *in;
        bool sent_initial;
        grpc_byte_buffer *out;
        struct sbuf reply; /* cri_call_reply_bytes */
        bool has_reply;
        struct cri_shared_reply *shared; /* cri_call_reply_shared */
        grpc_slice details_slice;
        bool has_details;
        int64_t start_ns;
};

struct cri_server {
        struct cri_daemon *d;
        grpc_server *server;
        grpc_completion_queue *cq;
        pthread_t pollers[POLLERS];
        int npollers;
        void **handles;
        const struct cri_method *methods;
        size_t n;
        struct cri_pool *pool;
        char *socket_path;
        int lock_fd; /* flock on <socket>.lock while we serve */
        atomic_bool shutting_down;
        struct tag shutdown_tag;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        bool shutdown_done;
        bool started;
};

static struct cri_call *call_of(struct tag *t, size_t off)
{
        return (struct cri_call *)((char *)t - off);
}

static void on_arrive(struct tag *t, bool ok);
static void on_closed(struct tag *t, bool ok);
static void on_sent(struct tag *t, bool ok);
static void on_wrote(struct tag *t, bool ok);
static void on_read(struct tag *t, bool ok);

static void call_free(struct cri_call *c)
{
        if (c->call)
                grpc_call_unref(c->call);
        grpc_metadata_array_destroy(&c->md);
        if (c->m == NULL)
                grpc_call_details_destroy(&c->details);
        if (c->payload)
                grpc_byte_buffer_destroy(c->payload);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
}

static void call_unref(struct cri_call *c)
{
        if (atomic_fetch_sub(&c->refs, 1) == 1)
                call_free(c);
}

static void arm(struct cri_server *s, const struct cri_method *m, size_t idx)
{
        if (s->shutting_down)
                return;
        struct cri_call *c = xzalloc(sizeof(*c));
        c->arrive.fn = on_arrive;
        c->closed.fn = on_closed;
        c->sent.fn = on_sent;
        c->wrote.fn = on_wrote;
        c->read.fn = on_read;
        c->srv = s;
        c->m = m;
        c->idx = idx;
        pthread_mutex_init(&c->mu, NULL);
        pthread_cond_init(&c->cv, NULL);
        grpc_metadata_array_init(&c->md);
        grpc_call_error r;
        if (m) {
                r = grpc_server_request_registered_call(s->server, s->handles[idx], &c->call, &c->deadline,
                                                        &c->md, &c->payload, s->cq, s->cq, &c->arrive);
        } else {
                grpc_call_details_init(&c->details);
                r = grpc_server_request_call(s->server, &c->call, &c->details, &c->md, s->cq, s->cq,
                                             &c->arrive);
        }
        if (r != GRPC_CALL_OK) {
                log_error("cri", "request call failed method=%s code=%d", m ? m->name : "*", (int)r);
                call_free(c);
        }
}

static grpc_byte_buffer *pack(const ProtobufCMessage *msg)
{
        size_t len = protobuf_c_message_get_packed_size(msg);
        uint8_t *buf = xmalloc(len);
        protobuf_c_message_pack(msg, buf);
        grpc_slice slice = grpc_slice_new(buf, len, free);
        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
        grpc_slice_unref(slice);
        return bb;
}

static void init_op(grpc_op *op, grpc_op_type type)
{
        memset(op, 0, sizeof(*op));
        op->op = type;
}

/* The one final batch: initial metadata (unless a stream sent it), the
 * response if any, and the status. */
static void finish(struct cri_call *c, const ProtobufCMessage *resp, const struct err *e)
{
        grpc_op ops[3];
        size_t n = 0;
        if (!c->sent_initial) {
                init_op(&ops[n++], GRPC_OP_SEND_INITIAL_METADATA);
                c->sent_initial = true;
        }
        int code = cri_status_code(e);
        if (c->shared && code == 0) {
                size_t len;
                const char *bytes = cri_shared_reply_bytes(c->shared, &len);
                grpc_slice slice =
                        grpc_slice_new_with_user_data((void *)bytes, len, cri_shared_reply_unref, c->shared);
                c->shared = NULL;
                c->out = grpc_raw_byte_buffer_create(&slice, 1);
                grpc_slice_unref(slice);
        } else if (c->has_reply && code == 0) {
                size_t len = c->reply.len;
                grpc_slice slice = grpc_slice_new(sbuf_steal(&c->reply), len, free);
                c->out = grpc_raw_byte_buffer_create(&slice, 1);
                grpc_slice_unref(slice);
        } else if (resp && code == 0) {
                c->out = pack(resp);
        }
        sbuf_free(&c->reply);
        cri_shared_reply_unref(c->shared);
        c->shared = NULL;
        if (c->out) {
                init_op(&ops[n], GRPC_OP_SEND_MESSAGE);
                ops[n++].data.send_message.send_message = c->out;
        }
        init_op(&ops[n], GRPC_OP_SEND_STATUS_FROM_SERVER);
        ops[n].data.send_status_from_server.status = (grpc_status_code)code;
        if (code != 0) {
                c->details_slice = grpc_slice_from_copied_string(e->msg);
                c->has_details = true;
                ops[n].data.send_status_from_server.status_details = &c->details_slice;
        }
        n++;
        const char *name = c->m ? c->m->name : "unknown";
        int64_t took = time_mono_ns() - c->start_ns;
        double ms = (double)took / 1e6;
        cri_metrics_observe(c->srv->d, c->m, code, took);
        if (code != 0 && code != ERR_NOT_FOUND)
                log_info("cri", "call method=%s code=%s ms=%.3f error=\"%s\"", name, err_kind_name(e->kind),
                         ms, e->msg);
        else
                log_debug("cri", "call method=%s code=%d ms=%.3f", name, code, ms);
        grpc_call_error r = grpc_call_start_batch(c->call, ops, n, &c->sent, NULL);
        if (r != GRPC_CALL_OK) {
                log_error("cri", "send status failed method=%s code=%d", name, (int)r);
                on_sent(&c->sent, false);
        }
}

static void run(void *arg)
{
        struct cri_call *c = arg;
        struct cri_server *s = c->srv;
        struct cri_daemon *d = s->d;
        const struct cri_method *m = c->m;
        cleanup_err struct err e = ERR_INIT;
        ProtobufCMessage *req = NULL, *resp = NULL;

        if (d->delay_method && strcmp(d->delay_method, m->name) == 0) {
                struct timespec ts = {d->delay_ms / 1000, (long)(d->delay_ms % 1000) * 1000000L};
                nanosleep(&ts, NULL);
        }
        if (m->handler == NULL) {
                err_set(&e, ERR_UNIMPLEMENTED, "method %s is not implemented by corral", m->path);
                goto done;
        }
        if (c->payload == NULL) {
                err_set(&e, ERR_INVALID, "%s: the request has no message", m->name);
                goto done;
        }
        grpc_byte_buffer_reader reader;
        if (!grpc_byte_buffer_reader_init(&reader, c->payload)) {
                err_set(&e, ERR_INVALID, "%s: unreadable request payload", m->name);
                goto done;
        }
        grpc_slice slice = grpc_byte_buffer_reader_readall(&reader);
        grpc_byte_buffer_reader_destroy(&reader);
        req = protobuf_c_message_unpack(m->input, NULL, GRPC_SLICE_LENGTH(slice),
                                        GRPC_SLICE_START_PTR(slice));
        grpc_slice_unref(slice);
        if (req == NULL) {
                err_set(&e, ERR_INVALID, "%s: malformed %s message", m->name, m->input->name);
                goto done;
        }
        int r;
        if (m->server_streaming)
                r = m->handler->stream ? m->handler->stream(d, c, req, &e)
                                       : err_set(&e, ERR_UNIMPLEMENTED, "%s: no streaming handler", m->path);
        else
                r = m->handler->unary ? m->handler->unary(d, c, req, &resp, &e)
                                      : err_set(&e, ERR_UNIMPLEMENTED, "%s: no unary handler", m->path);
        if (r < 0 && e.msg == NULL)
                err_set(&e, ERR_INTERNAL, "%s failed without an error message", m->name);
        if (r >= 0) {
                err_clear(&e);
                if (!m->server_streaming && resp == NULL && !c->has_reply && !c->shared)
                        err_set(&e, ERR_INTERNAL, "%s returned no response", m->name);
        }
done:
        finish(c, resp, &e);
        if (resp)
                protobuf_c_message_free_unpacked(resp, NULL);
        if (req)
                protobuf_c_message_free_unpacked(req, NULL);
}

void cri_call_reply_bytes(struct cri_call *call, struct sbuf *b)
{
        sbuf_free(&call->reply);
        call->reply = *b;
        call->has_reply = true;
        *b = (struct sbuf){0};
}

void cri_call_reply_shared(struct cri_call *call, struct cri_shared_reply *r)
{
        cri_shared_reply_unref(call->shared);
        call->shared = r;
}

static void on_arrive(struct tag *t, bool ok)
{
        struct cri_call *c = call_of(t, offsetof(struct cri_call, arrive));
        struct cri_server *s = c->srv;
        if (!ok) {
                /* The server is shutting down: this request was never used. */
                call_free(c);
                return;
        }
        arm(s, c->m, c->idx);
        c->start_ns = time_mono_ns();
        atomic_store(&c->refs, 2); /* the close batch and the final batch */
        grpc_op op;
        init_op(&op, GRPC_OP_RECV_CLOSE_ON_SERVER);
        op.data.recv_close_on_server.cancelled = &c->cancelled;
        if (grpc_call_start_batch(c->call, &op, 1, &c->closed, NULL) != GRPC_CALL_OK)
                atomic_fetch_sub(&c->refs, 1);
        if (c->m == NULL) {
                cleanup_free char *path = grpc_slice_to_c_string(c->details.method);
                struct err e = ERR_INIT;
                err_set(&e, ERR_UNIMPLEMENTED, "unknown method %s", path);
                finish(c, NULL, &e);
                err_clear(&e);
                return;
        }
        bool delayed = s->d->delay_method && strcmp(s->d->delay_method, c->m->name) == 0;
        if (c->m->handler && (c->m->handler->flags & CRI_INLINE) && !delayed)
                run(c);
        else
                cri_pool_submit(s->pool, run, c);
}

static void on_closed(struct tag *t, bool ok)
{
        (void)ok;
        struct cri_call *c = call_of(t, offsetof(struct cri_call, closed));
        pthread_mutex_lock(&c->mu);
        atomic_store(&c->closed_done, true);
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        call_unref(c);
}

static void on_sent(struct tag *t, bool ok)
{
        (void)ok;
        struct cri_call *c = call_of(t, offsetof(struct cri_call, sent));
        if (c->out) {
                grpc_byte_buffer_destroy(c->out);
                c->out = NULL;
        }
        if (c->has_details)
                grpc_slice_unref(c->details_slice);
        call_unref(c);
}

static void on_wrote(struct tag *t, bool ok)
{
        struct cri_call *c = call_of(t, offsetof(struct cri_call, wrote));
        pthread_mutex_lock(&c->mu);
        c->write_done = true;
        c->write_ok = ok;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
}

static void on_read(struct tag *t, bool ok)
{
        struct cri_call *c = call_of(t, offsetof(struct cri_call, read));
        pthread_mutex_lock(&c->mu);
        c->read_done = true;
        c->read_ok = ok;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
}

int cri_call_recv(struct cri_call *c, ProtobufCMessage **msg, struct err *e)
{
        *msg = NULL;
        if (cri_call_cancelled(c))
                return err_set(e, ERR_CANCELLED, "%s: the client went away", c->m->name);
        grpc_op op;
        init_op(&op, GRPC_OP_RECV_MESSAGE);
        c->in = NULL;
        op.data.recv_message.recv_message = &c->in;
        pthread_mutex_lock(&c->mu);
        c->read_done = false;
        pthread_mutex_unlock(&c->mu);
        if (grpc_call_start_batch(c->call, &op, 1, &c->read, NULL) != GRPC_CALL_OK)
                return err_set(e, ERR_INTERNAL, "%s: cannot start a read", c->m->name);
        pthread_mutex_lock(&c->mu);
        while (!c->read_done)
                pthread_cond_wait(&c->cv, &c->mu);
        bool ok = c->read_ok;
        pthread_mutex_unlock(&c->mu);
        grpc_byte_buffer *bb = steal_ptr(&c->in);
        if (!ok) {
                if (bb)
                        grpc_byte_buffer_destroy(bb);
                return err_set(e, ERR_CANCELLED, "%s: the client went away", c->m->name);
        }
        if (bb == NULL)
                return 0; /* the client half-closed: no more messages */
        grpc_byte_buffer_reader reader;
        if (!grpc_byte_buffer_reader_init(&reader, bb)) {
                grpc_byte_buffer_destroy(bb);
                return err_set(e, ERR_INVALID, "%s: unreadable message", c->m->name);
        }
        grpc_slice slice = grpc_byte_buffer_reader_readall(&reader);
        grpc_byte_buffer_reader_destroy(&reader);
        grpc_byte_buffer_destroy(bb);
        *msg = protobuf_c_message_unpack(c->m->input, NULL, GRPC_SLICE_LENGTH(slice),
                                         GRPC_SLICE_START_PTR(slice));
        grpc_slice_unref(slice);
        if (*msg == NULL)
                return err_set(e, ERR_INVALID, "%s: malformed %s message", c->m->name, c->m->input->name);
        return 1;
}

bool cri_call_cancelled(const struct cri_call *call)
{
        /* RECV_CLOSE_ON_SERVER completes before our status only when the
         * client cancelled or the deadline passed. */
        return atomic_load(&call->closed_done) || atomic_load(&call->srv->d->stopping);
}

int64_t cri_call_deadline_ns(const struct cri_call *call)
{
        gpr_timespec mono = gpr_convert_clock_type(call->deadline, GPR_CLOCK_MONOTONIC);
        if (gpr_time_cmp(mono, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0 ||
            mono.tv_sec > INT64_MAX / 1000000000LL)
                return INT64_MAX;
        /* gpr's monotonic clock has its own epoch; rebase onto ours. */
        gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
        gpr_timespec left = gpr_time_sub(mono, now);
        return time_mono_ns() + left.tv_sec * 1000000000LL + left.tv_nsec;
}

int cri_call_send(struct cri_call *c, const ProtobufCMessage *msg, struct err *e)
{
        if (cri_call_cancelled(c))
                return err_set(e, ERR_CANCELLED, "%s: the client went away", c->m->name);
        grpc_op ops[2];
        size_t n = 0;
        if (!c->sent_initial) {
                init_op(&ops[n++], GRPC_OP_SEND_INITIAL_METADATA);
                c->sent_initial = true;
        }
        grpc_byte_buffer *bb = pack(msg);
        init_op(&ops[n], GRPC_OP_SEND_MESSAGE);
        ops[n++].data.send_message.send_message = bb;
        pthread_mutex_lock(&c->mu);
        c->write_done = false;
        pthread_mutex_unlock(&c->mu);
        if (grpc_call_start_batch(c->call, ops, n, &c->wrote, NULL) != GRPC_CALL_OK) {
                grpc_byte_buffer_destroy(bb);
                return err_set(e, ERR_INTERNAL, "%s: cannot start a write", c->m->name);
        }
        pthread_mutex_lock(&c->mu);
        while (!c->write_done)
                pthread_cond_wait(&c->cv, &c->mu);
        bool ok = c->write_ok;
        pthread_mutex_unlock(&c->mu);
        grpc_byte_buffer_destroy(bb);
        if (!ok)
                return err_set(e, ERR_CANCELLED, "%s: the client went away", c->m->name);
        return 0;
}

static void on_shutdown(struct tag *t, bool ok)
{
        (void)ok;
        struct cri_server *s = (struct cri_server *)((char *)t - offsetof(struct cri_server, shutdown_tag));
        pthread_mutex_lock(&s->mu);
        s->shutdown_done = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
}

static void *poller(void *arg)
{
        struct cri_server *s = arg;
        for (;;) {
                grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                if (ev.type == GRPC_QUEUE_SHUTDOWN)
                        break;
                if (ev.type == GRPC_OP_COMPLETE) {
                        struct tag *t = ev.tag;
                        t->fn(t, ev.success != 0);
                }
        }
        return NULL;
}

/* "unix:///a/b", "unix:/a/b" or "/a/b" -> "/a/b". */
static char *socket_path_of(const char *listen, struct err *e)
{
        const char *p = listen;
        if (str_has_prefix(p, "unix://"))
                p += strlen("unix://");
        else if (str_has_prefix(p, "unix:"))
                p += strlen("unix:");
        if (*p != '/') {
                err_set(e, ERR_INVALID, "listen address %s: want unix:///absolute/path", listen);
                return NULL;
        }
        if (strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
                err_set(e, ERR_INVALID, "listen address %s: socket path too long", listen);
                return NULL;
        }
        return xstrdup(p);
}

/* One corrald per socket: an flock on "<socket>.lock", held for the
 * daemon's life (the kernel drops it when the process dies, however it
 * dies). A socket file without the lock held is stale and replaced, even if
 * something still accepts on it: an orphaned child holding a dead corrald's
 * listening socket answers connect() but never gRPC. *lock_fd gets the lock. */
static int claim_socket(const char *path, int *lock_fd, struct err *e)
{
        cleanup_free char *lock_path = xasprintf("%s.lock", path);
        cleanup_close int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return err_make(e, errno, "open %s", lock_path);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return err_set(
                                e, ERR_EXISTS,
                                "another corrald is serving %s (it holds %s; is corrald already running?)",
                                path, lock_path);
                return err_make(e, errno, "lock %s", lock_path);
        }
        struct stat st;
        if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
                return err_set(e, ERR_EXISTS, "%s exists and is not a socket", path);
        if (unlink(path) < 0 && errno != ENOENT)
                return err_make(e, errno, "remove stale socket %s", path);
        *lock_fd = steal_fd(&fd);
        return 0;
}

int cri_server_new(struct cri_daemon *d, const char *listen, size_t max_message_bytes,
                   struct cri_server **out, struct err *e)
{
        cleanup_free char *path = socket_path_of(listen, e);
        if (path == NULL)
                return -1;
        cleanup_free char *dir = xstrdup(path);
        if (mkdir_p(dirname(dir), 0711, e) < 0)
                return err_wrap(e, "socket directory");
        int lock_fd = -1;
        if (claim_socket(path, &lock_fd, e) < 0)
                return -1;

        grpc_init();
        cleanup_free char *addr = NULL;
        struct cri_server *s = xzalloc(sizeof(*s));
        s->d = d;
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        s->shutdown_tag.fn = on_shutdown;
        s->socket_path = steal_ptr(&path);
        s->lock_fd = lock_fd;
        grpc_arg args[] = {
                {.type = GRPC_ARG_INTEGER,
                 .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                 .value.integer = (int)max_message_bytes},
                {.type = GRPC_ARG_INTEGER,
                 .key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
                 .value.integer = (int)max_message_bytes},
        };
        grpc_channel_args chargs = {.num_args = ARRAY_SIZE(args), .args = args};
        s->server = grpc_server_create(&chargs, NULL);
        s->cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, s->cq, NULL);
        s->methods = cri_methods(&s->n);
        s->handles = xcalloc(s->n, sizeof(void *));
        for (size_t i = 0; i < s->n; i++) {
                s->handles[i] = grpc_server_register_method(s->server, s->methods[i].path, NULL,
                                                            GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
                if (s->handles[i] == NULL) {
                        err_set(e, ERR_INTERNAL, "cannot register %s", s->methods[i].path);
                        goto fail;
                }
        }
        addr = xasprintf("unix:%s", s->socket_path);
        grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
        int port = grpc_server_add_http2_port(s->server, addr, creds);
        grpc_server_credentials_release(creds);
        if (port == 0) {
                err_set(e, ERR_UNAVAILABLE, "cannot listen on %s", addr);
                goto fail;
        }
        s->pool = cri_pool_new(4, 1024);
        grpc_server_start(s->server);
        s->started = true;
        /* kubelet and crictl run as root; nobody else may drive the runtime. */
        if (chmod(s->socket_path, 0600) < 0) {
                err_make(e, errno, "chmod %s", s->socket_path);
                goto fail;
        }
        for (size_t i = 0; i < s->n; i++)
                for (int k = 0; k < ARMED_PER_METHOD; k++)
                        arm(s, &s->methods[i], i);
        arm(s, NULL, 0);
        for (int i = 0; i < POLLERS; i++) {
                if (pthread_create(&s->pollers[i], NULL, poller, s) != 0) {
                        err_make(e, errno, "start poller thread");
                        goto fail;
                }
                s->npollers++;
        }
        *out = s;
        return 0;
fail:
        cri_server_shutdown(s, 0);
        cri_server_free(s);
        return -1;
}

static bool wait_shutdown(struct cri_server *s, int ms)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&s->mu);
        while (!s->shutdown_done)
                if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
                        break;
        bool done = s->shutdown_done;
        pthread_mutex_unlock(&s->mu);
        return done;
}

void cri_server_shutdown(struct cri_server *s, int grace_ms)
{
        if (s == NULL || s->shutting_down)
                return;
        s->shutting_down = true;
        if (!s->started) {
                /* gRPC requires a started server for shutdown notification. */
                grpc_server_start(s->server);
                s->started = true;
        }
        grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
        if (s->npollers == 0) {
                /* Nothing drains the queue yet: do it here until shutdown lands. */
                for (;;) {
                        grpc_event ev =
                                grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                        if (ev.type != GRPC_OP_COMPLETE)
                                break;
                        struct tag *t = ev.tag;
                        t->fn(t, ev.success != 0);
                        if (t == &s->shutdown_tag)
                                break;
                }
        } else if (!wait_shutdown(s, grace_ms)) {
                log_warn("cri", "shutdown grace of %d ms passed: cancelling the calls still running",
                         grace_ms);
                grpc_server_cancel_all_calls(s->server);
                wait_shutdown(s, 60000);
        }
}

void cri_server_free(struct cri_server *s)
{
        if (s == NULL)
                return;
        cri_pool_free(s->pool);
        grpc_completion_queue_shutdown(s->cq);
        for (int i = 0; i < s->npollers; i++)
                pthread_join(s->pollers[i], NULL);
        if (s->npollers == 0) {
                for (;;) {
                        grpc_event ev =
                                grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                        if (ev.type == GRPC_QUEUE_SHUTDOWN)
                                break;
                        if (ev.type == GRPC_OP_COMPLETE)
                                ((struct tag *)ev.tag)->fn(ev.tag, ev.success != 0);
                }
        }
        grpc_server_destroy(s->server);
        grpc_completion_queue_destroy(s->cq);
        if (s->socket_path)
                (void)unlink(s->socket_path);
        free(s->socket_path);
        if (s->lock_fd >= 0)
                close(s->lock_fd); /* last: the socket is gone before another corrald may start */
        free(s->handles);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        grpc_shutdown();
}
