/* runtime cgroup metrics: the v1 and v2 readers over fake cgroup trees in
 * the formats the kernels write, and the parsers on their own. No root
 * needed. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "tests/unit/check.h"

static void put(const char *dir, const char *file, const char *text)
{
        cleanup_free char *p = path_join(dir, file);
        CHECK(file_write_atomic(p, text, strlen(text), 0644, NULL) == 0);
}

static void test_parsers(void)
{
        uint64_t v = 0;
        CHECK(rt_cgm_key("anon 5\nanon_thp 7\nfile 9\n", "anon_thp", &v) && v == 7);
        CHECK(rt_cgm_key("anon 5\nanon_thp 7\nfile 9\n", "anon", &v) && v == 5);
        CHECK(!rt_cgm_key("anon 5\n", "file", &v));
        CHECK(rt_cgm_count_lines("1\n2\n3\n") == 3);
        CHECK(rt_cgm_count_lines("") == 0);
        CHECK(rt_cgm_count_lines(NULL) == 0);

        struct rt_cgroup_metrics m = {0};
        rt_cgm_parse_io_stat("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
                             "253:1 rbytes=10 wbytes=20 rios=3 wios=4\n",
                             &m);
        CHECK(m.n_io == 2);
        CHECK(m.io[0].major == 8 && m.io[0].minor == 0 && m.io[0].read_bytes == 4096 &&
              m.io[0].write_bytes == 8192 && m.io[0].reads == 1 && m.io[0].writes == 2);
        CHECK(m.io[1].major == 253 && m.io[1].minor == 1 && m.io[1].writes == 4);
        rt_cgroup_metrics_clear(&m);

        rt_cgm_parse_blkio("8:0 Read 100\n8:0 Write 200\n8:0 Sync 300\n8:0 Total 300\nTotal 300\n", true, &m);
        rt_cgm_parse_blkio("8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n", false, &m);
        CHECK(m.n_io == 1);
        CHECK(m.io[0].read_bytes == 100 && m.io[0].write_bytes == 200 && m.io[0].reads == 1 &&
              m.io[0].writes == 2);
        rt_cgroup_metrics_clear(&m);
}

static void test_v2(const char *base)
{
        cleanup_free char *dir = path_join(base, "v2");
        CHECK(mkdir_p(dir, 0755, NULL) == 0);
        put(dir, "cpu.stat",
            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 10\n"
            "nr_throttled 3\nthrottled_usec 40000\n");
        put(dir, "cpu.max", "50000 100000\n");
        put(dir, "cpu.weight", "100\n");
        put(dir, "memory.current", "10485760\n");
        put(dir, "memory.stat",
            "anon 6291456\nfile 4194304\nkernel 65536\nfile_mapped 8192\ninactive_file 1048576\n");
        put(dir, "memory.peak", "20971520\n");
        put(dir, "memory.max", "max\n");
        put(dir, "memory.low", "0\n");
        put(dir, "memory.swap.current", "0\n");
        put(dir, "memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n");
        put(dir, "pids.current", "5\n");
        put(dir, "pids.max", "max\n");
        put(dir, "cgroup.procs", "10\n11\n");
        put(dir, "io.stat", "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n");
        struct rt_cgroup_metrics m = {0};
        CHECK(rt_cgroup_metrics_v2(dir, &m, NULL) == 0);
        CHECK(m.have == (RT_CGM_CPU | RT_CGM_MEMORY | RT_CGM_PIDS | RT_CGM_IO));
        CHECK(m.cpu_usage_ns == 2500000000ull && m.cpu_user_ns == 2000000000ull &&
              m.cpu_system_ns == 500000000ull);
        CHECK(m.cfs_periods == 10 && m.cfs_throttled_periods == 3 && m.cfs_throttled_ns == 40000000);
        CHECK(m.cpu_quota_us == 50000 && m.cpu_period_us == 100000);
        CHECK(m.cpu_shares == 2597); /* weight 100, the default */
        CHECK(m.mem_usage == 10485760 && m.mem_working_set == 10485760 - 1048576);
        CHECK(m.mem_rss == 6291456 && m.mem_cache == 4194304 && m.mem_kernel == 65536 &&
              m.mem_mapped_file == 8192);
        CHECK(m.mem_max_usage == 20971520 && m.mem_limit == 0 && m.mem_failcnt == 4 && m.oom_kills == 1);
        CHECK(m.threads == 5 && m.processes == 2 && m.threads_max == 0);
        CHECK(m.n_io == 1 && m.io[0].read_bytes == 4096);
        rt_cgroup_metrics_clear(&m);

        cleanup_free char *none = path_join(base, "missing");
        struct err e = ERR_INIT;
        CHECK(rt_cgroup_metrics_v2(none, &m, &e) < 0);
        err_clear(&e);
}

static void test_v1(const char *base)
{
        struct rt_cgm_v1_dirs d = {
                .cpu = path_join(base, "cpu"),
                .memory = path_join(base, "memory"),
                .pids = path_join(base, "pids"),
                .blkio = path_join(base, "blkio"),
        };
        d.cpuacct = xstrdup(d.cpu); /* co-mounted, as on Debian */
        CHECK(mkdir_p(d.cpu, 0755, NULL) == 0 && mkdir_p(d.memory, 0755, NULL) == 0 &&
              mkdir_p(d.pids, 0755, NULL) == 0 && mkdir_p(d.blkio, 0755, NULL) == 0);
        long hz = sysconf(_SC_CLK_TCK);
        char stat[64];
        snprintf(stat, sizeof(stat), "user %ld\nsystem %ld\n", 3 * hz, hz);
        put(d.cpu, "cpuacct.usage", "4000000000\n");
        put(d.cpu, "cpuacct.stat", stat);
        put(d.cpu, "cpu.stat", "nr_periods 7\nnr_throttled 2\nthrottled_time 5000\n");
        put(d.cpu, "cpu.shares", "512\n");
        put(d.cpu, "cpu.cfs_quota_us", "-1\n");
        put(d.cpu, "cpu.cfs_period_us", "100000\n");
        put(d.memory, "memory.usage_in_bytes", "8388608\n");
        put(d.memory, "memory.max_usage_in_bytes", "9437184\n");
        put(d.memory, "memory.failcnt", "2\n");
        put(d.memory, "memory.limit_in_bytes", "9223372036854771712\n");
        put(d.memory, "memory.stat",
            "cache 1\nrss 2\nmapped_file 3\ninactive_file 4\ntotal_cache 2097152\ntotal_rss 4194304\n"
            "total_mapped_file 4096\ntotal_swap 0\ntotal_inactive_file 1048576\n");
        put(d.memory, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
        put(d.pids, "pids.current", "3\n");
        put(d.pids, "pids.max", "1024\n");
        put(d.pids, "cgroup.procs", "1\n");
        put(d.blkio, "blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 512\n8:0 Write 1024\nTotal 1536\n");
        put(d.blkio, "blkio.throttle.io_serviced_recursive", "8:0 Read 1\n8:0 Write 2\nTotal 3\n");
        struct rt_cgroup_metrics m = {0};
        CHECK(rt_cgroup_metrics_v1(&d, &m, NULL) == 0);
        CHECK(m.have == (RT_CGM_CPU | RT_CGM_MEMORY | RT_CGM_PIDS | RT_CGM_IO));
        CHECK(m.cpu_usage_ns == 4000000000ull && m.cpu_user_ns == 3000000000ull &&
              m.cpu_system_ns == 1000000000ull);
        CHECK(m.cfs_periods == 7 && m.cfs_throttled_periods == 2 && m.cfs_throttled_ns == 5000);
        CHECK(m.cpu_shares == 512 && m.cpu_quota_us == 0 && m.cpu_period_us == 100000);
        CHECK(m.mem_usage == 8388608 && m.mem_working_set == 8388608 - 1048576);
        CHECK(m.mem_rss == 4194304 && m.mem_cache == 2097152 && m.mem_mapped_file == 4096);
        CHECK(m.mem_max_usage == 9437184 && m.mem_failcnt == 2 && m.mem_limit == 0);
        CHECK(m.threads == 3 && m.processes == 1 && m.threads_max == 1024);
        CHECK(m.n_io == 1 && m.io[0].read_bytes == 512 && m.io[0].write_bytes == 1024 && m.io[0].writes == 2);
        rt_cgroup_metrics_clear(&m);
        free(d.cpu);
        free(d.cpuacct);
        free(d.memory);
        free(d.pids);
        free(d.blkio);
}

int main(void)
{
        char base[] = "/tmp/corral-cgm-XXXXXX";
        if (!mkdtemp(base))
                return 1;
        test_parsers();
        test_v2(base);
        test_v1(base);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
        (void)!system(cmd);
        return check_report("test_runtime_cgroup_metrics");
}
