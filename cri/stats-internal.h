/* What the Stats RPCs (stats.c) keep between calls (stats_cache.c). */
#ifndef CORRAL_CRI_STATS_INTERNAL_H
#define CORRAL_CRI_STATS_INTERNAL_H

#include "cri/cri-internal.h"
#include "runtime/runtime.h"

struct cri_cgroup_reading {
        struct rt_cgroup_stats st; /* pids_current of pods only; no oom_kills */
        int64_t wall_ns;           /* when it was read: the figures' timestamp */
        bool have_cores;
        uint64_t cores; /* usage_nano_cores */
};
/* The figures of object `id` (pod: a pod's cgroup, with pids) in cgroup
 * `cgroup`: read now, or less than a second ago. False (e set) when the
 * cgroup cannot be read. */
bool cri_stats_cgroup(const char *id, bool pod, const char *cgroup, struct cri_cgroup_reading *out,
                      struct err *e);
/* The object no longer runs: its cgroup's files are closed. */
void cri_stats_release(const char *id);
/* A listing of every container (pods: every pod) began at mono `since`:
 * what it did not see is gone. */
void cri_stats_listed(bool pods, int64_t since);

#endif
