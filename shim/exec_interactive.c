/* Interactive exec: `corral-shim exec`, a fresh single-threaded helper
 * process per exec session (corrald is multi-threaded and must not call
 * rt_exec itself).
 *
 * corrald side: shim_exec_spawn() forks and execs the helper with the
 * session's pipes as its fds 0/1/2, the resize pipe on fd 3 and the report
 * pipe on fd 4. Only async-signal-safe calls between fork and exec.
 *
 * Helper side: shim_exec_run() reads spec.json, runs the command with
 * rt_exec in the container of `pid`, and
 *   - without a tty hands its own fds 0/1/2 to the process (no copying),
 *   - with a tty opens a pty, gives the process the slave, and relays
 *     between the master and fds 0/1; resize messages on fd 3
 *     (struct shim_attach_resize) become TIOCSWINSZ.
 * It exits with the process's exit code (128+signo when killed). SIGTERM,
 * SIGINT or SIGHUP to the helper SIGKILL the process. When the process
 * could not be started, the error text goes to the report fd and the
 * helper exits 127. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "shim/shim.h"

#define HELPER_RESIZE_FD 3
#define HELPER_REPORT_FD 4

/* ---------- corrald side ---------- */

static char **helper_argv(const struct shim_exec_opts *o)
{
        char **v = NULL;
        char num[32];
        strv_push(&v, o->shim_path);
        strv_push(&v, "exec");
        strv_push(&v, "--bundle");
        strv_push(&v, o->bundle);
        snprintf(num, sizeof(num), "%d", (int)o->pid);
        strv_push(&v, "--pid");
        strv_push(&v, num);
        if (o->tty) {
                strv_push(&v, "--tty");
                strv_push(&v, "--resize-fd");
                strv_push(&v, "3");
        }
        strv_push(&v, "--report-fd");
        strv_push(&v, "4");
        if (o->cwd && *o->cwd) {
                strv_push(&v, "--cwd");
                strv_push(&v, o->cwd);
        }
        for (size_t i = 0; o->env && o->env[i]; i++) {
                strv_push(&v, "--env");
                strv_push(&v, o->env[i]);
        }
        strv_push(&v, "--");
        for (size_t i = 0; o->args[i]; i++)
                strv_push(&v, o->args[i]);
        return v;
}

/* Async-signal-safe decimal. */
static size_t fmt_int(char *buf, int v)
{
        char tmp[16];
        size_t n = 0, k = 0;
        unsigned u = v < 0 ? (unsigned)-v : (unsigned)v;
        do {
                tmp[n++] = (char)('0' + u % 10);
                u /= 10;
        } while (u && n < sizeof(tmp));
        if (v < 0)
                buf[k++] = '-';
        while (n)
                buf[k++] = tmp[--n];
        return k;
}

/* The child: becomes the helper. Async-signal-safe only. */
static void __attribute__((noreturn)) exec_helper(int fds[5], char **argv)
{
        /* Any of them may sit on 0..4: move all out of the way first. */
        int hi[5];
        for (int i = 0; i < 5; i++) {
                hi[i] = fds[i] >= 0 ? fcntl(fds[i], F_DUPFD, 10) : -1;
                if (fds[i] >= 0 && hi[i] < 0)
                        _exit(127);
        }
        for (int i = 0; i < 5; i++) {
                if (hi[i] >= 0) {
                        if (dup2(hi[i], i) < 0)
                                _exit(127);
                } else {
                        (void)close(i);
                }
        }
        if (syscall(SYS_close_range, 5, ~0U, 0) < 0)
                for (int fd = 5; fd < 1024; fd++)
                        (void)close(fd);
        sigset_t none;
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++)
                (void)signal(sig, SIG_DFL);
        /* Out of corrald's session (a ^C at corrald's terminal is not ours);
         * and gone with the thread that waits for us. */
        (void)setsid();
        (void)prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
        if (chdir("/") < 0)
                _exit(127);
        execv(argv[0], argv);
        char msg[96] = "exec corral-shim failed: errno ";
        size_t n = strlen(msg);
        n += fmt_int(msg + n, errno);
        (void)!write(HELPER_REPORT_FD, msg, n);
        _exit(127);
}

int shim_exec_spawn(const struct shim_exec_opts *o, pid_t *helper_pid, int *resize_fd, struct err *e)
{
        *helper_pid = -1;
        if (resize_fd)
                *resize_fd = -1;
        if (!o->shim_path || !o->bundle || o->pid <= 0 || !o->args || !o->args[0])
                return err_set(e, ERR_INVALID, "exec: shim_path, bundle, pid and a command are required");
        cleanup_strv char **argv = helper_argv(o);
        cleanup_close int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0)
                return err_make(e, errno, "open /dev/null");
        cleanup_close int rz_r = -1;
        cleanup_close int rz_w = -1;
        if (o->tty) {
                int p[2];
                if (pipe2(p, O_CLOEXEC) < 0)
                        return err_make(e, errno, "pipe");
                rz_r = p[0];
                rz_w = p[1];
                /* A resize must never block the session's reader thread. */
                (void)fcntl(rz_w, F_SETFL, fcntl(rz_w, F_GETFL) | O_NONBLOCK);
        }
        int fds[5] = {
                o->stdin_fd >= 0 ? o->stdin_fd : devnull,
                o->stdout_fd >= 0 ? o->stdout_fd : devnull,
                o->stderr_fd >= 0 ? o->stderr_fd : (o->tty && o->stdout_fd >= 0 ? o->stdout_fd : devnull),
                rz_r,
                o->report_fd >= 0 ? o->report_fd : devnull,
        };
        pid_t pid = fork();
        if (pid < 0)
                return err_make(e, errno, "fork");
        if (pid == 0)
                exec_helper(fds, argv);
        *helper_pid = pid;
        if (resize_fd)
                *resize_fd = steal_fd(&rz_w);
        return 0;
}

/* ---------- helper side ---------- */

static int exit_code_of(int status)
{
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return WEXITSTATUS(status);
}

static void report(int fd, const char *msg)
{
        if (fd >= 0)
                (void)fd_write_all(fd, msg, strlen(msg));
}

/* Reap `pid` if it has exited: true with *code set. */
static bool reap(pid_t pid, int *code)
{
        int status;
        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid) {
                        *code = exit_code_of(status);
                        return true;
                }
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0 && errno == ECHILD) {
                        *code = 255;
                        return true;
                }
                return false;
        }
}

/* Handle one signal from the signalfd: true when `pid` has exited. */
static bool on_signal(int sfd, pid_t pid, int *code)
{
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo != SIGCHLD)
                        (void)kill(pid, SIGKILL);
        }
        return reap(pid, code);
}

static void set_size(int master, int rfd)
{
        struct shim_attach_resize rs;
        while (read(rfd, &rs, sizeof(rs)) == (ssize_t)sizeof(rs)) {
                struct winsize ws = {.ws_row = rs.rows, .ws_col = rs.cols};
                (void)ioctl(master, TIOCSWINSZ, &ws);
        }
}

/* Copy what the master has to fd 1; false at EOF/EIO (no slave holder left). */
static bool master_out(int master)
{
        char buf[32768];
        ssize_t n = read(master, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return true;
        if (n <= 0)
                return false;
        (void)fd_write_all(1, buf, (size_t)n);
        return true;
}

/* The tty relay, until the process exits; returns its exit code. */
static int relay_tty(int master, int rfd, int sfd, pid_t pid)
{
        int code = 0;
        bool exited = false, in_open = true, master_open = true;
        char inbuf[8192];
        size_t in_len = 0, in_off = 0;
        (void)fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
        if (rfd >= 0)
                (void)fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK);
        while (!exited) {
                struct pollfd p[4];
                nfds_t n = 0;
                int i_sig = (int)n;
                p[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
                int i_master = (int)n;
                short mev = master_open ? POLLIN : 0;
                if (in_len > in_off)
                        mev |= POLLOUT;
                p[n++] = (struct pollfd){.fd = master_open ? master : -1, .events = mev};
                int i_in = (int)n;
                p[n++] = (struct pollfd){.fd = in_open && in_len == in_off ? 0 : -1, .events = POLLIN};
                int i_rz = (int)n;
                p[n++] = (struct pollfd){.fd = rfd, .events = POLLIN};
                if (poll(p, n, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[i_rz].revents & POLLIN)
                        set_size(master, rfd);
                else if (p[i_rz].revents & (POLLHUP | POLLERR | POLLNVAL)) {
                        set_size(master, rfd);
                        rfd = -1; /* poll ignores negative fds */
                }
                if (p[i_master].revents & POLLIN) {
                        if (!master_out(master))
                                master_open = false;
                } else if (p[i_master].revents & (POLLHUP | POLLERR)) {
                        (void)master_out(master);
                        master_open = false;
                }
                if ((p[i_master].revents & POLLOUT) && in_len > in_off) {
                        ssize_t w = write(master, inbuf + in_off, in_len - in_off);
                        if (w > 0)
                                in_off += (size_t)w;
                        else if (w < 0 && errno != EAGAIN && errno != EINTR)
                                in_off = in_len; /* the terminal is gone: drop */
                }
                if (p[i_in].revents & (POLLIN | POLLHUP | POLLERR)) {
                        ssize_t r = read(0, inbuf, sizeof(inbuf));
                        if (r > 0) {
                                in_len = (size_t)r;
                                in_off = 0;
                        } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                                /* A terminal has no half-close: send EOF (^D)
                                 * as a terminal would (as attach does). */
                                struct termios t;
                                inbuf[0] = tcgetattr(master, &t) == 0 ? (char)t.c_cc[VEOF] : 4;
                                in_len = 1;
                                in_off = 0;
                                in_open = false;
                        }
                }
                if (p[i_sig].revents & POLLIN)
                        exited = on_signal(sfd, pid, &code);
        }
        /* The process is gone: what it wrote is in the master now. A
         * background child may still hold the slave: read what is there. */
        for (int i = 0; master_open && i < 4096; i++) {
                struct pollfd q = {.fd = master, .events = POLLIN};
                if (poll(&q, 1, 0) <= 0 || !master_out(master))
                        break;
        }
        return code;
}

static int wait_plain(int sfd, pid_t pid)
{
        int code = 0;
        for (;;) {
                struct pollfd p = {.fd = sfd, .events = POLLIN};
                if (poll(&p, 1, -1) < 0 && errno != EINTR)
                        return 255;
                if (on_signal(sfd, pid, &code))
                        return code;
        }
}

int shim_exec_run(const struct shim_exec_opts *o)
{
        cleanup_err struct err e = ERR_INIT;
        int rep = o->report_fd;
        /* Ours, not the command's. */
        if (rep >= 0)
                (void)fcntl(rep, F_SETFD, FD_CLOEXEC);
        if (o->resize_fd >= 0)
                (void)fcntl(o->resize_fd, F_SETFD, FD_CLOEXEC);
        if (!o->bundle || o->pid <= 0 || !o->args || !o->args[0]) {
                report(rep, "exec: --bundle, --pid and a command are required");
                return 127;
        }
        /* SIGCHLD and the stop signals, taken synchronously. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigprocmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);
        cleanup_close int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                report(rep, "exec: signalfd failed");
                return 127;
        }

        cleanup_free char *spec_path = path_join(o->bundle, "spec.json");
        struct rt_spec *spec = rt_spec_read_file(spec_path, &e);
        if (spec == NULL) {
                report(rep, e.msg);
                return 127;
        }
        struct rt_process proc;
        memset(&proc, 0, sizeof(proc));
        proc.args = (char **)o->args;
        proc.env = o->env && o->env[0] ? (char **)o->env : NULL;
        proc.cwd = o->cwd && *o->cwd ? (char *)o->cwd : NULL;
        proc.tty = o->tty;

        int master = -1, slave = -1;
        struct rt_stdio stdio = {.in = 0, .out = 1, .err = 2};
        if (o->tty) {
                if (openpty(&master, &slave, NULL, NULL, NULL) < 0) {
                        report(rep, "exec: openpty failed");
                        rt_spec_free(spec);
                        return 127;
                }
                (void)fcntl(master, F_SETFD, FD_CLOEXEC);
                (void)fcntl(slave, F_SETFD, FD_CLOEXEC);
                /* A size that arrived before the process starts applies at once. */
                if (o->resize_fd >= 0) {
                        (void)fcntl(o->resize_fd, F_SETFL, fcntl(o->resize_fd, F_GETFL) | O_NONBLOCK);
                        set_size(master, o->resize_fd);
                }
                stdio = (struct rt_stdio){.in = slave, .out = slave, .err = slave};
        }
        pid_t pid = -1;
        int r = rt_exec(o->pid, spec, &proc, &stdio, &pid, &e);
        rt_spec_free(spec);
        if (slave >= 0)
                close(slave);
        if (r < 0) {
                report(rep, e.msg ? e.msg : "exec failed");
                if (master >= 0)
                        close(master);
                return 127;
        }
        if (rep >= 0)
                close(rep); /* started: nothing to report, EOF for the reader */
        if (!o->tty) {
                /* The process has its own copies: ours would keep the
                 * client's streams open after it exits. */
                int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (devnull >= 0) {
                        for (int fd = 0; fd < 3; fd++)
                                (void)dup2(devnull, fd);
                        close(devnull);
                }
                return wait_plain(sfd, pid);
        }
        int code = relay_tty(master, o->resize_fd, sfd, pid);
        close(master);
        return code;
}
