/* corral-agent: the host connection (transport.c), kept apart from the
 * protocol loop (serve*.c). */
#ifndef CORRAL_VM_AGENT_TRANSPORT_INTERNAL_H
#define CORRAL_VM_AGENT_TRANSPORT_INTERNAL_H

#include <stdbool.h>

struct err;

struct agent_transport {
        const char *kind; /* "virtio-serial" or "vsock", once open */
        bool reconnect;   /* virtio-serial: EOF means the host is away for now */
        int listen_fd;    /* vsock listener, -1: none; start with -1 */
};

/* The first of: the virtio-serial port AGENT_PORT_NAME, or a connection on
 * vsock port VM_AGENT_VSOCK_PORT (listened on once a virtio vsock device
 * exists), within timeout_ms. Returns the stream fd. */
int agent_transport_open(struct agent_transport *t, int timeout_ms, struct err *e);
/* vsock: the next connection (blocking). */
int agent_transport_accept(struct agent_transport *t, struct err *e);
void agent_transport_close(struct agent_transport *t);

/* init.c: one look for the virtio-serial port `name`; its fd or -1. */
int agent_find_port(const char *name);

#endif
