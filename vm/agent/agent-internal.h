/* corral-agent: pid 1 of a corral microVM. */
#ifndef CORRAL_VM_AGENT_INTERNAL_H
#define CORRAL_VM_AGENT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vm/frame-internal.h"

#define AGENT_PORT_NAME  "corral.agent"
#define AGENT_SHARES_DIR "/run/corral/shares"

/* pid 1 set-up (init.c): leave the initramfs for a tmpfs root (pivot_root
 * refuses rootfs), mount proc/sys/dev/cgroup2/tmp/run, load the modules
 * listed in /lib/modules/order, send the log to /dev/hvc0. */
int agent_init_system(struct err *e);
/* Load every module in `order_file` (names relative to its directory). */
int agent_load_modules(const char *order_file, struct err *e);
/* Find the virtio-serial port named `name` and open it (O_RDWR|O_NONBLOCK),
 * waiting up to timeout_ms for it to appear. */
int agent_open_port(const char *name, int timeout_ms, struct err *e);

/* netcfg.c: interface addresses, routes and MTU over rtnetlink. */
int agent_net_setup(const Corral__Agent__V1__SetupNetworkRequest *r, struct err *e);

/* serve.c: the protocol loop. With `reconnect`, EOF on fd means the host
 * went away for now (virtio-serial): wait and go on; otherwise (a socket in
 * tests) return 0. Only returns early after Shutdown (1). */
int agent_serve(int fd, bool reconnect, bool is_pid1);

/* ---------- the protocol loop's pieces (serve.c, exec.c, portfwd.c) ----------
 * Single-threaded: everything below runs on agent_serve's poll loop. */

struct pollfd;
struct agent;
struct rt_spec;
struct rt_container;
struct execp;  /* exec.c */
struct pfconn; /* portfwd.c */

/* Host -> guest bytes for a process's stdin (a pipe, or a pty master):
 * buffered until the fd takes them, credited back to the host as written
 * when the stream has a window (serve.c). */
struct agent_sink {
        int fd;          /* non-blocking; -1: closed */
        bool tty;        /* a pty: the host's eof writes ^D (VEOF), no half-close exists */
        bool eof;        /* the host said eof: close once buf is written */
        struct sbuf buf; /* not written yet, from off */
        size_t off;
        uint32_t window;   /* 0: no flow control */
        size_t uncredited; /* written, not yet credited */
};
/* Data and/or eof from the host, then agent_sink_flush. Without a window,
 * more than 16 MiB unread is refused (false: the caller ends the process). */
bool agent_sink_put(struct agent_sink *k, const void *data, size_t len, bool eof);
/* Write what the fd takes now; an fd whose reader is gone is closed and
 * the rest dropped (still credited: the host must not stall). */
void agent_sink_flush(struct agent_sink *k);
bool agent_sink_pending(const struct agent_sink *k); /* poll for POLLOUT */
void agent_sink_close(struct agent_sink *k);
/* Drop the written head b[0..*off) once it is worth a memmove. */
void agent_compact(struct sbuf *b, size_t *off);
/* Send a credit for the stream (cid, eid) or conn when enough bytes were
 * passed on (a quarter of the window, or all of it: never stalls). */
void agent_credit(struct agent *a, const char *cid, const char *eid, uint64_t conn, size_t *uncredited,
                  uint32_t window);

/* Containers, execs and connections each: at most this many at once. */
#define AGENT_MAX_WATCHED 1024

enum agent_ctr_state { CTR_CREATED, CTR_RUNNING, CTR_EXITED };

struct ctr {
        char *id;
        struct rt_spec *spec;
        struct rt_container *rc;
        pid_t pid;
        int out_fd, err_fd;   /* read ends of its stdout/stderr pipes (tty: the pty master, -1) */
        struct agent_sink in; /* CreateContainerRequest.stdin: its stdin (fd -1: none) */
        int pty;              /* tty: the pty master, for resizes; else -1 */
        enum agent_ctr_state state;
        int64_t started_ms; /* agent_now_ms() at StartContainer */
        int pending_sig;    /* for its pid 1 once it has a handler (ctrlife.c); 0: none */
        char *cgroup;       /* resolved, for its OOM kills; NULL: none */
        uint64_t oom_base;  /* OOM kills of the cgroup at create */
        bool oom_killed;    /* at exit: it saw one since */
        int status;
        int64_t finished_ns;
        uint64_t *waiters; /* request ids of pending Waits */
        size_t n_waiters;
};

struct agent {
        int fd;
        bool reconnect, is_pid1;
        bool host_away;
        int64_t away_until_ms;
        struct frame_reader rd;
        struct ctr **ctrs; /* owned */
        size_t n_ctrs;
        struct execp **execs; /* owned */
        size_t n_execs;
        struct pfconn **pfs; /* owned */
        size_t n_pfs;
        bool shutdown;
        pid_t pod_init; /* the pod's PID namespace's init (ctrlife.c); 0: none */
        /* Frames to the host not written yet: pid 1 never blocks on the
         * host (a host blocked writing to us while we block writing to it
         * would deadlock both); producers pause while this is long. */
        struct sbuf outq;
        size_t out_off;
};

/* serve.c: framing out to the host, queued and written as the stream
 * takes it (dropped while the host is away). */
int64_t agent_now_ms(void);
void agent_send_frame(struct agent *a, AgFrame *f);
/* Enough is queued for the host: read no more from output sources
 * (containers, execs, connections) until it drains. */
bool agent_host_busy(const struct agent *a);
void agent_reply(struct agent *a, AgResponse *r);
/* An empty Response, or one carrying e's kind and message when e is set. */
void agent_reply_err(struct agent *a, uint64_t id, const struct err *e);
void agent_send_stream(struct agent *a, const char *ctr, const char *exec, int kind, const void *data,
                       size_t n, bool eof);
int agent_exit_code(int status);                             /* 128+signal when killed */
struct ctr *agent_ctr_find(struct agent *a, const char *id); /* NULL: none (or id NULL) */
void agent_close_fd(int *fd);                                /* close if >= 0, set -1 */
/* A pipe whose read end p[0] is non-blocking; both cloexec. */
int agent_make_pipe(int p[2], struct err *e);

/* exec.c: ExecRequest (sync output, or interactive with streamed stdio).
 * The reply goes out once the process was reaped (agent_exec_done). */
void agent_exec_start(struct agent *a, uint64_t id, const Corral__Agent__V1__ExecRequest *r);
/* StreamData from the host named by (container_id, exec_id). */
void agent_exec_input(struct agent *a, const AgStream *s);
/* a->execs[i] was reaped with `status`: last output, reply, freed. */
void agent_exec_done(struct agent *a, size_t i, int status);
void agent_exec_free(struct execp *x);
/* Poll set: 3 entries per exec into pfd (returned count); lowers *timeout
 * to the nearest exec deadline. Then the events of that same set. */
size_t agent_exec_poll_fds(struct agent *a, struct pollfd *pfd, int64_t now, int *timeout);
void agent_exec_poll_events(struct agent *a, const struct pollfd *pfd, bool ready);
/* Shutdown: SIGKILL, reap and free every exec. */
void agent_exec_kill_all(struct agent *a);
/* The pid is an exec's: index into a->execs, or -1. */
ssize_t agent_exec_index(struct agent *a, pid_t pid);

/* ctrlife.c: a spec that joins VM_GUEST_POD_PIDNS gets it made first
 * (a pod init's namespace, bind-mounted there; again if its init died). */
int agent_pod_pidns(struct agent *a, const struct rt_spec *s, struct err *e);
/* Signal the container's pid 1. One it would drop for want of a handler
 * (pid 1 of its namespace) shortly after its start is kept pending and sent
 * once the handler is there (agent_ctr_signals_due). */
int agent_ctr_signal(struct ctr *c, int sig, struct err *e);
/* Send the pending signals that are due; the ms until the next check, or
 * -1 when none is pending. */
int agent_ctr_signals_due(struct agent *a, int64_t now);
/* The cgroup's OOM kills at create (c->rc set), and whether more happened
 * since (at exit, while the cgroup is still there). */
void agent_ctr_oom_base(struct ctr *c);
bool agent_ctr_oom_killed(const struct ctr *c);

/* portfwd.c: PortForwardRequest and its connections' bytes. */
void agent_pf_start(struct agent *a, uint64_t id, const Corral__Agent__V1__PortForwardRequest *r);
/* StreamData from the host with a conn_id. */
void agent_pf_input(struct agent *a, const AgStream *s);
struct pfconn *agent_pf_find(struct agent *a, uint64_t id, size_t *idx);
void agent_pf_free(struct agent *a, struct pfconn *p);
/* Poll set: one entry per connection into pfd, its id into ids (the loop
 * goes by id: connections end while others are served). */
size_t agent_pf_poll_fds(struct agent *a, struct pollfd *pfd, uint64_t *ids);
void agent_pf_poll_events(struct agent *a, const struct pollfd *pfd, const uint64_t *ids, size_t n);

#endif
