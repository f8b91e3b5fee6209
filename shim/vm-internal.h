/* The per-VM shim (corral-shim vm), private: vm_server.c (event loop,
 * sockets, the VM, container life) and vm_rootfs.c (a container's files on
 * the host, its spec in the guest's view). */
#ifndef CORRAL_SHIM_VM_INTERNAL_H
#define CORRAL_SHIM_VM_INTERNAL_H

#include "util/util.h"

struct rt_spec;
struct vm_agent;

/* What an epoll event of the VM shim points at. */
enum wkind { W_SIG, W_LISTEN, W_CONN, W_AGENT, W_VMM, W_PF_LISTEN, W_PF_CONN, W_EXEC_LISTEN, W_EXEC_CONN };

struct vwatch {
        int fd;
        enum wkind kind;
        void *owner;
};

/* A SOCK_STREAM listening socket <dir>/<name> watched (EPOLLIN) as w on ep
 * (vm_server.c). On error w->fd stays -1. */
int vm_watch_listen(int ep, const char *dir, const char *name, struct vwatch *w, struct err *e);

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

/* Interactive exec (vm_exec.c): the shim listens on <vm state>/exec.sock.
 * A client (corrald, shim_vm_exec_connect) writes a 4-byte big-endian
 * length and that many bytes: the container id and then each argument,
 * each NUL-terminated. Then frames both ways, a type byte, a 4-byte
 * big-endian length and the payload:
 *   client -> shim  STDIN (bytes), STDIN_EOF (close the process's stdin)
 *   shim -> client  STDOUT, STDERR (bytes), then one EXIT (4-byte
 *                   big-endian exit code, 128+signal when killed) or ERROR
 *                   (the reason: it could not start, or the VM is gone);
 *                   the shim closes after it.
 * The client closing the connection early kills the process. Relayed to
 * the agent as an interactive ExecRequest and StreamData named by
 * (container id, exec id). */
#define SHIM_VM_EXEC_SOCKET "exec.sock"
enum {
        SHIM_VM_EXEC_STDIN = 0,
        SHIM_VM_EXEC_STDOUT = 1, /* = the agent's StreamKind */
        SHIM_VM_EXEC_STDERR = 2,
        SHIM_VM_EXEC_STDIN_EOF = 3,
        SHIM_VM_EXEC_EXIT = 4,
        SHIM_VM_EXEC_ERROR = 5,
};
struct vm_exec;
int vm_exec_start(int ep, const char *state_dir, struct vm_agent *const *agent, struct vm_exec **out,
                  struct err *e);
/* An event on a W_EXEC_LISTEN / W_EXEC_CONN watch. */
void vm_exec_event(struct vm_exec *x, struct vwatch *w, uint32_t events);
/* Output of an exec from the agent (StreamData with an exec id). */
void vm_exec_on_agent(struct vm_exec *x, const char *cid, const char *eid, int stream, const void *data,
                      size_t len, bool eof);
/* The agent connection is gone: every exec ends with an error. */
void vm_exec_agent_gone(struct vm_exec *x);
/* Close everything, remove the socket. NULL ok. */
void vm_exec_free(struct vm_exec *x);

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
