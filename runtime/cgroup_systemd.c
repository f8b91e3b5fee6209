/* The systemd cgroup driver (cgroup v2 only): a pod's slice and each
 * container's scope are systemd units, started and changed over D-Bus
 * (sd-bus), so that systemd knows every cgroup, accounts for it and never
 * resets a limit it did not set: a `daemon-reload` or `daemon-reexec`
 * re-applies what the unit says, so every limit goes through systemd first
 * (then the files are written too, for the exact values and what systemd has
 * no property for: hugetlb, memory.oom.group, other unified keys).
 *
 * A scope cannot start empty (systemd 252 refuses it), and the container's
 * process is made later, by the shim, which is static and has no sd-bus. So
 * the scope starts around a holder: a tiny process of ours that systemd moves
 * into it; the shim then clones the container straight into the scope's
 * cgroup (CLONE_INTO_CGROUP) as with cgroupfs, and the holder exits once it
 * is no longer alone there. Delegate=yes: the scope's cgroup is ours.
 *
 * Only corrald calls rt_cgroup_systemd_enable; nothing else references this
 * file, so the static shim and agent link without libsystemd. The bus is
 * systemd's private socket (root), else the system bus: dbus-daemon being
 * restarted does not stop us. One short connection per operation. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>

#include "runtime/runtime-internal.h"

#define SD_DEST       "org.freedesktop.systemd1"
#define SD_PATH       "/org/freedesktop/systemd1"
#define SD_MANAGER    "org.freedesktop.systemd1.Manager"
#define CALL_USEC     (30ULL * 1000000)
#define JOB_WAIT_MS   60000
#define HOLD_MAX_SECS 120

static void bus_closep(sd_bus **b)
{
        if (*b)
                sd_bus_flush_close_unref(*b);
}
#define cleanup_bus __attribute__((cleanup(bus_closep)))

static void msg_unrefp(sd_bus_message **m)
{
        if (*m)
                sd_bus_message_unref(*m);
}
#define cleanup_msg __attribute__((cleanup(msg_unrefp)))

static int bus_open(sd_bus **out, struct err *e)
{
        sd_bus *b = NULL;
        int r = sd_bus_new(&b);
        if (r >= 0)
                r = sd_bus_set_address(b, "unix:path=/run/systemd/private");
        if (r >= 0)
                r = sd_bus_start(b);
        if (r < 0) {
                if (b)
                        sd_bus_unref(b);
                b = NULL;
                r = sd_bus_open_system(&b);
        }
        if (r < 0)
                return err_make(e, -r, "connect to systemd (/run/systemd/private, then the system bus)");
        *out = b;
        return 0;
}

static int bus_fail(struct err *e, int r, sd_bus_error *be, const char *what, const char *unit)
{
        int code = sd_bus_error_get_errno(be);
        err_make(e, code ? code : -r, "systemd %s %s: %s", what, unit,
                 be->message ? be->message : strerror(-r));
        sd_bus_error_free(be);
        return -1;
}

/* ---------- unit names from cgroup paths ---------- */

static const char *last_component(const char *path)
{
        const char *s = strrchr(path, '/');
        return s ? s + 1 : path;
}

/* The slice a unit at `path` sits in: the component before it, or -.slice. */
static char *parent_slice(const char *path)
{
        const char *n = last_component(path);
        if (n <= path + 1)
                return xstrdup("-.slice");
        const char *end = n - 1, *start = end;
        while (start > path && start[-1] != '/')
                start--;
        return start == end ? xstrdup("-.slice") : xstrndup(start, (size_t)(end - start));
}

/* ---------- properties ---------- */

static int put_u64(sd_bus_message *m, const char *name, uint64_t v)
{
        return sd_bus_message_append(m, "(sv)", name, "t", v);
}

static int put_bool(sd_bus_message *m, const char *name, bool v)
{
        return sd_bus_message_append(m, "(sv)", name, "b", (int)v);
}

/* "0-3,6" -> the little-endian bitmask AllowedCPUs/AllowedMemoryNodes take. */
static int put_cpuset(sd_bus_message *m, const char *name, const char *list)
{
        uint8_t mask[128] = {0};
        size_t len = 0;
        for (const char *p = list; *p;) {
                char *end;
                unsigned long a = strtoul(p, &end, 10), b = a;
                if (end == p)
                        return -EINVAL;
                if (*end == '-') {
                        p = end + 1;
                        b = strtoul(p, &end, 10);
                        if (end == p || b < a)
                                return -EINVAL;
                }
                if (b >= sizeof(mask) * 8)
                        return -ERANGE;
                for (unsigned long i = a; i <= b; i++)
                        mask[i / 8] |= (uint8_t)(1u << (i % 8));
                if (b / 8 + 1 > len)
                        len = b / 8 + 1;
                p = *end == ',' ? end + 1 : end;
                if (*end && *end != ',')
                        return -EINVAL;
        }
        int r = sd_bus_message_open_container(m, 'r', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", name);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "ay");
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', mask, len);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

static bool parse_limit(const char *v, uint64_t *out)
{
        if (v == NULL)
                return false;
        while (*v == ' ')
                v++;
        if (strncmp(v, "max", 3) == 0) {
                *out = UINT64_MAX;
                return true;
        }
        char *end;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (errno || end == v)
                return false;
        *out = n;
        return true;
}

/* The unified keys systemd has a property for; the rest are files only. */
static const struct {
        const char *key, *prop;
} unified_props[] = {
        {"memory.max", "MemoryMax"},          {"memory.high", "MemoryHigh"},
        {"memory.low", "MemoryLow"},          {"memory.min", "MemoryMin"},
        {"memory.swap.max", "MemorySwapMax"}, {"pids.max", "TasksMax"},
        {"cpu.weight", "CPUWeight"},          {"io.weight", "IOWeight"},
};

/* Every limit of `r` as unit properties (the same mapping as cgroup_v2.c). */
static int put_resources(sd_bus_message *m, const struct rt_resources *r)
{
        int k = 0;
        if (r == NULL)
                return 0;
        if (r->cpu_shares)
                k = put_u64(m, "CPUWeight", cg_shares_to_weight(r->cpu_shares));
        if (k >= 0 && r->cpu_quota) {
                uint64_t period = r->cpu_period ? r->cpu_period : 100000;
                uint64_t per_sec = r->cpu_quota > 0 ? (uint64_t)r->cpu_quota * 1000000 / period : UINT64_MAX;
                k = put_u64(m, "CPUQuotaPerSecUSec", per_sec);
                if (k >= 0 && r->cpu_period)
                        k = put_u64(m, "CPUQuotaPeriodUSec", r->cpu_period);
        }
        if (k >= 0 && r->cpuset_cpus && r->cpuset_cpus[0])
                k = put_cpuset(m, "AllowedCPUs", r->cpuset_cpus);
        if (k >= 0 && r->cpuset_mems && r->cpuset_mems[0])
                k = put_cpuset(m, "AllowedMemoryNodes", r->cpuset_mems);
        if (k >= 0 && r->memory_limit)
                k = put_u64(m, "MemoryMax", r->memory_limit > 0 ? (uint64_t)r->memory_limit : UINT64_MAX);
        if (k >= 0 && r->memory_swap) {
                uint64_t sw = UINT64_MAX;
                if (r->memory_swap > 0 && r->memory_limit > 0)
                        sw = r->memory_swap > r->memory_limit ? (uint64_t)(r->memory_swap - r->memory_limit)
                                                              : 0;
                k = put_u64(m, "MemorySwapMax", sw);
        } else if (k >= 0 && r->memory_limit > 0) {
                k = put_u64(m, "MemorySwapMax", 0);
        }
        if (k >= 0 && r->pids_limit)
                k = put_u64(m, "TasksMax", r->pids_limit > 0 ? (uint64_t)r->pids_limit : UINT64_MAX);
        for (size_t i = 0; k >= 0 && i < r->n_unified; i++) {
                const char *key = r->unified[i].key, *v = r->unified[i].value;
                for (size_t j = 0; key && j < ARRAY_SIZE(unified_props); j++) {
                        if (strcmp(key, unified_props[j].key) != 0)
                                continue;
                        uint64_t n;
                        /* io.weight: "default 100" or "100" */
                        const char *num = v && str_has_prefix(v, "default ") ? v + 8 : v;
                        if (parse_limit(num, &n))
                                k = put_u64(m, unified_props[j].prop, n);
                }
        }
        return k;
}

/* ---------- jobs ---------- */

struct job_wait {
        char *path;  /* the job we wait for, once known */
        char **seen; /* jobs removed before we knew ours */
        size_t n_seen;
        char *result;
};

static int on_job_removed(sd_bus_message *m, void *ud, sd_bus_error *be)
{
        (void)be;
        struct job_wait *w = ud;
        uint32_t id;
        const char *path, *unit, *result;
        if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0)
                return 0;
        if (w->path && strcmp(path, w->path) == 0) {
                free(w->result);
                w->result = xstrdup(result);
        } else if (w->path == NULL) {
                w->seen = xrealloc(w->seen, (w->n_seen + 1) * sizeof(char *));
                w->seen[w->n_seen++] = xasprintf("%s\n%s", path, result);
        }
        return 0;
}

static void job_wait_clear(struct job_wait *w)
{
        for (size_t i = 0; i < w->n_seen; i++)
                free(w->seen[i]);
        free(w->seen);
        free(w->path);
        free(w->result);
}

/* Call a Manager method that returns a job ("o"), and wait for the job to
 * finish. `m` is the method call, filled in by the caller. */
static int call_job(sd_bus *bus, sd_bus_message *m, const char *what, const char *unit, struct err *e)
{
        sd_bus_error be = SD_BUS_ERROR_NULL;
        struct job_wait w = {0};
        sd_bus_slot *slot = NULL;
        cleanup_msg sd_bus_message *reply = NULL;
        int r = sd_bus_match_signal(bus, &slot, NULL, SD_PATH, SD_MANAGER, "JobRemoved", on_job_removed, &w);
        if (r < 0)
                return err_make(e, -r, "systemd: watch JobRemoved");
        /* Signals go only to subscribed clients (the private socket has no broker). */
        r = sd_bus_call_method(bus, SD_DEST, SD_PATH, SD_MANAGER, "Subscribe", &be, NULL, "");
        if (r < 0 && !sd_bus_error_has_name(&be, "org.freedesktop.systemd1.AlreadySubscribed")) {
                sd_bus_slot_unref(slot);
                return bus_fail(e, r, &be, "Subscribe for", unit);
        }
        sd_bus_error_free(&be);
        r = sd_bus_call(bus, m, CALL_USEC, &be, &reply);
        if (r < 0) {
                sd_bus_slot_unref(slot);
                job_wait_clear(&w);
                return bus_fail(e, r, &be, what, unit);
        }
        const char *job;
        r = sd_bus_message_read(reply, "o", &job);
        if (r < 0) {
                sd_bus_slot_unref(slot);
                job_wait_clear(&w);
                return err_make(e, -r, "systemd %s %s: bad reply", what, unit);
        }
        w.path = xstrdup(job);
        for (size_t i = 0; i < w.n_seen; i++) {
                size_t l = strlen(w.path);
                if (strncmp(w.seen[i], w.path, l) == 0 && w.seen[i][l] == '\n')
                        w.result = xstrdup(w.seen[i] + l + 1);
        }
        int64_t deadline = time_mono_ns() + (int64_t)JOB_WAIT_MS * 1000000;
        while (w.result == NULL) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        break;
                if (r > 0)
                        continue;
                int64_t left = deadline - time_mono_ns();
                if (left <= 0) {
                        r = -ETIMEDOUT;
                        break;
                }
                r = sd_bus_wait(bus, (uint64_t)left / 1000);
                if (r < 0)
                        break;
        }
        sd_bus_slot_unref(slot);
        int ret = 0;
        if (w.result == NULL)
                ret = err_make(e, -r, "systemd %s %s: waiting for job %s", what, unit, w.path);
        else if (strcmp(w.result, "done") != 0)
                ret = err_set(e, ERR_INTERNAL, "systemd %s %s: job %s", what, unit, w.result);
        job_wait_clear(&w);
        return ret;
}

/* ---------- the holder ---------- */

static int procs_in(const char *cgdir)
{
        char p[4200];
        if (snprintf(p, sizeof(p), "/sys/fs/cgroup%s/cgroup.procs", cgdir) >= (int)sizeof(p))
                return -1;
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        char buf[256];
        ssize_t n = read(fd, buf, sizeof(buf));
        close(fd);
        int lines = 0;
        for (ssize_t i = 0; i < n; i++)
                lines += buf[i] == '\n';
        return lines;
}

/* Async-signal-safe only: forked from a threaded daemon. */
static _Noreturn void holder_main(void)
{
        (void)prctl(PR_SET_NAME, "corral-cg-hold", 0, 0, 0);
        for (int i = 0; i < HOLD_MAX_SECS * 20; i++) {
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
                char buf[4096];
                int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t n = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (n <= 3 || strncmp(buf, "0::", 3) != 0)
                        continue;
                buf[n] = '\0';
                buf[strcspn(buf, "\n")] = '\0';
                /* Still where we were born: systemd has not moved us yet. */
                if (!str_has_suffix(buf, ".scope") && !str_has_suffix(buf, ".scope/" CG_SCOPE_LEAF))
                        continue;
                if (procs_in(buf + 3) > 1)
                        break;
        }
        _exit(0);
}

/* A process that is no one's child for long: its parent exits at once, so
 * init (or the nearest subreaper) reaps it. */
static pid_t holder_spawn(struct err *e)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return err_make(e, errno, "pipe");
        pid_t self = getpid();
        pid_t mid = fork();
        if (mid < 0) {
                int er = errno;
                close(p[0]);
                close(p[1]);
                return err_make(e, er, "fork");
        }
        if (mid == 0) {
                child_isolate(self, &p[1], 1);
                pid_t h = fork();
                if (h == 0) {
                        close(p[1]);
                        (void)setsid();
                        holder_main();
                }
                (void)!write(p[1], &h, sizeof(h));
                _exit(0);
        }
        close(p[1]);
        pid_t h = -1;
        ssize_t n;
        while ((n = read(p[0], &h, sizeof(h))) < 0 && errno == EINTR)
                ;
        close(p[0]);
        while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
                ;
        if (n != sizeof(h) || h <= 0)
                return err_set(e, ERR_INTERNAL, "could not start the scope's holder process");
        return h;
}

/* ---------- unit operations ---------- */

static int new_call(sd_bus *bus, sd_bus_message **m, const char *method, struct err *e)
{
        int r = sd_bus_message_new_method_call(bus, m, SD_DEST, SD_PATH, SD_MANAGER, method);
        return r < 0 ? err_make(e, -r, "systemd: new %s call", method) : 0;
}

static int set_properties(sd_bus *bus, const char *unit, const struct rt_resources *r, struct err *e)
{
        cleanup_msg sd_bus_message *m = NULL;
        if (new_call(bus, &m, "SetUnitProperties", e) < 0)
                return -1;
        int k = sd_bus_message_append(m, "sb", unit, 1);
        if (k >= 0)
                k = sd_bus_message_open_container(m, 'a', "(sv)");
        if (k >= 0)
                k = put_resources(m, r);
        if (k >= 0)
                k = sd_bus_message_close_container(m);
        if (k < 0)
                return err_make(e, -k, "systemd: properties of %s", unit);
        sd_bus_error be = SD_BUS_ERROR_NULL;
        k = sd_bus_call(bus, m, CALL_USEC, &be, NULL);
        return k < 0 ? bus_fail(e, k, &be, "SetUnitProperties", unit) : 0;
}

static int start_unit(sd_bus *bus, const char *path, const struct rt_resources *r, pid_t pid, struct err *e)
{
        const char *unit = last_component(path);
        bool scope = str_has_suffix(unit, ".scope");
        cleanup_msg sd_bus_message *m = NULL;
        cleanup_free char *slice = parent_slice(path);
        cleanup_free char *desc = xasprintf("corral %s %s", scope ? "container" : "pod", unit);
        if (new_call(bus, &m, "StartTransientUnit", e) < 0)
                return -1;
        int k = sd_bus_message_append(m, "ss", unit, "fail");
        if (k >= 0)
                k = sd_bus_message_open_container(m, 'a', "(sv)");
        if (k >= 0)
                k = sd_bus_message_append(m, "(sv)", "Description", "s", desc);
        if (k >= 0 && scope)
                k = sd_bus_message_append(m, "(sv)(sv)(sv)", "Slice", "s", slice, "PIDs", "au", 1,
                                          (uint32_t)pid, "CollectMode", "s", "inactive-or-failed");
        if (k >= 0 && scope)
                k = put_bool(m, "Delegate", true);
        if (k >= 0)
                k = put_bool(m, "DefaultDependencies", false);
        const char *acct[] = {"MemoryAccounting", "CPUAccounting", "TasksAccounting", "IOAccounting"};
        for (size_t i = 0; k >= 0 && i < ARRAY_SIZE(acct); i++)
                k = put_bool(m, acct[i], true);
        if (k >= 0)
                k = put_resources(m, r);
        if (k >= 0)
                k = sd_bus_message_close_container(m);
        if (k >= 0)
                k = sd_bus_message_append(m, "a(sa(sv))", 0);
        if (k < 0)
                return err_make(e, -k, "systemd: properties of %s", unit);
        return call_job(bus, m, "StartTransientUnit", unit, e);
}

static bool unit_exists_error(const struct err *e)
{
        return e->errnum == EEXIST || (e->msg && strstr(e->msg, "already exists"));
}

/* The cgroup the container's files go to: the scope's leaf when there is one. */
static char *files_path(const char *root, const char *path)
{
        if (!str_has_suffix(path, ".scope"))
                return xstrdup(path);
        char *leaf = xasprintf("%s/%s", path, CG_SCOPE_LEAF);
        cleanup_free char *dir = path_join(root, leaf);
        if (access(dir, F_OK) == 0)
                return leaf;
        free(leaf);
        return xstrdup(path);
}

/* The scope's leaf, with the holder moved into it, so that the scope has no
 * process of its own and can hand its controllers down. */
static int leaf_setup(const char *root, const char *path, pid_t holder, struct err *e)
{
        cleanup_free char *scope = path_join(root, path);
        cleanup_free char *leaf = path_join(scope, CG_SCOPE_LEAF);
        if (mkdir(leaf, 0755) < 0 && errno != EEXIST)
                return err_make(e, errno, "create cgroup %s", leaf);
        if (holder > 0) {
                char buf[16];
                snprintf(buf, sizeof(buf), "%d", (int)holder);
                if (cg_write(leaf, "cgroup.procs", buf, e) < 0)
                        return -1;
        }
        cg_v2_enable_controllers(scope);
        return 0;
}

static int sd_update(const char *root, const char *path, const struct rt_resources *r, struct err *e)
{
        cleanup_bus sd_bus *bus = NULL;
        if (bus_open(&bus, e) < 0 || set_properties(bus, last_component(path), r, e) < 0)
                return -1;
        /* Then the files: the exact values, and the keys systemd has no
         * property for (in the leaf, which systemd never rewrites). */
        cleanup_free char *fp = files_path(root, path);
        return rt_cgroup_v2_ops.update(root, fp, r, e);
}

static int sd_create(const char *root, const char *path, const struct rt_resources *r, struct err *e)
{
        cleanup_bus sd_bus *bus = NULL;
        if (bus_open(&bus, e) < 0)
                return -1;
        const char *unit = last_component(path);
        pid_t holder = -1;
        if (str_has_suffix(unit, ".scope")) {
                holder = holder_spawn(e);
                if (holder < 0)
                        return -1;
        }
        if (start_unit(bus, path, r, holder, e) < 0) {
                if (holder > 0)
                        (void)kill(holder, SIGKILL);
                if (!unit_exists_error(e))
                        return -1;
                /* Made before (a retry, or a corrald restarted mid-create): update it. */
                err_clear(e);
                if (set_properties(bus, unit, r, e) < 0)
                        return -1;
        }
        /* systemd has made the cgroup; the files carry what it has no property for. */
        if (str_has_suffix(unit, ".scope") && leaf_setup(root, path, holder, e) < 0) {
                (void)sd_bus_call_method(bus, SD_DEST, SD_PATH, SD_MANAGER, "StopUnit", NULL, NULL, "ss",
                                         unit, "replace");
                return err_wrap(e, "unit %s", unit);
        }
        cleanup_free char *fp = files_path(root, path);
        if (rt_cgroup_v2_ops.update(root, fp, r, e) < 0) {
                (void)sd_bus_call_method(bus, SD_DEST, SD_PATH, SD_MANAGER, "StopUnit", NULL, NULL, "ss",
                                         unit, "replace");
                return err_wrap(e, "unit %s", unit);
        }
        return 0;
}

static int sd_remove(const char *root, const char *path, int timeout_ms, struct err *e)
{
        const char *unit = last_component(path);
        cleanup_bus sd_bus *bus = NULL;
        if (bus_open(&bus, e) < 0)
                return -1;
        cleanup_msg sd_bus_message *m = NULL;
        if (new_call(bus, &m, "StopUnit", e) < 0)
                return -1;
        int k = sd_bus_message_append(m, "ss", unit, "replace");
        if (k < 0)
                return err_make(e, -k, "systemd: StopUnit %s", unit);
        cleanup_err struct err se = ERR_INIT;
        if (call_job(bus, m, "StopUnit", unit, &se) < 0 && !strstr(se.msg, "not loaded") &&
            se.errnum != ENOENT && !strstr(se.msg, "NoSuchUnit"))
                log_debug("cgroup", "%s", se.msg);
        /* A failed unit (an OOM kill) stays loaded until reset. */
        (void)sd_bus_call_method(bus, SD_DEST, SD_PATH, SD_MANAGER, "ResetFailedUnit", NULL, NULL, "s", unit);
        /* systemd removes the cgroup with the unit; what is left is ours. */
        cleanup_free char *dir = path_join(root, path);
        return cg_rmdir_retry(dir, timeout_ms, e);
}

static int sd_enter(const char *root, const char *path, pid_t pid, struct err *e)
{
        return rt_cgroup_v2_ops.enter(root, path, pid, e);
}
static int sd_stats(const char *root, const char *path, struct rt_cgroup_stats *out, struct err *e)
{
        return rt_cgroup_v2_ops.stats(root, path, out, e);
}
static int sd_oom_kills(const char *root, const char *path, uint64_t *out, struct err *e)
{
        return rt_cgroup_v2_ops.oom_kills(root, path, out, e);
}
static int sd_oom_fd(const char *root, const char *path, struct err *e)
{
        return rt_cgroup_v2_ops.oom_fd(root, path, e);
}
static int sd_pids(const char *root, const char *path, pid_t **pids, size_t *n, struct err *e)
{
        return rt_cgroup_v2_ops.pids(root, path, pids, n, e);
}
static int sd_kill_all(const char *root, const char *path, int sig, struct err *e)
{
        return rt_cgroup_v2_ops.kill_all(root, path, sig, e);
}
static int sd_devices(const char *root, const char *path, const struct dev_rule *r, size_t n, struct err *e)
{
        return rt_cgroup_v2_ops.devices(root, path, r, n, e);
}

static const struct rt_cgroup_ops systemd_ops = {
        .name = "systemd",
        .create = sd_create,
        .enter = sd_enter,
        .update = sd_update,
        .stats = sd_stats,
        .oom_kills = sd_oom_kills,
        .oom_fd = sd_oom_fd,
        .pids = sd_pids,
        .kill_all = sd_kill_all,
        .remove = sd_remove,
        .devices = sd_devices,
};

int rt_cgroup_systemd_enable(struct err *e)
{
        if (rt_cgroup_mode() != RT_CGROUP_V2_UNIFIED)
                return err_set(e, ERR_UNIMPLEMENTED,
                               "the systemd driver needs cgroup v2 (this host is %s): slices are made as "
                               "plain cgroups",
                               rt_cgroup_mode_name(rt_cgroup_mode()));
        struct stat st;
        if (stat("/run/systemd/system", &st) < 0)
                return err_set(e, ERR_UNAVAILABLE, "systemd is not the init system (no /run/systemd/system)");
        cleanup_bus sd_bus *bus = NULL;
        if (bus_open(&bus, e) < 0)
                return -1;
        sd_bus_error be = SD_BUS_ERROR_NULL;
        char *version = NULL;
        int r = sd_bus_get_property_string(bus, SD_DEST, SD_PATH, SD_MANAGER, "Version", &be, &version);
        if (r < 0)
                return bus_fail(e, r, &be, "get", "Version");
        log_debug("cgroup", "systemd driver: systemd %s", version);
        free(version);
        cg_unit_ops = &systemd_ops;
        return 0;
}
