/* runtime cgroups: the host's driver end to end with a plain process, and
 * the v2 driver against whatever cgroup2 mount this host has (on a v1
 * hybrid host: /sys/fs/cgroup/unified, which has no controllers; the core
 * files — cgroup.procs, cgroup.kill, rmdir — are real there). Root only. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <sys/wait.h>

#include "runtime/runtime-internal.h"

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

static int go[2];

/* A child that, once told (after it was moved), forks and touches memory:
 * kill-all must get both, and the memory is charged to the cgroup. */
static pid_t sleeper(void)
{
        if (pipe(go) < 0)
                exit(1);
        pid_t p = fork();
        if (p == 0) {
                char c;
                close(go[1]);
                if (read(go[0], &c, 1) != 1)
                        _exit(1);
                if (fork() == 0) {
                        char *m = malloc(4 << 20);
                        memset(m, 1, 4 << 20);
                        pause();
                }
                pause();
                _exit(0);
        }
        close(go[0]);
        return p;
}

static void release(void)
{
        (void)write(go[1], "g", 1);
        close(go[1]);
        usleep(100000);
}

static void test_host_driver(void)
{
        char cg[64];
        struct err e = ERR_INIT;
        snprintf(cg, sizeof(cg), "/corral-cgtest-%d/c1", (int)getpid());
        struct rt_resources r = {.cpu_shares = 512, .memory_limit = 100 << 20, .pids_limit = 10};
        CHECK(rt_cgroup_create(cg, &r, &e) == 0, "%s", e.msg);
        pid_t p = sleeper();
        CHECK(rt_cgroup_enter(cg, p, &e) == 0, "%s", e.msg);
        release();
        pid_t *pids = NULL;
        size_t n = 0;
        CHECK(rt_cgroup_pids(cg, &pids, &n, &e) == 0 && n == 2, "two pids: %zu", n);
        free(pids);
        struct rt_cgroup_stats st;
        CHECK(rt_cgroup_stats(cg, &st, &e) == 0 && st.pids_current == 2 && st.memory_usage > 0 &&
                      st.memory_working_set <= st.memory_usage,
              "stats pids=%llu mem=%llu ws=%llu %s", (unsigned long long)st.pids_current,
              (unsigned long long)st.memory_usage, (unsigned long long)st.memory_working_set, e.msg);
        CHECK(rt_cgroup_remove(cg, 100, &e) < 0, "busy cgroup not removed");
        err_clear(&e);
        CHECK(rt_cgroup_kill_all(cg, SIGKILL, &e) == 0, "%s", e.msg);
        waitpid(p, NULL, 0);
        CHECK(rt_cgroup_remove(cg, 2000, &e) == 0, "%s", e.msg);
        CHECK(rt_cgroup_remove(cg, 2000, &e) == 0, "missing is fine");
        char parent[64];
        snprintf(parent, sizeof(parent), "/corral-cgtest-%d", (int)getpid());
        (void)rt_cgroup_remove(parent, 1000, NULL);

        struct rt_resources bad = {.n_unified = 1};
        struct rt_kv kv = {"memory.high", "1G"};
        bad.unified = &kv;
        if (rt_cgroup_mode() != RT_CGROUP_V2_UNIFIED) {
                CHECK(rt_cgroup_create(cg, &bad, &e) < 0 && strstr(e.msg, "v2"), "unified on v1 refused: %s",
                      e.msg);
                err_clear(&e);
                (void)rt_cgroup_remove(parent, 1000, NULL);
        }
}

/* SIGKILL's first round does not freeze (runtime/cgroup_v1.c): processes
 * that keep forking must still all die, by the rounds that do. */
static void test_kill_all_forking(void)
{
        char cg[64];
        struct err e = ERR_INIT;
        snprintf(cg, sizeof(cg), "/corral-cgtest-%d/fork", (int)getpid());
        CHECK(rt_cgroup_create(cg, &(struct rt_resources){0}, &e) == 0, "%s", e.msg);
        int entered[2];
        CHECK(pipe(entered) == 0, "pipe");
        pid_t p = fork();
        if (p == 0) {
                close(entered[1]);
                char c;
                if (read(entered[0], &c, 1) != 1) /* in the cgroup first */
                        _exit(1);
                for (int i = 0; i < 2000; i++) { /* a child every ms, each forking one more */
                        if (fork() == 0) {
                                if (fork() == 0)
                                        pause();
                                pause();
                        }
                        usleep(1000);
                }
                pause();
                _exit(0);
        }
        close(entered[0]);
        CHECK(rt_cgroup_enter(cg, p, &e) == 0, "%s", e.msg);
        CHECK(write(entered[1], "g", 1) == 1, "go");
        close(entered[1]);
        usleep(50000);
        CHECK(rt_cgroup_kill_all(cg, SIGKILL, &e) == 0, "%s", e.msg);
        waitpid(p, NULL, 0);
        pid_t *pids = NULL;
        size_t n = 0;
        for (int i = 0; i < 100; i++) { /* orphans are reaped by init, not us */
                free(pids);
                pids = NULL;
                if (rt_cgroup_pids(cg, &pids, &n, &e) < 0 || n == 0)
                        break;
                usleep(10000);
        }
        free(pids);
        CHECK(n == 0, "%zu processes survive kill_all", n);
        CHECK(rt_cgroup_remove(cg, 2000, &e) == 0, "%s", e.msg);
}

static void test_v2_driver(void)
{
        const char *root = NULL;
        struct statfs sf;
        if (statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
                root = "/sys/fs/cgroup";
        else if (statfs("/sys/fs/cgroup/unified", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
                root = "/sys/fs/cgroup/unified";
        if (root == NULL) {
                fprintf(stderr, "skip  v2 driver: no cgroup2 mount\n");
                return;
        }
        const struct rt_cgroup_ops *v2 = &rt_cgroup_v2_ops;
        struct err e = ERR_INIT;
        char cg[64];
        snprintf(cg, sizeof(cg), "/corral-v2test-%d/c", (int)getpid());
        CHECK(v2->create(root, cg, NULL, &e) == 0, "%s", e.msg);
        pid_t p = sleeper();
        CHECK(v2->enter(root, cg, p, &e) == 0, "%s", e.msg);
        release();
        pid_t *pids = NULL;
        size_t n = 0;
        CHECK(v2->pids(root, cg, &pids, &n, &e) == 0 && n == 2, "pids %zu", n);
        free(pids);
        /* cgroup.kill (5.14+) is a core file: it exists without controllers. */
        CHECK(v2->kill_all(root, cg, SIGKILL, &e) == 0, "%s", e.msg);
        int status;
        waitpid(p, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "killed by cgroup.kill");
        CHECK(v2->remove(root, cg, 2000, &e) == 0, "%s", e.msg);

        /* Limits need controllers; where they are missing the error says so. */
        struct rt_resources r = {.memory_limit = 64 << 20};
        int rc = v2->create(root, cg, &r, &e);
        cleanup_free char *avail = NULL;
        cleanup_free char *ap = path_join(root, "cgroup.controllers");
        size_t len;
        (void)file_read_all(ap, &avail, &len, 0, NULL);
        if (avail && strstr(avail, "memory")) {
                CHECK(rc == 0, "memory.max set: %s", e.msg);
                CHECK(v2->remove(root, cg, 2000, &e) == 0, "%s", e.msg);
        } else {
                CHECK(rc < 0 && strstr(e.msg, "memory") && strstr(e.msg, "not enabled"), "clear error: %s",
                      e.msg);
                err_clear(&e);
                fprintf(stderr,
                        "note  v2 %s has controllers \"%.*s\": memory/cpu/pids limits untestable here\n",
                        root, avail ? (int)strcspn(avail, "\n") : 0, avail ? avail : "");
        }
        char parent[64];
        snprintf(parent, sizeof(parent), "/corral-v2test-%d", (int)getpid());
        (void)v2->remove(root, cg, 100, NULL);
        CHECK(v2->remove(root, parent, 1000, &e) == 0, "%s", e.msg);
}

int main(void)
{
        if (geteuid() != 0) {
                printf("skipped: needs root (cgroups)\n");
                return 77;
        }
        fprintf(stderr, "cgroup mode %s, driver %s\n", rt_cgroup_mode_name(rt_cgroup_mode()),
                rt_cgroup_driver_name());
        test_host_driver();
        test_kill_all_forking();
        test_v2_driver();
        if (failures) {
                fprintf(stderr, "%d failure(s)\n", failures);
                return 1;
        }
        printf("ok\n");
        return 0;
}
