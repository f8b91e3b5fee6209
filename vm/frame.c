/* Length-prefixed protobuf frames over a byte stream (see frame-internal.h). */
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "vm/frame-internal.h"

static int64_t now_ms(void)
{
        return time_mono_ns() / 1000000;
}

int frame_write(int fd, const AgFrame *f, int timeout_ms, struct err *e)
{
        size_t n = corral__agent__v1__frame__get_packed_size(f);
        if (n > FRAME_MAX)
                return err_set(e, ERR_RANGE, "agent frame of %zu bytes exceeds %u", n, FRAME_MAX);
        cleanup_free uint8_t *buf = xmalloc(n + 4);
        buf[0] = (uint8_t)(n >> 24);
        buf[1] = (uint8_t)(n >> 16);
        buf[2] = (uint8_t)(n >> 8);
        buf[3] = (uint8_t)n;
        corral__agent__v1__frame__pack(f, buf + 4);
        size_t off = 0, total = n + 4;
        int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
        while (off < total) {
                ssize_t w = write(fd, buf + off, total - off);
                if (w > 0) {
                        off += (size_t)w;
                        continue;
                }
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && errno == EAGAIN) {
                        int left = -1;
                        if (deadline >= 0) {
                                int64_t l = deadline - now_ms();
                                if (l <= 0)
                                        return err_set(e, ERR_DEADLINE, "agent stream write timed out");
                                left = (int)l;
                        }
                        struct pollfd p = {.fd = fd, .events = POLLOUT};
                        (void)poll(&p, 1, left);
                        continue;
                }
                return err_make(e, w < 0 ? errno : EPIPE, "write agent frame");
        }
        return 0;
}

ssize_t frame_reader_fill(struct frame_reader *r, int fd, struct err *e)
{
        if (r->cap - r->len < 65536) {
                r->cap = r->cap ? r->cap * 2 : 131072;
                r->buf = xrealloc(r->buf, r->cap);
        }
        ssize_t n = read(fd, r->buf + r->len, r->cap - r->len);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return -1;
                err_make(e, errno, "read agent stream");
                return -1;
        }
        r->len += (size_t)n;
        return n;
}

int frame_reader_next(struct frame_reader *r, AgFrame **out, struct err *e)
{
        *out = NULL;
        if (r->len < 4)
                return 0;
        uint32_t n = ((uint32_t)r->buf[0] << 24) | ((uint32_t)r->buf[1] << 16) | ((uint32_t)r->buf[2] << 8) |
                     r->buf[3];
        if (n > FRAME_MAX) {
                frame_reader_reset(r);
                return err_set(e, ERR_DATA_LOSS, "malformed agent frame: length %u exceeds %u", n, FRAME_MAX);
        }
        if (r->len - 4 < n)
                return 0;
        AgFrame *f = corral__agent__v1__frame__unpack(NULL, n, r->buf + 4);
        memmove(r->buf, r->buf + 4 + n, r->len - 4 - n);
        r->len -= 4 + n;
        if (!f)
                return err_set(e, ERR_INVALID, "malformed agent frame: %u bytes do not unpack as a Frame", n);
        *out = f;
        return 1;
}

void frame_reader_reset(struct frame_reader *r)
{
        r->len = 0;
}

void frame_reader_free(struct frame_reader *r)
{
        free(r->buf);
        r->buf = NULL;
        r->len = r->cap = 0;
}

void frame_free(AgFrame *f)
{
        if (f)
                corral__agent__v1__frame__free_unpacked(f, NULL);
}
