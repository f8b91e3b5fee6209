/* The image config (OCI image-spec config.md / Docker image JSON) and chain
 * IDs. Input comes from a registry: types are checked, counts bounded. */
#include <openssl/evp.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "image/image.h"

#define MAX_ITEMS 100000

char *img_digest_hex(const unsigned char *md, unsigned int n)
{
        static const char hex[] = "0123456789abcdef";
        char *out = xmalloc(7 + 2 * n + 1);
        memcpy(out, "sha256:", 7);
        for (unsigned int i = 0; i < n; i++) {
                out[7 + 2 * i] = hex[md[i] >> 4];
                out[8 + 2 * i] = hex[md[i] & 15];
        }
        out[7 + 2 * n] = '\0';
        return out;
}

char *img_digest_of(const void *buf, size_t len)
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        if (!EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL))
                abort(); /* only fails on OOM */
        return img_digest_hex(md, mdlen);
}

char **img_chain_ids(char *const *diff_ids)
{
        char **out = xcalloc(1, sizeof(char *));
        for (size_t i = 0; diff_ids && diff_ids[i]; i++) {
                if (i == 0) {
                        strv_push(&out, diff_ids[0]);
                        continue;
                }
                cleanup_free char *s = xasprintf("%s %s", out[i - 1], diff_ids[i]);
                cleanup_free char *d = img_digest_of(s, strlen(s));
                strv_push(&out, d);
        }
        return out;
}

void img_config_clear(struct img_config *c)
{
        if (!c)
                return;
        free(c->os);
        free(c->architecture);
        free(c->variant);
        free(c->author);
        free(c->user);
        free(c->workdir);
        free(c->stop_signal);
        strv_free(c->env);
        strv_free(c->entrypoint);
        strv_free(c->cmd);
        strv_free(c->exposed_ports);
        strv_free(c->volumes);
        for (size_t i = 0; i < c->n_labels; i++) {
                free(c->labels[i].key);
                free(c->labels[i].value);
        }
        free(c->labels);
        strv_free(c->diff_ids);
        memset(c, 0, sizeof(*c));
}

static char **empty_strv(void)
{
        return xcalloc(1, sizeof(char *));
}

/* An array of strings; JSON null or absent -> *out = NULL (when nullable) or {}. */
static int str_array(yajl_val v, const char *what, bool nullable, char ***out, struct err *e)
{
        *out = NULL;
        if (!v || YAJL_IS_NULL(v)) {
                if (!nullable)
                        *out = empty_strv();
                return 0;
        }
        if (!YAJL_IS_ARRAY(v))
                return err_set(e, ERR_INVALID, "%s is not an array of strings", what);
        if (v->u.array.len > MAX_ITEMS)
                return err_set(e, ERR_INVALID, "%s has too many entries", what);
        char **r = empty_strv();
        for (size_t i = 0; i < v->u.array.len; i++) {
                yajl_val s = v->u.array.values[i];
                if (!YAJL_IS_STRING(s)) {
                        strv_free(r);
                        return err_set(e, ERR_INVALID, "%s[%zu] is not a string", what, i);
                }
                strv_push(&r, s->u.string);
        }
        *out = r;
        return 0;
}

/* Keys of an object such as ExposedPorts {"80/tcp": {}}. */
static int obj_keys(yajl_val v, const char *what, char ***out, struct err *e)
{
        *out = empty_strv();
        if (!v || YAJL_IS_NULL(v))
                return 0;
        if (!YAJL_IS_OBJECT(v))
                return err_set(e, ERR_INVALID, "%s is not an object", what);
        if (v->u.object.len > MAX_ITEMS)
                return err_set(e, ERR_INVALID, "%s has too many entries", what);
        for (size_t i = 0; i < v->u.object.len; i++)
                strv_push(out, v->u.object.keys[i]);
        return 0;
}

static const char *opt_str(yajl_val obj, const char *key)
{
        const char *s = json_get_str(obj, key);
        return s && *s ? s : NULL;
}

/* RFC 3339 "2024-05-06T07:08:09.123456789Z" or "+02:00" offsets. */
static int64_t parse_rfc3339(const char *s)
{
        struct tm tm = {0};
        const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!p)
                return 0;
        int64_t ns = 0;
        if (*p == '.') {
                int digits = 0;
                for (p++; *p >= '0' && *p <= '9'; p++) {
                        if (digits < 9) {
                                ns = ns * 10 + (*p - '0');
                                digits++;
                        }
                }
                for (; digits < 9; digits++)
                        ns *= 10;
        }
        int64_t off = 0;
        if (*p == '+' || *p == '-') {
                int hh = 0, mm = 0;
                if (sscanf(p + 1, "%2d:%2d", &hh, &mm) == 2)
                        off = (hh * 3600 + mm * 60) * (*p == '-' ? -1 : 1);
        }
        time_t t = timegm(&tm);
        if (t == (time_t)-1)
                return 0;
        return ((int64_t)t - off) * 1000000000LL + ns;
}

int img_config_parse(const char *buf, size_t len, struct img_config *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        yajl_val root = json_parse(buf, len, "image config", e);
        if (!root)
                return -1;
        int ret = -1;
        if (!YAJL_IS_OBJECT(root)) {
                err_set(e, ERR_INVALID, "image config is not a JSON object");
                goto out;
        }
        out->os = xstrdup(opt_str(root, "os"));
        out->architecture = xstrdup(opt_str(root, "architecture"));
        out->variant = xstrdup(opt_str(root, "variant"));
        out->author = xstrdup(opt_str(root, "author"));
        const char *created = json_get_str(root, "created");
        if (created)
                out->created_ns = parse_rfc3339(created);

        yajl_val cfg = json_get(root, "config");
        if (cfg && !YAJL_IS_NULL(cfg) && !YAJL_IS_OBJECT(cfg)) {
                err_set(e, ERR_INVALID, "image config: \"config\" is not an object");
                goto out;
        }
        out->user = xstrdup(opt_str(cfg, "User"));
        out->workdir = xstrdup(opt_str(cfg, "WorkingDir"));
        out->stop_signal = xstrdup(opt_str(cfg, "StopSignal"));
        if (str_array(json_get(cfg, "Env"), "config.Env", false, &out->env, e) < 0 ||
            str_array(json_get(cfg, "Entrypoint"), "config.Entrypoint", true, &out->entrypoint, e) < 0 ||
            str_array(json_get(cfg, "Cmd"), "config.Cmd", true, &out->cmd, e) < 0 ||
            obj_keys(json_get(cfg, "ExposedPorts"), "config.ExposedPorts", &out->exposed_ports, e) < 0 ||
            obj_keys(json_get(cfg, "Volumes"), "config.Volumes", &out->volumes, e) < 0)
                goto out;
        yajl_val labels = json_get(cfg, "Labels");
        if (labels && !YAJL_IS_NULL(labels)) {
                if (!YAJL_IS_OBJECT(labels) || labels->u.object.len > MAX_ITEMS) {
                        err_set(e, ERR_INVALID, "config.Labels is not an object of strings");
                        goto out;
                }
                out->labels = xcalloc(labels->u.object.len + 1, sizeof(*out->labels));
                for (size_t i = 0; i < labels->u.object.len; i++) {
                        yajl_val v = labels->u.object.values[i];
                        if (!YAJL_IS_STRING(v)) {
                                err_set(e, ERR_INVALID, "config.Labels[\"%s\"] is not a string",
                                        labels->u.object.keys[i]);
                                goto out;
                        }
                        out->labels[i].key = xstrdup(labels->u.object.keys[i]);
                        out->labels[i].value = xstrdup(v->u.string);
                        out->n_labels++;
                }
        }

        yajl_val rootfs = json_get(root, "rootfs");
        const char *type = json_get_str(rootfs, "type");
        if (!type || strcmp(type, "layers") != 0) {
                err_set(e, ERR_INVALID, "image config: rootfs.type is not \"layers\"");
                goto out;
        }
        if (str_array(json_get(rootfs, "diff_ids"), "rootfs.diff_ids", false, &out->diff_ids, e) < 0)
                goto out;
        for (size_t i = 0; out->diff_ids[i]; i++) {
                if (!img_digest_valid(out->diff_ids[i])) {
                        err_set(e, ERR_INVALID,
                                "image config: rootfs.diff_ids[%zu] \"%s\" is not a sha256 digest", i,
                                out->diff_ids[i]);
                        goto out;
                }
        }
        ret = 0;
out:
        yajl_tree_free(root);
        if (ret < 0)
                img_config_clear(out);
        return ret;
}
