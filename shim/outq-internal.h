/* shim_outq: an attach client's output, packets sent to a non-blocking
 * SOCK_SEQPACKET socket at once or queued while it is full. Both shims'
 * attach clients (attach.c, vm_attach.c) use it: every client gets every
 * packet, and one that does not keep up is dropped once its queue passes a
 * cap, so a slow reader never stalls the container's log. Single-threaded:
 * the caller's epoll loop flushes on EPOLLOUT. */
#ifndef CORRAL_SHIM_OUTQ_INTERNAL_H
#define CORRAL_SHIM_OUTQ_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

/* What an attach client may have queued before it is dropped. */
#define SHIM_ATTACH_QUEUE_MAX (256u << 10)

struct shim_outq_pkt;

/* Owns its packets; the socket stays the caller's. Zeroed = empty. */
struct shim_outq {
        struct shim_outq_pkt *head, *tail;
        size_t queued; /* bytes in the queue */
};

void shim_outq_init(struct shim_outq *q);
/* Drops what is still queued. */
void shim_outq_free(struct shim_outq *q);
/* Send one packet now, or queue a copy behind what waits. 0: sent; 1:
 * queued (the caller watches EPOLLOUT); -ENOBUFS: the queue would pass
 * `max`; another negative errno: the socket is broken. On a negative
 * return nothing was queued and the caller drops the client. */
int shim_outq_send(struct shim_outq *q, int fd, const void *data, size_t n, size_t max);
/* Write queued packets until the socket is full. 0, or a negative errno
 * when the socket is broken (the caller drops the client). */
int shim_outq_flush(struct shim_outq *q, int fd);
size_t shim_outq_queued(const struct shim_outq *q);
/* Packets wait: the caller wants EPOLLOUT. */
bool shim_outq_pending(const struct shim_outq *q);

#endif
