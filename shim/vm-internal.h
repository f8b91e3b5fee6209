/* The per-VM shim (corral-shim vm), private: vm_server.c (event loop,
 * sockets, the VM, container life) and vm_rootfs.c (a container's files on
 * the host, its spec in the guest's view). */
#ifndef CORRAL_SHIM_VM_INTERNAL_H
#define CORRAL_SHIM_VM_INTERNAL_H

#include "util/util.h"

struct rt_spec;
struct vm_agent;

/* What an epoll event of the VM shim points at. */
enum wkind { W_SIG, W_LISTEN, W_CONN, W_AGENT, W_VMM, W_PF_LISTEN, W_PF_CONN };

struct vwatch {
        int fd;
        enum wkind kind;
        void *owner;
};

/* Port-forward (vm_pf.c): the shim listens on <vm state>/pf.sock; a client
 * (corrald, shim_vm_portforward) writes the port as 2 bytes big-endian and
 * reads one status byte: 0, then the connection's bytes both ways, or 1
 * followed by the error text and EOF. Each connection is relayed to the
 * agent (PortForwardRequest, StreamData with conn_id). */
#define SHIM_VM_PF_SOCKET "pf.sock"
struct vm_pf;
/* Listen and register with epoll `ep`; *agent is read on each use (NULL:
 * the VM is gone). */
int vm_pf_start(int ep, const char *state_dir, struct vm_agent *const *agent, struct vm_pf **out,
                struct err *e);
/* An event on a W_PF_LISTEN / W_PF_CONN watch. */
void vm_pf_event(struct vm_pf *p, struct vwatch *w, uint32_t events);
/* The agent's bytes for a connection (the vm_conn_fn). */
void vm_pf_on_agent(void *arg, uint64_t conn_id, const void *data, size_t len, bool eof, bool reset);
/* The agent connection is gone: end every connection. */
void vm_pf_agent_gone(struct vm_pf *p);
/* Close everything, remove the socket. NULL ok. */
void vm_pf_free(struct vm_pf *p);

/* One container's files under the VM share. */
struct vm_ctr_files {
        const char *id;
        const char *tag; /* the share's tag */
        char *dir;       /* <vm state>/share/<id> */
        char **mounts;   /* host mount points made, in order */
};

/* Mount the rootfs and bind sources under f->dir and rewrite `s` for the
 * guest. On failure what was mounted stays listed: call the undo. */
int vm_ctr_files_prepare(struct vm_ctr_files *f, struct rt_spec *s, struct err *e);
/* Detach every mount made and remove the mount points and f->dir. */
void vm_ctr_files_undo(struct vm_ctr_files *f);

#endif
