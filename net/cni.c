/* CNI 1.0: run plugin chains (ADD in order, DEL in reverse, CHECK in
 * order), keep each pod's config and result in a cache for DEL after a
 * restart, report NetworkReady. The config is re-read on each call so a
 * config installed after start is picked up, and no state is shared
 * between threads. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <yajl/yajl_tree.h>

#include "net/native-internal.h"

extern char **environ;

#define CNI_OUTPUT_MAX (4u << 20)
#define CACHE_KIND     "corral-cni-cache/1"

struct net_cni {
        char *conf_dir;
        char **bin_dirs;
        char *cache_dir;
        char *cni_path; /* bin dirs joined with ':' for CNI_PATH */
        int timeout_ms;
        bool native;
};

struct net_cni *net_cni_new(const struct net_cni_opts *o, struct err *e)
{
        static char *const default_bins[] = {"/opt/cni/bin", "/usr/lib/cni", NULL};
        struct net_cni *c = xzalloc(sizeof(*c));
        c->conf_dir = xstrdup(o && o->conf_dir ? o->conf_dir : "/etc/cni/net.d");
        c->bin_dirs = strv_dup(o && o->bin_dirs ? o->bin_dirs : default_bins);
        c->cache_dir = xstrdup(o && o->cache_dir ? o->cache_dir : "/var/lib/corral/cni");
        c->timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : 60000;
        c->native = o && o->native;
        struct sbuf b = {0};
        for (size_t i = 0; c->bin_dirs[i]; i++) {
                if (i)
                        sbuf_putc(&b, ':');
                sbuf_puts(&b, c->bin_dirs[i]);
        }
        c->cni_path = sbuf_steal(&b);
        if (mkdir_p(c->cache_dir, 0700, e) < 0) {
                net_cni_free(c);
                return NULL;
        }
        return c;
}

void net_cni_free(struct net_cni *c)
{
        if (!c)
                return;
        free(c->conf_dir);
        strv_free(c->bin_dirs);
        free(c->cache_dir);
        free(c->cni_path);
        free(c);
}

/* ---------- status ---------- */

void net_cni_status(struct net_cni *c, struct net_cni_status *out)
{
        struct cni_conf *conf = NULL;
        struct err e = ERR_INIT;

        memset(out, 0, sizeof(*out));
        if (cni_conf_load_dir(c->conf_dir, &conf, &e) < 0) {
                out->reason = xstrdup("NoCNIConfig");
                out->message = xasprintf("cni config uninitialized: %s", e.msg);
                err_clear(&e);
                return;
        }
        for (size_t i = 0; i < conf->plugins->u.array.len; i++) {
                const char *type = json_get_str(conf->plugins->u.array.values[i], "type");
                char *p = cni_find_plugin(c->bin_dirs, type);
                if (!p) {
                        out->reason = xstrdup("NoCNIConfig");
                        out->message = xasprintf("cni plugin %s of network %s (%s) not found in %s", type,
                                                 conf->name, conf->file, c->cni_path);
                        cni_conf_free(conf);
                        return;
                }
                free(p);
        }
        out->ready = true;
        out->conf_file = xstrdup(conf->file);
        out->net_name = xstrdup(conf->name);
        cni_conf_free(conf);
}

void net_cni_status_free(struct net_cni_status *s)
{
        if (!s)
                return;
        free(s->reason);
        free(s->message);
        free(s->conf_file);
        free(s->net_name);
        memset(s, 0, sizeof(*s));
}

const char *net_proto_name(enum net_proto p)
{
        switch (p) {
        case NET_PROTO_UDP:
                return "udp";
        case NET_PROTO_SCTP:
                return "sctp";
        default:
                return "tcp";
        }
}

/* ---------- one plugin call ---------- */

struct call {
        const char *cmd; /* ADD, DEL, CHECK */
        const char *pod_id;
        const char *netns; /* "" when gone */
        const char *ifname;
        const char *cni_args;
        const char *net_name;
};

static char **plugin_env(struct net_cni *c, const struct call *k)
{
        char **env = NULL;
        bool have_path = false;
        for (char **p = environ; p && *p; p++) {
                if (str_has_prefix(*p, "CNI_"))
                        continue;
                if (str_has_prefix(*p, "PATH="))
                        have_path = true;
                strv_push(&env, *p);
        }
        if (!have_path)
                strv_push(&env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        char *kv[] = {
                xasprintf("CNI_COMMAND=%s", k->cmd),   xasprintf("CNI_CONTAINERID=%s", k->pod_id),
                xasprintf("CNI_NETNS=%s", k->netns),   xasprintf("CNI_IFNAME=%s", k->ifname),
                xasprintf("CNI_ARGS=%s", k->cni_args), xasprintf("CNI_PATH=%s", c->cni_path),
        };
        for (size_t i = 0; i < ARRAY_SIZE(kv); i++) {
                strv_push(&env, kv[i]);
                free(kv[i]);
        }
        return env;
}

static void trim(char *s)
{
        size_t n = strlen(s);
        while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
                s[--n] = '\0';
}

/* The plugin failed: turn its JSON error (code, msg, details) into ours. */
static int plugin_error(const struct call *k, const char *type, int status, char *out, char *errout,
                        struct err *e)
{
        struct err pe = ERR_INIT;
        yajl_val t = out[0] ? json_parse(out, strlen(out), "plugin error", &pe) : NULL;
        err_clear(&pe);
        int64_t code = 0;
        const char *msg = t ? json_get_str(t, "msg") : NULL;
        if (t && msg) {
                const char *details = json_get_str(t, "details");
                (void)json_get_int(t, "code", &code);
                /* Code 11 is "try again later" in the spec. */
                err_set(e, code == 11 ? ERR_UNAVAILABLE : ERR_INTERNAL,
                        "plugin %s %s (network %s, pod %s): %s%s%s (code %lld)", type, k->cmd, k->net_name,
                        k->pod_id, msg, details && details[0] ? ": " : "", details ? details : "",
                        (long long)code);
        } else {
                trim(errout);
                trim(out);
                err_set(e, ERR_INTERNAL, "plugin %s %s (network %s, pod %s) failed with %s %d: %s", type,
                        k->cmd, k->net_name, k->pod_id, WIFSIGNALED(status) ? "signal" : "exit status",
                        WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                        errout[0] ? errout
                        : out[0]  ? out
                                  : "no output");
        }
        if (t)
                yajl_tree_free(t);
        return -1;
}

static int exec_plugin(struct net_cni *c, const struct call *k, const char *type, const char *input,
                       char **result, struct err *e)
{
        cleanup_free char *path = cni_find_plugin(c->bin_dirs, type);
        cleanup_strv char **env = NULL;
        int in[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1};
        struct sbuf out = {0}, errout = {0};
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        pid_t pid = -1;
        int status = 0, ret = -1;

        *result = NULL;
        if (!path)
                return err_set(e, ERR_PRECONDITION, "cni plugin %s (network %s) not found in %s", type,
                               k->net_name, c->cni_path);
        env = plugin_env(c, k);
        /* stdin is a socket so writing to a plugin that died gets EPIPE
         * (MSG_NOSIGNAL), never a SIGPIPE in the daemon. */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0 || pipe2(outp, O_CLOEXEC) < 0 ||
            pipe2(errp, O_CLOEXEC) < 0) {
                err_make(e, errno, "cni plugin pipes");
                goto out;
        }
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[1], 0);
        posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
        posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
        posix_spawnattr_init(&attr);
        sigset_t none, defs;
        sigemptyset(&none);
        sigemptyset(&defs);
        int sigs[] = {SIGPIPE, SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2};
        for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
                sigaddset(&defs, sigs[i]);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &defs);
        /* Own process group: a timeout kills the plugin and its IPAM child. */
        posix_spawnattr_setpgroup(&attr, 0);
        posix_spawnattr_setflags(&attr,
                                 POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
        char *argv[] = {path, NULL};
        int rc = posix_spawn(&pid, path, &fa, &attr, argv, env);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (rc != 0) {
                pid = -1;
                err_make(e, rc, "run cni plugin %s", path);
                goto out;
        }
        close(in[1]);
        close(outp[1]);
        close(errp[1]);
        in[1] = outp[1] = errp[1] = -1;

        size_t inlen = strlen(input), off = 0;
        int64_t deadline = time_mono_ns() + (int64_t)c->timeout_ms * 1000000;
        if (inlen == 0)
                shutdown(in[0], SHUT_WR);
        while (outp[0] >= 0 || errp[0] >= 0) {
                struct pollfd p[3] = {
                        {off < inlen ? in[0] : -1, POLLOUT, 0},
                        {outp[0], POLLIN, 0},
                        {errp[0], POLLIN, 0},
                };
                int64_t left = (deadline - time_mono_ns()) / 1000000;
                if (left <= 0) {
                        kill(-pid, SIGKILL);
                        kill(pid, SIGKILL);
                        err_set(e, ERR_DEADLINE, "plugin %s %s (network %s, pod %s) timed out after %d ms",
                                type, k->cmd, k->net_name, k->pod_id, c->timeout_ms);
                        goto out;
                }
                int n = poll(p, 3, (int)left);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        err_make(e, errno, "poll cni plugin");
                        goto out;
                }
                if (p[0].revents) {
                        ssize_t w = send(in[0], input + off, inlen - off, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (w > 0)
                                off += (size_t)w;
                        if ((w < 0 && errno != EAGAIN && errno != EINTR) || off == inlen) {
                                off = inlen;
                                shutdown(in[0], SHUT_WR);
                        }
                }
                for (int i = 1; i < 3; i++) {
                        if (!p[i].revents)
                                continue;
                        char buf[16384];
                        int *fd = i == 1 ? &outp[0] : &errp[0];
                        struct sbuf *sb = i == 1 ? &out : &errout;
                        ssize_t r = read(*fd, buf, sizeof(buf));
                        if (r > 0 && sb->len + (size_t)r <= CNI_OUTPUT_MAX)
                                sbuf_append(sb, buf, (size_t)r);
                        else if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
                                close(*fd);
                                *fd = -1;
                        }
                }
        }
        while (waitpid(pid, &status, 0) < 0) {
                if (errno == EINTR)
                        continue;
                /* Someone else reaped it (a process-wide SIGCHLD reaper):
                 * judge by the output. */
                status = 0;
                break;
        }
        pid = -1;
        sbuf_putc(&out, '\0');
        out.len--;
        sbuf_putc(&errout, '\0');
        errout.len--;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                plugin_error(k, type, status, out.buf, errout.buf, e);
                goto out;
        }
        *result = sbuf_steal(&out);
        ret = 0;
out:
        if (pid > 0)
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        for (int i = 0; i < 2; i++) {
                if (in[i] >= 0)
                        close(in[i]);
                if (outp[i] >= 0)
                        close(outp[i]);
                if (errp[i] >= 0)
                        close(errp[i]);
        }
        sbuf_free(&out);
        sbuf_free(&errout);
        return ret;
}

/* ---------- plugin config with name, cniVersion, runtimeConfig, prevResult ---------- */

static char *plugin_stdin(const struct cni_conf *conf, yajl_val plugin, yajl_val rc, const char *prev)
{
        struct sbuf b = {0};
        sbuf_puts(&b, "{\"cniVersion\":");
        json_quote(&b, conf->version);
        sbuf_puts(&b, ",\"name\":");
        json_quote(&b, conf->name);

        /* runtimeConfig: only what the plugin declared in "capabilities". */
        struct sbuf r = {0};
        yajl_val caps = json_get(plugin, "capabilities");
        if (caps && YAJL_IS_OBJECT(caps)) {
                for (size_t i = 0; i < caps->u.object.len; i++) {
                        yajl_val v = json_get(rc, caps->u.object.keys[i]);
                        if (!YAJL_IS_TRUE(caps->u.object.values[i]) || !v)
                                continue;
                        sbuf_putc(&r, r.len ? ',' : '{');
                        json_quote(&r, caps->u.object.keys[i]);
                        sbuf_putc(&r, ':');
                        json_emit(&r, v);
                }
        }
        for (size_t i = 0; i < plugin->u.object.len; i++) {
                const char *key = plugin->u.object.keys[i];
                if (!strcmp(key, "cniVersion") || !strcmp(key, "name") || !strcmp(key, "prevResult") ||
                    (!strcmp(key, "runtimeConfig") && r.len))
                        continue;
                sbuf_putc(&b, ',');
                json_quote(&b, key);
                sbuf_putc(&b, ':');
                json_emit(&b, plugin->u.object.values[i]);
        }
        if (r.len) {
                sbuf_puts(&b, ",\"runtimeConfig\":");
                sbuf_puts(&b, r.buf);
                sbuf_putc(&b, '}');
        }
        sbuf_free(&r);
        if (prev && prev[0]) {
                sbuf_puts(&b, ",\"prevResult\":");
                sbuf_puts(&b, prev);
        }
        sbuf_putc(&b, '}');
        return sbuf_steal(&b);
}

/* All the runtime data we could give, as one JSON object; plugins get the
 * parts named in their capabilities. */
static void strv_json(struct sbuf *b, char **v)
{
        sbuf_putc(b, '[');
        for (size_t i = 0; v && v[i]; i++) {
                if (i)
                        sbuf_putc(b, ',');
                json_quote(b, v[i]);
        }
        sbuf_putc(b, ']');
}

static char *runtime_config_json(const struct net_cni_args *a)
{
        struct sbuf b = {0};
        sbuf_putc(&b, '{');
        bool any = false;
        if (a->n_port_mappings) {
                sbuf_puts(&b, "\"portMappings\":[");
                for (size_t i = 0; i < a->n_port_mappings; i++) {
                        const struct net_port_mapping *m = &a->port_mappings[i];
                        sbuf_printf(&b, "%s{\"hostPort\":%u,\"containerPort\":%u,\"protocol\":\"%s\"",
                                    i ? "," : "", m->host_port, m->container_port, net_proto_name(m->proto));
                        if (m->host_ip && m->host_ip[0]) {
                                sbuf_puts(&b, ",\"hostIP\":");
                                json_quote(&b, m->host_ip);
                        }
                        sbuf_putc(&b, '}');
                }
                sbuf_putc(&b, ']');
                any = true;
        }
        if (a->bandwidth && (a->bandwidth->ingress_rate || a->bandwidth->egress_rate)) {
                const struct net_bandwidth *w = a->bandwidth;
                sbuf_printf(&b,
                            "%s\"bandwidth\":{\"ingressRate\":%llu,\"ingressBurst\":%llu,\"egressRate\":%llu,"
                            "\"egressBurst\":%llu}",
                            any ? "," : "", (unsigned long long)w->ingress_rate,
                            (unsigned long long)w->ingress_burst, (unsigned long long)w->egress_rate,
                            (unsigned long long)w->egress_burst);
                any = true;
        }
        if (a->pod_cidr && a->pod_cidr[0]) {
                sbuf_printf(&b, "%s\"ipRanges\":[[{\"subnet\":", any ? "," : "");
                json_quote(&b, a->pod_cidr);
                sbuf_puts(&b, "}]]");
                any = true;
        }
        if (a->dns && (a->dns->servers || a->dns->searches || a->dns->options)) {
                sbuf_printf(&b, "%s\"dns\":{\"servers\":", any ? "," : "");
                strv_json(&b, a->dns->servers);
                sbuf_puts(&b, ",\"searches\":");
                strv_json(&b, a->dns->searches);
                sbuf_puts(&b, ",\"options\":");
                strv_json(&b, a->dns->options);
                sbuf_putc(&b, '}');
        }
        sbuf_putc(&b, '}');
        return sbuf_steal(&b);
}

/* ---------- the cache ---------- */

struct cached {
        struct cni_conf *conf;
        yajl_val tree;
        yajl_val rc;       /* runtimeConfig data */
        char *result;      /* JSON text or NULL */
        const char *netns; /* as given at ADD */
        const char *k8s_namespace, *k8s_name, *k8s_uid, *ifname;
};

static void cached_free(struct cached *k)
{
        cni_conf_free(k->conf);
        if (k->tree)
                yajl_tree_free(k->tree);
        free(k->result);
        memset(k, 0, sizeof(*k));
}

static int check_pod_id(const char *id, struct err *e)
{
        if (!id || !id[0] || strchr(id, '/') || id[0] == '.' || strlen(id) > 200)
                return err_set(e, ERR_INVALID, "invalid pod id for CNI: %s", id ? id : "(null)");
        return 0;
}

static char *cache_path(struct net_cni *c, const char *pod_id)
{
        return xasprintf("%s/%s.json", c->cache_dir, pod_id);
}

/* The cache is written without fsync (file_replace): it serves DEL after a
 * restart of corrald, which the page cache survives. After a power loss
 * the pinned namespaces (on tmpfs) are gone and DEL with the current
 * config releases the pod's addresses by its id all the same, while two
 * fsyncs per write cost more than the whole native ADD. */
static int cache_write(struct net_cni *c, const struct net_cni_args *a, const struct cni_conf *conf,
                       const char *rc, const char *result, struct err *e)
{
        struct sbuf b = {0};
        sbuf_puts(&b, "{\"kind\":\"" CACHE_KIND "\",\"podId\":");
        json_quote(&b, a->pod_id);
        sbuf_puts(&b, ",\"ifName\":");
        json_quote(&b, a->ifname ? a->ifname : "eth0");
        sbuf_puts(&b, ",\"netns\":");
        json_quote(&b, a->netns);
        sbuf_puts(&b, ",\"k8sNamespace\":");
        json_quote(&b, a->k8s_namespace);
        sbuf_puts(&b, ",\"k8sName\":");
        json_quote(&b, a->k8s_name);
        sbuf_puts(&b, ",\"k8sUid\":");
        json_quote(&b, a->k8s_uid);
        sbuf_puts(&b, ",\"confFile\":");
        json_quote(&b, conf->file);
        sbuf_puts(&b, ",\"config\":");
        sbuf_puts(&b, conf->json);
        sbuf_puts(&b, ",\"runtimeConfig\":");
        sbuf_puts(&b, rc);
        sbuf_puts(&b, ",\"result\":");
        sbuf_puts(&b, result && result[0] ? result : "null");
        sbuf_puts(&b, "}\n");
        cleanup_free char *path = cache_path(c, a->pod_id);
        int ret = file_replace(path, b.buf, b.len, 0600, e);
        sbuf_free(&b);
        return ret;
}

/* 1 with *k filled, 0 when nothing is cached. */
static int cache_read(struct net_cni *c, const char *pod_id, struct cached *k, struct err *e)
{
        cleanup_free char *path = cache_path(c, pod_id);
        cleanup_free char *buf = NULL;
        size_t len;
        struct err ie = ERR_INIT;

        memset(k, 0, sizeof(*k));
        if (file_read_all(path, &buf, &len, 16 << 20, &ie) < 0) {
                if (ie.errnum == ENOENT) {
                        err_clear(&ie);
                        return 0;
                }
                err_move(e, &ie);
                return -1;
        }
        k->tree = json_parse(buf, len, path, e);
        if (!k->tree)
                return -1;
        const char *kind = json_get_str(k->tree, "kind");
        yajl_val conf = json_get(k->tree, "config");
        if (!kind || strcmp(kind, CACHE_KIND) || !conf || !YAJL_IS_OBJECT(conf)) {
                cached_free(k);
                return err_set(e, ERR_DATA_LOSS, "%s: not a corral CNI cache entry", path);
        }
        struct sbuf b = {0};
        json_emit(&b, conf);
        const char *file = json_get_str(k->tree, "confFile");
        int r = cni_conf_parse(b.buf, b.len, file ? file : path, &k->conf, e);
        sbuf_free(&b);
        if (r < 0) {
                cached_free(k);
                return -1;
        }
        k->rc = json_get(k->tree, "runtimeConfig");
        yajl_val res = json_get(k->tree, "result");
        if (res && YAJL_IS_OBJECT(res)) {
                struct sbuf rb = {0};
                json_emit(&rb, res);
                k->result = sbuf_steal(&rb);
        }
        k->netns = json_get_str(k->tree, "netns");
        k->k8s_namespace = json_get_str(k->tree, "k8sNamespace");
        k->k8s_name = json_get_str(k->tree, "k8sName");
        k->k8s_uid = json_get_str(k->tree, "k8sUid");
        k->ifname = json_get_str(k->tree, "ifName");
        return 1;
}

/* ---------- chains ---------- */

static int cni_args(const char *ns, const char *name, const char *uid, const char *pod_id, char **out,
                    struct err *e)
{
        const char *vals[] = {ns, name, pod_id, uid};
        const char *keys[] = {"K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID",
                              "K8S_POD_UID"};
        struct sbuf b = {0};
        sbuf_puts(&b, "IgnoreUnknown=1");
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
                if (!vals[i] || !vals[i][0])
                        continue;
                if (strpbrk(vals[i], ";=")) {
                        sbuf_free(&b);
                        return err_set(e, ERR_INVALID, "CNI arg %s=%s contains ';' or '='", keys[i], vals[i]);
                }
                sbuf_printf(&b, ";%s=%s", keys[i], vals[i]);
        }
        *out = sbuf_steal(&b);
        return 0;
}

/* ADD: forward, each plugin's result is the next one's prevResult.
 * DEL: reverse; CHECK: forward; both with the cached result as prevResult. */
static int run_chain(struct net_cni *c, const struct call *k, const struct cni_conf *conf, yajl_val rc,
                     const char *prev_in, char **result, struct err *e)
{
        bool add = !strcmp(k->cmd, "ADD"), del = !strcmp(k->cmd, "DEL");
        size_t n = conf->plugins->u.array.len;
        cleanup_free char *prev = xstrdup(prev_in);

        for (size_t j = 0; j < n; j++) {
                yajl_val p = conf->plugins->u.array.values[del ? n - 1 - j : j];
                const char *type = json_get_str(p, "type");
                cleanup_free char *in = plugin_stdin(conf, p, rc, add ? prev : prev_in);
                cleanup_free char *out = NULL;
                if (exec_plugin(c, k, type, in, &out, e) < 0)
                        return -1;
                if (add) {
                        if (!out[0]) /* a chained plugin with nothing to say passes the result on */
                                continue;
                        struct err pe = ERR_INIT;
                        yajl_val t = json_parse(out, strlen(out), "plugin result", &pe);
                        if (!t) {
                                err_move(e, &pe);
                                return err_wrap(e, "plugin %s ADD (network %s, pod %s)", type, conf->name,
                                                k->pod_id);
                        }
                        yajl_tree_free(t);
                        free(prev);
                        prev = steal_ptr(&out);
                }
        }
        if (result)
                *result = steal_ptr(&prev);
        return 0;
}

static const char *live_netns(const char *p)
{
        /* A netns that is gone is passed as "" so plugins skip it (spec). */
        return p && net_ns_is_pinned(p) ? p : "";
}

int net_cni_add(struct net_cni *c, const struct net_cni_args *a, struct net_cni_result *out, struct err *e)
{
        struct cni_conf *conf = NULL;
        cleanup_free char *args = NULL, *rc_json = NULL, *result = NULL;
        yajl_val rc = NULL;
        int ret = -1, done = 0;

        memset(out, 0, sizeof(*out));
        if (check_pod_id(a->pod_id, e) < 0)
                return -1;
        if (!a->netns || !net_ns_is_pinned(a->netns))
                return err_set(e, ERR_PRECONDITION, "CNI ADD for pod %s: netns %s is not a namespace",
                               a->pod_id, a->netns ? a->netns : "(none)");
        if (cni_conf_load_dir(c->conf_dir, &conf, e) < 0)
                return err_wrap(e, "CNI ADD for pod %s", a->pod_id);
        if (cni_args(a->k8s_namespace, a->k8s_name, a->k8s_uid, a->pod_id, &args, e) < 0)
                goto out;
        rc_json = runtime_config_json(a);
        rc = json_parse(rc_json, strlen(rc_json), "runtimeConfig", e);
        if (!rc)
                goto out;
        /* Cached before the first plugin runs: a crash in the middle still
         * leaves what DEL needs. */
        if (cache_write(c, a, conf, rc_json, NULL, e) < 0)
                goto out;

        struct call k = {"ADD", a->pod_id, a->netns, a->ifname ? a->ifname : "eth0", args, conf->name};
        done = c->native ? native_add(conf, a, k.ifname, &result, e) : 0;
        if (done < 0) { /* it left nothing behind */
                cleanup_free char *path = cache_path(c, a->pod_id);
                (void)unlink(path);
                goto out;
        }
        if (!done && run_chain(c, &k, conf, rc, NULL, &result, e) < 0) {
                /* The spec: a failed ADD is followed by DEL. Nothing stays. */
                struct call d = k;
                d.cmd = "DEL";
                if (run_chain(c, &d, conf, rc, NULL, NULL, NULL) == 0) {
                        cleanup_free char *path = cache_path(c, a->pod_id);
                        (void)unlink(path);
                }
                goto out;
        }
        if (!result || !result[0]) {
                err_set(e, ERR_INTERNAL, "CNI ADD for pod %s: network %s returned no result", a->pod_id,
                        conf->name);
                goto undo;
        }
        if (net_cni_result_parse(result, strlen(result), out, e) < 0) {
                err_wrap(e, "CNI ADD for pod %s", a->pod_id);
                goto undo;
        }
        if (cache_write(c, a, conf, rc_json, result, e) < 0) {
                net_cni_result_free(out);
                goto undo;
        }
        ret = 0;
        goto out;
undo : {
        struct call d = k;
        d.cmd = "DEL";
        if (done ? native_del(conf, a, a->netns, k.ifname, result, NULL, NULL) > 0
                 : run_chain(c, &d, conf, rc, result, NULL, NULL) == 0) {
                cleanup_free char *path = cache_path(c, a->pod_id);
                (void)unlink(path);
        }
}
out:
        if (rc)
                yajl_tree_free(rc);
        cni_conf_free(conf);
        return ret;
}

int net_cni_del(struct net_cni *c, const struct net_cni_args *a, struct err *e)
{
        struct cached k = {0};
        struct cni_conf *cur = NULL;
        cleanup_free char *args = NULL;
        yajl_val rc_own = NULL;
        int ret = -1;

        if (check_pod_id(a->pod_id, e) < 0)
                return -1;
        cleanup_free char *path = NULL; /* before any goto (clang: no jumps into its scope) */
        int r = cache_read(c, a->pod_id, &k, e);
        if (r < 0)
                return err_wrap(e, "CNI DEL for pod %s", a->pod_id);
        const struct cni_conf *conf = k.conf;
        yajl_val rc = k.rc;
        if (r == 0) {
                /* Nothing cached (an ADD that never ran, or a cache lost):
                 * DEL with the current config, as the spec asks. */
                struct err ie = ERR_INIT;
                if (cni_conf_load_dir(c->conf_dir, &cur, &ie) < 0) {
                        err_clear(&ie);
                        return 0; /* no config, no cache: nothing to undo */
                }
                conf = cur;
                cleanup_free char *rc_json = runtime_config_json(a);
                rc = rc_own = json_parse(rc_json, strlen(rc_json), "runtimeConfig", e);
                if (!rc)
                        goto out;
        }
        if (cni_args(a->k8s_namespace ? a->k8s_namespace : k.k8s_namespace,
                     a->k8s_name ? a->k8s_name : k.k8s_name, a->k8s_uid ? a->k8s_uid : k.k8s_uid, a->pod_id,
                     &args, e) < 0)
                goto out;
        const char *ifname = a->ifname ? a->ifname : k.ifname ? k.ifname : "eth0";
        struct call call = {"DEL",  a->pod_id, live_netns(a->netns ? a->netns : k.netns),
                            ifname, args,      conf->name};
        path = cache_path(c, a->pod_id);
        int done = c->native ? native_del(conf, a, call.netns, ifname, k.result, path, e) : 0;
        if (done < 0 || (!done && run_chain(c, &call, conf, rc, k.result, NULL, e) < 0)) {
                /* The cache stays so a retry can finish the job. */
                goto out;
        }
        if (done == 2) { /* the deferred job removes the cache when it is done */
                ret = 0;
                goto out;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
                err_make(e, errno, "remove %s", path);
                goto out;
        }
        ret = 0;
out:
        if (rc_own)
                yajl_tree_free(rc_own);
        cni_conf_free(cur);
        cached_free(&k);
        return ret;
}

int net_cni_settle(struct net_cni *c, const char *pod_id)
{
        native_defer_wait(pod_id);
        if (check_pod_id(pod_id, NULL) < 0)
                return 0;
        cleanup_free char *path = cache_path(c, pod_id);
        return access(path, F_OK) == 0;
}

static int version_ge_040(const char *v)
{
        int maj = 0, min = 0;
        if (sscanf(v, "%d.%d", &maj, &min) < 1)
                return 0;
        return maj > 0 || min >= 4;
}

int net_cni_check(struct net_cni *c, const struct net_cni_args *a, struct err *e)
{
        struct cached k = {0};
        cleanup_free char *args = NULL;
        int ret = -1;

        if (check_pod_id(a->pod_id, e) < 0)
                return -1;
        int r = cache_read(c, a->pod_id, &k, e);
        if (r < 0)
                return err_wrap(e, "CNI CHECK for pod %s", a->pod_id);
        if (r == 0 || !k.result)
                return err_set(e, ERR_NOT_FOUND, "CNI CHECK for pod %s: no network attachment recorded",
                               a->pod_id);
        if (k.conf->disable_check || !version_ge_040(k.conf->version)) {
                ret = 0;
                goto out;
        }
        const char *netns = a->netns ? a->netns : k.netns;
        if (!netns || !net_ns_is_pinned(netns)) {
                err_set(e, ERR_PRECONDITION, "CNI CHECK for pod %s: netns %s is gone", a->pod_id,
                        netns ? netns : "(none)");
                goto out;
        }
        if (cni_args(k.k8s_namespace, k.k8s_name, k.k8s_uid, a->pod_id, &args, e) < 0)
                goto out;
        struct call call = {"CHECK", a->pod_id, netns, k.ifname ? k.ifname : "eth0", args, k.conf->name};
        ret = run_chain(c, &call, k.conf, k.rc, k.result, NULL, e);
out:
        cached_free(&k);
        return ret;
}

int net_cni_cached_result(struct net_cni *c, const char *pod_id, struct net_cni_result *out, struct err *e)
{
        struct cached k = {0};
        memset(out, 0, sizeof(*out));
        if (check_pod_id(pod_id, e) < 0)
                return -1;
        int r = cache_read(c, pod_id, &k, e);
        if (r < 0)
                return -1;
        if (r == 0 || !k.result) {
                cached_free(&k);
                return err_set(e, ERR_NOT_FOUND, "no CNI result cached for pod %s", pod_id);
        }
        r = net_cni_result_parse(k.result, strlen(k.result), out, e);
        cached_free(&k);
        return r;
}
