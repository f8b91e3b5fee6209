/* util: the few basics every corral module shares: errors, cleanup helpers,
 * allocation, logging, strings, JSON, files, ids and time.
 *
 * Conventions (see ../shared/STYLE.md):
 * - A fallible function takes `struct err *e` last and returns a negative int
 *   (or NULL). The error carries a kind (what the caller should do about it),
 *   the errno if any, and a heap message. It becomes a gRPC status only in cri/.
 * - Allocation never fails: the x* functions abort on OOM.
 * - Destructors accept NULL.
 */
#ifndef CORRAL_UTIL_H
#define CORRAL_UTIL_H

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ---------- errors ---------- */

/* Values equal the canonical gRPC status codes so that cri/ maps them 1:1. */
enum err_kind {
        ERR_OK = 0,
        ERR_CANCELLED = 1,
        ERR_UNKNOWN = 2,
        ERR_INVALID = 3,  /* INVALID_ARGUMENT */
        ERR_DEADLINE = 4, /* DEADLINE_EXCEEDED */
        ERR_NOT_FOUND = 5,
        ERR_EXISTS = 6,       /* ALREADY_EXISTS */
        ERR_PERMISSION = 7,   /* PERMISSION_DENIED */
        ERR_EXHAUSTED = 8,    /* RESOURCE_EXHAUSTED */
        ERR_PRECONDITION = 9, /* FAILED_PRECONDITION */
        ERR_ABORTED = 10,
        ERR_RANGE = 11, /* OUT_OF_RANGE */
        ERR_UNIMPLEMENTED = 12,
        ERR_INTERNAL = 13,
        ERR_UNAVAILABLE = 14,
        ERR_DATA_LOSS = 15,
        ERR_UNAUTHENTICATED = 16,
};

struct err {
        enum err_kind kind;
        int errnum; /* errno of the failing call, 0 if none */
        char *msg;  /* owned; NULL when no error */
};

#define ERR_INIT                                                                                             \
        {                                                                                                    \
                ERR_OK, 0, NULL                                                                              \
        }

/* A failed system call: kind from errno (ETIMEDOUT -> ERR_DEADLINE,
 * ENOENT -> ERR_NOT_FOUND, ... else ERR_INTERNAL); the message gets
 * ": strerror(errnum)" appended. `e` may be NULL. Always returns -1. */
int err_make(struct err *e, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A domain error of a given kind, no errno. `e` may be NULL. Returns -1. */
int err_set(struct err *e, enum err_kind kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefix context to an existing error: "context: old message". Returns -1. */
int err_wrap(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Move src into dst (dst cleared first). */
void err_move(struct err *dst, struct err *src);
void err_clear(struct err *e);
const char *err_kind_name(enum err_kind kind);
static inline bool err_is(const struct err *e, enum err_kind kind)
{
        return e && e->msg && e->kind == kind;
}

/* ---------- allocation (abort on OOM) ---------- */

void *xmalloc(size_t n);
void *xzalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s); /* NULL -> NULL */
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap);
void *xmemdup(const void *p, size_t n);

/* ---------- cleanup attributes ---------- */

void cleanup_freep(void *p);
void cleanup_closep(int *fd);
void cleanup_fclosep(FILE **f);
void cleanup_closedirp(DIR **d);
void cleanup_errp(struct err *e);
void cleanup_strvp(char ***v);

#define cleanup_free   __attribute__((cleanup(cleanup_freep)))
#define cleanup_close  __attribute__((cleanup(cleanup_closep)))
#define cleanup_fclose __attribute__((cleanup(cleanup_fclosep)))
#define cleanup_dir    __attribute__((cleanup(cleanup_closedirp)))
#define cleanup_err    __attribute__((cleanup(cleanup_errp)))
#define cleanup_strv   __attribute__((cleanup(cleanup_strvp)))

/* Hand ownership out of a cleanup variable. */
#define steal_ptr(pp)                                                                                        \
        ({                                                                                                   \
                __typeof__(*(pp)) _tmp = *(pp);                                                              \
                *(pp) = NULL;                                                                                \
                _tmp;                                                                                        \
        })
static inline int steal_fd(int *fd)
{
        int r = *fd;
        *fd = -1;
        return r;
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED        __attribute__((unused))

/* ---------- logging (logfmt on stderr, one line per event) ---------- */

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG, LOG_LVL_TRACE };

/* Parse "error|warn|info|debug|trace". Returns -1 on unknown names. */
int log_level_parse(const char *name, enum log_level *out);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Output "json" (one object per line) or "logfmt" (default). */
void log_set_json(bool json);
/* `component` names the module ("cri", "image", ...); `fmt` is the event
 * text, ideally "event key=value key=value". Thread-safe, one write(2) per line. */
void log_write(enum log_level lvl, const char *component, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#define log_error(comp, ...) log_write(LOG_LVL_ERROR, comp, __VA_ARGS__)
#define log_warn(comp, ...)  log_write(LOG_LVL_WARN, comp, __VA_ARGS__)
#define log_info(comp, ...)  log_write(LOG_LVL_INFO, comp, __VA_ARGS__)
#define log_debug(comp, ...)                                                                                 \
        do {                                                                                                 \
                if (log_get_level() >= LOG_LVL_DEBUG)                                                        \
                        log_write(LOG_LVL_DEBUG, comp, __VA_ARGS__);                                         \
        } while (0)

/* ---------- strings ---------- */

/* Growable byte buffer, always NUL-terminated. Zero-initialise to start. */
struct sbuf {
        char *buf;
        size_t len;
        size_t cap;
};
void sbuf_append(struct sbuf *b, const void *data, size_t n);
void sbuf_puts(struct sbuf *b, const char *s);
void sbuf_putc(struct sbuf *b, char c);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Take the string out (caller frees); the buffer is reset. Never NULL. */
char *sbuf_steal(struct sbuf *b);
void sbuf_free(struct sbuf *b);

bool str_has_prefix(const char *s, const char *prefix);
bool str_has_suffix(const char *s, const char *suffix);
/* NULL-terminated string vectors. */
size_t strv_len(char *const *v);
char **strv_dup(char *const *v);
void strv_free(char **v);
/* Append a copy of s; *v may be NULL. */
void strv_push(char ***v, const char *s);

/* A string-keyed hash map of borrowed values; the map keeps a copy of each
 * key. Zero-initialise to start; not thread-safe (the caller locks). */
struct strmap {
        struct strmap_ent **buckets;
        size_t n_buckets;
        size_t count;
};
void *strmap_get(const struct strmap *m, const char *key);
/* Insert or replace; returns the value it replaced (NULL when new). */
void *strmap_put(struct strmap *m, const char *key, void *value);
/* Returns the value removed (NULL when absent). */
void *strmap_del(struct strmap *m, const char *key);
void strmap_clear(struct strmap *m);

/* ---------- JSON (yajl) ---------- */

/* Parsing uses yajl's tree API; see <yajl/yajl_tree.h>. */
struct yajl_val_s;
typedef struct yajl_val_s *yajl_val;
/* Parse `len` bytes (need not be NUL-terminated). Caller frees with
 * yajl_tree_free. On error returns NULL with an ERR_INVALID that includes
 * yajl's message and `what` (a file name or "manifest"). */
yajl_val json_parse(const char *buf, size_t len, const char *what, struct err *e);
/* Member lookup on an object; NULL when absent or `obj` is not an object. */
yajl_val json_get(yajl_val obj, const char *key);
/* Typed lookups: NULL / false when absent or of another type. */
const char *json_get_str(yajl_val obj, const char *key);
bool json_get_int(yajl_val obj, const char *key, int64_t *out);
bool json_get_bool(yajl_val obj, const char *key, bool *out);
/* Append `s` to b as a quoted JSON string with escapes. */
void json_quote(struct sbuf *b, const char *s);
/* Append a yajl tree as JSON text (numbers keep their text); NULL is "null". */
void json_emit(struct sbuf *b, yajl_val v);
void json_quote_n(struct sbuf *b, const char *s, size_t n);
/* json_quote copies bytes >= 0x80 as they are, and yajl's parser refuses
 * a string that is not UTF-8: check with utf8_valid, and carry other
 * bytes as base64 (base64_encode / base64_decode). */
bool utf8_valid(const char *s, size_t n);
/* NUL-terminated base64 of buf; never NULL. */
char *base64_encode(const void *buf, size_t len);
/* The bytes of base64 text (NUL-terminated, *n excludes it); NULL when
 * malformed. */
char *base64_decode(const char *s, size_t *n);
/* The same for `len` bytes of text that need not be NUL-terminated. */
char *base64_decode_n(const char *s, size_t len, size_t *n);

/* ---------- files ---------- */

/* Read a whole file (NUL-terminated; *len excludes the NUL). max 0 = 256 MiB. */
int file_read_all(const char *path, char **out, size_t *len, size_t max, struct err *e);
/* Write via temp file + fsync + rename + fsync(dir): readers see old or new. */
int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, struct err *e);
/* The same without fsync: for files that need not outlive the machine (a
 * tmpfs state dir, caches that DEL can do without), where two fsyncs cost
 * more than the work the file records. */
int file_replace(const char *path, const void *data, size_t len, mode_t mode, struct err *e);
/* Write all bytes, retrying on EINTR / short writes. */
int fd_write_all(int fd, const void *data, size_t len);
/* First call in a child forked from corrald that will not exec (async-
 * signal-safe): it dies with its parent (PR_SET_PDEATHSIG SIGKILL; it
 * _exits at once if `parent` is already gone) and closes every descriptor
 * but 0, 1, 2 and the `n_keep` in `keep` (-1 entries ignored). */
void child_isolate(pid_t parent, const int *keep, size_t n_keep);
/* mkdir -p; existing dirs are fine. */
int mkdir_p(const char *path, mode_t mode, struct err *e);
/* rm -rf without crossing mount points; a missing path is fine. */
int rm_rf(const char *path, struct err *e);
char *path_join(const char *a, const char *b);
/* Mount an overlay of `lowerdirs` (top first; upperdir NULL: read-only
 * layers only) on target: mount(2) while the options fit its page, else
 * the new mount API, one "lowerdir+" per layer (Linux 6.8), so any depth
 * mounts. */
int mount_overlay(char *const *lowerdirs, const char *upperdir, const char *workdir, bool readonly,
                  const char *target, struct err *e);
/* The new-mount-API half alone: 0, or -1 with errno (EINVAL from a kernel
 * without lowerdir+) and *why (may be NULL) the kernel's words; caller frees. */
int mount_overlay_layers(char *const *lowerdirs, const char *upperdir, const char *workdir, bool index_off,
                         bool readonly, const char *target, char **why);

/* ---------- ids ---------- */

#define ID_LEN 64
/* 64 lowercase hex chars from getrandom(2) plus NUL. */
void id_generate(char out[ID_LEN + 1]);
bool id_is_valid(const char *s);
/* Resolve `prefix` against `ids` (n entries): exact match wins, else one
 * unique prefix match. ERR_NOT_FOUND / ERR_INVALID ("ambiguous") otherwise. */
int id_resolve_prefix(const char *prefix, char *const *ids, size_t n, const char **out, struct err *e);

/* ---------- time ---------- */

int64_t time_now_ns(void);  /* CLOCK_REALTIME */
int64_t time_mono_ns(void); /* CLOCK_MONOTONIC */
/* RFC 3339 with nanoseconds in UTC, e.g. 2026-11-22T20:43:59.123456789Z. */
void time_rfc3339nano(int64_t ns, char out[40]);

#endif
