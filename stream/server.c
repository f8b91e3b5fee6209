/* The streaming HTTP server: libmicrohttpd with a thread per connection,
 * token routing, the SPDY and WebSocket handshakes, upgraded sessions. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "stream/stream-internal.h"

struct stream_server {
        struct MHD_Daemon *mhd;
        int listen_fd;
        char *url;
        uint16_t port;
        bool tls;
        char *cert_pem, *key_pem;
        const struct stream_backend *backend;
        void *backend_data;
        struct token_cache *tokens;
        int stream_timeout_ms;

        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct session *live;
        unsigned nlive;
        bool stopping;
};

/* Per HTTP request, kept by libmicrohttpd in con_cls. */
struct req_ctx {
        struct session *sess; /* prepared for the upgrade; owned here until it happens */
        bool upgraded;
};

const struct stream_backend *server_backend(struct stream_server *srv, void **data)
{
        *data = srv->backend_data;
        return srv->backend;
}

int server_stream_timeout_ms(struct stream_server *srv)
{
        return srv->stream_timeout_ms;
}

static void session_free(struct session *s)
{
        if (!s)
                return;
        stream_request_free(s->req);
        free(s->protocol);
        free(s->ports);
        free(s);
}

/* ---------- upgraded sessions ---------- */

static void *session_main(void *arg)
{
        struct session *s = arg;
        struct stream_server *srv = s->srv;
        if (s->tunnel)
                ws_tunnel_run(s);
        else if (s->websocket)
                ws_session_run(s);
        else
                spdy_session_run(s);
        MHD_upgrade_action(s->urh, MHD_UPGRADE_ACTION_CLOSE);
        conn_destroy(&s->c);

        pthread_mutex_lock(&srv->lock);
        for (struct session **pp = &srv->live; *pp; pp = &(*pp)->next)
                if (*pp == s) {
                        *pp = s->next;
                        break;
                }
        session_free(s);
        srv->nlive--;
        pthread_cond_broadcast(&srv->cond);
        pthread_mutex_unlock(&srv->lock);
        return NULL;
}

static void on_upgrade(void *cls, struct MHD_Connection *mc, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
        (void)mc;
        struct session *s = cls;
        struct req_ctx *ctx = con_cls;
        struct stream_server *srv = s->srv;
        if (ctx)
                ctx->upgraded = true;
        s->urh = urh;
        struct err e = ERR_INIT;
        if (conn_init(&s->c, sock, extra_in, extra_in_size, &e) < 0) {
                log_debug("stream", "upgrade failed: %s", e.msg);
                err_clear(&e);
                MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
                session_free(s);
                return;
        }
        pthread_mutex_lock(&srv->lock);
        if (srv->stopping) {
                pthread_mutex_unlock(&srv->lock);
                conn_destroy(&s->c);
                MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
                session_free(s);
                return;
        }
        s->next = srv->live;
        srv->live = s;
        srv->nlive++;
        pthread_mutex_unlock(&srv->lock);

        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        int rc = pthread_create(&t, &attr, session_main, s);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
                pthread_mutex_lock(&srv->lock);
                for (struct session **pp = &srv->live; *pp; pp = &(*pp)->next)
                        if (*pp == s) {
                                *pp = s->next;
                                break;
                        }
                srv->nlive--;
                pthread_cond_broadcast(&srv->cond);
                pthread_mutex_unlock(&srv->lock);
                conn_destroy(&s->c);
                MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
                session_free(s);
        }
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        (void)cls;
        (void)mc;
        (void)toe;
        struct req_ctx *ctx = *con_cls;
        if (!ctx)
                return;
        if (!ctx->upgraded)
                session_free(ctx->sess);
        free(ctx);
        *con_cls = NULL;
}

/* ---------- HTTP helpers ---------- */

static enum MHD_Result reply(struct MHD_Connection *mc, unsigned code, const char *msg,
                             const char *const *hdrs)
{
        cleanup_free char *body = xasprintf("%s\n", msg);
        struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
        if (!r)
                return MHD_NO;
        MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
        for (size_t i = 0; hdrs && hdrs[i]; i += 2)
                MHD_add_response_header(r, hdrs[i], hdrs[i + 1]);
        enum MHD_Result ret = MHD_queue_response(mc, code, r);
        MHD_destroy_response(r);
        return ret;
}

struct collect {
        enum MHD_ValueKind kind;
        const char *key;
        char **vals;
        bool split_commas;
};

static enum MHD_Result collect_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
        struct collect *c = cls;
        if (kind != c->kind || !key || strcasecmp(key, c->key) != 0 || !value)
                return MHD_YES;
        if (!c->split_commas) {
                strv_push(&c->vals, value);
                return MHD_YES;
        }
        cleanup_free char *copy = xstrdup(value);
        char *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                while (*tok == ' ' || *tok == '\t')
                        tok++;
                size_t l = strlen(tok);
                while (l && (tok[l - 1] == ' ' || tok[l - 1] == '\t'))
                        tok[--l] = 0;
                if (*tok)
                        strv_push(&c->vals, tok);
        }
        return MHD_YES;
}

static char **values(struct MHD_Connection *mc, enum MHD_ValueKind kind, const char *key, bool split)
{
        struct collect c = {kind, key, NULL, split};
        MHD_get_connection_values(mc, kind, collect_cb, &c);
        return c.vals;
}

static bool has_token(struct MHD_Connection *mc, const char *header, const char *token)
{
        cleanup_strv char **v = values(mc, MHD_HEADER_KIND, header, true);
        for (size_t i = 0; v && v[i]; i++)
                if (strcasecmp(v[i], token) == 0)
                        return true;
        return false;
}

/* Client order wins, as in k8s httpstream and wsstream. */
static const char *negotiate(char *const *client, const char *const *server)
{
        for (size_t i = 0; client && client[i]; i++)
                for (size_t j = 0; server[j]; j++)
                        if (strcmp(client[i], server[j]) == 0)
                                return server[j];
        return NULL;
}

static const char *const spdy_exec_protos[] = {PROTO_V4, PROTO_V3, PROTO_V2, PROTO_V1, NULL};
static const char *const spdy_pf_protos[] = {PROTO_PF, NULL};
static const char *const ws_exec_protos[] = {PROTO_V5, PROTO_V4, PROTO_V4_B64, PROTO_B64, PROTO_V1, NULL};
static const char *const ws_pf_protos[] = {PROTO_V4, PROTO_V4_B64, PROTO_PF, PROTO_PF_TUNNEL, NULL};

static int parse_ports(struct MHD_Connection *mc, struct session *s, char **why)
{
        cleanup_strv char **v = values(mc, MHD_GET_ARGUMENT_KIND, "port", false);
        if (!v || !v[0]) {
                *why = xstrdup("query parameter \"port\" is required");
                return -1;
        }
        for (size_t i = 0; v[i]; i++) {
                if (!*v[i]) {
                        *why = xstrdup("query parameter \"port\" cannot be empty");
                        return -1;
                }
                cleanup_free char *copy = xstrdup(v[i]);
                char *save = NULL;
                for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                        char *end;
                        errno = 0;
                        unsigned long p = strtoul(tok, &end, 10);
                        if (errno || *end || !*tok || p > 65535) {
                                *why = xasprintf("unable to parse \"%s\" as a port", v[i]);
                                return -1;
                        }
                        if (p < 1) {
                                *why = xasprintf("port \"%s\" must be > 0", v[i]);
                                return -1;
                        }
                        if (s->nports >= 64) {
                                *why = xstrdup("too many ports");
                                return -1;
                        }
                        s->ports = xrealloc(s->ports, (s->nports + 1) * sizeof(*s->ports));
                        s->ports[s->nports++] = (uint16_t)p;
                }
        }
        return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
        (void)version;
        (void)upload_data;
        struct stream_server *srv = cls;
        if (!*con_cls) {
                *con_cls = xzalloc(sizeof(struct req_ctx));
                return MHD_YES;
        }
        struct req_ctx *ctx = *con_cls;
        if (*upload_data_size) { /* a body is not expected: discard it */
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (ctx->sess)
                return MHD_YES; /* already answered */
        if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
                return reply(mc, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", NULL);

        enum stream_kind kind;
        const char *tok;
        if (str_has_prefix(url, "/exec/")) {
                kind = KIND_EXEC;
                tok = url + 6;
        } else if (str_has_prefix(url, "/attach/")) {
                kind = KIND_ATTACH;
                tok = url + 8;
        } else if (str_has_prefix(url, "/portforward/")) {
                kind = KIND_PORTFORWARD;
                tok = url + 13;
        } else {
                return reply(mc, MHD_HTTP_NOT_FOUND, "404 page not found", NULL);
        }
        if (!*tok || strchr(tok, '/'))
                return reply(mc, MHD_HTTP_NOT_FOUND, "404 page not found", NULL);

        pthread_mutex_lock(&srv->lock);
        bool stopping = srv->stopping;
        pthread_mutex_unlock(&srv->lock);
        if (stopping)
                return reply(mc, MHD_HTTP_SERVICE_UNAVAILABLE, "streaming server is shutting down", NULL);

        struct err e = ERR_INIT;
        struct stream_request *req = token_cache_take(srv->tokens, tok, &e);
        if (!req) {
                enum MHD_Result r = reply(mc, MHD_HTTP_NOT_FOUND, e.msg, NULL);
                err_clear(&e);
                return r;
        }
        if (req->kind != kind) {
                stream_request_free(req);
                return reply(mc, MHD_HTTP_NOT_FOUND, "stream token not found: unknown, or already used",
                             NULL);
        }

        struct session *s = xzalloc(sizeof(*s));
        s->srv = srv;
        s->req = req;
        s->tls = srv->tls;
        ctx->sess = s; /* freed with the request unless the upgrade happens */

        const char *upgrade = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Upgrade");
        bool conn_upgrade = has_token(mc, "Connection", "upgrade");
        s->websocket = conn_upgrade && upgrade && strcasecmp(upgrade, "websocket") == 0;
        bool spdy = conn_upgrade && upgrade && strcasecmp(upgrade, "SPDY/3.1") == 0;
        if (!s->websocket && !spdy)
                return reply(
                        mc, MHD_HTTP_BAD_REQUEST,
                        "unable to upgrade: missing upgrade headers in request (want Connection: Upgrade "
                        "and Upgrade: SPDY/3.1 or websocket)",
                        NULL);

        struct MHD_Response *resp;
        if (spdy) {
                cleanup_strv char **offered = values(mc, MHD_HEADER_KIND, "X-Stream-Protocol-Version", true);
                const char *const *supported = kind == KIND_PORTFORWARD ? spdy_pf_protos : spdy_exec_protos;
                const char *chosen = "";
                if (offered && offered[0]) {
                        chosen = negotiate(offered, supported);
                        if (!chosen) {
                                struct sbuf m = {0};
                                sbuf_puts(
                                        &m,
                                        "unable to upgrade: unable to negotiate protocol: client supports [");
                                for (size_t i = 0; offered[i]; i++)
                                        sbuf_printf(&m, "%s%s", i ? " " : "", offered[i]);
                                sbuf_puts(&m, "], server accepts [");
                                for (size_t i = 0; supported[i]; i++)
                                        sbuf_printf(&m, "%s%s", i ? " " : "", supported[i]);
                                sbuf_puts(&m, "]");
                                const char *h[2 * 5 + 1] = {0};
                                size_t k = 0;
                                for (size_t i = 0; supported[i] && k < 10; i++) {
                                        h[k++] = "X-Accepted-Stream-Protocol-Versions";
                                        h[k++] = supported[i];
                                }
                                enum MHD_Result r = reply(mc, MHD_HTTP_FORBIDDEN, m.buf, h);
                                sbuf_free(&m);
                                return r;
                        }
                }
                s->protocol = xstrdup(chosen);
                resp = MHD_create_response_for_upgrade(on_upgrade, s);
                if (!resp)
                        return MHD_NO;
                MHD_add_response_header(resp, "Connection", "Upgrade");
                MHD_add_response_header(resp, "Upgrade", "SPDY/3.1");
                if (*chosen)
                        MHD_add_response_header(resp, "X-Stream-Protocol-Version", chosen);
        } else {
                const char *ver = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Sec-WebSocket-Version");
                const char *key = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Sec-WebSocket-Key");
                if (!ver || strcmp(ver, "13") != 0) {
                        const char *h[] = {"Sec-WebSocket-Version", "13", NULL};
                        return reply(mc, MHD_HTTP_BAD_REQUEST, "unsupported websocket version (want 13)", h);
                }
                if (!key || !*key)
                        return reply(mc, MHD_HTTP_BAD_REQUEST, "missing Sec-WebSocket-Key", NULL);
                cleanup_strv char **offered = values(mc, MHD_HEADER_KIND, "Sec-WebSocket-Protocol", true);
                const char *const *supported = kind == KIND_PORTFORWARD ? ws_pf_protos : ws_exec_protos;
                const char *chosen = "";
                if (offered && offered[0]) {
                        chosen = negotiate(offered, supported);
                        if (!chosen)
                                return reply(mc, MHD_HTTP_FORBIDDEN,
                                             "requested websocket protocol(s) are not supported", NULL);
                }
                s->protocol = xstrdup(chosen);
                s->base64 = strstr(chosen, "base64") != NULL;
                s->v5 = strcmp(chosen, PROTO_V5) == 0;
                /* Tunnelled SPDY names its ports in its streams, not in the query. */
                s->tunnel = strcmp(chosen, PROTO_PF_TUNNEL) == 0;
                if (kind == KIND_PORTFORWARD && !s->tunnel) {
                        cleanup_free char *why = NULL;
                        if (parse_ports(mc, s, &why) < 0)
                                return reply(mc, MHD_HTTP_BAD_REQUEST, why, NULL);
                }
                cleanup_free char *accept = ws_accept_key(key);
                resp = MHD_create_response_for_upgrade(on_upgrade, s);
                if (!resp)
                        return MHD_NO;
                MHD_add_response_header(resp, "Connection", "Upgrade");
                MHD_add_response_header(resp, "Upgrade", "websocket");
                MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
                if (*chosen)
                        MHD_add_response_header(resp, "Sec-WebSocket-Protocol", chosen);
        }
        enum MHD_Result r = MHD_queue_response(mc, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
        MHD_destroy_response(resp);
        return r;
}

/* ---------- lifecycle ---------- */

static int listen_on(const char *addr, uint16_t port, int *fd_out, uint16_t *port_out, bool *v6,
                     struct err *e)
{
        struct sockaddr_storage ss = {0};
        socklen_t sl;
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
                s4->sin_family = AF_INET;
                s4->sin_port = htons(port);
                sl = sizeof(*s4);
                *v6 = false;
        } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons(port);
                sl = sizeof(*s6);
                *v6 = true;
        } else {
                return err_set(e, ERR_INVALID, "streaming server address %s is not an IP address", addr);
        }
        cleanup_close int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return err_make(e, errno, "socket");
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&ss, sl) < 0)
                return err_make(e, errno, "bind %s port %u", addr, port);
        if (listen(fd, 128) < 0)
                return err_make(e, errno, "listen");
        sl = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
                return err_make(e, errno, "getsockname");
        *port_out = ntohs(ss.ss_family == AF_INET ? s4->sin_port : s6->sin6_port);
        *fd_out = steal_fd(&fd);
        return 0;
}

int stream_server_new(const struct stream_config *cfg, const struct stream_backend *backend,
                      void *backend_data, struct stream_server **out, struct err *e)
{
        static const struct stream_config defaults = {0};
        if (!cfg)
                cfg = &defaults;
        if (!backend)
                return err_set(e, ERR_INVALID, "streaming server needs a backend");
        if (!MHD_is_feature_supported(MHD_FEATURE_UPGRADE))
                return err_set(e, ERR_UNIMPLEMENTED, "libmicrohttpd lacks connection upgrade support");
        if (!!cfg->tls_cert != !!cfg->tls_key)
                return err_set(e, ERR_INVALID, "streaming server TLS needs both a certificate and a key");

        struct stream_server *srv = xzalloc(sizeof(*srv));
        srv->listen_fd = -1;
        srv->backend = backend;
        srv->backend_data = backend_data;
        srv->stream_timeout_ms =
                (cfg->stream_creation_timeout_sec > 0 ? cfg->stream_creation_timeout_sec : 30) * 1000;
        pthread_mutex_init(&srv->lock, NULL);
        pthread_cond_init(&srv->cond, NULL);
        srv->tokens = token_cache_new(cfg->token_ttl_sec, cfg->max_tokens);

        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_ALLOW_UPGRADE |
                         MHD_USE_POLL | MHD_USE_ITC;
        if (cfg->tls_cert) {
                if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
                        err_set(e, ERR_UNIMPLEMENTED, "libmicrohttpd was built without TLS");
                        goto fail;
                }
                size_t l;
                if (file_read_all(cfg->tls_cert, &srv->cert_pem, &l, 1 << 20, e) < 0 ||
                    file_read_all(cfg->tls_key, &srv->key_pem, &l, 1 << 20, e) < 0) {
                        err_wrap(e, "streaming server TLS");
                        goto fail;
                }
                srv->tls = true;
                flags |= MHD_USE_TLS;
        }

        const char *addr = cfg->address && *cfg->address ? cfg->address : "127.0.0.1";
        bool v6 = false;
        if (listen_on(addr, cfg->port, &srv->listen_fd, &srv->port, &v6, e) < 0)
                goto fail;
        if (v6)
                flags |= MHD_USE_IPv6;
        srv->url = xasprintf("%s://%s%s%s:%u", srv->tls ? "https" : "http", v6 ? "[" : "", addr,
                             v6 ? "]" : "", srv->port);

        struct MHD_OptionItem opts[] = {
                {MHD_OPTION_LISTEN_SOCKET, srv->listen_fd, NULL},
                {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL},
                {MHD_OPTION_CONNECTION_TIMEOUT, 60, NULL},
                {srv->tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, srv->key_pem},
                {srv->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, srv->cert_pem},
                {MHD_OPTION_END, 0, NULL},
        };
        srv->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_ARRAY, opts,
                                    MHD_OPTION_END);
        if (!srv->mhd) {
                err_set(e, ERR_INTERNAL, "cannot start the streaming server on %s", srv->url);
                goto fail;
        }
        *out = srv;
        return 0;
fail:
        if (srv->listen_fd >= 0)
                close(srv->listen_fd);
        token_cache_free(srv->tokens);
        free(srv->cert_pem);
        free(srv->key_pem);
        free(srv->url);
        pthread_mutex_destroy(&srv->lock);
        pthread_cond_destroy(&srv->cond);
        free(srv);
        return -1;
}

const char *stream_server_url(const struct stream_server *srv)
{
        return srv->url;
}

uint16_t stream_server_port(const struct stream_server *srv)
{
        return srv->port;
}

unsigned stream_server_sessions(struct stream_server *srv)
{
        pthread_mutex_lock(&srv->lock);
        unsigned n = srv->nlive;
        pthread_mutex_unlock(&srv->lock);
        return n;
}

void stream_server_free(struct stream_server *srv)
{
        if (!srv)
                return;
        /* No new connections; then end the live sessions and wait for them. */
        MHD_socket lfd = MHD_quiesce_daemon(srv->mhd);
        if (lfd != MHD_INVALID_SOCKET)
                close(lfd);
        pthread_mutex_lock(&srv->lock);
        srv->stopping = true;
        for (struct session *s = srv->live; s; s = s->next)
                conn_wake(&s->c);
        while (srv->nlive > 0)
                pthread_cond_wait(&srv->cond, &srv->lock);
        pthread_mutex_unlock(&srv->lock);
        MHD_stop_daemon(srv->mhd);
        token_cache_free(srv->tokens);
        free(srv->cert_pem);
        free(srv->key_pem);
        free(srv->url);
        pthread_mutex_destroy(&srv->lock);
        pthread_cond_destroy(&srv->cond);
        free(srv);
}

/* ---------- tokens ---------- */

static int put_token(struct stream_server *srv, struct stream_request *r, const char *path, char **url,
                     struct err *e)
{
        cleanup_free char *tok = NULL;
        if (token_cache_put(srv->tokens, r, &tok, e) < 0)
                return -1;
        *url = xasprintf("%s/%s/%s", srv->url, path, tok);
        return 0;
}

static int check_streams(bool tty, bool in, bool out, bool errs, struct err *e)
{
        if (tty && errs)
                return err_set(e, ERR_INVALID, "tty and stderr cannot both be true");
        if (!in && !out && !errs)
                return err_set(e, ERR_INVALID, "one of stdin, stdout, or stderr must be set");
        return 0;
}

int stream_token_exec(struct stream_server *srv, const struct stream_exec_req *req, char **url, struct err *e)
{
        if (!req->container_id || !*req->container_id)
                return err_set(e, ERR_INVALID, "exec: container id is required");
        if (!req->cmd || !req->cmd[0])
                return err_set(e, ERR_INVALID, "exec in %s: cmd is required", req->container_id);
        if (check_streams(req->tty, req->use_stdin, req->use_stdout, req->use_stderr, e) < 0)
                return err_wrap(e, "exec in %s", req->container_id);
        struct stream_request *r = xzalloc(sizeof(*r));
        r->kind = KIND_EXEC;
        r->container_id = xstrdup(req->container_id);
        r->cmd = strv_dup(req->cmd);
        r->tty = req->tty;
        r->use_stdin = req->use_stdin;
        r->use_stdout = req->use_stdout;
        r->use_stderr = req->use_stderr;
        return put_token(srv, r, "exec", url, e);
}

int stream_token_attach(struct stream_server *srv, const struct stream_attach_req *req, char **url,
                        struct err *e)
{
        if (!req->container_id || !*req->container_id)
                return err_set(e, ERR_INVALID, "attach: container id is required");
        if (check_streams(req->tty, req->use_stdin, req->use_stdout, req->use_stderr, e) < 0)
                return err_wrap(e, "attach to %s", req->container_id);
        struct stream_request *r = xzalloc(sizeof(*r));
        r->kind = KIND_ATTACH;
        r->container_id = xstrdup(req->container_id);
        r->tty = req->tty;
        r->use_stdin = req->use_stdin;
        r->use_stdout = req->use_stdout;
        r->use_stderr = req->use_stderr;
        return put_token(srv, r, "attach", url, e);
}

int stream_token_portforward(struct stream_server *srv, const char *pod_id, char **url, struct err *e)
{
        if (!pod_id || !*pod_id)
                return err_set(e, ERR_INVALID, "port-forward: pod sandbox id is required");
        struct stream_request *r = xzalloc(sizeof(*r));
        r->kind = KIND_PORTFORWARD;
        r->container_id = xstrdup(pod_id);
        return put_token(srv, r, "portforward", url, e);
}
