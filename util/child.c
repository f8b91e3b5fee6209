/* The first step of a child that corrald forks and that does not exec.
 *
 * A fork of the multi-threaded daemon inherits every descriptor, CLOEXEC or
 * not (nothing execs to close them): the listening socket, the store's
 * files, and the pipe ends of other children forked at the same moment.
 * Two children that each hold the other's "parent is done" pipe never see
 * EOF, and outlive a corrald killed with SIGKILL while keeping its socket
 * and database open, so that the next corrald cannot start. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/util.h"

static void close_between(unsigned lo, unsigned hi)
{
        if (lo > hi)
                return;
        if (syscall(SYS_close_range, lo, hi, 0) == 0)
                return;
        /* Kernels before 5.9: one by one, up to the soft limit. */
        long max = sysconf(_SC_OPEN_MAX);
        for (unsigned fd = lo; fd <= hi && (long)fd < (max > 0 ? max : 1024); fd++)
                (void)close((int)fd);
}

void child_isolate(pid_t parent, const int *keep, size_t n_keep)
{
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        /* The parent may have died before the prctl: then nobody waits. */
        if (getppid() != parent)
                _exit(127);
        unsigned next = 3;
        for (;;) {
                /* The smallest kept fd at or above `next` (keep is short and unsorted). */
                unsigned lowest = ~0U;
                for (size_t i = 0; i < n_keep; i++)
                        if (keep[i] >= 0 && (unsigned)keep[i] >= next && (unsigned)keep[i] < lowest)
                                lowest = (unsigned)keep[i];
                if (lowest == ~0U) {
                        close_between(next, ~0U);
                        return;
                }
                if (lowest > next)
                        close_between(next, lowest - 1);
                next = lowest + 1;
        }
}
