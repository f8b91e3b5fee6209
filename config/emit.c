/* config/emit.c: the effective configuration as JSON, in the same shape
 * as the file (Status verbose shows it; loading it back is a no-op). */
#include <string.h>

#include "config/config-internal.h"

static void emit_object(struct sbuf *b, const struct cfg_field *fields, const void *base,
                        const struct cfg *c);
static void emit_object_except(struct sbuf *b, const struct cfg_field *fields, const void *base,
                               const struct cfg *c, const char *skip);

static void emit_strv(struct sbuf *b, char *const *v)
{
        sbuf_putc(b, '[');
        for (size_t i = 0; v && v[i]; i++) {
                if (i)
                        sbuf_putc(b, ',');
                json_quote(b, v[i]);
        }
        sbuf_putc(b, ']');
}

static void emit_value(struct sbuf *b, const struct cfg_field *f, const void *base, const struct cfg *c)
{
        switch (f->type) {
        case FT_STR: {
                const char *s = *CFG_FIELD_CPTR(base, f, char *);
                json_quote(b, s ? s : "");
                break;
        }
        case FT_STRV:
                emit_strv(b, *CFG_FIELD_CPTR(base, f, char **));
                break;
        case FT_BOOL:
                sbuf_puts(b, *CFG_FIELD_CPTR(base, f, bool) ? "true" : "false");
                break;
        case FT_U32:
                sbuf_printf(b, "%u", *CFG_FIELD_CPTR(base, f, uint32_t));
                break;
        case FT_U64:
                sbuf_printf(b, "%llu", (unsigned long long)*CFG_FIELD_CPTR(base, f, uint64_t));
                break;
        case FT_ENUM: {
                int v = *CFG_FIELD_CPTR(base, f, int);
                size_t n = 0;
                while (f->names[n])
                        n++;
                json_quote(b, v >= 0 && (size_t)v < n ? f->names[v] : "");
                break;
        }
        case FT_OBJ:
                emit_object(b, f->sub, base, c);
                break;
        case FT_REGISTRIES:
                sbuf_putc(b, '{');
                for (size_t i = 0; i < c->n_registries; i++) {
                        if (i)
                                sbuf_putc(b, ',');
                        json_quote(b, c->registries[i].host);
                        sbuf_putc(b, ':');
                        emit_object(b, f->sub, &c->registries[i], c);
                }
                sbuf_putc(b, '}');
                break;
        case FT_RUNTIMES:
                sbuf_putc(b, '{');
                for (size_t i = 0; i < c->n_runtimes; i++) {
                        if (i)
                                sbuf_putc(b, ',');
                        json_quote(b, c->runtimes[i].name);
                        sbuf_putc(b, ':');
                        /* namespace handlers carry no VM settings */
                        if (c->runtimes[i].type == CFG_RUNTIME_NAMESPACE) {
                                sbuf_puts(b, "{\"type\":\"namespace\"}");
                        } else if (c->runtimes[i].type == CFG_RUNTIME_OCI) {
                                /* oci handlers carry only their binary */
                                sbuf_puts(b, "{\"type\":\"oci\",\"runtime_path\":");
                                json_quote(b, c->runtimes[i].runtime_path);
                                sbuf_putc(b, '}');
                        } else {
                                /* vm handlers: every key but the oci one */
                                emit_object_except(b, f->sub, &c->runtimes[i], c, "runtime_path");
                        }
                }
                sbuf_putc(b, '}');
                break;
        }
}

static void emit_object_except(struct sbuf *b, const struct cfg_field *fields, const void *base,
                               const struct cfg *c, const char *skip)
{
        sbuf_putc(b, '{');
        bool first = true;
        for (const struct cfg_field *f = fields; f->key; f++) {
                if (skip && strcmp(f->key, skip) == 0)
                        continue;
                if (!first)
                        sbuf_putc(b, ',');
                first = false;
                json_quote(b, f->key);
                sbuf_putc(b, ':');
                emit_value(b, f, base, c);
        }
        sbuf_putc(b, '}');
}

static void emit_object(struct sbuf *b, const struct cfg_field *fields, const void *base, const struct cfg *c)
{
        emit_object_except(b, fields, base, c, NULL);
}

void cfg_to_json(const struct cfg *c, struct sbuf *out)
{
        emit_object(out, cfg_top_fields, c, c);
}
