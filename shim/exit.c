/* Reaping children and recording the container's exit durably in
 * <state>/exit, so that corrald reads it even when the shim is gone. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "runtime/runtime.h"
#include "shim/shim-internal.h"

void shim_reap(struct shim *s)
{
        for (;;) {
                int status;
                pid_t p = waitpid(-1, &status, WNOHANG);
                if (p < 0 && errno == EINTR)
                        continue;
                if (p <= 0)
                        return;
                if (p == s->pid && s->status != SHIM_EXITED)
                        shim_exit_record(s, status);
                else if (!shim_exec_reaped(s, p, status))
                        /* An orphan we inherited as subreaper. */
                        log_debug("shim", "reaped pid=%d", (int)p);
        }
}

void shim_exit_record(struct shim *s, int status)
{
        s->status = SHIM_EXITED;
        s->finished_ns = time_now_ns();
        if (WIFSIGNALED(status)) {
                s->exit_signal = WTERMSIG(status);
                s->exit_code = 128 + s->exit_signal;
        } else {
                s->exit_signal = 0;
                s->exit_code = WEXITSTATUS(status);
        }
        if (s->cgroup) {
                /* Read the OOM counter while the cgroup still exists. Any OOM
                 * kill in the container counts: `sh -c big` exits 137 after
                 * its child was killed, and that is OOMKilled too. */
                cleanup_err struct err e = ERR_INIT;
                uint64_t kills = 0;
                if (rt_cgroup_oom_kills(s->cgroup, &kills, &e) == 0)
                        s->oom_killed = s->oom_killed || kills > s->oom_base;
                else
                        log_debug("shim", "oom counter of %s: %s", s->cgroup, e.msg);
                /* Without its own pid namespace nothing kills what the init
                 * left behind; do it, as containerd's shim does. */
                if (s->spec && s->spec->namespaces[RT_NS_PID].mode != RT_NS_NEW) {
                        err_clear(&e);
                        if (rt_cgroup_kill_all(s->cgroup, SIGKILL, &e) < 0)
                                log_debug("shim", "kill leftovers in %s: %s", s->cgroup, e.msg);
                }
        }
        /* Output written before the exit is in the log before the exit file. */
        shim_io_drain(s);
        shim_log_sync(&s->log);
        struct shim_state st;
        shim_state_fill(s, &st);
        cleanup_err struct err e = ERR_INIT;
        if (shim_exit_write(s->opts->state_dir, &st, &e) < 0)
                log_error("shim", "record exit of %s: %s", s->opts->id, e.msg);
        s->exit_recorded = true;
        shim_attach_finish(s);
        shim_exited(s);
}
