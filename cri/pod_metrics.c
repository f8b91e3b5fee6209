/* CRI metrics (KEP-2371): ListMetricDescriptors, ListPodSandboxMetrics and
 * StreamPodSandboxMetrics with cAdvisor's container_* names and labels, so
 * that kubelet's /metrics/cadvisor reads the same series from us as from
 * cAdvisor. Also the per-object CPU sample behind usage_nano_cores.
 *
 * Namespace pods: one rt_cgroup_metrics per container cgroup (and the pod's
 * cgroup for the pod-level series), the pod netns's links from one netlink
 * dump. VM pods: the guest's figures through the VM shim (one connection
 * per pod), the links of the host side of the pod netns (the VM's traffic
 * crosses its CNI veth), the writable layer from the snapshotter.
 *
 * The values are UInt64: seconds are whole seconds, as containerd and
 * CRI-O send them. */
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "net/net.h"
#include "runtime/runtime.h"
#include "shim/shim.h"
#include "snapshot/snapshot.h"

/* ---------- descriptors ---------- */

enum lk {
        LK_BASE, /* container id image name namespace pod */
        LK_CPU,  /* + cpu */
        LK_NET,  /* + interface */
        LK_DEV,  /* + device */
};

#define C RUNTIME__V1__METRIC_TYPE__COUNTER
#define G RUNTIME__V1__METRIC_TYPE__GAUGE
#define METRICS(X)                                                                                           \
        X(CPU_USAGE, "container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.",        \
          LK_CPU, C)                                                                                         \
        X(CPU_USER, "container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.",     \
          LK_BASE, C)                                                                                        \
        X(CPU_SYSTEM, "container_cpu_system_seconds_total",                                                  \
          "Cumulative system cpu time consumed in seconds.", LK_BASE, C)                                     \
        X(CFS_PERIODS, "container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", \
          LK_BASE, C)                                                                                        \
        X(CFS_THROTTLED_PERIODS, "container_cpu_cfs_throttled_periods_total",                                \
          "Number of throttled period intervals.", LK_BASE, C)                                               \
        X(CFS_THROTTLED_SECONDS, "container_cpu_cfs_throttled_seconds_total",                                \
          "Total time duration the container has been throttled.", LK_BASE, C)                               \
        X(MEM_USAGE, "container_memory_usage_bytes",                                                         \
          "Current memory usage in bytes, including all memory regardless of when it was accessed.",         \
          LK_BASE, G)                                                                                        \
        X(MEM_MAX_USAGE, "container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.",      \
          LK_BASE, G)                                                                                        \
        X(MEM_WORKING_SET, "container_memory_working_set_bytes", "Current working set in bytes.", LK_BASE,   \
          G)                                                                                                 \
        X(MEM_RSS, "container_memory_rss", "Size of RSS in bytes.", LK_BASE, G)                              \
        X(MEM_CACHE, "container_memory_cache", "Number of bytes of page cache memory.", LK_BASE, G)          \
        X(MEM_MAPPED, "container_memory_mapped_file", "Size of memory mapped files in bytes.", LK_BASE, G)   \
        X(MEM_SWAP, "container_memory_swap", "Container swap usage in bytes.", LK_BASE, G)                   \
        X(MEM_KERNEL, "container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", LK_BASE, \
          G)                                                                                                 \
        X(MEM_FAILCNT, "container_memory_failcnt", "Number of memory usage hits limits.", LK_BASE, C)        \
        X(OOM_EVENTS, "container_oom_events_total",                                                          \
          "Count of out of memory events observed for the container.", LK_BASE, C)                           \
        X(PROCESSES, "container_processes", "Number of processes running inside the container.", LK_BASE, G) \
        X(THREADS, "container_threads", "Number of threads running inside the container.", LK_BASE, G)       \
        X(THREADS_MAX, "container_threads_max",                                                              \
          "Maximum number of threads allowed inside the container, infinity if value is zero.", LK_BASE, G)  \
        X(FS_USAGE, "container_fs_usage_bytes",                                                              \
          "Number of bytes that are consumed by the container on this filesystem.", LK_DEV, G)               \
        X(FS_INODES, "container_fs_inodes_total",                                                            \
          "Number of inodes used by the container on this filesystem.", LK_DEV, G)                           \
        X(FS_READS_BYTES, "container_fs_reads_bytes_total", "Cumulative count of bytes read.", LK_DEV, C)    \
        X(FS_WRITES_BYTES, "container_fs_writes_bytes_total", "Cumulative count of bytes written.", LK_DEV,  \
          C)                                                                                                 \
        X(FS_READS, "container_fs_reads_total", "Cumulative count of reads completed.", LK_DEV, C)           \
        X(FS_WRITES, "container_fs_writes_total", "Cumulative count of writes completed.", LK_DEV, C)        \
        X(NET_RX_BYTES, "container_network_receive_bytes_total", "Cumulative count of bytes received.",      \
          LK_NET, C)                                                                                         \
        X(NET_RX_PACKETS, "container_network_receive_packets_total",                                         \
          "Cumulative count of packets received.", LK_NET, C)                                                \
        X(NET_RX_DROPPED, "container_network_receive_packets_dropped_total",                                 \
          "Cumulative count of packets dropped while receiving.", LK_NET, C)                                 \
        X(NET_RX_ERRORS, "container_network_receive_errors_total",                                           \
          "Cumulative count of errors encountered while receiving.", LK_NET, C)                              \
        X(NET_TX_BYTES, "container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.",  \
          LK_NET, C)                                                                                         \
        X(NET_TX_PACKETS, "container_network_transmit_packets_total",                                        \
          "Cumulative count of packets transmitted.", LK_NET, C)                                             \
        X(NET_TX_DROPPED, "container_network_transmit_packets_dropped_total",                                \
          "Cumulative count of packets dropped while transmitting.", LK_NET, C)                              \
        X(NET_TX_ERRORS, "container_network_transmit_errors_total",                                          \
          "Cumulative count of errors encountered while transmitting.", LK_NET, C)                           \
        X(START_TIME, "container_start_time_seconds",                                                        \
          "Start time of the container since unix epoch in seconds.", LK_BASE, G)                            \
        X(LAST_SEEN, "container_last_seen", "Last time a container was seen by the exporter.", LK_BASE, G)   \
        X(SPEC_MEM_LIMIT, "container_spec_memory_limit_bytes", "Memory limit for the container.", LK_BASE,   \
          G)                                                                                                 \
        X(SPEC_MEM_RESERVATION, "container_spec_memory_reservation_limit_bytes",                             \
          "Memory reservation limit for the container.", LK_BASE, G)                                         \
        X(SPEC_MEM_SWAP_LIMIT, "container_spec_memory_swap_limit_bytes",                                     \
          "Memory swap limit for the container.", LK_BASE, G)                                                \
        X(SPEC_CPU_SHARES, "container_spec_cpu_shares", "CPU share of the container.", LK_BASE, G)           \
        X(SPEC_CPU_QUOTA, "container_spec_cpu_quota", "CPU quota of the container.", LK_BASE, G)             \
        X(SPEC_CPU_PERIOD, "container_spec_cpu_period", "CPU period of the container.", LK_BASE, G)

enum metric_id {
#define X(id, name, help, lk, type) M_##id,
        METRICS(X)
#undef X
                M_COUNT,
};

static const struct mdesc {
        const char *name, *help;
        enum lk lk;
        int type;
} descs[] = {
#define X(id, name, help, lk, type) [M_##id] = {name, help, lk, type},
        METRICS(X)
#undef X
};

static const char *const base_keys[] = {"container", "id", "image", "name", "namespace", "pod"};
#define N_BASE ARRAY_SIZE(base_keys)

static const char *extra_key(enum lk lk)
{
        switch (lk) {
        case LK_CPU:
                return "cpu";
        case LK_NET:
                return "interface";
        case LK_DEV:
                return "device";
        case LK_BASE:
                break;
        }
        return NULL;
}

static int list_descriptors(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                            ProtobufCMessage **resp, struct err *e)
{
        (void)d, (void)call, (void)req, (void)e;
        Runtime__V1__ListMetricDescriptorsResponse *r = xmalloc(sizeof(*r));
        runtime__v1__list_metric_descriptors_response__init(r);
        r->descriptors = xcalloc(M_COUNT, sizeof(*r->descriptors));
        for (size_t i = 0; i < M_COUNT; i++) {
                Runtime__V1__MetricDescriptor *m = xmalloc(sizeof(*m));
                runtime__v1__metric_descriptor__init(m);
                m->name = xstrdup(descs[i].name);
                m->help = xstrdup(descs[i].help);
                const char *x = extra_key(descs[i].lk);
                m->n_label_keys = N_BASE + (x ? 1 : 0);
                m->label_keys = xcalloc(m->n_label_keys, sizeof(char *));
                for (size_t k = 0; k < N_BASE; k++)
                        m->label_keys[k] = xstrdup(base_keys[k]);
                if (x)
                        m->label_keys[N_BASE] = xstrdup(x);
                r->descriptors[r->n_descriptors++] = m;
        }
        *resp = &r->base;
        return 0;
}

/* ---------- building the samples ---------- */

struct mlist {
        Runtime__V1__Metric **v;
        size_t n, cap;
        const char *labels[N_BASE]; /* of the object being filled */
};

static void put(struct mlist *l, enum metric_id id, const char *extra, uint64_t value)
{
        if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 32;
                l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
        }
        Runtime__V1__Metric *m = xmalloc(sizeof(*m));
        runtime__v1__metric__init(m);
        m->name = xstrdup(descs[id].name);
        /* Read on demand: 0 tells kubelet the value is live, not cached. */
        m->timestamp = 0;
        m->metric_type = descs[id].type;
        bool has_extra = descs[id].lk != LK_BASE;
        m->n_label_values = N_BASE + (has_extra ? 1 : 0);
        m->label_values = xcalloc(m->n_label_values, sizeof(char *));
        for (size_t k = 0; k < N_BASE; k++)
                m->label_values[k] = xstrdup(l->labels[k] ? l->labels[k] : "");
        if (has_extra)
                m->label_values[N_BASE] = xstrdup(extra ? extra : "");
        m->value = xmalloc(sizeof(*m->value));
        runtime__v1__uint64_value__init(m->value);
        m->value->value = value;
        l->v[l->n++] = m;
}

#define NS_PER_S UINT64_C(1000000000)

/* "/dev/sda1" for a block device number, else "major:minor". */
static char *dev_name(unsigned major, unsigned minor)
{
        char link[64], target[256];
        snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major, minor);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) {
                target[n] = '\0';
                const char *base = strrchr(target, '/');
                return xasprintf("/dev/%s", base ? base + 1 : target);
        }
        return xasprintf("%u:%u", major, minor);
}

static void put_cgroup(struct mlist *l, const struct rt_cgroup_metrics *m, bool with_spec)
{
        if (m->have & RT_CGM_CPU) {
                put(l, M_CPU_USAGE, "total", m->cpu_usage_ns / NS_PER_S);
                put(l, M_CPU_USER, NULL, m->cpu_user_ns / NS_PER_S);
                put(l, M_CPU_SYSTEM, NULL, m->cpu_system_ns / NS_PER_S);
                put(l, M_CFS_PERIODS, NULL, m->cfs_periods);
                put(l, M_CFS_THROTTLED_PERIODS, NULL, m->cfs_throttled_periods);
                put(l, M_CFS_THROTTLED_SECONDS, NULL, m->cfs_throttled_ns / NS_PER_S);
        }
        if (m->have & RT_CGM_MEMORY) {
                put(l, M_MEM_USAGE, NULL, m->mem_usage);
                put(l, M_MEM_MAX_USAGE, NULL, m->mem_max_usage);
                put(l, M_MEM_WORKING_SET, NULL, m->mem_working_set);
                put(l, M_MEM_RSS, NULL, m->mem_rss);
                put(l, M_MEM_CACHE, NULL, m->mem_cache);
                put(l, M_MEM_MAPPED, NULL, m->mem_mapped_file);
                put(l, M_MEM_SWAP, NULL, m->mem_swap);
                put(l, M_MEM_KERNEL, NULL, m->mem_kernel);
                put(l, M_MEM_FAILCNT, NULL, m->mem_failcnt);
                put(l, M_OOM_EVENTS, NULL, m->oom_kills);
        }
        if (m->have & RT_CGM_PIDS) {
                put(l, M_PROCESSES, NULL, m->processes);
                put(l, M_THREADS, NULL, m->threads);
                put(l, M_THREADS_MAX, NULL, m->threads_max);
        }
        for (size_t i = 0; i < m->n_io; i++) {
                cleanup_free char *dev = dev_name(m->io[i].major, m->io[i].minor);
                put(l, M_FS_READS_BYTES, dev, m->io[i].read_bytes);
                put(l, M_FS_WRITES_BYTES, dev, m->io[i].write_bytes);
                put(l, M_FS_READS, dev, m->io[i].reads);
                put(l, M_FS_WRITES, dev, m->io[i].writes);
        }
        if (with_spec) {
                put(l, M_SPEC_MEM_LIMIT, NULL, m->mem_limit);
                put(l, M_SPEC_MEM_RESERVATION, NULL, m->mem_reservation);
                put(l, M_SPEC_MEM_SWAP_LIMIT, NULL, m->mem_swap_limit);
                put(l, M_SPEC_CPU_SHARES, NULL, m->cpu_shares);
                put(l, M_SPEC_CPU_QUOTA, NULL, m->cpu_quota_us);
                put(l, M_SPEC_CPU_PERIOD, NULL, m->cpu_period_us);
        }
}

static void put_links(struct mlist *l, const char *netns, bool guest)
{
        struct net_link_counters *v = NULL;
        size_t n = 0;
        cleanup_err struct err e = ERR_INIT;
        if (net_links_counters(netns, &v, &n, &e) < 0) {
                log_debug("cri", "metrics netns=%s error=\"%s\"", netns, e.msg);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                const struct net_link_counters *c = &v[i];
                /* A guest's tap carries the same frames as the veth it is
                 * redirected to: counted once, on the veth. */
                if (c->loopback || (guest && strncmp(c->name, "tap", 3) == 0))
                        continue;
                put(l, M_NET_RX_BYTES, c->name, c->st.rx_bytes);
                put(l, M_NET_RX_PACKETS, c->name, c->st.rx_packets);
                put(l, M_NET_RX_DROPPED, c->name, c->st.rx_dropped);
                put(l, M_NET_RX_ERRORS, c->name, c->st.rx_errors);
                put(l, M_NET_TX_BYTES, c->name, c->st.tx_bytes);
                put(l, M_NET_TX_PACKETS, c->name, c->st.tx_packets);
                put(l, M_NET_TX_DROPPED, c->name, c->st.tx_dropped);
                put(l, M_NET_TX_ERRORS, c->name, c->st.tx_errors);
        }
        free(v);
}

/* Shared by every container of one call. */
struct pass {
        struct cri_daemon *d;
        char *fs_device; /* the device under the snapshotter's root */
        uint64_t now_s;
};

static void put_fs(struct mlist *l, const struct pass *ps, const struct store_container *c)
{
        if (ps->d->snaps == NULL)
                return;
        /* The walk the stats RPCs and ImageFsInfo share, as old as theirs
         * (only running containers have metrics: no walk after an exit). */
        struct snap_live fs;
        cleanup_err struct err e = ERR_INIT;
        const char *key = c->snapshot_key ? c->snapshot_key : c->id;
        if (snap_live_usage(ps->d->snaps, key, SNAP_LIVE_MAX_AGE_NS, 0, &fs, &e) < 0) {
                log_debug("cri", "metrics container=%s usage error=\"%s\"", c->id, e.msg);
                return;
        }
        put(l, M_FS_USAGE, ps->fs_device, fs.bytes);
        put(l, M_FS_INODES, ps->fs_device, fs.inodes);
}

static Runtime__V1__ContainerMetrics *ctr_metrics(const struct pass *ps, const struct store_pod *p,
                                                  const struct store_container *c, struct shim_conn *vm)
{
        struct ctr_extra x;
        (void)ctr_extra_parse(c->extra_json, &x);
        struct mlist l = {0};
        cleanup_free char *cg = NULL;
        cleanup_err struct err e = ERR_INIT;
        if (x.cgroup && rt_cgroup_resolve(x.cgroup, &cg, &e) < 0)
                log_debug("cri", "metrics container=%s cgroup error=\"%s\"", c->id, e.msg);
        l.labels[0] = c->name;
        l.labels[1] = cg ? cg : c->id;
        l.labels[2] = c->image_ref;
        l.labels[3] = c->id;
        l.labels[4] = p->namespace;
        l.labels[5] = p->name;
        bool ok = false;
        if (x.cgroup) {
                struct rt_cgroup_metrics m;
                err_clear(&e);
                if (rt_cgroup_metrics(x.cgroup, &m, &e) == 0) {
                        put_cgroup(&l, &m, true);
                        ok = true;
                } else {
                        /* Gone since the list was read: it exited. */
                        log_debug("cri", "metrics container=%s error=\"%s\"", c->id, e.msg);
                }
                rt_cgroup_metrics_clear(&m);
        } else if (vm) {
                /* Its cgroup is in the guest: the agent's figures. */
                struct shim_vm_stats st;
                err_clear(&e);
                if (shim_vm_stats(vm, c->id, &st, &e) == 0) {
                        struct rt_cgroup_metrics m = {
                                .have = RT_CGM_CPU | RT_CGM_MEMORY | RT_CGM_PIDS,
                                .cpu_usage_ns = st.cpu_ns,
                                .cpu_user_ns = st.cpu_user_ns,
                                .cpu_system_ns = st.cpu_system_ns,
                                .mem_usage = st.mem_usage,
                                .mem_max_usage = st.mem_max_usage,
                                .mem_working_set = st.memory,
                                .mem_rss = st.mem_rss,
                                .mem_cache = st.mem_cache,
                                .mem_mapped_file = st.mem_mapped_file,
                                .mem_failcnt = st.mem_failcnt,
                                .mem_limit = st.mem_limit,
                                .oom_kills = st.oom_kills,
                                .processes = st.processes,
                                .threads = st.threads ? st.threads : st.pids,
                        };
                        put_cgroup(&l, &m, true);
                        ok = true;
                } else {
                        log_debug("cri", "metrics vm container=%s error=\"%s\"", c->id, e.msg);
                }
        }
        ctr_extra_clear(&x);
        if (!ok) {
                free(l.v);
                return NULL;
        }
        put_fs(&l, ps, c);
        put(&l, M_START_TIME, NULL, (uint64_t)(c->started_ns > 0 ? c->started_ns : c->created_ns) / NS_PER_S);
        put(&l, M_LAST_SEEN, NULL, ps->now_s);
        Runtime__V1__ContainerMetrics *cm = xmalloc(sizeof(*cm));
        runtime__v1__container_metrics__init(cm);
        cm->container_id = xstrdup(c->id);
        cm->metrics = l.v;
        cm->n_metrics = l.n;
        return cm;
}

/* One READY pod: its own series (pod cgroup, network), then each running
 * container's. ctrs are all containers of every pod (one store read). */
static Runtime__V1__PodSandboxMetrics *pod_metrics(const struct pass *ps, const struct store_pod *p,
                                                   const struct store_container *ctrs, size_t n_ctrs)
{
        struct cri_pod_extra x = {0};
        cleanup_err struct err e = ERR_INIT;
        if (cri_pod_extra_parse(p->extra_json, &x, &e) < 0) {
                cri_pod_extra_clear(&x);
                return NULL;
        }
        const struct cri_handler_ops *ops = cri_handler_of_pod(&x);
        Runtime__V1__PodSandboxMetrics *pm = xmalloc(sizeof(*pm));
        runtime__v1__pod_sandbox_metrics__init(pm);
        pm->pod_sandbox_id = xstrdup(p->id);

        struct mlist l = {0};
        cleanup_free char *cg = NULL;
        if (x.cgroup && *x.cgroup && rt_cgroup_resolve(x.cgroup, &cg, &e) < 0)
                err_clear(&e);
        /* cAdvisor's series of a pod cgroup: container "" and the cgroup as id. */
        l.labels[0] = "";
        l.labels[1] = cg ? cg : p->id;
        l.labels[2] = "";
        l.labels[3] = p->id;
        l.labels[4] = p->namespace;
        l.labels[5] = p->name;
        if (x.cgroup && *x.cgroup) {
                struct rt_cgroup_metrics m;
                if (rt_cgroup_metrics(x.cgroup, &m, &e) == 0)
                        put_cgroup(&l, &m, false);
                else
                        err_clear(&e);
                rt_cgroup_metrics_clear(&m);
        }
        if (!x.host_net && x.ns_dir) {
                cleanup_free char *netns = path_join(x.ns_dir, "net");
                put_links(&l, netns, ops->guest_conn != NULL);
        }
        pm->metrics = l.v;
        pm->n_metrics = l.n;

        struct shim_conn *vm = NULL;
        if (ops->guest_conn && ops->guest_conn(&x, &vm, &e) < 0) {
                log_debug("cri", "metrics pod=%s guest error=\"%s\"", p->id, e.msg);
                vm = NULL;
        }
        for (size_t i = 0; i < n_ctrs; i++) {
                const struct store_container *c = &ctrs[i];
                if (strcmp(c->pod_id, p->id) != 0 || c->state != STORE_CTR_RUNNING)
                        continue;
                Runtime__V1__ContainerMetrics *cm = ctr_metrics(ps, p, c, vm);
                if (cm == NULL)
                        continue;
                pm->container_metrics =
                        xrealloc(pm->container_metrics, (pm->n_container_metrics + 1) * sizeof(cm));
                pm->container_metrics[pm->n_container_metrics++] = cm;
        }
        shim_close(vm);
        cri_pod_extra_clear(&x);
        return pm;
}

static char *fs_device(const struct cri_daemon *d)
{
        struct stat st;
        if (d->snaps == NULL || stat(snap_root(d->snaps), &st) < 0)
                return xstrdup("");
        char link[64], target[256];
        snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0) /* not a block device (tmpfs, overlay): the place itself */
                return xstrdup(snap_root(d->snaps));
        return dev_name(major(st.st_dev), minor(st.st_dev));
}

static int collect(struct cri_daemon *d, Runtime__V1__PodSandboxMetrics ***out, size_t *nout, struct err *e)
{
        *out = NULL;
        *nout = 0;
        struct store_pod *pods = NULL;
        size_t np = 0;
        if (model_pod_list(d->model, &pods, &np, e) < 0)
                return -1;
        struct store_container *ctrs = NULL;
        size_t nc = 0;
        if (model_ctr_list(d->model, NULL, &ctrs, &nc, e) < 0) {
                store_pods_free(pods, np);
                return -1;
        }
        struct pass ps = {.d = d, .fs_device = fs_device(d), .now_s = (uint64_t)time_now_ns() / NS_PER_S};
        Runtime__V1__PodSandboxMetrics **v = np ? xcalloc(np, sizeof(*v)) : NULL;
        size_t k = 0;
        for (size_t i = 0; i < np; i++) {
                /* Like cAdvisor: only what is alive; a stopped pod's series end. */
                if (pods[i].state != STORE_POD_READY)
                        continue;
                Runtime__V1__PodSandboxMetrics *pm = pod_metrics(&ps, &pods[i], ctrs, nc);
                if (pm)
                        v[k++] = pm;
        }
        free(ps.fs_device);
        store_ctrs_free(ctrs, nc);
        store_pods_free(pods, np);
        *out = v;
        *nout = k;
        return 0;
}

static int list_pod_metrics(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                            ProtobufCMessage **resp, struct err *e)
{
        (void)call, (void)req;
        Runtime__V1__ListPodSandboxMetricsResponse *r = xmalloc(sizeof(*r));
        runtime__v1__list_pod_sandbox_metrics_response__init(r);
        if (collect(d, &r->pod_metrics, &r->n_pod_metrics, e) < 0) {
                free(r);
                return -1;
        }
        *resp = &r->base;
        return 0;
}

static int stream_pod_metrics(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                              struct err *e)
{
        (void)req;
        Runtime__V1__PodSandboxMetrics **all = NULL;
        size_t n = 0;
        if (collect(d, &all, &n, e) < 0)
                return -1;
        /* A pod's series are a few KiB: 20 per message stays far below the cap. */
        int r = 0;
        for (size_t i = 0; i < n && r == 0; i += 20) {
                Runtime__V1__StreamPodSandboxMetricsResponse m =
                        RUNTIME__V1__STREAM_POD_SANDBOX_METRICS_RESPONSE__INIT;
                m.pod_sandbox_metrics = all + i;
                m.n_pod_sandbox_metrics = n - i < 20 ? n - i : 20;
                r = cri_call_send(call, &m.base, e);
        }
        for (size_t i = 0; i < n; i++)
                protobuf_c_message_free_unpacked(&all[i]->base, NULL);
        free(all);
        return r;
}

const struct cri_handler cri_pod_metrics_handlers[] = {
        {.name = "ListMetricDescriptors", .unary = list_descriptors, .flags = CRI_INLINE},
        {.name = "ListPodSandboxMetrics", .unary = list_pod_metrics},
        {.name = "StreamPodSandboxMetrics", .stream = stream_pod_metrics},
        {0},
};

/* ---------- usage_nano_cores ---------- */
