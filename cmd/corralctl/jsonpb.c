/* JSON -> protobuf-c, driven by the descriptors: the reverse of pbjson.c,
 * for crictl's pod and container config files. Field names are accepted in
 * snake_case (the proto's) and lowerCamel (protojson's); enums by name or
 * number; 64-bit ints as numbers or strings; maps as objects; bytes as
 * base64 (but KeyValue.value as text: ctl_bytes_as_text). Unknown fields
 * are an error naming the path. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "cmd/corralctl/ctl.h"

/* "logDirectory" -> "log_directory" */
static char *snake(const char *s)
{
        struct sbuf b = {0};
        for (const char *p = s; *p; p++) {
                if (isupper((unsigned char)*p)) {
                        sbuf_putc(&b, '_');
                        sbuf_putc(&b, (char)tolower((unsigned char)*p));
                } else {
                        sbuf_putc(&b, *p);
                }
        }
        return sbuf_steal(&b);
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d, const char *key)
{
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
        if (f)
                return f;
        cleanup_free char *s = snake(key);
        f = protobuf_c_message_descriptor_get_field_by_name(d, s);
        if (f)
                return f;
        /* "namespace_" style names some generators use */
        for (unsigned i = 0; i < d->n_fields; i++)
                if (strcasecmp(d->fields[i].name, s) == 0)
                        return &d->fields[i];
        return NULL;
}

static bool is_map(const ProtobufCFieldDescriptor *f)
{
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED)
                return false;
        const ProtobufCMessageDescriptor *md = f->descriptor;
        return str_has_suffix(md->name, "Entry") && md->n_fields == 2 &&
               strcmp(md->fields[0].name, "key") == 0 && strcmp(md->fields[1].name, "value") == 0;
}

static size_t scalar_size(ProtobufCType t)
{
        switch (t) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
        case PROTOBUF_C_TYPE_FLOAT:
        case PROTOBUF_C_TYPE_ENUM:
                return 4;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
        case PROTOBUF_C_TYPE_DOUBLE:
                return 8;
        case PROTOBUF_C_TYPE_BOOL:
                return sizeof(protobuf_c_boolean);
        case PROTOBUF_C_TYPE_STRING:
        case PROTOBUF_C_TYPE_MESSAGE:
                return sizeof(void *);
        case PROTOBUF_C_TYPE_BYTES:
                return sizeof(ProtobufCBinaryData);
        }
        return 0;
}

static int fill_msg(yajl_val v, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out, const char *path,
                    struct err *e);

static bool num_of(yajl_val v, long long *ll, double *dbl)
{
        if (YAJL_IS_INTEGER(v)) {
                *ll = YAJL_GET_INTEGER(v);
                *dbl = (double)*ll;
                return true;
        }
        if (YAJL_IS_DOUBLE(v)) {
                *dbl = YAJL_GET_DOUBLE(v);
                *ll = (long long)*dbl;
                return true;
        }
        if (YAJL_IS_STRING(v)) {
                char *end;
                errno = 0;
                const char *s = YAJL_GET_STRING(v);
                *ll = strtoll(s, &end, 10);
                if (*end == '\0' && *s && errno == 0) {
                        *dbl = (double)*ll;
                        return true;
                }
                *dbl = strtod(s, &end);
                *ll = (long long)*dbl;
                return *end == '\0' && *s;
        }
        return false;
}

bool ctl_bytes_as_text(const ProtobufCFieldDescriptor *f)
{
        /* KeyValue.value became bytes in cri-api v0.37 (an env value need
         * not be UTF-8), but the container configs users and crictl write
         * say {"key": "A", "value": "b"}, in plain text: keep reading (and
         * printing) that, not base64. A JSON file cannot hold non-UTF-8
         * text anyway; other bytes fields stay base64, as in protojson. */
        const ProtobufCFieldDescriptor *kv_value =
                protobuf_c_message_descriptor_get_field_by_name(&runtime__v1__key_value__descriptor, "value");
        return f == kv_value && f->type == PROTOBUF_C_TYPE_BYTES;
}

/* One value into the storage at p. */
static int fill_value(yajl_val v, const ProtobufCFieldDescriptor *f, void *p, const char *path, struct err *e)
{
        long long ll;
        double dbl;
        switch (f->type) {
        case PROTOBUF_C_TYPE_STRING:
                if (!YAJL_IS_STRING(v))
                        return err_set(e, ERR_INVALID, "%s: want a string", path);
                *(char **)p = xstrdup(YAJL_GET_STRING(v));
                return 0;
        case PROTOBUF_C_TYPE_BOOL:
                if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
                        return err_set(e, ERR_INVALID, "%s: want true or false", path);
                *(protobuf_c_boolean *)p = YAJL_IS_TRUE(v);
                return 0;
        case PROTOBUF_C_TYPE_ENUM: {
                const ProtobufCEnumDescriptor *ed = f->descriptor;
                if (YAJL_IS_STRING(v)) {
                        const ProtobufCEnumValue *ev =
                                protobuf_c_enum_descriptor_get_value_by_name(ed, YAJL_GET_STRING(v));
                        if (ev == NULL)
                                return err_set(e, ERR_INVALID, "%s: %s is not a %s", path, YAJL_GET_STRING(v),
                                               ed->short_name);
                        *(int *)p = ev->value;
                        return 0;
                }
                if (!num_of(v, &ll, &dbl))
                        return err_set(e, ERR_INVALID, "%s: want a %s name or number", path, ed->short_name);
                *(int *)p = (int)ll;
                return 0;
        }
        case PROTOBUF_C_TYPE_MESSAGE:
                return fill_msg(v, f->descriptor, (ProtobufCMessage **)p, path, e);
        case PROTOBUF_C_TYPE_BYTES: {
                ProtobufCBinaryData *bd = p;
                if (ctl_bytes_as_text(f)) {
                        const char *t = YAJL_GET_STRING(v);
                        if (t == NULL)
                                return err_set(e, ERR_INVALID, "%s: want a string", path);
                        bd->len = strlen(t);
                        bd->data = (uint8_t *)xstrdup(t);
                        return 0;
                }
                if (!YAJL_IS_STRING(v))
                        return err_set(e, ERR_INVALID, "%s: want base64 text", path);
                size_t n;
                char *dec = base64_decode(YAJL_GET_STRING(v), &n);
                if (dec == NULL)
                        return err_set(e, ERR_INVALID, "%s: bad base64", path);
                bd->data = (uint8_t *)dec;
                bd->len = n;
                return 0;
        }
        case PROTOBUF_C_TYPE_FLOAT:
        case PROTOBUF_C_TYPE_DOUBLE:
                if (!num_of(v, &ll, &dbl))
                        return err_set(e, ERR_INVALID, "%s: want a number", path);
                if (f->type == PROTOBUF_C_TYPE_FLOAT)
                        *(float *)p = (float)dbl;
                else
                        *(double *)p = dbl;
                return 0;
        default:
                if (!num_of(v, &ll, &dbl))
                        return err_set(e, ERR_INVALID, "%s: want an integer", path);
                if (scalar_size(f->type) == 4)
                        *(int32_t *)p = (int32_t)ll;
                else
                        *(int64_t *)p = (int64_t)ll;
                return 0;
        }
}

static int fill_field(yajl_val v, const ProtobufCFieldDescriptor *f, ProtobufCMessage *m, const char *path,
                      struct err *e)
{
        char *base = (char *)m;
        if (YAJL_IS_NULL(v))
                return 0;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                size_t *np = (size_t *)(base + f->quantifier_offset);
                void **arrp = (void **)(base + f->offset);
                size_t es = scalar_size(f->type);
                if (is_map(f)) {
                        if (!YAJL_IS_OBJECT(v))
                                return err_set(e, ERR_INVALID, "%s: want an object", path);
                        size_t n = v->u.object.len;
                        void **arr = xcalloc(n ? n : 1, sizeof(void *));
                        *arrp = arr;
                        const ProtobufCMessageDescriptor *md = f->descriptor;
                        for (size_t i = 0; i < n; i++) {
                                ProtobufCMessage *kv = xmalloc(md->sizeof_message);
                                protobuf_c_message_init(md, kv);
                                arr[i] = kv;
                                *np = i + 1;
                                *(char **)((char *)kv + md->fields[0].offset) = xstrdup(v->u.object.keys[i]);
                                yajl_val val = v->u.object.values[i];
                                if (!YAJL_IS_STRING(val))
                                        return err_set(e, ERR_INVALID, "%s.%s: want a string", path,
                                                       v->u.object.keys[i]);
                                *(char **)((char *)kv + md->fields[1].offset) = xstrdup(YAJL_GET_STRING(val));
                        }
                        return 0;
                }
                if (!YAJL_IS_ARRAY(v))
                        return err_set(e, ERR_INVALID, "%s: want an array", path);
                size_t n = v->u.array.len;
                char *arr = xcalloc(n ? n : 1, es);
                *arrp = arr;
                for (size_t i = 0; i < n; i++) {
                        cleanup_free char *p = xasprintf("%s[%zu]", path, i);
                        *np = i + 1;
                        if (fill_value(v->u.array.values[i], f, arr + i * es, p, e) < 0)
                                return -1;
                }
                return 0;
        }
        if (fill_value(v, f, base + f->offset, path, e) < 0)
                return -1;
        if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
            f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
                *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
        return 0;
}

static int fill_msg(yajl_val v, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out, const char *path,
                    struct err *e)
{
        if (!YAJL_IS_OBJECT(v))
                return err_set(e, ERR_INVALID, "%s: want an object (%s)", *path ? path : "top level",
                               d->short_name);
        ProtobufCMessage *m = xmalloc(d->sizeof_message);
        protobuf_c_message_init(d, m);
        *out = m; /* owned by the caller even on error: freed as a whole */
        for (size_t i = 0; i < v->u.object.len; i++) {
                const char *key = v->u.object.keys[i];
                cleanup_free char *p = *path ? xasprintf("%s.%s", path, key) : xstrdup(key);
                const ProtobufCFieldDescriptor *f = find_field(d, key);
                if (f == NULL)
                        return err_set(e, ERR_INVALID, "%s: unknown field of %s", p, d->short_name);
                if (fill_field(v->u.object.values[i], f, m, p, e) < 0)
                        return -1;
        }
        return 0;
}

int ctl_json_to_pb(const char *buf, size_t len, const ProtobufCMessageDescriptor *desc, const char *what,
                   ProtobufCMessage **out, struct err *e)
{
        *out = NULL;
        yajl_val v = json_parse(buf, len, what, e);
        if (v == NULL)
                return -1;
        ProtobufCMessage *m = NULL;
        int r = fill_msg(v, desc, &m, "", e);
        yajl_tree_free(v);
        if (r < 0) {
                if (m)
                        protobuf_c_message_free_unpacked(m, NULL);
                return err_wrap(e, "%s", what);
        }
        *out = m;
        return 0;
}

int ctl_json_file_to_pb(const char *path, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
                        struct err *e)
{
        cleanup_free char *buf = NULL;
        size_t len = 0;
        if (file_read_all(path, &buf, &len, 16u << 20, e) < 0)
                return -1;
        return ctl_json_to_pb(buf, len, desc, path, out, e);
}
