/* The per-VM shim (corral-shim vm), private: vm_server.c (event loop,
 * sockets, the VM, container life) and vm_rootfs.c (a container's files on
 * the host, its spec in the guest's view). */
#ifndef CORRAL_SHIM_VM_INTERNAL_H
#define CORRAL_SHIM_VM_INTERNAL_H

#include "util/util.h"

struct rt_spec;
struct vm_agent;

/* What an epoll event of the VM shim points at. */
enum wkind {
        W_SIG,
        W_LISTEN,
        W_CONN,
        W_AGENT,
        W_VMM,
        W_PF_LISTEN,
        W_PF_CONN,
        W_EXEC_LISTEN,
        W_EXEC_CONN,
        W_ATTACH_LISTEN,
        W_ATTACH_CONN,
};

struct vwatch {
        int fd;
        enum wkind kind;
        void *owner;
};

/* A SOCK_STREAM listening socket <dir>/<name> watched (EPOLLIN) as w on ep
 * (vm_server.c). On error w->fd stays -1. */
int vm_watch_listen(int ep, const char *dir, const char *name, struct vwatch *w, struct err *e);
/* Set w's events on ep. *cur is what is registered: an unchanged set
 * costs no system call (the connections recompute theirs on every event). */
void vm_watch_mod(int ep, struct vwatch *w, uint32_t *cur, uint32_t events);

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
/* The guest's credit for a connection's bytes (StreamData.credit). */
void vm_pf_on_credit(struct vm_pf *p, uint64_t conn_id, uint64_t credit);
/* The agent connection is gone: end every connection. */
void vm_pf_agent_gone(struct vm_pf *p);
/* Close everything, remove the socket. NULL ok. */
void vm_pf_free(struct vm_pf *p);

/* Interactive exec (vm_exec.c): the shim listens on <vm state>/exec.sock.
 * A client (corrald, shim_vm_exec_connect) writes a 4-byte big-endian
 * length and that many bytes: a flags byte (SHIM_VM_EXEC_TTY: a pty in the
 * guest, output as STDOUT only), the container id and then each argument,
 * each NUL-terminated. Then frames both ways, a type byte, a 4-byte
 * big-endian length and the payload:
 *   client -> shim  STDIN (bytes), STDIN_EOF (close the process's stdin;
 *                   ^D on a tty), RESIZE (rows, cols: 2 bytes big-endian
 *                   each)
 *   shim -> client  STDOUT, STDERR (bytes), then one EXIT (4-byte
 *                   big-endian exit code, 128+signal when killed) or ERROR
 *                   (the reason: it could not start, or the VM is gone);
 *                   the shim closes after it.
 * The client closing the connection early kills the process. Relayed to
 * the agent as an interactive ExecRequest and StreamData named by
 * (container id, exec id), with a flow-control window each way: the shim
 * stops reading the client while the process does not read its stdin,
 * and the guest stops reading the process's output while the client does
 * not read it. */
#define SHIM_VM_EXEC_SOCKET "exec.sock"
enum {
        SHIM_VM_EXEC_STDIN = 0,
        SHIM_VM_EXEC_STDOUT = 1, /* = the agent's StreamKind */
        SHIM_VM_EXEC_STDERR = 2,
        SHIM_VM_EXEC_STDIN_EOF = 3,
        SHIM_VM_EXEC_EXIT = 4,
        SHIM_VM_EXEC_ERROR = 5,
        SHIM_VM_EXEC_RESIZE = 6,
};
#define SHIM_VM_EXEC_TTY 0x01 /* request flags */
struct vm_exec;
int vm_exec_start(int ep, const char *state_dir, struct vm_agent *const *agent, struct vm_exec **out,
                  struct err *e);
/* An event on a W_EXEC_LISTEN / W_EXEC_CONN watch. */
void vm_exec_event(struct vm_exec *x, struct vwatch *w, uint32_t events);
/* Output of an exec from the agent (StreamData with an exec id). */
void vm_exec_on_agent(struct vm_exec *x, const char *cid, const char *eid, int stream, const void *data,
                      size_t len, bool eof);
/* The guest's credit for an exec's stdin (StreamData.credit). */
void vm_exec_on_credit(struct vm_exec *x, const char *cid, const char *eid, uint64_t credit);
/* The agent connection is gone: every exec ends with an error. */
void vm_exec_agent_gone(struct vm_exec *x);
/* Close everything, remove the socket. NULL ok. */
void vm_exec_free(struct vm_exec *x);

/* Attach (vm_attach.c): <container state>/attach with the container
 * shim's framing (shim.h), served for each container of the VM: its
 * main-process output to every client, stdin to the agent (exec_id ""),
 * resizes for a tty. */
struct vm_attach;
struct vm_attach_opts {
        bool stdin_open; /* the container has a stdin (CRI stdin) */
        bool stdin_once; /* it closes when the first client that wrote to it detaches */
        bool tty;
};
/* The flow-control window of a container's stdin in the guest. */
#define SHIM_VM_STDIN_WINDOW (256u << 10)
int vm_attach_start(int ep, const char *state_dir, const char *cid, struct vm_agent *const *agent,
                    const struct vm_attach_opts *o, struct vm_attach **out, struct err *e);
/* An event on a W_ATTACH_LISTEN / W_ATTACH_CONN watch (owner: its object). */
void vm_attach_event(struct vwatch *w, uint32_t events);
/* Main-process output (stream SHIM_ATTACH_STDOUT/STDERR) to every client;
 * one that cannot keep up is dropped. NULL ok. */
void vm_attach_output(struct vm_attach *t, int stream, const void *data, size_t len);
/* The guest's credit for the container's stdin. NULL ok. */
void vm_attach_on_credit(struct vm_attach *t, uint64_t credit);
/* The container ended: clients get the exit packet and are closed. NULL ok. */
void vm_attach_exit(struct vm_attach *t, int exit_code);
/* Close the clients and the socket, remove it. NULL ok. */
void vm_attach_free(struct vm_attach *t);

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
