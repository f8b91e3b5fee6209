/* A small CRI client on gRPC core: corralctl and the tests use it. Each
 * call has its own pluck queue, so calls from many threads never wait on
 * each other. */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <string.h>

#include "cri/cri.h"
#include "corral/v1/corral.pb-c.h"
#include "runtime/v1/api.pb-c.h"

struct cri_client {
        grpc_channel *ch;
};

struct cri_client_stream {
        grpc_completion_queue *cq;
        grpc_call *call;
        const ProtobufCMessageDescriptor *desc;
        grpc_metadata_array initial_md;
        bool done;
};

int cri_client_new(const char *endpoint, struct cri_client **out, struct err *e)
{
        const char *path = endpoint;
        if (str_has_prefix(path, "unix://"))
                path += strlen("unix://");
        else if (str_has_prefix(path, "unix:"))
                path += strlen("unix:");
        if (*path != '/')
                return err_set(e, ERR_INVALID, "endpoint %s: want unix:///absolute/path", endpoint);
        grpc_init();
        cleanup_free char *target = xasprintf("unix:%s", path);
        grpc_arg args[] = {
                {.type = GRPC_ARG_INTEGER,
                 .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                 .value.integer = 16 << 20},
                {.type = GRPC_ARG_INTEGER,
                 .key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
                 .value.integer = 16 << 20},
        };
        grpc_channel_args chargs = {.num_args = ARRAY_SIZE(args), .args = args};
        grpc_channel_credentials *creds = grpc_insecure_credentials_create();
        struct cri_client *c = xzalloc(sizeof(*c));
        c->ch = grpc_channel_create(target, creds, &chargs);
        grpc_channel_credentials_release(creds);
        *out = c;
        return 0;
}

void cri_client_free(struct cri_client *c)
{
        if (c == NULL)
                return;
        grpc_channel_destroy(c->ch);
        free(c);
        grpc_shutdown();
}

static gpr_timespec deadline_of(int timeout_ms)
{
        if (timeout_ms <= 0)
                return gpr_inf_future(GPR_CLOCK_REALTIME);
        return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

static void drain_and_destroy(grpc_completion_queue *cq)
{
        grpc_completion_queue_shutdown(cq);
        while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
                ;
        grpc_completion_queue_destroy(cq);
}

static void init_op(grpc_op *op, grpc_op_type type)
{
        memset(op, 0, sizeof(*op));
        op->op = type;
}

static int status_error(grpc_status_code status, grpc_slice details, const char *method, struct err *e)
{
        cleanup_free char *msg = grpc_slice_to_c_string(details);
        if (status == GRPC_STATUS_UNAVAILABLE && *msg == '\0')
                return err_set(e, ERR_UNAVAILABLE, "%s: runtime unavailable", method);
        return err_set(e, (enum err_kind)status, "%s", *msg ? msg : "call failed");
}

/* The reply's bytes in one heap buffer: one copy out of gRPC's slices. */
static char *bb_to_bytes(grpc_byte_buffer *bb, size_t *len)
{
        size_t n = grpc_byte_buffer_length(bb), off = 0;
        char *out = xmalloc(n ? n : 1);
        grpc_byte_buffer_reader r;
        grpc_byte_buffer_reader_init(&r, bb);
        grpc_slice s;
        while (grpc_byte_buffer_reader_next(&r, &s) != 0) {
                size_t k = GRPC_SLICE_LENGTH(s);
                if (k > n - off)
                        k = n - off;
                memcpy(out + off, GRPC_SLICE_START_PTR(s), k);
                off += k;
                grpc_slice_unref(s);
        }
        grpc_byte_buffer_reader_destroy(&r);
        *len = off;
        return out;
}

int cri_client_call_raw(struct cri_client *c, const char *method, const uint8_t *req, size_t req_len,
                        int timeout_ms, uint8_t **resp, size_t *resp_len, struct err *e)
{
        grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
        grpc_slice mslice = grpc_slice_from_copied_string(method);
        grpc_call *call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, mslice, NULL,
                                                   deadline_of(timeout_ms), NULL);
        grpc_slice_unref(mslice);
        grpc_slice body = grpc_slice_from_copied_buffer((const char *)req, req_len);
        grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1);
        grpc_slice_unref(body);
        grpc_byte_buffer *recv = NULL;
        grpc_metadata_array initial_md, trailing_md;
        grpc_metadata_array_init(&initial_md);
        grpc_metadata_array_init(&trailing_md);
        grpc_status_code status = GRPC_STATUS_OK;
        grpc_slice details = grpc_empty_slice();
        grpc_op ops[6];
        init_op(&ops[0], GRPC_OP_SEND_INITIAL_METADATA);
        init_op(&ops[1], GRPC_OP_SEND_MESSAGE);
        ops[1].data.send_message.send_message = send;
        init_op(&ops[2], GRPC_OP_SEND_CLOSE_FROM_CLIENT);
        init_op(&ops[3], GRPC_OP_RECV_INITIAL_METADATA);
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
        init_op(&ops[4], GRPC_OP_RECV_MESSAGE);
        ops[4].data.recv_message.recv_message = &recv;
        init_op(&ops[5], GRPC_OP_RECV_STATUS_ON_CLIENT);
        ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
        ops[5].data.recv_status_on_client.status = &status;
        ops[5].data.recv_status_on_client.status_details = &details;
        int ret = 0;
        if (grpc_call_start_batch(call, ops, 6, call, NULL) != GRPC_CALL_OK) {
                ret = err_set(e, ERR_INTERNAL, "%s: cannot start the call", method);
        } else {
                grpc_completion_queue_pluck(cq, call, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                if (status != GRPC_STATUS_OK)
                        ret = status_error(status, details, method, e);
                else if (recv == NULL)
                        ret = err_set(e, ERR_INTERNAL, "%s: no response message", method);
                else
                        *resp = (uint8_t *)bb_to_bytes(recv, resp_len);
        }
        grpc_byte_buffer_destroy(send);
        if (recv)
                grpc_byte_buffer_destroy(recv);
        grpc_slice_unref(details);
        grpc_metadata_array_destroy(&initial_md);
        grpc_metadata_array_destroy(&trailing_md);
        grpc_call_unref(call);
        drain_and_destroy(cq);
        return ret;
}

int cri_client_call(struct cri_client *c, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, int timeout_ms, ProtobufCMessage **resp,
                    struct err *e)
{
        size_t len = protobuf_c_message_get_packed_size(req);
        cleanup_free uint8_t *buf = xmalloc(len ? len : 1);
        protobuf_c_message_pack(req, buf);
        cleanup_free uint8_t *out = NULL;
        size_t out_len = 0;
        if (cri_client_call_raw(c, method, buf, len, timeout_ms, &out, &out_len, e) < 0)
                return -1;
        *resp = protobuf_c_message_unpack(resp_desc, NULL, out_len, out);
        if (*resp == NULL)
                return err_set(e, ERR_INTERNAL, "%s: malformed %s from the runtime", method, resp_desc->name);
        return 0;
}

int cri_client_stream_open(struct cri_client *c, const char *method, const ProtobufCMessage *req,
                           const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
                           struct cri_client_stream **out, struct err *e)
{
        struct cri_client_stream *s = xzalloc(sizeof(*s));
        s->desc = resp_desc;
        s->cq = grpc_completion_queue_create_for_pluck(NULL);
        grpc_metadata_array_init(&s->initial_md);
        grpc_slice mslice = grpc_slice_from_copied_string(method);
        s->call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq, mslice, NULL,
                                           deadline_of(timeout_ms), NULL);
        grpc_slice_unref(mslice);
        size_t len = protobuf_c_message_get_packed_size(req);
        cleanup_free uint8_t *buf = xmalloc(len ? len : 1);
        protobuf_c_message_pack(req, buf);
        grpc_slice body = grpc_slice_from_copied_buffer((const char *)buf, len);
        grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1);
        grpc_slice_unref(body);
        grpc_op ops[4];
        init_op(&ops[0], GRPC_OP_SEND_INITIAL_METADATA);
        init_op(&ops[1], GRPC_OP_SEND_MESSAGE);
        ops[1].data.send_message.send_message = send;
        init_op(&ops[2], GRPC_OP_SEND_CLOSE_FROM_CLIENT);
        init_op(&ops[3], GRPC_OP_RECV_INITIAL_METADATA);
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
        grpc_call_error r = grpc_call_start_batch(s->call, ops, 4, s, NULL);
        if (r == GRPC_CALL_OK)
                grpc_completion_queue_pluck(s->cq, s, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        grpc_byte_buffer_destroy(send);
        if (r != GRPC_CALL_OK) {
                cri_client_stream_close(s);
                return err_set(e, ERR_INTERNAL, "%s: cannot start the call", method);
        }
        *out = s;
        return 0;
}

int cri_client_stream_next(struct cri_client_stream *s, ProtobufCMessage **msg, struct err *e)
{
        *msg = NULL;
        if (s->done)
                return 0;
        grpc_byte_buffer *recv = NULL;
        grpc_op op;
        init_op(&op, GRPC_OP_RECV_MESSAGE);
        op.data.recv_message.recv_message = &recv;
        if (grpc_call_start_batch(s->call, &op, 1, s, NULL) != GRPC_CALL_OK)
                return err_set(e, ERR_INTERNAL, "stream read failed");
        grpc_completion_queue_pluck(s->cq, s, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (recv) {
                size_t len;
                cleanup_free char *bytes = bb_to_bytes(recv, &len);
                grpc_byte_buffer_destroy(recv);
                *msg = protobuf_c_message_unpack(s->desc, NULL, len, (const uint8_t *)bytes);
                if (*msg == NULL)
                        return err_set(e, ERR_INTERNAL, "malformed %s in stream", s->desc->name);
                return 0;
        }
        /* End of stream: collect the status. */
        s->done = true;
        grpc_metadata_array trailing;
        grpc_metadata_array_init(&trailing);
        grpc_status_code status = GRPC_STATUS_OK;
        grpc_slice details = grpc_empty_slice();
        init_op(&op, GRPC_OP_RECV_STATUS_ON_CLIENT);
        op.data.recv_status_on_client.trailing_metadata = &trailing;
        op.data.recv_status_on_client.status = &status;
        op.data.recv_status_on_client.status_details = &details;
        int ret = 0;
        if (grpc_call_start_batch(s->call, &op, 1, s, NULL) == GRPC_CALL_OK) {
                grpc_completion_queue_pluck(s->cq, s, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                if (status != GRPC_STATUS_OK)
                        ret = status_error(status, details, "stream", e);
        }
        grpc_slice_unref(details);
        grpc_metadata_array_destroy(&trailing);
        return ret;
}

void cri_client_stream_close(struct cri_client_stream *s)
{
        if (s == NULL)
                return;
        if (!s->done)
                grpc_call_cancel(s->call, NULL);
        grpc_call_unref(s->call);
        grpc_metadata_array_destroy(&s->initial_md);
        drain_and_destroy(s->cq);
        free(s);
}

struct cri_client_upload {
        grpc_completion_queue *cq;
        grpc_call *call;
        char *method;
};

static void upload_free(struct cri_client_upload *u)
{
        grpc_call_unref(u->call);
        drain_and_destroy(u->cq);
        free(u->method);
        free(u);
}

int cri_client_upload_open(struct cri_client *c, const char *method, int timeout_ms,
                           struct cri_client_upload **out, struct err *e)
{
        struct cri_client_upload *u = xzalloc(sizeof(*u));
        u->method = xstrdup(method);
        u->cq = grpc_completion_queue_create_for_pluck(NULL);
        grpc_slice mslice = grpc_slice_from_copied_string(method);
        u->call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, u->cq, mslice, NULL,
                                           deadline_of(timeout_ms), NULL);
        grpc_slice_unref(mslice);
        grpc_op op;
        init_op(&op, GRPC_OP_SEND_INITIAL_METADATA);
        if (grpc_call_start_batch(u->call, &op, 1, u, NULL) != GRPC_CALL_OK) {
                upload_free(u);
                return err_set(e, ERR_INTERNAL, "%s: cannot start the call", method);
        }
        grpc_completion_queue_pluck(u->cq, u, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        *out = u;
        return 0;
}

int cri_client_upload_send(struct cri_client_upload *u, const ProtobufCMessage *msg, struct err *e)
{
        size_t len = protobuf_c_message_get_packed_size(msg);
        uint8_t *buf = xmalloc(len ? len : 1);
        protobuf_c_message_pack(msg, buf);
        grpc_slice body = grpc_slice_new(buf, len, free);
        grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1);
        grpc_slice_unref(body);
        grpc_op op;
        init_op(&op, GRPC_OP_SEND_MESSAGE);
        op.data.send_message.send_message = send;
        int ret = 0;
        if (grpc_call_start_batch(u->call, &op, 1, u, NULL) != GRPC_CALL_OK)
                ret = err_set(e, ERR_INTERNAL, "%s: cannot send", u->method);
        else if (!grpc_completion_queue_pluck(u->cq, u, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).success)
                ret = err_set(e, ERR_UNAVAILABLE, "%s: the call ended while sending", u->method);
        grpc_byte_buffer_destroy(send);
        return ret;
}

int cri_client_upload_finish(struct cri_client_upload *u, const ProtobufCMessageDescriptor *resp_desc,
                             ProtobufCMessage **resp, struct err *e)
{
        grpc_byte_buffer *recv = NULL;
        grpc_metadata_array initial_md, trailing_md;
        grpc_metadata_array_init(&initial_md);
        grpc_metadata_array_init(&trailing_md);
        grpc_status_code status = GRPC_STATUS_OK;
        grpc_slice details = grpc_empty_slice();
        grpc_op ops[4];
        init_op(&ops[0], GRPC_OP_SEND_CLOSE_FROM_CLIENT);
        init_op(&ops[1], GRPC_OP_RECV_INITIAL_METADATA);
        ops[1].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
        init_op(&ops[2], GRPC_OP_RECV_MESSAGE);
        ops[2].data.recv_message.recv_message = &recv;
        init_op(&ops[3], GRPC_OP_RECV_STATUS_ON_CLIENT);
        ops[3].data.recv_status_on_client.trailing_metadata = &trailing_md;
        ops[3].data.recv_status_on_client.status = &status;
        ops[3].data.recv_status_on_client.status_details = &details;
        int ret = 0;
        *resp = NULL;
        if (grpc_call_start_batch(u->call, ops, 4, u, NULL) != GRPC_CALL_OK) {
                ret = err_set(e, ERR_INTERNAL, "%s: cannot finish the call", u->method);
        } else {
                grpc_completion_queue_pluck(u->cq, u, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                if (status != GRPC_STATUS_OK) {
                        ret = status_error(status, details, u->method, e);
                } else if (recv == NULL) {
                        ret = err_set(e, ERR_INTERNAL, "%s: no response message", u->method);
                } else {
                        size_t len;
                        cleanup_free char *bytes = bb_to_bytes(recv, &len);
                        *resp = protobuf_c_message_unpack(resp_desc, NULL, len, (const uint8_t *)bytes);
                        if (*resp == NULL)
                                ret = err_set(e, ERR_INTERNAL, "%s: malformed %s from the runtime", u->method,
                                              resp_desc->name);
                }
        }
        if (recv)
                grpc_byte_buffer_destroy(recv);
        grpc_slice_unref(details);
        grpc_metadata_array_destroy(&initial_md);
        grpc_metadata_array_destroy(&trailing_md);
        upload_free(u);
        return ret;
}

/* Paths built once for both services, from their descriptors. */
static char **method_paths;
static pthread_once_t paths_once = PTHREAD_ONCE_INIT;

static void build_paths(void)
{
        static const ProtobufCServiceDescriptor *const services[] = {
                &runtime__v1__runtime_service__descriptor,
                &runtime__v1__image_service__descriptor,
                &corral__v1__corral__descriptor,
        };
        size_t n = 0;
        for (size_t i = 0; i < ARRAY_SIZE(services); i++)
                n += services[i]->n_methods;
        method_paths = xcalloc(n + 1, sizeof(char *));
        n = 0;
        for (size_t i = 0; i < ARRAY_SIZE(services); i++)
                for (unsigned j = 0; j < services[i]->n_methods; j++)
                        method_paths[n++] =
                                xasprintf("/%s/%s", services[i]->name, services[i]->methods[j].name);
}

const char *cri_method_path(const char *rpc)
{
        pthread_once(&paths_once, build_paths);
        for (size_t i = 0; method_paths[i]; i++) {
                const char *slash = strrchr(method_paths[i], '/');
                if (strcmp(slash + 1, rpc) == 0)
                        return method_paths[i];
        }
        return NULL;
}
