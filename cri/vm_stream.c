/* Exec and port-forward in a VM pod (moved from streaming.c): the VM
 * shim's exec socket, relayed through the agent to the process in the
 * guest (a pty there for tty), and a socket from the VM shim relayed
 * through the agent to the guest's loopback. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "shim/shim.h"
#include "store/store.h"
#include "stream/stream.h"

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

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

int cri_vm_exec(struct cri_daemon *d, const struct cri_pod_extra *x, const struct stream_exec_req *req,
                struct stream_io *io, int *exit_code, struct err *e)
{
        struct store_container c = {0};
        cleanup_close int fd = -1; /* before any goto (clang) */
        int r = -1;
        if (ctr_resolve(d, req->container_id, &c, e) < 0)
                return -1;
        if (!x->vm_dir) {
                err_set(e, ERR_INTERNAL, "VM pod %s has no VM state", c.pod_id);
                goto out;
        }
        ctr_refresh(d, &c);
        if (c.state != STORE_CTR_RUNNING) {
                err_set(e, ERR_PRECONDITION, "container %s is %s, not running: cannot exec in it", c.id,
                        c.state == STORE_CTR_CREATED  ? "created"
                        : c.state == STORE_CTR_EXITED ? "exited"
                                                      : "in an unknown state");
                goto out;
        }
        int64_t t0 = time_mono_ns();
        if (shim_vm_exec_connect(x->vm_dir, c.id, req->cmd, req->tty, &fd, e) < 0) {
                err_wrap(e, "exec %s in container %s", req->cmd[0], c.id);
                goto out;
        }
        /* Sizes come on the session's reader thread: through a pipe to the relay. */
        int rp[2] = {-1, -1};
        struct exec_resize rz = {.fd = -1};
        if (req->tty && pipe2(rp, O_CLOEXEC | O_NONBLOCK) == 0) {
                rz.fd = rp[1];
                stream_io_set_resize(io, exec_on_resize, &rz);
        }
        r = shim_vm_exec_relay(fd, io->stdin_fd, io->stdout_fd, req->tty ? -1 : io->stderr_fd, rp[0],
                               io->cancel_fd, exit_code, e);
        if (rz.fd >= 0)
                stream_io_set_resize(io, NULL, NULL);
        close_fd(&rp[0]);
        close_fd(&rz.fd);
        if (r < 0) {
                err_wrap(e, "exec %s in container %s", req->cmd[0], c.id);
                goto out;
        }
        log_debug("cri", "exec done container=%s (VM) cmd=%s exit=%d ms=%.3f", c.id, req->cmd[0], *exit_code,
                  (double)(time_mono_ns() - t0) / 1e6);
        r = 0;
out:
        store_ctr_clear(&c);
        return r;
}

int cri_vm_port_forward(struct cri_daemon *d, const char *pod_id, const struct cri_pod_extra *x,
                        uint16_t port, int *fd_out, struct err *e)
{
        (void)d;
        *fd_out = -1;
        /* The pod's ports are in its guest: the VM shim relays through the agent. */
        if (!x->vm_dir)
                return err_set(e, ERR_INTERNAL, "VM pod %s has no VM state", pod_id);
        if (shim_vm_portforward(x->vm_dir, port, 30000, fd_out, e) < 0)
                return err_wrap(e, "port-forward to port %u in VM pod %s", (unsigned)port, pod_id);
        return 0;
}
