/* Whether the kernel would discard a signal sent to a container's process.
 *
 * The init of a PID namespace gets, from an ancestor namespace, only the
 * signals it has a handler for (and SIGKILL/SIGSTOP): one with the default
 * action is dropped, not left pending. A workload that installs its SIGTERM
 * handler as it starts (shells with `trap`, busybox top, most daemons) loses
 * a StopContainer that lands a few milliseconds after StartContainer, and
 * the stop then waits out its whole grace period. The shim asks this before
 * signalling, and sends the signal again once the handler exists. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime-internal.h"

/* "SigCgt:\t0000000000004002" and "NSpid:\t1234\t1" from /proc/<pid>/status. */
static int read_status(pid_t pid, uint64_t *caught, uint64_t *ignored, long *ns_pid)
{
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        FILE *f = fopen(path, "re");
        if (f == NULL)
                return -1;
        char line[512];
        int seen = 0;
        *ns_pid = 0;
        while (fgets(line, sizeof(line), f)) {
                if (strncmp(line, "SigCgt:", 7) == 0) {
                        *caught = strtoull(line + 7, NULL, 16);
                        seen |= 1;
                } else if (strncmp(line, "SigIgn:", 7) == 0) {
                        *ignored = strtoull(line + 7, NULL, 16);
                        seen |= 2;
                } else if (strncmp(line, "NSpid:", 6) == 0) {
                        /* The innermost namespace's pid is the last field. */
                        char *last = strrchr(line, '\t');
                        *ns_pid = strtol(last ? last + 1 : line + 6, NULL, 10);
                        seen |= 4;
                }
        }
        fclose(f);
        return seen == 7 ? 0 : -1;
}

bool rt_signal_dropped(pid_t pid, int sig)
{
        if (sig <= 0 || sig >= 64 || sig == SIGKILL || sig == SIGSTOP)
                return false;
        uint64_t caught = 0, ignored = 0;
        long ns_pid = 0;
        if (read_status(pid, &caught, &ignored, &ns_pid) < 0)
                return false; /* gone, or no /proc: nothing better to say */
        uint64_t bit = 1ULL << (sig - 1);
        if (ignored & bit)
                return true;
        return ns_pid == 1 && !(caught & bit);
}
