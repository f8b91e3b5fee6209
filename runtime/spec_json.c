/* The spec as JSON: corrald writes <bundle>/spec.json, the shim reads it. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/resource.h>
#include <yajl/yajl_tree.h>

#include "runtime/runtime-internal.h"

/* ---------- helpers ---------- */

bool jv_i64(yajl_val v, int64_t *out)
{
        if (!YAJL_IS_NUMBER(v))
                return false;
        if (v->u.number.flags & YAJL_NUMBER_INT_VALID) {
                *out = v->u.number.i;
                return true;
        }
        errno = 0;
        char *end;
        long long x = strtoll(v->u.number.r, &end, 10);
        if (errno || *end)
                return false;
        *out = x;
        return true;
}

bool jv_u64(yajl_val v, uint64_t *out)
{
        if (!YAJL_IS_NUMBER(v))
                return false;
        if ((v->u.number.flags & YAJL_NUMBER_INT_VALID) && v->u.number.i >= 0) {
                *out = (uint64_t)v->u.number.i;
                return true;
        }
        errno = 0;
        char *end;
        const char *r = v->u.number.r;
        if (r[0] == '-') { /* -1 conventionally means "all ones" (RLIM_INFINITY) */
                long long x = strtoll(r, &end, 10);
                if (errno || *end)
                        return false;
                *out = (uint64_t)x;
                return true;
        }
        unsigned long long x = strtoull(r, &end, 10);
        if (errno || *end)
                return false;
        *out = x;
        return true;
}

char **jv_strv(yajl_val v)
{
        char **out = NULL;
        if (!YAJL_IS_ARRAY(v))
                return NULL;
        for (size_t i = 0; i < v->u.array.len; i++)
                if (YAJL_IS_STRING(v->u.array.values[i]))
                        strv_push(&out, v->u.array.values[i]->u.string);
        if (out == NULL)
                out = xzalloc(sizeof(char *)); /* present but empty stays distinguishable */
        return out;
}

static char *jdup(yajl_val o, const char *k)
{
        return xstrdup(json_get_str(o, k));
}

static uint64_t ju64(yajl_val o, const char *k)
{
        uint64_t x = 0;
        (void)jv_u64(json_get(o, k), &x);
        return x;
}

static int64_t ji64(yajl_val o, const char *k)
{
        int64_t x = 0;
        (void)jv_i64(json_get(o, k), &x);
        return x;
}

static bool jbool(yajl_val o, const char *k)
{
        bool b = false;
        (void)json_get_bool(o, k, &b);
        return b;
}

static size_t jarr(yajl_val o, const char *k, yajl_val **items)
{
        yajl_val a = json_get(o, k);
        if (!YAJL_IS_ARRAY(a)) {
                *items = NULL;
                return 0;
        }
        *items = a->u.array.values;
        return a->u.array.len;
}

/* Writer: a comma is emitted before every member but the first. */
struct jw {
        struct sbuf b;
        bool first;
};

static void jw_key(struct jw *w, const char *k)
{
        if (!w->first)
                sbuf_putc(&w->b, ',');
        w->first = false;
        json_quote(&w->b, k);
        sbuf_putc(&w->b, ':');
}
static void jw_open(struct jw *w, const char *k, char c)
{
        if (k)
                jw_key(w, k);
        else if (!w->first)
                sbuf_putc(&w->b, ',');
        sbuf_putc(&w->b, c);
        w->first = true;
}
static void jw_close(struct jw *w, char c)
{
        sbuf_putc(&w->b, c);
        w->first = false;
}
static void jw_str(struct jw *w, const char *k, const char *v)
{
        if (v == NULL)
                return;
        jw_key(w, k);
        json_quote(&w->b, v);
}
static void jw_i64(struct jw *w, const char *k, int64_t v)
{
        jw_key(w, k);
        sbuf_printf(&w->b, "%" PRId64, v);
}
static void jw_u64(struct jw *w, const char *k, uint64_t v)
{
        jw_key(w, k);
        sbuf_printf(&w->b, "%" PRIu64, v);
}
static void jw_bool(struct jw *w, const char *k, bool v)
{
        jw_key(w, k);
        sbuf_puts(&w->b, v ? "true" : "false");
}
static void jw_strv(struct jw *w, const char *k, char *const *v)
{
        if (v == NULL)
                return;
        jw_open(w, k, '[');
        for (size_t i = 0; v[i]; i++) {
                if (i)
                        sbuf_putc(&w->b, ',');
                json_quote(&w->b, v[i]);
        }
        jw_close(w, ']');
}

/* The environment: execve takes any bytes but NUL, and a CRI env value is
 * bytes (KeyValue.value). JSON strings must be UTF-8 (yajl refuses others),
 * so an entry that is not is written as {"base64": "..."} in its place. */
static void jw_env(struct jw *w, const char *k, char *const *v)
{
        if (v == NULL)
                return;
        jw_open(w, k, '[');
        for (size_t i = 0; v[i]; i++) {
                if (i)
                        sbuf_putc(&w->b, ',');
                size_t n = strlen(v[i]);
                if (utf8_valid(v[i], n)) {
                        json_quote_n(&w->b, v[i], n);
                        continue;
                }
                cleanup_free char *enc = base64_encode(v[i], n);
                sbuf_printf(&w->b, "{\"base64\":\"%s\"}", enc);
        }
        jw_close(w, ']');
}

static char **jv_env(yajl_val v, struct err *e)
{
        char **out = NULL;
        if (!YAJL_IS_ARRAY(v))
                return NULL;
        for (size_t i = 0; i < v->u.array.len; i++) {
                yajl_val x = v->u.array.values[i];
                if (YAJL_IS_STRING(x)) {
                        strv_push(&out, x->u.string);
                        continue;
                }
                const char *b = json_get_str(x, "base64");
                size_t n = 0;
                cleanup_free char *dec = b ? base64_decode(b, &n) : NULL;
                if (dec == NULL || strlen(dec) != n) {
                        strv_free(out);
                        err_set(e, ERR_INVALID,
                                "process.env[%zu]: want a string or {\"base64\": ...} without NUL", i);
                        return NULL;
                }
                strv_push(&out, dec);
        }
        if (out == NULL)
                out = xzalloc(sizeof(char *));
        return out;
}

/* ---------- rlimit names ---------- */

static const struct {
        const char *name;
        int res;
} rlimit_names[] = {
        {"RLIMIT_AS", RLIMIT_AS},
        {"RLIMIT_CORE", RLIMIT_CORE},
        {"RLIMIT_CPU", RLIMIT_CPU},
        {"RLIMIT_DATA", RLIMIT_DATA},
        {"RLIMIT_FSIZE", RLIMIT_FSIZE},
        {"RLIMIT_LOCKS", RLIMIT_LOCKS},
        {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
        {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
        {"RLIMIT_NICE", RLIMIT_NICE},
        {"RLIMIT_NOFILE", RLIMIT_NOFILE},
        {"RLIMIT_NPROC", RLIMIT_NPROC},
        {"RLIMIT_RSS", RLIMIT_RSS},
        {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
        {"RLIMIT_RTTIME", RLIMIT_RTTIME},
        {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
        {"RLIMIT_STACK", RLIMIT_STACK},
};

const char *rlimit_name(int res)
{
        for (size_t i = 0; i < ARRAY_SIZE(rlimit_names); i++)
                if (rlimit_names[i].res == res)
                        return rlimit_names[i].name;
        return NULL;
}

static int rlimit_parse(const char *name)
{
        for (size_t i = 0; name && i < ARRAY_SIZE(rlimit_names); i++)
                if (strcasecmp(rlimit_names[i].name, name) == 0)
                        return rlimit_names[i].res;
        return -1;
}

static const char *const ns_modes[] = {"host", "new", "join"};

/* ---------- writer ---------- */

static void process_to_json(struct jw *w, const char *key, const struct rt_process *p)
{
        jw_open(w, key, '{');
        jw_strv(w, "args", p->args);
        jw_env(w, "env", p->env);
        jw_str(w, "cwd", p->cwd);
        jw_u64(w, "uid", p->uid);
        jw_u64(w, "gid", p->gid);
        if (p->n_additional_gids) {
                jw_open(w, "additionalGids", '[');
                for (size_t i = 0; i < p->n_additional_gids; i++)
                        sbuf_printf(&w->b, "%s%u", i ? "," : "", p->additional_gids[i]);
                jw_close(w, ']');
        }
        jw_str(w, "username", p->username);
        jw_bool(w, "groupSet", p->group_set);
        jw_bool(w, "strictGroups", p->strict_groups);
        jw_bool(w, "tty", p->tty);
        jw_bool(w, "noNewPrivileges", p->no_new_privs);
        jw_open(w, "capabilities", '{');
        jw_strv(w, "bounding", p->caps.bounding);
        jw_strv(w, "effective", p->caps.effective);
        jw_strv(w, "permitted", p->caps.permitted);
        jw_strv(w, "inheritable", p->caps.inheritable);
        jw_strv(w, "ambient", p->caps.ambient);
        jw_close(w, '}');
        if (p->n_rlimits) {
                jw_open(w, "rlimits", '[');
                for (size_t i = 0; i < p->n_rlimits; i++) {
                        jw_open(w, NULL, '{');
                        const char *n = rlimit_name(p->rlimits[i].resource);
                        if (n)
                                jw_str(w, "type", n);
                        else
                                jw_i64(w, "resource", p->rlimits[i].resource);
                        jw_u64(w, "soft", p->rlimits[i].soft);
                        jw_u64(w, "hard", p->rlimits[i].hard);
                        jw_close(w, '}');
                }
                jw_close(w, ']');
        }
        if (p->has_oom_score_adj)
                jw_i64(w, "oomScoreAdj", p->oom_score_adj);
        jw_str(w, "apparmorProfile", p->apparmor_profile);
        jw_close(w, '}');
}

static void idmaps_to_json(struct jw *w, const char *key, const struct rt_id_map *m, size_t n)
{
        if (n == 0)
                return;
        jw_open(w, key, '[');
        for (size_t i = 0; i < n; i++) {
                jw_open(w, NULL, '{');
                jw_u64(w, "containerID", m[i].container_id);
                jw_u64(w, "hostID", m[i].host_id);
                jw_u64(w, "size", m[i].size);
                jw_close(w, '}');
        }
        jw_close(w, ']');
}

static void kv_to_json(struct jw *w, const char *key, const struct rt_kv *kv, size_t n)
{
        if (n == 0)
                return;
        jw_open(w, key, '{');
        for (size_t i = 0; i < n; i++)
                jw_str(w, kv[i].key, kv[i].value ? kv[i].value : "");
        jw_close(w, '}');
}

char *rt_spec_to_json(const struct rt_spec *s)
{
        struct jw w = {.first = true};
        jw_open(&w, NULL, '{');
        jw_i64(&w, "version", 1);
        jw_str(&w, "id", s->id);
        jw_open(&w, "root", '{');
        jw_str(&w, "path", s->root.path);
        jw_strv(&w, "lowerdirs", s->root.lowerdirs);
        jw_str(&w, "upperdir", s->root.upperdir);
        jw_str(&w, "workdir", s->root.workdir);
        jw_close(&w, '}');
        jw_bool(&w, "readonlyRootfs", s->readonly_rootfs);
        jw_str(&w, "rootfsPropagation", s->rootfs_propagation);
        jw_open(&w, "mounts", '[');
        for (size_t i = 0; i < s->n_mounts; i++) {
                jw_open(&w, NULL, '{');
                jw_str(&w, "destination", s->mounts[i].destination);
                jw_str(&w, "type", s->mounts[i].type);
                jw_str(&w, "source", s->mounts[i].source);
                jw_strv(&w, "options", s->mounts[i].options);
                jw_close(&w, '}');
        }
        jw_close(&w, ']');
        jw_open(&w, "devices", '[');
        for (size_t i = 0; i < s->n_devices; i++) {
                const struct rt_device *d = &s->devices[i];
                char t[2] = {d->type, 0};
                jw_open(&w, NULL, '{');
                jw_str(&w, "path", d->path);
                jw_str(&w, "type", t);
                jw_i64(&w, "major", d->major);
                jw_i64(&w, "minor", d->minor);
                jw_u64(&w, "mode", d->mode);
                jw_u64(&w, "uid", d->uid);
                jw_u64(&w, "gid", d->gid);
                jw_str(&w, "permissions", d->permissions);
                jw_close(&w, '}');
        }
        jw_close(&w, ']');
        process_to_json(&w, "process", &s->process);
        if (s->seccomp) {
                jw_key(&w, "seccomp");
                seccomp_to_json(&w.b, s->seccomp);
        }
        jw_open(&w, "namespaces", '[');
        for (int i = 0; i < RT_NS_COUNT; i++) {
                jw_open(&w, NULL, '{');
                jw_str(&w, "type", ns_proc_name(i));
                jw_str(&w, "mode", ns_modes[s->namespaces[i].mode]);
                jw_str(&w, "path", s->namespaces[i].path);
                jw_close(&w, '}');
        }
        jw_close(&w, ']');
        idmaps_to_json(&w, "uidMappings", s->uid_mappings, s->n_uid_mappings);
        idmaps_to_json(&w, "gidMappings", s->gid_mappings, s->n_gid_mappings);
        jw_str(&w, "hostname", s->hostname);
        kv_to_json(&w, "sysctl", s->sysctls, s->n_sysctls);
        jw_strv(&w, "maskedPaths", s->masked_paths);
        jw_strv(&w, "readonlyPaths", s->readonly_paths);
        jw_str(&w, "cgroupPath", s->cgroup_path);
        const struct rt_resources *r = &s->resources;
        jw_open(&w, "resources", '{');
        jw_u64(&w, "cpuShares", r->cpu_shares);
        jw_i64(&w, "cpuQuota", r->cpu_quota);
        jw_u64(&w, "cpuPeriod", r->cpu_period);
        jw_str(&w, "cpusetCpus", r->cpuset_cpus);
        jw_str(&w, "cpusetMems", r->cpuset_mems);
        jw_i64(&w, "memoryLimit", r->memory_limit);
        jw_i64(&w, "memorySwap", r->memory_swap);
        jw_i64(&w, "pidsLimit", r->pids_limit);
        if (r->n_hugepages) {
                jw_open(&w, "hugepages", '[');
                for (size_t i = 0; i < r->n_hugepages; i++) {
                        jw_open(&w, NULL, '{');
                        jw_str(&w, "pageSize", r->hugepages[i].page_size);
                        jw_u64(&w, "limit", r->hugepages[i].limit);
                        jw_close(&w, '}');
                }
                jw_close(&w, ']');
        }
        kv_to_json(&w, "unified", r->unified, r->n_unified);
        jw_close(&w, '}');
        jw_bool(&w, "privileged", s->privileged);
        jw_close(&w, '}');
        return sbuf_steal(&w.b);
}

/* ---------- reader ---------- */

static void kv_from_json(yajl_val o, struct rt_kv **out, size_t *n)
{
        *out = NULL;
        *n = 0;
        if (!YAJL_IS_OBJECT(o) || o->u.object.len == 0)
                return;
        *out = xcalloc(o->u.object.len, sizeof(struct rt_kv));
        for (size_t i = 0; i < o->u.object.len; i++) {
                yajl_val v = o->u.object.values[i];
                (*out)[*n].key = xstrdup(o->u.object.keys[i]);
                (*out)[*n].value = xstrdup(YAJL_IS_STRING(v) ? v->u.string : "");
                (*n)++;
        }
}

static void idmaps_from_json(yajl_val o, const char *k, struct rt_id_map **out, size_t *n)
{
        yajl_val *items;
        size_t len = jarr(o, k, &items);
        *out = len ? xcalloc(len, sizeof(struct rt_id_map)) : NULL;
        *n = len;
        for (size_t i = 0; i < len; i++) {
                (*out)[i].container_id = (uint32_t)ju64(items[i], "containerID");
                (*out)[i].host_id = (uint32_t)ju64(items[i], "hostID");
                (*out)[i].size = (uint32_t)ju64(items[i], "size");
        }
}

static int process_from_json(yajl_val o, struct rt_process *p, struct err *e)
{
        yajl_val *items;
        size_t n;

        if (!YAJL_IS_OBJECT(o))
                return 0;
        p->args = jv_strv(json_get(o, "args"));
        yajl_val env = json_get(o, "env");
        p->env = jv_env(env, e);
        if (env && YAJL_IS_ARRAY(env) && p->env == NULL)
                return -1;
        p->cwd = jdup(o, "cwd");
        p->uid = (uint32_t)ju64(o, "uid");
        p->gid = (uint32_t)ju64(o, "gid");
        n = jarr(o, "additionalGids", &items);
        if (n) {
                p->additional_gids = xcalloc(n, sizeof(uint32_t));
                for (size_t i = 0; i < n; i++) {
                        uint64_t g = 0;
                        (void)jv_u64(items[i], &g);
                        p->additional_gids[i] = (uint32_t)g;
                }
                p->n_additional_gids = n;
        }
        p->username = jdup(o, "username");
        p->group_set = jbool(o, "groupSet");
        p->strict_groups = jbool(o, "strictGroups");
        p->tty = jbool(o, "tty");
        p->no_new_privs = jbool(o, "noNewPrivileges");
        yajl_val c = json_get(o, "capabilities");
        p->caps.bounding = jv_strv(json_get(c, "bounding"));
        p->caps.effective = jv_strv(json_get(c, "effective"));
        p->caps.permitted = jv_strv(json_get(c, "permitted"));
        p->caps.inheritable = jv_strv(json_get(c, "inheritable"));
        p->caps.ambient = jv_strv(json_get(c, "ambient"));
        n = jarr(o, "rlimits", &items);
        if (n) {
                p->rlimits = xcalloc(n, sizeof(struct rt_rlimit));
                for (size_t i = 0; i < n; i++) {
                        const char *t = json_get_str(items[i], "type");
                        int res = t ? rlimit_parse(t) : (int)ji64(items[i], "resource");
                        if (res < 0)
                                return err_set(e, ERR_INVALID, "spec: unknown rlimit %s", t ? t : "?");
                        p->rlimits[i].resource = res;
                        p->rlimits[i].soft = ju64(items[i], "soft");
                        p->rlimits[i].hard = ju64(items[i], "hard");
                }
                p->n_rlimits = n;
        }
        int64_t adj;
        if (jv_i64(json_get(o, "oomScoreAdj"), &adj)) {
                p->has_oom_score_adj = true;
                p->oom_score_adj = (int)adj;
        }
        p->apparmor_profile = jdup(o, "apparmorProfile");
        return 0;
}

static int spec_from_val(yajl_val t, struct rt_spec *s, struct err *e)
{
        yajl_val *items;
        size_t n;

        if (!YAJL_IS_OBJECT(t))
                return err_set(e, ERR_INVALID, "spec: not a JSON object");
        int64_t version = 0;
        if (!json_get_int(t, "version", &version) || version != 1)
                return err_set(e, ERR_INVALID, "spec: unsupported version %lld", (long long)version);
        s->id = jdup(t, "id");
        yajl_val root = json_get(t, "root");
        s->root.path = jdup(root, "path");
        s->root.lowerdirs = jv_strv(json_get(root, "lowerdirs"));
        s->root.upperdir = jdup(root, "upperdir");
        s->root.workdir = jdup(root, "workdir");
        s->readonly_rootfs = jbool(t, "readonlyRootfs");
        s->rootfs_propagation = jdup(t, "rootfsPropagation");
        n = jarr(t, "mounts", &items);
        s->mounts = n ? xcalloc(n, sizeof(struct rt_mount)) : NULL;
        for (size_t i = 0; i < n; i++, s->n_mounts++) {
                s->mounts[i].destination = jdup(items[i], "destination");
                s->mounts[i].type = jdup(items[i], "type");
                s->mounts[i].source = jdup(items[i], "source");
                s->mounts[i].options = jv_strv(json_get(items[i], "options"));
        }
        n = jarr(t, "devices", &items);
        s->devices = n ? xcalloc(n, sizeof(struct rt_device)) : NULL;
        for (size_t i = 0; i < n; i++, s->n_devices++) {
                struct rt_device *d = &s->devices[i];
                const char *ty = json_get_str(items[i], "type");
                d->path = jdup(items[i], "path");
                d->type = ty ? ty[0] : 0;
                d->major = ji64(items[i], "major");
                d->minor = ji64(items[i], "minor");
                d->mode = (uint32_t)ju64(items[i], "mode");
                d->uid = (uint32_t)ju64(items[i], "uid");
                d->gid = (uint32_t)ju64(items[i], "gid");
                d->permissions = jdup(items[i], "permissions");
        }
        if (process_from_json(json_get(t, "process"), &s->process, e) < 0)
                return -1;
        yajl_val sc = json_get(t, "seccomp");
        if (YAJL_IS_OBJECT(sc)) {
                s->seccomp = seccomp_from_val(sc, e);
                if (s->seccomp == NULL)
                        return err_wrap(e, "spec");
        }
        n = jarr(t, "namespaces", &items);
        for (size_t i = 0; i < n; i++) {
                const char *type = json_get_str(items[i], "type");
                const char *mode = json_get_str(items[i], "mode");
                int ti = -1, mi = -1;
                for (int k = 0; type && k < RT_NS_COUNT; k++)
                        if (strcmp(type, ns_proc_name(k)) == 0)
                                ti = k;
                for (int k = 0; mode && k < 3; k++)
                        if (strcmp(mode, ns_modes[k]) == 0)
                                mi = k;
                if (ti < 0 || mi < 0)
                        return err_set(e, ERR_INVALID, "spec: bad namespace %s/%s", type ? type : "?",
                                       mode ? mode : "?");
                s->namespaces[ti].mode = mi;
                free(s->namespaces[ti].path);
                s->namespaces[ti].path = jdup(items[i], "path");
        }
        idmaps_from_json(t, "uidMappings", &s->uid_mappings, &s->n_uid_mappings);
        idmaps_from_json(t, "gidMappings", &s->gid_mappings, &s->n_gid_mappings);
        s->hostname = jdup(t, "hostname");
        kv_from_json(json_get(t, "sysctl"), &s->sysctls, &s->n_sysctls);
        s->masked_paths = jv_strv(json_get(t, "maskedPaths"));
        s->readonly_paths = jv_strv(json_get(t, "readonlyPaths"));
        s->cgroup_path = jdup(t, "cgroupPath");
        yajl_val r = json_get(t, "resources");
        struct rt_resources *res = &s->resources;
        res->cpu_shares = ju64(r, "cpuShares");
        res->cpu_quota = ji64(r, "cpuQuota");
        res->cpu_period = ju64(r, "cpuPeriod");
        res->cpuset_cpus = jdup(r, "cpusetCpus");
        res->cpuset_mems = jdup(r, "cpusetMems");
        res->memory_limit = ji64(r, "memoryLimit");
        res->memory_swap = ji64(r, "memorySwap");
        res->pids_limit = ji64(r, "pidsLimit");
        n = jarr(r, "hugepages", &items);
        res->hugepages = n ? xcalloc(n, sizeof(struct rt_hugepage_limit)) : NULL;
        for (size_t i = 0; i < n; i++, res->n_hugepages++) {
                res->hugepages[i].page_size = jdup(items[i], "pageSize");
                res->hugepages[i].limit = ju64(items[i], "limit");
        }
        kv_from_json(json_get(r, "unified"), &res->unified, &res->n_unified);
        s->privileged = jbool(t, "privileged");
        return 0;
}

struct rt_spec *rt_spec_from_json(const char *buf, size_t len, struct err *e)
{
        yajl_val t = json_parse(buf, len, "spec", e);
        if (t == NULL)
                return NULL;
        struct rt_spec *s = rt_spec_new();
        int r = spec_from_val(t, s, e);
        yajl_tree_free(t);
        if (r < 0) {
                rt_spec_free(s);
                return NULL;
        }
        return s;
}

int rt_spec_write_file(const struct rt_spec *s, const char *path, struct err *e)
{
        cleanup_free char *j = rt_spec_to_json(s);
        /* Atomic (a crash leaves the old file or the new one), not synced:
         * two device flushes were half of CreateContainer, and a power loss
         * that could lose the file ends the container anyway (the store's
         * WAL, synchronous=NORMAL, gives the same guarantee). */
        if (file_replace(path, j, strlen(j), 0600, e) < 0)
                return err_wrap(e, "write spec");
        return 0;
}

struct rt_spec *rt_spec_read_file(const char *path, struct err *e)
{
        cleanup_free char *buf = NULL;
        size_t len;
        if (file_read_all(path, &buf, &len, 16 << 20, e) < 0) {
                err_wrap(e, "read spec");
                return NULL;
        }
        struct rt_spec *s = rt_spec_from_json(buf, len, e);
        if (s == NULL)
                err_wrap(e, "%s", path);
        return s;
}
