/* Manifests and indexes: Docker schema2 manifest / manifest list, OCI
 * manifest / index, and the choice of a platform in an index. Input is
 * hostile (it comes from a registry): every field is type-checked and
 * bounded. */
#include <string.h>
#include <yajl/yajl_tree.h>

#include "image/image.h"

#define MAX_ENTRIES 10000 /* layers in a manifest / entries in an index */

static void descriptor_clear(struct img_descriptor *d)
{
        free(d->media_type);
        free(d->digest);
        free(d->platform.os);
        free(d->platform.architecture);
        free(d->platform.variant);
        memset(d, 0, sizeof(*d));
}

void img_manifest_clear(struct img_manifest *m)
{
        if (!m)
                return;
        free(m->media_type);
        descriptor_clear(&m->config);
        for (size_t i = 0; i < m->n_layers; i++)
                descriptor_clear(&m->layers[i]);
        free(m->layers);
        for (size_t i = 0; i < m->n_manifests; i++)
                descriptor_clear(&m->manifests[i]);
        free(m->manifests);
        memset(m, 0, sizeof(*m));
}

static int parse_descriptor(yajl_val v, const char *what, size_t idx, struct img_descriptor *d, struct err *e)
{
        if (!YAJL_IS_OBJECT(v))
                return err_set(e, ERR_INVALID, "%s[%zu] is not an object", what, idx);
        const char *mt = json_get_str(v, "mediaType");
        const char *digest = json_get_str(v, "digest");
        int64_t size = -1;
        yajl_val sv = json_get(v, "size");
        if (!digest || !img_digest_valid(digest))
                return err_set(e, ERR_INVALID, "%s[%zu]: missing or unsupported digest \"%s\"", what, idx,
                               digest ? digest : "");
        if (!sv || !YAJL_IS_INTEGER(sv) || !json_get_int(v, "size", &size) || size < 0)
                return err_set(e, ERR_INVALID, "%s[%zu] (%s): missing or negative size", what, idx, digest);
        d->media_type = xstrdup(mt ? mt : "");
        d->digest = xstrdup(digest);
        d->size = size;
        yajl_val plat = json_get(v, "platform");
        if (YAJL_IS_OBJECT(plat)) {
                d->platform.os = xstrdup(json_get_str(plat, "os"));
                d->platform.architecture = xstrdup(json_get_str(plat, "architecture"));
                const char *variant = json_get_str(plat, "variant");
                d->platform.variant = variant && *variant ? xstrdup(variant) : NULL;
        }
        return 0;
}

static int parse_array(yajl_val arr, const char *what, struct img_descriptor **out, size_t *n, struct err *e)
{
        if (!YAJL_IS_ARRAY(arr))
                return err_set(e, ERR_INVALID, "%s is missing or not an array", what);
        size_t len = arr->u.array.len;
        if (len > MAX_ENTRIES)
                return err_set(e, ERR_INVALID, "%s has %zu entries (limit %d)", what, len, MAX_ENTRIES);
        *out = xcalloc(len ? len : 1, sizeof(**out));
        *n = 0;
        for (size_t i = 0; i < len; i++) {
                if (parse_descriptor(arr->u.array.values[i], what, i, &(*out)[i], e) < 0)
                        return -1;
                (*n)++;
        }
        return 0;
}

static bool is_index_type(const char *mt)
{
        return mt && (strcmp(mt, IMG_MT_DOCKER_LIST) == 0 || strcmp(mt, IMG_MT_OCI_INDEX) == 0);
}

static bool is_manifest_type(const char *mt)
{
        return mt && (strcmp(mt, IMG_MT_DOCKER_MANIFEST) == 0 || strcmp(mt, IMG_MT_OCI_MANIFEST) == 0);
}

static bool is_layer_type(const char *mt)
{
        /* Empty: OCI allows descriptors without mediaType in older tools. */
        return !*mt || str_has_prefix(mt, "application/vnd.oci.image.layer.") ||
               str_has_prefix(mt, "application/vnd.docker.image.rootfs.");
}

int img_manifest_parse(const char *buf, size_t len, const char *content_type, struct img_manifest *out,
                       struct err *e)
{
        memset(out, 0, sizeof(*out));
        cleanup_free char *ct = NULL;
        yajl_val root = json_parse(buf, len, "manifest", e);
        if (!root)
                return -1;
        int ret = -1;
        if (!YAJL_IS_OBJECT(root)) {
                err_set(e, ERR_INVALID, "manifest is not a JSON object");
                goto out;
        }
        int64_t schema = 0;
        if (json_get_int(root, "schemaVersion", &schema) && schema == 1) {
                err_set(e, ERR_INVALID, "manifest is Docker schema 1, which is not supported");
                goto out;
        }
        if (schema != 2) {
                err_set(e, ERR_INVALID, "manifest schemaVersion is not 2");
                goto out;
        }
        const char *mt = json_get_str(root, "mediaType");
        if (content_type) {
                /* "type; charset=..." -> "type" */
                ct = xstrndup(content_type, strcspn(content_type, "; \t"));
        }
        if (!mt || !*mt) {
                if (ct && (is_index_type(ct) || is_manifest_type(ct)))
                        mt = ct;
                else if (json_get(root, "manifests"))
                        mt = IMG_MT_OCI_INDEX;
                else if (json_get(root, "layers"))
                        mt = IMG_MT_OCI_MANIFEST;
        }
        if (is_index_type(mt)) {
                out->kind = IMG_KIND_INDEX;
                out->media_type = xstrdup(mt);
                if (parse_array(json_get(root, "manifests"), "manifests", &out->manifests, &out->n_manifests,
                                e) < 0)
                        goto out;
        } else if (is_manifest_type(mt)) {
                out->kind = IMG_KIND_MANIFEST;
                out->media_type = xstrdup(mt);
                if (parse_descriptor(json_get(root, "config"), "config", 0, &out->config, e) < 0)
                        goto out;
                if (parse_array(json_get(root, "layers"), "layers", &out->layers, &out->n_layers, e) < 0)
                        goto out;
                for (size_t i = 0; i < out->n_layers; i++) {
                        if (!is_layer_type(out->layers[i].media_type)) {
                                err_set(e, ERR_INVALID, "layers[%zu] (%s): unsupported media type \"%s\"", i,
                                        out->layers[i].digest, out->layers[i].media_type);
                                goto out;
                        }
                }
        } else {
                err_set(e, ERR_INVALID, "unsupported manifest media type \"%s\"", mt ? mt : "(none)");
                goto out;
        }
        ret = 0;
out:
        yajl_tree_free(root);
        if (ret < 0) {
                img_manifest_clear(out);
                err_wrap(e, "parse manifest");
        }
        return ret;
}

static const char *norm_arch(const char *arch, const char **variant)
{
        if (!arch)
                return "";
        if (strcmp(arch, "x86_64") == 0 || strcmp(arch, "x86-64") == 0)
                return "amd64";
        if (strcmp(arch, "aarch64") == 0)
                return "arm64";
        if (strcmp(arch, "armhf") == 0) {
                if (variant && !*variant)
                        *variant = "v7";
                return "arm";
        }
        if (strcmp(arch, "armel") == 0) {
                if (variant && !*variant)
                        *variant = "v6";
                return "arm";
        }
        if (strcmp(arch, "i386") == 0 || strcmp(arch, "i686") == 0)
                return "386";
        return arch;
}

/* The variant an entry without one stands for. */
static const char *default_variant(const char *arch)
{
        if (strcmp(arch, "arm64") == 0)
                return "v8";
        if (strcmp(arch, "arm") == 0)
                return "v7";
        if (strcmp(arch, "amd64") == 0)
                return "v1";
        return "";
}

static int variant_num(const char *v)
{
        if (!v || v[0] != 'v')
                return -1;
        char *end;
        long n = strtol(v + 1, &end, 10);
        return (*end || n < 0 || n > 100) ? -1 : (int)n;
}

/* Score how well an entry's variant serves the wanted one: 0 = not at all,
 * higher is better. Exact match wins; for arm/amd64 an older variant still
 * runs (v7 runs v6 and v5; amd64 v3 runs v2 and v1). */
static int variant_score(const char *arch, const char *want, const char *have)
{
        const char *def = default_variant(arch);
        if (!want || !*want)
                want = def;
        if (!have || !*have)
                have = def;
        if (strcmp(want, have) == 0)
                return 1000;
        if (strcmp(arch, "arm") == 0 || strcmp(arch, "amd64") == 0) {
                int w = variant_num(want), h = variant_num(have);
                if (w >= 0 && h >= 0 && h < w)
                        return 100 + h;
        }
        return 0;
}

int img_index_select(const struct img_manifest *idx, const char *os, const char *arch, const char *variant,
                     const struct img_descriptor **out, struct err *e)
{
        const char *want_variant = variant ? variant : "";
        const char *want_arch = norm_arch(arch, &want_variant);
        int best = 0;
        *out = NULL;
        for (size_t i = 0; i < idx->n_manifests; i++) {
                const struct img_descriptor *d = &idx->manifests[i];
                if (!d->platform.os || strcmp(d->platform.os, os) != 0)
                        continue;
                const char *have_variant = d->platform.variant ? d->platform.variant : "";
                const char *have_arch = norm_arch(d->platform.architecture, &have_variant);
                if (strcmp(have_arch, want_arch) != 0)
                        continue;
                if (!is_manifest_type(d->media_type) && *d->media_type)
                        continue; /* nested indexes, attestations */
                int score = variant_score(want_arch, want_variant, have_variant);
                if (score > best) {
                        best = score;
                        *out = d;
                }
        }
        if (*out)
                return 0;
        struct sbuf b = {0};
        for (size_t i = 0; i < idx->n_manifests; i++) {
                const struct img_platform *p = &idx->manifests[i].platform;
                sbuf_printf(&b, "%s%s/%s%s%s", i ? ", " : "", p->os ? p->os : "?",
                            p->architecture ? p->architecture : "?", p->variant ? "/" : "",
                            p->variant ? p->variant : "");
        }
        err_set(e, ERR_NOT_FOUND, "no manifest for platform %s/%s%s%s in the index (it has: %s)", os, arch,
                variant && *variant ? "/" : "", variant ? variant : "", b.len ? b.buf : "nothing");
        sbuf_free(&b);
        return -1;
}

void img_host_platform(const char **os, const char **arch, const char **variant)
{
        *os = "linux";
        *variant = NULL;
#if defined(__x86_64__)
        *arch = "amd64";
#elif defined(__aarch64__)
        *arch = "arm64";
        *variant = "v8";
#elif defined(__arm__)
        *arch = "arm";
        *variant = "v7";
#elif defined(__i386__)
        *arch = "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        *arch = "ppc64le";
#elif defined(__s390x__)
        *arch = "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
        *arch = "riscv64";
#else
        *arch = "unknown";
#endif
}

/* Docker layer types have OCI twins with the same bytes. */
const char *img_oci_layer_type(const char *mt)
{
        if (!mt || strcmp(mt, IMG_MT_DOCKER_LAYER) == 0)
                return IMG_MT_OCI_LAYER_GZIP;
        if (strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar") == 0)
                return IMG_MT_OCI_LAYER;
        if (strcmp(mt, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") == 0)
                return "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
        return mt;
}
