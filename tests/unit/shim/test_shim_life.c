/* corral-shim end to end with busybox containers: spawn from a fake corrald
 * that is then SIGKILLed, CRI log lines, exit codes, reopen, exec_sync with
 * and without timeout, attach (output, stdin, stdin_once, several clients),
 * a tty with resize, and the shim's RSS. Root only. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../check.h"
#include "crilog.h"
#include "runtime/runtime.h"
#include "shim/shim.h"

static char *tmp;
static char *rootfs;

struct ctr {
        char *name;
        char *bundle;
        char *state;
        char *log;
        struct shim_info info;
        struct shim_conn *conn;
};

static void must(bool ok, const char *what)
{
        if (!ok) {
                fprintf(stderr, "setup failed: %s: %s\n", what, strerror(errno));
                exit(1);
        }
}

static void make_rootfs(void)
{
        rootfs = path_join(tmp, "rootfs");
        const char *dirs[] = {"bin", "proc", "dev", "sys", "tmp", "etc", "root"};
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
                cleanup_free char *d = path_join(rootfs, dirs[i]);
                must(mkdir_p(d, 0755, NULL) == 0, d);
        }
        cleanup_free char *bb = path_join(rootfs, "bin/busybox");
        cleanup_free char *data = NULL;
        size_t len;
        must(file_read_all("/bin/busybox", &data, &len, 0, NULL) == 0, "read /bin/busybox");
        int fd = open(bb, O_WRONLY | O_CREAT | O_TRUNC, 0755);
        must(fd >= 0 && fd_write_all(fd, data, len) == 0, bb);
        close(fd);
        const char *links[] = {"sh", "cat", "echo", "sleep", "printf", "head",
                               "tr", "ps",  "stty", "true",  "touch",  "dd"};
        for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
                cleanup_free char *l = xasprintf("%s/bin/%s", rootfs, links[i]);
                must(symlink("busybox", l) == 0 || errno == EEXIST, l);
        }
}

static void write_spec(struct ctr *c, char *const *args, bool tty, int64_t mem_limit)
{
        struct rt_spec *s = rt_spec_new();
        s->id = xstrdup(c->name);
        s->root.path = xstrdup(rootfs);
        s->process.args = strv_dup(args);
        strv_push(&s->process.env, "PATH=/bin");
        strv_push(&s->process.env, "HOME=/root");
        s->process.cwd = xstrdup("/");
        s->process.tty = tty;
        s->namespaces[RT_NS_MNT].mode = RT_NS_NEW;
        s->namespaces[RT_NS_PID].mode = RT_NS_NEW;
        s->namespaces[RT_NS_IPC].mode = RT_NS_NEW;
        s->namespaces[RT_NS_UTS].mode = RT_NS_NEW;
        s->resources.memory_limit = mem_limit;
        s->resources.memory_swap = mem_limit;
        s->cgroup_path = xasprintf("/corral-shim-test/%s-%d", c->name, (int)getpid());
        cleanup_free char *path = path_join(c->bundle, "spec.json");
        cleanup_err struct err e = ERR_INIT;
        if (rt_spec_write_file(s, path, &e) < 0) {
                fprintf(stderr, "write spec: %s\n", e.msg);
                exit(1);
        }
        rt_spec_free(s);
}

static void ctr_init_mem(struct ctr *c, const char *name, char *const *args, bool tty, int64_t mem_limit)
{
        memset(c, 0, sizeof(*c));
        c->name = xstrdup(name);
        c->bundle = xasprintf("%s/bundles/%s", tmp, name);
        /* Longer than sun_path's 108 bytes on purpose. */
        c->state = xasprintf("%s/state/a-rather-long-directory-name-to-go-past-the-unix-socket-path-limit/%s",
                             tmp, name);
        c->log = xasprintf("%s/logs/%s.log", tmp, name);
        must(mkdir_p(c->bundle, 0700, NULL) == 0, c->bundle);
        cleanup_free char *logdir = path_join(tmp, "logs");
        must(mkdir_p(logdir, 0700, NULL) == 0, logdir);
        write_spec(c, args, tty, mem_limit);
}

static void ctr_init(struct ctr *c, const char *name, char *const *args, bool tty)
{
        ctr_init_mem(c, name, args, tty, 0);
}

static void opts_of(const struct ctr *c, struct shim_opts *o, bool stdin_open, bool stdin_once, bool tty)
{
        memset(o, 0, sizeof(*o));
        o->id = c->name;
        o->bundle = c->bundle;
        o->state_dir = c->state;
        o->log_path = c->log;
        o->stdin_open = stdin_open;
        o->stdin_once = stdin_once;
        o->tty = tty;
        o->shim_path = CORRAL_SHIM_PATH;
}

static bool spawn(struct ctr *c, bool stdin_open, bool stdin_once, bool tty)
{
        struct shim_opts o;
        opts_of(c, &o, stdin_open, stdin_once, tty);
        cleanup_err struct err e = ERR_INIT;
        if (shim_spawn(&o, &c->info, &e) < 0) {
                fprintf(stderr, "shim_spawn %s: %s\n", c->name, e.msg);
                return false;
        }
        if (shim_connect(c->state, &c->conn, &e) < 0) {
                fprintf(stderr, "shim_connect %s: %s\n", c->name, e.msg);
                return false;
        }
        return true;
}

static bool proc_alive(pid_t pid)
{
        cleanup_free char *path = xasprintf("/proc/%d/stat", (int)pid);
        cleanup_free char *buf = NULL;
        if (file_read_all(path, &buf, NULL, 0, NULL) < 0)
                return false;
        const char *p = strrchr(buf, ')');
        return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static long proc_status_kb(pid_t pid, const char *file, const char *key)
{
        cleanup_free char *path = xasprintf("/proc/%d/%s", (int)pid, file);
        cleanup_free char *buf = NULL;
        if (file_read_all(path, &buf, NULL, 0, NULL) < 0)
                return -1;
        const char *p = strstr(buf, key);
        return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static void print_rss(const char *when, pid_t pid)
{
        fprintf(stderr, "shim RSS %s: VmRSS %ld kB (RssAnon %ld kB, RssFile %ld kB), Pss %ld kB\n", when,
                proc_status_kb(pid, "status", "VmRSS:"), proc_status_kb(pid, "status", "RssAnon:"),
                proc_status_kb(pid, "status", "RssFile:"), proc_status_kb(pid, "smaps_rollup", "\nPss:"));
}

/* Shut the shim down and check that it leaves. */
static void finish(struct ctr *c)
{
        cleanup_err struct err e = ERR_INIT;
        if (c->conn) {
                int r = shim_shutdown(c->conn, &e);
                if (r < 0)
                        fprintf(stderr, "%s: shutdown: %s\n", c->name, e.msg);
                CHECK(r == 0);
        }
        bool gone = false;
        for (int i = 0; i < 100 && !(gone = !proc_alive(c->info.shim_pid)); i++)
                usleep(50000);
        CHECK(gone);
        cleanup_free char *sock = path_join(c->state, SHIM_CTL_SOCKET);
        CHECK(access(sock, F_OK) < 0);
        c->conn = shim_close(c->conn);
        free(c->name);
        free(c->bundle);
        free(c->state);
        free(c->log);
}

static bool file_contains(const char *path, const char *needle)
{
        cleanup_free char *buf = NULL;
        size_t len;
        if (file_read_all(path, &buf, &len, 0, NULL) < 0)
                return false;
        return memmem(buf, len, needle, strlen(needle)) != NULL;
}

static bool wait_contains(const char *path, const char *needle, int ms)
{
        for (int i = 0; i < ms / 20; i++) {
                if (file_contains(path, needle))
                        return true;
                usleep(20000);
        }
        return false;
}

/* ---------- output, exit code, survival of corrald's death ---------- */

static void test_output_and_survival(void)
{
        char *args[] = {"sh", "-c",
                        "echo out1; echo err1 >&2; head -c 40960 /dev/zero | tr '\\0' x; echo; "
                        "printf tail; exit 7",
                        NULL};
        struct ctr c;
        ctr_init(&c, "out", args, false);

        /* A fake corrald spawns the shim, reports, and is SIGKILLed. */
        int p[2];
        must(pipe(p) == 0, "pipe");
        pid_t fake = fork();
        must(fake >= 0, "fork");
        if (fake == 0) {
                close(p[0]);
                struct shim_opts o;
                opts_of(&c, &o, false, false, false);
                struct shim_info info;
                struct err e = ERR_INIT;
                if (shim_spawn(&o, &info, &e) < 0) {
                        fprintf(stderr, "fake corrald: %s\n", e.msg);
                        _exit(1);
                }
                (void)!write(p[1], &info, sizeof(info));
                pause();
                _exit(0);
        }
        close(p[1]);
        ssize_t n = read(p[0], &c.info, sizeof(c.info));
        close(p[0]);
        CHECK(n == (ssize_t)sizeof(c.info));
        kill(fake, SIGKILL);
        int status;
        waitpid(fake, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        if (n != (ssize_t)sizeof(c.info))
                return;
        usleep(100000);
        CHECK(proc_alive(c.info.shim_pid));
        CHECK(proc_status_kb(c.info.shim_pid, "status", "PPid:") != fake);
        print_rss("after create", c.info.shim_pid);

        cleanup_err struct err e = ERR_INIT;
        CHECK(shim_connect(c.state, &c.conn, &e) == 0);
        if (!c.conn) {
                fprintf(stderr, "connect: %s\n", e.msg);
                return;
        }
        struct shim_state st;
        CHECK(shim_state(c.conn, &st, &e) == 0 && st.status == SHIM_CREATED && st.pid == c.info.pid);
        CHECK(shim_start(c.conn, &e) == 0);
        if (e.msg)
                fprintf(stderr, "start: %s\n", e.msg);
        CHECK(shim_wait(c.conn, 10000, &st, &e) == 0);
        CHECK(st.status == SHIM_EXITED && st.exit_code == 7 && st.signal == 0 && !st.oom_killed);
        CHECK(st.started_ns > 0 && st.finished_ns >= st.started_ns);

        /* A fresh connection after corrald's "restart" sees the same. */
        struct shim_conn *c2 = NULL;
        CHECK(shim_connect(c.state, &c2, &e) == 0);
        struct shim_state st2;
        CHECK(c2 && shim_state(c2, &st2, &e) == 0 && st2.exit_code == 7 && st2.status == SHIM_EXITED);
        shim_close(c2);
        struct shim_state fx;
        CHECK(shim_read_exit(c.state, &fx, &e) == 0 && fx.exit_code == 7 && fx.finished_ns == st.finished_ns);

        struct crilog l;
        CHECK(crilog_read(c.log, &l) == 0);
        CHECK(l.bad == 0);
        const struct crilog_line *x;
        CHECK(crilog_count(&l, "stdout") == 5 && crilog_count(&l, "stderr") == 1);
        CHECK((x = crilog_nth(&l, "stdout", 0)) && x->tag == 'F' && strcmp(x->text, "out1") == 0);
        CHECK((x = crilog_nth(&l, "stderr", 0)) && x->tag == 'F' && strcmp(x->text, "err1") == 0);
        CHECK((x = crilog_nth(&l, "stdout", 1)) && x->tag == 'P' && x->len == 16384 &&
              crilog_all_char(x, 'x'));
        CHECK((x = crilog_nth(&l, "stdout", 2)) && x->tag == 'P' && x->len == 16384 &&
              crilog_all_char(x, 'x'));
        CHECK((x = crilog_nth(&l, "stdout", 3)) && x->tag == 'F' && x->len == 8192 &&
              crilog_all_char(x, 'x'));
        CHECK((x = crilog_nth(&l, "stdout", 4)) && x->tag == 'P' && strcmp(x->text, "tail") == 0);
        if (l.n != 6 || l.bad)
                for (size_t i = 0; i < l.n; i++)
                        fprintf(stderr, "  log: %s %s %c [%zu] %.40s\n", l.lines[i].ts, l.lines[i].stream,
                                l.lines[i].tag, l.lines[i].len, l.lines[i].text);
        crilog_free(&l);
        finish(&c);
}

/* ---------- reopen ---------- */

static void test_reopen(void)
{
        char *args[] = {"sh", "-c", "echo before; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo after",
                        NULL};
        struct ctr c;
        ctr_init(&c, "reopen", args, false);
        if (!spawn(&c, false, false, false)) {
                CHECK(0);
                return;
        }
        cleanup_err struct err e = ERR_INIT;
        CHECK(shim_start(c.conn, &e) == 0);
        CHECK(wait_contains(c.log, "before", 5000));
        cleanup_free char *rotated = xasprintf("%s.1", c.log);
        CHECK(rename(c.log, rotated) == 0);
        CHECK(shim_reopen_log(c.conn, &e) == 0);
        cleanup_free char *go = path_join(rootfs, "tmp/go");
        int fd = open(go, O_WRONLY | O_CREAT, 0644);
        close(fd);
        struct shim_state st;
        CHECK(shim_wait(c.conn, 10000, &st, &e) == 0 && st.exit_code == 0);
        CHECK(file_contains(rotated, "before") && !file_contains(rotated, "after"));
        CHECK(file_contains(c.log, "after") && !file_contains(c.log, "before"));
        unlink(go);
        finish(&c);
}

/* ---------- exec_sync ---------- */

static void test_exec(void)
{
        char *args[] = {"sleep", "1000", NULL};
        struct ctr c;
        ctr_init(&c, "exec", args, false);
        if (!spawn(&c, false, false, false)) {
                CHECK(0);
                return;
        }
        cleanup_err struct err e = ERR_INIT;
        struct shim_exec_result r;
        char *early[] = {"true", NULL};
        CHECK(shim_exec_sync(c.conn, early, NULL, 5000, &r, &e) < 0 && e.kind == ERR_PRECONDITION);
        err_clear(&e);
        CHECK(shim_start(c.conn, &e) == 0);
        print_rss("running", c.info.shim_pid);
        /* The shim blocks SIGCHLD/SIGTERM/SIGINT for its signalfd; the
         * container must not inherit that. */
        cleanup_free char *sigpath = xasprintf("/proc/%d/status", (int)c.info.pid);
        cleanup_free char *sigs = NULL;
        CHECK(file_read_all(sigpath, &sigs, NULL, 0, NULL) == 0 && strstr(sigs, "SigBlk:\t0000000000000000"));

        struct shim_state ws;
        CHECK(shim_wait(c.conn, 100, &ws, &e) < 0 && e.kind == ERR_DEADLINE);
        err_clear(&e);
        CHECK(shim_wait(c.conn, 0, &ws, &e) < 0 && e.kind == ERR_DEADLINE);
        err_clear(&e);

        char *cmd[] = {"sh", "-c", "echo hi; echo err >&2; exit 3", NULL};
        int rc = shim_exec_sync(c.conn, cmd, NULL, 10000, &r, &e);
        if (rc < 0)
                fprintf(stderr, "exec: %s\n", e.msg);
        CHECK(rc == 0 && r.exit_code == 3);
        CHECK(r.out && strcmp(r.out, "hi\n") == 0);
        CHECK(r.err && strcmp(r.err, "err\n") == 0);
        shim_exec_result_clear(&r);
        err_clear(&e);

        /* A missing binary is an error, not a hang. */
        char *missing[] = {"/no/such/thing", NULL};
        CHECK(shim_exec_sync(c.conn, missing, NULL, 5000, &r, &e) < 0);
        fprintf(stderr, "exec of a missing binary: %s\n", e.msg ? e.msg : "(no error)");
        shim_exec_result_clear(&r);
        err_clear(&e);

        char *slow[] = {"sh", "-c", "echo started; exec sleep 100", NULL};
        int64_t t0 = time_mono_ns();
        rc = shim_exec_sync(c.conn, slow, NULL, 500, &r, &e);
        int64_t took_ms = (time_mono_ns() - t0) / 1000000;
        CHECK(rc < 0 && e.kind == ERR_DEADLINE);
        CHECK(took_ms >= 450 && took_ms < 3000);
        CHECK(r.out && strcmp(r.out, "started\n") == 0);
        CHECK(r.exit_code == 137);
        fprintf(stderr, "exec timeout after %lld ms: %s\n", (long long)took_ms, e.msg ? e.msg : "");
        shim_exec_result_clear(&r);
        err_clear(&e);
        /* The killed process is gone from the container. */
        char *ps[] = {"ps", NULL};
        CHECK(shim_exec_sync(c.conn, ps, NULL, 5000, &r, &e) == 0);
        CHECK(r.out && strstr(r.out, "sleep 1000") && !strstr(r.out, "sleep 100\n"));
        shim_exec_result_clear(&r);
        print_rss("after execs", c.info.shim_pid);

        /* UpdateContainerResources: a new memory limit reaches the cgroup. */
        struct rt_spec *upd = rt_spec_new();
        upd->resources.memory_limit = 48 << 20;
        cleanup_free char *upd_json = rt_spec_to_json(upd);
        rt_spec_free(upd);
        rc = shim_update_resources(c.conn, upd_json, &e);
        if (rc < 0)
                fprintf(stderr, "update: %s\n", e.msg);
        CHECK(rc == 0);
        cleanup_free char *v1 = xasprintf(
                "/sys/fs/cgroup/memory/corral-shim-test/exec-%d/memory.limit_in_bytes", (int)getpid());
        cleanup_free char *v2 =
                xasprintf("/sys/fs/cgroup/corral-shim-test/exec-%d/memory.max", (int)getpid());
        cleanup_free char *limit = NULL;
        CHECK(file_read_all(v1, &limit, NULL, 0, NULL) == 0 || file_read_all(v2, &limit, NULL, 0, NULL) == 0);
        CHECK(limit && strtoll(limit, NULL, 10) == 48 << 20);

        /* A running container refuses shutdown; SIGKILL to all, then 137. */
        CHECK(shim_shutdown(c.conn, &e) < 0 && e.kind == ERR_PRECONDITION);
        err_clear(&e);
        CHECK(shim_kill(c.conn, SIGKILL, true, &e) == 0);
        struct shim_state st;
        CHECK(shim_wait(c.conn, 10000, &st, &e) == 0 && st.exit_code == 137 && st.signal == SIGKILL);
        finish(&c);
}

/* ---------- attach ---------- */

static bool recv_until(int fd, char type, const char *needle, char *acc, size_t cap, int ms)
{
        size_t len = strlen(acc);
        int64_t end = time_mono_ns() + (int64_t)ms * 1000000;
        while (time_mono_ns() < end) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, 50) <= 0)
                        continue;
                char buf[SHIM_ATTACH_MAX_PACKET];
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n <= 0)
                        return false;
                if (buf[0] != type)
                        continue;
                if (len + (size_t)n - 1 < cap) {
                        memcpy(acc + len, buf + 1, (size_t)n - 1);
                        len += (size_t)n - 1;
                        acc[len] = '\0';
                }
                if (strstr(acc, needle))
                        return true;
        }
        return false;
}

/* Returns the exit code from the EXIT packet, -1 if none came before EOF. */
static int recv_exit(int fd, int ms)
{
        int64_t end = time_mono_ns() + (int64_t)ms * 1000000;
        while (time_mono_ns() < end) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, 50) <= 0)
                        continue;
                char buf[SHIM_ATTACH_MAX_PACKET];
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n <= 0)
                        return -1;
                if (buf[0] == SHIM_ATTACH_EXIT && n == 5) {
                        uint32_t code = 0;
                        for (int i = 0; i < 4; i++)
                                code |= (uint32_t)(unsigned char)buf[1 + i] << (8 * i);
                        return (int)code;
                }
        }
        return -1;
}

static void test_attach(void)
{
        char *args[] = {"cat", NULL};
        struct ctr c;
        ctr_init(&c, "attach", args, false);
        if (!spawn(&c, true, true, false)) {
                CHECK(0);
                return;
        }
        cleanup_err struct err e = ERR_INIT;
        int a = -1, b = -1;
        CHECK(shim_attach_connect(c.state, &a, &e) == 0);
        CHECK(shim_attach_connect(c.state, &b, &e) == 0);
        CHECK(shim_start(c.conn, &e) == 0);
        /* corrald's way to learn of exits: an async wait on its own connection. */
        struct shim_conn *w = NULL;
        CHECK(shim_connect(c.state, &w, &e) == 0);
        CHECK(w && shim_wait_begin(w, &e) == 0);
        struct pollfd wp = {.fd = w ? shim_conn_fd(w) : -1, .events = POLLIN};
        CHECK(poll(&wp, 1, 200) == 0); /* still running */
        char msg[] = "\0hello shim\n";
        CHECK(send(a, msg, sizeof(msg) - 1, 0) == (ssize_t)sizeof(msg) - 1);
        char acc_a[256] = "", acc_b[256] = "";
        CHECK(recv_until(a, SHIM_ATTACH_STDOUT, "hello shim\n", acc_a, sizeof(acc_a), 5000));
        CHECK(recv_until(b, SHIM_ATTACH_STDOUT, "hello shim\n", acc_b, sizeof(acc_b), 5000));
        /* stdin_once: the client that sent stdin leaves, cat sees EOF, exits 0. */
        close(a);
        CHECK(recv_exit(b, 5000) == 0);
        close(b);
        CHECK(poll(&wp, 1, 5000) == 1);
        struct shim_state ws;
        CHECK(w && shim_wait_finish(w, &ws, &e) == 0 && ws.status == SHIM_EXITED && ws.exit_code == 0);
        shim_close(w);
        struct shim_state st;
        CHECK(shim_wait(c.conn, 5000, &st, &e) == 0 && st.exit_code == 0);
        CHECK(file_contains(c.log, " stdout F hello shim\n"));
        finish(&c);
}

static void test_tty(void)
{
        char *args[] = {"sh", "-c", "read x; stty size; echo got-$x", NULL};
        struct ctr c;
        ctr_init(&c, "tty", args, true);
        if (!spawn(&c, true, false, true)) {
                CHECK(0);
                return;
        }
        cleanup_err struct err e = ERR_INIT;
        int a = -1;
        CHECK(shim_attach_connect(c.state, &a, &e) == 0);
        CHECK(shim_start(c.conn, &e) == 0);
        char pkt[1 + sizeof(struct shim_attach_resize)];
        struct shim_attach_resize rz = {.rows = 40, .cols = 100};
        pkt[0] = SHIM_ATTACH_RESIZE;
        memcpy(pkt + 1, &rz, sizeof(rz));
        CHECK(send(a, pkt, sizeof(pkt), 0) == (ssize_t)sizeof(pkt));
        char line[] = "\0yes\n";
        CHECK(send(a, line, sizeof(line) - 1, 0) == (ssize_t)sizeof(line) - 1);
        char acc[1024] = "";
        CHECK(recv_until(a, SHIM_ATTACH_STDOUT, "got-yes", acc, sizeof(acc), 5000));
        CHECK(strstr(acc, "40 100") != NULL);
        CHECK(recv_exit(a, 5000) == 0);
        close(a);
        struct shim_state st;
        CHECK(shim_wait(c.conn, 5000, &st, &e) == 0 && st.exit_code == 0);
        CHECK(file_contains(c.log, "got-yes"));
        finish(&c);
}

/* ---------- OOM ---------- */

static void test_oom(void)
{
        /* dd's 64 MiB buffer in a 16 MiB cgroup. */
        char *args[] = {"sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; exit 3", NULL};
        struct ctr c;
        ctr_init_mem(&c, "oom", args, false, 16 << 20);
        if (!spawn(&c, false, false, false)) {
                CHECK(0);
                return;
        }
        cleanup_err struct err e = ERR_INIT;
        CHECK(shim_start(c.conn, &e) == 0);
        struct shim_state st;
        CHECK(shim_wait(c.conn, 20000, &st, &e) == 0);
        fprintf(stderr, "oom container: exit_code %d oom_killed %d\n", st.exit_code, st.oom_killed);
        CHECK(st.oom_killed);
        struct shim_state fx;
        CHECK(shim_read_exit(c.state, &fx, &e) == 0 && fx.oom_killed);
        finish(&c);
}

/* ---------- create errors come back to shim_spawn ---------- */

static void test_create_error(void)
{
        char *args[] = {"/no/such/binary", NULL};
        struct ctr c;
        ctr_init(&c, "bad", args, false);
        struct shim_opts o;
        opts_of(&c, &o, false, false, false);
        struct shim_info info;
        cleanup_err struct err e = ERR_INIT;
        CHECK(shim_spawn(&o, &info, &e) < 0);
        fprintf(stderr, "create error as reported: %s\n", e.msg ? e.msg : "(none)");
        CHECK(e.msg && strstr(e.msg, "/no/such/binary"));
        free(c.name);
        free(c.bundle);
        free(c.state);
        free(c.log);
}

int main(void)
{
        if (geteuid() != 0)
                SKIP("test_shim_life needs root (namespaces, cgroups)");
        if (access(CORRAL_SHIM_PATH, X_OK) < 0)
                SKIP("no corral-shim binary at %s", CORRAL_SHIM_PATH);
        if (access("/bin/busybox", X_OK) < 0)
                SKIP("no /bin/busybox (Debian busybox-static)");
        char tmpl[] = "/tmp/corral-shim-life.XXXXXX";
        tmp = mkdtemp(tmpl);
        must(tmp != NULL, "mkdtemp");
        make_rootfs();
        test_output_and_survival();
        test_reopen();
        test_exec();
        test_attach();
        test_tty();
        test_oom();
        test_create_error();
        /* The shims removed their containers' cgroups; the parent is ours. */
        cleanup_err struct err e = ERR_INIT;
        CHECK(rt_cgroup_remove("/corral-shim-test", 2000, &e) == 0);
        if (check_failures == 0)
                (void)rm_rf(tmp, NULL);
        else
                fprintf(stderr, "left %s for inspection\n", tmp);
        free(rootfs);
        return check_report("test_shim_life");
}
