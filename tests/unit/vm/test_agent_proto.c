/* The agent protocol without a VM: corral-agent's serve loop in a child
 * process over a socketpair, driven by the host client and by raw bytes.
 * Malformed frames get an error reply and the stream goes on. */
#include <sys/socket.h>
#include <sys/wait.h>

#include "vm/agent/agent-internal.h"
#include "vmtest.h"

static pid_t start_agent(int *host_fd)
{
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        pid_t pid = fork();
        if (pid == 0) {
                close(sv[0]);
                _exit(agent_serve(sv[1], false, false) < 0 ? 1 : 0);
        }
        close(sv[1]);
        *host_fd = sv[0];
        return pid;
}

static void write_raw(int fd, const void *p, size_t n)
{
        (void)!write(fd, p, n);
}

int main(void)
{
        int fd;
        pid_t pid = start_agent(&fd);
        struct vm_agent *a = vm_agent_from_fd(fd);

        struct vm_agent_info info = {0};
        CHECK_OK(vm_agent_ping(a, 5000, &info, e));
        CHECK(info.kernel_release && *info.kernel_release);
        vm_agent_info_clear(&info);

        /* exec in the "guest" (here: the host), exit codes and output */
        char *out = NULL, *err = NULL;
        int code = -1;
        char *sh3[] = {"/bin/sh", "-c", "echo out; echo err >&2; exit 3", NULL};
        CHECK_OK(vm_agent_exec(a, NULL, sh3, 5000, &out, &err, &code, e));
        CHECK(code == 3);
        CHECK_STR(out, "out\n");
        CHECK_STR(err, "err\n");
        free(out);
        free(err);

        char *missing[] = {"/nonexistent/binary", NULL};
        struct err e1 = ERR_INIT;
        CHECK(vm_agent_exec(a, NULL, missing, 5000, NULL, NULL, &code, &e1) < 0);
        CHECK(e1.msg && strstr(e1.msg, "/nonexistent/binary"));
        err_clear(&e1);

        /* exec timeout: killed in the guest, ERR_DEADLINE here */
        char *slp[] = {"/bin/sleep", "10", NULL};
        int64_t t0 = time_mono_ns();
        CHECK(vm_agent_exec(a, NULL, slp, 300, NULL, NULL, &code, &e1) < 0);
        CHECK(err_is(&e1, ERR_DEADLINE));
        CHECK(time_mono_ns() - t0 < 3000000000LL);
        CHECK(code == 128 + SIGKILL);
        err_clear(&e1);

        /* unknown container */
        CHECK(vm_agent_start_container(a, "nope", 2000, &e1) < 0);
        CHECK(err_is(&e1, ERR_NOT_FOUND));
        err_clear(&e1);
        CHECK(vm_agent_create_container(a, "../x", "{}", NULL, 2000, &e1) < 0);
        CHECK(err_is(&e1, ERR_INVALID));
        err_clear(&e1);
        CHECK(vm_agent_create_container(a, "c1", "{not json", NULL, 2000, &e1) < 0);
        CHECK(err_is(&e1, ERR_INVALID));
        err_clear(&e1);

        /* Malformed frames, raw: a payload that does not unpack, then an
         * oversized length. Each gets an error reply (id 0); pings still work. */
        static const unsigned char junk[] = {0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff};
        write_raw(fd, junk, sizeof(junk));
        CHECK(vm_agent_ping(a, 5000, NULL, &e1) < 0); /* the client sees the id-0 rejection */
        CHECK(e1.msg && strstr(e1.msg, "rejected"));
        err_clear(&e1);
        CHECK_OK(vm_agent_ping(a, 5000, NULL, e));
        static const unsigned char huge[] = {0x7f, 0xff, 0xff, 0xff, 1, 2, 3};
        write_raw(fd, huge, sizeof(huge));
        CHECK(vm_agent_ping(a, 5000, NULL, &e1) < 0);
        err_clear(&e1);
        CHECK_OK(vm_agent_ping(a, 5000, NULL, e));
        int st;
        CHECK(waitpid(pid, &st, WNOHANG) == 0); /* the agent is alive */

        /* The host side: a malformed frame from the "agent" is ERR_DATA_LOSS
         * and breaks the connection. */
        int sv[2];
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
        struct vm_agent *b = vm_agent_from_fd(sv[0]);
        write_raw(sv[1], huge, sizeof(huge));
        CHECK(vm_agent_ping(b, 2000, NULL, &e1) < 0);
        CHECK(err_is(&e1, ERR_DATA_LOSS));
        fprintf(stderr, "malformed reply: %s\n", e1.msg);
        err_clear(&e1);
        CHECK(vm_agent_ping(b, 2000, NULL, &e1) < 0);
        CHECK(err_is(&e1, ERR_UNAVAILABLE));
        err_clear(&e1);
        vm_agent_free(b);
        close(sv[1]);

        /* Shutdown ends the loop. */
        CHECK_OK(vm_agent_shutdown(a, 5000, e));
        CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st));
        vm_agent_free(a);
        return check_report("test_vm_agent_proto");
}
