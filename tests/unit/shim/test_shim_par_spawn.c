/* shim_spawn without fork(): the two children of the double spawn share
 * the caller's memory (vfork-like) instead of copying its page tables, so
 * the caller takes no copy-on-write fault for a page it writes afterwards
 * (corrald, multi-threaded, took one per page written by any thread while
 * pods started in parallel). Also: spawns from many threads at once each
 * get their own report, and no child is left behind. The shim binary is
 * one that does not exist: the clone chain, the exec and the report of its
 * failure all run, and no container is needed. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "../check.h"
#include "runtime/runtime.h"
#include "shim/shim.h"

enum { BUF = 32 << 20, PAGE = 4096, THREADS = 8 };

static char *tmp;

static long minflt(void)
{
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return ru.ru_minflt;
}

/* One spawn of a missing binary; true if it failed as it should. */
static bool spawn_missing(const char *name)
{
        cleanup_free char *bundle = xasprintf("%s/%s/bundle", tmp, name);
        cleanup_free char *state = xasprintf("%s/%s/state", tmp, name);
        cleanup_free char *shim = xasprintf("%s/no-such-corral-shim-%s", tmp, name);
        if (mkdir_p(bundle, 0700, NULL) < 0)
                return false;
        struct shim_opts o = {.id = name, .bundle = bundle, .state_dir = state, .shim_path = shim};
        struct shim_info info;
        cleanup_err struct err e = ERR_INIT;
        if (shim_spawn(&o, &info, &e) == 0)
                return false;
        /* The exec's own errno and the path come back through the pipe. */
        bool ok = e.msg && strstr(e.msg, shim) && e.errnum == ENOENT;
        if (!ok)
                fprintf(stderr, "%s: unexpected error: %s (errno %d)\n", name, e.msg ? e.msg : "(none)",
                        e.errnum);
        return ok;
}

static void test_no_cow(void)
{
        char *buf = xmalloc(BUF);
        memset(buf, 1, BUF);
        CHECK(spawn_missing("cow"));
        long before = minflt();
        for (size_t i = 0; i < BUF; i += PAGE)
                buf[i] = 2;
        long faults = minflt() - before;
        /* A fork() write-protects all 8,192 pages: each write faults. */
        fprintf(stderr, "faults writing %d pages after the spawn: %ld\n", BUF / PAGE, faults);
        CHECK(faults < BUF / PAGE / 8);
        free(buf);
}

static void *spawn_thread(void *arg)
{
        char name[32];
        snprintf(name, sizeof(name), "t%d", (int)(intptr_t)arg);
        for (int i = 0; i < 5; i++)
                if (!spawn_missing(name))
                        return (void *)1;
        return NULL;
}

static void test_threads(void)
{
        pthread_t th[THREADS];
        for (int i = 0; i < THREADS; i++)
                CHECK(pthread_create(&th[i], NULL, spawn_thread, (void *)(intptr_t)i) == 0);
        for (int i = 0; i < THREADS; i++) {
                void *r = NULL;
                pthread_join(th[i], &r);
                CHECK(r == NULL);
        }
        /* The middle children were reaped by shim_spawn; the shims were
         * never ours. */
        CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
}

/* The shim gets our cgroup v1 table on its command line (it would read
 * /proc/self/mountinfo for it otherwise): a stand-in shim records it. */
static void test_cgroup_layout(void)
{
        cleanup_free char *layout = rt_cgroup_v1_layout();
        cleanup_free char *script = path_join(tmp, "fake-shim");
        cleanup_free char *out = path_join(tmp, "fake-shim.args");
        cleanup_free char *text =
                xasprintf("#!/bin/sh\nfor a in \"$@\"; do printf '%%s\\0' \"$a\"; done > %s\n", out);
        CHECK(file_write_atomic(script, text, strlen(text), 0755, NULL) == 0);
        cleanup_free char *bundle = path_join(tmp, "fake/bundle");
        cleanup_free char *state = path_join(tmp, "fake/state");
        CHECK(mkdir_p(bundle, 0700, NULL) == 0);
        struct shim_opts o = {.id = "fake", .bundle = bundle, .state_dir = state, .shim_path = script};
        struct shim_info info;
        cleanup_err struct err e = ERR_INIT;
        CHECK(shim_spawn(&o, &info, &e) < 0); /* it reports nothing */
        cleanup_free char *args = NULL;
        size_t n = 0;
        CHECK(file_read_all(out, &args, &n, 1 << 20, NULL) == 0);
        bool found = false;
        for (size_t i = 0; args && i < n; i += strlen(args + i) + 1)
                if (strcmp(args + i, "--cgroup-v1") == 0 && i + strlen(args + i) + 1 < n)
                        found = strcmp(args + i + strlen(args + i) + 1, layout) == 0;
        if (rt_cgroup_mode() == RT_CGROUP_V2_UNIFIED)
                CHECK(!found);
        else
                CHECK(found && *layout);
}

int main(void)
{
        char tmpl[] = "/tmp/corral-shim-spawn.XXXXXX";
        tmp = mkdtemp(tmpl);
        if (tmp == NULL) {
                perror("mkdtemp");
                return 1;
        }
        test_no_cow();
        test_threads();
        test_cgroup_layout();
        if (check_failures == 0)
                (void)rm_rf(tmp, NULL);
        return check_report("test_shim_par_spawn");
}
