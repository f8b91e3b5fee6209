/* The figures behind the CRI metrics (cAdvisor's container_* names): each
 * cgroup file is read once per call, v1 and v2 alike, into one struct. The
 * parsers take text so that the unit tests can feed them any kernel's
 * format. rt_cgroup_stats stays the cheap path for the Stats calls. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "runtime/runtime-internal.h"

bool rt_cgm_key(const char *text, const char *key, uint64_t *out)
{
        size_t kl = strlen(key);
        for (const char *line = text; line && *line;) {
                if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
                        *out = strtoull(line + kl + 1, NULL, 10);
                        return true;
                }
                line = strchr(line, '\n');
                if (line)
                        line++;
        }
        return false;
}

size_t rt_cgm_count_lines(const char *text)
{
        size_t n = 0;
        for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
                if (*p != '\n')
                        n++;
        return n;
}

static struct rt_cgm_io *io_dev(struct rt_cgroup_metrics *m, unsigned major, unsigned minor)
{
        for (size_t i = 0; i < m->n_io; i++)
                if (m->io[i].major == major && m->io[i].minor == minor)
                        return &m->io[i];
        m->io = xrealloc(m->io, (m->n_io + 1) * sizeof(*m->io));
        struct rt_cgm_io *d = &m->io[m->n_io++];
        memset(d, 0, sizeof(*d));
        d->major = major;
        d->minor = minor;
        return d;
}

/* v2 io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0". */
void rt_cgm_parse_io_stat(const char *text, struct rt_cgroup_metrics *m)
{
        for (const char *line = text; line && *line;) {
                unsigned major, minor;
                int off = 0;
                if (sscanf(line, "%u:%u%n", &major, &minor, &off) == 2) {
                        struct rt_cgm_io *d = io_dev(m, major, minor);
                        const char *end = strchr(line, '\n');
                        for (const char *p = line + off; *p && (!end || p < end);) {
                                while (*p == ' ')
                                        p++;
                                const char *eq = strchr(p, '=');
                                if (!eq || (end && eq > end))
                                        break;
                                uint64_t v = strtoull(eq + 1, NULL, 10);
                                size_t kl = (size_t)(eq - p);
                                if (kl == 6 && strncmp(p, "rbytes", 6) == 0)
                                        d->read_bytes = v;
                                else if (kl == 6 && strncmp(p, "wbytes", 6) == 0)
                                        d->write_bytes = v;
                                else if (kl == 4 && strncmp(p, "rios", 4) == 0)
                                        d->reads = v;
                                else if (kl == 4 && strncmp(p, "wios", 4) == 0)
                                        d->writes = v;
                                p = strchr(eq, ' ');
                                if (!p)
                                        break;
                        }
                }
                line = strchr(line, '\n');
                if (line)
                        line++;
        }
}

/* v1 blkio.throttle.io_service_bytes / io_serviced: "8:0 Read 4096" lines
 * (and a "Total" line); bytes picks which pair of fields gets the values. */
void rt_cgm_parse_blkio(const char *text, bool bytes, struct rt_cgroup_metrics *m)
{
        for (const char *line = text; line && *line;) {
                unsigned major, minor;
                char op[16];
                unsigned long long v;
                if (sscanf(line, "%u:%u %15s %llu", &major, &minor, op, &v) == 4) {
                        bool rd = strcmp(op, "Read") == 0, wr = strcmp(op, "Write") == 0;
                        if (rd || wr) {
                                struct rt_cgm_io *d = io_dev(m, major, minor);
                                if (bytes)
                                        *(rd ? &d->read_bytes : &d->write_bytes) = v;
                                else
                                        *(rd ? &d->reads : &d->writes) = v;
                        }
                }
                line = strchr(line, '\n');
                if (line)
                        line++;
        }
}

/* Reads file `name` of the directory open at dfd into a buffer the caller
 * frees; NULL when missing. Relative to a dirfd, so that the long cgroup
 * path is walked once per directory, not once per file. */
static char *slurp(int dfd, const char *name)
{
        if (dfd < 0)
                return NULL;
        cleanup_close int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        size_t cap = 4096, len = 0;
        char *buf = xmalloc(cap);
        for (;;) {
                ssize_t n = read(fd, buf + len, cap - len - 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        free(buf);
                        return NULL;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
                if (cap - len - 1 == 0) {
                        if (cap >= (1u << 20))
                                break;
                        cap *= 2;
                        buf = xrealloc(buf, cap);
                }
        }
        buf[len] = '\0';
        return buf;
}

static bool read_u64(int dfd, const char *name, uint64_t *out)
{
        cleanup_free char *s = slurp(dfd, name);
        if (s == NULL)
                return false;
        if (strncmp(s, "max", 3) == 0)
                *out = UINT64_MAX;
        else
                *out = strtoull(s, NULL, 10);
        return true;
}

static int open_dir(const char *dir)
{
        return dir ? open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
}

/* A limit of "max" or the v1 page-rounded LONG_MAX means none: 0. */
static uint64_t limit_or_0(uint64_t v)
{
        return v >= (UINT64_C(1) << 62) ? 0 : v;
}

int rt_cgroup_metrics_v2(const char *path, struct rt_cgroup_metrics *m, struct err *e)
{
        cleanup_close int dir = open_dir(path);
        if (dir < 0)
                return err_make(e, errno, "cgroup %s", path);
        cleanup_free char *cpu = slurp(dir, "cpu.stat");
        uint64_t v = 0;
        if (cpu) {
                m->have |= RT_CGM_CPU;
                if (rt_cgm_key(cpu, "usage_usec", &v))
                        m->cpu_usage_ns = v * 1000;
                if (rt_cgm_key(cpu, "user_usec", &v))
                        m->cpu_user_ns = v * 1000;
                if (rt_cgm_key(cpu, "system_usec", &v))
                        m->cpu_system_ns = v * 1000;
                (void)rt_cgm_key(cpu, "nr_periods", &m->cfs_periods);
                (void)rt_cgm_key(cpu, "nr_throttled", &m->cfs_throttled_periods);
                if (rt_cgm_key(cpu, "throttled_usec", &v))
                        m->cfs_throttled_ns = v * 1000;
        }
        cleanup_free char *cmax = slurp(dir, "cpu.max");
        if (cmax) {
                unsigned long long period = 0;
                char quota[32] = "";
                if (sscanf(cmax, "%31s %llu", quota, &period) == 2) {
                        m->cpu_period_us = period;
                        m->cpu_quota_us = strcmp(quota, "max") == 0 ? 0 : strtoull(quota, NULL, 10);
                }
        }
        /* cAdvisor turns the weight back into v1 shares the same way. */
        if (read_u64(dir, "cpu.weight", &v) && v >= 1 && v <= 10000)
                m->cpu_shares = 2 + ((v - 1) * 262142) / 9999;
        if (read_u64(dir, "memory.current", &m->mem_usage)) {
                m->have |= RT_CGM_MEMORY;
                cleanup_free char *ms = slurp(dir, "memory.stat");
                uint64_t inactive = 0;
                if (ms) {
                        (void)rt_cgm_key(ms, "anon", &m->mem_rss);
                        (void)rt_cgm_key(ms, "file", &m->mem_cache);
                        (void)rt_cgm_key(ms, "file_mapped", &m->mem_mapped_file);
                        (void)rt_cgm_key(ms, "inactive_file", &inactive);
                        if (!rt_cgm_key(ms, "kernel", &m->mem_kernel)) {
                                uint64_t stack = 0, slab = 0;
                                (void)rt_cgm_key(ms, "kernel_stack", &stack);
                                (void)rt_cgm_key(ms, "slab", &slab);
                                m->mem_kernel = stack + slab;
                        }
                }
                m->mem_working_set = m->mem_usage > inactive ? m->mem_usage - inactive : 0;
                if (!read_u64(dir, "memory.peak", &m->mem_max_usage))
                        m->mem_max_usage = m->mem_usage;
                if (read_u64(dir, "memory.max", &v))
                        m->mem_limit = limit_or_0(v);
                if (read_u64(dir, "memory.low", &v))
                        m->mem_reservation = limit_or_0(v);
                (void)read_u64(dir, "memory.swap.current", &m->mem_swap);
                if (read_u64(dir, "memory.swap.max", &v))
                        m->mem_swap_limit = limit_or_0(v);
                cleanup_free char *ev = slurp(dir, "memory.events");
                if (ev) {
                        (void)rt_cgm_key(ev, "max", &m->mem_failcnt);
                        (void)rt_cgm_key(ev, "oom_kill", &m->oom_kills);
                }
        }
        if (read_u64(dir, "pids.current", &m->threads))
                m->have |= RT_CGM_PIDS;
        if (read_u64(dir, "pids.max", &v))
                m->threads_max = limit_or_0(v);
        cleanup_free char *procs = slurp(dir, "cgroup.procs");
        if (procs) {
                m->processes = rt_cgm_count_lines(procs);
                if (!(m->have & RT_CGM_PIDS)) {
                        cleanup_free char *thr = slurp(dir, "cgroup.threads");
                        m->threads = rt_cgm_count_lines(thr);
                        m->have |= RT_CGM_PIDS;
                }
        }
        cleanup_free char *io = slurp(dir, "io.stat");
        if (io) {
                m->have |= RT_CGM_IO;
                rt_cgm_parse_io_stat(io, m);
        }
        return 0;
}

struct v1_fds {
        int cpu, cpuacct, memory, pids, blkio; /* -1: not mounted */
};

static void v1_read(const struct v1_fds *d, struct rt_cgroup_metrics *m)
{
        uint64_t v = 0;
        if (read_u64(d->cpuacct, "cpuacct.usage", &m->cpu_usage_ns)) {
                m->have |= RT_CGM_CPU;
                cleanup_free char *st = slurp(d->cpuacct, "cpuacct.stat");
                /* USER_HZ ticks. */
                uint64_t hz = (uint64_t)sysconf(_SC_CLK_TCK);
                if (st && hz) {
                        if (rt_cgm_key(st, "user", &v))
                                m->cpu_user_ns = v * (1000000000 / hz);
                        if (rt_cgm_key(st, "system", &v))
                                m->cpu_system_ns = v * (1000000000 / hz);
                }
        }
        cleanup_free char *cs = slurp(d->cpu, "cpu.stat");
        if (cs) {
                (void)rt_cgm_key(cs, "nr_periods", &m->cfs_periods);
                (void)rt_cgm_key(cs, "nr_throttled", &m->cfs_throttled_periods);
                (void)rt_cgm_key(cs, "throttled_time", &m->cfs_throttled_ns);
        }
        (void)read_u64(d->cpu, "cpu.shares", &m->cpu_shares);
        (void)read_u64(d->cpu, "cpu.cfs_period_us", &m->cpu_period_us);
        cleanup_free char *quota = slurp(d->cpu, "cpu.cfs_quota_us");
        if (quota) {
                long long q = strtoll(quota, NULL, 10);
                m->cpu_quota_us = q > 0 ? (uint64_t)q : 0;
        }
        if (read_u64(d->memory, "memory.usage_in_bytes", &m->mem_usage)) {
                m->have |= RT_CGM_MEMORY;
                cleanup_free char *ms = slurp(d->memory, "memory.stat");
                uint64_t inactive = 0;
                /* total_* include the children (a pod cgroup's containers). */
                if (ms) {
                        if (!rt_cgm_key(ms, "total_rss", &m->mem_rss))
                                (void)rt_cgm_key(ms, "rss", &m->mem_rss);
                        if (!rt_cgm_key(ms, "total_cache", &m->mem_cache))
                                (void)rt_cgm_key(ms, "cache", &m->mem_cache);
                        if (!rt_cgm_key(ms, "total_mapped_file", &m->mem_mapped_file))
                                (void)rt_cgm_key(ms, "mapped_file", &m->mem_mapped_file);
                        if (!rt_cgm_key(ms, "total_swap", &m->mem_swap))
                                (void)rt_cgm_key(ms, "swap", &m->mem_swap);
                        if (!rt_cgm_key(ms, "total_inactive_file", &inactive))
                                (void)rt_cgm_key(ms, "inactive_file", &inactive);
                }
                m->mem_working_set = m->mem_usage > inactive ? m->mem_usage - inactive : 0;
                (void)read_u64(d->memory, "memory.max_usage_in_bytes", &m->mem_max_usage);
                (void)read_u64(d->memory, "memory.failcnt", &m->mem_failcnt);
                (void)read_u64(d->memory, "memory.kmem.usage_in_bytes", &m->mem_kernel);
                if (read_u64(d->memory, "memory.limit_in_bytes", &v))
                        m->mem_limit = limit_or_0(v);
                if (read_u64(d->memory, "memory.soft_limit_in_bytes", &v))
                        m->mem_reservation = limit_or_0(v);
                if (read_u64(d->memory, "memory.memsw.limit_in_bytes", &v))
                        m->mem_swap_limit = limit_or_0(v);
                cleanup_free char *oc = slurp(d->memory, "memory.oom_control");
                if (oc)
                        (void)rt_cgm_key(oc, "oom_kill", &m->oom_kills);
        }
        if (read_u64(d->pids, "pids.current", &m->threads))
                m->have |= RT_CGM_PIDS;
        if (read_u64(d->pids, "pids.max", &v))
                m->threads_max = limit_or_0(v);
        cleanup_free char *procs = slurp(d->pids >= 0 ? d->pids : d->memory, "cgroup.procs");
        if (procs)
                m->processes = rt_cgm_count_lines(procs);
        if (!(m->have & RT_CGM_PIDS)) {
                cleanup_free char *tasks = slurp(d->memory, "tasks");
                m->threads = rt_cgm_count_lines(tasks);
                m->have |= RT_CGM_PIDS;
        }
        cleanup_free char *ib = slurp(d->blkio, "blkio.throttle.io_service_bytes_recursive");
        if (!ib)
                ib = slurp(d->blkio, "blkio.throttle.io_service_bytes");
        cleanup_free char *is = slurp(d->blkio, "blkio.throttle.io_serviced_recursive");
        if (!is)
                is = slurp(d->blkio, "blkio.throttle.io_serviced");
        if (ib || is) {
                m->have |= RT_CGM_IO;
                rt_cgm_parse_blkio(ib, true, m);
                rt_cgm_parse_blkio(is, false, m);
        }
}

static void close_fd(int fd)
{
        if (fd >= 0)
                close(fd);
}

int rt_cgroup_metrics_v1(const struct rt_cgm_v1_dirs *dirs, struct rt_cgroup_metrics *m, struct err *e)
{
        if (dirs->memory == NULL)
                return err_set(e, ERR_UNIMPLEMENTED, "cgroup v1 memory controller is not mounted");
        struct v1_fds d = {.memory = open_dir(dirs->memory)};
        if (d.memory < 0)
                return err_make(e, errno, "cgroup %s", dirs->memory);
        d.cpu = open_dir(dirs->cpu);
        /* cpu and cpuacct are co-mounted on most hosts: one directory. */
        bool same = dirs->cpu && dirs->cpuacct && strcmp(dirs->cpu, dirs->cpuacct) == 0;
        d.cpuacct = same ? d.cpu : open_dir(dirs->cpuacct);
        d.pids = open_dir(dirs->pids);
        d.blkio = open_dir(dirs->blkio);
        v1_read(&d, m);
        close_fd(d.memory);
        close_fd(d.cpu);
        if (!same)
                close_fd(d.cpuacct);
        close_fd(d.pids);
        close_fd(d.blkio);
        return 0;
}

int rt_cgroup_metrics(const char *path, struct rt_cgroup_metrics *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        cleanup_free char *p = NULL;
        if (rt_cgroup_resolve(path, &p, e) < 0)
                return -1;
        const char *root;
        (void)cg_ops(&root);
        if (rt_cgroup_mode() == RT_CGROUP_V2_UNIFIED) {
                cleanup_free char *dir = path_join(root, p);
                return rt_cgroup_metrics_v2(dir, out, e);
        }
        struct rt_cgm_v1_dirs d = {
                .cpu = cg_v1_dir("cpu", p),
                .cpuacct = cg_v1_dir("cpuacct", p),
                .memory = cg_v1_dir("memory", p),
                .pids = cg_v1_dir("pids", p),
                .blkio = cg_v1_dir("blkio", p),
        };
        int r = rt_cgroup_metrics_v1(&d, out, e);
        free(d.cpu);
        free(d.cpuacct);
        free(d.memory);
        free(d.pids);
        free(d.blkio);
        return r;
}

void rt_cgroup_metrics_clear(struct rt_cgroup_metrics *m)
{
        free(m->io);
        m->io = NULL;
        m->n_io = 0;
}
