/* config/parse.c: applying a JSON file over a struct cfg, with errors that
 * name the file, the position (bad JSON) or the full key path (bad keys). */
#include <string.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

#include "config/config-internal.h"

#define MAX_DEPTH 8

struct pctx {
        struct cfg *c;
        const char *what;
        struct err *e;
        char ***set;
        const char *segs[MAX_DEPTH];
        size_t depth;
};

static bool plain_segment(const char *s)
{
        if (!*s)
                return false;
        for (const char *p = s; *p; p++) {
                char ch = *p;
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                      ch == '_' || ch == '-'))
                        return false;
        }
        return true;
}

char *cfg_key_path(const char *const *segs, size_t n)
{
        struct sbuf b = {0};
        for (size_t i = 0; i < n; i++) {
                if (i)
                        sbuf_putc(&b, '.');
                if (plain_segment(segs[i]))
                        sbuf_puts(&b, segs[i]);
                else
                        json_quote(&b, segs[i]);
        }
        return sbuf_steal(&b);
}

size_t cfg_edit_distance(const char *a, const char *b)
{
        size_t n = strlen(a), m = strlen(b);
        if (n > 64 || m > 64)
                return 65;
        size_t d[65][65];
        for (size_t i = 0; i <= n; i++)
                d[i][0] = i;
        for (size_t j = 0; j <= m; j++)
                d[0][j] = j;
        for (size_t i = 1; i <= n; i++) {
                for (size_t j = 1; j <= m; j++) {
                        size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
                        size_t v = d[i - 1][j] + 1;
                        if (d[i][j - 1] + 1 < v)
                                v = d[i][j - 1] + 1;
                        if (d[i - 1][j - 1] + cost < v)
                                v = d[i - 1][j - 1] + cost;
                        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                            d[i - 2][j - 2] + 1 < v)
                                v = d[i - 2][j - 2] + 1;
                        d[i][j] = v;
                }
        }
        return d[n][m];
}

/* The one candidate within one edit of `s`, if any. */
static const char *suggest(const char *s, const char *const *cands, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (cfg_edit_distance(s, cands[i]) == 1)
                        return cands[i];
        return NULL;
}

static char *cur_path(struct pctx *x)
{
        return cfg_key_path(x->segs, x->depth);
}

static int fail(struct pctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct pctx *x, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        cleanup_free char *msg = xvasprintf(fmt, ap);
        va_end(ap);
        cleanup_free char *path = cur_path(x);
        return err_set(x->e, ERR_INVALID, "%s: %s: %s", x->what, path, msg);
}

static const char *type_name(yajl_val v)
{
        if (!v || YAJL_IS_NULL(v))
                return "null";
        if (YAJL_IS_STRING(v))
                return "a string";
        if (YAJL_IS_INTEGER(v))
                return "an integer";
        if (YAJL_IS_NUMBER(v))
                return "a number";
        if (YAJL_IS_OBJECT(v))
                return "an object";
        if (YAJL_IS_ARRAY(v))
                return "an array";
        return "a boolean";
}

static void mark_set(struct pctx *x)
{
        cleanup_free char *path = cur_path(x);
        strv_push(x->set, path);
}

static int push(struct pctx *x, const char *seg)
{
        if (x->depth == MAX_DEPTH)
                return fail(x, "nested too deep");
        x->segs[x->depth++] = seg;
        return 0;
}

static int apply_object(struct pctx *x, yajl_val obj, const struct cfg_field *fields, void *base);

static int apply_map(struct pctx *x, yajl_val obj, const struct cfg_field *f)
{
        if (!YAJL_IS_OBJECT(obj))
                return fail(x, "expected an object, got %s", type_name(obj));
        for (size_t i = 0; i < obj->u.object.len; i++) {
                const char *name = obj->u.object.keys[i];
                for (size_t j = 0; j < i; j++)
                        if (strcmp(obj->u.object.keys[j], name) == 0) {
                                push(x, name);
                                return fail(x, "duplicate key");
                        }
                if (push(x, name) < 0)
                        return -1;
                void *entry;
                if (f->type == FT_REGISTRIES) {
                        if (!*name || strchr(name, '/') || strchr(name, ' '))
                                return fail(x, "a registry key is host or host:port, without scheme or path");
                        entry = cfg_registry_get_or_add(x->c, name);
                } else {
                        entry = cfg_runtime_get_or_add(x->c, name);
                }
                mark_set(x);
                if (apply_object(x, obj->u.object.values[i], f->sub, entry) < 0)
                        return -1;
                x->depth--;
        }
        return 0;
}

static int apply_value(struct pctx *x, const struct cfg_field *f, yajl_val v, void *base)
{
        switch (f->type) {
        case FT_STR:
                if (!YAJL_IS_STRING(v))
                        return fail(x, "expected a string, got %s", type_name(v));
                free(*CFG_FIELD_PTR(base, f, char *));
                *CFG_FIELD_PTR(base, f, char *) = xstrdup(v->u.string);
                return 0;
        case FT_STRV: {
                if (!YAJL_IS_ARRAY(v))
                        return fail(x, "expected an array of strings, got %s", type_name(v));
                char **nv = xcalloc(v->u.array.len + 1, sizeof(char *));
                for (size_t i = 0; i < v->u.array.len; i++) {
                        yajl_val it = v->u.array.values[i];
                        if (!YAJL_IS_STRING(it)) {
                                strv_free(nv);
                                return fail(x, "element %zu: expected a string, got %s", i, type_name(it));
                        }
                        nv[i] = xstrdup(it->u.string);
                }
                strv_free(*CFG_FIELD_PTR(base, f, char **));
                *CFG_FIELD_PTR(base, f, char **) = nv;
                return 0;
        }
        case FT_BOOL:
                if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
                        return fail(x, "expected a boolean, got %s", type_name(v));
                *CFG_FIELD_PTR(base, f, bool) = YAJL_IS_TRUE(v);
                return 0;
        case FT_U32:
        case FT_U64: {
                if (!YAJL_IS_INTEGER(v)) {
                        if (YAJL_IS_NUMBER(v) && v->u.number.r)
                                return fail(x, "expected an integer, got %s", v->u.number.r);
                        return fail(x, "expected an integer, got %s", type_name(v));
                }
                long long n = v->u.number.i;
                if (n < 0 || (uint64_t)n < f->min || (uint64_t)n > f->max)
                        return fail(x, "%lld is out of range [%llu, %llu]", n, (unsigned long long)f->min,
                                    (unsigned long long)f->max);
                if (f->type == FT_U32)
                        *CFG_FIELD_PTR(base, f, uint32_t) = (uint32_t)n;
                else
                        *CFG_FIELD_PTR(base, f, uint64_t) = (uint64_t)n;
                return 0;
        }
        case FT_ENUM: {
                if (!YAJL_IS_STRING(v))
                        return fail(x, "expected a string, got %s", type_name(v));
                size_t n = 0;
                for (; f->names[n]; n++) {
                        if (strcmp(f->names[n], v->u.string) == 0) {
                                *CFG_FIELD_PTR(base, f, int) = (int)n;
                                return 0;
                        }
                }
                struct sbuf b = {0};
                for (size_t i = 0; i < n; i++)
                        sbuf_printf(&b, "%s%s", i ? "|" : "", f->names[i]);
                cleanup_free char *choices = sbuf_steal(&b);
                const char *s = suggest(v->u.string, (const char *const *)f->names, n);
                if (s)
                        return fail(x, "\"%s\" is not one of %s (did you mean \"%s\"?)", v->u.string, choices,
                                    s);
                return fail(x, "\"%s\" is not one of %s", v->u.string, choices);
        }
        case FT_OBJ:
                return apply_object(x, v, f->sub, base);
        case FT_REGISTRIES:
        case FT_RUNTIMES:
                return apply_map(x, v, f);
        }
        return fail(x, "internal: unknown field type");
}

static int apply_object(struct pctx *x, yajl_val obj, const struct cfg_field *fields, void *base)
{
        if (!YAJL_IS_OBJECT(obj))
                return fail(x, "expected an object, got %s", type_name(obj));
        for (size_t i = 0; i < obj->u.object.len; i++) {
                const char *key = obj->u.object.keys[i];
                for (size_t j = 0; j < i; j++)
                        if (strcmp(obj->u.object.keys[j], key) == 0) {
                                push(x, key);
                                return fail(x, "duplicate key");
                        }
                const struct cfg_field *f = NULL;
                size_t n = 0;
                const char *names[32];
                for (const struct cfg_field *it = fields; it->key; it++) {
                        if (n < ARRAY_SIZE(names))
                                names[n++] = it->key;
                        if (strcmp(it->key, key) == 0)
                                f = it;
                }
                if (push(x, key) < 0)
                        return -1;
                if (!f) {
                        cleanup_free char *path = cur_path(x);
                        const char *s = suggest(key, names, n);
                        if (s)
                                return err_set(x->e, ERR_INVALID, "%s: unknown key %s (did you mean \"%s\"?)",
                                               x->what, path, s);
                        return err_set(x->e, ERR_INVALID, "%s: unknown key %s", x->what, path);
                }
                if (f->type != FT_OBJ)
                        mark_set(x);
                if (apply_value(x, f, obj->u.object.values[i], base) < 0)
                        return -1;
                x->depth--;
        }
        return 0;
}

/* yajl's tree parser reports no position; a first pass with the event
 * parser finds where it stopped, for a file:line:column message. */
static int check_syntax(const char *buf, size_t len, const char *what, struct err *e)
{
        yajl_handle h = yajl_alloc(NULL, NULL, NULL);
        yajl_config(h, yajl_allow_comments, 1);
        yajl_status st = yajl_parse(h, (const unsigned char *)buf, len);
        /* yajl counts the offending byte as consumed */
        size_t at = yajl_get_bytes_consumed(h);
        at = at > 0 ? at - 1 : 0;
        if (st == yajl_status_ok) {
                st = yajl_complete_parse(h);
                at = len; /* premature end */
        }
        if (st == yajl_status_ok) {
                yajl_free(h);
                return 0;
        }
        if (at > len)
                at = len;
        unsigned char *ymsg = yajl_get_error(h, 0, (const unsigned char *)buf, len);
        cleanup_free char *msg = xstrdup((const char *)ymsg);
        yajl_free_error(h, ymsg);
        yajl_free(h);
        size_t n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
                msg[--n] = '\0';
        size_t line = 1, col = 1;
        for (size_t i = 0; i < at; i++) {
                if (buf[i] == '\n') {
                        line++;
                        col = 1;
                } else {
                        col++;
                }
        }
        return err_set(e, ERR_INVALID, "%s:%zu:%zu: invalid JSON: %s", what, line, col, msg);
}

int cfg_apply_json(struct cfg *c, const char *buf, size_t len, const char *what, char ***set, struct err *e)
{
        size_t i = 0;
        while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r'))
                i++;
        if (i == len)
                return 0; /* an empty file sets nothing */
        if (check_syntax(buf, len, what, e) < 0)
                return -1;
        cleanup_free char *copy = xstrndup(buf, len);
        char ebuf[256];
        yajl_val root = yajl_tree_parse(copy, ebuf, sizeof(ebuf));
        if (!root)
                return err_set(e, ERR_INVALID, "%s: invalid JSON: %s", what, ebuf);
        struct pctx x = {.c = c, .what = what, .e = e, .set = set};
        int ret;
        if (!YAJL_IS_OBJECT(root))
                ret = err_set(e, ERR_INVALID, "%s: the top level must be a JSON object, not %s", what,
                              type_name(root));
        else
                ret = apply_object(&x, root, cfg_top_fields, c);
        yajl_tree_free(root);
        return ret;
}
