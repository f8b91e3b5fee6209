/* The namespace (and OCI) handler's side of exec and port-forward: a
 * `corral-shim exec` helper that joins the container, a socket made in the
 * pod's network namespace. streaming.c's RPCs reach them through the
 * handler ops (vm_stream.c is the VM side). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "net/net.h"
#include "shim/shim.h"
#include "stream/stream.h"

/* How long a helper gets between SIGTERM and SIGKILL when the session ends. */
#define EXEC_KILL_GRACE_MS 2000

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

/* ---------- exec ---------- */

struct exec_resize {
        int fd;
};

static void exec_on_resize(void *data, uint16_t width, uint16_t height)
{
        struct exec_resize *r = data;
        struct shim_attach_resize m = {.rows = height, .cols = width};
        if (r->fd >= 0)
                (void)!write(r->fd, &m, sizeof(m)); /* non-blocking: a full pipe drops a size */
}

static int wait_helper(pid_t pid, int cancel_fd, int *status)
{
        int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        bool cancelled = false;
        int64_t kill_at = 0;
        while (pfd >= 0) {
                struct pollfd p[2] = {{.fd = pfd, .events = POLLIN},
                                      {.fd = cancelled ? -1 : cancel_fd, .events = POLLIN}};
                int timeout = -1;
                if (cancelled) {
                        int64_t left = (kill_at - time_mono_ns()) / 1000000;
                        timeout = left > 0 ? (int)left : 0;
                }
                int r = poll(p, 2, timeout);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0 || (p[0].revents & POLLIN))
                        break;
                if (p[1].revents & POLLIN) {
                        /* The client is gone or the server stops: end the command. */
                        cancelled = true;
                        kill_at = time_mono_ns() + (int64_t)EXEC_KILL_GRACE_MS * 1000000;
                        (void)kill(pid, SIGTERM);
                } else if (r == 0 && cancelled) {
                        (void)kill(pid, SIGKILL);
                        kill_at = INT64_MAX / 2;
                }
        }
        if (pfd >= 0)
                close(pfd);
        while (waitpid(pid, status, 0) < 0) {
                if (errno != EINTR)
                        return -1;
        }
        return 0;
}

/* Exec in a namespace or OCI container: a `corral-shim exec` helper joins it. */
int cri_ns_exec(struct cri_daemon *d, const struct cri_pod_extra *px, const struct stream_exec_req *req,
                struct stream_io *io, int *exit_code, struct err *e)
{
        (void)px;
        cleanup_free char *shim = cri_shim_binary();
        struct store_container c = {0};
        struct ctr_extra x;
        /* Before any goto: clang refuses jumps into a cleanup variable's scope. */
        cleanup_close int rep_r = -1;
        cleanup_close int rep_w = -1;
        int r = ctr_running(d, req->container_id, "exec in it", &c, &x, e);
        if (r == 0 && c.pid <= 0)
                r = err_set(e, ERR_INTERNAL, "container %s has no shim state", c.id);
        if (r < 0)
                goto out;
        int rp[2];
        if (pipe2(rp, O_CLOEXEC) < 0) {
                r = err_make(e, errno, "pipe");
                goto out;
        }
        rep_r = rp[0];
        rep_w = rp[1];
        struct shim_exec_opts o = {
                .shim_path = shim,
                .bundle = x.bundle,
                .pid = c.pid,
                .args = req->cmd,
                .tty = req->tty,
                .stdin_fd = io->stdin_fd,
                .stdout_fd = io->stdout_fd,
                .stderr_fd = req->tty ? -1 : io->stderr_fd,
                .report_fd = rep_w,
                .resize_fd = -1,
        };
        pid_t helper = -1;
        struct exec_resize rz = {.fd = -1};
        int64_t t0 = time_mono_ns();
        r = shim_exec_spawn(&o, &helper, &rz.fd, e);
        close_fd(&rep_w);
        if (r < 0) {
                err_wrap(e, "exec in container %s", c.id);
                goto out;
        }
        /* The helper has them now: the client sees EOF when the command (and
         * whatever it left behind) closes them, not when we return. */
        close_fd(&io->stdin_fd);
        close_fd(&io->stdout_fd);
        close_fd(&io->stderr_fd);
        if (req->tty)
                stream_io_set_resize(io, exec_on_resize, &rz);
        int status = 0;
        r = wait_helper(helper, io->cancel_fd, &status);
        if (req->tty)
                stream_io_set_resize(io, NULL, NULL);
        close_fd(&rz.fd);
        if (r < 0) {
                r = err_make(e, errno, "wait for exec helper %d", (int)helper);
                goto out;
        }
        struct sbuf msg = {0};
        char buf[1024];
        ssize_t n;
        (void)fcntl(rep_r, F_SETFL, O_NONBLOCK);
        while (msg.len < 8192 && (n = read(rep_r, buf, sizeof(buf))) > 0)
                sbuf_append(&msg, buf, (size_t)n);
        if (msg.len > 0) {
                r = err_set(e, ERR_INTERNAL, "exec %s in container %s: %s", req->cmd[0], c.id, msg.buf);
                sbuf_free(&msg);
                goto out;
        }
        sbuf_free(&msg);
        *exit_code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
        log_debug("cri", "exec done container=%s cmd=%s exit=%d ms=%.3f", c.id, req->cmd[0], *exit_code,
                  (double)(time_mono_ns() - t0) / 1e6);
        r = 0;
out:
        ctr_extra_clear(&x);
        store_ctr_clear(&c);
        return r;
}

/* ---------- port-forward ---------- */

/* A socket made inside the pod's network namespace, connected to its loopback. */
int cri_ns_port_forward(struct cri_daemon *d, const char *pod_id, const struct cri_pod_extra *px,
                        uint16_t port, int *fd_out, struct err *e)
{
        (void)d;
        *fd_out = -1;
        cleanup_free char *netns = px->host_net || px->ns_dir == NULL ? NULL : path_join(px->ns_dir, "net");
        int r = -1;
        /* Try IPv4 then IPv6 loopback, as kubelet's runtimes do for "localhost". */
        static const int fams[] = {AF_INET, AF_INET6};
        int saved_errno = ECONNREFUSED;
        for (size_t i = 0; i < ARRAY_SIZE(fams); i++) {
                int saved = -1;
                if (netns && net_ns_enter(netns, &saved, e) < 0) {
                        err_wrap(e, "port-forward to pod %s", pod_id);
                        goto out;
                }
                /* The socket belongs to the namespace it is made in, for good. */
                int fd = socket(fams[i], SOCK_STREAM | SOCK_CLOEXEC, 0);
                int serr = errno;
                if (netns)
                        net_ns_leave(&saved);
                if (fd < 0) {
                        saved_errno = serr;
                        continue;
                }
                int cr;
                if (fams[i] == AF_INET) {
                        struct sockaddr_in sa = {.sin_family = AF_INET,
                                                 .sin_port = htons(port),
                                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                        cr = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
                } else {
                        struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                                                  .sin6_port = htons(port),
                                                  .sin6_addr = IN6ADDR_LOOPBACK_INIT};
                        cr = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
                }
                if (cr == 0) {
                        *fd_out = fd;
                        r = 0;
                        goto out;
                }
                if (i == 0 || errno != EAFNOSUPPORT)
                        saved_errno = errno;
                close(fd);
        }
        err_make(e, saved_errno, "port-forward to port %u in pod %s", (unsigned)port, pod_id);
out:
        return r;
}
