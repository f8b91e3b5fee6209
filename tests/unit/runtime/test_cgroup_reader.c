/* rt_cgroup_reader: a cgroup's stats files held open give the figures
 * rt_cgroup_stats gives, they move with the workload at each read of the
 * same descriptors, a removed cgroup fails the read, and freeing the reader
 * gives every descriptor back. The host's driver, a real cgroup. Root only. */
#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

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

static int open_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        int n = 0;
        while (d && readdir(d))
                n++;
        if (d)
                closedir(d);
        return n;
}

/* A child that, each time it reads a byte on `go`, touches 16 MiB more and
 * burns 300 ms of CPU, then says so on `done`. */
static pid_t worker(int go, int done)
{
        pid_t p = fork();
        if (p != 0)
                return p;
        for (int round = 0; round < 2; round++) {
                char c;
                if (read(go, &c, 1) != 1)
                        _exit(1);
                char *m = malloc(16 << 20);
                memset(m, round + 1, 16 << 20);
                struct timespec t;
                do {
                        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
                } while (t.tv_sec * 1000 + t.tv_nsec / 1000000 < 300 * (round + 1) + 20);
                if (write(done, "d", 1) != 1)
                        _exit(1);
        }
        pause();
        _exit(0);
}

static void step(int go, int done)
{
        char c;
        if (write(go, "g", 1) != 1 || read(done, &c, 1) != 1)
                exit(1);
}

int main(void)
{
        if (geteuid() != 0) {
                fprintf(stderr, "skip: needs root\n");
                return 77;
        }
        char cg[96], parent[64];
        snprintf(parent, sizeof(parent), "/corral-cgreader-%d", (int)getpid());
        snprintf(cg, sizeof(cg), "%s/c1", parent);
        struct err e = ERR_INIT;
        if (rt_cgroup_create(cg, &(struct rt_resources){0}, &e) < 0) {
                fprintf(stderr, "skip: no cgroup here: %s\n", e.msg);
                return 77;
        }
        int go[2], done[2];
        CHECK(pipe(go) == 0 && pipe(done) == 0, "pipes");
        pid_t p = worker(go[0], done[1]);
        CHECK(rt_cgroup_enter(cg, p, &e) == 0, "%s", e.msg);

        int fds0 = open_fds();
        struct rt_cgroup_reader *r = NULL;
        CHECK(rt_cgroup_reader_open(cg, RT_CGR_PIDS, &r, &e) == 0, "%s", e.msg);
        int held = rt_cgroup_reader_fds(r);
        CHECK(held >= 3 && open_fds() == fds0 + held, "holds %d, %d open now (%d before)", held, open_fds(),
              fds0);

        step(go[1], done[0]);
        struct rt_cgroup_stats a, b, ref;
        CHECK(rt_cgroup_reader_read(r, &a, &e) == 0, "%s", e.msg);
        CHECK(rt_cgroup_stats(cg, &ref, &e) == 0, "%s", e.msg);
        CHECK(a.pids_current == 1 && ref.pids_current == 1, "pids %llu", (unsigned long long)a.pids_current);
        CHECK(a.memory_usage >= (16 << 20) && a.memory_working_set >= (16 << 20) &&
                      a.memory_working_set <= a.memory_usage,
              "usage %llu working set %llu", (unsigned long long)a.memory_usage,
              (unsigned long long)a.memory_working_set);
        /* The same files as rt_cgroup_stats: a few pages apart at most. */
        CHECK(a.memory_usage + (1 << 20) > ref.memory_usage && ref.memory_usage + (1 << 20) > a.memory_usage,
              "reader %llu, by path %llu", (unsigned long long)a.memory_usage,
              (unsigned long long)ref.memory_usage);
        CHECK(a.memory_rss + (1 << 20) > ref.memory_rss && ref.memory_rss + (1 << 20) > a.memory_rss,
              "rss: reader %llu, by path %llu", (unsigned long long)a.memory_rss,
              (unsigned long long)ref.memory_rss);
        CHECK(a.cpu_usage_ns >= 200000000ULL && a.cpu_usage_ns <= ref.cpu_usage_ns, "cpu %llu, by path %llu",
              (unsigned long long)a.cpu_usage_ns, (unsigned long long)ref.cpu_usage_ns);

        /* The same descriptors read again see the second round's work. */
        step(go[1], done[0]);
        CHECK(rt_cgroup_reader_read(r, &b, &e) == 0, "%s", e.msg);
        CHECK(b.cpu_usage_ns >= a.cpu_usage_ns + 200000000ULL, "cpu %llu -> %llu",
              (unsigned long long)a.cpu_usage_ns, (unsigned long long)b.cpu_usage_ns);
        CHECK(b.memory_usage >= a.memory_usage + (15 << 20), "memory %llu -> %llu",
              (unsigned long long)a.memory_usage, (unsigned long long)b.memory_usage);
        CHECK(open_fds() == fds0 + held, "no descriptor per read: %d open", open_fds());

        /* A reader without RT_CGR_PIDS holds one fewer and reads no pids. */
        struct rt_cgroup_reader *r2 = NULL;
        CHECK(rt_cgroup_reader_open(cg, 0, &r2, &e) == 0, "%s", e.msg);
        CHECK(rt_cgroup_reader_fds(r2) == held - 1, "%d", rt_cgroup_reader_fds(r2));
        CHECK(rt_cgroup_reader_read(r2, &b, &e) == 0 && b.pids_current == 0 && b.memory_usage > 0, "%s",
              e.msg);
        rt_cgroup_reader_free(r2);

        /* Removed: the held files fail, and by path there is nothing. */
        CHECK(rt_cgroup_kill_all(cg, SIGKILL, &e) == 0, "%s", e.msg);
        waitpid(p, NULL, 0);
        CHECK(rt_cgroup_remove(cg, 2000, &e) == 0, "%s", e.msg);
        CHECK(rt_cgroup_reader_read(r, &b, &e) < 0, "read after removal");
        err_clear(&e);
        CHECK(rt_cgroup_reader_open(cg, 0, &r2, &e) < 0 && r2 == NULL, "open after removal");
        err_clear(&e);
        rt_cgroup_reader_free(r);
        CHECK(open_fds() == fds0, "all given back: %d open, %d before", open_fds(), fds0);
        (void)rt_cgroup_remove(parent, 1000, NULL);
        close(go[1]);
        close(done[0]);
        return failures ? 1 : 0;
}
