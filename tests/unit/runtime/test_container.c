/* runtime: real containers from a busybox rootfs built in the test. Root only. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "rt_helpers.h"

static char cg_base[64];

static void test_echo(void)
{
        struct rt_spec *s = spec_for("echo hi");
        struct result r;
        int64_t t0 = time_mono_ns();
        CHECK(run_split(s, &r) == 0, "%s", r.e.msg);
        fprintf(stderr, "     create+start+exit of echo: %.1f ms\n", (time_mono_ns() - t0) / 1e6);
        CHECK(strcmp(r.out, "hi\n") == 0, "stdout=%s", r.out);
        CHECK(exit_code(&r) == 0, "exit %d", exit_code(&r));
        err_clear(&r.e);
        rt_spec_free(s);

        s = spec_for("echo oops >&2; exit 7");
        CHECK(run_split(s, &r) == 0, "%s", r.e.msg);
        CHECK(exit_code(&r) == 7, "exit %d", exit_code(&r));
        CHECK(strcmp(r.err, "oops\n") == 0, "stderr=%s", r.err);
        rt_spec_free(s);
}

static void test_user(void)
{
        struct rt_spec *s = spec_for("id -u; id -g; id -G; cat /proc/self/status | grep CapEff");
        s->process.username = xstrdup("app");
        struct result r;
        CHECK(run_split(s, &r) == 0, "%s", r.e.msg);
        CHECK(strncmp(r.out, "1234\n1234\n", 10) == 0, "out=%s", r.out);
        CHECK(strstr(r.out, "777") != NULL, "supplementary group from /etc/group: %s", r.out);
        /* A non-root user has no effective capabilities after exec. */
        CHECK(strstr(r.out, "CapEff:\t0000000000000000") != NULL, "out=%s", r.out);
        rt_spec_free(s);

        uint32_t uid, gid, *groups = NULL;
        size_t ng = 0;
        struct err e = ERR_INIT;
        CHECK(rt_resolve_user(rootfs, "app", &uid, &gid, &groups, &ng, &e) == 0 && uid == 1234 && ng == 1 &&
                      groups[0] == 777,
              "resolve app: %s", e.msg);
        free(groups);
        CHECK(rt_resolve_user(rootfs, "nobody2", &uid, &gid, NULL, NULL, &e) < 0 && err_is(&e, ERR_NOT_FOUND),
              "unknown user");
        err_clear(&e);
}

static void test_readonly_and_caps(void)
{
        struct rt_spec *s = spec_for("touch /x 2>&1; echo rc=$?; touch /tmp/y; echo tmp=$?");
        s->readonly_rootfs = true;
        /* A writable /tmp as kubelet would give through an emptyDir. */
        s->mounts = xcalloc(1, sizeof(struct rt_mount));
        s->n_mounts = 1;
        s->mounts[0].destination = xstrdup("/tmp");
        s->mounts[0].type = xstrdup("tmpfs");
        s->mounts[0].source = xstrdup("tmpfs");
        strv_push(&s->mounts[0].options, "nosuid");
        struct result r;
        CHECK(run_split(s, &r) == 0, "%s", r.e.msg);
        CHECK(strstr(r.out, "Read-only file system") && strstr(r.out, "rc=1"), "out=%s", r.out);
        CHECK(strstr(r.out, "tmp=0"), "tmpfs mount writable: %s", r.out);
        rt_spec_free(s);

        s = spec_for("grep -E 'Cap(Eff|Bnd)' /proc/self/status");
        strv_free(s->process.caps.bounding);
        strv_free(s->process.caps.effective);
        strv_free(s->process.caps.permitted);
        s->process.caps.bounding = s->process.caps.effective = s->process.caps.permitted = NULL;
        strv_push(&s->process.caps.bounding, "CAP_CHOWN");
        strv_push(&s->process.caps.bounding, "CAP_KILL");
        strv_push(&s->process.caps.effective, "CAP_CHOWN");
        strv_push(&s->process.caps.permitted, "CAP_CHOWN");
        CHECK(run_split(s, &r) == 0, "%s", r.e.msg);
        /* root: after execve effective = bounding (CHOWN bit 0 | KILL bit 5) */
        CHECK(strstr(r.out, "CapEff:\t0000000000000021") && strstr(r.out, "CapBnd:\t0000000000000021"),
              "out=%s", r.out);
        rt_spec_free(s);
}

static void test_seccomp(void)
{
        struct rt_spec *s = spec_for("unshare -U true 2>&1; echo rc=$?; unshare -r true 2>&1; echo rc=$?");
        s->seccomp = rt_seccomp_default_profile(&s->process.caps);
        s->process.no_new_privs = true;
        struct result r;
        CHECK(run_split(s, &r) == 0, "%s", r.e.msg);
        CHECK(strstr(r.out, "Operation not permitted") && !strstr(r.out, "rc=0"), "out=%s", r.out);
        rt_spec_free(s);

        /* Control: same command without the profile, CAP_SYS_ADMIN added. */
        s = spec_for("unshare -U true 2>&1; echo rc=$?");
        strv_push(&s->process.caps.bounding, "CAP_SYS_ADMIN");
        CHECK(run_split(s, &r) == 0, "%s", r.e.msg);
        CHECK(strstr(r.out, "rc=0"), "unconfined unshare works: %s", r.out);
        rt_spec_free(s);

        /* Without no_new_privs the filter goes in before the uid switch. */
        s = spec_for("unshare -U true 2>&1; echo rc=$?; id -u");
        s->seccomp = rt_seccomp_default_profile(&s->process.caps);
        s->process.uid = 1234;
        s->process.gid = 1234;
        CHECK(run_split(s, &r) == 0, "%s", r.e.msg);
        CHECK(strstr(r.out, "Operation not permitted") && strstr(r.out, "1234"), "out=%s", r.out);
        rt_spec_free(s);
}

static void test_masked_and_devices(void)
{
        struct rt_spec *s =
                spec_for("wc -c < /proc/meminfo; ls /sys/firmware | wc -l; touch /sys/firmware/x 2>&1; "
                         "echo > /proc/sys/kernel/domainname 2>&1 || echo ro-ok; "
                         "ls -l /dev/xnull; echo x > /dev/xnull && echo dev-ok; ls /dev");
        strv_push(&s->masked_paths, "/proc/meminfo");
        strv_push(&s->masked_paths, "/proc/kcore"); /* absent on some kernels: skipped */
        strv_push(&s->masked_paths, "/sys/firmware");
        strv_push(&s->masked_paths, "/proc/does-not-exist");
        strv_push(&s->readonly_paths, "/proc/sys");
        s->devices = xcalloc(1, sizeof(struct rt_device));
        s->n_devices = 1;
        s->devices[0] = (struct rt_device){xstrdup("/dev/xnull"), 'c', 1, 3, 0640, 0, 0, NULL};
        struct result r;
        CHECK(run_split(s, &r) == 0, "%s", r.e.msg);
        CHECK(strncmp(r.out, "0\n0\n", 4) == 0, "masked file empty, masked dir empty: %s", r.out);
        CHECK(strstr(r.out, "Read-only file system") && strstr(r.out, "ro-ok"), "ro paths: %s", r.out);
        CHECK(strstr(r.out, "crw-r-----") && strstr(r.out, "1,   3") && strstr(r.out, "dev-ok"), "device: %s",
              r.out);
        CHECK(strstr(r.out, "ptmx") && strstr(r.out, "urandom") && strstr(r.out, "shm") &&
                      strstr(r.out, "mqueue"),
              "standard /dev: %s", r.out);
        rt_spec_free(s);
}

static void test_netns_and_sysctl(void)
{
        char nsfile[300], cmd[700];
        snprintf(nsfile, sizeof(nsfile), "%s/netns", tmp);
        snprintf(cmd, sizeof(cmd), "touch %s && unshare --net=%s ip link set lo up", nsfile, nsfile);
        sh(cmd);
        struct stat st;
        stat(nsfile, &st);

        struct rt_spec *s = spec_for("readlink /proc/self/ns/net; cat /proc/sys/net/ipv4/ip_forward; "
                                     "cat /proc/sys/kernel/shmmni; ip link show lo | grep -c UP");
        s->namespaces[RT_NS_NET] = (struct rt_namespace){RT_NS_JOIN, xstrdup(nsfile)};
        s->sysctls = xcalloc(2, sizeof(struct rt_kv));
        s->n_sysctls = 2;
        s->sysctls[0] = (struct rt_kv){xstrdup("net.ipv4.ip_forward"), xstrdup("1")};
        s->sysctls[1] = (struct rt_kv){xstrdup("kernel.shmmni"), xstrdup("1234")};
        struct result r;
        char want[64];
        snprintf(want, sizeof(want), "net:[%lu]\n1\n1234\n1\n", (unsigned long)st.st_ino);
        CHECK(run_split(s, &r) == 0, "%s", r.e.msg);
        CHECK(strcmp(r.out, want) == 0, "joined pinned netns, sysctls applied: %s (want %s)", r.out, want);
        rt_spec_free(s);

        s = spec_for("true");
        s->sysctls = xcalloc(1, sizeof(struct rt_kv));
        s->n_sysctls = 1;
        s->sysctls[0] = (struct rt_kv){xstrdup("kernel.panic"), xstrdup("1")};
        CHECK(run_split(s, &r) < 0 && err_is(&r.e, ERR_INVALID) && strstr(r.e.msg, "kernel.panic"),
              "refused: %s", r.e.msg);
        err_clear(&r.e);
        rt_spec_free(s);
        umount2(nsfile, MNT_DETACH);
}

static bool cg_exists(const char *path)
{
        char p[512];
        snprintf(p, sizeof(p), "/sys/fs/cgroup/%s%s",
                 rt_cgroup_mode() == RT_CGROUP_V2_UNIFIED ? "" : "memory", path);
        return access(p, F_OK) == 0;
}

static void test_oom(void)
{
        char cg[128];
        snprintf(cg, sizeof(cg), "%s/oom", cg_base);
        struct rt_spec *s = spec_for("echo start; exec dd if=/dev/zero of=/dev/null bs=128M count=1");
        s->cgroup_path = xstrdup(cg);
        s->resources.memory_limit = 32 << 20;
        s->resources.pids_limit = 64;
        s->resources.cpu_shares = 256;
        s->process.has_oom_score_adj = true;
        s->process.oom_score_adj = 500;
        int po[2];
        pipe2(po, O_CLOEXEC);
        struct rt_stdio io = {-1, po[1], -1};
        struct rt_container *c = NULL;
        struct err e = ERR_INIT;
        CHECK(rt_container_create(s, &io, &c, &e) == 0, "%s", e.msg);
        close(po[1]);
        if (c == NULL)
                return;
        int ofd = rt_cgroup_oom_fd(cg, &e);
        CHECK(ofd >= 0, "oom fd: %s", e.msg);
        err_clear(&e);
        CHECK(rt_container_start(c, &e) == 0, "%s", e.msg);
        char out[256];
        read_all(po[0], out, sizeof(out));
        close(po[0]);
        int status = 0;
        waitpid(rt_container_pid(c), &status, 0);
        struct pollfd pfd = {ofd, POLLIN, 0};
        CHECK(ofd < 0 || poll(&pfd, 1, 1000) == 1, "oom eventfd fired");
        uint64_t kills = 0;
        CHECK(rt_cgroup_oom_kills(cg, &kills, &e) == 0 && kills >= 1, "oom_kill=%llu %s",
              (unsigned long long)kills, e.msg);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "OOM-killed: status 0x%x out=%s", status,
              out);
        struct rt_cgroup_stats st;
        CHECK(rt_cgroup_stats(cg, &st, &e) == 0 && st.oom_kills >= 1 && st.cpu_usage_ns > 0, "stats: %s",
              e.msg);
        CHECK(rt_cgroup_remove(cg, 2000, &e) == 0, "remove: %s", e.msg);
        CHECK(!cg_exists(cg), "cgroup gone");
        if (ofd >= 0)
                close(ofd);
        rt_container_free(c);
        rt_spec_free(s);
}

static void test_limits_applied(void)
{
        char cg[128];
        snprintf(cg, sizeof(cg), "%s/limits", cg_base);
        struct rt_spec *s = spec_for("cat /proc/self/oom_score_adj; sleep 0");
        s->cgroup_path = xstrdup(cg);
        s->resources.memory_limit = 64 << 20;
        s->resources.cpu_quota = 50000;
        s->resources.cpu_period = 100000;
        s->resources.pids_limit = 32;
        s->process.has_oom_score_adj = true;
        s->process.oom_score_adj = -500; /* below ours: clamped without CAP_SYS_RESOURCE */
        int po[2];
        pipe2(po, O_CLOEXEC);
        struct rt_stdio io = {-1, po[1], -1};
        struct rt_container *c = NULL;
        struct err e = ERR_INIT;
        CHECK(rt_container_create(s, &io, &c, &e) == 0, "%s", e.msg);
        close(po[1]);
        if (c == NULL)
                return;
        if (rt_cgroup_mode() != RT_CGROUP_V2_UNIFIED) {
                char p[512], *v = NULL;
                size_t n;
                snprintf(p, sizeof(p), "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", cg);
                CHECK(file_read_all(p, &v, &n, 0, NULL) == 0 && atoll(v) == 64 << 20, "memory limit %s", v);
                free(v);
                snprintf(p, sizeof(p), "/sys/fs/cgroup/cpu%s/cpu.cfs_quota_us", cg);
                CHECK(file_read_all(p, &v, &n, 0, NULL) == 0 && atoll(v) == 50000, "quota %s", v);
                free(v);
                snprintf(p, sizeof(p), "/sys/fs/cgroup/pids%s/pids.max", cg);
                CHECK(file_read_all(p, &v, &n, 0, NULL) == 0 && atoll(v) == 32, "pids %s", v);
                free(v);
        }
        pid_t *pids = NULL;
        size_t np = 0;
        CHECK(rt_cgroup_pids(cg, &pids, &np, &e) == 0 && np == 1 && pids[0] == rt_container_pid(c),
              "in cgroup");
        free(pids);
        struct rt_resources upd = {.memory_limit = 48 << 20};
        CHECK(rt_cgroup_update(cg, &upd, &e) == 0, "update: %s", e.msg);
        CHECK(rt_container_start(c, &e) == 0, "%s", e.msg);
        char out[256];
        read_all(po[0], out, sizeof(out));
        close(po[0]);
        int status;
        waitpid(rt_container_pid(c), &status, 0);
        char self[16] = {0};
        int fd = open("/proc/self/oom_score_adj", O_RDONLY);
        read(fd, self, sizeof(self) - 1);
        close(fd);
        bool has_res = rt_host_features()->cap_sys_resource;
        CHECK(has_res ? atoi(out) == -500 : atoi(out) == atoi(self), "oom_score_adj %s (ours %s)", out, self);
        CHECK(rt_cgroup_remove(cg, 2000, &e) == 0 && !cg_exists(cg), "removed: %s", e.msg);
        rt_container_free(c);
        rt_spec_free(s);
}

static void test_exec(void)
{
        char cg[128];
        snprintf(cg, sizeof(cg), "%s/exec", cg_base);
        struct rt_spec *s = spec_for("exec sleep 30");
        s->cgroup_path = xstrdup(cg);
        s->seccomp = rt_seccomp_default_profile(&s->process.caps);
        s->process.no_new_privs = true;
        struct rt_container *c = NULL;
        struct err e = ERR_INIT;
        CHECK(rt_container_create(s, NULL, &c, &e) == 0, "%s", e.msg);
        if (c == NULL)
                return;
        CHECK(rt_container_start(c, &e) == 0, "%s", e.msg);

        struct rt_process p = {0};
        strv_push(&p.args, "sh");
        strv_push(&p.args, "-c");
        strv_push(&p.args, "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; id -u; unshare -U true 2>&1 "
                           "| grep -c 'not permitted'");
        p.username = xstrdup("app");
        int po[2];
        pipe2(po, O_CLOEXEC);
        struct rt_stdio io = {-1, po[1], po[1]};
        pid_t pid = -1;
        CHECK(rt_exec(rt_container_pid(c), s, &p, &io, &pid, &e) == 0, "%s", e.msg);
        close(po[1]);
        char out[512];
        read_all(po[0], out, sizeof(out));
        close(po[0]);
        int status = -1;
        if (pid > 0)
                waitpid(pid, &status, 0);
        CHECK(strcmp(out, "corral-test\nsleep 30 \n1234\n1\n") == 0 && status == 0,
              "same uts + pid ns, user, seccomp: %s", out);
        pid_t *pids = NULL;
        size_t np = 0;
        CHECK(rt_cgroup_pids(cg, &pids, &np, &e) == 0 && np == 1, "exec'd process joined the cgroup, exited");
        free(pids);

        rt_process_clear(&p);
        strv_push(&p.args, "/bin/nope");
        CHECK(rt_exec(rt_container_pid(c), s, &p, NULL, &pid, &e) < 0 && strstr(e.msg, "/bin/nope"),
              "exec of a missing binary: %s", e.msg);
        err_clear(&e);
        rt_process_clear(&p);

        CHECK(rt_cgroup_kill_all(cg, SIGKILL, &e) == 0, "kill all: %s", e.msg);
        waitpid(rt_container_pid(c), &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "killed");
        CHECK(rt_cgroup_remove(cg, 2000, &e) == 0 && !cg_exists(cg), "removed");
        rt_container_free(c);
        rt_spec_free(s);
}

static void test_create_failures(void)
{
        char cg[128];
        snprintf(cg, sizeof(cg), "%s/fail", cg_base);
        struct {
                const char *cwd;
                const char *arg0;
                const char *want;
        } cases[] = {
                {"/nope", "sh", "chdir to /nope"},
                {"/", "no-such-binary", "no-such-binary"},
                {"/", "/etc/passwd", "/etc/passwd"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct rt_spec *s = spec_for("true");
                free(s->process.args[0]);
                s->process.args[0] = xstrdup(cases[i].arg0);
                s->process.cwd = xstrdup(cases[i].cwd);
                s->cgroup_path = xstrdup(cg);
                struct result r;
                CHECK(run_split(s, &r) < 0 && strstr(r.e.msg, cases[i].want), "error names the cause: %s",
                      r.e.msg);
                err_clear(&r.e);
                CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "no child left behind");
                CHECK(!cg_exists(cg), "no cgroup left behind");
                rt_spec_free(s);
        }
        struct rt_spec *s = spec_for("true");
        s->namespaces[RT_NS_NET] = (struct rt_namespace){RT_NS_JOIN, xstrdup("/run/corral/ns/none/net")};
        struct result r;
        CHECK(run_split(s, &r) < 0 && strstr(r.e.msg, "/run/corral/ns/none/net"), "bad netns: %s", r.e.msg);
        err_clear(&r.e);
        rt_spec_free(s);
}

static void test_overlay(void)
{
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "mkdir -p %s/upper %s/work %s/merged", tmp, tmp, tmp);
        sh(cmd);
        struct rt_spec *s = spec_for("echo data > /written; cat /written; echo foo > /data/f");
        free(s->root.path);
        s->root.path = xasprintf("%s/merged", tmp);
        strv_push(&s->root.lowerdirs, rootfs);
        s->root.upperdir = xasprintf("%s/upper", tmp);
        s->root.workdir = xasprintf("%s/work", tmp);
        s->mounts = xcalloc(1, sizeof(struct rt_mount));
        s->n_mounts = 1;
        s->mounts[0].destination = xstrdup("/data");
        s->mounts[0].type = xstrdup("bind");
        s->mounts[0].source = xasprintf("%s/hostdata/sub", tmp); /* missing: created */
        strv_push(&s->mounts[0].options, "rbind");
        strv_push(&s->mounts[0].options, "rprivate");
        struct result r;
        CHECK(run_split(s, &r) == 0, "%s", r.e.msg);
        CHECK(strcmp(r.out, "data\n") == 0, "out=%s", r.out);
        char p[512];
        snprintf(p, sizeof(p), "%s/upper/written", tmp);
        CHECK(access(p, F_OK) == 0, "write landed in upperdir");
        snprintf(p, sizeof(p), "%s/hostdata/sub/f", tmp);
        CHECK(access(p, F_OK) == 0, "bind mount with a created source");
        snprintf(p, sizeof(p), "%s/merged/bin/busybox", tmp);
        CHECK(access(p, F_OK) < 0, "overlay only mounted in the container's mount namespace");
        rt_spec_free(s);
}

int main(void)
{
        need_root_and_busybox();
        char *f = rt_host_features_string();
        fprintf(stderr, "host: %s\n", f);
        free(f);
        make_rootfs();
        snprintf(cg_base, sizeof(cg_base), "/corral-test-%d", (int)getpid());

        test_echo();
        test_user();
        test_readonly_and_caps();
        test_seccomp();
        test_masked_and_devices();
        test_netns_and_sysctl();
        test_overlay();
        test_create_failures();
        test_limits_applied();
        test_oom();
        test_exec();

        (void)rt_cgroup_remove(cg_base, 1000, NULL);
        struct err e = ERR_INIT;
        rm_rf(tmp, &e);
        if (failures) {
                fprintf(stderr, "%d failure(s)\n", failures);
                return 1;
        }
        printf("ok\n");
        return 0;
}
