/* The systemd cgroup driver against a real systemd on pure cgroup v2 (the
 * test guest, tests/guest): a pod slice and a container scope started over
 * D-Bus with their limits, the scope's leaf with the holder that keeps it up
 * until a process of the container joins, updates through systemd, removal
 * that leaves no unit and no directory. Exits 77 elsewhere, with the reason. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
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

#define CG "/sys/fs/cgroup"

static char *rd(const char *dir, const char *file)
{
        cleanup_free char *p = path_join(dir, file);
        char *s = NULL;
        size_t n;
        if (file_read_all(p, &s, &n, 0, NULL) < 0)
                return xstrdup("(unreadable)");
        s[strcspn(s, "\n")] = '\0';
        return s;
}

static bool is_dir(const char *p)
{
        struct stat st;
        return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static size_t nprocs(const char *dir)
{
        pid_t *pids = NULL;
        size_t n = 0;
        (void)cg_read_pids(dir, &pids, &n, NULL);
        free(pids);
        return n;
}

static void test_slice_and_scope(void)
{
        struct err e = ERR_INIT;
        char slice[64], scope[128];
        snprintf(slice, sizeof(slice), "corral-ut%d.slice", (int)getpid());
        snprintf(scope, sizeof(scope), "%s:corral:ut%d", slice, (int)getpid());

        struct rt_resources pod = {.memory_limit = 64 << 20, .pids_limit = 200};
        CHECK(rt_cgroup_create(slice, &pod, &e) == 0, "%s", e.msg);
        cleanup_free char *sdir = NULL;
        CHECK(rt_cgroup_resolve(slice, &sdir, &e) == 0, "%s", e.msg);
        cleanup_free char *sabs = path_join(CG, sdir);
        CHECK(str_has_prefix(sdir, "/corral.slice/"), "%s", sdir);
        cleanup_free char *smem = rd(sabs, "memory.max");
        CHECK(strcmp(smem, "67108864") == 0, "slice memory.max %s", smem);

        struct rt_resources r = {.memory_limit = 32 << 20,
                                 .cpu_quota = 25000,
                                 .cpu_period = 100000,
                                 .cpu_shares = 1024,
                                 .pids_limit = 50};
        CHECK(rt_cgroup_create(scope, &r, &e) == 0, "%s", e.msg);
        cleanup_free char *cdir = NULL;
        CHECK(rt_cgroup_resolve(scope, &cdir, &e) == 0, "%s", e.msg);
        cleanup_free char *cabs = path_join(CG, cdir);
        cleanup_free char *leaf = path_join(cabs, CG_SCOPE_LEAF);
        CHECK(is_dir(cabs) && is_dir(leaf), "scope %s and its leaf", cabs);
        cleanup_free char *m1 = rd(cabs, "memory.max"), *m2 = rd(leaf, "memory.max"),
                          *c1 = rd(cabs, "cpu.max"), *p1 = rd(cabs, "pids.max");
        CHECK(strcmp(m1, "33554432") == 0 && strcmp(m2, "33554432") == 0, "memory.max %s / leaf %s", m1, m2);
        CHECK(strcmp(c1, "25000 100000") == 0, "cpu.max %s", c1);
        CHECK(strcmp(p1, "50") == 0, "pids.max %s", p1);
        /* The holder keeps the scope up, alone in the leaf, until a process joins. */
        CHECK(nprocs(leaf) == 1 && nprocs(cabs) == 0, "holder in the leaf: %zu, scope: %zu", nprocs(leaf),
              nprocs(cabs));
        pid_t child = fork();
        if (child == 0) {
                pause();
                _exit(0);
        }
        cleanup_free char *leaf_rel = path_join(cdir, CG_SCOPE_LEAF);
        CHECK(rt_cgroup_enter(leaf_rel, child, &e) == 0, "%s", e.msg);
        CHECK(nprocs(leaf) >= 1, "the child in the leaf");
        for (int i = 0; i < 100 && nprocs(leaf) > 1; i++)
                usleep(50000);
        pid_t *pids = NULL;
        size_t n = 0;
        CHECK(cg_read_pids(leaf, &pids, &n, &e) == 0 && n == 1 && pids[0] == child,
              "the holder left once a process joined: %zu", n);
        free(pids);

        struct rt_resources up = {.memory_limit = 48 << 20};
        CHECK(rt_cgroup_update(cdir, &up, &e) == 0, "%s", e.msg);
        cleanup_free char *m3 = rd(cabs, "memory.max"), *m4 = rd(leaf, "memory.max");
        CHECK(strcmp(m3, "50331648") == 0 && strcmp(m4, "50331648") == 0, "updated %s / leaf %s", m3, m4);

        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        CHECK(rt_cgroup_remove(cdir, 5000, &e) == 0, "%s", e.msg);
        CHECK(!is_dir(cabs), "scope gone: %s", cabs);
        CHECK(rt_cgroup_remove(cdir, 5000, &e) == 0, "a unit already gone is fine: %s", e.msg);
        CHECK(rt_cgroup_remove(slice, 5000, &e) == 0, "%s", e.msg);
        CHECK(!is_dir(sabs), "slice gone: %s", sabs);
        err_clear(&e);
}

int main(void)
{
        if (geteuid() != 0) {
                printf("skipped: needs root (cgroups)\n");
                return 77;
        }
        struct err e = ERR_INIT;
        if (rt_cgroup_systemd_enable(&e) < 0) {
                printf("skipped: %s (the test guest has it: ctest -L guest)\n", e.msg);
                err_clear(&e);
                return 77;
        }
        CHECK(strcmp(rt_cgroup_driver_name(), "systemd") == 0, "%s", rt_cgroup_driver_name());
        test_slice_and_scope();
        if (failures) {
                fprintf(stderr, "%d failure(s)\n", failures);
                return 1;
        }
        printf("ok\n");
        return 0;
}
