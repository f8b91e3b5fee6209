/* The host side of the agent protocol against a scripted peer that sends
 * bytes exactly as this test wants them to arrive: replies that share one
 * read must all be delivered, even when no more bytes follow. */
#include <sys/socket.h>
#include <sys/wait.h>

#include "check.h"
#include "util/util.h"
#include "vm/frame-internal.h"
#include "vm/vm.h"

/* Append one length-prefixed frame to b. */
static void put_frame(struct sbuf *b, const AgFrame *f)
{
        size_t n = corral__agent__v1__frame__get_packed_size(f);
        uint8_t *p = xmalloc(n + 4);
        p[0] = (uint8_t)(n >> 24), p[1] = (uint8_t)(n >> 16), p[2] = (uint8_t)(n >> 8), p[3] = (uint8_t)n;
        corral__agent__v1__frame__pack(f, p + 4);
        sbuf_append(b, (const char *)p, n + 4);
        free(p);
}

/* The peer: read a Wait and a Signal request, then answer the Signal and
 * the Wait in a single write, as an agent does when the signal it just
 * delivered kills the container at once. */
static int peer(int fd)
{
        struct frame_reader rd = {0};
        uint64_t wait_id = 0, signal_id = 0;
        cleanup_err struct err e = ERR_INIT;
        while (!wait_id || !signal_id) {
                AgFrame *f = NULL;
                int r = frame_reader_next(&rd, &f, &e);
                if (r < 0)
                        return 1;
                if (r == 0) {
                        if (frame_reader_fill(&rd, fd, &e) <= 0)
                                return 1;
                        continue;
                }
                if (f->kind_case == CORRAL__AGENT__V1__FRAME__KIND_REQUEST) {
                        if (f->request->body_case == CORRAL__AGENT__V1__REQUEST__BODY_WAIT)
                                wait_id = f->request->id;
                        else if (f->request->body_case == CORRAL__AGENT__V1__REQUEST__BODY_SIGNAL)
                                signal_id = f->request->id;
                }
                frame_free(f);
        }
        frame_reader_free(&rd);
        struct sbuf b = {0};
        AgResponse sr = CORRAL__AGENT__V1__RESPONSE__INIT;
        sr.id = signal_id;
        AgFrame sf = CORRAL__AGENT__V1__FRAME__INIT;
        sf.kind_case = CORRAL__AGENT__V1__FRAME__KIND_RESPONSE;
        sf.response = &sr;
        put_frame(&b, &sf);
        Corral__Agent__V1__WaitResponse w = CORRAL__AGENT__V1__WAIT_RESPONSE__INIT;
        w.exit_code = 137;
        w.signal = 9;
        AgResponse wr = CORRAL__AGENT__V1__RESPONSE__INIT;
        wr.id = wait_id;
        wr.body_case = CORRAL__AGENT__V1__RESPONSE__BODY_WAIT;
        wr.wait = &w;
        AgFrame wf = CORRAL__AGENT__V1__FRAME__INIT;
        wf.kind_case = CORRAL__AGENT__V1__FRAME__KIND_RESPONSE;
        wf.response = &wr;
        put_frame(&b, &wf);
        if (write(fd, b.buf, b.len) != (ssize_t)b.len)
                return 1;
        sbuf_free(&b);
        /* Stay connected (no EOF to wake the host) until it hangs up. */
        char c;
        (void)!read(fd, &c, 1);
        return 0;
}

struct seen {
        int replied, exit_code, signal;
};

static void on_wait(void *arg, const struct vm_agent_reply *r)
{
        struct seen *s = arg;
        s->replied++;
        s->exit_code = r->exit_code;
        s->signal = r->signal;
}

int main(void)
{
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        pid_t pid = fork();
        if (pid == 0) {
                close(sv[0]);
                _exit(peer(sv[1]));
        }
        close(sv[1]);
        struct vm_agent *a = vm_agent_from_fd(sv[0]);
        cleanup_err struct err e = ERR_INIT;
        struct seen s = {0};
        CHECK(vm_agent_wait_async(a, "c1", on_wait, &s, &e) == 0);
        CHECK(vm_agent_signal(a, "c1", 9, 5000, &e) == 0);
        /* The Wait reply came in the same read as the Signal reply: it is
         * delivered now, not when (if ever) the fd is readable again. */
        CHECK(s.replied == 1 && s.exit_code == 137 && s.signal == 9);
        vm_agent_free(a);
        int st = 0;
        CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
        return check_report("test_vm_agent_client");
}
