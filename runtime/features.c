/* Host features, detected once: what this kernel and host let us do.
 * Reported in Status so that a degraded host says why. */
#include <ctype.h>
#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <seccomp.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "runtime/runtime-internal.h"

char *cg_v1_controllers(void);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct rt_features feat;

/* A syscall exists when it fails with anything but ENOSYS on bad input. */
static bool have_syscall(long nr, long a, long b, long c, long d)
{
        long r = syscall(nr, a, b, c, d);
        return r >= 0 || errno != ENOSYS;
}

static char *v2_controllers(void)
{
        cleanup_free char *s = NULL;
        size_t n;
        if (file_read_all("/sys/fs/cgroup/cgroup.controllers", &s, &n, 4096, NULL) < 0)
                return xstrdup("");
        s[strcspn(s, "\n")] = '\0';
        return steal_ptr(&s);
}

/* What a pod with its own user namespace needs: a mapped user namespace
 * (the probe maps a range far from real users), and an overlay mount that
 * takes it as its idmap. */
static void detect_userns(void)
{
        static char why[256];
        const struct rt_id_map m = {.container_id = 0, .host_id = 0x7ff00000u, .size = 65536};
        struct err e = ERR_INIT;
        int fd = feat.user_namespaces ? rt_userns_new(&m, 1, &m, 1, &e) : -1;
        feat.user_namespaces = fd >= 0;
        if (fd < 0) {
                snprintf(why, sizeof(why), "user namespaces: %s",
                         e.msg ? e.msg : "/proc/sys/user/max_user_namespaces is 0");
                err_clear(&e);
                feat.userns_pods_why = why;
                return;
        }
        cleanup_free char *not = NULL;
        idmap_probe(fd, m.host_id, &feat.idmap_overlay, &feat.idmap_layers, &not );
        close(fd);
        feat.userns_pods = feat.idmap_layers;
        if (!feat.userns_pods) {
                snprintf(why, sizeof(why), "%s", not ? not : "idmapped overlay mounts do not work");
                feat.userns_pods_why = why;
        }
}

static void detect(void)
{
        feat.cgroup_mode = rt_cgroup_mode();
        feat.cgroup_controllers =
                feat.cgroup_mode == RT_CGROUP_V2_UNIFIED ? v2_controllers() : cg_v1_controllers();
        /* CAP_SYS_RESOURCE in our effective set (capget, no libcap needed). */
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
        struct __user_cap_data_struct d[2];
        memset(d, 0, sizeof(d));
        if (syscall(SYS_capget, &h, d) == 0)
                feat.cap_sys_resource = (d[CAP_SYS_RESOURCE / 32].effective >> (CAP_SYS_RESOURCE % 32)) & 1;
        /* The kernel's capabilities (cap_last_cap) we do not hold: a
         * container can get none of them (caps.c clamps every set). */
        cleanup_free char *last = NULL;
        size_t ln;
        int lastcap = file_read_all("/proc/sys/kernel/cap_last_cap", &last, &ln, 64, NULL) == 0
                              ? atoi(last)
                              : CAP_LAST_CAP;
        for (int cap = 0; cap <= lastcap && cap < 64; cap++)
                if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1)
                        feat.caps_missing |= 1ULL << cap;
        feat.seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 && seccomp_api_get() > 0;
        feat.openat2 = have_syscall(SYS_openat2, -1, 0, 0, 0);
        feat.clone3 = have_syscall(SYS_clone3, 0, 0, 0, 0);
        feat.clone_into_cgroup = feat.clone3 && feat.cgroup_mode == RT_CGROUP_V2_UNIFIED;
        feat.pidfd = have_syscall(SYS_pidfd_open, 0, ~0L, 0, 0);
        /* mount_setattr came last (5.12): recursive read-only mounts need it. */
        feat.new_mount_api =
                have_syscall(SYS_open_tree, -1, 0, ~0L, 0) && have_syscall(SYS_mount_setattr, -1, 0, ~0L, 0);
        cleanup_free char *max = NULL;
        size_t n;
        feat.user_namespaces =
                file_read_all("/proc/sys/user/max_user_namespaces", &max, &n, 64, NULL) == 0 && atoi(max) > 0;
        detect_userns();
        struct stat st;
        feat.systemd_running = stat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode);
}

const struct rt_features *rt_host_features(void)
{
        pthread_once(&once, detect);
        return &feat;
}

char *rt_caps_missing_string(const struct rt_features *f)
{
        struct sbuf b = {0};
        for (int cap = 0; cap < 64; cap++) {
                if (!(f->caps_missing & (1ULL << cap)))
                        continue;
                char *n = cap_to_name((cap_value_t)cap);
                sbuf_printf(&b, "%s%s", b.len ? " " : "", n ? n : "?");
                cap_free(n);
        }
        for (char *p = b.buf; p && *p; p++)
                *p = (char)toupper((unsigned char)*p);
        return sbuf_steal(&b);
}

char *rt_host_features_string(void)
{
        const struct rt_features *f = rt_host_features();
        cleanup_free char *missing = rt_caps_missing_string(f);
        return xasprintf(
                "cgroup=%s driver=%s controllers=\"%s\" cap_sys_resource=%s%s caps_missing=\"%s\"%s "
                "seccomp=%s openat2=%s "
                "clone3=%s clone_into_cgroup=%s pidfd=%s new_mount_api=%s user_namespaces=%s "
                "idmap_overlay=%s idmap_layers=%s systemd=%s%s",
                rt_cgroup_mode_name(f->cgroup_mode), rt_cgroup_driver_name(), f->cgroup_controllers,
                f->cap_sys_resource ? "yes" : "no", f->cap_sys_resource ? "" : " (oom_score_adj clamped)",
                missing,
                missing[0] ? " (not in our bounding set: left out of every container's capabilities)" : "",
                f->seccomp ? "yes" : "no", f->openat2 ? "yes" : "no", f->clone3 ? "yes" : "no",
                f->clone_into_cgroup ? "yes" : "no", f->pidfd ? "yes" : "no", f->new_mount_api ? "yes" : "no",
                f->user_namespaces ? "yes" : "no", f->idmap_overlay ? "yes" : "no",
                f->idmap_layers ? "yes" : "no", f->systemd_running ? "yes" : "no",
                f->systemd_running && f->cgroup_mode != RT_CGROUP_V2_UNIFIED
                        ? " (cgroup v1: systemd slice names map to cgroup paths, no transient units)"
                        : "");
}
