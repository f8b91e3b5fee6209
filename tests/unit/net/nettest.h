/* Small helpers for the net/ unit tests: checks that clean up before they
 * fail, skipping with 77, running a program inside a pinned netns. */
#ifndef CORRAL_NETTEST_H
#define CORRAL_NETTEST_H

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/net.h"
#include "util/util.h"

/* Each test defines this; it must be safe to call more than once. */
static void test_cleanup(void);

#define CHECK(cond)                                                                                          \
        do {                                                                                                 \
                if (!(cond)) {                                                                               \
                        fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);             \
                        test_cleanup();                                                                      \
                        exit(1);                                                                             \
                }                                                                                            \
        } while (0)

/* A call that fills `struct err e` and must succeed. */
#define CHECK_OK(call)                                                                                       \
        do {                                                                                                 \
                struct err e_ = ERR_INIT;                                                                    \
                struct err *e = &e_;                                                                         \
                if ((call) < 0) {                                                                            \
                        fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, e_.msg);        \
                        test_cleanup();                                                                      \
                        exit(1);                                                                             \
                }                                                                                            \
                err_clear(&e_);                                                                              \
        } while (0)

static inline void skip(const char *why)
{
        printf("SKIP: %s\n", why);
        exit(77);
}

static inline void need_root(void)
{
        if (geteuid() != 0)
                skip("needs root (network namespaces, netlink, nftables)");
}

static inline void need_file(const char *p)
{
        if (access(p, X_OK) != 0) {
                char *m = xasprintf("%s is missing", p);
                skip(m);
        }
}

/* Run argv inside netns `ns` (setns in a child); returns the exit status. */
static inline int run_in_netns(const char *ns, char *const argv[], bool quiet)
{
        pid_t pid = fork();
        if (pid == 0) {
                int fd = open(ns, O_RDONLY | O_CLOEXEC);
                if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
                        _exit(126);
                if (quiet) {
                        int nul = open("/dev/null", O_WRONLY);
                        dup2(nul, 1);
                        dup2(nul, 2);
                }
                execv(argv[0], argv);
                _exit(127);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static inline int ping_from(const char *ns, const char *ip)
{
        char *argv[] = {"/bin/busybox", "ping", "-c", "1", "-W", "3", (char *)ip, NULL};
        return run_in_netns(ns, argv, true);
}

static inline char *make_tmpdir(void)
{
        char tmpl[] = "/tmp/corral-net-XXXXXX";
        char *d = mkdtemp(tmpl);
        if (!d) {
                perror("mkdtemp");
                exit(1);
        }
        return xstrdup(d);
}

static inline void write_file(const char *path, const char *text, mode_t mode)
{
        struct err e = ERR_INIT;
        if (file_write_atomic(path, text, strlen(text), mode, &e) < 0) {
                fprintf(stderr, "write %s: %s\n", path, e.msg);
                exit(1);
        }
}

/* Undo the private bind mount net_ns_pin made of the ns root. */
static inline void release_ns_root(const char *root)
{
        while (umount2(root, MNT_DETACH) == 0)
                ;
}

static inline int read_sysctl(const char *path)
{
        char buf[16] = "";
        FILE *f = fopen(path, "r");
        if (!f)
                return -1;
        if (!fgets(buf, sizeof(buf), f))
                buf[0] = '\0';
        fclose(f);
        return atoi(buf);
}

static inline void write_sysctl(const char *path, int v)
{
        FILE *f = fopen(path, "w");
        if (f) {
                fprintf(f, "%d\n", v);
                fclose(f);
        }
}

#endif
