/* The one error idiom: a kind, an errno, a heap message. */
#include <errno.h>
#include <string.h>

#include "util/util.h"

static enum err_kind kind_from_errno(int errnum)
{
        switch (errnum) {
        case ENOENT:
        case ESRCH:
                return ERR_NOT_FOUND;
        case EEXIST:
                return ERR_EXISTS;
        case EINVAL:
                return ERR_INVALID;
        case ETIMEDOUT:
                return ERR_DEADLINE;
        case EPERM:
        case EACCES:
                return ERR_PERMISSION;
        case ENOSYS:
        case EOPNOTSUPP:
                return ERR_UNIMPLEMENTED;
        case EAGAIN:
        case ECONNREFUSED:
        case ECONNRESET:
        case EHOSTUNREACH:
                return ERR_UNAVAILABLE;
        case ENOSPC:
        case EMFILE:
        case ENFILE:
        case ENOMEM:
                return ERR_EXHAUSTED;
        case ECANCELED:
                return ERR_CANCELLED;
        case EBUSY:
                return ERR_PRECONDITION;
        default:
                return ERR_INTERNAL;
        }
}

static void set_msg(struct err *e, char *msg)
{
        free(e->msg);
        e->msg = msg;
}

int err_make(struct err *e, int errnum, const char *fmt, ...)
{
        if (e == NULL)
                return -1;
        va_list ap;
        va_start(ap, fmt);
        cleanup_free char *m = xvasprintf(fmt, ap);
        va_end(ap);
        e->errnum = errnum;
        e->kind = kind_from_errno(errnum);
        set_msg(e, errnum ? xasprintf("%s: %s", m, strerror(errnum)) : steal_ptr(&m));
        return -1;
}

int err_set(struct err *e, enum err_kind kind, const char *fmt, ...)
{
        if (e == NULL)
                return -1;
        va_list ap;
        va_start(ap, fmt);
        char *m = xvasprintf(fmt, ap);
        va_end(ap);
        e->errnum = 0;
        e->kind = kind == ERR_OK ? ERR_INTERNAL : kind;
        set_msg(e, m);
        return -1;
}

int err_wrap(struct err *e, const char *fmt, ...)
{
        if (e == NULL)
                return -1;
        va_list ap;
        va_start(ap, fmt);
        cleanup_free char *ctx = xvasprintf(fmt, ap);
        va_end(ap);
        if (e->msg == NULL) {
                e->kind = ERR_INTERNAL;
                set_msg(e, steal_ptr(&ctx));
        } else {
                set_msg(e, xasprintf("%s: %s", ctx, e->msg));
        }
        return -1;
}

void err_move(struct err *dst, struct err *src)
{
        if (dst == NULL) {
                err_clear(src);
                return;
        }
        err_clear(dst);
        *dst = *src;
        src->msg = NULL;
        src->kind = ERR_OK;
        src->errnum = 0;
}

void err_clear(struct err *e)
{
        if (e == NULL)
                return;
        free(e->msg);
        e->msg = NULL;
        e->kind = ERR_OK;
        e->errnum = 0;
}

const char *err_kind_name(enum err_kind kind)
{
        static const char *const names[] = {
                "OK",
                "CANCELLED",
                "UNKNOWN",
                "INVALID_ARGUMENT",
                "DEADLINE_EXCEEDED",
                "NOT_FOUND",
                "ALREADY_EXISTS",
                "PERMISSION_DENIED",
                "RESOURCE_EXHAUSTED",
                "FAILED_PRECONDITION",
                "ABORTED",
                "OUT_OF_RANGE",
                "UNIMPLEMENTED",
                "INTERNAL",
                "UNAVAILABLE",
                "DATA_LOSS",
                "UNAUTHENTICATED",
        };
        if ((unsigned)kind < ARRAY_SIZE(names))
                return names[kind];
        return "UNKNOWN";
}
