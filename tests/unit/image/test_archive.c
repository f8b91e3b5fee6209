/* Image archives: entry names, links, the tar scan into a staging
 * directory, manifest.json and index.json, and the docker-archive manifest
 * that must match skopeo's byte for byte. */
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include "image/archive-internal.h"
#include "check.h"

static char root[] = "/tmp/corral-test-archive-XXXXXX";

struct member {
        const char *name;
        char type; /* f file, l symlink, h hardlink, d dir, c char device */
        const char *data;
};

static char *make_tar(const struct member *m, size_t n, size_t *len)
{
        size_t cap = 1 << 20;
        char *buf = xmalloc(cap);
        struct archive *a = archive_write_new();
        archive_write_set_format_pax_restricted(a);
        archive_write_open_memory(a, buf, cap, len);
        for (size_t i = 0; i < n; i++) {
                struct archive_entry *e = archive_entry_new();
                archive_entry_set_pathname(e, m[i].name);
                archive_entry_set_perm(e, 0644);
                switch (m[i].type) {
                case 'f':
                        archive_entry_set_filetype(e, AE_IFREG);
                        archive_entry_set_size(e, (la_int64_t)strlen(m[i].data));
                        break;
                case 'l':
                        archive_entry_set_filetype(e, AE_IFLNK);
                        archive_entry_set_symlink(e, m[i].data);
                        break;
                case 'h':
                        archive_entry_set_filetype(e, AE_IFREG);
                        archive_entry_set_hardlink(e, m[i].data);
                        break;
                case 'd':
                        archive_entry_set_filetype(e, AE_IFDIR);
                        break;
                default:
                        archive_entry_set_filetype(e, AE_IFCHR);
                        break;
                }
                archive_write_header(a, e);
                if (m[i].type == 'f')
                        archive_write_data(a, m[i].data, strlen(m[i].data));
                archive_entry_free(e);
        }
        archive_write_close(a);
        archive_write_free(a);
        return buf;
}

static int scan(const struct member *m, size_t n, struct arc *a, struct err *e)
{
        size_t len = 0;
        cleanup_free char *buf = make_tar(m, n, &len);
        cleanup_free char *dir = xasprintf("%s/stage", root);
        return arc_scan_mem(dir, buf, len, a, e);
}

static void names(void)
{
        struct err e = ERR_INIT;
        char *out = NULL;
        CHECK_OK(arc_name_clean("./a//b/./c", false, &out, &e), &e);
        CHECK_STR(out, "a/b/c");
        free(out);
        CHECK_ERR(arc_name_clean("/etc/passwd", false, &out, &e), &e, ERR_INVALID, "absolute");
        CHECK_ERR(arc_name_clean("a/../b", false, &out, &e), &e, ERR_INVALID, "\"..\"");
        CHECK_ERR(arc_name_clean("./", false, &out, &e), &e, ERR_INVALID, "root");
        CHECK_ERR(arc_name_clean("", false, &out, &e), &e, ERR_INVALID, NULL);
        out = NULL;
        CHECK_OK(arc_name_clean("a/../b", true, &out, &e), &e);
        CHECK_STR(out, "b");
        free(out);
        CHECK_ERR(arc_name_clean("a/../../b", true, &out, &e), &e, ERR_INVALID, "leaves the archive");
        err_clear(&e);
}

static void scans(void)
{
        struct err e = ERR_INIT;
        struct arc a;
        const struct member good[] = {
                {"./", 'd', NULL},
                {"./manifest.json", 'f', "[]"},
                {"abc/", 'd', NULL},
                {"abc/layer.tar", 'l', "../blobs/x.tar"},
                {"blobs/x.tar", 'f', "layer bytes"},
                {"again.tar", 'h', "blobs/x.tar"},
        };
        CHECK_OK(scan(good, ARRAY_SIZE(good), &a, &e), &e);
        const struct arc_entry *x = arc_find(&a, "abc/layer.tar");
        CHECK(x && strcmp(x->name, "blobs/x.tar") == 0);
        cleanup_free char *want = img_digest_of("layer bytes", 11);
        CHECK(x && strcmp(x->digest, want) == 0 && x->size == 11);
        x = arc_find(&a, "./again.tar");
        CHECK(x && strcmp(x->digest, want) == 0);
        char *buf = NULL;
        size_t len = 0;
        CHECK_OK(arc_read(&a, "manifest.json", &buf, &len, &e), &e);
        CHECK(buf && len == 2 && memcmp(buf, "[]", 2) == 0);
        free(buf);
        CHECK_ERR(arc_read(&a, "index.json", &buf, &len, &e), &e, ERR_NOT_FOUND, "index.json");
        cleanup_free char *stage = xstrdup(a.dir);
        arc_clear(&a);
        CHECK(access(stage, F_OK) < 0);

        const struct member dotdot[] = {{"../evil", 'f', "x"}};
        CHECK_ERR(scan(dotdot, 1, &a, &e), &e, ERR_INVALID, "\"..\"");
        const struct member absolute[] = {{"/evil", 'f', "x"}};
        CHECK_ERR(scan(absolute, 1, &a, &e), &e, ERR_INVALID, NULL);
        const struct member up[] = {{"a/l", 'l', "../../etc/passwd"}};
        CHECK_ERR(scan(up, 1, &a, &e), &e, ERR_INVALID, "leaves the archive");
        const struct member abslink[] = {{"l", 'l', "/etc/passwd"}};
        CHECK_ERR(scan(abslink, 1, &a, &e), &e, ERR_INVALID, "leaves the archive");
        const struct member hard[] = {{"h", 'h', "nothing-before"}};
        CHECK_ERR(scan(hard, 1, &a, &e), &e, ERR_INVALID, "no earlier entry");
        const struct member dup[] = {{"x", 'f', "1"}, {"./x", 'f', "2"}};
        CHECK_ERR(scan(dup, 2, &a, &e), &e, ERR_INVALID, "twice");
        const struct member dev[] = {{"dev", 'c', NULL}};
        CHECK_ERR(scan(dev, 1, &a, &e), &e, ERR_INVALID, "type");
        /* a link loop resolves to nothing */
        const struct member loop[] = {{"a", 'l', "b"}, {"b", 'l', "a"}};
        CHECK_OK(scan(loop, 2, &a, &e), &e);
        CHECK(arc_find(&a, "a") == NULL);
        arc_clear(&a);

        /* truncated in the middle of a file's data */
        static char big[20000];
        memset(big, 'z', sizeof(big) - 1);
        const struct member one[] = {{"big", 'f', big}};
        size_t len2 = 0;
        cleanup_free char *tar = make_tar(one, 1, &len2);
        cleanup_free char *dir = xasprintf("%s/stage", root);
        CHECK_ERR(arc_scan_mem(dir, tar, len2 / 2, &a, &e), &e, ERR_INVALID, "big");
        CHECK(access(dir, F_OK) < 0);
        /* not a tar at all */
        CHECK_ERR(arc_scan_mem(dir, "hello", 5, &a, &e), &e, ERR_INVALID, NULL);
        CHECK(access(dir, F_OK) < 0);
        err_clear(&e);
}

static void docker_manifest(void)
{
        struct err e = ERR_INIT;
        struct arc_docker_image *v = NULL;
        size_t n = 0;
        const char *good =
                "[{\"Config\":\"c.json\",\"RepoTags\":[\"busybox:latest\"],\"Layers\":[\"a/layer.tar\","
                "\"b.tar\"]},{\"Config\":\"d.json\",\"RepoTags\":null,\"Layers\":[]}]";
        CHECK_OK(arc_docker_manifest_parse(good, strlen(good), &v, &n, &e), &e);
        CHECK(n == 2);
        if (n == 2) {
                CHECK_STR(v[0].config, "c.json");
                CHECK_STR(v[0].repo_tags[0], "busybox:latest");
                CHECK(strv_len(v[0].layers) == 2);
                CHECK_STR(v[0].layers[1], "b.tar");
                CHECK(strv_len(v[1].repo_tags) == 0 && strv_len(v[1].layers) == 0);
        }
        arc_docker_images_free(v, n);
        static const char *const bad[] = {
                "{}",
                "[]",
                "[{}]",
                "[{\"Config\":\"c\",\"Layers\":[1]}]",
                "[{\"Config\":\"c\",\"RepoTags\":\"x\"}]",
                "not json",
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                CHECK_ERR(arc_docker_manifest_parse(bad[i], strlen(bad[i]), &v, &n, &e), &e, ERR_INVALID,
                          NULL);

        /* what skopeo 1.9 says for busybox saved with docker-archive: */
        char *layers[] = {"sha256:fe32eb5f0efab45bf1315e03e99915493116a7cf866557030adcad8f870fcabd", NULL};
        int64_t sizes[] = {3660800};
        cleanup_free char *m = arc_docker_manifest_json(
                "sha256:83e22e8dae8c1140df3a67a935baf10337af9b0723cfd77c9a5c863b7b850d67", 472, layers, sizes,
                1);
        cleanup_free char *d = img_digest_of(m, strlen(m));
        CHECK_STR(d, "sha256:12567d0a0d1384c86da612fce31c187a2ba878519e67792e5b4888cc294e222a");
        err_clear(&e);
}

static void oci_index(void)
{
        struct err e = ERR_INIT;
        struct arc_oci_ref *v = NULL;
        size_t n = 0;
        const char *good = "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/"
                           "vnd.oci.image.manifest.v1+json\","
                           "\"digest\":\"sha256:"
                           "dcba8e0ef5f7484ebaaee6e9f1871d9929184b5c1887b87788aab43bfe0a5c7a\",\"size\":349,"
                           "\"annotations\":{\"org.opencontainers.image.ref.name\":\"nginx:1.14-2\"}},"
                           "{\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
                           "\"digest\":\"sha256:"
                           "bc71a256e5785ec32b40945e940f3d49b3c6ae99c014ba5fc773768aa8d06b14\",\"size\":10,"
                           "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"},"
                           "\"annotations\":{\"io.containerd.image.name\":\"docker.io/x/y:1\"}}]}";
        CHECK_OK(arc_oci_index_parse(good, strlen(good), &v, &n, &e), &e);
        CHECK(n == 2);
        if (n == 2) {
                CHECK_STR(v[0].ref_name, "nginx:1.14-2");
                CHECK(v[0].image_name == NULL);
                CHECK(v[0].d.size == 349);
                CHECK_STR(v[1].image_name, "docker.io/x/y:1");
                CHECK_STR(v[1].d.platform.architecture, "arm64");
        }
        arc_oci_refs_free(v, n);
        static const char *const bad[] = {
                "{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"md5:00\",\"size\":1}]}",
                "{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"sha256:zz\",\"size\":1}]}",
                "{\"schemaVersion\":2,\"config\":{}}",
                "[",
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                CHECK_ERR(arc_oci_index_parse(bad[i], strlen(bad[i]), &v, &n, &e), &e, ERR_INVALID, NULL);
        err_clear(&e);
}

int main(void)
{
        if (!mkdtemp(root)) {
                perror("mkdtemp");
                return 1;
        }
        names();
        scans();
        docker_manifest();
        oci_index();
        (void)rm_rf(root, NULL);
        if (failures) {
                fprintf(stderr, "%d failures\n", failures);
                return 1;
        }
        printf("ok\n");
        return 0;
}
