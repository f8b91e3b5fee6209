/* An upgraded connection: buffered reads with a wake-up fd, serialised writes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "stream/stream-internal.h"

int conn_init(struct conn *c, int fd, const void *extra, size_t extra_len, struct err *e)
{
        memset(c, 0, sizeof(*c));
        c->fd = fd;
        c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (c->wake_fd < 0)
                return err_make(e, errno, "eventfd");
        /* Writes block (backpressure); reads are driven by poll. */
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0 && (fl & O_NONBLOCK))
                (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        pthread_mutex_init(&c->wlock, NULL);
        c->rcap = 65536 + extra_len;
        c->rbuf = xmalloc(c->rcap);
        if (extra_len)
                memcpy(c->rbuf, extra, extra_len);
        c->rlen = extra_len;
        return 0;
}

void conn_destroy(struct conn *c)
{
        if (c->wake_fd >= 0)
                close(c->wake_fd);
        c->wake_fd = -1;
        free(c->rbuf);
        c->rbuf = NULL;
        pthread_mutex_destroy(&c->wlock);
}

int conn_write_locked(struct conn *c, const void *data, size_t len)
{
        if (c->write_failed)
                return -1;
        const char *p = data;
        while (len) {
                ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        c->write_failed = true;
                        return -1;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int conn_fill(struct conn *c, int timeout_ms)
{
        struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN}, {.fd = c->wake_fd, .events = POLLIN}};
        for (;;) {
                int r = poll(p, 2, timeout_ms);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -1;
                if (r == 0)
                        return 0;
                break;
        }
        if (p[1].revents)
                return -2;
        if (c->rcap - c->rlen < 16384) {
                c->rcap *= 2;
                c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
        for (;;) {
                ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -1;
                c->rlen += (size_t)n;
                return (int)n;
        }
}

void conn_consume(struct conn *c, size_t n)
{
        memmove(c->rbuf, c->rbuf + n, c->rlen - n);
        c->rlen -= n;
        /* Shrink back after a large frame went through. */
        if (c->rcap > 262144 && c->rlen < 65536) {
                c->rcap = 65536;
                c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
}

void conn_wake(struct conn *c)
{
        uint64_t one = 1;
        (void)!write(c->wake_fd, &one, sizeof(one));
}

void conn_linger(struct conn *c, bool can_shutdown, int ms)
{
        if (can_shutdown)
                (void)shutdown(c->fd, SHUT_WR);
        int64_t deadline = time_mono_ns() + (int64_t)ms * 1000000;
        char junk[4096];
        for (;;) {
                int64_t left = (deadline - time_mono_ns()) / 1000000;
                if (left <= 0)
                        return;
                struct pollfd p = {.fd = c->fd, .events = POLLIN};
                int r = poll(&p, 1, (int)left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return;
                ssize_t n = recv(c->fd, junk, sizeof(junk), 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
        }
}

int sock_send_all(int fd, const void *data, size_t len)
{
        const char *p = data;
        while (len) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -1;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}
