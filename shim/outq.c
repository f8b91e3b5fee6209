/* An attach client's output queue (outq-internal.h). Packets keep their
 * boundaries: a SOCK_SEQPACKET send takes a whole packet or none. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "shim/outq-internal.h"
#include "util/util.h"

struct shim_outq_pkt {
        struct shim_outq_pkt *next;
        size_t len;
        char data[];
};

void shim_outq_init(struct shim_outq *q)
{
        *q = (struct shim_outq){0};
}

void shim_outq_free(struct shim_outq *q)
{
        while (q->head) {
                struct shim_outq_pkt *p = q->head;
                q->head = p->next;
                free(p);
        }
        shim_outq_init(q);
}

static void enqueue(struct shim_outq *q, const void *data, size_t n)
{
        struct shim_outq_pkt *p = xmalloc(sizeof(*p) + n);
        p->next = NULL;
        p->len = n;
        memcpy(p->data, data, n);
        if (q->tail)
                q->tail->next = p;
        else
                q->head = p;
        q->tail = p;
        q->queued += n;
}

int shim_outq_send(struct shim_outq *q, int fd, const void *data, size_t n, size_t max)
{
        /* Behind queued packets a send now would reorder the output. */
        if (!q->head) {
                for (;;) {
                        ssize_t w = send(fd, data, n, MSG_DONTWAIT | MSG_NOSIGNAL);
                        if (w >= 0)
                                return 0;
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return -errno;
                        break;
                }
        }
        if (q->queued + n > max)
                return -ENOBUFS;
        enqueue(q, data, n);
        return 1;
}

int shim_outq_flush(struct shim_outq *q, int fd)
{
        while (q->head) {
                struct shim_outq_pkt *p = q->head;
                ssize_t w = send(fd, p->data, p->len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                q->head = p->next;
                if (!q->head)
                        q->tail = NULL;
                q->queued -= p->len;
                free(p);
        }
        return 0;
}

size_t shim_outq_queued(const struct shim_outq *q)
{
        return q->queued;
}

bool shim_outq_pending(const struct shim_outq *q)
{
        return q->head != NULL;
}
