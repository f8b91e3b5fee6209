/* Helpers for the runtime tests that run real containers: a busybox rootfs
 * built in a temp dir, a containerd-like spec, run-and-collect. Header-only
 * (each test is its own executable). Root only. */
#ifndef CORRAL_TESTS_RT_HELPERS_H
#define CORRAL_TESTS_RT_HELPERS_H

#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>

#include "runtime/runtime.h"

static int failures;
#define CHECK(cond, ...)                                                                                     \
        do {                                                                                                 \
                if (!(cond)) {                                                                               \
                        failures++;                                                                          \
                        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                      \
                        fprintf(stderr, __VA_ARGS__);                                                        \
                        fputc('\n', stderr);                                                                 \
                } else {                                                                                     \
                        fprintf(stderr, "ok   %s\n", #cond);                                                 \
                }                                                                                            \
        } while (0)

static char tmp[256];
static char rootfs[300];

static void sh(const char *cmd)
{
        if (system(cmd) != 0) {
                fprintf(stderr, "setup failed: %s\n", cmd);
                exit(1);
        }
}

/* Exits 77 when the test cannot run here. */
static void need_root_and_busybox(void)
{
        if (geteuid() != 0) {
                printf("skipped: needs root (namespaces, mounts, cgroups)\n");
                exit(77);
        }
        if (access("/bin/busybox", X_OK) < 0) {
                printf("skipped: /bin/busybox missing (apt-get install busybox-static)\n");
                exit(77);
        }
}

static void make_rootfs(void)
{
        snprintf(tmp, sizeof(tmp), "/tmp/corral-rt-test-XXXXXX");
        if (mkdtemp(tmp) == NULL)
                exit(1);
        snprintf(rootfs, sizeof(rootfs), "%s/rootfs", tmp);
        char cmd[2048];
        snprintf(
                cmd, sizeof(cmd),
                "set -e; r=%s; mkdir -p $r/bin $r/etc $r/proc $r/sys $r/dev $r/tmp $r/home/app; "
                "cp /bin/busybox $r/bin/busybox; "
                "for a in $(/bin/busybox --list); do [ \"$a\" = busybox ] || ln -sf busybox $r/bin/$a; done; "
                "printf 'root:x:0:0:root:/root:/bin/sh\\napp:x:1234:1234:app:/home/app:/bin/sh\\n' > "
                "$r/etc/passwd; "
                "printf 'root:x:0:\\napp:x:1234:\\nextra:x:777:app,other\\n' > $r/etc/group",
                rootfs);
        sh(cmd);
}

static const char *const default_caps[] = {
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
        NULL,
};

/* A containerd-like unprivileged spec running `sh -c script` (with
 * CAP_MKNOD, as containerd gives by default). */
static struct rt_spec *spec_for(const char *script)
{
        struct rt_spec *s = rt_spec_new();
        s->id = xstrdup("test");
        s->root.path = xstrdup(rootfs);
        strv_push(&s->process.args, "sh");
        strv_push(&s->process.args, "-c");
        strv_push(&s->process.args, script);
        strv_push(&s->process.env, "PATH=/bin");
        strv_push(&s->process.env, "HOME=/");
        struct rt_caps *c = &s->process.caps;
        for (size_t i = 0; default_caps[i]; i++) {
                strv_push(&c->bounding, default_caps[i]);
                strv_push(&c->effective, default_caps[i]);
                strv_push(&c->permitted, default_caps[i]);
        }
        for (int i = RT_NS_PID; i <= RT_NS_UTS; i++)
                s->namespaces[i].mode = RT_NS_NEW;
        s->hostname = xstrdup("corral-test");
        return s;
}

struct result {
        int status; /* waitpid status */
        char out[8192];
        char err[8192]; /* run_split only */
        struct err e;
};

static void read_all(int fd, char *buf, size_t cap)
{
        size_t n = 0;
        ssize_t r;
        while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0)
                n += (size_t)r;
        buf[n] = '\0';
}

/* Create + start + collect output + reap. With `split`, stdout and stderr go
 * to r->out and r->err; without, both go to r->out in the order written. */
static int run_io(const struct rt_spec *s, struct result *r, bool split)
{
        memset(r, 0, sizeof(*r));
        int po[2], pe[2] = {-1, -1};
        if (pipe2(po, O_CLOEXEC) < 0 || (split && pipe2(pe, O_CLOEXEC) < 0))
                exit(1);
        struct rt_stdio io = {-1, po[1], split ? pe[1] : po[1]};
        struct rt_container *c = NULL;
        int ret = rt_container_create(s, &io, &c, &r->e);
        close(po[1]);
        if (split)
                close(pe[1]);
        if (ret == 0) {
                ret = rt_container_start(c, &r->e);
                /* Small outputs only: a stderr filling its pipe while we read stdout is not expected. */
                read_all(po[0], r->out, sizeof(r->out));
                if (split)
                        read_all(pe[0], r->err, sizeof(r->err));
                if (ret == 0)
                        waitpid(rt_container_pid(c), &r->status, 0);
                rt_container_free(c);
        }
        close(po[0]);
        if (split)
                close(pe[0]);
        return ret;
}

UNUSED static int run(const struct rt_spec *s, struct result *r)
{
        return run_io(s, r, false);
}

UNUSED static int run_split(const struct rt_spec *s, struct result *r)
{
        return run_io(s, r, true);
}

UNUSED static int exit_code(const struct result *r)
{
        return WIFEXITED(r->status) ? WEXITSTATUS(r->status) : 128 + WTERMSIG(r->status);
}

#endif
