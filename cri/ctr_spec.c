/* CRI ContainerConfig + the image config -> struct rt_spec, following
 * containerd's CRI plugin (pkg/cri/server/container_create_linux.go) so
 * that pods behave the same under corral: the entrypoint/cmd rules, env
 * merge, the default capability set, masked and readonly paths, mounts of
 * the pod's hosts / resolv.conf / hostname files, namespaces of the pod. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "image/image.h"
#include "runtime/runtime.h"
#include "snapshot/snapshot.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* containerd's default capabilities (oci.defaultUnixCaps). */
static const char *const default_caps[] = {
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
        NULL,
};

/* containerd's defaults (oci.populateDefaultUnixSpec). */
static const char *const default_masked[] = {
        "/proc/acpi",          "/proc/asound",
        "/proc/kcore",         "/proc/keys",
        "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats",   "/proc/sched_debug",
        "/sys/firmware",       "/sys/devices/virtual/powercap",
        "/proc/scsi",          NULL,
};
static const char *const default_readonly[] = {
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL,
};

char *ctr_cgroup_path(const struct cri_daemon *d, const char *parent, const char *id)
{
        if (parent == NULL || *parent == '\0')
                parent = strcmp(d->cgroup_driver, "systemd") == 0 ? "corral.slice" : "/corral";
        if (str_has_suffix(parent, ".slice")) {
                /* "/a.slice/a-b.slice" names the same slice as "a-b.slice" (critest
                 * passes a path, as containerd accepts). */
                const char *base = strrchr(parent, '/');
                return xasprintf("%s:corral:%s", base ? base + 1 : parent, id); /* corral-<id>.scope */
        }
        return xasprintf("%s%s/%s", parent[0] == '/' ? "" : "/", parent, id);
}

/* ---------- resources ---------- */

static bool cpuset_ok(const char *s)
{
        for (const char *p = s; p && *p; p++)
                if (!isdigit((unsigned char)*p) && *p != ',' && *p != '-')
                        return false;
        return true;
}

int ctr_resources_validate(const Runtime__V1__LinuxContainerResources *r, struct err *e)
{
        if (r == NULL)
                return 0;
        if (r->memory_limit_in_bytes < 0)
                return err_set(e, ERR_INVALID, "memory limit %lld is negative",
                               (long long)r->memory_limit_in_bytes);
        if (r->memory_limit_in_bytes > 0 && r->memory_limit_in_bytes < 4096)
                return err_set(e, ERR_INVALID, "memory limit %lld bytes is below one page",
                               (long long)r->memory_limit_in_bytes);
        if (r->memory_swap_limit_in_bytes < -1)
                return err_set(e, ERR_INVALID, "memory swap limit %lld is negative",
                               (long long)r->memory_swap_limit_in_bytes);
        if (r->cpu_period != 0 && (r->cpu_period < 1000 || r->cpu_period > 1000000))
                return err_set(e, ERR_INVALID, "cpu period %lld us is out of range (1000..1000000)",
                               (long long)r->cpu_period);
        if (r->cpu_quota != 0 && r->cpu_quota != -1 && r->cpu_quota < 1000)
                return err_set(e, ERR_INVALID, "cpu quota %lld us is out of range (>= 1000, or -1)",
                               (long long)r->cpu_quota);
        if (r->cpu_shares < 0 || r->cpu_shares > 262144)
                return err_set(e, ERR_INVALID, "cpu shares %lld are out of range (2..262144)",
                               (long long)r->cpu_shares);
        if (r->oom_score_adj < -1000 || r->oom_score_adj > 1000)
                return err_set(e, ERR_INVALID, "oom_score_adj %lld is out of range (-1000..1000)",
                               (long long)r->oom_score_adj);
        if (!cpuset_ok(r->cpuset_cpus) || !cpuset_ok(r->cpuset_mems))
                return err_set(e, ERR_INVALID, "cpuset \"%s\" / \"%s\" is not a cpu list", r->cpuset_cpus,
                               r->cpuset_mems);
        for (size_t i = 0; i < r->n_hugepage_limits; i++)
                if (r->hugepage_limits[i]->page_size == NULL || *r->hugepage_limits[i]->page_size == '\0')
                        return err_set(e, ERR_INVALID, "hugepage limit %zu has no page size", i);
        return 0;
}

void ctr_resources_to_rt(const Runtime__V1__LinuxContainerResources *r, struct rt_resources *out)
{
        rt_resources_clear(out);
        if (r == NULL)
                return;
        out->cpu_shares = r->cpu_shares > 0 ? (uint64_t)r->cpu_shares : 0;
        out->cpu_quota = r->cpu_quota;
        out->cpu_period = r->cpu_period > 0 ? (uint64_t)r->cpu_period : 0;
        if (r->cpuset_cpus && *r->cpuset_cpus)
                out->cpuset_cpus = xstrdup(r->cpuset_cpus);
        if (r->cpuset_mems && *r->cpuset_mems)
                out->cpuset_mems = xstrdup(r->cpuset_mems);
        out->memory_limit = r->memory_limit_in_bytes;
        out->memory_swap = r->memory_swap_limit_in_bytes;
        if (r->n_hugepage_limits) {
                out->hugepages = xcalloc(r->n_hugepage_limits, sizeof(*out->hugepages));
                for (size_t i = 0; i < r->n_hugepage_limits; i++) {
                        out->hugepages[i].page_size = xstrdup(r->hugepage_limits[i]->page_size);
                        out->hugepages[i].limit = r->hugepage_limits[i]->limit;
                }
                out->n_hugepages = r->n_hugepage_limits;
        }
        if (r->n_unified) {
                out->unified = xcalloc(r->n_unified, sizeof(*out->unified));
                for (size_t i = 0; i < r->n_unified; i++) {
                        out->unified[i].key = xstrdup(r->unified[i]->key);
                        out->unified[i].value = xstrdup(r->unified[i]->value);
                }
                out->n_unified = r->n_unified;
        }
}

/* ---------- process ---------- */

static void env_set(char ***env, const char *kv)
{
        const char *eq = strchr(kv, '=');
        size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);
        for (char **p = *env; p && *p; p++) {
                if (strncmp(*p, kv, klen) == 0 && ((*p)[klen] == '=' || (*p)[klen] == '\0')) {
                        free(*p);
                        *p = xstrdup(kv);
                        return;
                }
        }
        strv_push(env, kv);
}

static bool env_has(char *const *env, const char *key)
{
        size_t n = strlen(key);
        for (char *const *p = env; p && *p; p++)
                if (strncmp(*p, key, n) == 0 && (*p)[n] == '=')
                        return true;
        return false;
}

static int build_args(const Runtime__V1__ContainerConfig *cfg, const struct img_config *img, char ***out,
                      struct err *e)
{
        char **v = NULL;
        /* moby's rules, as containerd keeps them: CRI command replaces the
         * entrypoint; without it, CRI args replace the image Cmd. */
        if (cfg->n_command > 0) {
                for (size_t i = 0; i < cfg->n_command; i++)
                        strv_push(&v, cfg->command[i]);
                for (size_t i = 0; i < cfg->n_args; i++)
                        strv_push(&v, cfg->args[i]);
        } else {
                char **ep = img->entrypoint;
                if (!(strv_len(ep) == 1 && ep[0][0] == '\0'))
                        for (char **p = ep; p && *p; p++)
                                strv_push(&v, *p);
                if (cfg->n_args > 0)
                        for (size_t i = 0; i < cfg->n_args; i++)
                                strv_push(&v, cfg->args[i]);
                else
                        for (char **p = img->cmd; p && *p; p++)
                                strv_push(&v, *p);
        }
        if (strv_len(v) == 0 || v[0][0] == '\0') {
                strv_free(v);
                return err_set(e, ERR_INVALID,
                               "no command specified: neither the container config nor the "
                               "image has an entrypoint or command");
        }
        *out = v;
        return 0;
}

/* "KEY=value" from a CRI KeyValue. The value is bytes (cri-api v0.37):
 * anything but NUL passes through as is, non-UTF-8 included, as execve
 * takes it; a NUL would silently cut the value, so it is refused. */
static char *env_entry(const Runtime__V1__KeyValue *kv, struct err *e)
{
        const char *key = kv->key ? kv->key : "";
        const ProtobufCBinaryData *v = &kv->value;
        if (v->len && memchr(v->data, '\0', v->len)) {
                err_set(e, ERR_INVALID, "environment variable %s: the value has a NUL byte", key);
                return NULL;
        }
        size_t klen = strlen(key);
        char *out = xmalloc(klen + 1 + v->len + 1);
        memcpy(out, key, klen);
        out[klen] = '=';
        if (v->len)
                memcpy(out + klen + 1, v->data, v->len);
        out[klen + 1 + v->len] = '\0';
        return out;
}

static bool all_digits(const char *s)
{
        if (s == NULL || *s == '\0')
                return false;
        for (; *s; s++)
                if (!isdigit((unsigned char)*s))
                        return false;
        return true;
}

static int set_user(struct rt_process *p, const Runtime__V1__LinuxContainerSecurityContext *sc,
                    const struct img_config *img, struct err *e)
{
        /* As containerd and CRI-O: a group alone would leave the user to
         * the image, which is not what the pod asked for. */
        if (sc && sc->run_as_group && !sc->run_as_user && !(sc->run_as_username && *sc->run_as_username))
                return err_set(e, ERR_INVALID,
                               "run_as_group %lld is set without run_as_user or run_as_username",
                               (long long)sc->run_as_group->value);
        if (sc && sc->run_as_user) {
                if (sc->run_as_user->value < 0 || sc->run_as_user->value > UINT32_MAX)
                        return err_set(e, ERR_INVALID, "run_as_user %lld is out of range",
                                       (long long)sc->run_as_user->value);
                p->uid = (uint32_t)sc->run_as_user->value;
                /* Looked up in the image's /etc/passwd for its gid and groups. */
                p->username = xasprintf("%u", p->uid);
        } else if (sc && sc->run_as_username && *sc->run_as_username) {
                p->username = xstrdup(sc->run_as_username);
        } else if (img->user && *img->user) {
                /* "user", "uid", "user:group", "uid:gid" */
                cleanup_free char *u = xstrdup(img->user);
                char *g = strchr(u, ':');
                if (g)
                        *g++ = '\0';
                if (all_digits(u))
                        p->uid = (uint32_t)strtoul(u, NULL, 10);
                if (*u)
                        p->username = xstrdup(u);
                if (g && all_digits(g)) {
                        p->gid = (uint32_t)strtoul(g, NULL, 10);
                        p->group_set = true;
                }
        }
        if (sc && sc->run_as_group) {
                if (sc->run_as_group->value < 0 || sc->run_as_group->value > UINT32_MAX)
                        return err_set(e, ERR_INVALID, "run_as_group %lld is out of range",
                                       (long long)sc->run_as_group->value);
                p->gid = (uint32_t)sc->run_as_group->value;
                p->group_set = true;
        }
        if (sc && sc->supplemental_groups_policy == RUNTIME__V1__SUPPLEMENTAL_GROUPS_POLICY__Strict)
                p->strict_groups = true;
        else if (sc && sc->supplemental_groups_policy != RUNTIME__V1__SUPPLEMENTAL_GROUPS_POLICY__Merge)
                return err_set(e, ERR_INVALID, "unknown supplemental_groups_policy %d",
                               (int)sc->supplemental_groups_policy);
        if (sc && sc->n_supplemental_groups) {
                p->additional_gids = xcalloc(sc->n_supplemental_groups, sizeof(uint32_t));
                for (size_t i = 0; i < sc->n_supplemental_groups; i++) {
                        if (sc->supplemental_groups[i] < 0 || sc->supplemental_groups[i] > UINT32_MAX)
                                return err_set(e, ERR_INVALID, "supplemental group %lld is out of range",
                                               (long long)sc->supplemental_groups[i]);
                        p->additional_gids[i] = (uint32_t)sc->supplemental_groups[i];
                }
                p->n_additional_gids = sc->n_supplemental_groups;
        }
        return 0;
}

/* "NET_ADMIN", "cap_net_admin" -> "CAP_NET_ADMIN" */
static char *cap_name(const char *s)
{
        char *n =
                str_has_prefix(s, "CAP_") || str_has_prefix(s, "cap_") ? xstrdup(s) : xasprintf("CAP_%s", s);
        for (char *p = n; *p; p++)
                *p = (char)toupper((unsigned char)*p);
        return n;
}

static bool has_all(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (strcasecmp(v[i], "ALL") == 0)
                        return true;
        return false;
}

static void strv_remove(char **v, const char *s)
{
        size_t w = 0;
        for (size_t r = 0; v && v[r]; r++) {
                if (strcmp(v[r], s) == 0)
                        free(v[r]);
                else
                        v[w++] = v[r];
        }
        if (v)
                v[w] = NULL;
}

static bool strv_has(char *const *v, const char *s)
{
        for (; v && *v; v++)
                if (strcmp(*v, s) == 0)
                        return true;
        return false;
}

static int set_caps(struct rt_process *p, const Runtime__V1__Capability *c, struct err *e)
{
        char **set = strv_dup((char **)default_caps);
        if (c) {
                if (has_all(c->add_capabilities, c->n_add_capabilities)) {
                        strv_free(set);
                        set = rt_caps_all();
                }
                if (has_all(c->drop_capabilities, c->n_drop_capabilities)) {
                        strv_free(set);
                        set = NULL;
                }
                for (size_t i = 0; i < c->n_add_capabilities; i++) {
                        if (strcasecmp(c->add_capabilities[i], "ALL") == 0)
                                continue;
                        cleanup_free char *n = cap_name(c->add_capabilities[i]);
                        if (rt_cap_parse(n) < 0) {
                                strv_free(set);
                                return err_set(e, ERR_INVALID, "unknown capability %s",
                                               c->add_capabilities[i]);
                        }
                        if (!strv_has(set, n))
                                strv_push(&set, n);
                }
                for (size_t i = 0; i < c->n_drop_capabilities; i++) {
                        if (strcasecmp(c->drop_capabilities[i], "ALL") == 0)
                                continue;
                        cleanup_free char *n = cap_name(c->drop_capabilities[i]);
                        strv_remove(set, n);
                }
                for (size_t i = 0; i < c->n_add_ambient_capabilities; i++) {
                        cleanup_free char *n = cap_name(c->add_ambient_capabilities[i]);
                        strv_push(&p->caps.ambient, n);
                        strv_push(&p->caps.inheritable, n);
                }
        }
        if (set == NULL)
                set = xcalloc(1, sizeof(char *));
        p->caps.bounding = strv_dup(set);
        p->caps.effective = strv_dup(set);
        p->caps.permitted = set;
        return 0;
}

/* ---------- seccomp ---------- */

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static const char *legacy_profile_path(const Runtime__V1__LinuxContainerSecurityContext *sc)
{
        return sc->seccomp_profile_path;
}
#pragma GCC diagnostic pop

static int set_seccomp(struct rt_spec *s, const Runtime__V1__LinuxContainerSecurityContext *sc, struct err *e)
{
        if (sc == NULL || s->privileged)
                return 0;
        enum { NONE, DEFAULT, LOCAL } kind = NONE;
        const char *path = NULL;
        if (sc->seccomp) {
                switch (sc->seccomp->profile_type) {
                case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__RuntimeDefault:
                        kind = DEFAULT;
                        break;
                case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost:
                        kind = LOCAL;
                        path = sc->seccomp->localhost_ref;
                        break;
                default:
                        kind = NONE;
                }
        } else if (legacy_profile_path(sc) && *legacy_profile_path(sc)) {
                /* The deprecated string form older kubelets send. */
                const char *sp = legacy_profile_path(sc);
                if (strcmp(sp, "runtime/default") == 0 || strcmp(sp, "docker/default") == 0)
                        kind = DEFAULT;
                else if (str_has_prefix(sp, "localhost/")) {
                        kind = LOCAL;
                        path = sp + strlen("localhost/");
                } else if (strcmp(sp, "unconfined") != 0)
                        return err_set(e, ERR_INVALID, "unknown seccomp profile %s", sp);
        }
        if (kind == DEFAULT) {
                s->seccomp = rt_seccomp_default_profile(&s->process.caps);
        } else if (kind == LOCAL) {
                if (path == NULL || path[0] != '/')
                        return err_set(e, ERR_INVALID,
                                       "seccomp Localhost profile \"%s\" is not an absolute path",
                                       path ? path : "");
                cleanup_free char *buf = NULL;
                size_t len = 0;
                if (file_read_all(path, &buf, &len, 4u << 20, e) < 0)
                        return err_set(e, ERR_INVALID, "seccomp profile %s: %s", path, e->msg);
                s->seccomp = rt_seccomp_from_json(buf, len, e);
                if (s->seccomp == NULL)
                        return err_wrap(e, "seccomp profile %s", path);
        }
        return 0;
}

/* ---------- mounts ---------- */

static void add_mount(struct rt_spec *s, const char *dst, const char *type, const char *src, char **opts)
{
        s->mounts = xrealloc(s->mounts, (s->n_mounts + 1) * sizeof(*s->mounts));
        struct rt_mount *m = &s->mounts[s->n_mounts++];
        m->destination = xstrdup(dst);
        m->type = xstrdup(type);
        m->source = xstrdup(src);
        m->options = opts;
}

static bool cri_mounts_have(const Runtime__V1__ContainerConfig *cfg, const char *dst)
{
        for (size_t i = 0; i < cfg->n_mounts; i++)
                if (strcmp(cfg->mounts[i]->container_path, dst) == 0)
                        return true;
        return false;
}

static char **bind_opts(bool ro, const char *prop)
{
        char **o = NULL;
        strv_push(&o, "rbind");
        strv_push(&o, ro ? "ro" : "rw");
        strv_push(&o, prop ? prop : "rprivate");
        return o;
}

/* containerd's and CRI-O's check: a volume can only propagate with the
 * host when its host mount does (shared; or a slave for HOST_TO_CONTAINER). */
static int check_host_propagation(const Runtime__V1__Mount *m, bool need_shared, struct err *e)
{
        unsigned prop = 0;
        cleanup_free char *mp = NULL;
        if (rt_mount_propagation(m->host_path, &prop, &mp, e) < 0)
                return err_wrap(e, "mount %s", m->container_path);
        if ((prop & RT_PROP_SHARED) || (!need_shared && (prop & RT_PROP_SLAVE)))
                return 0;
        return err_set(e, ERR_PRECONDITION,
                       "mount %s: propagation %s needs host path %s on a %s mount, but its mount %s is %s",
                       m->container_path, need_shared ? "BIDIRECTIONAL" : "HOST_TO_CONTAINER", m->host_path,
                       need_shared ? "shared" : "shared or slave", mp ? mp : "?",
                       (prop & RT_PROP_SLAVE) ? "a slave" : "private");
}

/* KEP-3857 recursive read-only: only on a read-only, private volume (as
 * kubelet and containerd require), and where the handler applies it. */
static int check_rro(const Runtime__V1__Mount *m, const struct cri_handler_ops *h, struct err *e)
{
        if (!m->readonly)
                return err_set(e, ERR_INVALID, "mount %s: recursive_read_only needs readonly",
                               m->container_path);
        if (m->propagation != RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE)
                return err_set(e, ERR_INVALID, "mount %s: recursive_read_only needs propagation PRIVATE",
                               m->container_path);
        if (!h->rro())
                return err_set(
                        e, ERR_INVALID,
                        "mount %s: recursive read-only mounts are not supported by this runtime handler",
                        m->container_path);
        return 0;
}

static int set_mounts(struct rt_spec *s, const struct ctr_spec_in *in, struct err *e)
{
        const Runtime__V1__ContainerConfig *cfg = in->cfg;
        const Runtime__V1__LinuxContainerSecurityContext *sc =
                cfg->linux ? cfg->linux->security_context : NULL;
        bool ro = sc && sc->readonly_rootfs;
        for (size_t i = 0; i < cfg->n_mounts; i++) {
                const Runtime__V1__Mount *m = cfg->mounts[i];
                if (m->container_path == NULL || m->container_path[0] != '/')
                        return err_set(e, ERR_INVALID, "mount %zu: container path \"%s\" is not absolute", i,
                                       m->container_path ? m->container_path : "");
                if (m->host_path == NULL || m->host_path[0] != '/')
                        return err_set(e, ERR_INVALID, "mount %s: host path \"%s\" is not absolute",
                                       m->container_path, m->host_path ? m->host_path : "");
                if (m->image && m->image->image && *m->image->image)
                        return err_set(e, ERR_INVALID, "mount %s: image volumes are not supported",
                                       m->container_path);
                const struct cri_handler_ops *h = cri_handler_of_pod(in->podx);
                if (m->recursive_read_only && check_rro(m, h, e) < 0)
                        return -1;
                if (h->check_mount && h->check_mount(m, e) < 0)
                        return -1;
                const char *prop = "rprivate";
                if (m->propagation == RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL ||
                    m->propagation == RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER) {
                        bool bidi =
                                m->propagation == RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL;
                        if (check_host_propagation(m, bidi, e) < 0)
                                return -1;
                }
                if (m->propagation == RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL) {
                        prop = "rshared";
                        free(s->rootfs_propagation);
                        s->rootfs_propagation = xstrdup("rshared");
                } else if (m->propagation == RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER) {
                        prop = "rslave";
                        if (s->rootfs_propagation == NULL || strcmp(s->rootfs_propagation, "rshared") != 0) {
                                free(s->rootfs_propagation);
                                s->rootfs_propagation = xstrdup("rslave");
                        }
                }
                /* selinux_relabel is ignored: no SELinux here. */
                char **opts = bind_opts(m->readonly, prop);
                if (m->recursive_read_only)
                        strv_push(&opts, "rro");
                add_mount(s, m->container_path, "bind", m->host_path, opts);
        }
        const struct cri_pod_extra *x = in->podx;
        if (x->pod_dir && *x->pod_dir) {
                static const char *const files[][2] = {{"hosts", "/etc/hosts"},
                                                       {"resolv.conf", "/etc/resolv.conf"},
                                                       {"hostname", "/etc/hostname"}};
                for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
                        if (i == 2 && x->host_net)
                                continue;
                        if (cri_mounts_have(cfg, files[i][1]))
                                continue;
                        cleanup_free char *src = path_join(x->pod_dir, files[i][0]);
                        if (access(src, F_OK) != 0)
                                continue;
                        add_mount(s, files[i][1], "bind", src, bind_opts(ro, NULL));
                }
                /* A pod-level /dev/shm when the pod keeps one. */
                cleanup_free char *shm = path_join(x->pod_dir, "shm");
                struct stat st;
                if (!x->host_ipc && !cri_mounts_have(cfg, "/dev/shm") && stat(shm, &st) == 0 &&
                    S_ISDIR(st.st_mode))
                        add_mount(s, "/dev/shm", "bind", shm, bind_opts(false, NULL));
        }
        return 0;
}

static int set_devices(struct rt_spec *s, const Runtime__V1__ContainerConfig *cfg, struct err *e)
{
        for (size_t i = 0; i < cfg->n_devices; i++) {
                const Runtime__V1__Device *dv = cfg->devices[i];
                struct stat st;
                if (dv->host_path == NULL || stat(dv->host_path, &st) < 0)
                        return err_make(e, errno, "device %s", dv->host_path ? dv->host_path : "");
                if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
                        return err_set(e, ERR_INVALID, "device %s is not a character or block device",
                                       dv->host_path);
                const char *cp =
                        dv->container_path && *dv->container_path ? dv->container_path : dv->host_path;
                if (cp[0] != '/')
                        return err_set(e, ERR_INVALID, "device container path %s is not absolute", cp);
                s->devices = xrealloc(s->devices, (s->n_devices + 1) * sizeof(*s->devices));
                struct rt_device *d = &s->devices[s->n_devices++];
                memset(d, 0, sizeof(*d));
                d->path = xstrdup(cp);
                d->type = S_ISCHR(st.st_mode) ? 'c' : 'b';
                d->major = major(st.st_rdev);
                d->minor = minor(st.st_rdev);
                d->mode = st.st_mode & 0777;
                d->uid = st.st_uid;
                d->gid = st.st_gid;
                d->permissions = xstrdup(dv->permissions && *dv->permissions ? dv->permissions : "rwm");
        }
        return 0;
}

/* ---------- namespaces ---------- */

static void ns_join(struct rt_spec *s, enum rt_ns_type t, const char *path)
{
        s->namespaces[t].mode = RT_NS_JOIN;
        s->namespaces[t].path = xstrdup(path);
}

static int set_namespaces(struct rt_spec *s, const struct ctr_spec_in *in, struct err *e)
{
        const struct cri_pod_extra *x = in->podx;
        const Runtime__V1__LinuxContainerSecurityContext *sc =
                in->cfg->linux ? in->cfg->linux->security_context : NULL;
        const Runtime__V1__NamespaceOption *no = sc ? sc->namespace_options : NULL;
        s->namespaces[RT_NS_MNT].mode = RT_NS_NEW;
        s->namespaces[RT_NS_USER].mode = RT_NS_HOST;
        if (x->userns && x->ns_dir) {
                /* The pod's user namespace; the mappings are its own (idmapped mounts, tmpfs owners). */
                cleanup_free char *user = path_join(x->ns_dir, "user");
                ns_join(s, RT_NS_USER, user);
                s->uid_mappings = xmalloc(sizeof(*s->uid_mappings));
                s->gid_mappings = xmalloc(sizeof(*s->gid_mappings));
                *s->uid_mappings = (struct rt_id_map){x->userns_uid[0], x->userns_uid[1], x->userns_uid[2]};
                *s->gid_mappings = (struct rt_id_map){x->userns_gid[0], x->userns_gid[1], x->userns_gid[2]};
                s->n_uid_mappings = s->n_gid_mappings = 1;
        }
        s->namespaces[RT_NS_CGROUP].mode = rt_cgroup_mode() == RT_CGROUP_V2_UNIFIED ? RT_NS_NEW : RT_NS_HOST;
        const struct cri_handler_ops *h = cri_handler_of_pod(x);
        if (h->spec_namespaces)
                return h->spec_namespaces(s, no, x, e);
        cleanup_free char *net = x->ns_dir ? path_join(x->ns_dir, "net") : NULL;
        cleanup_free char *ipc = x->ns_dir ? path_join(x->ns_dir, "ipc") : NULL;
        cleanup_free char *uts = x->ns_dir ? path_join(x->ns_dir, "uts") : NULL;
        if (x->host_net || net == NULL || access(net, F_OK) != 0)
                s->namespaces[RT_NS_NET].mode = x->host_net ? RT_NS_HOST : RT_NS_NEW;
        else
                ns_join(s, RT_NS_NET, net);
        if (x->host_ipc || (no && no->ipc == RUNTIME__V1__NAMESPACE_MODE__NODE))
                s->namespaces[RT_NS_IPC].mode = RT_NS_HOST;
        else if (ipc && access(ipc, F_OK) == 0)
                ns_join(s, RT_NS_IPC, ipc);
        else
                s->namespaces[RT_NS_IPC].mode = RT_NS_NEW;
        if (x->host_net)
                s->namespaces[RT_NS_UTS].mode = RT_NS_HOST;
        else if (uts && access(uts, F_OK) == 0)
                ns_join(s, RT_NS_UTS, uts);
        else
                s->namespaces[RT_NS_UTS].mode = RT_NS_NEW;

        Runtime__V1__NamespaceMode pid = no ? no->pid : RUNTIME__V1__NAMESPACE_MODE__POD;
        if (x->host_pid || pid == RUNTIME__V1__NAMESPACE_MODE__NODE) {
                s->namespaces[RT_NS_PID].mode = RT_NS_HOST;
        } else if (pid == RUNTIME__V1__NAMESPACE_MODE__TARGET) {
                if (no->target_id == NULL || *no->target_id == '\0')
                        return err_set(e, ERR_INVALID, "pid namespace TARGET without a target_id");
                struct store_container t = {0};
                if (ctr_resolve(in->d, no->target_id, &t, e) < 0)
                        return err_wrap(e, "pid namespace target");
                bool ok = t.state == STORE_CTR_RUNNING && t.pid > 0 && strcmp(t.pod_id, in->pod->id) == 0;
                int tpid = t.pid;
                store_ctr_clear(&t);
                if (!ok)
                        return err_set(e, ERR_PRECONDITION,
                                       "pid namespace target %s is not a running container of pod %s",
                                       no->target_id, in->pod->id);
                cleanup_free char *p = xasprintf("/proc/%d/ns/pid", tpid);
                ns_join(s, RT_NS_PID, p);
        } else if (pid == RUNTIME__V1__NAMESPACE_MODE__POD && x->shared_pid && x->pod_init_pid > 0) {
                cleanup_free char *p = xasprintf("/proc/%d/ns/pid", x->pod_init_pid);
                ns_join(s, RT_NS_PID, p);
        } else {
                s->namespaces[RT_NS_PID].mode = RT_NS_NEW;
        }
        return 0;
}

/* ---------- working directory ---------- */

/* What `rel` (a path inside the rootfs, no leading '/') is in one layer
 * directory: 1 a directory, 0 absent, -1 anything else (a file, a symlink,
 * a whiteout) on the way. */
static int layer_has_dir(const char *layer, const char *rel)
{
        cleanup_free char *copy = xstrdup(rel);
        struct sbuf b = {0};
        sbuf_puts(&b, layer);
        int r = 1;
        for (char *save = NULL, *tok = strtok_r(copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
                if (strcmp(tok, "..") == 0) {
                        r = -1;
                        break;
                }
                if (strcmp(tok, ".") == 0)
                        continue;
                sbuf_printf(&b, "/%s", tok);
                struct stat st;
                if (lstat(b.buf, &st) < 0) {
                        r = errno == ENOENT ? 0 : -1;
                        break;
                }
                if (!S_ISDIR(st.st_mode)) {
                        r = -1;
                        break;
                }
        }
        sbuf_free(&b);
        return r;
}

int ctr_ensure_cwd(const struct rt_spec *s, struct err *e)
{
        const char *cwd = s->process.cwd;
        if (cwd == NULL || strcmp(cwd, "/") == 0)
                return 0;
        const char *rel = cwd + 1;
        const char *top = s->root.lowerdirs ? s->root.upperdir : s->root.path;
        if (top == NULL)
                return 0; /* a read-only rootfs: nothing to create in */
        int r = layer_has_dir(top, rel);
        for (char **l = s->root.lowerdirs; r == 0 && l && *l; l++)
                r = layer_has_dir(*l, rel);
        if (r != 0)
                return 0; /* there, or something odd on the way: runtime/ reports it */
        /* Missing everywhere: create it in the writable layer, as runc does. */
        cleanup_free char *p = path_join(top, rel);
        return mkdir_p(p, 0755, e) < 0 ? err_wrap(e, "create working directory %s", cwd) : 0;
}

/* ---------- the whole spec ---------- */

int ctr_spec_build(const struct ctr_spec_in *in, struct rt_spec **out, struct err *e)
{
        const Runtime__V1__ContainerConfig *cfg = in->cfg;
        const struct img_config *img = in->img;
        const Runtime__V1__LinuxContainerSecurityContext *sc =
                cfg->linux ? cfg->linux->security_context : NULL;
        cleanup_free char *host = NULL, *hostenv = NULL;
        struct rt_spec *s = rt_spec_new();
        s->id = xstrdup(in->id);

        /* rootfs: the overlay is mounted inside the container's own mount
         * namespace, so nothing is left mounted on the host when it dies. */
        s->root.path = path_join(in->bundle, "rootfs");
        const struct snap_mount *m = in->rootfs;
        if (m->lowerdirs) {
                s->root.lowerdirs = strv_dup(m->lowerdirs);
                s->root.upperdir = xstrdup(m->upperdir);
                s->root.workdir = xstrdup(m->workdir);
        } else {
                free(s->root.path);
                s->root.path = xstrdup(m->source);
        }
        s->readonly_rootfs = sc && sc->readonly_rootfs;
        s->privileged = sc && sc->privileged;
        if (s->privileged) {
                bool pod_priv = in->pod_cfg && in->pod_cfg->linux && in->pod_cfg->linux->security_context &&
                                in->pod_cfg->linux->security_context->privileged;
                if (!pod_priv) {
                        rt_spec_free(s);
                        return err_set(e, ERR_INVALID,
                                       "privileged container %s in a pod that is not privileged",
                                       cfg->metadata->name);
                }
        }

        struct rt_process *p = &s->process;
        if (build_args(cfg, img, &p->args, e) < 0)
                goto fail;
        /* env: HOSTNAME, the image's, then the CRI's (later wins). */
        host = cri_pod_hostname(in->pod_cfg, in->podx->host_net);
        hostenv = xasprintf("HOSTNAME=%s", host);
        strv_push(&p->env, hostenv);
        for (char **v = img->env; v && *v; v++)
                env_set(&p->env, *v);
        for (size_t i = 0; i < cfg->n_envs; i++) {
                cleanup_free char *kv = env_entry(cfg->envs[i], e);
                if (kv == NULL)
                        goto fail;
                env_set(&p->env, kv);
        }
        if (!env_has(p->env, "PATH"))
                strv_push(&p->env, DEFAULT_PATH);
        p->cwd = xstrdup(cfg->working_dir && *cfg->working_dir ? cfg->working_dir
                         : img->workdir && *img->workdir       ? img->workdir
                                                               : "/");
        if (p->cwd[0] != '/') {
                err_set(e, ERR_INVALID, "working directory %s is not absolute", p->cwd);
                goto fail;
        }
        p->tty = cfg->tty;
        if (set_user(p, sc, img, e) < 0)
                goto fail;
        p->no_new_privs = sc && sc->no_new_privs;
        if (s->privileged) {
                p->caps.bounding = rt_caps_all();
                p->caps.effective = rt_caps_all();
                p->caps.permitted = rt_caps_all();
        } else if (set_caps(p, sc ? sc->capabilities : NULL, e) < 0) {
                goto fail;
        }
        const Runtime__V1__LinuxContainerResources *res = cfg->linux ? cfg->linux->resources : NULL;
        if (res && res->oom_score_adj != 0) {
                p->has_oom_score_adj = true;
                p->oom_score_adj = (int)res->oom_score_adj;
        }
        if (set_seccomp(s, sc, e) < 0)
                goto fail;

        if (!s->privileged) {
                if (sc && sc->n_masked_paths)
                        for (size_t i = 0; i < sc->n_masked_paths; i++)
                                strv_push(&s->masked_paths, sc->masked_paths[i]);
                else
                        s->masked_paths = strv_dup((char **)default_masked);
                if (sc && sc->n_readonly_paths)
                        for (size_t i = 0; i < sc->n_readonly_paths; i++)
                                strv_push(&s->readonly_paths, sc->readonly_paths[i]);
                else
                        s->readonly_paths = strv_dup((char **)default_readonly);
        }
        if (set_mounts(s, in, e) < 0 || set_devices(s, cfg, e) < 0 || set_namespaces(s, in, e) < 0)
                goto fail;
        if (ctr_resources_validate(res, e) < 0)
                goto fail;
        ctr_resources_to_rt(res, &s->resources);
        s->cgroup_path = ctr_cgroup_path(in->d, in->podx->cgroup, in->id);
        if (rt_spec_validate(s, e) < 0) {
                e->kind = ERR_INVALID;
                goto fail;
        }
        *out = s;
        return 0;
fail:
        rt_spec_free(s);
        return -1;
}
