/* Small conversions between CRI messages and what the store keeps. */
#include <string.h>
#include <yajl/yajl_tree.h>

#include "cri/cri-internal.h"
#include "store/store.h"

char *cri_map_to_json(size_t n, void *const *entries)
{
        if (n == 0)
                return NULL;
        struct sbuf b = {0};
        sbuf_putc(&b, '{');
        for (size_t i = 0; i < n; i++) {
                const struct cri_kv *kv = entries[i];
                if (i)
                        sbuf_putc(&b, ',');
                json_quote(&b, kv->key ? kv->key : "");
                sbuf_putc(&b, ':');
                json_quote(&b, kv->value ? kv->value : "");
        }
        sbuf_putc(&b, '}');
        return sbuf_steal(&b);
}

size_t cri_map_from_json(const char *json, const ProtobufCMessageDescriptor *entry_desc, void ***out)
{
        *out = NULL;
        if (json == NULL || *json == '\0')
                return 0;
        yajl_val v = json_parse(json, strlen(json), "map", NULL);
        if (v == NULL || !YAJL_IS_OBJECT(v)) {
                yajl_tree_free(v);
                return 0;
        }
        size_t n = v->u.object.len;
        void **arr = n ? xcalloc(n, sizeof(void *)) : NULL;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                yajl_val val = v->u.object.values[i];
                if (!YAJL_IS_STRING(val))
                        continue;
                struct cri_kv *kv = xmalloc(entry_desc->sizeof_message);
                protobuf_c_message_init(entry_desc, kv);
                kv->key = xstrdup(v->u.object.keys[i]);
                kv->value = xstrdup(val->u.string);
                arr[k++] = kv;
        }
        yajl_tree_free(v);
        if (k == 0) {
                free(arr);
                arr = NULL;
        }
        *out = arr;
        return k;
}

bool cri_labels_match(const char *labels_json, size_t n_sel, void *const *selector)
{
        if (n_sel == 0)
                return true;
        if (labels_json == NULL)
                return false;
        yajl_val v = json_parse(labels_json, strlen(labels_json), "labels", NULL);
        bool ok = v != NULL;
        for (size_t i = 0; ok && i < n_sel; i++) {
                const struct cri_kv *kv = selector[i];
                const char *have = json_get_str(v, kv->key);
                ok = have && strcmp(have, kv->value ? kv->value : "") == 0;
        }
        yajl_tree_free(v);
        return ok;
}

void cri_map_parse(const char *json, struct cri_map *out)
{
        memset(out, 0, sizeof(*out));
        if (json == NULL || *json == '\0')
                return;
        yajl_val v = json_parse(json, strlen(json), "map", NULL);
        if (v && YAJL_IS_OBJECT(v) && v->u.object.len) {
                out->keys = xcalloc(v->u.object.len, sizeof(char *));
                out->values = xcalloc(v->u.object.len, sizeof(char *));
                for (size_t i = 0; i < v->u.object.len; i++) {
                        if (!YAJL_IS_STRING(v->u.object.values[i]))
                                continue;
                        out->keys[out->n] = xstrdup(v->u.object.keys[i]);
                        out->values[out->n++] = xstrdup(v->u.object.values[i]->u.string);
                }
        }
        yajl_tree_free(v);
}

void cri_map_clear(struct cri_map *m)
{
        for (size_t i = 0; i < m->n; i++) {
                free(m->keys[i]);
                free(m->values[i]);
        }
        free(m->keys);
        free(m->values);
        memset(m, 0, sizeof(*m));
}

bool cri_map_match(const struct cri_map *m, size_t n_sel, void *const *selector)
{
        for (size_t i = 0; i < n_sel; i++) {
                const struct cri_kv *kv = selector[i];
                bool ok = false;
                for (size_t j = 0; j < m->n && !ok; j++)
                        ok = strcmp(m->keys[j], kv->key ? kv->key : "") == 0 &&
                             strcmp(m->values[j], kv->value ? kv->value : "") == 0;
                if (!ok)
                        return false;
        }
        return true;
}

static size_t varint(uint8_t out[10], uint64_t v)
{
        size_t k = 0;
        for (;; v >>= 7) {
                out[k++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
                if (v < 0x80)
                        return k;
        }
}

void cri_packed_make(const ProtobufCMessage *m, struct cri_packed *out)
{
        size_t len = protobuf_c_message_get_packed_size(m);
        out->buf = xmalloc(len + 10);
        size_t k = varint(out->buf, len);
        protobuf_c_message_pack(m, out->buf + k);
        out->len = k + len;
}

void cri_wire_varint(struct sbuf *b, uint32_t tag, uint64_t v)
{
        uint8_t buf[11] = {(uint8_t)(tag << 3 | PROTOBUF_C_WIRE_TYPE_VARINT)};
        sbuf_append(b, buf, 1 + varint(buf + 1, v));
}

static void wire_string(struct sbuf *b, uint32_t tag, const char *s, size_t len)
{
        uint8_t buf[11] = {(uint8_t)(tag << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)};
        sbuf_append(b, buf, 1 + varint(buf + 1, len));
        sbuf_append(b, s, len);
}

void cri_wire_map_entry(struct sbuf *b, uint32_t tag, const char *key, const char *value)
{
        struct sbuf entry = {0};
        wire_string(&entry, 1, key, strlen(key));
        wire_string(&entry, 2, value, strlen(value));
        wire_string(b, tag, entry.buf, entry.len);
        sbuf_free(&entry);
}

struct cri_packed cri_packed_copy(const struct cri_packed *p)
{
        return (struct cri_packed){.buf = xmemdup(p->buf, p->len), .len = p->len};
}

void cri_packed_put(struct sbuf *b, uint32_t tag, const struct cri_packed *p)
{
        uint8_t key = (uint8_t)(tag << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
        sbuf_append(b, &key, 1);
        sbuf_append(b, p->buf, p->len);
}

void cri_packed_attach(ProtobufCMessage *parent, uint32_t tag, struct cri_packed *items, size_t n)
{
        if (n == 0)
                return;
        parent->unknown_fields = xcalloc(n, sizeof(*parent->unknown_fields));
        parent->n_unknown_fields = n;
        for (size_t i = 0; i < n; i++) {
                ProtobufCMessageUnknownField *f = &parent->unknown_fields[i];
                f->tag = tag;
                f->wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
                f->len = items[i].len;
                f->data = items[i].buf;
                items[i].buf = NULL;
        }
}

Runtime__V1__PodSandboxMetadata *cri_pod_metadata(const char *name, const char *uid, const char *ns,
                                                  uint32_t attempt)
{
        Runtime__V1__PodSandboxMetadata *m = xmalloc(sizeof(*m));
        runtime__v1__pod_sandbox_metadata__init(m);
        m->name = xstrdup(name ? name : "");
        m->uid = xstrdup(uid ? uid : "");
        m->namespace_ = xstrdup(ns ? ns : "");
        m->attempt = attempt;
        return m;
}

Runtime__V1__PodSandboxConfig *cri_pod_config(const struct store_pod *p)
{
        if (p->config == NULL || p->config_len == 0)
                return NULL;
        return runtime__v1__pod_sandbox_config__unpack(NULL, p->config_len, p->config);
}
