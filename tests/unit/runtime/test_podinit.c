/* runtime: the pod init holding a shared PID namespace, with real
 * containers joining it. Root only. */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "rt_helpers.h"

/* "pid:[4026532xxx]" of a process, or "" */
static void ns_of(pid_t pid, char *out, size_t cap)
{
        char p[64];
        snprintf(p, sizeof(p), "/proc/%d/ns/pid", (int)pid);
        ssize_t n = readlink(p, out, cap - 1);
        out[n > 0 ? n : 0] = '\0';
}

static char proc_state(pid_t pid)
{
        char p[64], *s = NULL;
        size_t n;
        snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
        if (file_read_all(p, &s, &n, 0, NULL) < 0)
                return 0;
        char *rp = strrchr(s, ')');
        char st = rp && rp[1] ? rp[2] : 0;
        free(s);
        return st;
}

static long status_field(pid_t pid, const char *key)
{
        char p[64], *s = NULL;
        size_t n;
        snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
        if (file_read_all(p, &s, &n, 0, NULL) < 0)
                return -1;
        char *l = strstr(s, key);
        long v = l ? strtol(l + strlen(key), NULL, 10) : -1;
        free(s);
        return v;
}

/* Host processes in namespace `ns`; *zombies of them in state Z. */
static int in_ns(const char *ns, int *zombies)
{
        DIR *d = opendir("/proc");
        struct dirent *de;
        int count = 0;
        *zombies = 0;
        while ((de = readdir(d))) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                if (*end || pid <= 0)
                        continue;
                char other[64];
                ns_of((pid_t)pid, other, sizeof(other));
                if (strcmp(other, ns) != 0)
                        continue;
                count++;
                if (proc_state((pid_t)pid) == 'Z')
                        (*zombies)++;
        }
        closedir(d);
        return count;
}

static bool gone_or_zombie(pid_t pid, int ms)
{
        for (int i = 0; i < ms / 10; i++) {
                char st = proc_state(pid);
                if (st == 0 || st == 'Z')
                        return true;
                usleep(10000);
        }
        return false;
}

/* Spawned by a helper process that is then SIGKILLed: the init must not
 * care. */
static pid_t spawn_from_doomed_caller(const char *name)
{
        int p[2];
        if (pipe(p) < 0)
                exit(1);
        pid_t h = fork();
        if (h == 0) {
                close(p[0]);
                struct err e = ERR_INIT;
                pid_t pid = -1;
                if (rt_pod_init_spawn(name, &pid, &e) < 0) {
                        fprintf(stderr, "spawn: %s\n", e.msg);
                        pid = -1;
                }
                (void)!write(p[1], &pid, sizeof(pid));
                pause();
                _exit(0);
        }
        close(p[1]);
        pid_t pid = -1;
        if (read(p[0], &pid, sizeof(pid)) != sizeof(pid))
                pid = -1;
        close(p[0]);
        CHECK(pid > 0 && status_field(pid, "PPid:") != h, "init %d is not the caller's child", (int)pid);
        kill(h, SIGKILL);
        waitpid(h, NULL, 0);
        return pid;
}

static void test_init_process(pid_t init, const char *name)
{
        char p[128], *v = NULL;
        size_t n;
        usleep(50000);
        snprintf(p, sizeof(p), "/proc/%d/comm", (int)init);
        CHECK(file_read_all(p, &v, &n, 0, NULL) == 0 && strcmp(v, "corral-pod-init\n") == 0, "comm %s", v);
        free(v);
        snprintf(p, sizeof(p), "/proc/%d/cmdline", (int)init);
        char want[128];
        size_t wl = (size_t)snprintf(want, sizeof(want), "corral-pod-init%c%s", 0, name) + 1;
        /* PR_SET_MM needs CAP_SYS_RESOURCE, which some hosts withhold. */
        bool named = file_read_all(p, &v, &n, 0, NULL) == 0 && n == wl && memcmp(v, want, wl) == 0;
        if (rt_host_features()->cap_sys_resource)
                CHECK(named, "cmdline names the pod (%zu bytes)", n);
        else
                fprintf(stderr, "     no CAP_SYS_RESOURCE: argv not renamed (comm is)\n");
        free(v);
        snprintf(p, sizeof(p), "/proc/%d/status", (int)init);
        CHECK(file_read_all(p, &v, &n, 0, NULL) == 0 && strstr(v, "NSpid:") &&
                      strncmp(strstr(v, "NSpid:") + strcspn(strstr(v, "NSpid:"), "\n") - 2, "\t1", 2) == 0,
              "pid 1 of its own namespace");
        free(v);
        CHECK(getsid(init) != getsid(0) && getsid(init) != init, "own session (sid %d)", (int)getsid(init));
        /* fds: 0 1 2 on /dev/null, nothing else */
        snprintf(p, sizeof(p), "/proc/%d/fd", (int)init);
        DIR *d = opendir(p);
        struct dirent *de;
        int nfd = 0, nnull = 0;
        while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char l[600], t[64];
                snprintf(l, sizeof(l), "%s/%s", p, de->d_name);
                ssize_t k = readlink(l, t, sizeof(t) - 1);
                t[k > 0 ? k : 0] = '\0';
                nfd++;
                nnull += strcmp(t, "/dev/null") == 0;
        }
        if (d)
                closedir(d);
        CHECK(nfd == 3 && nnull == 3, "fds: %d, on /dev/null: %d", nfd, nnull);
        snprintf(p, sizeof(p), "/proc/%d/cwd", (int)init);
        char cwd[64];
        ssize_t k = readlink(p, cwd, sizeof(cwd) - 1);
        cwd[k > 0 ? k : 0] = '\0';
        CHECK(strcmp(cwd, "/") == 0, "cwd %s", cwd);

        kill(init, SIGTERM);
        kill(init, SIGINT);
        kill(init, SIGHUP);
        kill(init, SIGCHLD);
        usleep(100000);
        char st = proc_state(init);
        CHECK(st == 'S', "alive after TERM/INT/HUP: state %c", st ? st : '-');
}

static struct rt_spec *pod_spec(pid_t init, const char *script)
{
        struct rt_spec *s = spec_for(script);
        s->namespaces[RT_NS_PID] = (struct rt_namespace){RT_NS_JOIN, xasprintf("/proc/%d/ns/pid", (int)init)};
        return s;
}

/* "<pid> <comm> <argv> " per process */
static const char *list_procs =
        "for p in /proc/[0-9]*; do echo \"${p#/proc/} $(cat $p/comm) $(tr '\\0' ' ' < $p/cmdline)\"; done";

static void test_shared_pid_ns(pid_t init)
{
        char ns[64];
        ns_of(init, ns, sizeof(ns));

        /* c1: a long-running container in the pod. */
        struct rt_spec *s1 = pod_spec(init, "exec sleep 1000");
        struct rt_container *c1 = NULL;
        struct err e = ERR_INIT;
        CHECK(rt_container_create(s1, NULL, &c1, &e) == 0, "%s", e.msg);
        if (c1 == NULL)
                return;
        CHECK(rt_container_start(c1, &e) == 0, "%s", e.msg);

        /* c2 lists the namespace, leaves a long orphan and a short one. */
        cleanup_free char *script = xasprintf("readlink /proc/self/ns/pid; cat /proc/1/comm; %s; "
                                              "sleep 999 </dev/null >/dev/null 2>&1 & "
                                              "sleep 0.3 </dev/null >/dev/null 2>&1 & exit 0",
                                              list_procs);
        struct rt_spec *s2 = pod_spec(init, script);
        struct result r;
        CHECK(run(s2, &r) == 0, "%s", r.e.msg);
        fprintf(stderr, "%s", r.out);
        char want[128];
        snprintf(want, sizeof(want), "%s\ncorral-pod-init\n", ns);
        CHECK(strncmp(r.out, want, strlen(want)) == 0, "same pid namespace, pid 1 is the init: %s", r.out);
        CHECK(strstr(r.out, "\n1 corral-pod-init") && strstr(r.out, " sleep 1000 \n"),
              "c2 sees c1's sleep: %s", r.out);

        /* c1 sees c2's orphan (through an exec into c1). */
        struct rt_process p = {0};
        strv_push(&p.args, "sh");
        strv_push(&p.args, "-c");
        strv_push(&p.args, list_procs);
        int po[2];
        pipe2(po, O_CLOEXEC);
        struct rt_stdio io = {-1, po[1], po[1]};
        pid_t xp = -1;
        CHECK(rt_exec(rt_container_pid(c1), s1, &p, &io, &xp, &e) == 0, "%s", e.msg);
        close(po[1]);
        char out[4096];
        read_all(po[0], out, sizeof(out));
        close(po[0]);
        if (xp > 0)
                waitpid(xp, NULL, 0);
        CHECK(strstr(out, " sleep 999 \n") && strstr(out, "1 corral-pod-init"), "c1 sees c2's process: %s",
              out);
        rt_process_clear(&p);

        /* The orphans went to the init, which reaps the short one. */
        usleep(700000);
        int zombies = 0;
        int n = in_ns(ns, &zombies);
        CHECK(n == 3 && zombies == 0, "init, c1, the long orphan; no zombie: %d procs, %d zombies", n,
              zombies);

        /* Not a pod init: refused, nothing sent. */
        CHECK(rt_pod_init_kill(rt_container_pid(c1), &e) < 0 && err_is(&e, ERR_PRECONDITION), "refused: %s",
              e.msg);
        err_clear(&e);
        CHECK(proc_state(rt_container_pid(c1)) == 'S', "c1 untouched");

        /* Stop the container (its shim reaps it), then the pod. */
        kill(rt_container_pid(c1), SIGKILL);
        waitpid(rt_container_pid(c1), NULL, 0);
        int64_t t0 = time_mono_ns();
        CHECK(rt_pod_init_kill(init, &e) == 0, "kill: %s", e.msg);
        fprintf(stderr, "     pod init kill: %.1f ms\n", (time_mono_ns() - t0) / 1e6);
        n = in_ns(ns, &zombies);
        CHECK(n == 0 || (n == 1 && zombies == 1 && proc_state(init) == 'Z'),
              "nothing left in the namespace: %d", n);
        CHECK(gone_or_zombie(init, 1000), "init gone");
        CHECK(rt_pod_init_kill(init, &e) == 0, "already gone is fine: %s", e.msg);
        rt_container_free(c1);
        rt_spec_free(s1);
        rt_spec_free(s2);
}

/* After a pid namespace join, the intermediate reports the real pid and its
 * child reports "ready", in either order. On a busy CPU the child can be
 * ready first; the pid left in the socket then came back at start in place
 * of the exec's EOF (seen under churn at 330 pods x 3). One CPU shared with
 * busy loops makes that order common; every create must still report the
 * process in the pod's namespace, and every start must succeed. */
static void test_join_order_under_load(pid_t init)
{
        char ns[64];
        ns_of(init, ns, sizeof(ns));
        cpu_set_t one, all;
        CHECK(sched_getaffinity(0, sizeof(all), &all) == 0, "affinity: %s", strerror(errno));
        CPU_ZERO(&one);
        for (int c = 0; c < CPU_SETSIZE; c++)
                if (CPU_ISSET(c, &all)) { /* the first CPU we may use */
                        CPU_SET(c, &one);
                        break;
                }
        CHECK(sched_setaffinity(0, sizeof(one), &one) == 0, "pin: %s", strerror(errno));
        pid_t hogs[3];
        for (int i = 0; i < 3; i++) {
                hogs[i] = fork();
                if (hogs[i] == 0) {
                        (void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test killed midway leaves no spinner */
                        for (;;)
                                ;
                }
        }
        int ok = 0, bad_pid = 0, bad_start = 0;
        const int rounds = 60;
        for (int i = 0; i < rounds; i++) {
                struct rt_spec *s = pod_spec(init, "exit 0");
                struct rt_container *c = NULL;
                struct err e = ERR_INIT;
                if (rt_container_create(s, NULL, &c, &e) < 0) {
                        fprintf(stderr, "     create %d: %s\n", i, e.msg);
                        bad_start++;
                } else {
                        char got[64];
                        ns_of(rt_container_pid(c), got, sizeof(got));
                        if (strcmp(got, ns) != 0) {
                                bad_pid++;
                                fprintf(stderr, "     create %d: pid %d is in '%s', not %s\n", i,
                                        (int)rt_container_pid(c), got, ns);
                        }
                        if (rt_container_start(c, &e) < 0) {
                                fprintf(stderr, "     start %d: %s\n", i, e.msg);
                                bad_start++;
                        } else {
                                waitpid(rt_container_pid(c), NULL, 0);
                                ok++;
                        }
                        rt_container_free(c);
                }
                err_clear(&e);
                rt_spec_free(s);
        }
        for (int i = 0; i < 3; i++) {
                kill(hogs[i], SIGKILL);
                waitpid(hogs[i], NULL, 0);
        }
        (void)sched_setaffinity(0, sizeof(all), &all);
        CHECK(ok == rounds && bad_pid == 0 && bad_start == 0,
              "%d of %d started; %d wrong pids, %d failed creates or starts", ok, rounds, bad_pid, bad_start);
}

/* A container process still in the namespace and not reaped by its parent
 * (us, playing the shim) holds the init's exit: ERR_DEADLINE, then done
 * once reaped. */
static void test_kill_waits_for_reaping(void)
{
        struct err e = ERR_INIT;
        pid_t init = -1;
        CHECK(rt_pod_init_spawn("pod-b", &init, &e) == 0, "%s", e.msg);
        if (init <= 0)
                return;
        CHECK(status_field(init, "PPid:") != getpid(), "not our child");
        struct rt_spec *s = pod_spec(init, "exec sleep 1000");
        struct rt_container *c = NULL;
        CHECK(rt_container_create(s, NULL, &c, &e) == 0, "%s", e.msg);
        if (c == NULL)
                return;
        CHECK(rt_container_start(c, &e) == 0, "%s", e.msg);
        CHECK(rt_pod_init_kill(init, &e) < 0 && err_is(&e, ERR_DEADLINE), "deadline: %s", e.msg);
        err_clear(&e);
        int status = 0;
        waitpid(rt_container_pid(c), &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "container killed with the init");
        CHECK(gone_or_zombie(init, 2000), "init gone once reaped");
        rt_container_free(c);
        rt_spec_free(s);
}

/* The pid file is there, with the init's pid, by the time the call returns
 * (a caller killed before it records the pid leaves it to its recovery). */
static void test_pid_file(void)
{
        struct err e = ERR_INIT;
        char *path = xasprintf("%s/init.pid", tmp);
        pid_t init = -1;
        CHECK(rt_pod_init_spawn_at("pod-c", path, &init, &e) == 0, "%s", e.msg);
        char *v = NULL;
        size_t n;
        CHECK(file_read_all(path, &v, &n, 0, NULL) == 0 && init > 0 && strtol(v, NULL, 10) == init,
              "pid file %s: %s (init %d)", path, v ? v : "(none)", (int)init);
        free(v);
        if (init > 0)
                CHECK(rt_pod_init_kill(init, &e) == 0, "%s", e.msg);
        free(path);
}

int main(void)
{
        need_root_and_busybox();
        make_rootfs();
        char name[64];
        snprintf(name, sizeof(name), "pod-test-%d", (int)getpid());
        int64_t t0 = time_mono_ns();
        pid_t init = spawn_from_doomed_caller(name);
        fprintf(stderr, "     spawn: %.1f ms (incl. helper)\n", (time_mono_ns() - t0) / 1e6);
        if (init > 0) {
                test_init_process(init, name);
                test_join_order_under_load(init);
                test_shared_pid_ns(init);
        }
        test_kill_waits_for_reaping();
        test_pid_file();

        struct err e = ERR_INIT;
        rm_rf(tmp, &e);
        if (failures) {
                fprintf(stderr, "%d failure(s)\n", failures);
                return 1;
        }
        printf("ok\n");
        return 0;
}
