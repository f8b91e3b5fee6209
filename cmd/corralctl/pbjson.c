/* Protobuf -> JSON driven by protobuf-c descriptors, for -o json and inspect. */
#include <ctype.h>
#include <string.h>

#include "cmd/corralctl/ctl.h"

static void indent_to(struct sbuf *b, int level)
{
        sbuf_putc(b, '\n');
        for (int i = 0; i < level; i++)
                sbuf_puts(b, "  ");
}

static void camel(struct sbuf *b, const char *name)
{
        sbuf_putc(b, '"');
        bool up = false;
        for (const char *p = name; *p; p++) {
                if (*p == '_') {
                        up = true;
                        continue;
                }
                sbuf_putc(b, up ? (char)toupper((unsigned char)*p) : *p);
                up = false;
        }
        sbuf_putc(b, '"');
}

static bool is_map_entry(const ProtobufCFieldDescriptor *f)
{
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED)
                return false;
        const ProtobufCMessageDescriptor *md = f->descriptor;
        return str_has_suffix(md->name, "Entry") && md->n_fields == 2 &&
               strcmp(md->fields[0].name, "key") == 0 && strcmp(md->fields[1].name, "value") == 0;
}

static void value(struct sbuf *b, const ProtobufCFieldDescriptor *f, const void *p, int level)
{
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
                sbuf_printf(b, "%d", *(const int32_t *)p);
                break;
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                sbuf_printf(b, "%u", *(const uint32_t *)p);
                break;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
                sbuf_printf(b, "\"%lld\"", (long long)*(const int64_t *)p);
                break;
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                sbuf_printf(b, "\"%llu\"", (unsigned long long)*(const uint64_t *)p);
                break;
        case PROTOBUF_C_TYPE_FLOAT:
                sbuf_printf(b, "%g", (double)*(const float *)p);
                break;
        case PROTOBUF_C_TYPE_DOUBLE:
                sbuf_printf(b, "%g", *(const double *)p);
                break;
        case PROTOBUF_C_TYPE_BOOL:
                sbuf_puts(b, *(const protobuf_c_boolean *)p ? "true" : "false");
                break;
        case PROTOBUF_C_TYPE_ENUM: {
                int v = *(const int *)p;
                const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
                if (ev)
                        sbuf_printf(b, "\"%s\"", ev->name);
                else
                        sbuf_printf(b, "%d", v);
                break;
        }
        case PROTOBUF_C_TYPE_STRING:
                json_quote(b, *(char *const *)p ? *(char *const *)p : "");
                break;
        case PROTOBUF_C_TYPE_BYTES: {
                const ProtobufCBinaryData *bd = p;
                if (ctl_bytes_as_text(f)) /* bytes that are not UTF-8 go out as they are */
                        json_quote_n(b, bd->len ? (const char *)bd->data : "", bd->len);
                else {
                        cleanup_free char *enc = base64_encode(bd->data, bd->len);
                        json_quote(b, enc);
                }
                break;
        }
        case PROTOBUF_C_TYPE_MESSAGE: {
                const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
                if (m == NULL)
                        sbuf_puts(b, "null");
                else
                        ctl_pb_to_json(m, b, level);
                break;
        }
        }
}

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
        case PROTOBUF_C_TYPE_DOUBLE:
                return 8;
        case PROTOBUF_C_TYPE_BOOL:
                return sizeof(protobuf_c_boolean);
        case PROTOBUF_C_TYPE_ENUM:
                return sizeof(int);
        case PROTOBUF_C_TYPE_STRING:
        case PROTOBUF_C_TYPE_MESSAGE:
                return sizeof(void *);
        case PROTOBUF_C_TYPE_BYTES:
                return sizeof(ProtobufCBinaryData);
        default:
                return 4;
        }
}

static bool is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
        switch (f->type) {
        case PROTOBUF_C_TYPE_STRING: {
                const char *s = *(char *const *)p;
                return s == NULL || *s == '\0';
        }
        case PROTOBUF_C_TYPE_MESSAGE:
                return *(void *const *)p == NULL;
        case PROTOBUF_C_TYPE_BYTES:
                return ((const ProtobufCBinaryData *)p)->len == 0;
        default: {
                static const uint8_t zero[8];
                return memcmp(p, zero, elem_size(f)) == 0;
        }
        }
}

void ctl_pb_to_json(const ProtobufCMessage *msg, struct sbuf *b, int level)
{
        const ProtobufCMessageDescriptor *d = msg->descriptor;
        sbuf_putc(b, '{');
        bool first = true;
        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];
                const char *base = (const char *)msg + f->offset;
                if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                        size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
                        if (n == 0)
                                continue;
                        if (!first)
                                sbuf_putc(b, ',');
                        first = false;
                        indent_to(b, level + 1);
                        camel(b, f->name);
                        sbuf_puts(b, ": ");
                        const char *arr = *(char *const *)base;
                        if (is_map_entry(f)) {
                                sbuf_putc(b, '{');
                                for (size_t k = 0; k < n; k++) {
                                        const ProtobufCMessage *ent = ((ProtobufCMessage *const *)arr)[k];
                                        const ProtobufCFieldDescriptor *kf = &ent->descriptor->fields[0];
                                        const ProtobufCFieldDescriptor *vf = &ent->descriptor->fields[1];
                                        if (k)
                                                sbuf_putc(b, ',');
                                        indent_to(b, level + 2);
                                        json_quote(b, *(char *const *)((const char *)ent + kf->offset));
                                        sbuf_puts(b, ": ");
                                        value(b, vf, (const char *)ent + vf->offset, level + 2);
                                }
                                indent_to(b, level + 1);
                                sbuf_putc(b, '}');
                                continue;
                        }
                        sbuf_putc(b, '[');
                        for (size_t k = 0; k < n; k++) {
                                if (k)
                                        sbuf_putc(b, ',');
                                indent_to(b, level + 2);
                                value(b, f, arr + k * elem_size(f), level + 2);
                        }
                        indent_to(b, level + 1);
                        sbuf_putc(b, ']');
                        continue;
                }
                if (is_default(f, base))
                        continue;
                if (!first)
                        sbuf_putc(b, ',');
                first = false;
                indent_to(b, level + 1);
                camel(b, f->name);
                sbuf_puts(b, ": ");
                value(b, f, base, level + 1);
        }
        if (!first)
                indent_to(b, level);
        sbuf_putc(b, '}');
}

void ctl_print_json(const ProtobufCMessage *msg)
{
        struct sbuf b = {0};
        ctl_pb_to_json(msg, &b, 0);
        sbuf_putc(&b, '\n');
        fwrite(b.buf, 1, b.len, stdout);
        sbuf_free(&b);
}
