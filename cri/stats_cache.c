/* What the Stats RPCs keep between calls, per container and pod: the
 * cgroup's stats files held open (rt_cgroup_reader) and the last figures
 * read from them.
 *
 * kubelet asks ListContainerStats and ListPodSandboxStats for everything
 * every 10 s. Opening each cgroup file by path and walking each writable
 * layer for every container on every call was nearly all the CPU an idle
 * corrald used at 300 containers:
 *  - cgroup figures are read at every call, one pread per file. A figure
 *    read less than CGROUP_FRESH_NS ago is served again: ListPodSandboxStats
 *    repeats every container ListContainerStats has just read, and two
 *    clients asking at once share one reading. The timestamps sent are those
 *    of the reading, and usage_nano_cores spans >= 1 s anyway (cpu_rate.c).
 *  - the writable layer's usage is not here: the snapshotter keeps each
 *    tree's last walk, shared with ImageFsInfo (snap_live_usage).
 * Descriptors stay bounded: a reader is closed when its container stops
 * (cri_stats_release), when an object was not seen by a full listing or
 * for ENTRY_KEEP_NS, and never more than a quarter of RLIMIT_NOFILE is held.
 * The daemon is one per process: a static table, as cpu_rate.c. */
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>

#include "cri/stats-internal.h"

#define CGROUP_FRESH_NS INT64_C(1000000000)
#define ENTRY_KEEP_NS   (INT64_C(120) * 1000000000)

struct entry {
        struct entry *next;
        char id[ID_LEN + 1];
        bool pod;
        int64_t seen; /* mono ns */
        char *cgroup; /* what rd and st are of */
        struct rt_cgroup_reader *rd;
        int rd_fds;
        bool have_st;
        int64_t st_mono, st_wall;
        struct rt_cgroup_stats st;
        bool have_cores;
        uint64_t cores;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct entry **buckets;
static size_t n_buckets, n_entries;
static int fds_held, fds_budget = -1;
static int64_t last_sweep;

static size_t hash(const char *id)
{
        uint64_t h = 1469598103934665603ULL;
        for (; *id; id++)
                h = (h ^ (unsigned char)*id) * 1099511628211ULL;
        return (size_t)h;
}

static struct entry **slot(const char *id)
{
        struct entry **pp = &buckets[hash(id) % n_buckets];
        while (*pp && strcmp((*pp)->id, id) != 0)
                pp = &(*pp)->next;
        return pp;
}

static void grow(void)
{
        size_t n = n_buckets ? n_buckets * 2 : 256;
        struct entry **b = xcalloc(n, sizeof(*b));
        for (size_t i = 0; i < n_buckets; i++) {
                while (buckets[i]) {
                        struct entry *x = buckets[i];
                        buckets[i] = x->next;
                        x->next = b[hash(x->id) % n];
                        b[hash(x->id) % n] = x;
                }
        }
        free(buckets);
        buckets = b;
        n_buckets = n;
}

static struct entry *get(const char *id, bool pod, int64_t now)
{
        if (n_entries >= n_buckets)
                grow();
        struct entry **pp = slot(id);
        if (*pp == NULL) {
                struct entry *x = xzalloc(sizeof(*x));
                snprintf(x->id, sizeof(x->id), "%s", id);
                x->pod = pod;
                *pp = x;
                n_entries++;
        }
        (*pp)->seen = now;
        return *pp;
}

static void close_reader(struct entry *x)
{
        rt_cgroup_reader_free(x->rd);
        x->rd = NULL;
        fds_held -= x->rd_fds;
        x->rd_fds = 0;
}

static void drop_cgroup(struct entry *x)
{
        close_reader(x);
        free(x->cgroup);
        x->cgroup = NULL;
        x->have_st = x->have_cores = false;
}

static void unlink_free(struct entry **pp)
{
        struct entry *x = *pp;
        *pp = x->next;
        drop_cgroup(x);
        free(x);
        n_entries--;
}

/* Entries of the kind listed (pod or not) unseen since `since`. */
static void sweep(bool pod, int64_t since)
{
        for (size_t i = 0; i < n_buckets; i++)
                for (struct entry **pp = &buckets[i]; *pp;)
                        if ((*pp)->pod == pod && (*pp)->seen < since)
                                unlink_free(pp);
                        else
                                pp = &(*pp)->next;
}

static void sweep_old(int64_t now)
{
        if (now - last_sweep < ENTRY_KEEP_NS / 4)
                return;
        last_sweep = now;
        sweep(false, now - ENTRY_KEEP_NS);
        sweep(true, now - ENTRY_KEEP_NS);
}

static bool may_hold(int n)
{
        if (fds_budget < 0) {
                struct rlimit rl;
                rlim_t cur = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
                fds_budget = cur == RLIM_INFINITY || cur > (1 << 20) ? (1 << 18) : (int)(cur / 4);
        }
        return fds_held + n <= fds_budget;
}

/* Under mu: a new reading into x, through its reader when it has (or may
 * open) one, else by path as rt_cgroup_stats does. */
static bool read_cgroup(struct entry *x, unsigned flags, struct err *e)
{
        if (x->rd == NULL && may_hold(4) && rt_cgroup_reader_open(x->cgroup, flags, &x->rd, e) == 0) {
                x->rd_fds = rt_cgroup_reader_fds(x->rd);
                fds_held += x->rd_fds;
        }
        err_clear(e);
        if (x->rd && rt_cgroup_reader_read(x->rd, &x->st, e) == 0)
                return true;
        /* Removed (and maybe made again under the same path): by path. */
        close_reader(x);
        err_clear(e);
        cleanup_free char *cg = NULL;
        if (rt_cgroup_resolve(x->cgroup, &cg, e) < 0 || rt_cgroup_stats(cg, &x->st, e) < 0)
                return false;
        if (!(flags & RT_CGR_PIDS))
                x->st.pids_current = 0;
        return true;
}

bool cri_stats_cgroup(const char *id, bool pod, const char *cgroup, struct cri_cgroup_reading *out,
                      struct err *e)
{
        memset(out, 0, sizeof(*out));
        int64_t now = time_mono_ns();
        bool ok = false;
        pthread_mutex_lock(&mu);
        sweep_old(now);
        struct entry *x = get(id, pod, now);
        if (x->cgroup == NULL || strcmp(x->cgroup, cgroup) != 0) {
                drop_cgroup(x);
                x->cgroup = xstrdup(cgroup);
        }
        if (!x->have_st || now - x->st_mono >= CGROUP_FRESH_NS) {
                x->have_st = read_cgroup(x, pod ? RT_CGR_PIDS : 0, e);
                x->st_mono = now;
                x->st_wall = time_now_ns();
                x->have_cores = x->have_st && cri_cpu_nano_cores(id, x->st.cpu_usage_ns, &x->cores);
        }
        if (x->have_st) {
                out->st = x->st;
                out->wall_ns = x->st_wall;
                out->have_cores = x->have_cores;
                out->cores = x->cores;
                ok = true;
        }
        pthread_mutex_unlock(&mu);
        return ok;
}

void cri_stats_release(const char *id)
{
        pthread_mutex_lock(&mu);
        if (n_buckets) {
                struct entry **pp = slot(id);
                if (*pp)
                        drop_cgroup(*pp);
        }
        pthread_mutex_unlock(&mu);
}

void cri_stats_listed(bool pods, int64_t since)
{
        pthread_mutex_lock(&mu);
        sweep(pods, since);
        pthread_mutex_unlock(&mu);
}
