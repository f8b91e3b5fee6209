/* The agent protocol without a VM: corral-agent's serve loop in a child
 * process over a socketpair, driven by the host client and by raw bytes.
 * Malformed frames get an error reply and the stream goes on. */
#include <netinet/in.h>
#include <poll.h>
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

/* ---------- port-forward ---------- */

struct pf_seen {
        int replied, error_kind;
        char error[256];
        char data[256];
        size_t len;
        bool eof, reset;
};

static void pf_reply(void *arg, const struct vm_agent_reply *r)
{
        struct pf_seen *s = arg;
        s->replied = 1;
        s->error_kind = r->error_kind;
        snprintf(s->error, sizeof(s->error), "%s", r->error ? r->error : "");
}

static void pf_data(void *arg, uint64_t id, const void *d, size_t n, bool eof, bool reset)
{
        struct pf_seen *s = arg;
        (void)id;
        if (n && s->len + n < sizeof(s->data)) {
                memcpy(s->data + s->len, d, n);
                s->len += n;
        }
        s->eof |= eof;
        s->reset |= reset;
}

/* Dispatch agent frames until *flag or 5 s. */
static void pump(struct vm_agent *a, const volatile bool *flag, const volatile int *iflag)
{
        int64_t end = time_mono_ns() + 5000000000LL;
        while (!(flag && *flag) && !(iflag && *iflag) && time_mono_ns() < end) {
                struct pollfd p = {.fd = vm_agent_fd(a), .events = POLLIN};
                if (poll(&p, 1, 100) > 0) {
                        cleanup_err struct err e = ERR_INIT;
                        if (vm_agent_dispatch(a, &e) < 0)
                                return;
                }
        }
}

static void test_port_forward(struct vm_agent *a)
{
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof(sa);
        CHECK(bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(l, 4) == 0);
        CHECK(getsockname(l, (struct sockaddr *)&sa, &sl) == 0);
        uint16_t port = ntohs(sa.sin_port);
        struct pf_seen s = {0};
        vm_agent_set_conn_output(a, pf_data, &s);
        CHECK_OK(vm_agent_portforward_async(a, 7, port, 0, pf_reply, &s, e));
        pump(a, NULL, &s.replied);
        CHECK(s.replied && s.error_kind == 0);
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        CHECK(c >= 0);
        /* host -> guest */
        CHECK_OK(vm_agent_conn_send(a, 7, "hello", 5, false, false, e));
        char buf[64] = {0};
        CHECK(read(c, buf, sizeof(buf)) == 5 && memcmp(buf, "hello", 5) == 0);
        /* guest -> host, and the guest's half-close */
        CHECK(write(c, "world", 5) == 5);
        shutdown(c, SHUT_WR);
        pump(a, &s.eof, NULL);
        CHECK(s.len == 5 && memcmp(s.data, "world", 5) == 0 && s.eof && !s.reset);
        /* the host's half-close: EOF in the guest */
        CHECK_OK(vm_agent_conn_send(a, 7, NULL, 0, true, false, e));
        CHECK(read(c, buf, sizeof(buf)) == 0);
        close(c);
        /* nothing listens: the connect error comes back */
        close(l);
        struct pf_seen s2 = {0};
        CHECK_OK(vm_agent_portforward_async(a, 8, port, 0, pf_reply, &s2, e));
        pump(a, NULL, &s2.replied);
        CHECK(s2.replied && s2.error_kind != 0 && strstr(s2.error, "connect"));
        fprintf(stderr, "closed port: %s\n", s2.error);
        /* a reset of an unknown connection is ignored */
        CHECK_OK(vm_agent_conn_send(a, 99, NULL, 0, false, true, e));
        vm_agent_set_conn_output(a, NULL, NULL);
}

/* ---------- interactive exec ---------- */

struct ex_seen {
        int replied, error_kind, exit_code, got_out;
        char error[256];
        char out[256], err[256];
        size_t out_len, err_len;
        bool out_eof, err_eof;
        size_t out_at_reply; /* output seen when the reply came: all of it */
};

static void ex_reply(void *arg, const struct vm_agent_reply *r)
{
        struct ex_seen *s = arg;
        s->replied = 1;
        s->error_kind = r->error_kind;
        s->exit_code = r->exit_code;
        s->out_at_reply = s->out_len + s->err_len;
        snprintf(s->error, sizeof(s->error), "%s", r->error ? r->error : "");
}

static void ex_data(void *arg, const char *cid, const char *eid, int stream, const void *d, size_t n,
                    bool eof)
{
        struct ex_seen *s = arg;
        if (strcmp(cid, "") || strcmp(eid, "e1"))
                return;
        char *buf = stream == 1 ? s->out : s->err;
        size_t *len = stream == 1 ? &s->out_len : &s->err_len;
        if (n && *len + n < sizeof(s->out)) {
                memcpy(buf + *len, d, n);
                *len += n;
                s->got_out = 1;
        }
        if (eof)
                *(stream == 1 ? &s->out_eof : &s->err_eof) = true;
}

static void test_exec_stream(struct vm_agent *a)
{
        struct ex_seen s = {0};
        vm_agent_set_output(a, ex_data, &s);
        char *cat[] = {"/bin/sh", "-c", "cat; echo err >&2; exit 3", NULL};
        CHECK_OK(vm_agent_exec_stream_async(a, NULL, "e1", cat, NULL, ex_reply, &s, e));
        CHECK_OK(vm_agent_exec_send(a, NULL, "e1", "hello ", 6, false, false, e));
        CHECK_OK(vm_agent_exec_send(a, NULL, "e1", "world", 5, false, false, e));
        pump(a, NULL, &s.got_out); /* cat echoes while stdin is open */
        CHECK(!s.replied && s.out_len > 0);
        CHECK_OK(vm_agent_exec_send(a, NULL, "e1", NULL, 0, true, false, e));
        pump(a, NULL, &s.replied);
        CHECK(s.replied && s.error_kind == 0 && s.exit_code == 3);
        CHECK(s.out_len == 11 && memcmp(s.out, "hello world", 11) == 0);
        CHECK(s.err_len == 4 && memcmp(s.err, "err\n", 4) == 0);
        CHECK(s.out_at_reply == 15 && s.out_eof && s.err_eof);

        /* the host goes away: the process is killed, the reply still comes */
        struct ex_seen k = {0};
        vm_agent_set_output(a, ex_data, &k);
        char *slp[] = {"/bin/sleep", "30", NULL};
        int64_t t0 = time_mono_ns();
        CHECK_OK(vm_agent_exec_stream_async(a, NULL, "e1", slp, NULL, ex_reply, &k, e));
        CHECK_OK(vm_agent_exec_send(a, NULL, "e1", NULL, 0, false, true, e));
        pump(a, NULL, &k.replied);
        CHECK(k.replied && k.exit_code == 128 + SIGKILL);
        CHECK(time_mono_ns() - t0 < 3000000000LL);

        /* a command that cannot start: the reply's error */
        struct ex_seen m = {0};
        char *missing[] = {"/nonexistent/binary", NULL};
        CHECK_OK(vm_agent_exec_stream_async(a, NULL, "e2", missing, NULL, ex_reply, &m, e));
        pump(a, NULL, &m.replied);
        CHECK(m.replied && m.error_kind != 0 && strstr(m.error, "/nonexistent/binary"));
        /* no exec id: refused */
        struct ex_seen n = {0};
        CHECK_OK(vm_agent_exec_stream_async(a, NULL, "", cat, NULL, ex_reply, &n, e));
        pump(a, NULL, &n.replied);
        CHECK(n.replied && n.error_kind == ERR_INVALID);
        /* stdin for an unknown exec is ignored */
        CHECK_OK(vm_agent_exec_send(a, NULL, "nope", "x", 1, true, false, e));
        vm_agent_set_output(a, NULL, NULL);
}

/* ---------- tty exec, flow control ---------- */

static void test_exec_tty(struct vm_agent *a)
{
        struct ex_seen s = {0};
        vm_agent_set_output(a, ex_data, &s);
        char *sh[] = {"/bin/sh", "-c", "tty; read x; stty size; exit 4", NULL};
        struct vm_stream_opts o = {.tty = true, .rows = 10, .cols = 20, .window = 1 << 20};
        CHECK_OK(vm_agent_exec_stream_async(a, NULL, "e1", sh, &o, ex_reply, &s, e));
        pump(a, NULL, &s.got_out); /* tty's answer */
        CHECK_OK(vm_agent_resize(a, NULL, "e1", 45, 123, e));
        CHECK_OK(vm_agent_exec_send(a, NULL, "e1", "go\n", 3, false, false, e));
        pump(a, NULL, &s.replied);
        s.out[s.out_len < sizeof(s.out) ? s.out_len : sizeof(s.out) - 1] = '\0';
        CHECK(s.replied && s.error_kind == 0 && s.exit_code == 4);
        CHECK(strstr(s.out, "/dev/pts/") != NULL);
        CHECK(strstr(s.out, "45 123") != NULL);
        CHECK(s.err_len == 0 && s.out_eof); /* a terminal has one output */
        vm_agent_set_output(a, NULL, NULL);
}

struct fc_seen {
        int replied;
        int exit_code;
        size_t got;
        uint64_t credit; /* the agent's, for our stdin */
};

static void fc_reply(void *arg, const struct vm_agent_reply *r)
{
        struct fc_seen *s = arg;
        s->replied = 1;
        s->exit_code = r->exit_code;
}

static void fc_data(void *arg, const char *cid, const char *eid, int stream, const void *d, size_t n,
                    bool eof)
{
        (void)cid, (void)eid, (void)stream, (void)d, (void)eof;
        ((struct fc_seen *)arg)->got += n;
}

static void fc_credit(void *arg, const char *cid, const char *eid, uint64_t conn, uint64_t credit)
{
        (void)cid, (void)eid, (void)conn;
        ((struct fc_seen *)arg)->credit += credit;
}

static void pump_ms(struct vm_agent *a, int ms)
{
        int64_t end = time_mono_ns() + (int64_t)ms * 1000000;
        while (time_mono_ns() < end) {
                struct pollfd p = {.fd = vm_agent_fd(a), .events = POLLIN};
                if (poll(&p, 1, 20) > 0) {
                        cleanup_err struct err de = ERR_INIT;
                        if (vm_agent_dispatch(a, &de) < 0)
                                return;
                }
        }
}

static void test_exec_window(struct vm_agent *a)
{
        /* Output: no more than the window until we credit; nothing lost. */
        struct fc_seen s = {0};
        vm_agent_set_output(a, fc_data, &s);
        vm_agent_set_credit(a, fc_credit, &s);
        char *gen[] = {"/bin/sh", "-c", "head -c 1000000 /dev/zero", NULL};
        struct vm_stream_opts o = {.window = 65536};
        CHECK_OK(vm_agent_exec_stream_async(a, NULL, "e1", gen, &o, fc_reply, &s, e));
        CHECK_OK(vm_agent_exec_send(a, NULL, "e1", NULL, 0, true, false, e));
        int64_t full = time_mono_ns() + 5000000000LL;
        while (s.got < 65536 && time_mono_ns() < full)
                pump_ms(a, 20);
        pump_ms(a, 300); /* and no more comes without credit */
        CHECK(s.got == 65536 && !s.replied);
        size_t credited = 0;
        int64_t end = time_mono_ns() + 10000000000LL;
        while (!s.replied && time_mono_ns() < end) {
                if (s.got > credited) {
                        CHECK_OK(vm_agent_credit(a, NULL, "e1", 0, s.got - credited, e));
                        credited = s.got;
                }
                pump_ms(a, 5);
                CHECK(s.got - credited <= 65536);
        }
        CHECK(s.replied && s.exit_code == 0 && s.got == 1000000);

        /* Stdin: the agent credits what the process took. */
        struct fc_seen in = {0};
        vm_agent_set_output(a, fc_data, &in);
        vm_agent_set_credit(a, fc_credit, &in);
        char *sink[] = {"/bin/sh", "-c", "cat >/dev/null", NULL};
        o.window = 8192;
        CHECK_OK(vm_agent_exec_stream_async(a, NULL, "e1", sink, &o, fc_reply, &in, e));
        static char zeros[8192];
        CHECK_OK(vm_agent_exec_send(a, NULL, "e1", zeros, sizeof(zeros), false, false, e));
        end = time_mono_ns() + 5000000000LL;
        while (in.credit < sizeof(zeros) && time_mono_ns() < end)
                pump_ms(a, 10);
        CHECK(in.credit == sizeof(zeros));
        CHECK_OK(vm_agent_exec_send(a, NULL, "e1", NULL, 0, true, false, e));
        pump(a, NULL, &in.replied);
        CHECK(in.replied && in.exit_code == 0);

        /* A process that closed its stdin: what comes is dropped, and credited. */
        struct fc_seen cl = {0};
        vm_agent_set_output(a, fc_data, &cl);
        vm_agent_set_credit(a, fc_credit, &cl);
        char *closer[] = {"/bin/sh", "-c", "exec 0<&-; sleep 2", NULL};
        CHECK_OK(vm_agent_exec_stream_async(a, NULL, "e1", closer, &o, fc_reply, &cl, e));
        pump_ms(a, 300);
        for (int i = 0; i < 3; i++)
                CHECK_OK(vm_agent_exec_send(a, NULL, "e1", zeros, sizeof(zeros), false, false, e));
        end = time_mono_ns() + 5000000000LL;
        while (cl.credit < 3 * sizeof(zeros) && time_mono_ns() < end)
                pump_ms(a, 10);
        CHECK(cl.credit == 3 * sizeof(zeros));
        pump(a, NULL, &cl.replied);
        CHECK(cl.replied && cl.exit_code == 0);
        vm_agent_set_output(a, NULL, NULL);
        vm_agent_set_credit(a, NULL, NULL);
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
        CHECK(vm_agent_start_container(a, "nope", 2000, NULL, &e1) < 0);
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

        test_port_forward(a);
        CHECK_OK(vm_agent_ping(a, 5000, NULL, e));
        test_exec_stream(a);
        test_exec_tty(a);
        test_exec_window(a);
        test_exec_window(a);
        CHECK_OK(vm_agent_ping(a, 5000, NULL, e));

        /* Shutdown ends the loop. */
        CHECK_OK(vm_agent_shutdown(a, 5000, e));
        CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st));
        vm_agent_free(a);
        return check_report("test_vm_agent_proto");
}
