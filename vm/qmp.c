/* A minimal QMP client: greeting, qmp_capabilities, one command. QMP
 * messages are JSON objects, one per line; events in between are skipped. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <yajl/yajl_tree.h>

#include "vm/vm-internal.h"

static int64_t now_ms(void)
{
        return time_mono_ns() / 1000000;
}

/* Read one line (without the newline) into *out before the deadline. */
static int read_line(int fd, struct sbuf *buf, int64_t deadline, char **out, struct err *e)
{
        for (;;) {
                char *nl = buf->buf ? memchr(buf->buf, '\n', buf->len) : NULL;
                if (nl) {
                        size_t n = (size_t)(nl - buf->buf);
                        *out = xstrndup(buf->buf, n);
                        memmove(buf->buf, nl + 1, buf->len - n - 1);
                        buf->len -= n + 1;
                        buf->buf[buf->len] = '\0';
                        return 0;
                }
                int64_t left = deadline - now_ms();
                if (left <= 0)
                        return err_set(e, ERR_DEADLINE, "QMP: no reply in time");
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, (int)left) <= 0)
                        continue;
                char tmp[4096];
                ssize_t r = read(fd, tmp, sizeof(tmp));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return r == 0 ? err_set(e, ERR_UNAVAILABLE, "QMP: connection closed")
                                      : err_make(e, errno, "QMP: read");
                sbuf_append(buf, tmp, (size_t)r);
        }
}

/* Next reply ("return" or "error"), skipping events. */
static int read_reply(int fd, struct sbuf *buf, int64_t deadline, char **ret, struct err *e)
{
        for (;;) {
                cleanup_free char *line = NULL;
                if (read_line(fd, buf, deadline, &line, e) < 0)
                        return -1;
                if (line == NULL)
                        return err_set(e, ERR_DATA_LOSS, "QMP: no reply line");
                yajl_val v = json_parse(line, strlen(line), "QMP reply", e);
                if (!v)
                        return -1;
                yajl_val r = json_get(v, "return");
                yajl_val er = json_get(v, "error");
                if (er) {
                        const char *d = json_get_str(er, "desc");
                        err_set(e, ERR_INTERNAL, "QMP: %s", d ? d : line);
                        yajl_tree_free(v);
                        return -1;
                }
                yajl_tree_free(v);
                if (r) {
                        if (ret) {
                                /* The reply line is {"return": ...}: hand back the whole object. */
                                *ret = steal_ptr(&line);
                        }
                        return 0;
                }
        }
}

int vm_qmp_execute(const char *sock, const char *command, int timeout_ms, char **reply, struct err *e)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(sock) >= sizeof(sa.sun_path))
                return err_set(e, ERR_INVALID, "QMP socket path %s is too long", sock);
        memcpy(sa.sun_path, sock, strlen(sock) + 1); /* length checked above */
        cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return err_make(e, errno, "socket");
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return err_make(e, errno, "QMP connect %s", sock);
        int64_t deadline = now_ms() + timeout_ms;
        struct sbuf buf = {0};
        cleanup_free char *greeting = NULL;
        cleanup_free char *cmd = NULL; /* before any goto: clang refuses jumps into its scope */
        int ret = -1;
        if (read_line(fd, &buf, deadline, &greeting, e) < 0 || greeting == NULL || !strstr(greeting, "QMP")) {
                if (greeting)
                        err_set(e, ERR_DATA_LOSS, "QMP: bad greeting");
                goto out;
        }
        static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
        if (fd_write_all(fd, caps, sizeof(caps) - 1) < 0) {
                err_make(e, errno, "QMP write");
                goto out;
        }
        if (read_reply(fd, &buf, deadline, NULL, e) < 0)
                goto out;
        cmd = xasprintf("{\"execute\":\"%s\"}\n", command);
        if (fd_write_all(fd, cmd, strlen(cmd)) < 0) {
                err_make(e, errno, "QMP write");
                goto out;
        }
        ret = read_reply(fd, &buf, deadline, reply, e);
out:
        sbuf_free(&buf);
        if (ret < 0)
                err_wrap(e, "QMP %s", command);
        return ret;
}
