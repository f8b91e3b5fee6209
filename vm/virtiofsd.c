/* virtiofsd: one daemon per virtio-fs share, started before the VMM (which
 * connects to its vhost-user socket as the client) and ended with it.
 *
 * Two daemons exist: the C one QEMU shipped until 8.0 (Debian 12:
 * /usr/lib/qemu/virtiofsd, `-o source=DIR,...`) and the Rust one
 * (/usr/libexec/virtiofsd, `--shared-dir DIR`). Both are run with the
 * chroot sandbox, not their namespace sandbox: the shim mounts each
 * container's rootfs under the share *after* boot, and a daemon in its own
 * mount namespace would only see those if the share were a shared-
 * propagation mount; with chroot it sees our mounts as QEMU's 9p does. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "vm/vm-internal.h"

/* ---------- which daemon ---------- */

static pthread_mutex_t flavor_lock = PTHREAD_MUTEX_INITIALIZER;
static char *flavor_bin;
static enum vm_virtiofsd_flavor flavor_cached;

/* Run `bin --help` and look for the Rust daemon's --shared-dir. */
static enum vm_virtiofsd_flavor probe_flavor(const char *bin)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return VM_VIRTIOFSD_C;
        pid_t pid = fork();
        if (pid < 0) {
                close(p[0]);
                close(p[1]);
                return VM_VIRTIOFSD_C;
        }
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDONLY);
                if (devnull >= 0)
                        dup2(devnull, 0);
                dup2(p[1], 1);
                dup2(p[1], 2);
                execl(bin, bin, "--help", (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        struct sbuf out = {0};
        char buf[4096];
        ssize_t n;
        /* Bounded: a help text is a few KiB. */
        while (out.len < (1 << 16) && (n = read(p[0], buf, sizeof(buf))) > 0)
                sbuf_append(&out, buf, (size_t)n);
        close(p[0]);
        (void)waitpid(pid, NULL, 0);
        enum vm_virtiofsd_flavor fl =
                out.buf && strstr(out.buf, "--shared-dir") ? VM_VIRTIOFSD_RUST : VM_VIRTIOFSD_C;
        sbuf_free(&out);
        return fl;
}

enum vm_virtiofsd_flavor vm_virtiofsd_flavor(const char *bin)
{
        pthread_mutex_lock(&flavor_lock);
        if (!flavor_bin || strcmp(flavor_bin, bin) != 0) {
                free(flavor_bin);
                flavor_bin = xstrdup(bin);
                flavor_cached = probe_flavor(bin);
        }
        enum vm_virtiofsd_flavor fl = flavor_cached;
        pthread_mutex_unlock(&flavor_lock);
        return fl;
}

char **vm_virtiofsd_argv(const char *bin, enum vm_virtiofsd_flavor fl, const char *socket, const char *dir)
{
        char **a = NULL;
        strv_push(&a, bin);
        char *s = xasprintf("--socket-path=%s", socket);
        strv_push(&a, s);
        free(s);
        if (fl == VM_VIRTIOFSD_RUST) {
                s = xasprintf("--shared-dir=%s", dir);
                strv_push(&a, s);
                free(s);
                strv_push(&a, "--cache=auto");
                strv_push(&a, "--sandbox=chroot");
                strv_push(&a, "--xattr");
        } else {
                /* -f: stay in the foreground, our child. */
                strv_push(&a, "-f");
                strv_push(&a, "-o");
                s = xasprintf("source=%s,cache=auto,xattr,sandbox=chroot", dir);
                strv_push(&a, s);
                free(s);
        }
        return a;
}

/* ---------- readiness ---------- */

bool vm_unix_listening(const char *path)
{
        cleanup_fclose FILE *f = fopen("/proc/net/unix", "re");
        if (!f)
                return false;
        char line[4096];
        size_t plen = strlen(path);
        while (fgets(line, sizeof(line), f)) {
                unsigned long flags = 0;
                int off = 0;
                /* Num RefCount Protocol Flags Type St Inode Path */
                if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %n", &flags, &off) < 1 || off <= 0)
                        continue;
                char *p = line + off;
                p[strcspn(p, "\n")] = '\0';
                /* __SO_ACCEPTCON: listen() was called. */
                if ((flags & 0x10000) && strlen(p) == plen && memcmp(p, path, plen) == 0)
                        return true;
        }
        return false;
}

static char *log_tail(const char *path)
{
        cleanup_free char *s = NULL;
        size_t len = 0;
        if (file_read_all(path, &s, &len, 0, NULL) < 0 || len == 0)
                return xstrdup("");
        size_t from = len > 400 ? len - 400 : 0;
        struct sbuf b = {0};
        sbuf_puts(&b, "; virtiofsd log: ");
        for (size_t i = from; i < len; i++)
                sbuf_putc(&b, s[i] == '\n' ? ' ' : s[i]);
        return sbuf_steal(&b);
}

/* ---------- life ---------- */

int vm_virtiofsd_start(const char *bin, const char *dir, struct vm_virtiofsd *d, int timeout_ms,
                       struct err *e)
{
        enum vm_virtiofsd_flavor fl = vm_virtiofsd_flavor(bin);
        cleanup_strv char **argv = vm_virtiofsd_argv(bin, fl, d->socket_path, dir);
        (void)unlink(d->socket_path);
        if (vm_spawn_process("virtiofsd", bin, argv, NULL, d->log_path, &d->pid, &d->pidfd, e) < 0)
                return -1;
        int64_t deadline = time_mono_ns() / 1000000 + timeout_ms;
        while (!vm_unix_listening(d->socket_path)) {
                if (vm_virtiofsd_reap(d)) {
                        cleanup_free char *tail = log_tail(d->log_path);
                        int st = d->wait_status;
                        vm_virtiofsd_stop(d);
                        return err_set(e, ERR_UNAVAILABLE, "virtiofsd for %s %s %d before listening%s", dir,
                                       WIFSIGNALED(st) ? "killed by signal" : "exited with status",
                                       WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), tail);
                }
                if (time_mono_ns() / 1000000 >= deadline) {
                        cleanup_free char *tail = log_tail(d->log_path);
                        vm_virtiofsd_stop(d);
                        return err_set(e, ERR_DEADLINE,
                                       "virtiofsd for %s did not listen on %s within %d ms%s", dir,
                                       d->socket_path, timeout_ms, tail);
                }
                struct timespec ts = {0, 5 * 1000000};
                nanosleep(&ts, NULL);
        }
        return 0;
}

bool vm_virtiofsd_reap(struct vm_virtiofsd *d)
{
        if (d->pid <= 0)
                return true;
        int st = 0;
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == 0 || (r < 0 && errno != ECHILD))
                return false;
        d->wait_status = r > 0 ? st : 0;
        d->pid = 0;
        if (d->pidfd >= 0)
                close(d->pidfd);
        d->pidfd = -1;
        return true;
}

void vm_virtiofsd_stop(struct vm_virtiofsd *d)
{
        if (d->pid > 0) {
                (void)kill(d->pid, SIGKILL);
                (void)waitpid(d->pid, &d->wait_status, 0);
                d->pid = 0;
        }
        if (d->pidfd >= 0)
                close(d->pidfd);
        d->pidfd = -1;
        if (d->socket_path)
                (void)unlink(d->socket_path);
}
