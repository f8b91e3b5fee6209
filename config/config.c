/* config/config.c: the key tables, defaults, cross-key validation, loading
 * and lookups. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config-internal.h"

static const char *const log_level_names[] = {"error", "warn", "info", "debug", "trace", NULL};
static const char *const log_format_names[] = {"logfmt", "json", NULL};
static const char *const cgroup_driver_names[] = {"auto", "cgroupfs", "systemd", NULL};
static const char *const runtime_type_names[] = {"namespace", "vm", "oci", NULL};
static const char *const vmm_names[] = {"qemu", "cloud-hypervisor", NULL};
static const char *const share_names[] = {"auto", "9p", "virtiofs", NULL};

/* Designated initialisers: a field name inside offsetof cannot take parentheses. */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define F(k, t, field)                                                                                       \
        {                                                                                                    \
                .key = k, .type = t, .off = offsetof(struct cfg, field)                                      \
        }
#define FN(k, t, field, lo, hi)                                                                              \
        {                                                                                                    \
                .key = k, .type = t, .off = offsetof(struct cfg, field), .min = lo, .max = hi                \
        }
#define FE(k, field, n)                                                                                      \
        {                                                                                                    \
                .key = k, .type = FT_ENUM, .off = offsetof(struct cfg, field), .names = n                    \
        }
/* NOLINTEND(bugprone-macro-parentheses) */

static const struct cfg_field cni_fields[] = {
        F("conf_dir", FT_STR, cni.conf_dir),
        F("bin_dirs", FT_STRV, cni.bin_dirs),
        F("cache_dir", FT_STR, cni.cache_dir),
        F("native", FT_BOOL, cni.native),
        {0},
};

static const struct cfg_field streaming_fields[] = {
        F("address", FT_STR, streaming.address),
        FN("port", FT_U32, streaming.port, 0, 65535),
        F("tls_cert", FT_STR, streaming.tls_cert),
        F("tls_key", FT_STR, streaming.tls_key),
        FN("token_ttl_seconds", FT_U32, streaming.token_ttl_seconds, 1, 86400),
        {0},
};

static const struct cfg_field image_fields[] = {
        FN("max_concurrent_downloads", FT_U32, image.max_concurrent_downloads, 1, 64),
        FN("pull_progress_timeout_seconds", FT_U32, image.pull_progress_timeout_seconds, 0, 86400),
        F("gc_on_remove", FT_BOOL, image.gc_on_remove),
        {0},
};

static const struct cfg_field metrics_fields[] = {
        F("address", FT_STR, metrics.address),
        {0},
};

const struct cfg_field cfg_registry_fields[] = {
        {.key = "mirrors", .type = FT_STRV, .off = offsetof(struct cfg_registry, mirrors)},
        {.key = "insecure", .type = FT_BOOL, .off = offsetof(struct cfg_registry, insecure)},
        {.key = "ca_file", .type = FT_STR, .off = offsetof(struct cfg_registry, ca_file)},
        {0},
};

/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define RF(k, t, field)                                                                                      \
        {                                                                                                    \
                .key = k, .type = t, .off = offsetof(struct cfg_runtime, field)                              \
        }
#define RFN(k, field, lo, hi)                                                                                \
        {                                                                                                    \
                .key = k, .type = FT_U32, .off = offsetof(struct cfg_runtime, field), .min = lo, .max = hi   \
        }
/* NOLINTEND(bugprone-macro-parentheses) */
const struct cfg_field cfg_runtime_fields[] = {
        {.key = "type",
         .type = FT_ENUM,
         .off = offsetof(struct cfg_runtime, type),
         .names = runtime_type_names},
        {.key = "vmm", .type = FT_ENUM, .off = offsetof(struct cfg_runtime, vmm), .names = vmm_names},
        RF("vmm_path", FT_STR, vmm_path),
        RF("kernel", FT_STR, kernel),
        RF("initrd", FT_STR, initrd),
        RFN("cpus", cpus, 1, 256),
        RFN("memory_mib", memory_mib, 64, 4194304),
        RFN("agent_timeout_seconds", agent_timeout_seconds, 1, 3600),
        {.key = "share", .type = FT_ENUM, .off = offsetof(struct cfg_runtime, share), .names = share_names},
        RF("virtiofsd_path", FT_STR, virtiofsd_path),
        RF("runtime_path", FT_STR, runtime_path),
        {0},
};

const struct cfg_field cfg_top_fields[] = {
        F("root", FT_STR, root),
        F("state", FT_STR, state),
        F("listen", FT_STR, listen),
        FE("log_level", log_level, log_level_names),
        FE("log_format", log_format, log_format_names),
        FE("cgroup_driver", cgroup_driver, cgroup_driver_names),
        FN("max_message_bytes", FT_U64, max_message_bytes, 65536, 2147483647),
        {.key = "cni", .type = FT_OBJ, .sub = cni_fields},
        {.key = "streaming", .type = FT_OBJ, .sub = streaming_fields},
        {.key = "registries", .type = FT_REGISTRIES, .sub = cfg_registry_fields},
        {.key = "image", .type = FT_OBJ, .sub = image_fields},
        {.key = "runtimes", .type = FT_RUNTIMES, .sub = cfg_runtime_fields},
        F("default_runtime", FT_STR, default_runtime),
        {.key = "metrics", .type = FT_OBJ, .sub = metrics_fields},
        {0},
};

/* ---------- entries ---------- */

/* A binary on PATH (the sbin directories too: runc is in /usr/sbin), or NULL. */
static char *find_in_path(const char *name)
{
        const char *path = getenv("PATH");
        cleanup_free char *dirs = xasprintf("%s:/usr/local/sbin:/usr/sbin:/sbin",
                                            path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
        char *save = NULL;
        for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                char *p = path_join(d, name);
                if (*d == '/' && access(p, X_OK) == 0)
                        return p;
                free(p);
        }
        return NULL;
}

void cfg_runtime_init(struct cfg_runtime *rt, const char *name)
{
        memset(rt, 0, sizeof(*rt));
        rt->name = xstrdup(name);
        rt->type = CFG_RUNTIME_NAMESPACE;
        rt->vmm = CFG_VMM_QEMU;
        rt->vmm_path = xstrdup("");
        rt->kernel = xstrdup("");
        rt->initrd = xstrdup("");
        rt->cpus = 1;
        rt->memory_mib = 256;
        rt->agent_timeout_seconds = 30;
        rt->share = CFG_SHARE_AUTO;
        rt->virtiofsd_path = xstrdup("");
        rt->runtime_path = xstrdup("");
}

void cfg_runtime_clear(struct cfg_runtime *rt)
{
        free(rt->name);
        free(rt->vmm_path);
        free(rt->kernel);
        free(rt->initrd);
        free(rt->virtiofsd_path);
        free(rt->runtime_path);
        memset(rt, 0, sizeof(*rt));
}

void cfg_registry_clear(struct cfg_registry *r)
{
        free(r->host);
        strv_free(r->mirrors);
        free(r->ca_file);
        memset(r, 0, sizeof(*r));
}

struct cfg_runtime *cfg_runtime_get_or_add(struct cfg *c, const char *name)
{
        for (size_t i = 0; i < c->n_runtimes; i++)
                if (strcmp(c->runtimes[i].name, name) == 0)
                        return &c->runtimes[i];
        c->runtimes = xrealloc(c->runtimes, (c->n_runtimes + 1) * sizeof(*c->runtimes));
        cfg_runtime_init(&c->runtimes[c->n_runtimes], name);
        return &c->runtimes[c->n_runtimes++];
}

struct cfg_registry *cfg_registry_get_or_add(struct cfg *c, const char *host)
{
        for (size_t i = 0; i < c->n_registries; i++)
                if (strcmp(c->registries[i].host, host) == 0)
                        return &c->registries[i];
        c->registries = xrealloc(c->registries, (c->n_registries + 1) * sizeof(*c->registries));
        struct cfg_registry *r = &c->registries[c->n_registries++];
        memset(r, 0, sizeof(*r));
        r->host = xstrdup(host);
        r->mirrors = xcalloc(1, sizeof(char *));
        r->ca_file = xstrdup("");
        return r;
}

/* ---------- defaults, copy, clear ---------- */

static char *derive(const char *root, const char *rel)
{
        return path_join(root, rel);
}

void cfg_init_defaults(struct cfg *c)
{
        memset(c, 0, sizeof(*c));
        c->root = xstrdup("/var/lib/corral");
        c->state = xstrdup("/run/corral");
        c->listen = xstrdup("unix:///run/corral/corral.sock");
        c->log_level = LOG_LVL_INFO;
        c->log_format = CFG_LOG_LOGFMT;
        c->cgroup_driver = CFG_CGROUP_AUTO;
        c->max_message_bytes = 16777216;

        c->cni.conf_dir = xstrdup("/etc/cni/net.d");
        c->cni.bin_dirs = NULL;
        strv_push(&c->cni.bin_dirs, "/opt/cni/bin");
        strv_push(&c->cni.bin_dirs, "/usr/lib/cni");
        c->cni.cache_dir = derive(c->root, "cni");
        c->cni.native = true;

        c->streaming.address = xstrdup("127.0.0.1");
        c->streaming.port = 0;
        c->streaming.tls_cert = xstrdup("");
        c->streaming.tls_key = xstrdup("");
        c->streaming.token_ttl_seconds = 60;

        c->image.max_concurrent_downloads = 3;
        c->image.pull_progress_timeout_seconds = 300;
        c->image.gc_on_remove = true;

        (void)cfg_runtime_get_or_add(c, "");
        struct cfg_runtime *vm = cfg_runtime_get_or_add(c, "vm");
        vm->type = CFG_RUNTIME_VM;
        vm->vmm = CFG_VMM_QEMU;
        free(vm->kernel);
        vm->kernel = derive(c->root, "vm/vmlinux");
        free(vm->initrd);
        vm->initrd = derive(c->root, "vm/initramfs.img");
        /* The OCI runtimes a node has: RuntimeClass handlers "runc" and "crun". */
        static const char *const oci[] = {"runc", "crun"};
        for (size_t i = 0; i < ARRAY_SIZE(oci); i++) {
                char *bin = find_in_path(oci[i]);
                if (bin == NULL)
                        continue;
                struct cfg_runtime *rt = cfg_runtime_get_or_add(c, oci[i]);
                rt->type = CFG_RUNTIME_OCI;
                free(rt->runtime_path);
                rt->runtime_path = bin;
        }
        c->default_runtime = xstrdup("");

        c->metrics.address = xstrdup("");
}

/* Copy or free every field a table describes (strings and vectors). */
static void copy_fields(const struct cfg_field *fields, void *dst, const void *src)
{
        for (const struct cfg_field *f = fields; f->key; f++) {
                if (f->type == FT_STR)
                        *CFG_FIELD_PTR(dst, f, char *) = xstrdup(*CFG_FIELD_CPTR(src, f, char *));
                else if (f->type == FT_STRV)
                        *CFG_FIELD_PTR(dst, f, char **) = strv_dup(*CFG_FIELD_CPTR(src, f, char **));
                else if (f->type == FT_OBJ)
                        copy_fields(f->sub, dst, src);
        }
}

void cfg_copy(struct cfg *dst, const struct cfg *src)
{
        *dst = *src; /* scalars; every pointer is replaced below */
        dst->path = xstrdup(src->path);
        copy_fields(cfg_top_fields, dst, src);
        dst->registries = xcalloc(src->n_registries ? src->n_registries : 1, sizeof(*dst->registries));
        for (size_t i = 0; i < src->n_registries; i++) {
                dst->registries[i] = src->registries[i];
                dst->registries[i].host = xstrdup(src->registries[i].host);
                copy_fields(cfg_registry_fields, &dst->registries[i], &src->registries[i]);
        }
        dst->runtimes = xcalloc(src->n_runtimes ? src->n_runtimes : 1, sizeof(*dst->runtimes));
        for (size_t i = 0; i < src->n_runtimes; i++) {
                dst->runtimes[i] = src->runtimes[i];
                dst->runtimes[i].name = xstrdup(src->runtimes[i].name);
                copy_fields(cfg_runtime_fields, &dst->runtimes[i], &src->runtimes[i]);
        }
}

static void free_fields(const struct cfg_field *fields, void *base)
{
        for (const struct cfg_field *f = fields; f->key; f++) {
                if (f->type == FT_STR) {
                        free(*CFG_FIELD_PTR(base, f, char *));
                        *CFG_FIELD_PTR(base, f, char *) = NULL;
                } else if (f->type == FT_STRV) {
                        strv_free(*CFG_FIELD_PTR(base, f, char **));
                        *CFG_FIELD_PTR(base, f, char **) = NULL;
                } else if (f->type == FT_OBJ) {
                        free_fields(f->sub, base);
                }
        }
}

void cfg_clear(struct cfg *c)
{
        if (!c)
                return;
        free(c->path);
        free_fields(cfg_top_fields, c);
        for (size_t i = 0; i < c->n_registries; i++)
                cfg_registry_clear(&c->registries[i]);
        free(c->registries);
        for (size_t i = 0; i < c->n_runtimes; i++)
                cfg_runtime_clear(&c->runtimes[i]);
        free(c->runtimes);
        memset(c, 0, sizeof(*c));
}

/* ---------- resolution and validation ---------- */

static bool was_set(char *const *set, const char *path)
{
        for (size_t i = 0; set && set[i]; i++)
                if (strcmp(set[i], path) == 0)
                        return true;
        return false;
}

static char *rt_key(const struct cfg_runtime *rt, const char *key)
{
        const char *segs[] = {"runtimes", rt->name, key};
        return cfg_key_path(segs, key ? 3 : 2);
}

/* A path derived from root follows root, unless the file chose it: "" means
 * derive, and an untouched value derived from the old root is re-derived. */
static void follow_root(char **field, const char *old_root, const char *new_root, const char *rel, bool set)
{
        cleanup_free char *old = derive(old_root, rel);
        if (**field == '\0' || (!set && strcmp(*field, old) == 0)) {
                free(*field);
                *field = derive(new_root, rel);
        }
}

static void resolve(struct cfg *c, const char *old_root, char *const *set)
{
        follow_root(&c->cni.cache_dir, old_root, c->root, "cni", was_set(set, "cni.cache_dir"));
        for (size_t i = 0; i < c->n_runtimes; i++) {
                struct cfg_runtime *rt = &c->runtimes[i];
                if (rt->type != CFG_RUNTIME_VM)
                        continue;
                cleanup_free char *k = rt_key(rt, "kernel");
                cleanup_free char *ir = rt_key(rt, "initrd");
                follow_root(&rt->kernel, old_root, c->root, "vm/vmlinux", was_set(set, k));
                follow_root(&rt->initrd, old_root, c->root, "vm/initramfs.img", was_set(set, ir));
        }
}

static int invalid(struct err *e, const char *what, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int invalid(struct err *e, const char *what, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        cleanup_free char *msg = xvasprintf(fmt, ap);
        va_end(ap);
        return err_set(e, ERR_INVALID, "%s: %s", what, msg);
}

static int check_abs(const char *key, const char *v, bool empty_ok, const char *what, struct err *e)
{
        if (*v == '\0' && empty_ok)
                return 0;
        if (v[0] != '/')
                return invalid(e, what, "%s: \"%s\" must be an absolute path", key, v);
        return 0;
}

static bool host_port_ok(const char *v)
{
        const char *colon = strrchr(v, ':');
        if (!colon || colon == v || !colon[1])
                return false;
        for (const char *p = colon + 1; *p; p++)
                if (*p < '0' || *p > '9')
                        return false;
        long port = strtol(colon + 1, NULL, 10);
        return port > 0 && port <= 65535;
}

static int validate(const struct cfg *c, char *const *set, const char *what, struct err *e)
{
        if (check_abs("root", c->root, false, what, e) < 0 ||
            check_abs("state", c->state, false, what, e) < 0 ||
            check_abs("cni.conf_dir", c->cni.conf_dir, false, what, e) < 0 ||
            check_abs("cni.cache_dir", c->cni.cache_dir, false, what, e) < 0)
                return -1;
        if (strcmp(c->root, c->state) == 0)
                return invalid(e, what, "root and state are both \"%s\": they must differ", c->root);
        const char *l = c->listen;
        if (str_has_prefix(l, "unix://"))
                l += strlen("unix://");
        if (l[0] != '/')
                return invalid(e, what, "listen: \"%s\" must be unix:///path or an absolute path", c->listen);
        if (strlen(l) >= 108)
                return invalid(e, what, "listen: \"%s\" is longer than a unix socket path can be", l);
        for (size_t i = 0; c->cni.bin_dirs[i]; i++) {
                char key[32];
                snprintf(key, sizeof(key), "cni.bin_dirs[%zu]", i);
                if (check_abs(key, c->cni.bin_dirs[i], false, what, e) < 0)
                        return -1;
        }
        if (!*c->streaming.address)
                return invalid(e, what, "streaming.address: must not be empty");
        if (!*c->streaming.tls_cert != !*c->streaming.tls_key)
                return invalid(e, what, "streaming.%s is set but streaming.%s is not: give both or neither",
                               *c->streaming.tls_cert ? "tls_cert" : "tls_key",
                               *c->streaming.tls_cert ? "tls_key" : "tls_cert");
        if (*c->metrics.address && !host_port_ok(c->metrics.address))
                return invalid(e, what, "metrics.address: \"%s\" must be host:port (or \"\" to disable)",
                               c->metrics.address);
        if (*c->metrics.address && c->streaming.port) {
                cleanup_free char *sa = xasprintf("%s:%u", c->streaming.address, c->streaming.port);
                if (strcmp(sa, c->metrics.address) == 0)
                        return invalid(e, what, "metrics.address and streaming.address/port are both %s", sa);
        }

        for (size_t i = 0; i < c->n_registries; i++) {
                const struct cfg_registry *r = &c->registries[i];
                for (size_t j = 0; r->mirrors[j]; j++) {
                        if (!str_has_prefix(r->mirrors[j], "https://") &&
                            !str_has_prefix(r->mirrors[j], "http://")) {
                                const char *segs[] = {"registries", r->host, "mirrors"};
                                cleanup_free char *k = cfg_key_path(segs, 3);
                                return invalid(e, what, "%s[%zu]: \"%s\" must be an http:// or https:// URL",
                                               k, j, r->mirrors[j]);
                        }
                }
                if (*r->ca_file) {
                        const char *segs[] = {"registries", r->host, "ca_file"};
                        cleanup_free char *k = cfg_key_path(segs, 3);
                        if (check_abs(k, r->ca_file, true, what, e) < 0)
                                return -1;
                }
        }

        static const char *const vm_only[] = {
                "vmm",   "vmm_path",      "kernel", "initrd", "cpus", "memory_mib", "agent_timeout_seconds",
                "share", "virtiofsd_path"};
        for (size_t i = 0; i < c->n_runtimes; i++) {
                const struct cfg_runtime *rt = &c->runtimes[i];
                cleanup_free char *tk = rt_key(rt, "type");
                if (!*rt->name && rt->type != CFG_RUNTIME_NAMESPACE)
                        return invalid(e, what,
                                       "%s: the default handler \"\" must be of type \"namespace\" "
                                       "(name a vm handler in default_runtime instead)",
                                       tk);
                cleanup_free char *rk = rt_key(rt, "runtime_path");
                if (rt->type != CFG_RUNTIME_OCI && was_set(set, rk))
                        return invalid(e, what, "%s is set but %s is \"%s\" (oci only)", rk, tk,
                                       runtime_type_names[rt->type]);
                if (rt->type == CFG_RUNTIME_NAMESPACE || rt->type == CFG_RUNTIME_OCI) {
                        for (size_t j = 0; j < ARRAY_SIZE(vm_only); j++) {
                                cleanup_free char *k = rt_key(rt, vm_only[j]);
                                if (was_set(set, k))
                                        return invalid(e, what, "%s is set but %s is \"%s\" (vm only)", k, tk,
                                                       runtime_type_names[rt->type]);
                        }
                }
                if (rt->type == CFG_RUNTIME_OCI) {
                        if (!*rt->runtime_path)
                                return invalid(e, what, "%s: an oci handler needs the OCI runtime binary",
                                               rk);
                        if (check_abs(rk, rt->runtime_path, false, what, e) < 0)
                                return -1;
                        if (access(rt->runtime_path, X_OK) != 0)
                                return invalid(e, what, "%s: %s: %s (install it, or fix the path)", rk,
                                               rt->runtime_path, strerror(errno));
                        continue;
                }
                if (rt->type == CFG_RUNTIME_NAMESPACE)
                        continue;
                cleanup_free char *kk = rt_key(rt, "kernel");
                cleanup_free char *ik = rt_key(rt, "initrd");
                cleanup_free char *pk = rt_key(rt, "vmm_path");
                cleanup_free char *vk = rt_key(rt, "virtiofsd_path");
                if (check_abs(kk, rt->kernel, false, what, e) < 0 ||
                    check_abs(ik, rt->initrd, false, what, e) < 0 ||
                    check_abs(pk, rt->vmm_path, true, what, e) < 0 ||
                    check_abs(vk, rt->virtiofsd_path, true, what, e) < 0)
                        return -1;
                if (rt->vmm == CFG_VMM_CLOUD_HYPERVISOR && rt->share == CFG_SHARE_9P) {
                        cleanup_free char *sk = rt_key(rt, "share");
                        return invalid(e, what,
                                       "%s: cloud-hypervisor has no 9p; use \"virtiofs\" or \"auto\"", sk);
                }
        }
        if (!cfg_runtime_find(c, NULL)) {
                struct sbuf b = {0};
                for (size_t i = 0; i < c->n_runtimes; i++) {
                        sbuf_puts(&b, i ? ", " : "");
                        json_quote(&b, c->runtimes[i].name);
                }
                cleanup_free char *have = sbuf_steal(&b);
                return invalid(e, what, "default_runtime: \"%s\" names no handler in runtimes (have %s)",
                               c->default_runtime, have);
        }
        return 0;
}

/* ---------- loading ---------- */

int cfg_load_buffer(struct cfg *c, const char *buf, size_t len, const char *what, struct err *e)
{
        struct cfg tmp;
        cfg_copy(&tmp, c);
        cleanup_strv char **set = NULL;
        if (cfg_apply_json(&tmp, buf, len, what, &set, e) < 0) {
                cfg_clear(&tmp);
                return -1;
        }
        resolve(&tmp, c->root, set);
        if (validate(&tmp, set, what, e) < 0) {
                cfg_clear(&tmp);
                return -1;
        }
        free(tmp.path);
        tmp.path = xstrdup(what);
        cfg_clear(c);
        *c = tmp;
        return 0;
}

int cfg_load(struct cfg *c, const char *path, bool must_exist, struct err *e)
{
        cleanup_free char *buf = NULL;
        size_t len = 0;
        cleanup_err struct err rerr = ERR_INIT;
        if (file_read_all(path, &buf, &len, 4 << 20, &rerr) < 0) {
                if (rerr.errnum == ENOENT && !must_exist) {
                        /* defaults only: still resolved and checked */
                        if (cfg_load_buffer(c, "", 0, path, e) < 0)
                                return -1;
                        free(c->path);
                        c->path = NULL;
                        return 0;
                }
                if (!e)
                        return -1;
                err_move(e, &rerr);
                return err_wrap(e, "config");
        }
        return cfg_load_buffer(c, buf, len, path, e);
}

/* ---------- lookups ---------- */

const struct cfg_runtime *cfg_runtime_find(const struct cfg *c, const char *handler)
{
        if (!handler || !*handler)
                handler = c->default_runtime ? c->default_runtime : "";
        for (size_t i = 0; i < c->n_runtimes; i++)
                if (strcmp(c->runtimes[i].name, handler) == 0)
                        return &c->runtimes[i];
        return NULL;
}

static bool is_docker_hub(const char *h)
{
        return strcmp(h, "docker.io") == 0 || strcmp(h, "index.docker.io") == 0 ||
               strcmp(h, "registry-1.docker.io") == 0;
}

const struct cfg_registry *cfg_registry_find(const struct cfg *c, const char *host)
{
        if (!host)
                return NULL;
        for (size_t i = 0; i < c->n_registries; i++)
                if (strcmp(c->registries[i].host, host) == 0)
                        return &c->registries[i];
        if (is_docker_hub(host))
                for (size_t i = 0; i < c->n_registries; i++)
                        if (is_docker_hub(c->registries[i].host))
                                return &c->registries[i];
        return NULL;
}

const char *cfg_listen_path(const struct cfg *c)
{
        return str_has_prefix(c->listen, "unix://") ? c->listen + strlen("unix://") : c->listen;
}
