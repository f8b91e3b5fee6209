/* Registry client: distribution API v2 over libcurl.
 *
 * A reg_client serves one repository. Its endpoints are the configured
 * mirrors in order, then the origin; each request tries them in that order
 * and each endpoint is retried (3 times, exponential backoff) on network
 * errors, 429 and 5xx. A 401 is answered once per request from its
 * WWW-Authenticate challenge (auth.c). Redirects (blob storage) are followed;
 * curl sends a custom Authorization header only to the original host. Blobs
 * stream into the content store, resumed with Range after a cut. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "image/image-internal.h"

#define RETRIES    3
#define BACKOFF_MS 250

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
        curl_global_init(CURL_GLOBAL_ALL);
}

/* ---------- endpoints ---------- */

static bool host_is_local(const char *hostport)
{
        cleanup_free char *host = NULL;
        if (hostport[0] == '[') {
                const char *close = strchr(hostport, ']');
                host = close ? xstrndup(hostport + 1, (size_t)(close - hostport - 1)) : xstrdup(hostport);
                return strcmp(host, "::1") == 0;
        }
        host = xstrndup(hostport, strcspn(hostport, ":/"));
        return strcmp(host, "localhost") == 0 || str_has_prefix(host, "127.");
}

/* "http://h:p/x/", "h:p" -> "scheme://h:p/x" without a trailing "/" or "/v2". */
static char *endpoint_base(const char *s, bool plain_http)
{
        char *base;
        if (str_has_prefix(s, "http://") || str_has_prefix(s, "https://"))
                base = xstrdup(s);
        else
                base = xasprintf("%s://%s", plain_http ? "http" : "https", s);
        size_t n = strlen(base);
        while (n > 0 && base[n - 1] == '/')
                base[--n] = '\0';
        if (str_has_suffix(base, "/v2"))
                base[n - 3] = '\0';
        return base;
}

static const struct img_registry_conf *find_conf(const struct img_registry_conf *confs, size_t n,
                                                 const char *host)
{
        for (size_t i = 0; i < n; i++) {
                if (!confs[i].host)
                        continue;
                if (strcmp(confs[i].host, host) == 0)
                        return &confs[i];
                /* "index.docker.io" / "registry-1.docker.io" are docker.io */
                if (strcmp(host, "docker.io") == 0 && (strcmp(confs[i].host, "index.docker.io") == 0 ||
                                                       strcmp(confs[i].host, "registry-1.docker.io") == 0))
                        return &confs[i];
        }
        return NULL;
}

int reg_client_new(const struct img_ref *ref, const struct img_registry_conf *confs, size_t n_confs,
                   const struct img_auth *auth, atomic_bool *cancel, struct reg_client **out, struct err *e)
{
        pthread_once(&curl_once, curl_init_once);
        const struct img_registry_conf *conf = find_conf(confs, n_confs, ref->domain);
        struct reg_client *rc = xzalloc(sizeof(*rc));
        rc->registry = xstrdup(ref->domain);
        rc->repo = xstrdup(ref->path);
        rc->cancel = cancel;
        pthread_mutex_init(&rc->mu, NULL);

        size_t n_mirrors = conf ? strv_len(conf->mirrors) : 0;
        rc->eps = xcalloc(n_mirrors + 1, sizeof(*rc->eps));
        for (size_t i = 0; i < n_mirrors; i++) {
                const char *m = conf->mirrors[i];
                bool plain = host_is_local(m) || conf->insecure;
                rc->eps[rc->n_eps].base = endpoint_base(m, plain);
                rc->eps[rc->n_eps].mirror = true;
                rc->eps[rc->n_eps].skip_verify = conf->insecure;
                rc->n_eps++;
        }
        const char *origin = strcmp(ref->domain, "docker.io") == 0 ? "registry-1.docker.io" : ref->domain;
        bool plain = conf ? (conf->insecure || (host_is_local(origin) && !conf->tls)) : host_is_local(origin);
        rc->eps[rc->n_eps].base = endpoint_base(origin, plain);
        rc->eps[rc->n_eps].skip_verify = conf && conf->insecure;
        rc->n_eps++;

        if (auth) {
                rc->username = xstrdup(auth->username && *auth->username ? auth->username : NULL);
                rc->password = xstrdup(auth->password);
                rc->identity_token =
                        xstrdup(auth->identity_token && *auth->identity_token ? auth->identity_token : NULL);
                rc->registry_token =
                        xstrdup(auth->registry_token && *auth->registry_token ? auth->registry_token : NULL);
                if (!rc->username && auth->auth && *auth->auth) {
                        /* base64("user:password") */
                        size_t n = 0;
                        cleanup_free char *dec = NULL;
                        dec = base64_decode(auth->auth, &n);
                        char *colon = dec ? memchr(dec, ':', n) : NULL;
                        if (!colon) {
                                reg_client_free(rc);
                                return err_set(e, ERR_INVALID,
                                               "auth for %s: \"auth\" is not base64 of user:password",
                                               ref->domain);
                        }
                        rc->username = xstrndup(dec, (size_t)(colon - dec));
                        rc->password = xstrndup(colon + 1, n - (size_t)(colon + 1 - dec));
                }
        }
        *out = rc;
        return 0;
}

void reg_client_free(struct reg_client *rc)
{
        if (!rc)
                return;
        for (size_t i = 0; i < rc->n_eps; i++) {
                free(rc->eps[i].base);
                free(rc->eps[i].authz);
        }
        free(rc->eps);
        free(rc->registry);
        free(rc->repo);
        free(rc->username);
        if (rc->password)
                explicit_bzero(rc->password, strlen(rc->password));
        free(rc->password);
        free(rc->identity_token);
        free(rc->registry_token);
        pthread_mutex_destroy(&rc->mu);
        free(rc);
}

/* ---------- curl plumbing ---------- */

void reg_curl_setup(CURL *h, const struct reg_endpoint *ep)
{
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
        /* abort a transfer slower than 1 KiB/s for 30 s */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 30L);
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, 8L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "corral/" CORRAL_VERSION);
        if (ep && ep->skip_verify) {
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        }
}

enum err_kind reg_curl_kind(CURLcode c)
{
        switch (c) {
        case CURLE_OPERATION_TIMEDOUT:
                return ERR_DEADLINE;
        case CURLE_ABORTED_BY_CALLBACK:
                return ERR_CANCELLED;
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
                return ERR_INVALID;
        default:
                return ERR_UNAVAILABLE;
        }
}

static bool curl_retryable(CURLcode c)
{
        switch (c) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                return true;
        default:
                return false;
        }
}

static bool status_retryable(long s)
{
        return s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

struct xfer {
        CURL *h;
        /* headers of the last response */
        char *www_auth;
        char *content_type;
        char *content_range;
        /* body: memory (manifests, error bodies) */
        struct sbuf body;
        size_t max;
        bool too_big;
        /* body: content store */
        struct img_content_writer *w;
        int mode; /* 0 undecided, 1 writer, 2 memory */
        struct err werr;
        reg_progress_fn cb;
        void *cb_data;
        uint64_t total;
        int64_t last_cb_ns;
        atomic_bool *cancel;
};

static void xfer_reset(struct xfer *x)
{
        free(x->www_auth);
        free(x->content_type);
        free(x->content_range);
        x->www_auth = x->content_type = x->content_range = NULL;
        sbuf_free(&x->body);
        x->too_big = false;
        x->mode = 0;
        err_clear(&x->werr);
}

static size_t header_cb(char *buf, size_t size, size_t n, void *data)
{
        struct xfer *x = data;
        size_t len = size * n;
        if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
                /* a new response (after a redirect or a 100): forget the old headers */
                free(x->www_auth);
                free(x->content_type);
                free(x->content_range);
                x->www_auth = x->content_type = x->content_range = NULL;
                return len;
        }
        const char *colon = memchr(buf, ':', len);
        if (!colon)
                return len;
        size_t klen = (size_t)(colon - buf);
        const char *v = colon + 1;
        size_t vlen = len - klen - 1;
        while (vlen && (*v == ' ' || *v == '\t')) {
                v++;
                vlen--;
        }
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
                vlen--;
        char **slot = NULL;
        if (klen == 16 && strncasecmp(buf, "www-authenticate", 16) == 0)
                slot = &x->www_auth;
        else if (klen == 12 && strncasecmp(buf, "content-type", 12) == 0)
                slot = &x->content_type;
        else if (klen == 13 && strncasecmp(buf, "content-range", 13) == 0)
                slot = &x->content_range;
        if (slot && !*slot) /* the first challenge is the one we answer */
                *slot = xstrndup(v, vlen);
        return len;
}

static size_t write_cb(char *buf, size_t size, size_t n, void *data)
{
        struct xfer *x = data;
        size_t len = size * n;
        long code = 0;
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
        if (x->mode == 0) {
                x->mode = 2;
                if (x->w && (code == 200 || code == 206)) {
                        x->mode = 1;
                        uint64_t off = img_content_writer_offset(x->w);
                        if (code == 200 && off > 0) {
                                /* the server ignored our Range: start over */
                                if (img_content_writer_reset(x->w, &x->werr) < 0)
                                        return 0;
                        } else if (code == 206) {
                                unsigned long long start = ~0ULL;
                                if (!x->content_range ||
                                    sscanf(x->content_range, "bytes %llu-", &start) != 1 || start != off) {
                                        (void)img_content_writer_reset(x->w, NULL);
                                        err_set(&x->werr, ERR_UNAVAILABLE,
                                                "bad Content-Range \"%s\" for offset %" PRIu64,
                                                x->content_range ? x->content_range : "", off);
                                        return 0;
                                }
                        }
                }
        }
        if (x->mode == 1) {
                if (img_content_writer_write(x->w, buf, len, &x->werr) < 0)
                        return 0;
                if (x->cb) {
                        int64_t now = time_mono_ns();
                        if (now - x->last_cb_ns > 100000000LL) {
                                x->last_cb_ns = now;
                                x->cb(x->cb_data, img_content_writer_offset(x->w), x->total);
                        }
                }
                return len;
        }
        if (x->body.len + len > x->max) {
                x->too_big = true;
                return 0;
        }
        sbuf_append(&x->body, buf, len);
        return len;
}

static int xferinfo_cb(void *data, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
        (void)dt, (void)dn, (void)ut, (void)un;
        struct xfer *x = data;
        return x->cancel && atomic_load(x->cancel) ? 1 : 0;
}

/* The "message" of a registry's JSON error body, if any. */
static char *registry_message(const struct sbuf *body)
{
        if (!body->len)
                return NULL;
        yajl_val root = json_parse(body->buf, body->len, "error body", NULL);
        if (!root)
                return NULL;
        char *out = NULL;
        yajl_val errs = json_get(root, "errors");
        if (YAJL_IS_ARRAY(errs) && errs->u.array.len > 0) {
                const char *code = json_get_str(errs->u.array.values[0], "code");
                const char *msg = json_get_str(errs->u.array.values[0], "message");
                if (code || msg)
                        out = xasprintf("%s%s%s", code ? code : "", code && msg ? " " : "", msg ? msg : "");
        }
        yajl_tree_free(root);
        if (out && strlen(out) > 300)
                out[300] = '\0';
        return out;
}

static enum err_kind status_kind(long s)
{
        switch (s) {
        case 401:
                return ERR_UNAUTHENTICATED;
        case 403:
                return ERR_PERMISSION;
        case 404:
                return ERR_NOT_FOUND;
        case 400:
        case 405:
        case 406:
        case 416:
                return ERR_INVALID;
        default:
                return s >= 500 || s == 429 ? ERR_UNAVAILABLE : ERR_UNKNOWN;
        }
}

static void sleep_ms(long ms)
{
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* One request to one endpoint with auth and retries. On success the body is
 * in x (memory or writer). */
static int request(struct reg_client *rc, struct reg_endpoint *ep, const char *path, const char *accept,
                   struct xfer *x, long timeout_s, struct err *e)
{
        cleanup_free char *url = xasprintf("%s%s", ep->base, path);
        CURL *h = curl_easy_init();
        if (!h)
                return err_set(e, ERR_INTERNAL, "curl_easy_init failed");
        x->h = h;
        x->cancel = rc->cancel;
        reg_curl_setup(h, ep);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        if (timeout_s > 0)
                curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);

        int ret = -1;
        bool answered = false;
        for (int attempt = 0;; attempt++) {
                xfer_reset(x);
                struct curl_slist *hdrs = NULL;
                if (accept) {
                        cleanup_free char *a = xasprintf("Accept: %s", accept);
                        hdrs = curl_slist_append(hdrs, a);
                }
                pthread_mutex_lock(&rc->mu);
                if (ep->authz)
                        hdrs = curl_slist_append(hdrs, ep->authz);
                pthread_mutex_unlock(&rc->mu);
                if (x->w && img_content_writer_offset(x->w) > 0) {
                        cleanup_free char *r =
                                xasprintf("Range: bytes=%" PRIu64 "-", img_content_writer_offset(x->w));
                        hdrs = curl_slist_append(hdrs, r);
                }
                curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
                CURLcode cc = curl_easy_perform(h);
                curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
                curl_slist_free_all(hdrs);
                long status = 0;
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);

                bool retry = false;
                if (x->werr.msg) {
                        /* our own failure inside the write callback */
                        retry = x->werr.kind == ERR_UNAVAILABLE;
                        if (!retry || attempt >= RETRIES) {
                                err_move(e, &x->werr);
                                err_wrap(e, "registry %s: GET %s", ep->base, path);
                                goto out;
                        }
                } else if (x->too_big) {
                        err_set(e, ERR_INVALID, "registry %s: GET %s: response larger than %u bytes",
                                ep->base, path, MANIFEST_MAX_BYTES);
                        goto out;
                } else if (cc != CURLE_OK) {
                        if (rc->cancel && atomic_load(rc->cancel)) {
                                err_set(e, ERR_CANCELLED, "registry %s: GET %s: cancelled", ep->base, path);
                                goto out;
                        }
                        retry = curl_retryable(cc);
                        if (!retry || attempt >= RETRIES) {
                                err_set(e, reg_curl_kind(cc), "registry %s: GET %s: %s%s", ep->base, path,
                                        curl_easy_strerror(cc), attempt ? " (after retries)" : "");
                                goto out;
                        }
                } else if (status == 200 || status == 206) {
                        ret = 0;
                        goto out;
                } else if (status == 401 && !answered && x->www_auth) {
                        struct reg_challenge ch;
                        if (reg_challenge_parse(x->www_auth, &ch, e) < 0) {
                                err_wrap(e, "registry %s: GET %s: HTTP 401", ep->base, path);
                                goto out;
                        }
                        int r = reg_authorize(rc, ep, &ch, e);
                        reg_challenge_clear(&ch);
                        if (r < 0) {
                                err_wrap(e, "registry %s: GET %s: HTTP 401", ep->base, path);
                                goto out;
                        }
                        answered = true;
                        attempt--; /* answering a challenge is not a retry */
                        continue;
                } else if (status_retryable(status) && attempt < RETRIES) {
                        retry = true;
                } else {
                        cleanup_free char *msg = registry_message(&x->body);
                        err_set(e, status_kind(status), "registry %s: GET %s: HTTP %ld%s%s%s", ep->base, path,
                                status, msg ? " (" : "", msg ? msg : "", msg ? ")" : "");
                        if (status == 401)
                                err_wrap(e, "authentication failed");
                        goto out;
                }
                (void)retry;
                log_debug("image", "retry url=%s attempt=%d status=%ld curl=%d", url, attempt + 1, status,
                          (int)cc);
                sleep_ms(BACKOFF_MS << attempt);
        }
out:
        curl_easy_cleanup(h);
        x->h = NULL;
        return ret;
}

/* Try the endpoints in order. The error returned is the origin's, unless the
 * origin could not be reached at all and a mirror gave an HTTP answer. */
typedef int (*ep_fn)(struct reg_client *rc, struct reg_endpoint *ep, void *data, struct err *e);

static int each_endpoint(struct reg_client *rc, ep_fn fn, void *data, struct err *e)
{
        struct err first = ERR_INIT;
        for (size_t i = 0; i < rc->n_eps; i++) {
                struct err cur = ERR_INIT;
                if (fn(rc, &rc->eps[i], data, &cur) == 0) {
                        err_clear(&first);
                        return 0;
                }
                if (cur.kind == ERR_CANCELLED || i + 1 == rc->n_eps) {
                        if (first.msg && cur.kind == ERR_UNAVAILABLE && first.kind != ERR_UNAVAILABLE) {
                                err_move(e, &first);
                                err_wrap(e, "mirror");
                                err_clear(&cur);
                        } else {
                                err_move(e, &cur);
                                err_clear(&first);
                        }
                        return -1;
                }
                log_debug("image", "mirror failed, next endpoint base=%s error=\"%s\"", rc->eps[i].base,
                          cur.msg);
                if (!first.msg)
                        err_move(&first, &cur);
                else
                        err_clear(&cur);
        }
        err_clear(&first);
        return err_set(e, ERR_INTERNAL, "no registry endpoint");
}

/* ---------- manifests ---------- */

struct manifest_req {
        const char *reference;
        char *body;
        size_t len;
        char *content_type;
};

static int manifest_at(struct reg_client *rc, struct reg_endpoint *ep, void *data, struct err *e)
{
        struct manifest_req *m = data;
        cleanup_free char *path = xasprintf("/v2/%s/manifests/%s", rc->repo, m->reference);
        struct xfer x = {0};
        x.max = MANIFEST_MAX_BYTES;
        int r = request(rc, ep, path,
                        IMG_MT_OCI_INDEX ", " IMG_MT_OCI_MANIFEST ", " IMG_MT_DOCKER_LIST
                                         ", " IMG_MT_DOCKER_MANIFEST,
                        &x, 60, e);
        if (r == 0) {
                m->len = x.body.len;
                m->body = sbuf_steal(&x.body);
                m->content_type = steal_ptr(&x.content_type);
        }
        xfer_reset(&x);
        return r;
}

int reg_get_manifest(struct reg_client *rc, const char *reference, char **body, size_t *len,
                     char **content_type, struct err *e)
{
        struct manifest_req m = {.reference = reference};
        if (each_endpoint(rc, manifest_at, &m, e) < 0)
                return -1;
        *body = m.body;
        *len = m.len;
        *content_type = m.content_type;
        return 0;
}

/* ---------- blobs ---------- */

struct blob_req {
        struct img_content *cs;
        const char *digest;
        int64_t size;
        reg_progress_fn cb;
        void *cb_data;
};

static int blob_at(struct reg_client *rc, struct reg_endpoint *ep, void *data, struct err *e)
{
        struct blob_req *b = data;
        struct img_content_writer *w = NULL;
        int r = img_content_writer_open(b->cs, b->digest, b->size, &w, e);
        if (r < 0)
                return -1;
        if (r == 1) { /* completed by someone else meanwhile */
                img_content_writer_free(w, false);
                return 0;
        }
        if (b->size >= 0 && img_content_writer_offset(w) >= (uint64_t)b->size) {
                /* A pull that died after the last byte and before the rename left a
                 * whole partial: asking for "bytes=SIZE-" would get 416. Verify it
                 * instead; a wrong one is deleted by commit and fetched anew. */
                cleanup_err struct err ce = ERR_INIT;
                if (img_content_writer_commit(w, &ce) == 0) {
                        img_content_writer_free(w, false);
                        return 0;
                }
                img_content_writer_free(w, true);
                w = NULL;
                r = img_content_writer_open(b->cs, b->digest, b->size, &w, e);
                if (r < 0)
                        return -1;
                if (r == 1) {
                        img_content_writer_free(w, false);
                        return 0;
                }
        }
        cleanup_free char *path = xasprintf("/v2/%s/blobs/%s", rc->repo, b->digest);
        struct xfer x = {0};
        x.max = 64 * 1024; /* error bodies */
        x.w = w;
        x.cb = b->cb;
        x.cb_data = b->cb_data;
        x.total = b->size >= 0 ? (uint64_t)b->size : 0;
        r = request(rc, ep, path, NULL, &x, 0, e);
        if (r == 0) {
                r = img_content_writer_commit(w, e);
                if (r < 0)
                        err_wrap(e, "registry %s: GET %s", ep->base, path);
                else if (b->cb)
                        b->cb(b->cb_data, x.total, x.total);
        }
        xfer_reset(&x);
        img_content_writer_free(w, false);
        return r;
}

int reg_get_blob(struct reg_client *rc, struct img_content *cs, const char *digest, int64_t size,
                 reg_progress_fn cb, void *cb_data, struct err *e)
{
        if (img_content_has(cs, digest))
                return 0;
        struct blob_req b = {cs, digest, size, cb, cb_data};
        return each_endpoint(rc, blob_at, &b, e);
}
