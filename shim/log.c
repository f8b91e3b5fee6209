/* The CRI log writer: `<RFC3339Nano> <stdout|stderr> <P|F> <text>\n`.
 *
 * One timestamp per read chunk (as conmon does). A line is held back until
 * its newline arrives, so that "F" lines are whole; content longer than
 * SHIM_LOG_LINE_MAX is cut into "P" entries of that size, and a partial
 * line still pending at the end of the stream is written as "P" (as
 * containerd does). The entries of one chunk go out in one writev.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "shim/shim-internal.h"

#define LOG_IOV 64

struct batch {
        struct shim_log *log;
        struct iovec iov[LOG_IOV];
        int n;
        char pfx_f[64];
        char pfx_p[64];
        size_t pfx_len;
};

int shim_log_open(struct shim_log *l, const char *path, struct err *e)
{
        l->fd = -1;
        if (path == NULL || *path == '\0')
                return 0;
        l->path = xstrdup(path);
        return shim_log_reopen(l, e);
}

int shim_log_reopen(struct shim_log *l, struct err *e)
{
        if (l->path == NULL)
                return 0;
        int fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
        if (fd < 0)
                return err_make(e, errno, "open log %s", l->path);
        if (l->fd >= 0) {
                (void)fsync(l->fd);
                close(l->fd);
        }
        l->fd = fd;
        return 0;
}

static void flush(struct batch *b)
{
        struct iovec *iov = b->iov;
        int n = b->n;
        b->n = 0;
        if (b->log->fd < 0)
                return;
        while (n > 0) {
                ssize_t w = writev(b->log->fd, iov, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        /* Disk full or gone: drop these entries, keep the container running. */
                        b->log->write_errors++;
                        return;
                }
                while (n > 0 && (size_t)w >= iov->iov_len) {
                        w -= (ssize_t)iov->iov_len;
                        iov++;
                        n--;
                }
                if (n > 0) {
                        iov->iov_base = (char *)iov->iov_base + w;
                        iov->iov_len -= (size_t)w;
                }
        }
}

static void push(struct batch *b, const void *p, size_t len)
{
        if (len == 0)
                return;
        if (b->n == LOG_IOV)
                flush(b);
        b->iov[b->n].iov_base = (void *)p;
        b->iov[b->n].iov_len = len;
        b->n++;
}

/* One entry: prefix, the held-back part (if any), `n` bytes of data, "\n". */
static void entry(struct batch *b, bool full, struct shim_log_stream *st, const char *data, size_t n)
{
        if (b->n + 4 > LOG_IOV)
                flush(b);
        push(b, full ? b->pfx_f : b->pfx_p, b->pfx_len);
        push(b, st->part, st->len);
        push(b, data, n);
        push(b, "\n", 1);
        if (st->len) {
                /* The part buffer is reused right away: write before that. */
                flush(b);
                st->len = 0;
        }
}

static void batch_init(struct batch *b, struct shim_log *l, int stream, int64_t now_ns)
{
        char ts[40];
        time_rfc3339nano(now_ns, ts);
        const char *name = stream == SHIM_ATTACH_STDERR ? "stderr" : "stdout";
        b->log = l;
        b->n = 0;
        snprintf(b->pfx_f, sizeof(b->pfx_f), "%s %s F ", ts, name);
        int len = snprintf(b->pfx_p, sizeof(b->pfx_p), "%s %s P ", ts, name);
        b->pfx_len = (size_t)len;
}

static struct shim_log_stream *stream_of(struct shim_log *l, int stream)
{
        return &l->streams[stream == SHIM_ATTACH_STDERR ? 1 : 0];
}

void shim_log_write(struct shim_log *l, int stream, const char *data, size_t n, int64_t now_ns)
{
        struct shim_log_stream *st = stream_of(l, stream);
        struct batch b;
        batch_init(&b, l, stream, now_ns);
        while (n > 0) {
                size_t room = SHIM_LOG_LINE_MAX - st->len;
                size_t scan = n < room + 1 ? n : room + 1;
                const char *nl = memchr(data, '\n', scan);
                if (nl) {
                        size_t k = (size_t)(nl - data);
                        entry(&b, true, st, data, k);
                        data += k + 1;
                        n -= k + 1;
                } else if (n > room) {
                        entry(&b, false, st, data, room);
                        data += room;
                        n -= room;
                } else {
                        /* An unfinished line: hold it until its end arrives. */
                        if (st->part == NULL)
                                st->part = xmalloc(SHIM_LOG_LINE_MAX);
                        memcpy(st->part + st->len, data, n);
                        st->len += n;
                        n = 0;
                }
        }
        flush(&b);
}

void shim_log_eof(struct shim_log *l, int stream, int64_t now_ns)
{
        struct shim_log_stream *st = stream_of(l, stream);
        if (st->len == 0)
                return;
        struct batch b;
        batch_init(&b, l, stream, now_ns);
        entry(&b, false, st, NULL, 0);
        flush(&b);
}

void shim_log_sync(struct shim_log *l)
{
        if (l->fd >= 0)
                (void)fsync(l->fd);
}

void shim_log_close(struct shim_log *l)
{
        shim_log_sync(l);
        if (l->fd >= 0)
                close(l->fd);
        l->fd = -1;
        for (size_t i = 0; i < ARRAY_SIZE(l->streams); i++) {
                free(l->streams[i].part);
                l->streams[i].part = NULL;
                l->streams[i].len = 0;
        }
        free(l->path);
        l->path = NULL;
}
