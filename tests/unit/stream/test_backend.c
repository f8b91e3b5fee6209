/* A stream backend for tests: runs the command as a host process (pipes, or
 * a pty with tty) and forwards ports to 127.0.0.1. The real container
 * backend plugs into the same struct stream_backend. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "test_backend.h"
#include "util/util.h"

struct tty_pump {
        int master;
        int in_fd, out_fd;
        int stop; /* eventfd-like pipe */
};

static void *tty_pump_main(void *arg)
{
        struct tty_pump *t = arg;
        char buf[4096];
        bool in_open = t->in_fd >= 0;
        for (;;) {
                struct pollfd p[3] = {{.fd = t->master, .events = POLLIN},
                                      {.fd = in_open ? t->in_fd : -1, .events = POLLIN},
                                      {.fd = t->stop, .events = POLLIN}};
                if (poll(p, 3, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[0].revents) {
                        ssize_t n = read(t->master, buf, sizeof(buf));
                        if (n <= 0)
                                break; /* EIO: the slave side is gone */
                        if (t->out_fd >= 0)
                                (void)fd_write_all(t->out_fd, buf, (size_t)n);
                }
                if (p[1].revents) {
                        ssize_t n = read(t->in_fd, buf, sizeof(buf));
                        if (n <= 0)
                                in_open = false;
                        else
                                (void)fd_write_all(t->master, buf, (size_t)n);
                }
                if (p[2].revents && !p[0].revents)
                        break;
        }
        return NULL;
}

static void on_resize(void *data, uint16_t w, uint16_t h)
{
        int master = (int)(intptr_t)data;
        struct winsize ws = {.ws_row = h, .ws_col = w};
        (void)ioctl(master, TIOCSWINSZ, &ws);
}

static int run(char *const *argv, bool tty, struct stream_io *io, int *exit_code, struct err *e)
{
        int master = -1, slave = -1;
        if (tty) {
                struct winsize ws = {.ws_row = 24, .ws_col = 80};
                if (openpty(&master, &slave, NULL, NULL, &ws) < 0)
                        return err_make(e, errno, "openpty");
                (void)fcntl(master, F_SETFD, FD_CLOEXEC);
                /* sizes that arrived already are applied before the child runs */
                stream_io_set_resize(io, on_resize, (void *)(intptr_t)master);
        }
        int errpipe[2];
        if (pipe2(errpipe, O_CLOEXEC) < 0)
                return err_make(e, errno, "pipe");
        pid_t pid = fork();
        if (pid < 0)
                return err_make(e, errno, "fork");
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDWR);
                if (tty) {
                        setsid();
                        (void)ioctl(slave, TIOCSCTTY, 0);
                        dup2(slave, 0);
                        dup2(slave, 1);
                        dup2(slave, 2);
                } else {
                        dup2(io->stdin_fd >= 0 ? io->stdin_fd : devnull, 0);
                        dup2(io->stdout_fd >= 0 ? io->stdout_fd : devnull, 1);
                        dup2(io->stderr_fd >= 0 ? io->stderr_fd : devnull, 2);
                }
                signal(SIGPIPE, SIG_DFL);
                execvp(argv[0], argv);
                int err = errno;
                (void)!write(errpipe[1], &err, sizeof(err));
                _exit(127);
        }
        close(errpipe[1]);
        int child_errno = 0;
        ssize_t got = read(errpipe[0], &child_errno, sizeof(child_errno));
        close(errpipe[0]);

        struct tty_pump tp = {.master = master, .in_fd = io->stdin_fd, .out_fd = io->stdout_fd};
        pthread_t pump;
        int stop_pipe[2] = {-1, -1};
        bool pumping = false;
        if (tty) {
                close(slave);
                if (pipe2(stop_pipe, O_CLOEXEC) == 0) {
                        tp.stop = stop_pipe[0];
                        pumping = pthread_create(&pump, NULL, tty_pump_main, &tp) == 0;
                }
        } else {
                /* the child has its copies: our EOFs must not wait on us */
                if (io->stdout_fd >= 0) {
                        close(io->stdout_fd);
                        io->stdout_fd = -1;
                }
                if (io->stderr_fd >= 0) {
                        close(io->stderr_fd);
                        io->stderr_fd = -1;
                }
        }

        int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        int status = 0;
        for (;;) {
                struct pollfd p[2] = {{.fd = io->cancel_fd, .events = POLLIN},
                                      {.fd = pidfd, .events = POLLIN}};
                int r = poll(p, 2, pidfd < 0 ? 20 : -1);
                if (r < 0 && errno != EINTR)
                        break;
                if (p[0].revents)
                        kill(pid, SIGKILL);
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid)
                        break;
        }
        if (pidfd >= 0)
                close(pidfd);
        if (pumping) {
                (void)!write(stop_pipe[1], "x", 1);
                pthread_join(pump, NULL);
        }
        if (stop_pipe[0] >= 0) {
                close(stop_pipe[0]);
                close(stop_pipe[1]);
        }
        if (tty) {
                stream_io_set_resize(io, NULL, NULL);
                close(master);
        }
        if (got == (ssize_t)sizeof(child_errno))
                return err_make(e, child_errno, "exec %s", argv[0]);
        *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return 0;
}

static int tb_exec(void *data, const struct stream_exec_req *req, struct stream_io *io, int *exit_code,
                   struct err *e)
{
        struct test_backend *tb = data;
        __atomic_add_fetch(&tb->execs, 1, __ATOMIC_SEQ_CST);
        if (strcmp(req->container_id, "missing") == 0)
                return err_set(e, ERR_NOT_FOUND, "container missing not found");
        return run(req->cmd, req->tty, io, exit_code, e);
}

/* "Attach" to a pretend container: its main process is a shell that says
 * hello and then copies stdin to stdout. */
static int tb_attach(void *data, const struct stream_attach_req *req, struct stream_io *io, struct err *e)
{
        (void)data;
        if (strcmp(req->container_id, "missing") == 0)
                return err_set(e, ERR_NOT_FOUND, "container missing not found");
        char *argv[] = {"sh", "-c", "echo attached; exec cat", NULL};
        int code = 0;
        return run(argv, req->tty, io, &code, e);
}

static int tb_portforward(void *data, const char *pod_id, uint16_t port, int *fd_out, struct err *e)
{
        (void)data;
        if (strcmp(pod_id, "missing") == 0)
                return err_set(e, ERR_NOT_FOUND, "pod sandbox missing not found");
        if (strcmp(pod_id, "slow") == 0) { /* a pod that takes its time: data queues up meanwhile */
                struct timespec ts = {0, 500 * 1000000L};
                nanosleep(&ts, NULL);
        }
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return err_make(e, errno, "socket");
        struct sockaddr_in sa = {
                .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int saved = errno;
                close(fd);
                return err_make(e, saved, "connect 127.0.0.1:%u", port);
        }
        *fd_out = fd;
        return 0;
}

const struct stream_backend test_backend_ops = {
        .exec = tb_exec,
        .attach = tb_attach,
        .portforward = tb_portforward,
};

/* ---------- a TCP echo server with half-close ---------- */

static void *echo_conn(void *arg)
{
        int fd = (int)(intptr_t)arg;
        char buf[65536];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n <= 0)
                        break;
                if (fd_write_all(fd, buf, (size_t)n) < 0)
                        break;
        }
        /* Peer half-closed: we answer with our own FIN after the echo. */
        shutdown(fd, SHUT_WR);
        close(fd);
        return NULL;
}

static void *echo_main(void *arg)
{
        struct echo_server *es = arg;
        for (;;) {
                int c = accept4(es->fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                pthread_t t;
                if (pthread_create(&t, NULL, echo_conn, (void *)(intptr_t)c) == 0)
                        pthread_detach(t);
                else
                        close(c);
        }
        return NULL;
}

int echo_server_start(struct echo_server *es)
{
        es->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof(sa);
        if (es->fd < 0 || bind(es->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(es->fd, 16) < 0 ||
            getsockname(es->fd, (struct sockaddr *)&sa, &sl) < 0)
                return -1;
        es->port = ntohs(sa.sin_port);
        return pthread_create(&es->thr, NULL, echo_main, es) == 0 ? 0 : -1;
}

void echo_server_stop(struct echo_server *es)
{
        shutdown(es->fd, SHUT_RDWR);
        pthread_join(es->thr, NULL);
        close(es->fd);
}
