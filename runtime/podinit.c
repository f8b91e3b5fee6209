/* The pod init: pid 1 of a pod's shared PID namespace (namespace_options.pid
 * = POD), without a pause image. It reaps the zombies of the namespace and
 * does nothing else; containers join /proc/<pid>/ns/pid.
 *
 * caller --clone--> middle: setsid, unshare(CLONE_NEWPID) --clone--> init
 * The middle reports the init's pid and exits, so the init is reparented
 * away from the caller and outlives it. Both children are forks of a
 * possibly multi-threaded caller (corrald): they make system calls only
 * (no malloc, no stdio, raw clone so no atfork handlers run). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "runtime/runtime-internal.h"

#define INIT_COMM       "corral-pod-init" /* 15 chars: the whole of TASK_COMM_LEN */
#define KILL_TIMEOUT_MS 5000

/* One record on the pipe; writes this small are atomic. */
struct msg {
        char tag;   /* 'p' init pid (middle), 'r' ready (init), 'e' failure */
        char stage; /* for 'e': 's' setsid, 'u' unshare, 'f' fork */
        int val;    /* pid or errno */
};

static void put(int fd, char tag, char stage, int val)
{
        struct msg m;
        memset(&m, 0, sizeof(m));
        m.tag = tag;
        m.stage = stage;
        m.val = val;
        (void)!write(fd, &m, sizeof(m));
}

static pid_t raw_fork(void)
{
        return (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
}

/* argv as ps shows it: "corral-pod-init <name>", so a leftover init can be
 * told apart after a restart. Best effort (PR_SET_MM needs
 * CAP_SYS_RESOURCE). The buffer must be anonymous memory: /proc/<pid>/cmdline
 * reads it with FOLL_ANON, which refuses a file-backed mapping (a static in
 * .data/.bss read back as 0 bytes). The page lives as long as the init. */
static void set_cmdline(const char *name)
{
        char *cmdline = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (cmdline == MAP_FAILED)
                return;
        size_t k = 0, cap = 256;
        for (const char *s = INIT_COMM; *s; s++)
                cmdline[k++] = *s;
        cmdline[k++] = '\0';
        for (const char *s = name; s && *s && k < cap - 1; s++)
                cmdline[k++] = *s;
        cmdline[k++] = '\0';
        unsigned long start = (unsigned long)cmdline, end = start + k;
        /* The kernel keeps start <= end after each call: the order depends
         * on where the new buffer lies against the old one. */
        if (prctl(PR_SET_MM, PR_SET_MM_ARG_END, end, 0, 0) == 0) {
                (void)prctl(PR_SET_MM, PR_SET_MM_ARG_START, start, 0, 0);
                return;
        }
        if (prctl(PR_SET_MM, PR_SET_MM_ARG_START, start, 0, 0) == 0)
                (void)prctl(PR_SET_MM, PR_SET_MM_ARG_END, end, 0, 0);
}

static void close_from(int lowfd)
{
        if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
                return;
        struct rlimit rl;
        int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
        for (int fd = lowfd; fd < max; fd++)
                (void)close(fd);
}

static void init_main(int fd, const char *name) __attribute__((noreturn));
static void init_main(int fd, const char *name)
{
        /* Every signal blocked and taken with sigwaitinfo: SIGCHLD reaps,
         * the rest (SIGTERM, SIGINT, SIGHUP, ...) are dropped. Only
         * SIGKILL, which cannot be blocked, ends it. */
        sigset_t all;
        sigfillset(&all);
        (void)sigprocmask(SIG_SETMASK, &all, NULL);
        for (int s = 1; s < NSIG; s++)
                if (s != SIGKILL && s != SIGSTOP)
                        (void)signal(s, SIG_DFL); /* the caller's handlers are not ours */
        (void)prctl(PR_SET_NAME, INIT_COMM, 0, 0, 0);
        set_cmdline(name);
        (void)!chdir("/"); /* pin no mount */
        put(fd, 'r', 0, 0);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
                (void)dup2(null, 0);
                (void)dup2(null, 1);
                (void)dup2(null, 2);
        }
        close_from(3);
        for (;;) {
                siginfo_t si;
                int sig = sigwaitinfo(&all, &si);
                if (sig == SIGCHLD)
                        while (waitpid(-1, NULL, WNOHANG) > 0)
                                ;
        }
}

/* The init's pid, for whoever finds a half-made pod after a crash of the
 * caller (async-signal-safe: we are a fork of a threaded process). */
static void write_pid_file(const char *path, pid_t pid)
{
        char buf[16];
        int n = sizeof(buf);
        buf[--n] = '\n';
        do
                buf[--n] = (char)('0' + pid % 10);
        while ((pid /= 10) > 0 && n > 0);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
                (void)!write(fd, buf + n, sizeof(buf) - (size_t)n);
                close(fd);
        }
}

static void middle_main(int fd, const char *name, const char *pid_file) __attribute__((noreturn));
static void middle_main(int fd, const char *name, const char *pid_file)
{
        if (setsid() < 0) {
                put(fd, 'e', 's', errno);
                _exit(1);
        }
        if (unshare(CLONE_NEWPID) < 0) {
                put(fd, 'e', 'u', errno);
                _exit(1);
        }
        pid_t pid = raw_fork(); /* pid 1 of the new namespace */
        if (pid < 0) {
                put(fd, 'e', 'f', errno);
                _exit(1);
        }
        if (pid == 0)
                init_main(fd, name);
        /* Before the caller hears of it: a caller killed from here on
         * leaves the pid where its recovery looks. */
        if (pid_file)
                write_pid_file(pid_file, pid);
        put(fd, 'p', 0, pid);
        _exit(0);
}

static const char *stage_name(char stage)
{
        switch (stage) {
        case 's':
                return "setsid";
        case 'u':
                return "new pid namespace";
        case 'f':
                return "fork init";
        }
        return "set-up";
}

int rt_pod_init_spawn(const char *name, pid_t *out_pid, struct err *e)
{
        return rt_pod_init_spawn_at(name, NULL, out_pid, e);
}

int rt_pod_init_spawn_at(const char *name, const char *pid_file, pid_t *out_pid, struct err *e)
{
        const char *nm = name ? name : "";
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return err_make(e, errno, "pod init %s: pipe", nm);
        pid_t mid = raw_fork();
        if (mid < 0) {
                int er = errno;
                close(p[0]);
                close(p[1]);
                return err_make(e, er, "pod init %s: fork", nm);
        }
        if (mid == 0) {
                close(p[0]);
                middle_main(p[1], nm, pid_file);
        }
        close(p[1]);
        pid_t init = -1;
        bool ready = false;
        struct msg fail = {0};
        /* Until both the pid and the ready record came, or a failure, or
         * EOF (both children closed the pipe). */
        while (!(init > 0 && ready) && fail.tag == 0) {
                struct msg m;
                ssize_t r = read(p[0], &m, sizeof(m));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r != (ssize_t)sizeof(m))
                        break;
                if (m.tag == 'p')
                        init = m.val;
                else if (m.tag == 'r')
                        ready = true;
                else if (m.tag == 'e')
                        fail = m;
        }
        close(p[0]);
        while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
                ;
        if (fail.tag == 'e')
                return err_make(e, fail.val, "pod init %s: %s", nm, stage_name(fail.stage));
        if (init <= 0 || !ready) {
                if (init > 0)
                        (void)kill(init, SIGKILL);
                return err_set(e, ERR_INTERNAL, "pod init %s exited during set-up", nm);
        }
        *out_pid = init;
        return 0;
}

/* ---------- kill ---------- */

static bool zombie_or_gone(pid_t pid)
{
        char path[64];
        cleanup_free char *st = NULL;
        size_t n;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if (file_read_all(path, &st, &n, 4096, NULL) < 0)
                return true;
        char *rp = strrchr(st, ')');
        return rp == NULL || rp[1] == '\0' || rp[2] == 'Z' || rp[2] == 'X';
}

/* 1: a pod init (comm and pid 1 in its own namespace), 0: another
 * process, -1: gone. */
static int is_pod_init(pid_t pid)
{
        char path[64];
        cleanup_free char *comm = NULL, *status = NULL;
        size_t n;
        if (zombie_or_gone(pid))
                return -1;
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        if (file_read_all(path, &comm, &n, 256, NULL) < 0)
                return -1;
        if (strcmp(comm, INIT_COMM "\n") != 0)
                return 0;
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        if (file_read_all(path, &status, &n, 1 << 16, NULL) < 0)
                return -1;
        /* "NSpid:\t<host pid>\t1": the innermost pid is the last. */
        char *l = strstr(status, "\nNSpid:");
        if (l == NULL)
                return 0;
        l[strcspn(l + 1, "\n") + 1] = '\0';
        char *last = strrchr(l, '\t');
        return last && strcmp(last, "\t1") == 0 ? 1 : 0;
}

int rt_pod_init_kill(pid_t pid, struct err *e)
{
        if (pid <= 1)
                return err_set(e, ERR_INVALID, "pod init pid %d", (int)pid);
        /* A pidfd pins the process: a pid reused after our check gets no
         * signal from us. */
        cleanup_close int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pfd < 0 && errno == ESRCH)
                return 0;
        if (pfd < 0 && errno != ENOSYS)
                return err_make(e, errno, "pod init %d: pidfd_open", (int)pid);
        int who = is_pod_init(pid);
        if (who < 0)
                return 0;
        if (who == 0)
                return err_set(e, ERR_PRECONDITION, "process %d is not a pod init", (int)pid);
        int r = pfd >= 0 ? (int)syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0) : kill(pid, SIGKILL);
        if (r < 0)
                return errno == ESRCH ? 0 : err_make(e, errno, "kill pod init %d", (int)pid);
        /* The init's exit kills every process of the namespace and waits
         * until they are all reaped; the pidfd turns readable after that. */
        int64_t deadline = time_mono_ns() + (int64_t)KILL_TIMEOUT_MS * 1000000;
        for (;;) {
                int left = (int)((deadline - time_mono_ns()) / 1000000);
                if (left <= 0)
                        break;
                if (pfd >= 0) {
                        struct pollfd pf = {pfd, POLLIN, 0};
                        int pr = poll(&pf, 1, left);
                        if (pr > 0)
                                return 0;
                        if (pr < 0 && errno != EINTR)
                                return err_make(e, errno, "wait for pod init %d", (int)pid);
                } else {
                        if (zombie_or_gone(pid))
                                return 0;
                        usleep(10000);
                }
        }
        return err_set(e, ERR_DEADLINE,
                       "pod init %d killed but not gone after %d ms: processes of its pid namespace whose "
                       "parent is outside it (container processes) must be reaped by that parent",
                       (int)pid, KILL_TIMEOUT_MS);
}
