/* The agent protocol's framing, shared by the host side (vm/) and the guest
 * agent (vm/agent/): a 4-byte big-endian length, then a packed
 * corral.agent.v1.Frame (proto/agent/v1/agent.proto). */
#ifndef CORRAL_VM_FRAME_INTERNAL_H
#define CORRAL_VM_FRAME_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/v1/agent.pb-c.h"
#include "util/util.h"

/* Short names for the generated types. */
typedef Corral__Agent__V1__Frame AgFrame;
typedef Corral__Agent__V1__Request AgRequest;
typedef Corral__Agent__V1__Response AgResponse;
typedef Corral__Agent__V1__StreamData AgStream;

/* Longest payload accepted: larger lengths mean the stream is garbage. */
#define FRAME_MAX (16u << 20)

/* Pack and write one frame. `fd` may be non-blocking: a full pipe is
 * waited for with poll, up to `timeout_ms` in total (< 0: forever). */
int frame_write(int fd, const AgFrame *f, int timeout_ms, struct err *e);

/* An incremental reader: fill from the fd, then take whole frames out. */
struct frame_reader {
        uint8_t *buf;
        size_t len;
        size_t cap;
};
/* One read(2) into the buffer. Returns bytes read (> 0), 0 at EOF, -1 with
 * errno EAGAIN/EINTR when nothing was there, or -1 with the error in e. */
ssize_t frame_reader_fill(struct frame_reader *r, int fd, struct err *e);
/* Take the next whole frame: 1 with *out set (free with frame_free), 0 when
 * more bytes are needed, -1 on a malformed frame: ERR_DATA_LOSS for a length
 * over FRAME_MAX (the buffer is dropped so the next bytes start afresh),
 * ERR_INVALID for a payload that does not unpack (that frame is skipped). */
int frame_reader_next(struct frame_reader *r, AgFrame **out, struct err *e);
void frame_reader_reset(struct frame_reader *r);
void frame_reader_free(struct frame_reader *r);
void frame_free(AgFrame *f);

#endif
