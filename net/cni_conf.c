/* Finding the network configuration: the first valid file by name in the
 * conf dir (.conflist, .conf, .json), as libcni does; a single-plugin .conf
 * becomes a one-plugin list. And finding plugin binaries in the bin dirs. */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <yajl/yajl_tree.h>

#include "net/cni-internal.h"

void cni_conf_free(struct cni_conf *c)
{
        if (!c)
                return;
        free(c->file);
        free(c->json);
        if (c->tree)
                yajl_tree_free(c->tree);
        free(c);
}

int cni_conf_parse(const char *json, size_t len, const char *what, struct cni_conf **out, struct err *e)
{
        *out = NULL;
        yajl_val t = json_parse(json, len, what, e);
        if (!t)
                return -1;
        if (!YAJL_IS_OBJECT(t)) {
                yajl_tree_free(t);
                return err_set(e, ERR_INVALID, "%s: not a JSON object", what);
        }
        cleanup_free char *wrapped = NULL;
        if (!json_get(t, "plugins")) {
                /* A single-plugin .conf: wrap it as a list of one. */
                const char *v = json_get_str(t, "cniVersion"), *n = json_get_str(t, "name");
                struct sbuf b = {0};
                sbuf_puts(&b, "{\"cniVersion\":");
                json_quote(&b, v ? v : "");
                sbuf_puts(&b, ",\"name\":");
                json_quote(&b, n ? n : "");
                sbuf_puts(&b, ",\"plugins\":[");
                json_emit(&b, t);
                sbuf_puts(&b, "]}");
                yajl_tree_free(t);
                wrapped = sbuf_steal(&b);
                t = json_parse(wrapped, strlen(wrapped), what, e);
                if (!t)
                        return -1;
        }
        struct cni_conf *c = xzalloc(sizeof(*c));
        c->tree = t;
        c->name = json_get_str(t, "name");
        c->version = json_get_str(t, "cniVersion");
        c->plugins = json_get(t, "plugins");
        bool b;
        c->disable_check = json_get_bool(t, "disableCheck", &b) && b;
        c->json = wrapped ? steal_ptr(&wrapped) : xstrndup(json, len);
        c->file = xstrdup(what);
        if (!c->name || !c->name[0]) {
                cni_conf_free(c);
                return err_set(e, ERR_INVALID, "%s: no network name", what);
        }
        if (!c->version || !c->version[0]) {
                cni_conf_free(c);
                return err_set(e, ERR_INVALID, "%s: no cniVersion", what);
        }
        if (!YAJL_IS_ARRAY(c->plugins) || c->plugins->u.array.len == 0) {
                cni_conf_free(c);
                return err_set(e, ERR_INVALID, "%s: no plugins", what);
        }
        for (size_t i = 0; i < c->plugins->u.array.len; i++) {
                const char *type = json_get_str(c->plugins->u.array.values[i], "type");
                if (!type || !type[0] || strchr(type, '/') || !strcmp(type, ".") || !strcmp(type, "..")) {
                        cni_conf_free(c);
                        return err_set(e, ERR_INVALID, "%s: plugin %zu has no valid type", what, i);
                }
        }
        *out = c;
        return 0;
}

static bool conf_name_ok(const char *n)
{
        return n[0] != '.' &&
               (str_has_suffix(n, ".conflist") || str_has_suffix(n, ".conf") || str_has_suffix(n, ".json"));
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int cni_conf_load_dir(const char *dir, struct cni_conf **out, struct err *e)
{
        cleanup_strv char **names = NULL;
        cleanup_dir DIR *d = opendir(dir);
        struct dirent *de;

        *out = NULL;
        if (!d) {
                if (errno == ENOENT)
                        return err_set(e, ERR_NOT_FOUND, "no network config found in %s (directory missing)",
                                       dir);
                return err_make(e, errno, "open CNI conf dir %s", dir);
        }
        while ((de = readdir(d)))
                if (conf_name_ok(de->d_name))
                        strv_push(&names, de->d_name);
        size_t n = strv_len(names);
        if (n == 0)
                return err_set(e, ERR_NOT_FOUND, "no network config found in %s", dir);
        qsort(names, n, sizeof(char *), cmp_str);

        /* Invalid files are skipped; the first one's error is kept for the
         * message when none loads. */
        struct err first = ERR_INIT;
        for (size_t i = 0; i < n; i++) {
                cleanup_free char *path = path_join(dir, names[i]);
                cleanup_free char *buf = NULL;
                size_t len;
                struct err ie = ERR_INIT;
                struct stat st;
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (file_read_all(path, &buf, &len, 1 << 20, &ie) == 0 &&
                    cni_conf_parse(buf, len, path, out, &ie) == 0) {
                        err_clear(&first);
                        return 0;
                }
                if (!first.msg)
                        err_move(&first, &ie);
                else
                        err_clear(&ie);
        }
        err_set(e, ERR_NOT_FOUND, "no valid network config in %s: %s", dir, first.msg);
        err_clear(&first);
        return -1;
}

char *cni_find_plugin(char *const *bin_dirs, const char *type)
{
        for (size_t i = 0; bin_dirs && bin_dirs[i]; i++) {
                char *p = path_join(bin_dirs[i], type);
                struct stat st;
                if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0)
                        return p;
                free(p);
        }
        return NULL;
}
