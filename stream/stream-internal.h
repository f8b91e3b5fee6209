/* Private to stream/: codecs, the token cache, sessions. */
#ifndef CORRAL_STREAM_INTERNAL_H
#define CORRAL_STREAM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "stream/stream.h"
#include "util/util.h"

/* ---------- SPDY/3.1 framing (spdy.c) ---------- */

#define SPDY_VERSION 3
#define SPDY_MAX_LEN 0xffffffu /* 24-bit length */

enum spdy_type {
        SPDY_DATA = 0, /* not a control type: marks data frames */
        SPDY_SYN_STREAM = 1,
        SPDY_SYN_REPLY = 2,
        SPDY_RST_STREAM = 3,
        SPDY_SETTINGS = 4,
        SPDY_PING = 6,
        SPDY_GOAWAY = 7,
        SPDY_HEADERS = 8,
        SPDY_WINDOW_UPDATE = 9,
};

#define SPDY_FLAG_FIN            0x01
#define SPDY_FLAG_UNIDIRECTIONAL 0x02

enum spdy_rst {
        SPDY_RST_PROTOCOL_ERROR = 1,
        SPDY_RST_INVALID_STREAM = 2,
        SPDY_RST_REFUSED_STREAM = 3,
        SPDY_RST_CANCEL = 5,
        SPDY_RST_INTERNAL_ERROR = 6,
        SPDY_RST_STREAM_IN_USE = 8,
};

enum spdy_goaway { SPDY_GOAWAY_OK = 0, SPDY_GOAWAY_PROTOCOL_ERROR = 1, SPDY_GOAWAY_INTERNAL_ERROR = 2 };

struct spdy_frame {
        uint16_t type; /* enum spdy_type; SPDY_DATA for data frames; unknown control types kept as is */
        uint8_t flags;
        uint32_t stream_id; /* data, SYN_*, RST, HEADERS, WINDOW_UPDATE; GOAWAY: last good id */
        uint32_t assoc_id;
        uint8_t priority;
        uint32_t value;         /* RST/GOAWAY status, PING id, WINDOW_UPDATE delta, SETTINGS count */
        const uint8_t *payload; /* data; compressed header block; settings entries */
        size_t payload_len;
};

/* Parse one frame from buf. Returns 0 when more bytes are needed, the
 * number of bytes consumed when a frame was parsed, or -1 (ERR_INVALID) for
 * a malformed frame, after which the connection must be dropped. Frames
 * longer than max_len are malformed. Payload pointers point into buf. */
long spdy_parse(const uint8_t *buf, size_t len, size_t max_len, struct spdy_frame *f, struct err *e);
bool spdy_is_control_known(uint16_t type);

void spdy_put_data(struct sbuf *b, uint32_t id, uint8_t flags, const void *data, size_t len);
void spdy_put_control(struct sbuf *b, uint16_t type, uint8_t flags, const void *body, size_t len);
void spdy_put_syn_stream(struct sbuf *b, uint32_t id, uint8_t flags, const void *hblock, size_t hlen);
void spdy_put_syn_reply(struct sbuf *b, uint32_t id, uint8_t flags, const void *hblock, size_t hlen);
void spdy_put_rst(struct sbuf *b, uint32_t id, uint32_t status);
void spdy_put_goaway(struct sbuf *b, uint32_t last_good, uint32_t status);
void spdy_put_ping(struct sbuf *b, uint32_t id);

/* Name/value header blocks (uncompressed form). Names are lowercase on the
 * wire; lookups ignore case. A value may hold several NUL-separated values. */
struct spdy_header {
        char *name;
        char *value;
        size_t value_len;
};
struct spdy_headers {
        struct spdy_header *v;
        size_t n;
};
int spdy_headers_decode(const uint8_t *raw, size_t len, struct spdy_headers *out, struct err *e);
void spdy_headers_encode(const char *const *names, const char *const *values, size_t n, struct sbuf *out);
const char *spdy_headers_get(const struct spdy_headers *h, const char *name);
void spdy_headers_free(struct spdy_headers *h);

/* ---------- SPDY header compression (spdy_zlib.c) ---------- */

/* One deflate and one inflate context per connection, both primed with the
 * SPDY/3 dictionary; they carry state from one header block to the next. */
struct spdy_zlib {
        z_stream def;
        z_stream inf;
        bool def_ok, inf_ok;
};
int spdy_zlib_init(struct spdy_zlib *z, struct err *e);
void spdy_zlib_free(struct spdy_zlib *z);
/* Compress one header block (sync flush) and append it to out. */
int spdy_zlib_deflate(struct spdy_zlib *z, const void *in, size_t len, struct sbuf *out, struct err *e);
/* Decompress one header block; fails beyond max bytes of output. */
int spdy_zlib_inflate(struct spdy_zlib *z, const void *in, size_t len, size_t max, struct sbuf *out,
                      struct err *e);
/* The SPDY/3 dictionary, SPDY_DICT_LEN bytes. */
#define SPDY_DICT_LEN 1423
const uint8_t *spdy_dict(void);

/* ---------- WebSocket framing (ws.c) ---------- */

enum ws_opcode { WS_CONT = 0, WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

struct ws_frame {
        bool fin;
        uint8_t opcode;
        bool masked;
        uint64_t len;
        uint8_t *payload; /* unmasked in place */
};

/* Parse one frame from buf (the payload is unmasked in place). Returns 0
 * when more bytes are needed, the bytes consumed, or -1 with ERR_INVALID for
 * a protocol error (reserved bits, unknown opcode, oversized or fragmented
 * control frame, payload over max_len, unmasked when require_mask). */
long ws_parse(uint8_t *buf, size_t len, size_t max_len, bool require_mask, struct ws_frame *f, struct err *e);
/* Append a frame; mask_key NULL = unmasked (server side). */
void ws_put_frame(struct sbuf *b, uint8_t opcode, bool fin, const void *data, size_t len,
                  const uint8_t *mask_key);
struct session;
/* One server-side frame on the session's connection, under its write lock;
 * nothing more once a close went out (*close_sent, which the caller keeps
 * per WebSocket). -1 on a write error or after the close. */
int ws_send_frame(struct session *s, bool *close_sent, uint8_t op, const void *data, size_t len);
void ws_send_close(struct session *s, bool *close_sent, uint16_t code);
/* Sec-WebSocket-Accept for a key: base64(sha1(key + GUID)). Caller frees. */
char *ws_accept_key(const char *key);

/* ---------- protocol names ---------- */

#define PROTO_V5     "v5.channel.k8s.io"
#define PROTO_V4     "v4.channel.k8s.io"
#define PROTO_V4_B64 "v4.base64.channel.k8s.io"
#define PROTO_V3     "v3.channel.k8s.io"
#define PROTO_V2     "v2.channel.k8s.io"
#define PROTO_V1     "channel.k8s.io"
#define PROTO_B64    "base64.channel.k8s.io"
#define PROTO_PF     "portforward.k8s.io"
/* client-go's port-forward over WebSocket: SPDY bytes in binary messages */
#define PROTO_PF_TUNNEL "SPDY/3.1+portforward.k8s.io"

/* ---------- tokens (token.c) ---------- */

enum stream_kind { KIND_EXEC = 1, KIND_ATTACH, KIND_PORTFORWARD };

struct stream_request {
        enum stream_kind kind;
        char *container_id; /* or pod id for port-forward */
        char **cmd;
        bool tty, use_stdin, use_stdout, use_stderr;
};
void stream_request_free(struct stream_request *r);

struct token_cache;
struct token_cache *token_cache_new(int ttl_sec, unsigned max);
void token_cache_free(struct token_cache *c);
/* Store a request (taken over) and return its new token (caller frees). */
int token_cache_put(struct token_cache *c, struct stream_request *req, char **token, struct err *e);
/* Take the request out: single use. ERR_NOT_FOUND for unknown/used tokens,
 * ERR_DEADLINE for expired ones (removed too). */
struct stream_request *token_cache_take(struct token_cache *c, const char *token, struct err *e);

/* ---------- connections (session.c) ---------- */

/* An upgraded connection: one reader thread, writers serialised by wlock. */
struct conn {
        int fd;
        int wake_fd; /* eventfd: the reader's poll wakes up to stop */
        pthread_mutex_t wlock;
        bool write_failed;
        uint8_t *rbuf;
        size_t rlen, rcap;
};
int conn_init(struct conn *c, int fd, const void *extra, size_t extra_len, struct err *e);
void conn_destroy(struct conn *c); /* does not close fd */
/* Write all bytes; caller holds wlock. -1 once the peer is gone. */
int conn_write_locked(struct conn *c, const void *data, size_t len);
/* Read more into rbuf, waiting at most timeout_ms (-1 forever). Returns
 * bytes read, 0 on timeout, -1 on EOF/error, -2 when woken to stop. */
int conn_fill(struct conn *c, int timeout_ms);
void conn_consume(struct conn *c, size_t n);
void conn_wake(struct conn *c);
/* After the last frame: stop writing, read and discard what the peer still
 * sends (so our close does not reset data it has not read) for up to ms. */
void conn_linger(struct conn *c, bool can_shutdown, int ms);
/* send(2) everything with MSG_NOSIGNAL (a closed peer is EPIPE, not SIGPIPE). */
int sock_send_all(int fd, const void *data, size_t len);

/* ---------- exec/attach core (exec.c), shared by SPDY and WebSocket ---------- */

enum { CH_STDIN = 0, CH_STDOUT = 1, CH_STDERR = 2, CH_ERROR = 3, CH_RESIZE = 4, CH_MAX = 5 };

struct exec_xport {
        /* send bytes on an output channel (stdout, stderr, error) */
        int (*send)(void *x, int ch, const void *data, size_t len);
        /* no more data on this output channel (SPDY FIN) */
        void (*close_ch)(void *x, int ch);
        /* everything sent: end the session */
        void (*finish)(void *x);
};

struct exec_run {
        const struct stream_backend *backend;
        void *backend_data;
        struct stream_request *req;
        bool status_json; /* v4+: metav1.Status JSON on the error channel; else the message text */
        const struct exec_xport *xp;
        void *x;

        int stdin_w;      /* server side of the stdin pipe */
        int out_r, err_r; /* server side of the output pipes */
        struct stream_io io;
        int done_efd; /* backend returned */
        pthread_t backend_thr, pump_thr;
        bool started;

        pthread_mutex_t lock;
        void (*resize_fn)(void *data, uint16_t w, uint16_t h);
        void *resize_data;
        bool resize_pending;
        uint16_t pend_w, pend_h;
        struct sbuf resize_buf;

        int rc; /* backend result */
        int exit_code;
        char *errmsg;
};

int exec_run_start(struct exec_run *r, const struct stream_backend *b, void *bdata,
                   struct stream_request *req, bool status_json, const struct exec_xport *xp, void *x,
                   struct err *e);
void exec_run_stdin(struct exec_run *r, const void *data, size_t len);
void exec_run_stdin_close(struct exec_run *r);
void exec_run_resize(struct exec_run *r, const void *data, size_t len);
/* The client is gone or the server stops: tell the backend. */
void exec_run_cancel(struct exec_run *r);
/* Wait for the backend and the pump, release. */
void exec_run_join(struct exec_run *r);
/* The error-channel payload for a result (JSON or text); NULL when
 * nothing is to be sent (success without JSON). */
char *exec_status_payload(enum stream_kind kind, char *const *cmd, int rc, int exit_code, const char *errmsg,
                          bool json);

/* ---------- sessions (server.c, spdy_session.c, ws_session.c) ---------- */

struct stream_server;
struct session {
        struct stream_server *srv;
        struct stream_request *req;
        char *protocol; /* negotiated */
        bool websocket;
        bool base64; /* WebSocket base64.channel.k8s.io */
        bool v5;
        bool tunnel;     /* WebSocket carrying SPDY (PROTO_PF_TUNNEL) */
        uint16_t *ports; /* WebSocket port-forward */
        size_t nports;
        struct conn c;
        bool conn_ok;
        bool tls;
        void *urh; /* struct MHD_UpgradeResponseHandle * */
        struct session *next;
};

const struct stream_backend *server_backend(struct stream_server *srv, void **data);
int server_stream_timeout_ms(struct stream_server *srv);
void spdy_session_run(struct session *s);
void ws_session_run(struct session *s);
void ws_tunnel_run(struct session *s); /* ws_tunnel.c */

/* ---------- clients (client.c; ws_client.c uses them too) ---------- */

/* "http://host:port/path" (IPv6 in brackets; port 80 when absent). */
int stream_url_parse(const char *url, char **host, char **port, char **path, struct err *e);
/* Read an HTTP response head (up to 64 KiB) into resp; *head_len counts it
 * with its blank line (bytes after it are the upgraded protocol's), *code is
 * the status. On error resp is freed. */
int stream_read_response_head(int fd, const char *url, struct sbuf *resp, size_t *head_len, int *code,
                              struct err *e);
/* The value of header `name` in an HTTP head (case-insensitive), cut to
 * outlen; NULL when absent. */
const char *stream_header_value(const char *head, const char *name, char *out, size_t outlen);
/* A response other than 101 to an upgrade: its body (per Content-Length, up
 * to 4 KiB) becomes the error, its status the kind (404 NOT_FOUND, 403
 * PERMISSION, 503 UNAVAILABLE, else INVALID). Frees resp; returns -1. */
int stream_upgrade_refused(int fd, struct sbuf *resp, size_t head_len, int code, struct err *e);
/* Fill an exec result from its error stream's bytes (json: a v4+ Status). */
void stream_result_from_status(const char *buf, size_t len, bool json, struct stream_client_result *res);
/* A connected TCP socket to host:port (every address tried in turn). */
int stream_dial_tcp(const char *host, const char *port, struct err *e);

#endif
