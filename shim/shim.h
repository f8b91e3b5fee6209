/* shim: corral-shim, one small process per container that holds the
 * container's stdio, writes its CRI log, records its exit durably, serves
 * attach, and keeps doing so while corrald restarts.
 *
 * corrald side (client):
 *   shim_spawn()        start a shim; it creates the container (not started)
 *   shim_connect()      open the control socket <state>/ctl
 *   shim_start/state/kill/wait/reopen_log/exec_sync/update_resources/shutdown
 *   shim_read_exit()    read <state>/exit when the shim is gone
 *   shim_attach_connect() a connection to <state>/attach (framing below)
 *
 * corral-shim side (server): shim_run(), called by cmd/corral-shim.
 *
 * The control protocol is private to this folder (shim/proto.c): one
 * request, one response per round trip, over SOCK_SEQPACKET. A connection
 * carries one request at a time; open several connections for concurrency.
 */
#ifndef CORRAL_SHIM_H
#define CORRAL_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/util.h"

/* File names inside the state dir. */
#define SHIM_CTL_SOCKET    "ctl"
#define SHIM_ATTACH_SOCKET "attach"
#define SHIM_EXIT_FILE     "exit"
#define SHIM_PID_FILE      "shim.pid"

struct shim_opts {
        const char *id;        /* container id, for messages */
        const char *bundle;    /* directory holding spec.json */
        const char *state_dir; /* ctl and attach sockets, exit and pid files; created */
        const char *log_path;  /* CRI log file; NULL or "" for none */
        bool stdin_open;       /* the container gets a stdin fed by attach */
        bool stdin_once;       /* stdin closes when the first stdin client detaches */
        bool tty;              /* a pty instead of pipes */
        const char *shim_path; /* the corral-shim binary */
        int64_t timeout_ms;    /* how long shim_spawn waits for "created"; 0 = 60 s */
        const char *mode;      /* NULL: a container shim; "vm": a per-VM shim (bundle holds vm.json) */
        /* An OCI runtime binary (runc, crun) creates the container instead of
         * runtime/; its state goes under runtime_root (its --root). */
        const char *runtime_path;
        const char *runtime_root;
};

struct shim_info {
        pid_t shim_pid; /* the shim process (no longer our child) */
        pid_t pid;      /* the container's init, created but not started */
};

/* Start a shim for one container and wait until it reports the container
 * created (or the create error, with its kind and text). The shim is
 * double-forked into its own session: it is not our child and survives a
 * SIGKILL of the caller. Safe to call from a multi-threaded process. */
int shim_spawn(const struct shim_opts *opts, struct shim_info *out, struct err *e);

/* ---------- control connection ---------- */

struct shim_conn;

int shim_connect(const char *state_dir, struct shim_conn **out, struct err *e);
/* Whether pid lives. A zombie counts as gone: a shim is not the caller's
 * child, and whoever adopted it may reap late. */
bool shim_pid_alive(pid_t pid);
/* The pid in <state_dir>/shim.pid while that process lives, else 0. */
pid_t shim_live_pid(const char *state_dir);
/* Accepts NULL; returns NULL. */
struct shim_conn *shim_close(struct shim_conn *c);

enum shim_status {
        SHIM_CREATED = 0,
        SHIM_RUNNING = 1,
        SHIM_EXITED = 2,
};

struct shim_state {
        pid_t pid; /* container init */
        enum shim_status status;
        int exit_code;       /* exit status, or 128+signo */
        int signal;          /* killing signal, 0 if it exited */
        int64_t created_ns;  /* CLOCK_REALTIME */
        int64_t started_ns;  /* 0 until started */
        int64_t finished_ns; /* 0 until exited */
        bool oom_killed;
        /* Set when something outside the container ended it (the per-VM
         * shim: "VMDied"); empty otherwise. */
        char reason[32];
        char message[192];
        /* Who the process runs as, read from /proc/<pid>/status when it
         * started (ContainerStatus.user); has_user false before that or
         * where it could not be read. At most 64 groups are kept. */
        bool has_user;
        uint32_t uid, gid;
        uint32_t n_groups;
        uint32_t groups[64];
};

/* Start the created container's process. */
int shim_start(struct shim_conn *c, struct err *e);
int shim_state(struct shim_conn *c, struct shim_state *st, struct err *e);
/* Signal the init (all = false) or every process in the container. */
int shim_kill(struct shim_conn *c, int signo, bool all, struct err *e);
/* Block until the container exits (fills *st, may be NULL) or timeout_ms
 * passes (ERR_DEADLINE); timeout_ms < 0 waits forever. */
int shim_wait(struct shim_conn *c, int64_t timeout_ms, struct shim_state *st, struct err *e);
/* The same wait without a thread per container: send it, watch
 * shim_conn_fd() for POLLIN (in corrald's own epoll), then collect the
 * state. The connection carries nothing else meanwhile. On a VM shim's
 * own socket (its vm_dir) the wait is answered, with no state, when the
 * VM ends. */
int shim_wait_begin(struct shim_conn *c, struct err *e);
int shim_wait_finish(struct shim_conn *c, struct shim_state *st, struct err *e);
int shim_conn_fd(const struct shim_conn *c);
/* Close and reopen the log file at its path (after logrotate's rename). */
int shim_reopen_log(struct shim_conn *c, struct err *e);

struct shim_exec_result {
        char *out; /* owned, NUL-terminated, out_len bytes (may hold NULs) */
        size_t out_len;
        char *err;
        size_t err_len;
        int exit_code;  /* 128+signo when killed */
        bool truncated; /* output was longer than SHIM_EXEC_MAX_OUTPUT */
};
#define SHIM_EXEC_MAX_OUTPUT (16u << 20) /* per stream, like kubelet's message cap */
void shim_exec_result_clear(struct shim_exec_result *r);

/* Run args (env: "K=V" strings, may be NULL) inside the running container,
 * stdin closed, and collect its output. timeout_ms <= 0: no timeout. When
 * the timeout passes the process is killed and the call fails with
 * ERR_DEADLINE; *r still holds the output collected so far. */
int shim_exec_sync(struct shim_conn *c, char *const *args, char *const *env, int64_t timeout_ms,
                   struct shim_exec_result *r, struct err *e);
/* UpdateContainerResources: `spec_json` is a spec in runtime/'s JSON
 * (rt_spec_to_json) of which only `resources` is used; its set fields are
 * applied to the container's cgroup (rt_cgroup_update). */
int shim_update_resources(struct shim_conn *c, const char *spec_json, struct err *e);
/* Ask the shim to exit. A created-but-never-started container is killed;
 * a running one must be killed first (ERR_PRECONDITION otherwise). The shim
 * exits after the exit file is written and attach clients are closed; it
 * removes the container's cgroup and its sockets, and keeps the exit file.
 * (SIGTERM to the shim passes SIGTERM to the container and then does the
 * same once the container is dead.) */
int shim_shutdown(struct shim_conn *c, struct err *e);

/* Read <state>/exit written by a shim (status SHIM_EXITED); ERR_NOT_FOUND
 * when the container has not exited (or its shim died before recording). */
int shim_read_exit(const char *state_dir, struct shim_state *st, struct err *e);

/* ---------- attach ---------- */

/* Attach framing over SOCK_SEQPACKET: every packet starts with one byte.
 * shim -> client: SHIM_ATTACH_STDOUT / SHIM_ATTACH_STDERR followed by output
 *   bytes; SHIM_ATTACH_EXIT followed by the exit code as 4 bytes little
 *   endian, after the container's output ended; then the shim closes.
 * client -> shim: SHIM_ATTACH_STDIN + bytes for the container's stdin;
 *   SHIM_ATTACH_RESIZE + struct shim_attach_resize (tty only);
 *   SHIM_ATTACH_CLOSE_STDIN (no payload): this client's stdin ended; the
 *   container's stdin is closed when it was created stdin_once. */
enum shim_attach_type {
        SHIM_ATTACH_STDIN = 0,
        SHIM_ATTACH_STDOUT = 1,
        SHIM_ATTACH_STDERR = 2,
        SHIM_ATTACH_RESIZE = 3,
        SHIM_ATTACH_CLOSE_STDIN = 4,
        SHIM_ATTACH_EXIT = 5,
};
struct shim_attach_resize {
        uint16_t rows;
        uint16_t cols;
};
/* Largest packet either side sends (type byte included). */
#define SHIM_ATTACH_MAX_PACKET 32768

/* Connect to <state>/attach (path length is not limited by sun_path).
 * The fd is blocking and close-on-exec; the caller owns it. */
int shim_attach_connect(const char *state_dir, int *fd, struct err *e);

/* ---------- interactive exec (exec_interactive.c) ---------- */

/* One interactive exec session: `corral-shim exec`, a fresh single-threaded
 * helper process that runs the command with rt_exec in the container of
 * `pid` and lives as long as the command. Without a tty the command gets the
 * helper's stdio fds as its own; with a tty the helper opens a pty and
 * relays between the master and its fds 0/1, taking resize messages
 * (struct shim_attach_resize, 4 bytes each) from a pipe. */
struct shim_exec_opts {
        const char *shim_path; /* the corral-shim binary (spawn only) */
        const char *bundle;    /* directory holding spec.json */
        pid_t pid;             /* the container's init */
        char *const *args;     /* NULL-terminated, at least one */
        char *const *env;      /* "K=V", NULL: the spec's */
        const char *cwd;       /* NULL: the spec's */
        bool tty;
        /* spawn: the helper's stdio (-1: /dev/null); with tty, stderr_fd is
         * ignored (the terminal carries both) */
        int stdin_fd, stdout_fd, stderr_fd;
        /* write end: when the command could not be started the helper writes
         * the error text here and exits 127; nothing is written (EOF) once it
         * started. -1: none. (Helper side: its own fd number.) */
        int report_fd;
        int resize_fd; /* helper side only: the resize pipe's read end, -1 none */
};

/* Fork and exec the helper (async-signal-safe between the two: callable
 * from a multi-threaded process). *helper_pid is the caller's child: reap
 * it; its exit status is the command's exit code (128+signo when the
 * command was killed); SIGTERM to it kills the command. The helper dies
 * with the calling thread (PR_SET_PDEATHSIG). With tty, *resize_fd (may be
 * NULL) gets the write end of the resize pipe (non-blocking; caller
 * closes), else -1. The caller's copies of the stdio fds stay open. */
int shim_exec_spawn(const struct shim_exec_opts *o, pid_t *helper_pid, int *resize_fd, struct err *e);
/* The helper's body (cmd/corral-shim `exec` mode): returns the exit status. */
int shim_exec_run(const struct shim_exec_opts *o);

/* ---------- the per-VM shim (vm_server.c, vm_rootfs.c; client.c) ---------- */

/* `corral-shim vm`: one per VM pod sandbox, started by shim_spawn with
 * opts.mode "vm" and bundle = state_dir = the VM's directory, which holds
 * vm.json (written by corrald):
 *   {"vmm": 0|1, "vmm_path", "kernel", "initrd", "cpus", "memory_mib",
 *    "agent_timeout_ms", "netns", "tap", "mac", "mtu",
 *    "addresses": ["10.88.0.5/16"], "routes": [{"dst", "gw"}], "hostname"}
 * It boots the VM (its child: QEMU dies with it), shares <state>/share
 * into the guest over 9p (tag SHIM_VM_SHARE_TAG), gives the guest the pod
 * IP, and reports the VMM pid (shim_info.pid) once the agent answered.
 * It serves its own socket <state>/ctl (the shim_vm_* calls below and
 * shim_shutdown, which stops the VM and ends the shim) and, for each
 * container created through it, <container state>/ctl with the container
 * shim's requests (shim_start, shim_state, shim_kill, shim_wait,
 * shim_exec_sync, shim_reopen_log, shim_shutdown = remove from the VM),
 * so corrald handles VM containers with the same calls. Exits go to
 * <container state>/exit as usual; a VM that dies ends every container
 * with reason "VMDied" and leaves <state>/vm-exit ({"reason": ...}). */
#define SHIM_VM_CONFIG    "vm.json"
#define SHIM_VM_EXIT_FILE "vm-exit"
#define SHIM_VM_SHARE_DIR "share"
#define SHIM_VM_SHARE_TAG "corral"

struct shim_vm_create {
        const char *id;        /* container id */
        const char *spec_json; /* rt_spec_to_json of the host spec (ctr_spec.c); the shim mounts
                                  its rootfs and bind sources into the share and rewrites it */
        const char *state_dir; /* the container's: ctl socket and exit file */
        const char *log_path;  /* CRI log, may be NULL */
        bool stdin_open;       /* a stdin fed by attach (CRI stdin) */
        bool stdin_once;       /* closed when the first attach that wrote to it detaches */
};
int shim_vm_create_container(struct shim_conn *c, const struct shim_vm_create *cc, struct err *e);

struct shim_vm_info {
        pid_t vmm_pid; /* 0 once the VM is gone */
        pid_t shim_pid;
        int vm_state;     /* enum vm_state: VM_RUNNING or VM_DIED */
        char reason[192]; /* why the VM is gone */
        char accel[8];    /* "kvm" / "tcg" */
        char console[256];
        char kernel[64]; /* the guest's uname -r */
        uint64_t boot_ms, vmm_rss;
};
int shim_vm_info(struct shim_conn *c, struct shim_vm_info *out, struct err *e);

struct shim_vm_stats {
        uint64_t cpu_ns, memory, memory_total, memory_available;
        uint32_t pids;
        /* A container's other cgroup figures in the guest (the CRI metrics);
         * 0 from an older shim or agent. */
        uint64_t cpu_user_ns, cpu_system_ns, mem_usage, mem_rss, mem_cache, mem_mapped_file, mem_max_usage,
                mem_failcnt, mem_limit, oom_kills, processes, threads;
};
/* ctr_id NULL: the whole guest. */
int shim_vm_stats(struct shim_conn *c, const char *ctr_id, struct shim_vm_stats *out, struct err *e);
/* A connected stream socket to TCP `port` on the guest's loopback, relayed
 * by the VM shim and the agent (its <vm_dir>/pf.sock); half-close passes
 * through. The guest's connect error comes back as ERR_UNAVAILABLE. */
int shim_vm_portforward(const char *vm_dir, uint16_t port, int timeout_ms, int *fd_out, struct err *e);
/* Interactive exec of args in container ctr_id of the VM pod at vm_dir,
 * relayed by the VM shim and the agent (its <vm_dir>/exec.sock); with tty
 * on a pty in the guest. *fd_out is the connection, for
 * shim_vm_exec_relay; closing it early kills the process. */
int shim_vm_exec_connect(const char *vm_dir, const char *ctr_id, char *const *args, bool tty, int *fd_out,
                         struct err *e);
/* Relay until the process exits: stdin_fd (-1: none, the process sees EOF)
 * to its stdin, EOF closing it; its stdout/stderr to stdout_fd/stderr_fd
 * (-1: dropped); *exit_code its exit code (128+signal when killed). When
 * cancel_fd becomes readable, returns 0 with *exit_code 137 at once (the
 * caller closes fd, which kills the process). resize_fd (-1: none) carries
 * struct shim_attach_resize messages for a tty. Fails when the command
 * could not start in the guest or the VM went away. Blocking; fds are not
 * closed. */
int shim_vm_exec_relay(int fd, int stdin_fd, int stdout_fd, int stderr_fd, int resize_fd, int cancel_fd,
                       int *exit_code, struct err *e);
/* Stop the VM (agent Shutdown, ACPI, kill) and end the shim. */
int shim_vm_shutdown(struct shim_conn *c, struct err *e);
/* The server (cmd/corral-shim `vm` mode). */
int shim_vm_run(const struct shim_opts *opts, int report_fd);

/* ---------- server ---------- */

/* The whole life of a shim: create the container, report to `report_fd`
 * (closed afterwards; -1 for none), serve until shut down. Returns the
 * process exit status for cmd/corral-shim's main. */
int shim_run(const struct shim_opts *opts, int report_fd);

#endif
