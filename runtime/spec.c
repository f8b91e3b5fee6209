/* The container spec: lifetime and validation. */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "runtime/runtime-internal.h"

struct rt_spec *rt_spec_new(void)
{
        return xzalloc(sizeof(struct rt_spec));
}

static void caps_clear(struct rt_caps *c)
{
        strv_free(c->bounding);
        strv_free(c->effective);
        strv_free(c->permitted);
        strv_free(c->inheritable);
        strv_free(c->ambient);
        memset(c, 0, sizeof(*c));
}

void rt_process_clear(struct rt_process *p)
{
        if (p == NULL)
                return;
        strv_free(p->args);
        strv_free(p->env);
        free(p->cwd);
        free(p->additional_gids);
        free(p->username);
        caps_clear(&p->caps);
        free(p->rlimits);
        free(p->apparmor_profile);
        memset(p, 0, sizeof(*p));
}

static void kv_free(struct rt_kv *kv, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(kv[i].key);
                free(kv[i].value);
        }
        free(kv);
}

void rt_resources_clear(struct rt_resources *r)
{
        if (r == NULL)
                return;
        free(r->cpuset_cpus);
        free(r->cpuset_mems);
        for (size_t i = 0; i < r->n_hugepages; i++)
                free(r->hugepages[i].page_size);
        free(r->hugepages);
        kv_free(r->unified, r->n_unified);
        memset(r, 0, sizeof(*r));
}

void rt_spec_free(struct rt_spec *s)
{
        if (s == NULL)
                return;
        free(s->id);
        free(s->root.path);
        strv_free(s->root.lowerdirs);
        free(s->root.upperdir);
        free(s->root.workdir);
        free(s->rootfs_propagation);
        for (size_t i = 0; i < s->n_mounts; i++) {
                free(s->mounts[i].destination);
                free(s->mounts[i].type);
                free(s->mounts[i].source);
                strv_free(s->mounts[i].options);
        }
        free(s->mounts);
        for (size_t i = 0; i < s->n_devices; i++) {
                free(s->devices[i].path);
                free(s->devices[i].permissions);
        }
        free(s->devices);
        rt_process_clear(&s->process);
        rt_seccomp_free(s->seccomp);
        for (int i = 0; i < RT_NS_COUNT; i++)
                free(s->namespaces[i].path);
        free(s->uid_mappings);
        free(s->gid_mappings);
        free(s->hostname);
        kv_free(s->sysctls, s->n_sysctls);
        strv_free(s->masked_paths);
        strv_free(s->readonly_paths);
        free(s->cgroup_path);
        rt_resources_clear(&s->resources);
        free(s);
}

static const char *const ns_names[RT_NS_COUNT] = {
        [RT_NS_MNT] = "mnt", [RT_NS_PID] = "pid",   [RT_NS_NET] = "net",       [RT_NS_IPC] = "ipc",
        [RT_NS_UTS] = "uts", [RT_NS_USER] = "user", [RT_NS_CGROUP] = "cgroup",
};

const char *ns_proc_name(enum rt_ns_type t)
{
        return (unsigned)t < RT_NS_COUNT ? ns_names[t] : "?";
}

int ns_clone_flag(enum rt_ns_type t)
{
        switch (t) {
        case RT_NS_MNT:
                return CLONE_NEWNS;
        case RT_NS_PID:
                return CLONE_NEWPID;
        case RT_NS_NET:
                return CLONE_NEWNET;
        case RT_NS_IPC:
                return CLONE_NEWIPC;
        case RT_NS_UTS:
                return CLONE_NEWUTS;
        case RT_NS_USER:
                return CLONE_NEWUSER;
        case RT_NS_CGROUP:
                return CLONE_NEWCGROUP;
        default:
                return 0;
        }
}

/* Which namespace makes a sysctl safe to set, or -1 if it is not namespaced.
 * The list is kubelet's "safe + unsafe namespaced" set. */
static int sysctl_namespace(const char *key)
{
        static const char *const ipc_exact[] = {"kernel.shmall",          "kernel.shmmax", "kernel.shmmni",
                                                "kernel.shm_rmid_forced", "kernel.msgmax", "kernel.msgmnb",
                                                "kernel.msgmni",          "kernel.sem"};
        for (size_t i = 0; i < ARRAY_SIZE(ipc_exact); i++)
                if (strcmp(key, ipc_exact[i]) == 0)
                        return RT_NS_IPC;
        if (str_has_prefix(key, "fs.mqueue."))
                return RT_NS_IPC;
        if (str_has_prefix(key, "net."))
                return RT_NS_NET;
        return -1;
}

static bool path_ok(const char *p)
{
        if (p == NULL || p[0] != '/')
                return false;
        /* ".." components are resolved inside the root anyway, but a spec
         * that carries them is almost certainly a bug upstream. */
        for (const char *q = p; (q = strstr(q, "..")) != NULL; q += 2) {
                bool start = q == p || q[-1] == '/';
                bool end = q[2] == '\0' || q[2] == '/';
                if (start && end)
                        return false;
        }
        return true;
}

int rt_spec_validate(const struct rt_spec *s, struct err *e)
{
        const char *id = s->id ? s->id : "container";

        if (s->root.path == NULL || s->root.path[0] != '/')
                return err_set(e, ERR_INVALID, "%s: rootfs path must be absolute", id);
        if (s->root.lowerdirs && !s->root.lowerdirs[0])
                return err_set(e, ERR_INVALID, "%s: overlay rootfs without lowerdirs", id);
        if (s->root.upperdir && !s->root.workdir)
                return err_set(e, ERR_INVALID, "%s: overlay upperdir without workdir", id);
        if (s->process.args == NULL || s->process.args[0] == NULL || s->process.args[0][0] == '\0')
                return err_set(e, ERR_INVALID, "%s: no command to run", id);
        if (s->process.cwd && s->process.cwd[0] != '/')
                return err_set(e, ERR_INVALID, "%s: working directory %s is not absolute", id,
                               s->process.cwd);
        for (size_t i = 0; i < s->n_mounts; i++) {
                const struct rt_mount *m = &s->mounts[i];
                if (!path_ok(m->destination))
                        return err_set(e, ERR_INVALID, "%s: mount destination %s must be absolute without ..",
                                       id, m->destination ? m->destination : "(null)");
        }
        for (size_t i = 0; i < s->n_devices; i++) {
                const struct rt_device *d = &s->devices[i];
                if (!path_ok(d->path) || !str_has_prefix(d->path, "/dev/"))
                        return err_set(e, ERR_INVALID, "%s: device path %s must be under /dev", id,
                                       d->path ? d->path : "(null)");
                if (d->type != 'c' && d->type != 'b' && d->type != 'p' && d->type != 'u')
                        return err_set(e, ERR_INVALID, "%s: device %s has type '%c'", id, d->path, d->type);
        }
        for (int i = 0; i < RT_NS_COUNT; i++) {
                if (s->namespaces[i].mode == RT_NS_JOIN &&
                    (s->namespaces[i].path == NULL || s->namespaces[i].path[0] != '/'))
                        return err_set(e, ERR_INVALID, "%s: %s namespace to join has no absolute path", id,
                                       ns_names[i]);
        }
        if (s->namespaces[RT_NS_USER].mode == RT_NS_NEW && (s->n_uid_mappings == 0 || s->n_gid_mappings == 0))
                return err_set(e, ERR_INVALID, "%s: a new user namespace needs uid and gid mappings", id);
        if (s->hostname && s->hostname[0] && s->namespaces[RT_NS_UTS].mode == RT_NS_HOST)
                return err_set(e, ERR_INVALID, "%s: hostname %s needs its own uts namespace", id,
                               s->hostname);
        for (size_t i = 0; i < s->n_sysctls; i++) {
                const char *k = s->sysctls[i].key;
                if (k == NULL || k[0] == '\0' || strchr(k, '/') || strstr(k, ".."))
                        return err_set(e, ERR_INVALID, "%s: bad sysctl name %s", id, k ? k : "(null)");
                int ns = sysctl_namespace(k);
                if (ns < 0)
                        return err_set(e, ERR_INVALID,
                                       "%s: sysctl %s is not namespaced and cannot be set in a container", id,
                                       k);
                if (s->namespaces[ns].mode == RT_NS_HOST)
                        return err_set(e, ERR_INVALID, "%s: sysctl %s needs a non-host %s namespace", id, k,
                                       ns_names[ns]);
        }
        const struct rt_caps *c = &s->process.caps;
        char **sets[] = {c->bounding, c->effective, c->permitted, c->inheritable, c->ambient};
        for (size_t i = 0; i < ARRAY_SIZE(sets); i++)
                for (char **p = sets[i]; p && *p; p++)
                        if (caps_parse(*p) < 0)
                                return err_set(e, ERR_INVALID, "%s: unknown capability %s", id, *p);
        if (s->n_uid_mappings == 0 && s->namespaces[RT_NS_USER].mode == RT_NS_HOST && s->n_gid_mappings)
                return err_set(e, ERR_INVALID, "%s: gid mappings without a user namespace", id);
        if (s->resources.n_unified && rt_cgroup_mode() != RT_CGROUP_V2_UNIFIED)
                return err_set(e, ERR_INVALID,
                               "%s: unified cgroup resources (%s) need cgroup v2, host has %s", id,
                               s->resources.unified[0].key, rt_cgroup_mode_name(rt_cgroup_mode()));
        if (s->resources.memory_limit > 0 && s->resources.memory_limit < 4096 * 2)
                return err_set(e, ERR_INVALID, "%s: memory limit %lld is below 8 KiB", id,
                               (long long)s->resources.memory_limit);
        if (s->resources.memory_swap > 0 && s->resources.memory_limit > 0 &&
            s->resources.memory_swap < s->resources.memory_limit)
                return err_set(e, ERR_INVALID, "%s: memory+swap %lld is below the memory limit %lld", id,
                               (long long)s->resources.memory_swap, (long long)s->resources.memory_limit);
        if (s->resources.cpu_period && (s->resources.cpu_period < 1000 || s->resources.cpu_period > 1000000))
                return err_set(e, ERR_INVALID, "%s: cpu period %llu us is outside 1000..1000000", id,
                               (unsigned long long)s->resources.cpu_period);
        if (s->resources.cpu_quota > 0 && s->resources.cpu_quota < 1000)
                return err_set(e, ERR_INVALID, "%s: cpu quota %lld us is below 1000", id,
                               (long long)s->resources.cpu_quota);
        if (s->resources.cpu_shares && (s->resources.cpu_shares < 2 || s->resources.cpu_shares > 262144))
                return err_set(e, ERR_INVALID, "%s: cpu shares %llu outside 2..262144", id,
                               (unsigned long long)s->resources.cpu_shares);
        return 0;
}
