/* Image archives: the tar scan into a staging directory and the parsers of
 * manifest.json (docker-archive) and index.json (OCI image layout). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/stat.h>
#include <yajl/yajl_tree.h>

#include "image/archive-internal.h"
#include "image/image-internal.h"

int arc_name_clean(const char *name, bool allow_up, char **out, struct err *e)
{
        if (!name || !*name)
                return err_set(e, ERR_INVALID, "empty entry name");
        if (name[0] == '/')
                return err_set(e, ERR_INVALID, "entry \"%s\": absolute name", name);
        if (strlen(name) > 4096)
                return err_set(e, ERR_INVALID, "entry name of %zu bytes", strlen(name));
        char **parts = NULL;
        size_t n = 0;
        cleanup_free char *copy = xstrdup(name);
        int ret = 0;
        for (char *save = NULL, *p = strtok_r(copy, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
                if (strcmp(p, ".") == 0)
                        continue;
                if (strcmp(p, "..") == 0) {
                        if (!allow_up || n == 0) {
                                ret = err_set(e, ERR_INVALID, "entry \"%s\": a \"..\" component %s", name,
                                              allow_up ? "leaves the archive" : "is not allowed");
                                break;
                        }
                        n--;
                        continue;
                }
                parts = xrealloc(parts, (n + 1) * sizeof(char *));
                parts[n++] = p;
        }
        if (ret == 0 && n == 0)
                ret = err_set(e, ERR_INVALID, "entry \"%s\": names the archive's root", name);
        if (ret == 0) {
                struct sbuf b = {0};
                for (size_t i = 0; i < n; i++) {
                        if (i)
                                sbuf_putc(&b, '/');
                        sbuf_puts(&b, parts[i]);
                }
                *out = sbuf_steal(&b);
        }
        free(parts);
        return ret;
}

static void entry_clear(struct arc_entry *x)
{
        free(x->name);
        free(x->link);
        free(x->path);
        free(x->digest);
}

void arc_clear(struct arc *a)
{
        if (!a)
                return;
        for (size_t i = 0; i < a->n; i++)
                entry_clear(&a->v[i]);
        free(a->v);
        if (a->dir)
                (void)rm_rf(a->dir, NULL);
        free(a->dir);
        memset(a, 0, sizeof(*a));
}

static const struct arc_entry *lookup(const struct arc *a, const char *name)
{
        for (size_t i = 0; i < a->n; i++)
                if (strcmp(a->v[i].name, name) == 0)
                        return &a->v[i];
        return NULL;
}

const struct arc_entry *arc_find(const struct arc *a, const char *name)
{
        char *clean = NULL;
        if (arc_name_clean(name, false, &clean, NULL) < 0)
                return NULL;
        const struct arc_entry *x = NULL;
        for (int hops = 0; hops < 16; hops++) {
                x = lookup(a, clean);
                if (!x || !x->link)
                        break;
                free(clean);
                clean = xstrdup(x->link);
                x = NULL;
        }
        free(clean);
        return x;
}

int arc_read(const struct arc *a, const char *name, char **buf, size_t *len, struct err *e)
{
        const struct arc_entry *x = arc_find(a, name);
        if (!x)
                return err_set(e, ERR_NOT_FOUND, "the archive has no %s", name);
        if (x->size > (int64_t)ARC_MAX_JSON)
                return err_set(e, ERR_INVALID, "%s: %" PRId64 " bytes (limit %u)", name, x->size,
                               ARC_MAX_JSON);
        if (file_read_all(x->path, buf, len, ARC_MAX_JSON, e) < 0)
                return err_wrap(e, "%s", name);
        return 0;
}

struct reader {
        img_read_fn rd;
        void *data;
        struct err err;
};

static la_ssize_t read_cb(struct archive *ar, void *data, const void **buf)
{
        struct reader *r = data;
        ssize_t n = r->rd(r->data, buf, &r->err);
        if (n < 0) {
                archive_set_error(ar, EIO, "%s", r->err.msg ? r->err.msg : "read failed");
                return -1;
        }
        return n;
}

/* Spool the current entry's data to path, hashing it. */
static int spool(struct archive *ar, const char *name, const char *path, char **digest, int64_t *size,
                 struct err *e)
{
        cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
                return err_make(e, errno, "create %s", path);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
                abort();
        int ret = 0;
        int64_t total = 0;
        for (;;) {
                const void *buf;
                size_t n;
                la_int64_t off;
                int r = archive_read_data_block(ar, &buf, &n, &off);
                if (r == ARCHIVE_EOF)
                        break;
                if (r != ARCHIVE_OK) {
                        ret = err_set(e, ERR_INVALID, "entry %s: %s", name, archive_error_string(ar));
                        break;
                }
                if (off != total) {
                        /* a sparse entry: the holes are zeros in the blob */
                        if (off < total) {
                                ret = err_set(e, ERR_INVALID, "entry %s: data block out of order", name);
                                break;
                        }
                        static const char zeros[4096];
                        while (total < off) {
                                size_t z = (size_t)(off - total) < sizeof(zeros) ? (size_t)(off - total)
                                                                                 : sizeof(zeros);
                                EVP_DigestUpdate(md, zeros, z);
                                if (fd_write_all(fd, zeros, z) < 0) {
                                        ret = err_make(e, errno, "write %s", path);
                                        break;
                                }
                                total += (int64_t)z;
                        }
                        if (ret < 0)
                                break;
                }
                EVP_DigestUpdate(md, buf, n);
                if (fd_write_all(fd, buf, n) < 0) {
                        ret = err_make(e, errno, "write %s", path);
                        break;
                }
                total += (int64_t)n;
        }
        if (ret == 0) {
                unsigned char d[EVP_MAX_MD_SIZE];
                unsigned int dn = 0;
                EVP_DigestFinal_ex(md, d, &dn);
                *digest = img_digest_hex(d, dn);
                *size = total;
        }
        EVP_MD_CTX_free(md);
        return ret;
}

static int scan(struct archive *ar, const char *dir, struct arc *out, struct err *e)
{
        struct archive_entry *ent;
        for (;;) {
                int r = archive_read_next_header(ar, &ent);
                if (r == ARCHIVE_EOF)
                        return 0;
                if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
                        return err_set(e, ERR_INVALID, "archive: %s", archive_error_string(ar));
                const char *raw = archive_entry_pathname(ent);
                cleanup_free char *name = NULL;
                mode_t type = archive_entry_filetype(ent);
                if (type == AE_IFDIR) {
                        /* "./" and other directories: nothing to keep, but the name must be sound */
                        if (raw && (strcmp(raw, ".") == 0 || strcmp(raw, "./") == 0))
                                continue;
                        if (arc_name_clean(raw, false, &name, e) < 0)
                                return -1;
                        continue;
                }
                if (arc_name_clean(raw, false, &name, e) < 0)
                        return -1;
                if (lookup(out, name))
                        return err_set(e, ERR_INVALID, "entry %s appears twice", name);
                if (out->n >= ARC_MAX_ENTRIES)
                        return err_set(e, ERR_INVALID, "more than %d entries", ARC_MAX_ENTRIES);
                struct arc_entry x = {0};
                const char *hl = archive_entry_hardlink(ent);
                if (hl) {
                        if (arc_name_clean(hl, false, &x.link, e) < 0)
                                return err_wrap(e, "hard link %s", name);
                        if (!lookup(out, x.link)) {
                                free(x.link);
                                return err_set(e, ERR_INVALID, "hard link %s: no earlier entry %s", name, hl);
                        }
                } else if (type == AE_IFLNK) {
                        const char *target = archive_entry_symlink(ent);
                        if (!target || target[0] == '/')
                                return err_set(e, ERR_INVALID, "symlink %s -> %s leaves the archive", name,
                                               target ? target : "");
                        const char *slash = strrchr(name, '/');
                        cleanup_free char *joined =
                                slash ? xasprintf("%.*s/%s", (int)(slash - name), name, target)
                                      : xstrdup(target);
                        if (arc_name_clean(joined, true, &x.link, e) < 0) {
                                err_clear(e);
                                return err_set(e, ERR_INVALID, "symlink %s -> %s leaves the archive", name,
                                               target);
                        }
                } else if (type == AE_IFREG) {
                        x.path = xasprintf("%s/%zu", dir, out->n);
                        if (spool(ar, name, x.path, &x.digest, &x.size, e) < 0) {
                                free(x.path);
                                return -1;
                        }
                } else {
                        return err_set(e, ERR_INVALID, "entry %s: type 0%o is not a file, link or directory",
                                       name, (unsigned)type);
                }
                x.name = steal_ptr(&name);
                out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
                out->v[out->n++] = x;
        }
}

static int scan_open(const char *dir, struct archive **ar, struct arc *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        if (mkdir(dir, 0700) < 0)
                return err_make(e, errno, "create staging directory %s", dir);
        out->dir = xstrdup(dir);
        *ar = archive_read_new();
        if (!*ar)
                abort();
        archive_read_support_format_tar(*ar);
        /* no external programs on untrusted bytes: the built-in filters only */
        archive_read_support_filter_gzip(*ar);
        archive_read_support_filter_zstd(*ar);
        return 0;
}

int arc_scan(const char *dir, img_read_fn rd, void *data, struct arc *out, struct err *e)
{
        struct archive *ar = NULL;
        if (scan_open(dir, &ar, out, e) < 0)
                return -1;
        struct reader r = {.rd = rd, .data = data, .err = ERR_INIT};
        int ret;
        if (archive_read_open(ar, &r, NULL, read_cb, NULL) != ARCHIVE_OK)
                ret = err_set(e, ERR_INVALID, "archive: %s", archive_error_string(ar));
        else
                ret = scan(ar, dir, out, e);
        if (ret < 0 && r.err.msg) {
                /* the reader's own failure (the client went away) says more */
                err_clear(e);
                err_move(e, &r.err);
        }
        err_clear(&r.err);
        archive_read_free(ar);
        if (ret < 0)
                arc_clear(out);
        return ret;
}

int arc_scan_mem(const char *dir, const void *buf, size_t len, struct arc *out, struct err *e)
{
        struct archive *ar = NULL;
        if (scan_open(dir, &ar, out, e) < 0)
                return -1;
        int ret;
        if (archive_read_open_memory(ar, buf, len) != ARCHIVE_OK)
                ret = err_set(e, ERR_INVALID, "archive: %s", archive_error_string(ar));
        else
                ret = scan(ar, dir, out, e);
        archive_read_free(ar);
        if (ret < 0)
                arc_clear(out);
        return ret;
}

/* ---------- manifest.json ---------- */

static int str_array(yajl_val v, const char *what, size_t idx, char ***out, struct err *e)
{
        *out = xcalloc(1, sizeof(char *));
        if (!v || YAJL_IS_NULL(v))
                return 0;
        if (!YAJL_IS_ARRAY(v) || v->u.array.len > 10000)
                return err_set(e, ERR_INVALID, "manifest.json[%zu].%s is not an array of strings", idx, what);
        for (size_t i = 0; i < v->u.array.len; i++) {
                const char *s = YAJL_GET_STRING(v->u.array.values[i]);
                if (!s || !*s)
                        return err_set(e, ERR_INVALID, "manifest.json[%zu].%s[%zu] is not a string", idx,
                                       what, i);
                strv_push(out, s);
        }
        return 0;
}

void arc_docker_images_free(struct arc_docker_image *v, size_t n)
{
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].config);
                strv_free(v[i].repo_tags);
                strv_free(v[i].layers);
        }
        free(v);
}

int arc_docker_manifest_parse(const char *buf, size_t len, struct arc_docker_image **out, size_t *n,
                              struct err *e)
{
        *out = NULL;
        *n = 0;
        yajl_val root = json_parse(buf, len, "manifest.json", e);
        if (!root)
                return -1;
        int ret = 0;
        if (!YAJL_IS_ARRAY(root) || root->u.array.len == 0 || root->u.array.len > 10000) {
                ret = err_set(e, ERR_INVALID, "manifest.json is not a non-empty array of images");
                goto out;
        }
        size_t cnt = root->u.array.len;
        struct arc_docker_image *v = xcalloc(cnt, sizeof(*v));
        for (size_t i = 0; i < cnt && ret == 0; i++) {
                yajl_val o = root->u.array.values[i];
                const char *config = json_get_str(o, "Config");
                if (!YAJL_IS_OBJECT(o) || !config || !*config) {
                        ret = err_set(e, ERR_INVALID, "manifest.json[%zu] has no Config", i);
                        break;
                }
                v[i].config = xstrdup(config);
                if (str_array(json_get(o, "RepoTags"), "RepoTags", i, &v[i].repo_tags, e) < 0 ||
                    str_array(json_get(o, "Layers"), "Layers", i, &v[i].layers, e) < 0)
                        ret = -1;
        }
        if (ret < 0) {
                arc_docker_images_free(v, cnt);
        } else {
                *out = v;
                *n = cnt;
        }
out:
        yajl_tree_free(root);
        return ret;
}

char *arc_docker_manifest_json(const char *config_digest, int64_t config_size, char *const *layer_digests,
                               const int64_t *layer_sizes, size_t n_layers)
{
        /* the field order of containers/image's manifest.Schema2, encoded by Go */
        struct sbuf b = {0};
        sbuf_printf(
                &b,
                "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\",\"size\":%" PRId64
                ",\"digest\":\"%s\"},\"layers\":[",
                IMG_MT_DOCKER_MANIFEST, IMG_MT_DOCKER_CONFIG, config_size, config_digest);
        for (size_t i = 0; i < n_layers; i++)
                sbuf_printf(&b, "%s{\"mediaType\":\"%s\",\"size\":%" PRId64 ",\"digest\":\"%s\"}",
                            i ? "," : "", IMG_MT_DOCKER_LAYER, layer_sizes[i], layer_digests[i]);
        sbuf_puts(&b, "]}");
        return sbuf_steal(&b);
}

/* ---------- index.json ---------- */

void arc_oci_refs_free(struct arc_oci_ref *v, size_t n)
{
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].d.media_type);
                free(v[i].d.digest);
                free(v[i].d.platform.os);
                free(v[i].d.platform.architecture);
                free(v[i].d.platform.variant);
                free(v[i].ref_name);
                free(v[i].image_name);
        }
        free(v);
}

int arc_oci_index_parse(const char *buf, size_t len, struct arc_oci_ref **out, size_t *n, struct err *e)
{
        *out = NULL;
        *n = 0;
        struct img_manifest m = {0};
        if (img_manifest_parse(buf, len, IMG_MT_OCI_INDEX, &m, e) < 0)
                return err_wrap(e, "index.json");
        if (m.kind != IMG_KIND_INDEX) {
                img_manifest_clear(&m);
                return err_set(e, ERR_INVALID, "index.json is not an image index");
        }
        /* the descriptors are parsed; only the names are left to read */
        yajl_val root = json_parse(buf, len, "index.json", e);
        if (!root) {
                img_manifest_clear(&m);
                return -1;
        }
        yajl_val arr = json_get(root, "manifests");
        struct arc_oci_ref *v = xcalloc(m.n_manifests + 1, sizeof(*v));
        for (size_t i = 0; i < m.n_manifests; i++) {
                v[i].d = m.manifests[i];
                memset(&m.manifests[i], 0, sizeof(m.manifests[i]));
                yajl_val ann = YAJL_IS_ARRAY(arr) && i < arr->u.array.len
                                       ? json_get(arr->u.array.values[i], "annotations")
                                       : NULL;
                const char *rn = json_get_str(ann, "org.opencontainers.image.ref.name");
                const char *in = json_get_str(ann, "io.containerd.image.name");
                v[i].ref_name = rn && *rn ? xstrdup(rn) : NULL;
                v[i].image_name = in && *in ? xstrdup(in) : NULL;
        }
        *out = v;
        *n = m.n_manifests;
        yajl_tree_free(root);
        img_manifest_clear(&m);
        return 0;
}
