/* Commit: a container's upper directory becomes a layer (an uncompressed
 * tar, so its digest is its diff_id) on top of its image, with a new config
 * (diff_ids, history) and an OCI manifest, and a new image record. Overlay
 * whiteouts (0/0 character devices) become ".wh.<name>" entries and opaque
 * directories (trusted.overlay.opaque=y) a ".wh..wh..opq" entry. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "image/image-internal.h"
#include "image/service-internal.h"
#include "snapshot/snapshot.h"
#include "store/store.h"

struct layer_out {
        int fd;
        EVP_MD_CTX *md;
        int64_t size;
        int err;
};

static la_ssize_t out_cb(struct archive *a, void *data, const void *buf, size_t len)
{
        struct layer_out *o = data;
        if (fd_write_all(o->fd, buf, len) < 0) {
                o->err = errno;
                archive_set_error(a, errno, "write layer");
                return -1;
        }
        EVP_DigestUpdate(o->md, buf, len);
        o->size += (int64_t)len;
        return (la_ssize_t)len;
}

struct hardlink {
        dev_t dev;
        ino_t ino;
        char *name;
};

struct walk {
        struct archive *a;
        const char *root;
        struct hardlink *links;
        size_t n_links;
};

static int cmp_str(const void *x, const void *y)
{
        return strcmp(*(char *const *)x, *(char *const *)y);
}

static int put_entry(struct walk *w, struct archive_entry *ent, const char *what, struct err *e)
{
        if (archive_write_header(w->a, ent) != ARCHIVE_OK)
                return err_set(e, ERR_INTERNAL, "layer entry %s: %s", what, archive_error_string(w->a));
        return 0;
}

static int put_marker(struct walk *w, const char *name, struct err *e)
{
        struct archive_entry *ent = archive_entry_new();
        archive_entry_set_pathname(ent, name);
        archive_entry_set_filetype(ent, AE_IFREG);
        archive_entry_set_perm(ent, 0);
        archive_entry_set_size(ent, 0);
        int r = put_entry(w, ent, name, e);
        archive_entry_free(ent);
        return r;
}

static int put_data(struct walk *w, const char *full, const char *name, struct err *e)
{
        cleanup_close int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return err_make(e, errno, "open %s", name);
        static __thread char buf[1 << 16];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return err_make(e, errno, "read %s", name);
                if (n == 0)
                        return 0;
                if (archive_write_data(w->a, buf, (size_t)n) != n)
                        return err_set(e, ERR_INTERNAL, "layer entry %s: %s", name,
                                       archive_error_string(w->a));
        }
}

static int walk_dir(struct walk *w, const char *rel, struct err *e);

static int walk_one(struct walk *w, const char *rel, const char *base, struct err *e)
{
        cleanup_free char *name = *rel ? xasprintf("%s/%s", rel, base) : xstrdup(base);
        cleanup_free char *full = xasprintf("%s/%s", w->root, name);
        struct stat st;
        if (lstat(full, &st) < 0)
                return err_make(e, errno, "stat %s", name);
        if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
                cleanup_free char *wh = *rel ? xasprintf("%s/.wh.%s", rel, base) : xasprintf(".wh.%s", base);
                return put_marker(w, wh, e);
        }
        if (S_ISSOCK(st.st_mode))
                return 0;
        struct archive_entry *ent = archive_entry_new();
        archive_entry_copy_stat(ent, &st);
        archive_entry_set_pathname(ent, name);
        archive_entry_set_uname(ent, "");
        archive_entry_set_gname(ent, "");
        char cap[256];
        ssize_t cn = lgetxattr(full, "security.capability", cap, sizeof(cap));
        if (cn > 0)
                archive_entry_xattr_add_entry(ent, "security.capability", cap, (size_t)cn);
        int r = 0;
        if (S_ISLNK(st.st_mode)) {
                char target[4096];
                ssize_t n = readlink(full, target, sizeof(target) - 1);
                if (n < 0) {
                        archive_entry_free(ent);
                        return err_make(e, errno, "readlink %s", name);
                }
                target[n] = '\0';
                archive_entry_set_symlink(ent, target);
        } else if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
                for (size_t i = 0; i < w->n_links; i++)
                        if (w->links[i].dev == st.st_dev && w->links[i].ino == st.st_ino) {
                                archive_entry_set_hardlink(ent, w->links[i].name);
                                archive_entry_set_size(ent, 0);
                                r = put_entry(w, ent, name, e);
                                archive_entry_free(ent);
                                return r;
                        }
                w->links = xrealloc(w->links, (w->n_links + 1) * sizeof(*w->links));
                w->links[w->n_links++] = (struct hardlink){st.st_dev, st.st_ino, xstrdup(name)};
        }
        r = put_entry(w, ent, name, e);
        archive_entry_free(ent);
        if (r < 0)
                return -1;
        if (S_ISREG(st.st_mode) && st.st_size > 0)
                return put_data(w, full, name, e);
        if (S_ISDIR(st.st_mode)) {
                char v[8];
                ssize_t n = lgetxattr(full, "trusted.overlay.opaque", v, sizeof(v));
                if (n == 1 && v[0] == 'y') {
                        cleanup_free char *opq = xasprintf("%s/.wh..wh..opq", name);
                        if (put_marker(w, opq, e) < 0)
                                return -1;
                }
                return walk_dir(w, name, e);
        }
        return 0;
}

/* Sorted, so that the same upper directory gives the same layer. */
static int walk_dir(struct walk *w, const char *rel, struct err *e)
{
        cleanup_free char *full = *rel ? xasprintf("%s/%s", w->root, rel) : xstrdup(w->root);
        cleanup_dir DIR *d = opendir(full);
        if (!d)
                return err_make(e, errno, "open %s", *rel ? rel : "/");
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                names = xrealloc(names, (n + 1) * sizeof(char *));
                names[n++] = xstrdup(de->d_name);
        }
        if (n)
                qsort(names, n, sizeof(char *), cmp_str);
        int ret = 0;
        for (size_t i = 0; i < n; i++) {
                if (ret == 0)
                        ret = walk_one(w, rel, names[i], e);
                free(names[i]);
        }
        free(names);
        return ret;
}

/* The upper directory as a tar at path; its digest (= diff_id) and size. */
static int write_layer(const char *upper, const char *path, char **digest, int64_t *size, struct err *e)
{
        struct layer_out o = {.fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
        if (o.fd < 0)
                return err_make(e, errno, "create %s", path);
        o.md = EVP_MD_CTX_new();
        if (!o.md || !EVP_DigestInit_ex(o.md, EVP_sha256(), NULL))
                abort();
        struct walk w = {.a = archive_write_new(), .root = upper};
        if (!w.a)
                abort();
        archive_write_set_format_pax_restricted(w.a);
        archive_write_add_filter_none(w.a);
        archive_write_set_bytes_in_last_block(w.a, 1);
        int ret = 0;
        if (archive_write_open2(w.a, &o, NULL, out_cb, NULL, NULL) != ARCHIVE_OK)
                ret = err_set(e, ERR_INTERNAL, "layer: %s", archive_error_string(w.a));
        if (ret == 0)
                ret = walk_dir(&w, "", e);
        if (ret == 0 && archive_write_close(w.a) != ARCHIVE_OK)
                ret = err_set(e, ERR_INTERNAL, "layer: %s", archive_error_string(w.a));
        archive_write_free(w.a);
        for (size_t i = 0; i < w.n_links; i++)
                free(w.links[i].name);
        free(w.links);
        if (ret == 0 && fsync(o.fd) < 0)
                ret = err_make(e, errno, "fsync layer");
        if (ret == 0) {
                unsigned char d[EVP_MAX_MD_SIZE];
                unsigned int dn = 0;
                EVP_DigestFinal_ex(o.md, d, &dn);
                *digest = img_digest_hex(d, dn);
                *size = o.size;
        }
        EVP_MD_CTX_free(o.md);
        close(o.fd);
        return ret;
}

/* ---------- the new config: the parent's with one more layer ---------- */

static char *new_config(const char *parent, const char *diff_id, const struct img_commit_opts *o,
                        struct err *e)
{
        yajl_val root = json_parse(parent, strlen(parent), "image config", e);
        if (!root)
                return NULL;
        char now[64];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        size_t k = strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(now + k, sizeof(now) - k, ".%09ldZ", ts.tv_nsec);
        struct sbuf b = {0};
        sbuf_putc(&b, '{');
        bool first = true, history = false;
        for (size_t i = 0; i < root->u.object.len; i++) {
                const char *key = root->u.object.keys[i];
                yajl_val v = root->u.object.values[i];
                if (strcmp(key, "created") == 0 || (o->author && strcmp(key, "author") == 0))
                        continue;
                if (!first)
                        sbuf_putc(&b, ',');
                first = false;
                json_quote(&b, key);
                sbuf_putc(&b, ':');
                if (strcmp(key, "rootfs") == 0 && YAJL_IS_OBJECT(v)) {
                        sbuf_puts(&b, "{\"type\":\"layers\",\"diff_ids\":[");
                        yajl_val ids = json_get(v, "diff_ids");
                        for (size_t j = 0; YAJL_IS_ARRAY(ids) && j < ids->u.array.len; j++) {
                                json_emit(&b, ids->u.array.values[j]);
                                sbuf_putc(&b, ',');
                        }
                        json_quote(&b, diff_id);
                        sbuf_puts(&b, "]}");
                } else if (strcmp(key, "history") == 0 && YAJL_IS_ARRAY(v)) {
                        history = true;
                        sbuf_putc(&b, '[');
                        for (size_t j = 0; j < v->u.array.len; j++) {
                                json_emit(&b, v->u.array.values[j]);
                                sbuf_putc(&b, ',');
                        }
                        goto entry;
                } else {
                        json_emit(&b, v);
                }
                continue;
        entry:
                sbuf_printf(&b, "{\"created\":\"%s\",\"created_by\":\"corralctl commit\"", now);
                if (o->author) {
                        sbuf_puts(&b, ",\"author\":");
                        json_quote(&b, o->author);
                }
                if (o->comment) {
                        sbuf_puts(&b, ",\"comment\":");
                        json_quote(&b, o->comment);
                }
                sbuf_puts(&b, "}]");
        }
        if (!history) {
                sbuf_printf(&b, ",\"history\":[{\"created\":\"%s\",\"created_by\":\"corralctl commit\"", now);
                if (o->comment) {
                        sbuf_puts(&b, ",\"comment\":");
                        json_quote(&b, o->comment);
                }
                sbuf_puts(&b, "}]");
        }
        sbuf_printf(&b, ",\"created\":\"%s\"", now);
        if (o->author) {
                sbuf_puts(&b, ",\"author\":");
                json_quote(&b, o->author);
        }
        sbuf_putc(&b, '}');
        yajl_tree_free(root);
        return sbuf_steal(&b);
}

int img_commit(struct img_service *svc, const struct img_commit_opts *o, char **id, struct err *e)
{
        struct store_image parent = {0};
        struct img_manifest pm = {0};
        cleanup_free char *pm_buf = NULL, *layer_digest = NULL, *config = NULL, *config_digest = NULL;
        cleanup_free char *manifest = NULL, *manifest_digest = NULL, *name = NULL, *tmp = NULL;
        cleanup_free char *pm_path = NULL, *base = NULL, *pre = NULL, *top = NULL, *blob = NULL;
        cleanup_strv char **chain = NULL;
        cleanup_strv char **names = NULL;
        cleanup_strv char **blobs = NULL;
        size_t pm_len = 0;
        int64_t layer_size = 0;
        bool layer_new = false, snap_new = false, config_new = false, manifest_new = false;
        int ret = -1;

        name = img_ref_normalize(o->name, e);
        if (!name)
                return err_wrap(e, "image name \"%s\"", o->name);
        img_service_hold(svc);
        if (img_index_get(&svc->idx, o->image_id, &parent, e) < 0) {
                err_wrap(e, "the container's image");
                goto out;
        }
        pm_path = parent.manifest_digest ? img_content_path(svc->cs, parent.manifest_digest) : NULL;
        if (!pm_path || file_read_all(pm_path, &pm_buf, &pm_len, MANIFEST_MAX_BYTES, e) < 0 ||
            img_manifest_parse(pm_buf, pm_len, NULL, &pm, e) < 0 || pm.kind != IMG_KIND_MANIFEST) {
                err_clear(e);
                err_set(e, ERR_PRECONDITION, "image %s: its manifest is not in the content store", parent.id);
                goto out;
        }
        base = path_join(svc->root, "import");
        if (mkdir_p(base, 0700, e) < 0)
                goto out;
        char rnd[ID_LEN + 1];
        id_generate(rnd);
        tmp = xasprintf("%s/commit-%.16s", base, rnd);
        int64_t t0 = time_mono_ns();
        if (write_layer(o->upper, tmp, &layer_digest, &layer_size, e) < 0)
                goto out;
        layer_new = !img_content_has(svc->cs, layer_digest);
        if (img_content_adopt(svc->cs, layer_digest, tmp, e) < 0)
                goto out;
        config = new_config(parent.config_json, layer_digest, o, e);
        if (!config)
                goto out;
        config_digest = img_digest_of(config, strlen(config));
        config_new = !img_content_has(svc->cs, config_digest);
        if (img_content_put(svc->cs, config_digest, config, strlen(config), e) < 0)
                goto out;
        struct sbuf b = {0};
        sbuf_printf(&b,
                    "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\",\"digest\":"
                    "\"%s\",\"size\":%zu},\"layers\":[",
                    IMG_MT_OCI_MANIFEST, IMG_MT_OCI_CONFIG, config_digest, strlen(config));
        for (size_t i = 0; i < pm.n_layers; i++) {
                sbuf_printf(&b, "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%lld},",
                            img_oci_layer_type(pm.layers[i].media_type), pm.layers[i].digest,
                            (long long)pm.layers[i].size);
                if (img_content_has(svc->cs, pm.layers[i].digest))
                        strv_push(&blobs, pm.layers[i].digest);
        }
        sbuf_printf(&b, "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%lld}]}", IMG_MT_OCI_LAYER,
                    layer_digest, (long long)layer_size);
        manifest = sbuf_steal(&b);
        manifest_digest = img_digest_of(manifest, strlen(manifest));
        manifest_new = !img_content_has(svc->cs, manifest_digest);
        if (img_content_put(svc->cs, manifest_digest, manifest, strlen(manifest), e) < 0)
                goto out;

        chain = strv_dup(parent.chain_ids ? parent.chain_ids : (char *[]){NULL});
        size_t depth = strv_len(chain);
        /* chain id of the new top: sha256(parent chain + " " + diff_id) */
        pre = depth ? xasprintf("%s %s", chain[depth - 1], layer_digest) : NULL;
        top = depth ? img_digest_of(pre, strlen(pre)) : xstrdup(layer_digest);
        strv_push(&chain, top);
        if (!img_snapshot_committed(svc->sn, top)) {
                blob = img_content_path(svc->cs, layer_digest);
                if (img_layer_apply(svc, depth ? chain[depth - 1] : NULL, top, blob, IMG_MT_OCI_LAYER,
                                    &snap_new, e) < 0) {
                        err_wrap(e, "new layer");
                        goto out;
                }
        }
        strv_push(&names, name);
        struct img_ref ref;
        if (img_ref_parse(name, &ref, NULL) == 0) {
                char *repo = img_ref_name(&ref);
                char *rd = xasprintf("%s@%s", repo, manifest_digest);
                strv_push(&names, rd);
                free(rd);
                free(repo);
                img_ref_clear(&ref);
        }
        strv_push(&blobs, manifest_digest);
        strv_push(&blobs, config_digest);
        strv_push(&blobs, layer_digest);
        uint64_t size = strlen(config) + (uint64_t)layer_size;
        for (size_t i = 0; i < pm.n_layers; i++)
                size += (uint64_t)pm.layers[i].size;
        struct store_image img = {
                .id = config_digest,
                .names = names,
                .manifest_digest = manifest_digest,
                .config_json = config,
                .chain_ids = chain,
                .blobs = blobs,
                .size = size,
                .created_ns = time_now_ns(),
        };
        if (img_index_put(&svc->idx, &img, 1, false, e) < 0) {
                err_wrap(e, "save image record");
                goto out;
        }
        img_usage_kick(svc);
        log_info("image", "committed image=%s layer=%s bytes=%lld ms=%lld", config_digest, layer_digest,
                 (long long)layer_size, (long long)((time_mono_ns() - t0) / 1000000));
        *id = steal_ptr(&config_digest);
        ret = 0;
out:
        /* what a failed commit added goes with the next collection (see import.c) */
        if (ret < 0 && (snap_new || manifest_new || config_new || layer_new))
                img_service_gc_later(svc);
        if (tmp)
                (void)unlink(tmp);
        store_image_clear(&parent);
        img_manifest_clear(&pm);
        img_service_release(svc);
        return ret;
}
