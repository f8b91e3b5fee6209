/* cri: the gRPC edge. The CRI runtime.v1 server on the gRPC core C API, the
 * daemon that wires the modules behind it, and a small C client used by
 * corralctl and the tests. This is the only place where a `struct err`
 * becomes a gRPC status and the only module that knows protobuf types.
 */
#ifndef CORRAL_CRI_H
#define CORRAL_CRI_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

struct cfg;

/* ---------- daemon ---------- */

struct cri_daemon;

struct cri_daemon_opts {
        /* Test hook: make one method sleep before it runs ("Status=2000",
         * milliseconds), so tests can prove one slow call blocks no other.
         * NULL in production. */
        const char *debug_delay;
};

/* Opens the store, detects host features, builds the modules and starts
 * the gRPC server listening on cfg->listen. `cfg` must outlive the daemon. */
int cri_daemon_start(const struct cfg *cfg, const struct cri_daemon_opts *opts, struct cri_daemon **out,
                     struct err *e);
/* Stops accepting calls, lets in-flight calls finish (cancelling what is
 * still running after `grace_ms`), removes the socket and frees everything.
 * Containers and shims keep running. */
void cri_daemon_stop(struct cri_daemon *d, int grace_ms);

/* ---------- client ---------- */

struct cri_client;

/* `endpoint`: "unix:///run/corral/corral.sock", "unix:/path" or a bare path. */
int cri_client_new(const char *endpoint, struct cri_client **out, struct err *e);
void cri_client_free(struct cri_client *c);

/* A unary call. `method` is the full path ("/runtime.v1.RuntimeService/Version").
 * On success *resp is a message of `resp_desc` (free with
 * protobuf_c_message_free_unpacked(resp, NULL)). A non-OK status becomes an
 * error whose kind is the status code and whose message is the server's. */
int cri_client_call(struct cri_client *c, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, int timeout_ms, ProtobufCMessage **resp,
                    struct err *e);

/* The same with raw bytes in and out (tests send malformed requests). */
int cri_client_call_raw(struct cri_client *c, const char *method, const uint8_t *req, size_t req_len,
                        int timeout_ms, uint8_t **resp, size_t *resp_len, struct err *e);

/* Server-streaming calls: open, then next() until it returns 0 with
 * *msg == NULL (the stream ended with OK) or a negative error. */
struct cri_client_stream;
int cri_client_stream_open(struct cri_client *c, const char *method, const ProtobufCMessage *req,
                           const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
                           struct cri_client_stream **out, struct err *e);
int cri_client_stream_next(struct cri_client_stream *s, ProtobufCMessage **msg, struct err *e);
void cri_client_stream_close(struct cri_client_stream *s);

/* Client-streaming calls (ImportImage): open, send messages, then finish
 * (which half-closes and waits for the response and status). A failed send
 * means the server ended the call: finish then returns its status. Finish
 * or close frees the upload. */
struct cri_client_upload;
int cri_client_upload_open(struct cri_client *c, const char *method, int timeout_ms,
                           struct cri_client_upload **out, struct err *e);
int cri_client_upload_send(struct cri_client_upload *u, const ProtobufCMessage *msg, struct err *e);
int cri_client_upload_finish(struct cri_client_upload *u, const ProtobufCMessageDescriptor *resp_desc,
                             ProtobufCMessage **resp, struct err *e);

/* Full method path for an RPC name ("Version" -> "/runtime.v1.RuntimeService/Version",
 * "PullImageProgress" -> "/corral.v1.Corral/PullImageProgress"); NULL for
 * names that are not methods of these services. Static storage. */
const char *cri_method_path(const char *rpc);

#endif
