/* The control protocol between corrald (shim/client.c) and corral-shim
 * (shim/server.c), and the socket helpers both sides share.
 *
 * A message is a fixed header followed by `len` bytes of fields. Over
 * SOCK_SEQPACKET it travels in packets of at most PROTO_PACKET bytes: the
 * first packet holds the header and the start of the body, continuation
 * packets hold the rest, in order. Fields are length-prefixed:
 *   uint16 tag, uint16 reserved, uint32 len, len bytes
 * Integers are int64 in host order (both ends run on the same host). A tag
 * may repeat (exec args, env). Replies carry the error kind and errno in the
 * header and the error text in PF_MSG.
 */
#ifndef CORRAL_SHIM_PROTO_INTERNAL_H
#define CORRAL_SHIM_PROTO_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

#define PROTO_MAGIC    0x31485343u /* "CSH1" */
#define PROTO_PACKET   32768
#define PROTO_MAX_BODY (40u << 20) /* two full exec outputs and then some */

enum proto_op {
        OP_REPLY = 0,
        OP_REPORT = 1, /* shim -> shim_spawn over the report pipe */
        OP_START = 2,
        OP_STATE = 3,
        OP_KILL = 4,
        OP_WAIT = 5,
        OP_REOPEN_LOG = 6,
        OP_EXEC = 7,
        OP_UPDATE = 8,
        OP_SHUTDOWN = 9,
        /* The per-VM shim's own socket (shim/vm_server.c); the ops above
         * are served there per container, on <container state>/ctl. */
        OP_VM_CREATE = 20, /* PF_ID, PF_SPEC, PF_STATE_DIR, PF_LOG_PATH, PF_STDIN_OPEN, PF_STDIN_ONCE */
        OP_VM_INFO = 21,
        OP_VM_STATS = 22, /* PF_ID: a container, absent: the whole guest */
};

enum proto_tag {
        PF_MSG = 1, /* error text */
        PF_PID = 2,
        PF_SHIM_PID = 3,
        PF_STATUS = 4,
        PF_EXIT_CODE = 5,
        PF_SIGNAL = 6,
        PF_CREATED = 7,
        PF_STARTED = 8,
        PF_FINISHED = 9,
        PF_OOM = 10,
        PF_SIGNO = 11,
        PF_ALL = 12,
        PF_TIMEOUT_MS = 13,
        PF_ARG = 14, /* repeated */
        PF_ENV = 15, /* repeated */
        PF_STDOUT = 16,
        PF_STDERR = 17,
        PF_TRUNCATED = 18,
        PF_TIMED_OUT = 19,
        PF_RESOURCES = 20,
        PF_REASON = 21,     /* why a container ended, when not its own doing ("VMDied") */
        PF_REASON_MSG = 22, /* the longer text */
        /* the VM shim */
        PF_ID = 30,
        PF_SPEC = 31,
        PF_STATE_DIR = 32,
        PF_LOG_PATH = 33,
        PF_VM_STATE = 34, /* enum vm_state */
        PF_ACCEL = 35,
        PF_CONSOLE = 36,
        PF_BOOT_MS = 37,
        PF_RSS = 38,
        PF_KERNEL = 39,
        PF_CPU_NS = 40,
        PF_MEM = 41,
        PF_MEM_TOTAL = 42,
        PF_MEM_AVAIL = 43,
        PF_PIDS = 44,
        PF_STDIN_OPEN = 45, /* OP_VM_CREATE: 1 = the container has a stdin (attach) */
        PF_STDIN_ONCE = 46, /* OP_VM_CREATE: 1 = it closes after the first attach */
        PF_UID = 47,        /* the started process's identity (shim_state.has_user) */
        PF_GID = 48,
        PF_GROUPS = 49, /* "g1,g2,..." */
        /* OP_VM_STATS of a container: its guest cgroup's other figures, in
         * the order of struct shim_vm_stats (120 + index). */
        PF_VM_CGM = 120,
};

struct proto_hdr {
        uint32_t magic;
        uint16_t op;
        uint16_t reserved;
        int32_t kind;   /* replies: enum err_kind, 0 = success */
        int32_t errnum; /* replies: errno of the failure, 0 if none */
        uint32_t len;   /* body bytes */
};

struct proto_msg {
        struct proto_hdr hdr;
        char *body; /* owned */
        size_t len;
};

void proto_msg_clear(struct proto_msg *m);

/* Building a body. */
void proto_put(struct sbuf *b, uint16_t tag, const void *data, size_t len);
void proto_put_str(struct sbuf *b, uint16_t tag, const char *s);
void proto_put_i64(struct sbuf *b, uint16_t tag, int64_t v);

/* Reading a body. `*pos` starts at 0; proto_next returns false at the end or
 * on a malformed field (then *pos is past the end). */
bool proto_next(const struct proto_msg *m, size_t *pos, uint16_t *tag, const char **data, uint32_t *len);
/* First field with `tag`. */
bool proto_get(const struct proto_msg *m, uint16_t tag, const char **data, uint32_t *len);
bool proto_get_i64(const struct proto_msg *m, uint16_t tag, int64_t *v);
/* A NUL-terminated copy, or NULL when absent. */
char *proto_get_str(const struct proto_msg *m, uint16_t tag);

/* Send one message (several packets when long). A SIGPIPE never fires. */
int proto_send(int fd, uint16_t op, const struct err *status, const struct sbuf *body, struct err *e);
/* Receive one message. timeout_ms < 0 waits forever. EOF before any byte is
 * ERR_UNAVAILABLE "connection closed". */
int proto_recv(int fd, int64_t timeout_ms, struct proto_msg *m, struct err *e);
/* The whole message in one buffer (the report pipe). */
int proto_parse(const char *buf, size_t len, struct proto_msg *m, struct err *e);
void proto_serialize(struct sbuf *out, uint16_t op, const struct err *status, const struct sbuf *body);
/* A reply's error into *e (returns -1), or 0 for success. */
int proto_reply_status(const struct proto_msg *m, struct err *e);

/* SOCK_SEQPACKET listening socket <dir>/<name>, bound through
 * /proc/self/fd/<dirfd>/<name> so that long state dirs work. Non-blocking,
 * close-on-exec, mode 0600. */
int proto_listen(const char *dir, const char *name, struct err *e);
/* Connect to it the same way; blocking, close-on-exec. */
int proto_connect(const char *dir, const char *name, struct err *e);
/* The same with SOCK_STREAM (the VM shim's port-forward socket). */
int proto_listen_stream(const char *dir, const char *name, struct err *e);
int proto_connect_stream(const char *dir, const char *name, struct err *e);

#endif
