/* How the host reaches corral-agent: a virtio-serial port named
 * AGENT_PORT_NAME (QEMU without vhost-vsock), or a vsock listener on
 * VM_AGENT_VSOCK_PORT (cloud-hypervisor's hybrid vsock, QEMU's
 * vhost-vsock). The guest serves whichever shows up first: the VMM gives
 * it one of them. A vsock device is recognised by its virtio device id
 * (19) under /sys/bus/virtio/devices, so the agent does not listen on a
 * vsock that no host can reach. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <linux/vm_sockets.h>

#include "vm/agent/agent-internal.h"
#include "vm/agent/transport-internal.h"
#include "vm/vm.h"

#define VIRTIO_ID_VSOCK 19

static bool have_vsock_device(void)
{
        cleanup_dir DIR *d = opendir("/sys/bus/virtio/devices");
        struct dirent *de;
        while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char p[512];
                snprintf(p, sizeof(p), "/sys/bus/virtio/devices/%s/device", de->d_name);
                cleanup_free char *s = NULL;
                if (file_read_all(p, &s, NULL, 64, NULL) < 0)
                        continue;
                if (strtol(s, NULL, 0) == VIRTIO_ID_VSOCK)
                        return true;
        }
        return false;
}

static int vsock_listen(struct err *e)
{
        cleanup_close int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return err_make(e, errno, "vsock socket");
        struct sockaddr_vm sa = {
                .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = VM_AGENT_VSOCK_PORT};
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return err_make(e, errno, "vsock bind port %u", VM_AGENT_VSOCK_PORT);
        if (listen(fd, 4) < 0)
                return err_make(e, errno, "vsock listen");
        return steal_fd(&fd);
}

void agent_transport_close(struct agent_transport *t)
{
        if (t->listen_fd >= 0)
                close(t->listen_fd);
        t->listen_fd = -1;
}

int agent_transport_open(struct agent_transport *t, int timeout_ms, struct err *e)
{
        int64_t deadline = time_mono_ns() / 1000000 + timeout_ms;
        for (;;) {
                int fd = agent_find_port(AGENT_PORT_NAME);
                if (fd >= 0) {
                        t->kind = "virtio-serial";
                        t->reconnect = true;
                        return fd;
                }
                if (t->listen_fd < 0 && have_vsock_device()) {
                        cleanup_err struct err le = ERR_INIT;
                        t->listen_fd = vsock_listen(&le);
                        if (t->listen_fd < 0)
                                log_error("agent", "%s", le.msg);
                }
                int64_t left = deadline - time_mono_ns() / 1000000;
                if (left <= 0)
                        return err_set(e, ERR_NOT_FOUND,
                                       "no virtio-serial port named %s and no vsock connection "
                                       "on port %u",
                                       AGENT_PORT_NAME, VM_AGENT_VSOCK_PORT);
                if (t->listen_fd < 0) {
                        struct timespec ts = {0, 20 * 1000000};
                        nanosleep(&ts, NULL);
                        continue;
                }
                /* Wait on the listener, looking for the port again meanwhile. */
                struct pollfd p = {.fd = t->listen_fd, .events = POLLIN};
                if (poll(&p, 1, left < 20 ? (int)left : 20) > 0) {
                        fd = accept4(t->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                        if (fd >= 0) {
                                t->kind = "vsock";
                                t->reconnect = false;
                                return fd;
                        }
                }
        }
}

int agent_transport_accept(struct agent_transport *t, struct err *e)
{
        if (t->listen_fd < 0)
                return err_set(e, ERR_PRECONDITION, "no vsock listener");
        (void)fcntl(t->listen_fd, F_SETFL, fcntl(t->listen_fd, F_GETFL) & ~O_NONBLOCK);
        int fd = accept4(t->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        return fd < 0 ? err_make(e, errno, "vsock accept") : fd;
}
