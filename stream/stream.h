/* stream: the CRI streaming server (exec, attach, port-forward) and a client
 * for the same protocols.
 *
 * The Exec, Attach and PortForward RPCs hand out a URL with a single-use
 * token (stream_token_*). kubelet (proxying kubectl) or crictl then upgrades
 * an HTTP connection at that URL to either
 *   - SPDY/3.1, with X-Stream-Protocol-Version v4/v3/v2.channel.k8s.io or
 *     channel.k8s.io (exec, attach) or portforward.k8s.io, one SPDY stream
 *     per streamType (stdin, stdout, stderr, error, resize; data/error pairs
 *     for port-forward), or
 *   - WebSocket (RFC 6455), Sec-WebSocket-Protocol v5/v4.channel.k8s.io,
 *     base64.channel.k8s.io or channel.k8s.io (exec, attach) and
 *     v4.channel.k8s.io / portforward.k8s.io (port-forward), one channel byte
 *     in front of every message, or SPDY/3.1+portforward.k8s.io: client-go's
 *     port-forward over WebSocket, SPDY bytes in binary messages (ws_tunnel.c).
 * The container side is a backend (struct stream_backend): the server
 * speaks the protocols and gives the backend plain file descriptors.
 */
#ifndef CORRAL_STREAM_H
#define CORRAL_STREAM_H

#include <stdbool.h>
#include <stdint.h>

struct err;

/* ---------- server ---------- */

struct stream_config {
        const char *address;  /* bind address; NULL = "127.0.0.1" (IPv6 literals work) */
        uint16_t port;        /* 0 = ephemeral */
        const char *tls_cert; /* PEM files; both set = HTTPS, both NULL = HTTP */
        const char *tls_key;
        int token_ttl_sec;               /* 0 = 60, like kubelet's request cache */
        int stream_creation_timeout_sec; /* wait for the client's SPDY streams; 0 = 30 */
        unsigned max_tokens;             /* outstanding tokens; 0 = 1000 */
};

struct stream_exec_req {
        const char *container_id;
        char *const *cmd; /* NULL-terminated argv, at least one element */
        bool tty;
        bool use_stdin;
        bool use_stdout;
        bool use_stderr; /* must be false when tty (CRI rule) */
};

struct stream_attach_req {
        const char *container_id;
        bool tty;
        bool use_stdin;
        bool use_stdout;
        bool use_stderr;
};

/* What the backend sees of one exec or attach session. The descriptors
 * belong to the server, which closes them when the backend call returns; a
 * backend that hands one to a child process may close it earlier and set
 * the field to -1 (the server then sees EOF on the output pipes sooner). */
struct stream_io {
        int stdin_fd;  /* read end: the client's stdin; EOF when the client closes it; -1 if none */
        int stdout_fd; /* write end for the process's stdout (the terminal with tty); -1 if none */
        int stderr_fd; /* write end for stderr; -1 if none (always with tty) */
        int cancel_fd; /* becomes readable when the session ends (client gone, server stopping):
                        * exec should stop the process, attach should detach, and return */
        void *priv;    /* server-private */
};

/* Register the terminal resize handler (tty sessions). Sizes that arrived
 * before registration are delivered at once (the latest one). fn runs on
 * the session's reader thread. */
void stream_io_set_resize(struct stream_io *io, void (*fn)(void *data, uint16_t width, uint16_t height),
                          void *data);
bool stream_io_cancelled(const struct stream_io *io);

struct stream_backend {
        /* Run req->cmd in the container and block until it exits; *exit_code
         * gets its exit status (128+signal when killed). Return < 0 with `e`
         * when the command could not be run at all. */
        int (*exec)(void *data, const struct stream_exec_req *req, struct stream_io *io, int *exit_code,
                    struct err *e);
        /* Attach to the running container's stdio until it exits or the session
         * is cancelled; return 0, or < 0 with `e` when attaching failed. */
        int (*attach)(void *data, const struct stream_attach_req *req, struct stream_io *io, struct err *e);
        /* Return in *fd_out a connected stream socket to `port` inside the
         * pod's network namespace (owned by the caller). */
        int (*portforward)(void *data, const char *pod_id, uint16_t port, int *fd_out, struct err *e);
};

struct stream_server;

/* Listen and serve in background threads (libmicrohttpd, a thread per
 * connection). The backend table must outlive the server. */
int stream_server_new(const struct stream_config *cfg, const struct stream_backend *backend,
                      void *backend_data, struct stream_server **out, struct err *e);
/* Base URL, "http://127.0.0.1:PORT" (https with TLS, [v6] bracketed). */
const char *stream_server_url(const struct stream_server *srv);
uint16_t stream_server_port(const struct stream_server *srv);
/* Number of upgraded sessions being served now. */
unsigned stream_server_sessions(struct stream_server *srv);
/* Stop listening, cancel and wait for every live session, free. NULL ok. */
void stream_server_free(struct stream_server *srv);

/* ---------- tokens: single use, expire after the ttl ---------- */

/* *url = "<base>/exec/<token>" (caller frees). ERR_INVALID for a bad
 * request (no command, tty with stderr, no stream at all), ERR_EXHAUSTED
 * when too many tokens are outstanding. */
int stream_token_exec(struct stream_server *srv, const struct stream_exec_req *req, char **url,
                      struct err *e);
int stream_token_attach(struct stream_server *srv, const struct stream_attach_req *req, char **url,
                        struct err *e);
int stream_token_portforward(struct stream_server *srv, const char *pod_id, char **url, struct err *e);

/* ---------- client (SPDY/3.1; what corralctl uses for exec -it, attach, port-forward) ---------- */

struct stream_client;

/* Connect to an exec/attach/port-forward URL (http:// only) and upgrade to
 * SPDY/3.1 offering `protocol` (NULL: v4.channel.k8s.io for exec/attach,
 * portforward.k8s.io for port-forward, chosen from the URL path). An HTTP
 * error comes back as ERR_NOT_FOUND (404), ERR_PERMISSION (403) or
 * ERR_INVALID with the server's reason in the message. */
int stream_client_dial(const char *url, const char *protocol, struct stream_client **out, struct err *e);
/* Protocol the server chose ("" when it chose none: legacy v1). */
const char *stream_client_protocol(const struct stream_client *c);

struct stream_client_exec_opts {
        bool tty;
        int in_fd;  /* copied to the stdin stream until EOF, then the stream is closed; -1 = no stdin */
        int out_fd; /* stdout stream written here; -1 = no stdout */
        int err_fd; /* stderr stream written here; -1 = no stderr (always with tty) */
        uint16_t width, height; /* tty: initial terminal size sent at once; 0 = none */
};

struct stream_client_result {
        int exit_code; /* 0 on Success, the ExitCode cause on NonZeroExitCode, -1 otherwise */
        char *status; /* what the error stream carried (v4: the Status JSON); NULL if nothing; caller frees */
        char *message; /* Status message on failure; NULL on success; caller frees */
};

/* Run an exec/attach session to the end: create the streams, copy, and
 * wait for the error stream and the server to close. Blocking. */
int stream_client_exec(struct stream_client *c, const struct stream_client_exec_opts *o,
                       struct stream_client_result *res, struct err *e);
/* Send a terminal size on the resize stream (tty sessions). Thread-safe,
 * callable while stream_client_exec runs (e.g. from a SIGWINCH thread). */
int stream_client_resize(struct stream_client *c, uint16_t width, uint16_t height, struct err *e);
/* Forward one connection: new data+error stream pair for `port`, copying
 * between the pair and conn_fd (taken over) in a background thread;
 * half-close is passed on both ways. */
int stream_client_forward(struct stream_client *c, uint16_t port, int conn_fd, struct err *e);
/* Wait until every forwarded connection has ended; returns the number
 * that ended with an error message from the server (printed into *errors,
 * one per line, caller frees; may be NULL). */
int stream_client_forward_wait(struct stream_client *c, char **errors);
void stream_client_result_clear(struct stream_client_result *res);
void stream_client_free(struct stream_client *c);

/* ---------- WebSocket client (ws_client.c; corralctl --transport=websocket) ---------- */

struct stream_ws_client;

/* Connect to an exec/attach URL (http:// only) and upgrade to WebSocket
 * offering `protocol` (NULL: v5.channel.k8s.io, v4.channel.k8s.io; for a
 * port-forward URL v4.channel.k8s.io). HTTP errors as stream_client_dial. */
int stream_ws_dial(const char *url, const char *protocol, struct stream_ws_client **out, struct err *e);
const char *stream_ws_protocol(const struct stream_ws_client *c);
/* As stream_client_exec (the same options and result). v5 passes the end
 * of stdin on; v4 cannot (stdin then just stops). */
int stream_ws_exec(struct stream_ws_client *c, const struct stream_client_exec_opts *o,
                   struct stream_client_result *res, struct err *e);
/* Thread-safe, callable while stream_ws_exec runs. */
int stream_ws_resize(struct stream_ws_client *c, uint16_t width, uint16_t height, struct err *e);
void stream_ws_client_free(struct stream_ws_client *c); /* NULL ok */
/* Port-forward one connection: a WebSocket of its own to `url`?port=PORT
 * (a port-forward URL: tokens are single-use, so one URL per connection),
 * copying between it and conn_fd (taken over, also on failure) in a
 * detached thread until either side ends. */
int stream_ws_forward(const char *url, uint16_t port, int conn_fd, struct err *e);

#endif
