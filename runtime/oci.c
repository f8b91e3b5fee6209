/* The spec as an OCI runtime-spec config.json, for an OCI runtime binary
 * (runc, crun) that corral-shim drives instead of runtime/'s own create.
 * The same rt_spec, so a container looks the same under either: the
 * standard mounts runtime/ makes itself are listed explicitly, the user
 * name is resolved against the mounted rootfs, and what the runtime could
 * not do without CAP_SYS_RESOURCE or outside our bounding set (lower
 * oom_score_adj, capabilities we lack) is clamped as runtime/ clamps it. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "runtime/runtime-internal.h"

static void put_key(struct sbuf *b, bool *first, const char *k)
{
        if (!*first)
                sbuf_putc(b, ',');
        *first = false;
        json_quote(b, k);
        sbuf_putc(b, ':');
}

static void put_strv(struct sbuf *b, char *const *v)
{
        sbuf_putc(b, '[');
        for (size_t i = 0; v && v[i]; i++) {
                if (i)
                        sbuf_putc(b, ',');
                json_quote(b, v[i]);
        }
        sbuf_putc(b, ']');
}

/* ----- process ----- */

static bool in_bounding(int cap)
{
        return prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1;
}

/* OCI wants "CAP_NET_RAW"; ours may be "net_raw", "cap_net_raw" or a number.
 * What we do not hold ourselves is left out, as runtime/ leaves it out. */
static void put_caps(struct sbuf *b, char *const *set, bool all)
{
        cleanup_strv char **names = all ? rt_caps_all() : NULL;
        char *const *src = all ? names : set;
        sbuf_putc(b, '[');
        bool first = true;
        uint64_t seen = 0;
        for (size_t i = 0; src && src[i]; i++) {
                int cap = caps_parse(src[i]);
                if (cap < 0 || cap >= 64 || (seen & (1ULL << cap)) || !in_bounding(cap))
                        continue;
                seen |= 1ULL << cap;
                char *n = cap_to_name((cap_value_t)cap);
                if (n == NULL)
                        continue;
                char buf[64];
                snprintf(buf, sizeof(buf), "%s", n);
                cap_free(n);
                for (char *p = buf; *p; p++)
                        *p = (char)toupper((unsigned char)*p);
                if (strncmp(buf, "CAP_", 4) != 0)
                        continue; /* a number libcap has no name for */
                if (!first)
                        sbuf_putc(b, ',');
                first = false;
                json_quote(b, buf);
        }
        sbuf_putc(b, ']');
}

static void add_gid(uint32_t *v, size_t *n, uint32_t g)
{
        for (size_t i = 0; i < *n; i++)
                if (v[i] == g)
                        return;
        v[(*n)++] = g;
}

static int put_process(struct sbuf *b, const struct rt_spec *s, const struct rt_process *p,
                       const char *rootfs, struct err *e)
{
        uint32_t uid = p->uid, gid = p->gid;
        cleanup_free uint32_t *extra = NULL;
        size_t n_extra = 0;
        if (p->username && p->username[0]) {
                uint32_t ugid;
                if (rt_resolve_user(rootfs, p->username, &uid, &ugid, p->strict_groups ? NULL : &extra,
                                    &n_extra, e) < 0)
                        return -1;
                if (!p->group_set)
                        gid = ugid;
        }
        /* The gid first (containerd and CRI-O list it among the groups too),
         * then the CRI's, then the image's; each once. */
        cleanup_free uint32_t *groups = xcalloc(1 + p->n_additional_gids + n_extra, sizeof(uint32_t));
        size_t ng = 0;
        add_gid(groups, &ng, gid);
        for (size_t i = 0; i < p->n_additional_gids; i++)
                add_gid(groups, &ng, p->additional_gids[i]);
        for (size_t i = 0; i < n_extra; i++)
                add_gid(groups, &ng, extra[i]);

        sbuf_printf(b, "{\"terminal\":%s,\"user\":{\"uid\":%u,\"gid\":%u,\"additionalGids\":[",
                    p->tty ? "true" : "false", uid, gid);
        for (size_t i = 0; i < ng; i++)
                sbuf_printf(b, "%s%u", i ? "," : "", groups[i]);
        sbuf_puts(b, "]},\"args\":");
        put_strv(b, p->args);
        sbuf_puts(b, ",\"env\":");
        put_strv(b, p->env);
        sbuf_puts(b, ",\"cwd\":");
        json_quote(b, p->cwd && p->cwd[0] ? p->cwd : "/");
        const struct {
                const char *key;
                char *const *set;
        } sets[] = {
                {"bounding", p->caps.bounding},   {"effective", p->caps.effective},
                {"permitted", p->caps.permitted}, {"inheritable", p->caps.inheritable},
                {"ambient", p->caps.ambient},
        };
        sbuf_puts(b, ",\"capabilities\":{");
        for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
                sbuf_printf(b, "%s\"%s\":", i ? "," : "", sets[i].key);
                put_caps(b, sets[i].set, s->privileged);
        }
        sbuf_puts(b, "},\"rlimits\":[");
        for (size_t i = 0; i < p->n_rlimits; i++) {
                const char *name = rlimit_name(p->rlimits[i].resource);
                if (name == NULL)
                        continue;
                /* Raising a hard limit needs CAP_SYS_RESOURCE: keep ours. */
                struct rlimit cur;
                uint64_t hard = p->rlimits[i].hard, soft = p->rlimits[i].soft;
                if (getrlimit(p->rlimits[i].resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
                    hard > cur.rlim_max && !rt_host_features()->cap_sys_resource) {
                        hard = cur.rlim_max;
                        if (soft > hard)
                                soft = hard;
                }
                sbuf_printf(b, "%s{\"type\":\"%s\",\"hard\":%llu,\"soft\":%llu}", i ? "," : "", name,
                            (unsigned long long)hard, (unsigned long long)soft);
        }
        sbuf_printf(b, "],\"noNewPrivileges\":%s", p->no_new_privs ? "true" : "false");
        if (p->has_oom_score_adj) {
                int adj = p->oom_score_adj;
                int cur = 0;
                FILE *f = fopen("/proc/self/oom_score_adj", "re");
                if (f) {
                        if (fscanf(f, "%d", &cur) == 1 && adj < cur && !rt_host_features()->cap_sys_resource)
                                adj = cur; /* lowering needs CAP_SYS_RESOURCE */
                        fclose(f);
                }
                sbuf_printf(b, ",\"oomScoreAdj\":%d", adj);
        }
        sbuf_putc(b, '}');
        return 0;
}

/* ----- mounts ----- */

static bool has_word(char *const *v, const char *w)
{
        for (size_t i = 0; v && v[i]; i++)
                if (strcmp(v[i], w) == 0)
                        return true;
        return false;
}

static void put_mount(struct sbuf *b, bool *first, const struct rt_mount *m)
{
        bool bind =
                strcmp(m->type, "bind") == 0 || has_word(m->options, "bind") || has_word(m->options, "rbind");
        if (!*first)
                sbuf_putc(b, ',');
        *first = false;
        sbuf_puts(b, "{\"destination\":");
        json_quote(b, m->destination);
        sbuf_puts(b, ",\"type\":");
        json_quote(b, bind ? "bind" : m->type);
        sbuf_puts(b, ",\"source\":");
        json_quote(b, m->source ? m->source : m->type);
        sbuf_puts(b, ",\"options\":[");
        bool f = true;
        if (bind && !has_word(m->options, "bind") && !has_word(m->options, "rbind")) {
                sbuf_puts(b, "\"rbind\"");
                f = false;
        }
        for (size_t i = 0; m->options && m->options[i]; i++) {
                if (!f)
                        sbuf_putc(b, ',');
                f = false;
                json_quote(b, m->options[i]);
        }
        sbuf_puts(b, "]}");
}

static bool spec_has(const struct rt_spec *s, const char *dest)
{
        for (size_t i = 0; i < s->n_mounts; i++)
                if (strcmp(s->mounts[i].destination, dest) == 0)
                        return true;
        return false;
}

/* runtime/'s standard set (mounts.c build_root), then the spec's; one of
 * the spec's with a standard destination replaces the standard one. */
static void put_mounts(struct sbuf *b, const struct rt_spec *s)
{
        char *sys_opts[] = {"nosuid", "noexec", "nodev", s->privileged ? "rw" : "ro", NULL};
        char *proc_opts[] = {"nosuid", "noexec", "nodev", NULL};
        char *dev_opts[] = {"nosuid", "strictatime", "mode=755", "size=65536k", NULL};
        char *devhost_opts[] = {"rbind", "rw", NULL};
        char *pts_opts[] = {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5", NULL};
        char *shm_opts[] = {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL};
        char *mq_opts[] = {"nosuid", "noexec", "nodev", NULL};
        char *cg_opts[] = {"nosuid", "noexec", "nodev", "relatime", s->privileged ? "rw" : "ro", NULL};
        const struct rt_mount std[] = {
                {"/proc", "proc", "proc", proc_opts},
                s->privileged ? (struct rt_mount){"/dev", "bind", "/dev", devhost_opts}
                              : (struct rt_mount){"/dev", "tmpfs", "tmpfs", dev_opts},
                {"/dev/pts", "devpts", "devpts", pts_opts},
                {"/dev/shm", "tmpfs", "shm", shm_opts},
                {"/dev/mqueue", "mqueue", "mqueue", mq_opts},
                {"/sys", "sysfs", "sysfs", sys_opts},
                {"/sys/fs/cgroup", "cgroup", "cgroup", cg_opts},
        };
        sbuf_putc(b, '[');
        bool first = true;
        for (size_t i = 0; i < ARRAY_SIZE(std); i++) {
                if (spec_has(s, std[i].destination)) {
                        for (size_t k = 0; k < s->n_mounts; k++)
                                if (strcmp(s->mounts[k].destination, std[i].destination) == 0)
                                        put_mount(b, &first, &s->mounts[k]);
                } else {
                        put_mount(b, &first, &std[i]);
                }
        }
        for (size_t k = 0; k < s->n_mounts; k++) {
                bool is_std = false;
                for (size_t i = 0; i < ARRAY_SIZE(std); i++)
                        is_std |= strcmp(s->mounts[k].destination, std[i].destination) == 0;
                if (!is_std)
                        put_mount(b, &first, &s->mounts[k]);
        }
        sbuf_putc(b, ']');
}

/* ----- linux ----- */

static const char *const ns_names[RT_NS_COUNT] = {
        [RT_NS_MNT] = "mount", [RT_NS_PID] = "pid",   [RT_NS_NET] = "network",   [RT_NS_IPC] = "ipc",
        [RT_NS_UTS] = "uts",   [RT_NS_USER] = "user", [RT_NS_CGROUP] = "cgroup",
};

static void put_namespaces(struct sbuf *b, const struct rt_spec *s)
{
        sbuf_puts(b, "\"namespaces\":[{\"type\":\"mount\"}");
        for (int t = 0; t < RT_NS_COUNT; t++) {
                const struct rt_namespace *n = &s->namespaces[t];
                if (t == RT_NS_MNT || n->mode == RT_NS_HOST)
                        continue;
                sbuf_printf(b, ",{\"type\":\"%s\"", ns_names[t]);
                if (n->mode == RT_NS_JOIN && n->path) {
                        sbuf_puts(b, ",\"path\":");
                        json_quote(b, n->path);
                }
                sbuf_putc(b, '}');
        }
        sbuf_putc(b, ']');
}

static void put_idmaps(struct sbuf *b, const char *key, const struct rt_id_map *m, size_t n)
{
        sbuf_printf(b, ",\"%s\":[", key);
        for (size_t i = 0; i < n; i++)
                sbuf_printf(b, "%s{\"containerID\":%u,\"hostID\":%u,\"size\":%u}", i ? "," : "",
                            m[i].container_id, m[i].host_id, m[i].size);
        sbuf_putc(b, ']');
}

static void put_resources(struct sbuf *b, const struct rt_spec *s)
{
        const struct rt_resources *r = &s->resources;
        sbuf_puts(b, ",\"resources\":{\"devices\":[");
        if (s->privileged) {
                sbuf_puts(b, "{\"allow\":true,\"access\":\"rwm\"}");
        } else {
                /* Deny all, then what every container has (runtime/'s own /dev), then the spec's. */
                sbuf_puts(b, "{\"allow\":false,\"access\":\"rwm\"},"
                             "{\"allow\":true,\"type\":\"c\",\"access\":\"m\"},"
                             "{\"allow\":true,\"type\":\"b\",\"access\":\"m\"}");
                static const int std[][2] = {{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}};
                for (size_t i = 0; i < ARRAY_SIZE(std); i++)
                        sbuf_printf(b,
                                    ",{\"allow\":true,\"type\":\"c\",\"major\":%d,\"minor\":%d,\"access\":"
                                    "\"rwm\"}",
                                    std[i][0], std[i][1]);
                sbuf_puts(b, ",{\"allow\":true,\"type\":\"c\",\"major\":136,\"access\":\"rwm\"}");
                for (size_t i = 0; i < s->n_devices; i++) {
                        const struct rt_device *d = &s->devices[i];
                        sbuf_printf(
                                b,
                                ",{\"allow\":true,\"type\":\"%c\",\"major\":%lld,\"minor\":%lld,\"access\":",
                                d->type == 'p' ? 'c' : d->type, (long long)d->major, (long long)d->minor);
                        json_quote(b, d->permissions && *d->permissions ? d->permissions : "rwm");
                        sbuf_putc(b, '}');
                }
        }
        sbuf_putc(b, ']');
        if (r->memory_limit || r->memory_swap) {
                sbuf_puts(b, ",\"memory\":{");
                const char *sep = "";
                if (r->memory_limit) {
                        sbuf_printf(b, "\"limit\":%lld",
                                    (long long)(r->memory_limit < 0 ? -1 : r->memory_limit));
                        sep = ",";
                }
                if (r->memory_swap)
                        sbuf_printf(b, "%s\"swap\":%lld", sep,
                                    (long long)(r->memory_swap < 0 ? -1 : r->memory_swap));
                sbuf_putc(b, '}');
        }
        sbuf_puts(b, ",\"cpu\":{");
        const char *sep = "";
        if (r->cpu_shares) {
                sbuf_printf(b, "\"shares\":%llu", (unsigned long long)r->cpu_shares);
                sep = ",";
        }
        if (r->cpu_quota) {
                sbuf_printf(b, "%s\"quota\":%lld", sep, (long long)(r->cpu_quota < 0 ? -1 : r->cpu_quota));
                sep = ",";
        }
        if (r->cpu_period) {
                sbuf_printf(b, "%s\"period\":%llu", sep, (unsigned long long)r->cpu_period);
                sep = ",";
        }
        if (r->cpuset_cpus && *r->cpuset_cpus) {
                sbuf_printf(b, "%s\"cpus\":", sep);
                json_quote(b, r->cpuset_cpus);
                sep = ",";
        }
        if (r->cpuset_mems && *r->cpuset_mems) {
                sbuf_printf(b, "%s\"mems\":", sep);
                json_quote(b, r->cpuset_mems);
        }
        sbuf_putc(b, '}');
        if (r->pids_limit)
                sbuf_printf(b, ",\"pids\":{\"limit\":%lld}",
                            (long long)(r->pids_limit < 0 ? -1 : r->pids_limit));
        if (r->n_hugepages) {
                sbuf_puts(b, ",\"hugepageLimits\":[");
                for (size_t i = 0; i < r->n_hugepages; i++) {
                        sbuf_printf(b, "%s{\"pageSize\":", i ? "," : "");
                        json_quote(b, r->hugepages[i].page_size);
                        sbuf_printf(b, ",\"limit\":%llu}", (unsigned long long)r->hugepages[i].limit);
                }
                sbuf_putc(b, ']');
        }
        if (r->n_unified) {
                sbuf_puts(b, ",\"unified\":{");
                for (size_t i = 0; i < r->n_unified; i++) {
                        if (i)
                                sbuf_putc(b, ',');
                        json_quote(b, r->unified[i].key);
                        sbuf_putc(b, ':');
                        json_quote(b, r->unified[i].value);
                }
                sbuf_putc(b, '}');
        }
        sbuf_putc(b, '}');
}

static void put_linux(struct sbuf *b, const struct rt_spec *s)
{
        sbuf_putc(b, '{');
        put_namespaces(b, s);
        if (s->namespaces[RT_NS_USER].mode != RT_NS_HOST) {
                put_idmaps(b, "uidMappings", s->uid_mappings, s->n_uid_mappings);
                put_idmaps(b, "gidMappings", s->gid_mappings, s->n_gid_mappings);
        }
        sbuf_puts(b, ",\"devices\":[");
        for (size_t i = 0; !s->privileged && i < s->n_devices; i++) {
                const struct rt_device *d = &s->devices[i];
                sbuf_printf(b, "%s{\"path\":", i ? "," : "");
                json_quote(b, d->path);
                sbuf_printf(b,
                            ",\"type\":\"%c\",\"major\":%lld,\"minor\":%lld,\"fileMode\":%u,\"uid\":%u,"
                            "\"gid\":%u}",
                            d->type, (long long)d->major, (long long)d->minor, d->mode ? d->mode : 0666,
                            d->uid, d->gid);
        }
        sbuf_putc(b, ']');
        put_resources(b, s);
        if (s->cgroup_path) {
                sbuf_puts(b, ",\"cgroupsPath\":");
                json_quote(b, s->cgroup_path);
        }
        sbuf_puts(b, ",\"sysctl\":{");
        for (size_t i = 0; i < s->n_sysctls; i++) {
                if (i)
                        sbuf_putc(b, ',');
                json_quote(b, s->sysctls[i].key);
                sbuf_putc(b, ':');
                json_quote(b, s->sysctls[i].value);
        }
        sbuf_putc(b, '}');
        if (!s->privileged) {
                sbuf_puts(b, ",\"maskedPaths\":");
                put_strv(b, s->masked_paths);
                sbuf_puts(b, ",\"readonlyPaths\":");
                put_strv(b, s->readonly_paths);
                if (s->seccomp) {
                        sbuf_puts(b, ",\"seccomp\":");
                        seccomp_to_oci_json(b, s->seccomp);
                }
        }
        if (s->rootfs_propagation && *s->rootfs_propagation) {
                sbuf_puts(b, ",\"rootfsPropagation\":");
                json_quote(b, s->rootfs_propagation);
        }
        sbuf_putc(b, '}');
}

char *rt_spec_to_oci(const struct rt_spec *s, const char *rootfs, struct err *e)
{
        struct sbuf b = {0};
        bool first = true;
        sbuf_putc(&b, '{');
        put_key(&b, &first, "ociVersion");
        json_quote(&b, "1.0.2");
        put_key(&b, &first, "process");
        if (put_process(&b, s, &s->process, rootfs, e) < 0) {
                sbuf_free(&b);
                return NULL;
        }
        put_key(&b, &first, "root");
        sbuf_puts(&b, "{\"path\":");
        json_quote(&b, rootfs);
        sbuf_printf(&b, ",\"readonly\":%s}", s->readonly_rootfs ? "true" : "false");
        if (s->hostname && *s->hostname && s->namespaces[RT_NS_UTS].mode != RT_NS_HOST) {
                put_key(&b, &first, "hostname");
                json_quote(&b, s->hostname);
        }
        put_key(&b, &first, "mounts");
        put_mounts(&b, s);
        put_key(&b, &first, "linux");
        put_linux(&b, s);
        sbuf_puts(&b, "}\n");
        return sbuf_steal(&b);
}

char *rt_spec_to_oci_process(const struct rt_spec *s, const char *rootfs, char *const *args, char *const *env,
                             struct err *e)
{
        /* The container's process with other arguments: its user, caps and
         * cwd; its environment with `env` over it (a key given again wins). */
        struct rt_process p = s->process;
        p.args = (char **)args;
        p.tty = false;
        p.has_oom_score_adj = false;
        cleanup_strv char **merged = NULL;
        for (size_t i = 0; s->process.env && s->process.env[i]; i++) {
                const char *eq = strchr(s->process.env[i], '=');
                size_t kl = eq ? (size_t)(eq - s->process.env[i]) : strlen(s->process.env[i]);
                bool over = false;
                for (size_t k = 0; env && env[k] && !over; k++)
                        over = strncmp(env[k], s->process.env[i], kl) == 0 && env[k][kl] == '=';
                if (!over)
                        strv_push(&merged, s->process.env[i]);
        }
        for (size_t k = 0; env && env[k]; k++)
                strv_push(&merged, env[k]);
        p.env = merged;
        struct sbuf b = {0};
        if (put_process(&b, s, &p, rootfs, e) < 0) {
                sbuf_free(&b);
                return NULL;
        }
        sbuf_putc(&b, '\n');
        return sbuf_steal(&b);
}

int rt_rootfs_mount(const struct rt_spec *s, struct err *e)
{
        const struct rt_rootfs *r = &s->root;
        if (mkdir_p(r->path, 0755, e) < 0)
                return -1;
        if (!r->lowerdirs)
                return 0; /* already complete */
        if (mount_overlay(r->lowerdirs, r->upperdir, r->workdir, r->upperdir == NULL, r->path, e) < 0)
                return err_wrap(e, "rootfs");
        return 0;
}
