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
