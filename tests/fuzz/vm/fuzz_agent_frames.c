/* The host side of the agent protocol fed what a hostile guest could send:
 * any bytes on the agent connection, while async calls (wait, exec,
 * port-forward, interactive exec) and a synchronous ping wait for replies.
 * Every byte handed to a callback must be readable; the client must end
 * (error or EOF), never hang or crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/util.h"
#include "vm/vm.h"

static volatile uint8_t sink;

static void touch(const void *p, size_t n)
{
        const uint8_t *b = p;
        for (size_t i = 0; i < n; i++)
                sink ^= b[i];
}

static void on_output(void *arg, const char *cid, const char *eid, int stream, const void *data, size_t len,
                      bool eof)
{
        (void)arg, (void)stream, (void)eof;
        touch(cid, strlen(cid));
        touch(eid, strlen(eid));
        touch(data, len);
}

static void on_conn(void *arg, uint64_t id, const void *data, size_t len, bool eof, bool reset)
{
        (void)arg, (void)id, (void)eof, (void)reset;
        touch(data, len);
}

static void on_reply(void *arg, const struct vm_agent_reply *r)
{
        (void)arg;
        if (r->error)
                touch(r->error, strlen(r->error));
        touch(r->out, r->out_len);
        touch(r->err, r->err_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size > 65536) /* stays within the socket buffer: one write, then EOF */
                return 0;
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        struct vm_agent *a = vm_agent_from_fd(sv[0]);
        vm_agent_set_output(a, on_output, NULL);
        vm_agent_set_conn_output(a, on_conn, NULL);
        struct err e = ERR_INIT;
        char *args[] = {"true", NULL};
        (void)vm_agent_wait_async(a, "c1", on_reply, NULL, &e);
        err_clear(&e);
        (void)vm_agent_exec_async(a, "c1", args, 1000, on_reply, NULL, &e);
        err_clear(&e);
        (void)vm_agent_portforward_async(a, 7, 80, 1 << 20, on_reply, NULL, &e);
        err_clear(&e);
        (void)vm_agent_exec_stream_async(a, "c1", "x1", args, &(struct vm_stream_opts){.window = 1 << 20},
                                         on_reply, NULL, &e);
        err_clear(&e);
        if (size && write(sv[1], data, size) != (ssize_t)size)
                abort();
        shutdown(sv[1], SHUT_WR);
        struct vm_agent_info info = {0};
        if (vm_agent_ping(a, -1, &info, &e) == 0) {
                touch(info.agent_version, strlen(info.agent_version));
                vm_agent_info_clear(&info);
        }
        err_clear(&e);
        for (int i = 0; i < 64 && vm_agent_dispatch(a, &e) == 0; i++)
                err_clear(&e);
        err_clear(&e);
        vm_agent_free(a);
        close(sv[1]);
        return 0;
}
