/* The attach clients' output queue (shim/outq.c) on a real SOCK_SEQPACKET
 * socketpair: sent at once, queued in order behind a full socket, the cap,
 * flush, a broken peer. Runs unprivileged. */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../check.h"
#include "shim/outq-internal.h"
#include "util/util.h"

static void pkt_fill(char *p, size_t n, unsigned seq)
{
        memset(p, (int)('a' + seq % 26), n);
        p[0] = (char)(seq & 0xff);
}

static void test_queue(void)
{
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
        int small = 4096;
        (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));

        struct shim_outq q;
        shim_outq_init(&q);
        CHECK(!shim_outq_pending(&q) && shim_outq_queued(&q) == 0);

        /* Send until the socket is full: the first that does not go is queued. */
        char p[1000];
        unsigned seq = 0;
        int r = 0;
        for (; seq < 10000; seq++) {
                pkt_fill(p, sizeof(p), seq);
                r = shim_outq_send(&q, sv[0], p, sizeof(p), 3 * sizeof(p));
                if (r != 0)
                        break;
        }
        CHECK(r == 1);
        CHECK(shim_outq_pending(&q) && shim_outq_queued(&q) == sizeof(p));
        unsigned first_queued = seq;
        /* Behind a queued packet nothing goes out at once, even if it fit. */
        pkt_fill(p, 10, ++seq);
        CHECK(shim_outq_send(&q, sv[0], p, 10, 3 * sizeof(p)) == 1);
        pkt_fill(p, sizeof(p), ++seq);
        CHECK(shim_outq_send(&q, sv[0], p, sizeof(p), 3 * sizeof(p)) == 1);
        CHECK(shim_outq_queued(&q) == 2 * sizeof(p) + 10);
        /* Past the cap: refused, nothing queued. */
        pkt_fill(p, sizeof(p), seq + 1);
        CHECK(shim_outq_send(&q, sv[0], p, sizeof(p), 3 * sizeof(p)) == -ENOBUFS);
        CHECK(shim_outq_queued(&q) == 2 * sizeof(p) + 10);
        /* The socket is still full: flush keeps everything. */
        CHECK(shim_outq_flush(&q, sv[0]) == 0);
        CHECK(shim_outq_queued(&q) == 2 * sizeof(p) + 10);

        /* Read everything: every packet whole and in order, the queued ones last. */
        unsigned want = 0;
        bool ok = true;
        for (;;) {
                char buf[2000];
                ssize_t n = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0 && errno == EAGAIN) {
                        CHECK(shim_outq_flush(&q, sv[0]) == 0);
                        if (!shim_outq_pending(&q)) {
                                n = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);
                                if (n < 0)
                                        break;
                        } else {
                                continue;
                        }
                }
                if (n <= 0) {
                        ok = false;
                        break;
                }
                size_t len = want == first_queued + 1 ? 10 : sizeof(p);
                if ((size_t)n != len || (unsigned char)buf[0] != (want & 0xff))
                        ok = false;
                want++;
        }
        CHECK(ok);
        CHECK(want == seq + 1);
        CHECK(!shim_outq_pending(&q) && shim_outq_queued(&q) == 0);

        /* A peer that is gone: an error, not a queue. */
        close(sv[1]);
        r = shim_outq_send(&q, sv[0], p, sizeof(p), 3 * sizeof(p));
        CHECK(r < 0 && r != -ENOBUFS);
        CHECK(!shim_outq_pending(&q));
        close(sv[0]);
        shim_outq_free(&q);
}

static void test_free_queued(void)
{
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
        struct shim_outq q;
        shim_outq_init(&q);
        char p[1000] = {0};
        while (shim_outq_send(&q, sv[0], p, sizeof(p), 1u << 20) == 0)
                ;
        CHECK(shim_outq_send(&q, sv[0], p, sizeof(p), 1u << 20) == 1);
        /* The peer left with packets queued: flush fails, free drops them. */
        close(sv[1]);
        CHECK(shim_outq_flush(&q, sv[0]) < 0);
        CHECK(shim_outq_pending(&q));
        shim_outq_free(&q);
        CHECK(!shim_outq_pending(&q) && shim_outq_queued(&q) == 0);
        close(sv[0]);
}

int main(void)
{
        test_queue();
        test_free_queued();
        return check_report("test_shim_outq");
}
