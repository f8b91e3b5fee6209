/* A cgroup's stats files held open: rt_cgroup_stats' figures again and
 * again at one pread per file. kubelet asks for the stats of every
 * container and pod every 10 s; opening the same files by their long
 * paths each time (a kernfs lookup per component, open, read, close) was
 * most of what an idle corrald did at 300 containers. A cgroup file is a
 * seq_file: a read at offset 0 renders it anew. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "runtime/runtime-internal.h"

enum { F_CPU, F_MEM, F_MSTAT, F_PIDS, F_N };

struct rt_cgroup_reader {
        bool v2;
        int fd[F_N]; /* -1: the file is not there, its figure stays 0 */
};

void rt_cgroup_reader_free(struct rt_cgroup_reader *r)
{
        if (r == NULL)
                return;
        for (int i = 0; i < F_N; i++)
                if (r->fd[i] >= 0)
                        close(r->fd[i]);
        free(r);
}

int rt_cgroup_reader_fds(const struct rt_cgroup_reader *r)
{
        int n = 0;
        for (int i = 0; r && i < F_N; i++)
                n += r->fd[i] >= 0;
        return n;
}

static int open_in(const char *dir, const char *file)
{
        if (dir == NULL)
                return -1;
        cleanup_free char *p = path_join(dir, file);
        return open(p, O_RDONLY | O_CLOEXEC);
}

int rt_cgroup_reader_open(const char *path, unsigned flags, struct rt_cgroup_reader **out, struct err *e)
{
        *out = NULL;
        cleanup_free char *p = NULL;
        if (rt_cgroup_resolve(path, &p, e) < 0)
                return -1;
        struct rt_cgroup_reader *r = xmalloc(sizeof(*r));
        for (int i = 0; i < F_N; i++)
                r->fd[i] = -1;
        r->v2 = rt_cgroup_mode() == RT_CGROUP_V2_UNIFIED;
        /* The same files as the drivers' stats op (cgroup_v1.c, cgroup_v2.c). */
        if (r->v2) {
                const char *root;
                (void)cg_ops(&root);
                cleanup_free char *dir = path_join(root, p);
                r->fd[F_MEM] = open_in(dir, "memory.current");
                if (r->fd[F_MEM] < 0) {
                        err_make(e, errno, "cgroup %s", dir);
                        goto fail;
                }
                r->fd[F_CPU] = open_in(dir, "cpu.stat");
                r->fd[F_MSTAT] = open_in(dir, "memory.stat");
                if (flags & RT_CGR_PIDS)
                        r->fd[F_PIDS] = open_in(dir, "pids.current");
        } else {
                cleanup_free char *mem = cg_v1_dir("memory", p);
                if (mem == NULL) {
                        err_set(e, ERR_UNIMPLEMENTED, "cgroup v1 memory controller is not mounted");
                        goto fail;
                }
                r->fd[F_MEM] = open_in(mem, "memory.usage_in_bytes");
                if (r->fd[F_MEM] < 0) {
                        err_make(e, errno, "cgroup %s", mem);
                        goto fail;
                }
                r->fd[F_MSTAT] = open_in(mem, "memory.stat");
                cleanup_free char *cpu = cg_v1_dir("cpuacct", p);
                r->fd[F_CPU] = open_in(cpu, "cpuacct.usage");
                if (flags & RT_CGR_PIDS) {
                        cleanup_free char *pids = cg_v1_dir("pids", p);
                        r->fd[F_PIDS] = open_in(pids, "pids.current");
                }
        }
        *out = r;
        return 0;
fail:
        rt_cgroup_reader_free(r);
        return -1;
}

/* The whole file into buf (NUL-terminated); false when it cannot be read
 * (ENODEV: the cgroup was removed). A seq_file fills the buffer as far as
 * it has text: a short read is the end, no second read to see 0. */
static bool pread_all(int fd, char *buf, size_t cap)
{
        if (fd < 0)
                return false;
        size_t len = 0;
        while (len < cap - 1) {
                size_t want = cap - 1 - len;
                ssize_t n = pread(fd, buf + len, want, (off_t)len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return false;
                len += (size_t)n;
                if ((size_t)n < want)
                        break;
        }
        buf[len] = '\0';
        return true;
}

static bool read_num(int fd, uint64_t *out)
{
        char buf[64];
        if (!pread_all(fd, buf, sizeof(buf)))
                return false;
        *out = strncmp(buf, "max", 3) == 0 ? UINT64_MAX : strtoull(buf, NULL, 10);
        return true;
}

int rt_cgroup_reader_read(struct rt_cgroup_reader *r, struct rt_cgroup_stats *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        /* memory.stat: ~1.5 KiB on v1, ~4 KiB on v2 kernels of 2024. */
        char buf[16384];
        if (!read_num(r->fd[F_MEM], &out->memory_usage))
                return err_make(e, errno, "read cgroup memory usage");
        uint64_t inactive = 0;
        if (pread_all(r->fd[F_MSTAT], buf, sizeof(buf))) {
                /* v1: total_* include the children (a pod's containers). */
                if (r->v2 || !rt_cgm_key(buf, "total_inactive_file", &inactive))
                        (void)rt_cgm_key(buf, "inactive_file", &inactive);
                if (r->v2)
                        (void)rt_cgm_key(buf, "anon", &out->memory_rss);
                else if (!rt_cgm_key(buf, "total_rss", &out->memory_rss))
                        (void)rt_cgm_key(buf, "rss", &out->memory_rss);
        }
        out->memory_working_set = out->memory_usage > inactive ? out->memory_usage - inactive : 0;
        if (r->v2) {
                uint64_t usec = 0;
                if (pread_all(r->fd[F_CPU], buf, sizeof(buf)) && rt_cgm_key(buf, "usage_usec", &usec))
                        out->cpu_usage_ns = usec * 1000;
        } else {
                (void)read_num(r->fd[F_CPU], &out->cpu_usage_ns);
        }
        (void)read_num(r->fd[F_PIDS], &out->pids_current);
        return 0;
}
