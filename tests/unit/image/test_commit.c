/* img_import from bytes in memory and img_commit of an upper directory:
 * overlay whiteouts (0/0 character devices) and opaque directories
 * (trusted.overlay.opaque) become OCI .wh. entries in the new layer, the
 * config gets the layer's diff_id and a history entry, and the image
 * record chains onto its parent. Needs root (mknod, trusted.* xattrs). */
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <yajl/yajl_tree.h>

#include "image/image.h"
#include "snapshot/snapshot.h"
#include "store/store.h"
#include "check.h"

static char tmp[] = "/tmp/corral-test-commit-XXXXXX";

struct mem {
        const char *buf;
        size_t len;
        bool done;
};

static ssize_t mem_read(void *data, const void **buf, struct err *e)
{
        (void)e;
        struct mem *m = data;
        if (m->done)
                return 0;
        m->done = true;
        *buf = m->buf;
        return (ssize_t)m->len;
}

static void add(struct archive *a, const char *name, const char *data, size_t len, mode_t type)
{
        struct archive_entry *ent = archive_entry_new();
        archive_entry_set_pathname(ent, name);
        archive_entry_set_filetype(ent, type);
        archive_entry_set_perm(ent, type == AE_IFDIR ? 0755 : 0644);
        archive_entry_set_size(ent, type == AE_IFREG ? (la_int64_t)len : 0);
        archive_write_header(a, ent);
        if (type == AE_IFREG && len)
                archive_write_data(a, data, len);
        archive_entry_free(ent);
}

/* A tar in memory; *len its size. */
static char *tar_begin(struct archive **a, size_t *len)
{
        char *buf = xmalloc(1 << 20);
        *a = archive_write_new();
        archive_write_set_format_pax_restricted(*a);
        archive_write_open_memory(*a, buf, 1 << 20, len);
        return buf;
}

static void tar_end(struct archive *a)
{
        archive_write_close(a);
        archive_write_free(a);
}

/* An OCI layout with one image: a base layer (etc/keep, etc/gone, dir/old). */
static char *base_layout(size_t *out_len)
{
        struct archive *a;
        size_t llen = 0;
        cleanup_free char *layer = tar_begin(&a, &llen);
        add(a, "etc", NULL, 0, AE_IFDIR);
        add(a, "etc/keep", "keep\n", 5, AE_IFREG);
        add(a, "etc/gone", "gone\n", 5, AE_IFREG);
        add(a, "dir", NULL, 0, AE_IFDIR);
        add(a, "dir/old", "old\n", 4, AE_IFREG);
        tar_end(a);
        cleanup_free char *diff = img_digest_of(layer, llen);
        cleanup_free char *config =
                xasprintf("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"sh\"]},"
                          "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]},"
                          "\"history\":[{\"created_by\":\"base\"}]}",
                          diff);
        cleanup_free char *cd = img_digest_of(config, strlen(config));
        cleanup_free char *manifest = xasprintf(
                "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\",\"digest\":\"%"
                "s\","
                "\"size\":%zu},\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu}]}",
                IMG_MT_OCI_MANIFEST, IMG_MT_OCI_CONFIG, cd, strlen(config), IMG_MT_OCI_LAYER, diff, llen);
        cleanup_free char *md = img_digest_of(manifest, strlen(manifest));
        cleanup_free char *index = xasprintf(
                "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,"
                "\"annotations\":{\"org.opencontainers.image.ref.name\":\"test.local/base:1\"}}]}",
                IMG_MT_OCI_MANIFEST, md, strlen(manifest));
        char *buf = tar_begin(&a, out_len);
        add(a, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 30, AE_IFREG);
        cleanup_free char *n1 = xasprintf("blobs/sha256/%s", cd + 7);
        cleanup_free char *n2 = xasprintf("blobs/sha256/%s", md + 7);
        cleanup_free char *n3 = xasprintf("blobs/sha256/%s", diff + 7);
        add(a, n1, config, strlen(config), AE_IFREG);
        add(a, n2, manifest, strlen(manifest), AE_IFREG);
        add(a, n3, layer, llen, AE_IFREG);
        add(a, "index.json", index, strlen(index), AE_IFREG);
        tar_end(a);
        return buf;
}

/* The entry names of a layer blob, "|"-joined. */
static char *layer_names(const char *path)
{
        struct archive *a = archive_read_new();
        archive_read_support_format_tar(a);
        struct sbuf b = {0};
        if (archive_read_open_filename(a, path, 1 << 16) == ARCHIVE_OK) {
                struct archive_entry *ent;
                while (archive_read_next_header(a, &ent) == ARCHIVE_OK)
                        sbuf_printf(&b, "%s|", archive_entry_pathname(ent));
        }
        archive_read_free(a);
        return sbuf_steal(&b);
}

int main(void)
{
        if (geteuid() != 0) {
                printf("skip: needs root (overlay whiteouts are 0/0 device nodes, opaque dirs trusted.* "
                       "xattrs)\n");
                return 77;
        }
        if (!mkdtemp(tmp)) {
                perror("mkdtemp");
                return 1;
        }
        struct err e = ERR_INIT;
        struct store *st = NULL;
        struct snap *sn = NULL;
        struct img_service *svc = NULL;
        cleanup_free char *db = xasprintf("%s/meta.db", tmp);
        if (store_open(db, &st, &e) < 0 || snap_open(tmp, NULL, st, &sn, &e) < 0 ||
            img_service_new(tmp, NULL, 0, 1, st, sn, &svc, &e) < 0) {
                fprintf(stderr, "setup: %s\n", e.msg);
                return 1;
        }

        size_t len = 0;
        cleanup_free char *layout = base_layout(&len);
        struct mem m = {layout, len, false};
        struct img_import_opts o = {0};
        struct img_imported *v = NULL;
        size_t n = 0;
        CHECK_OK(img_import(svc, mem_read, &m, &o, &v, &n, &e), &e);
        CHECK(n == 1);
        struct store_image base = {0};
        CHECK_OK(img_status(svc, "test.local/base:1", &base, &e), &e);
        CHECK(n == 1 && base.id && strcmp(base.id, v[0].id) == 0);
        img_imported_free(v, n);

        /* a container's upper directory over the base */
        CHECK_OK(snap_prepare(sn, "ctr", base.chain_ids[0], NULL, &e), &e);
        cleanup_free char *upper = snap_fs_path(sn, "ctr", &e);
        CHECK(upper != NULL);
        cleanup_free char *p1 = xasprintf("%s/etc", upper);
        cleanup_free char *p2 = xasprintf("%s/etc/gone", upper);
        cleanup_free char *p3 = xasprintf("%s/dir", upper);
        cleanup_free char *p4 = xasprintf("%s/dir/new", upper);
        cleanup_free char *p5 = xasprintf("%s/hello", upper);
        cleanup_free char *p6 = xasprintf("%s/hello-link", upper);
        CHECK(mkdir(p1, 0755) == 0);
        CHECK(mknod(p2, S_IFCHR | 0600, makedev(0, 0)) == 0);
        CHECK(mkdir(p3, 0755) == 0);
        CHECK(setxattr(p3, "trusted.overlay.opaque", "y", 1, 0) == 0);
        CHECK(file_write_atomic(p4, "new\n", 4, 0644, &e) == 0);
        CHECK(file_write_atomic(p5, "hello\n", 6, 0644, &e) == 0);
        CHECK(link(p5, p6) == 0);

        struct img_commit_opts co = {.image_id = base.id,
                                     .upper = upper,
                                     .name = "test.local/committed:1",
                                     .author = "tester",
                                     .comment = "unit test"};
        cleanup_free char *id = NULL;
        CHECK_OK(img_commit(svc, &co, &id, &e), &e);
        struct store_image img = {0};
        CHECK_OK(img_status(svc, "test.local/committed:1", &img, &e), &e);
        CHECK(id && img.id && strcmp(id, img.id) == 0);
        CHECK(strv_len(img.chain_ids) == 2 && strcmp(img.chain_ids[0], base.chain_ids[0]) == 0);

        struct img_config cfg = {0};
        CHECK_OK(img_image_config(&img, &cfg, &e), &e);
        CHECK(strv_len(cfg.diff_ids) == 2);
        CHECK_STR(cfg.author, "tester");
        CHECK(strstr(img.config_json, "\"created_by\":\"base\"") != NULL);
        CHECK(strstr(img.config_json, "\"comment\":\"unit test\"") != NULL);
        CHECK(strstr(img.config_json, "\"Cmd\":[\"sh\"]") != NULL);
        /* the layer is stored uncompressed: its digest is its diff_id */
        cleanup_free char *blob = xasprintf("%s/blobs/sha256/%s", tmp, cfg.diff_ids[1] + 7);
        cleanup_free char *names = layer_names(blob);
        CHECK_STR(names, "dir/|dir/.wh..wh..opq|dir/new|etc/|etc/.wh.gone|hello|hello-link|");
        /* and it was unpacked as a snapshot: whiteouts back as overlay whiteouts */
        struct store_snapshot ss = {0};
        CHECK_OK(snap_stat(sn, img.chain_ids[1], &ss, &e), &e);
        cleanup_free char *top = snap_fs_path(sn, img.chain_ids[1], &e);
        cleanup_free char *wh = xasprintf("%s/etc/gone", top);
        struct stat sb;
        CHECK(lstat(wh, &sb) == 0 && S_ISCHR(sb.st_mode) && sb.st_rdev == makedev(0, 0));
        cleanup_free char *opq = xasprintf("%s/dir", top);
        char val[4] = {0};
        CHECK(getxattr(opq, "trusted.overlay.opaque", val, sizeof(val)) == 1 && val[0] == 'y');

        /* the same upper directory again: the same layer, the image id may differ only by its time */
        cleanup_free char *id2 = NULL;
        co.name = "test.local/committed:2";
        CHECK_OK(img_commit(svc, &co, &id2, &e), &e);
        struct store_image img2 = {0};
        CHECK_OK(img_status(svc, "test.local/committed:2", &img2, &e), &e);
        CHECK(img2.chain_ids && strcmp(img2.chain_ids[1], img.chain_ids[1]) == 0);

        /* an unknown parent: nothing made */
        co.image_id = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        co.name = "test.local/none:1";
        cleanup_free char *id3 = NULL;
        CHECK_ERR(img_commit(svc, &co, &id3, &e), &e, ERR_NOT_FOUND, NULL);

        store_snap_clear(&ss);
        img_config_clear(&cfg);
        store_image_clear(&img);
        store_image_clear(&img2);
        store_image_clear(&base);
        err_clear(&e);
        img_service_free(svc);
        snap_close(sn);
        store_close(st);
        if (!getenv("KEEP_TMP"))
                rm_rf(tmp, NULL);
        if (failures) {
                fprintf(stderr, "%d failures\n", failures);
                return 1;
        }
        printf("ok\n");
        return 0;
}
