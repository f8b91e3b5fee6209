/* Thin helpers over yajl's tree API. */
#include <string.h>
#include <yajl/yajl_tree.h>

#include "util/util.h"

yajl_val json_parse(const char *buf, size_t len, const char *what, struct err *e)
{
        /* yajl_tree_parse wants a NUL-terminated string. */
        cleanup_free char *copy = xmalloc(len + 1);
        memcpy(copy, buf, len);
        copy[len] = '\0';
        if (strlen(copy) != len) {
                err_set(e, ERR_INVALID, "%s: invalid JSON: embedded NUL byte", what);
                return NULL;
        }
        char errbuf[512] = "";
        yajl_val v = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
        if (v == NULL) {
                /* yajl's message spans lines; keep the first for a one-line error. */
                char *nl = strchr(errbuf, '\n');
                if (nl)
                        *nl = '\0';
                err_set(e, ERR_INVALID, "%s: invalid JSON: %s", what, errbuf[0] ? errbuf : "parse error");
        }
        return v;
}

yajl_val json_get(yajl_val obj, const char *key)
{
        if (obj == NULL || !YAJL_IS_OBJECT(obj))
                return NULL;
        for (size_t i = 0; i < obj->u.object.len; i++)
                if (strcmp(obj->u.object.keys[i], key) == 0)
                        return obj->u.object.values[i];
        return NULL;
}

const char *json_get_str(yajl_val obj, const char *key)
{
        yajl_val v = json_get(obj, key);
        return v && YAJL_IS_STRING(v) ? v->u.string : NULL;
}

bool json_get_int(yajl_val obj, const char *key, int64_t *out)
{
        yajl_val v = json_get(obj, key);
        if (v == NULL || !YAJL_IS_INTEGER(v))
                return false;
        *out = YAJL_GET_INTEGER(v);
        return true;
}

bool json_get_bool(yajl_val obj, const char *key, bool *out)
{
        yajl_val v = json_get(obj, key);
        if (v == NULL || !(YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)))
                return false;
        *out = YAJL_IS_TRUE(v);
        return true;
}

void json_quote_n(struct sbuf *b, const char *s, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        sbuf_putc(b, '"');
        size_t run = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x20 && c != '"' && c != '\\')
                        continue;
                sbuf_append(b, s + run, i - run);
                run = i + 1;
                switch (c) {
                case '"':
                        sbuf_puts(b, "\\\"");
                        break;
                case '\\':
                        sbuf_puts(b, "\\\\");
                        break;
                case '\n':
                        sbuf_puts(b, "\\n");
                        break;
                case '\r':
                        sbuf_puts(b, "\\r");
                        break;
                case '\t':
                        sbuf_puts(b, "\\t");
                        break;
                default: {
                        char u[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
                        sbuf_puts(b, u);
                }
                }
        }
        sbuf_append(b, s + run, n - run);
        sbuf_putc(b, '"');
}

void json_quote(struct sbuf *b, const char *s)
{
        if (s == NULL) {
                sbuf_puts(b, "null");
                return;
        }
        json_quote_n(b, s, strlen(s));
}

/* A yajl tree back to JSON text, for handing documents on with fields
 * added or changed (CNI plugin configs, image configs). */
void json_emit(struct sbuf *b, yajl_val v)
{
        if (!v || YAJL_IS_NULL(v)) {
                sbuf_puts(b, "null");
        } else if (YAJL_IS_STRING(v)) {
                json_quote(b, v->u.string);
        } else if (YAJL_IS_NUMBER(v)) {
                /* yajl keeps the number's text: no precision is lost. */
                sbuf_puts(b, v->u.number.r);
        } else if (YAJL_IS_TRUE(v)) {
                sbuf_puts(b, "true");
        } else if (YAJL_IS_FALSE(v)) {
                sbuf_puts(b, "false");
        } else if (YAJL_IS_ARRAY(v)) {
                sbuf_putc(b, '[');
                for (size_t i = 0; i < v->u.array.len; i++) {
                        if (i)
                                sbuf_putc(b, ',');
                        json_emit(b, v->u.array.values[i]);
                }
                sbuf_putc(b, ']');
        } else if (YAJL_IS_OBJECT(v)) {
                sbuf_putc(b, '{');
                for (size_t i = 0; i < v->u.object.len; i++) {
                        if (i)
                                sbuf_putc(b, ',');
                        json_quote(b, v->u.object.keys[i]);
                        sbuf_putc(b, ':');
                        json_emit(b, v->u.object.values[i]);
                }
                sbuf_putc(b, '}');
        }
}
