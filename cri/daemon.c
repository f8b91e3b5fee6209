/* The daemon: store, host facts, modules and the server, started in that
 * order and stopped in reverse. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "config/config.h"
#include "cri/cri-internal.h"
#include "runtime/runtime.h"
#include "store/store.h"

static int parse_delay(struct cri_daemon *d, const char *spec, struct err *e)
{
        const char *eq = strchr(spec, '=');
        char *end = NULL;
        long ms = eq ? strtol(eq + 1, &end, 10) : -1;
        if (eq == NULL || eq == spec || end == eq + 1 || *end != '\0' || ms < 0 || ms > 600000)
                return err_set(e, ERR_INVALID, "debug delay %s: want METHOD=MILLISECONDS", spec);
        d->delay_method = xstrndup(spec, (size_t)(eq - spec));
        d->delay_ms = (int)ms;
        return 0;
}

/* /dev/kvm can exist and still be unusable (no VMX in a nested guest,
 * wrong group): only a VM that can be created counts. */
static bool kvm_usable(void)
{
        cleanup_close int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (fd < 0 || ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
                return false;
        cleanup_close int vm = ioctl(fd, KVM_CREATE_VM, 0);
        return vm >= 0;
}

static void detect_host(struct cri_daemon *d)
{
        const struct rt_features *f = rt_host_features();
        d->cgroup_mode = xstrdup(rt_cgroup_mode_name(f->cgroup_mode));
        bool systemd = d->cfg->cgroup_driver == CFG_CGROUP_SYSTEMD ||
                       (d->cfg->cgroup_driver == CFG_CGROUP_AUTO && f->systemd_running);
        cleanup_err struct err e = ERR_INIT;
        if (systemd && rt_cgroup_systemd_enable(&e) < 0) {
                /* On v1 the slice names still map to paths (kubelet's systemd
                 * layout), as before; elsewhere cgroupfs, and Status says why. */
                if (f->cgroup_mode == RT_CGROUP_V2_UNIFIED)
                        systemd = false;
                d->cgroup_note =
                        xasprintf("systemd cgroup driver: %s%s", e.msg, systemd ? "" : " (using cgroupfs)");
                log_warn("daemon", "%s", d->cgroup_note);
        }
        d->cgroup_driver = xstrdup(systemd ? "systemd" : "cgroupfs");
        d->has_sys_resource = f->cap_sys_resource;
        d->has_kvm = kvm_usable();
}

int cri_daemon_start(const struct cfg *cfg, const struct cri_daemon_opts *opts, struct cri_daemon **out,
                     struct err *e)
{
        struct cri_daemon *d = xzalloc(sizeof(*d));
        cleanup_free char *db = NULL;
        d->cfg = cfg;
        d->started_ns = time_now_ns();
        if (opts && opts->debug_delay && parse_delay(d, opts->debug_delay, e) < 0)
                goto fail;
        if (mkdir_p(cfg->root, 0711, e) < 0 || mkdir_p(cfg->state, 0711, e) < 0)
                goto fail;
        db = path_join(cfg->root, "corral.db");
        if (store_open(db, &d->store, e) < 0) {
                err_wrap(e, "open store %s", db);
                goto fail;
        }
        if (model_open(d->store, &cri_model_hooks, &d->model, e) < 0)
                goto fail;
        d->ctr_list = cri_list_cache_new();
        d->pod_list = cri_list_cache_new();
        detect_host(d);
        if (cri_metrics_init(d, e) < 0 || cri_network_init(d, e) < 0)
                goto fail;
        d->events = cri_events_new();
        if (cri_images_init(d, e) < 0 || cri_pods_init(d, e) < 0 || cri_streaming_init(d, e) < 0)
                goto fail;
        if (cri_server_new(d, cfg->listen, (size_t)cfg->max_message_bytes, &d->server, e) < 0)
                goto fail;
        log_info("daemon", "started version=%s listen=%s root=%s state=%s cgroup=%s driver=%s kvm=%s",
                 CORRAL_VERSION, cfg->listen, cfg->root, cfg->state, d->cgroup_mode, d->cgroup_driver,
                 d->has_kvm ? "yes" : "no");
        if (!d->has_sys_resource)
                log_warn("daemon", "CAP_SYS_RESOURCE is missing: lower oom_score_adj values are clamped");
        char *caps_missing = rt_caps_missing_string(rt_host_features());
        if (caps_missing[0])
                log_warn("daemon",
                         "capabilities not in our bounding set: %s; containers asking for them (ALL, "
                         "privileged) run without them",
                         caps_missing);
        free(caps_missing);
        *out = d;
        return 0;
fail:
        cri_daemon_stop(d, 0);
        return -1;
}

void cri_daemon_stop(struct cri_daemon *d, int grace_ms)
{
        if (d == NULL)
                return;
        atomic_store(&d->stopping, true);
        if (d->events)
                cri_events_close(d->events);
        if (d->server) {
                cri_server_shutdown(d->server, grace_ms);
                cri_server_free(d->server);
        }
        cri_streaming_fini(d);
        cri_pods_fini(d);
        cri_images_fini(d);
        cri_events_free(d->events);
        cri_network_fini(d);
        cri_metrics_fini(d);
        model_free(d->model);
        cri_list_cache_free(d->ctr_list);
        cri_list_cache_free(d->pod_list);
        store_close(d->store);
        free(d->delay_method);
        free(d->cgroup_mode);
        free(d->cgroup_driver);
        free(d->cgroup_note);
        free(d);
        log_info("daemon", "stopped");
}
