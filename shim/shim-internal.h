/* corral-shim internals: the one context struct and the functions the
 * server's files share. Each file owns one concern:
 *   server.c  event loop, control socket, start/kill/wait/shutdown
 *   io.c      container stdio: output to log and attach, stdin from attach
 *   log.c     the CRI log writer
 *   exit.c    reaping, the exit file
 *   attach.c  the attach socket
 *   exec.c    exec_sync
 */
#ifndef CORRAL_SHIM_INTERNAL_H
#define CORRAL_SHIM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "runtime/runtime.h"
#include "shim/proto-internal.h"
#include "shim/shim.h"
#include "util/util.h"

struct shim;
struct watch;

/* Everything in the epoll set is a `struct watch` embedded in its owner;
 * epoll_data.ptr points at it and `fn` handles its events. */
typedef void (*watch_fn)(struct shim *s, struct watch *w, uint32_t events);
struct watch {
        int fd;
        watch_fn fn;
};

int shim_watch_add(struct shim *s, struct watch *w, uint32_t events);
int shim_watch_mod(struct shim *s, struct watch *w, uint32_t events);
/* Out of the epoll set, fd kept. */
void shim_watch_del(struct shim *s, struct watch *w);
/* Removes from epoll and closes w->fd (sets it to -1). NULL / -1 ok. */
void shim_watch_close(struct shim *s, struct watch *w);

/* ---------- log.c: the CRI log writer ---------- */

/* Longest line content written as one entry; longer lines are split into
 * SHIM_LOG_LINE_MAX-byte "P" entries (kubelet and containerd use 16 KiB). */
#define SHIM_LOG_LINE_MAX 16384

struct shim_log_stream {
        char *part; /* SHIM_LOG_LINE_MAX bytes, allocated on first partial line */
        size_t len;
};

struct shim_log {
        int fd; /* -1: no log file (lines are still parsed and dropped) */
        char *path;
        struct shim_log_stream streams[2]; /* [0] stdout, [1] stderr */
        uint64_t write_errors;
};

/* stream: SHIM_ATTACH_STDOUT or SHIM_ATTACH_STDERR. */
int shim_log_open(struct shim_log *l, const char *path, struct err *e);
int shim_log_reopen(struct shim_log *l, struct err *e);
/* One read chunk: every complete line gets the same timestamp `now_ns`. */
void shim_log_write(struct shim_log *l, int stream, const char *data, size_t n, int64_t now_ns);
/* End of a stream: a pending partial line is written as "P". */
void shim_log_eof(struct shim_log *l, int stream, int64_t now_ns);
void shim_log_sync(struct shim_log *l);
void shim_log_close(struct shim_log *l);

/* ---------- io.c: the container's stdio ---------- */

struct shim_stream {
        struct watch w; /* read end of the container's stdout/stderr, or the pty master */
        int id;         /* SHIM_ATTACH_STDOUT / SHIM_ATTACH_STDERR */
};

/* Pipes (or a pty) for the container; fills the child's ends in *child
 * (the caller closes them after create). */
int shim_io_setup(struct shim *s, int child[3], struct err *e);
/* Register the output streams with epoll. */
int shim_io_watch(struct shim *s, struct err *e);
/* Read whatever is there now (the container exited): non-blocking. */
void shim_io_drain(struct shim *s);
bool shim_io_open(const struct shim *s); /* an output stream is still open */
/* Input from an attach client; false when it could not all be taken now
 * (the rest is kept and the client must wait). */
bool shim_io_stdin(struct shim *s, const char *data, size_t n);
bool shim_io_stdin_busy(const struct shim *s);
void shim_io_close_stdin(struct shim *s);
void shim_io_resize(struct shim *s, unsigned rows, unsigned cols);
void shim_io_cleanup(struct shim *s);

/* ---------- attach.c ---------- */

struct attach_client;
int shim_attach_listen(struct shim *s, struct err *e);
void shim_attach_broadcast(struct shim *s, int stream, const char *data, size_t n);
/* The container's stdin became writable again: resume reading clients. */
void shim_attach_resume(struct shim *s);
/* Output ended: send the exit packet and close every client. */
void shim_attach_finish(struct shim *s);
void shim_attach_cleanup(struct shim *s);

/* ---------- exit.c ---------- */

/* Reap every exited child; route container and exec exits. */
void shim_reap(struct shim *s);
/* Record the container's exit: OOM check, exit file (fsync'd). */
void shim_exit_record(struct shim *s, int status);
int shim_exit_write(const char *state_dir, const struct shim_state *st, struct err *e);

/* ---------- exec.c ---------- */

struct exec_proc;
struct ctl_conn;
/* Start an exec for `req` on `conn`; the reply is sent when it ends. */
int shim_exec_begin(struct shim *s, struct ctl_conn *conn, const struct proto_msg *req, struct err *e);
/* A reaped pid: true when it was an exec's. */
bool shim_exec_reaped(struct shim *s, pid_t pid, int status);
/* The client went away: kill its exec. */
void shim_exec_abandon(struct shim *s, struct ctl_conn *conn);
void shim_exec_cleanup(struct shim *s);

/* ---------- oci.c: an OCI runtime binary creates the container ---------- */

/* config.json, the rootfs mounted, `create` with child[] as stdio (or a
 * console socket for a tty: the pty master goes to s->pty/out/in); s->pid. */
int shim_oci_create(struct shim *s, const int child[3], struct err *e);
int shim_oci_start(struct shim *s, struct err *e);
/* `delete --force` (kills a created container) and the rootfs unmounted; idempotent. */
void shim_oci_delete(struct shim *s);
/* `exec --process` of args (env over the container's) with stdio; *pid is
 * the runtime's (its exit status is the command's), *pidfile (caller frees)
 * where it writes the command's own pid. */
int shim_oci_exec(struct shim *s, char *const *args, char *const *env, const struct rt_stdio *stdio,
                  pid_t *pid, char **pidfile, struct err *e);

/* ---------- server.c ---------- */

struct ctl_conn {
        struct watch w;
        struct watch timer;    /* timerfd of a pending wait, fd -1 otherwise */
        enum proto_op pending; /* OP_WAIT or OP_EXEC while a reply is owed, else OP_REPLY */
        struct ctl_conn *next;
};

/* Send a reply (errors are logged; the connection is closed on failure). */
void shim_reply(struct shim *s, struct ctl_conn *c, const struct err *status, const struct sbuf *body);
void shim_state_fill(const struct shim *s, struct shim_state *st);
void shim_state_put(struct sbuf *b, const struct shim_state *st);
void shim_state_set_user(struct shim_state *st, const uint32_t *groups, size_t n, uint32_t uid, uint32_t gid);
/* Around runtime/ calls that fork: the child must not inherit our blocked
 * signals (see server.c). */
void shim_fork_window_open(void);
void shim_fork_window_close(void);
/* Unmap our read-only segments' pages after one-time or occasional work
 * (create, start, exec): RSS then counts what the idle loop uses. */
void shim_trim_text(void);
/* The container exited: answer every pending wait; quit when shutting down. */
void shim_exited(struct shim *s);

struct shim {
        const struct shim_opts *opts;
        int epfd;
        struct watch sig;    /* signalfd: SIGCHLD, SIGTERM, SIGINT */
        struct watch ctl;    /* listening control socket */
        struct watch attach; /* listening attach socket */

        struct rt_spec *spec;
        struct rt_container *ctr; /* NULL with an OCI runtime */
        bool oci_created;         /* the OCI runtime holds state for it (delete due) */
        bool oci_mounted;         /* the rootfs overlay is mounted by us */
        char *cgroup;             /* owned copy of the container's cgroup, or NULL */
        uint64_t oom_base;        /* OOM kills in the cgroup before start */
        struct watch oom;         /* memory.events changes (v2), or fd -1 */
        pid_t pid;
        enum shim_status status;
        int exit_code;
        int exit_signal;
        int64_t created_ns, started_ns, finished_ns;
        bool oom_killed;
        bool exit_recorded;
        bool has_user;
        struct rt_user user; /* read at start */

        /* stdio */
        struct shim_stream out, err; /* err.w.fd is -1 with a tty */
        struct watch in;             /* write end of stdin (or a dup of the pty master) */
        char *in_buf;                /* input not yet taken by the container */
        size_t in_len;
        int pty; /* pty master, for resizes; -1 without tty */
        bool stdin_closed;
        struct shim_log log;

        struct ctl_conn *conns;
        struct attach_client *clients;
        bool stdin_claimed; /* stdin_once: a client has sent stdin */
        struct exec_proc *execs;

        /* A stop signal the kernel dropped (see rt_signal_dropped): sent
         * again once the process has a handler for it. */
        struct watch redeliver; /* timerfd, fd -1 when idle */
        int redeliver_sig;
        int64_t redeliver_until_ns;

        bool shutdown; /* exit once the container is dead and recorded */
        bool quit;     /* leave the loop now */
};

#endif
