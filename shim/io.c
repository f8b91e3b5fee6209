/* The container's stdio as the shim holds it: output read from pipes (or the
 * pty master) goes to the CRI log and to attach clients; stdin comes from
 * attach clients. */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <termios.h>

#include "shim/shim-internal.h"

/* Small on purpose: the shim's RSS goal is 1 MiB. A pipe holds 64 KiB, so a
 * chatty container costs a few more reads, not more memory. */
#define IO_READ_BUF 8192

static void stream_closed(struct shim *s, struct shim_stream *st)
{
        shim_log_eof(&s->log, st->id, time_now_ns());
        if (st->w.fd == s->pty)
                s->pty = -1;
        shim_watch_close(s, &st->w);
        /* Attach clients learn the exit code last: when output ended and the
         * exit is recorded, whichever comes second. */
        if (!shim_io_open(s) && s->exit_recorded)
                shim_attach_finish(s);
}

/* Returns false when the stream is at its end (or broken). */
static bool read_once(struct shim *s, struct shim_stream *st)
{
        char buf[IO_READ_BUF + 1];
        ssize_t n = read(st->w.fd, buf + 1, IO_READ_BUF);
        if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                        return errno == EINTR;
                /* EIO: every holder of the pty slave is gone. */
                stream_closed(s, st);
                return false;
        }
        if (n == 0) {
                stream_closed(s, st);
                return false;
        }
        shim_log_write(&s->log, st->id, buf + 1, (size_t)n, time_now_ns());
        /* buf[0] is room for the attach packet's stream byte. */
        buf[0] = (char)st->id;
        shim_attach_broadcast(s, st->id, buf, (size_t)n + 1);
        return true;
}

static void on_output(struct shim *s, struct watch *w, uint32_t events)
{
        struct shim_stream *st = (struct shim_stream *)w;
        if (events & EPOLLIN) {
                (void)read_once(s, st);
                return;
        }
        if (events & (EPOLLHUP | EPOLLERR))
                while (st->w.fd >= 0 && read_once(s, st))
                        ;
}

static void on_stdin_writable(struct shim *s, struct watch *w, uint32_t events)
{
        (void)w;
        if (events & (EPOLLERR | EPOLLHUP)) {
                shim_io_close_stdin(s);
                return;
        }
        size_t left = s->in_len;
        s->in_len = 0;
        char *pending = steal_ptr(&s->in_buf);
        shim_watch_del(s, &s->in);
        (void)shim_io_stdin(s, pending, left);
        free(pending);
        if (!shim_io_stdin_busy(s))
                shim_attach_resume(s);
}

static int set_nonblock(int fd)
{
        int fl = fcntl(fd, F_GETFL);
        return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int shim_io_setup(struct shim *s, int child[3], struct err *e)
{
        child[0] = child[1] = child[2] = -1;
        s->out.id = SHIM_ATTACH_STDOUT;
        s->err.id = SHIM_ATTACH_STDERR;
        s->out.w.fn = s->err.w.fn = on_output;
        s->in.fn = on_stdin_writable;
        if (s->opts->tty && s->opts->runtime_path) {
                /* The OCI runtime makes the pty and sends us its master (oci.c). */
                return 0;
        }
        if (s->opts->tty) {
                int master, slave;
                if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
                        return err_make(e, errno, "openpty");
                (void)fcntl(master, F_SETFD, FD_CLOEXEC);
                (void)fcntl(slave, F_SETFD, FD_CLOEXEC);
                set_nonblock(master);
                s->pty = master;
                s->out.w.fd = master;
                if (s->opts->stdin_open) {
                        s->in.fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
                        if (s->in.fd < 0)
                                return err_make(e, errno, "dup pty master");
                }
                child[0] = slave;
                child[1] = fcntl(slave, F_DUPFD_CLOEXEC, 3);
                child[2] = fcntl(slave, F_DUPFD_CLOEXEC, 3);
                if (child[1] < 0 || child[2] < 0)
                        return err_make(e, errno, "dup pty slave");
                return 0;
        }
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return err_make(e, errno, "pipe");
        s->out.w.fd = p[0];
        child[1] = p[1];
        if (pipe2(p, O_CLOEXEC) < 0)
                return err_make(e, errno, "pipe");
        s->err.w.fd = p[0];
        child[2] = p[1];
        set_nonblock(s->out.w.fd);
        set_nonblock(s->err.w.fd);
        if (s->opts->stdin_open) {
                if (pipe2(p, O_CLOEXEC) < 0)
                        return err_make(e, errno, "pipe");
                child[0] = p[0];
                s->in.fd = p[1];
                set_nonblock(s->in.fd);
        }
        return 0;
}

int shim_io_watch(struct shim *s, struct err *e)
{
        if (s->out.w.fd >= 0 && shim_watch_add(s, &s->out.w, EPOLLIN) < 0)
                return err_make(e, errno, "watch stdout");
        if (s->err.w.fd >= 0 && shim_watch_add(s, &s->err.w, EPOLLIN) < 0)
                return err_make(e, errno, "watch stderr");
        return 0;
}

void shim_io_drain(struct shim *s)
{
        /* Bounded: a process left behind that keeps writing must not starve the loop. */
        for (int i = 0; i < 256 && s->out.w.fd >= 0 && read_once(s, &s->out); i++)
                ;
        for (int i = 0; i < 256 && s->err.w.fd >= 0 && read_once(s, &s->err); i++)
                ;
}

bool shim_io_open(const struct shim *s)
{
        return s->out.w.fd >= 0 || s->err.w.fd >= 0;
}

bool shim_io_stdin_busy(const struct shim *s)
{
        return s->in_len > 0;
}

bool shim_io_stdin(struct shim *s, const char *data, size_t n)
{
        if (s->in.fd < 0 || s->stdin_closed)
                return true; /* nowhere to go: dropped, as a closed stdin would */
        while (n > 0) {
                ssize_t w = write(s->in.fd, data, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        /* EPIPE: the container closed its stdin. */
                        shim_io_close_stdin(s);
                        return true;
                }
                data += w;
                n -= (size_t)w;
        }
        if (n == 0)
                return true;
        s->in_buf = xmemdup(data, n);
        s->in_len = n;
        (void)shim_watch_add(s, &s->in, EPOLLOUT);
        return false;
}

void shim_io_close_stdin(struct shim *s)
{
        s->stdin_closed = true;
        free(steal_ptr(&s->in_buf));
        s->in_len = 0;
        if (s->pty >= 0 && s->in.fd >= 0) {
                /* A terminal has no half-close: send EOF (^D) as a terminal would. */
                struct termios t;
                char eof = 4;
                if (tcgetattr(s->pty, &t) == 0)
                        eof = (char)t.c_cc[VEOF];
                (void)write(s->in.fd, &eof, 1);
        }
        shim_watch_close(s, &s->in);
        shim_attach_resume(s);
}

void shim_io_resize(struct shim *s, unsigned rows, unsigned cols)
{
        if (s->pty < 0)
                return;
        struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
        (void)ioctl(s->pty, TIOCSWINSZ, &ws);
}

void shim_io_cleanup(struct shim *s)
{
        shim_watch_close(s, &s->out.w);
        shim_watch_close(s, &s->err.w);
        shim_watch_close(s, &s->in);
        free(steal_ptr(&s->in_buf));
        /* out.w.fd was the pty master itself. */
        s->pty = -1;
}
