/* Export: images as an OCI image layout tar (oci-layout, index.json,
 * blobs/sha256/...) or a docker-archive (manifest.json naming blobs, as
 * docker save writes since Docker 25), streamed to a writer. Blobs are
 * written as the content store holds them, so every digest is kept. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "image/archive-internal.h"
#include "image/image-internal.h"
#include "image/service-internal.h"
#include "store/store.h"

struct exp_image {
        struct store_image rec;
        struct img_manifest m;
        char *manifest;
        size_t manifest_len;
        char *oci_digest; /* a Docker manifest made OCI for the layout: its digest */
        char *oci;
};

struct writer {
        img_write_fn wr;
        void *data;
        struct err err;
};

static la_ssize_t write_cb(struct archive *a, void *data, const void *buf, size_t len)
{
        struct writer *w = data;
        if (w->wr(w->data, buf, len, &w->err) < 0) {
                archive_set_error(a, EIO, "%s", w->err.msg ? w->err.msg : "write failed");
                return -1;
        }
        return (la_ssize_t)len;
}

static int fail(struct archive *a, struct writer *w, const char *what, struct err *e)
{
        if (w->err.msg) {
                err_move(e, &w->err);
                return err_wrap(e, "%s", what);
        }
        return err_set(e, ERR_INTERNAL, "%s: %s", what, archive_error_string(a));
}

static int put_header(struct archive *a, struct writer *w, const char *name, int64_t size, struct err *e)
{
        struct archive_entry *ent = archive_entry_new();
        archive_entry_set_pathname(ent, name);
        archive_entry_set_filetype(ent, AE_IFREG);
        archive_entry_set_perm(ent, 0644);
        archive_entry_set_size(ent, size);
        int r = archive_write_header(a, ent);
        archive_entry_free(ent);
        return r == ARCHIVE_OK ? 0 : fail(a, w, name, e);
}

static int put_bytes(struct archive *a, struct writer *w, const char *name, const char *buf, size_t len,
                     struct err *e)
{
        if (put_header(a, w, name, (int64_t)len, e) < 0)
                return -1;
        if (len && archive_write_data(a, buf, len) != (la_ssize_t)len)
                return fail(a, w, name, e);
        return 0;
}

static int put_blob(struct img_service *svc, struct archive *a, struct writer *w, const char *digest,
                    struct err *e)
{
        cleanup_free char *path = img_content_path(svc->cs, digest);
        cleanup_free char *name = xasprintf("blobs/sha256/%s", digest + 7);
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
                return err_make(e, errno, "blob %s", digest);
        if (put_header(a, w, name, st.st_size, e) < 0)
                return -1;
        static __thread char buf[1 << 16];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return err_make(e, errno, "read blob %s", digest);
                if (n == 0)
                        break;
                if (archive_write_data(a, buf, (size_t)n) != n)
                        return fail(a, w, name, e);
        }
        return 0;
}

/* skopeo (and the OCI spec) want OCI manifests in a layout: a Docker
 * schema2 manifest is written as its OCI twin (same config, same layers). */
static void make_oci(struct exp_image *x)
{
        struct sbuf b = {0};
        sbuf_printf(&b,
                    "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\",\"digest\":"
                    "\"%s\","
                    "\"size\":%lld},\"layers\":[",
                    IMG_MT_OCI_MANIFEST, IMG_MT_OCI_CONFIG, x->m.config.digest, (long long)x->m.config.size);
        for (size_t i = 0; i < x->m.n_layers; i++)
                sbuf_printf(&b, "%s{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%lld}", i ? "," : "",
                            img_oci_layer_type(x->m.layers[i].media_type), x->m.layers[i].digest,
                            (long long)x->m.layers[i].size);
        sbuf_puts(&b, "]}");
        x->oci = sbuf_steal(&b);
        x->oci_digest = img_digest_of(x->oci, strlen(x->oci));
}

static int load(struct img_service *svc, const char *what, struct exp_image *x, char ***blobs, struct err *e)
{
        if (img_status(svc, what, &x->rec, e) < 0)
                return -1;
        const char *md = x->rec.manifest_digest;
        if (!md || !img_content_has(svc->cs, md))
                return err_set(e, ERR_PRECONDITION, "image %s: its manifest %s is not in the content store",
                               what, md ? md : "(none)");
        cleanup_free char *path = img_content_path(svc->cs, md);
        if (file_read_all(path, &x->manifest, &x->manifest_len, MANIFEST_MAX_BYTES, e) < 0 ||
            img_manifest_parse(x->manifest, x->manifest_len, NULL, &x->m, e) < 0)
                return err_wrap(e, "image %s: manifest %s", what, md);
        if (x->m.kind != IMG_KIND_MANIFEST)
                return err_set(e, ERR_PRECONDITION, "image %s: %s is not an image manifest", what, md);
        if (x->m.media_type && strcmp(x->m.media_type, IMG_MT_DOCKER_MANIFEST) == 0)
                make_oci(x);
        const char *need[2] = {md, x->m.config.digest};
        for (size_t i = 0; i < 2 + x->m.n_layers; i++) {
                const char *d = i < 2 ? need[i] : x->m.layers[i - 2].digest;
                if (i == 0 && x->oci)
                        continue; /* written from memory */
                if (!img_content_has(svc->cs, d))
                        return err_set(e, ERR_PRECONDITION,
                                       "image %s: blob %s is not in the content store (the layer came with "
                                       "another image that was removed; pull this one again)",
                                       what, d);
                bool dup = false;
                for (size_t k = 0; *blobs && (*blobs)[k]; k++)
                        dup = dup || strcmp((*blobs)[k], d) == 0;
                if (!dup)
                        strv_push(blobs, d);
        }
        return 0;
}

static char *oci_index(struct exp_image *v, size_t n)
{
        struct sbuf b = {0};
        sbuf_printf(&b, "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[", IMG_MT_OCI_INDEX);
        bool first = true;
        for (size_t i = 0; i < n; i++) {
                const char *mt = v[i].oci || !v[i].m.media_type || !*v[i].m.media_type ? IMG_MT_OCI_MANIFEST
                                                                                       : v[i].m.media_type;
                const char *digest = v[i].oci ? v[i].oci_digest : v[i].rec.manifest_digest;
                size_t size = v[i].oci ? strlen(v[i].oci) : v[i].manifest_len;
                bool named = false;
                for (size_t k = 0; v[i].rec.names && v[i].rec.names[k]; k++) {
                        const char *name = v[i].rec.names[k];
                        if (strchr(name, '@'))
                                continue;
                        sbuf_printf(
                                &b,
                                "%s{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":{",
                                first ? "" : ",", mt, digest, size);
                        sbuf_puts(&b, "\"io.containerd.image.name\":");
                        json_quote(&b, name);
                        sbuf_puts(&b, ",\"org.opencontainers.image.ref.name\":");
                        json_quote(&b, name);
                        sbuf_puts(&b, "}}");
                        first = false;
                        named = true;
                }
                if (!named) {
                        sbuf_printf(&b, "%s{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu}",
                                    first ? "" : ",", mt, digest, size);
                        first = false;
                }
        }
        sbuf_puts(&b, "]}");
        return sbuf_steal(&b);
}

static char *docker_manifest(struct exp_image *v, size_t n)
{
        struct sbuf b = {0};
        sbuf_putc(&b, '[');
        for (size_t i = 0; i < n; i++) {
                sbuf_printf(&b, "%s{\"Config\":\"blobs/sha256/%s\",\"RepoTags\":[", i ? "," : "",
                            v[i].m.config.digest + 7);
                bool first = true;
                for (size_t k = 0; v[i].rec.names && v[i].rec.names[k]; k++) {
                        if (strchr(v[i].rec.names[k], '@'))
                                continue;
                        if (!first)
                                sbuf_putc(&b, ',');
                        json_quote(&b, v[i].rec.names[k]);
                        first = false;
                }
                sbuf_puts(&b, "],\"Layers\":[");
                for (size_t k = 0; k < v[i].m.n_layers; k++)
                        sbuf_printf(&b, "%s\"blobs/sha256/%s\"", k ? "," : "", v[i].m.layers[k].digest + 7);
                sbuf_puts(&b, "]}");
        }
        sbuf_putc(&b, ']');
        return sbuf_steal(&b);
}

int img_export(struct img_service *svc, char *const *images, enum img_archive_format fmt, img_write_fn wr,
               void *wr_data, struct err *e)
{
        size_t n = strv_len(images);
        struct exp_image *v = xcalloc(n + 1, sizeof(*v));
        cleanup_strv char **blobs = NULL;
        int ret = 0;
        for (size_t i = 0; i < n && ret == 0; i++)
                ret = load(svc, images[i], &v[i], &blobs, e);
        struct archive *a = NULL;
        struct writer w = {.wr = wr, .data = wr_data, .err = ERR_INIT};
        if (ret == 0) {
                a = archive_write_new();
                if (!a)
                        abort();
                archive_write_set_format_pax_restricted(a);
                archive_write_add_filter_none(a);
                archive_write_set_bytes_in_last_block(a, 1);
                if (archive_write_open2(a, &w, NULL, write_cb, NULL, NULL) != ARCHIVE_OK)
                        ret = fail(a, &w, "open archive", e);
        }
        static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
        if (ret == 0 && fmt == IMG_ARCHIVE_OCI)
                ret = put_bytes(a, &w, "oci-layout", layout, strlen(layout), e);
        for (size_t i = 0; ret == 0 && blobs && blobs[i]; i++)
                ret = put_blob(svc, a, &w, blobs[i], e);
        for (size_t i = 0; ret == 0 && fmt == IMG_ARCHIVE_OCI && i < n; i++) {
                bool dup = false;
                for (size_t k = 0; k < i; k++)
                        dup = dup || (v[k].oci_digest && v[i].oci_digest &&
                                      strcmp(v[k].oci_digest, v[i].oci_digest) == 0);
                if (v[i].oci && !dup) {
                        cleanup_free char *name = xasprintf("blobs/sha256/%s", v[i].oci_digest + 7);
                        ret = put_bytes(a, &w, name, v[i].oci, strlen(v[i].oci), e);
                }
        }
        if (ret == 0) {
                cleanup_free char *top = fmt == IMG_ARCHIVE_OCI ? oci_index(v, n) : docker_manifest(v, n);
                ret = put_bytes(a, &w, fmt == IMG_ARCHIVE_OCI ? "index.json" : "manifest.json", top,
                                strlen(top), e);
        }
        if (ret == 0 && archive_write_close(a) != ARCHIVE_OK)
                ret = fail(a, &w, "close archive", e);
        if (a)
                archive_write_free(a);
        err_clear(&w.err);
        for (size_t i = 0; i < n; i++) {
                store_image_clear(&v[i].rec);
                img_manifest_clear(&v[i].m);
                free(v[i].manifest);
                free(v[i].oci);
                free(v[i].oci_digest);
        }
        free(v);
        return ret < 0 ? err_wrap(e, "export") : 0;
}
