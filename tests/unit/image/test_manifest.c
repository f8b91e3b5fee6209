/* Manifests, indexes, platform choice, image configs and chain IDs. */
#include "image/image.h"
#include "check.h"

#define DA "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DC "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define DD "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define DE "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"

static const char docker_manifest[] =
        "{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_DOCKER_MANIFEST "\","
        "\"config\":{\"mediaType\":\"" IMG_MT_DOCKER_CONFIG "\",\"digest\":\"" DA "\",\"size\":1234},"
        "\"layers\":[{\"mediaType\":\"" IMG_MT_DOCKER_LAYER "\",\"digest\":\"" DB "\",\"size\":10},"
        "{\"mediaType\":\"" IMG_MT_DOCKER_LAYER "\",\"digest\":\"" DC "\",\"size\":20}]}";

/* OCI manifest without mediaType: known from the Content-Type. */
static const char oci_manifest[] =
        "{\"schemaVersion\":2,"
        "\"config\":{\"mediaType\":\"" IMG_MT_OCI_CONFIG "\",\"digest\":\"" DA "\",\"size\":5},"
        "\"layers\":[{\"mediaType\":\"" IMG_MT_OCI_LAYER_ZSTD "\",\"digest\":\"" DB "\",\"size\":7}],"
        "\"annotations\":{\"x\":\"y\"}}";

static const char index_json[] =
        "{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_OCI_INDEX "\",\"manifests\":["
        "{\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"digest\":\"" DA "\",\"size\":1,"
        "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v6\"}},"
        "{\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"digest\":\"" DB "\",\"size\":1,"
        "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
        "{\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"digest\":\"" DC "\",\"size\":1,"
        "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}},"
        "{\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"digest\":\"" DD "\",\"size\":1,"
        "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}},"
        "{\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"digest\":\"" DE "\",\"size\":1,"
        "\"platform\":{\"os\":\"windows\",\"architecture\":\"amd64\"}}]}";

static const char config_json[] =
        "{\"created\":\"2024-01-02T03:04:05.5Z\",\"architecture\":\"amd64\",\"os\":\"linux\",\"author\":"
        "\"me\","
        "\"config\":{\"User\":\"1000:1000\",\"Env\":[\"PATH=/bin\",\"A=b=c\"],\"Entrypoint\":[\"/bin/"
        "sh\",\"-c\"],"
        "\"Cmd\":null,\"WorkingDir\":\"/srv\",\"ExposedPorts\":{\"80/tcp\":{},\"53/udp\":{}},"
        "\"Volumes\":{\"/data\":{}},\"Labels\":{\"k\":\"v\",\"x\":\"\"},\"StopSignal\":\"SIGQUIT\"},"
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DA "\",\"" DB "\",\"" DC "\"]},"
        "\"history\":[{\"created_by\":\"x\"}]}";

static void test_manifests(void)
{
        struct err e = ERR_INIT;
        struct img_manifest m;
        CHECK_OK(img_manifest_parse(docker_manifest, strlen(docker_manifest), NULL, &m, &e), &e);
        CHECK(m.kind == IMG_KIND_MANIFEST);
        CHECK_STR(m.media_type, IMG_MT_DOCKER_MANIFEST);
        CHECK_STR(m.config.digest, DA);
        CHECK(m.config.size == 1234);
        CHECK(m.n_layers == 2);
        if (m.n_layers == 2) {
                CHECK_STR(m.layers[1].digest, DC);
                CHECK(m.layers[1].size == 20);
        }
        img_manifest_clear(&m);

        CHECK_OK(img_manifest_parse(oci_manifest, strlen(oci_manifest), IMG_MT_OCI_MANIFEST "; charset=utf-8",
                                    &m, &e),
                 &e);
        CHECK(m.kind == IMG_KIND_MANIFEST && m.n_layers == 1);
        CHECK_STR(m.media_type, IMG_MT_OCI_MANIFEST);
        img_manifest_clear(&m);

        CHECK_OK(img_manifest_parse(index_json, strlen(index_json), NULL, &m, &e), &e);
        CHECK(m.kind == IMG_KIND_INDEX && m.n_manifests == 5);
        const struct img_descriptor *d = NULL;
        CHECK_OK(img_index_select(&m, "linux", "amd64", NULL, &d, &e), &e);
        CHECK(d && strcmp(d->digest, DB) == 0);
        CHECK_OK(img_index_select(&m, "linux", "x86_64", NULL, &d, &e), &e);
        CHECK(d && strcmp(d->digest, DB) == 0);
        CHECK_OK(img_index_select(&m, "linux", "arm64", NULL, &d, &e), &e);
        CHECK(d && strcmp(d->digest, DC) == 0);
        CHECK_OK(img_index_select(&m, "linux", "aarch64", "v8", &d, &e), &e);
        CHECK(d && strcmp(d->digest, DC) == 0);
        CHECK_OK(img_index_select(&m, "linux", "arm", "v7", &d, &e), &e);
        CHECK(d && strcmp(d->digest, DD) == 0);
        CHECK_OK(img_index_select(&m, "linux", "arm", "v6", &d, &e), &e);
        CHECK(d && strcmp(d->digest, DA) == 0);
        CHECK_OK(img_index_select(&m, "linux", "arm", "v8", &d, &e), &e); /* v8 32-bit runs v7 */
        CHECK(d && strcmp(d->digest, DD) == 0);
        CHECK_OK(img_index_select(&m, "windows", "amd64", NULL, &d, &e), &e);
        CHECK(d && strcmp(d->digest, DE) == 0);
        CHECK_ERR(img_index_select(&m, "linux", "arm", "v5", &d, &e), &e, ERR_NOT_FOUND, "linux/arm/v6");
        CHECK_ERR(img_index_select(&m, "linux", "s390x", NULL, &d, &e), &e, ERR_NOT_FOUND, "linux/amd64");
        CHECK_ERR(img_index_select(&m, "linux", "arm64", "v9", &d, &e), &e, ERR_NOT_FOUND, "arm64/v9");
        img_manifest_clear(&m);

        /* docker manifest list without variant on arm64: the default v8 */
        const char *list = "{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_DOCKER_LIST "\",\"manifests\":["
                           "{\"mediaType\":\"" IMG_MT_DOCKER_MANIFEST "\",\"digest\":\"" DA "\",\"size\":1,"
                           "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}}]}";
        CHECK_OK(img_manifest_parse(list, strlen(list), NULL, &m, &e), &e);
        CHECK_OK(img_index_select(&m, "linux", "arm64", "v8", &d, &e), &e);
        img_manifest_clear(&m);

        /* refusals */
        static const struct {
                const char *json, *why;
        } bad[] = {
                {"not json", "manifest"},
                {"", "manifest"},
                {"[]", "not a JSON object"},
                {"{\"schemaVersion\":1,\"fsLayers\":[]}", "schema 1"},
                {"{\"schemaVersion\":2}", "unsupported manifest media type"},
                {"{\"schemaVersion\":\"2\",\"layers\":[]}", "schemaVersion"},
                {"{\"schemaVersion\":2,\"mediaType\":\"text/plain\"}", "unsupported manifest media type"},
                {"{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"layers\":[]}", "config"},
                {"{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"config\":{\"digest\":\"" DA
                 "\",\"size\":1}}",
                 "layers is missing"},
                {"{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"config\":{\"digest\":\"" DA
                 "\",\"size\":1},\"layers\":[{\"digest\":\"sha256:../../etc\",\"size\":1}]}",
                 "digest"},
                {"{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"config\":{\"digest\":\"" DA
                 "\",\"size\":1},\"layers\":[{\"digest\":\"" DB "\",\"size\":-5}]}",
                 "size"},
                {"{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"config\":{\"digest\":\"" DA
                 "\",\"size\":1},\"layers\":[{\"mediaType\":\"text/html\",\"digest\":\"" DB
                 "\",\"size\":5}]}",
                 "unsupported media type"},
                {"{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_OCI_INDEX "\",\"manifests\":{}}",
                 "not an array"},
                {"{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_OCI_INDEX "\",\"manifests\":[5]}",
                 "not an object"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                CHECK_ERR(img_manifest_parse(bad[i].json, strlen(bad[i].json), NULL, &m, &e), &e, ERR_INVALID,
                          bad[i].why);
}

static void test_config(void)
{
        struct err e = ERR_INIT;
        struct img_config c;
        CHECK_OK(img_config_parse(config_json, strlen(config_json), &c, &e), &e);
        CHECK_STR(c.os, "linux");
        CHECK_STR(c.architecture, "amd64");
        CHECK_STR(c.author, "me");
        CHECK_STR(c.user, "1000:1000");
        CHECK_STR(c.workdir, "/srv");
        CHECK_STR(c.stop_signal, "SIGQUIT");
        CHECK(strv_len(c.env) == 2);
        CHECK_STR(c.env[1], "A=b=c");
        CHECK(strv_len(c.entrypoint) == 2);
        CHECK(c.cmd == NULL);
        CHECK(strv_len(c.exposed_ports) == 2);
        CHECK(strv_len(c.volumes) == 1 && strcmp(c.volumes[0], "/data") == 0);
        CHECK(c.n_labels == 2);
        if (c.n_labels == 2) {
                CHECK_STR(c.labels[0].key, "k");
                CHECK_STR(c.labels[0].value, "v");
        }
        CHECK(strv_len(c.diff_ids) == 3);
        CHECK(c.created_ns == 1704164645500000000LL);
        img_config_clear(&c);

        /* a minimal config: no "config" object at all */
        const char *min = "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
        CHECK_OK(img_config_parse(min, strlen(min), &c, &e), &e);
        CHECK(c.env && !c.env[0] && c.entrypoint == NULL && c.diff_ids && !c.diff_ids[0]);
        img_config_clear(&c);

        static const struct {
                const char *json, *why;
        } bad[] = {
                {"{", "image config"},
                {"{\"config\":{}}", "rootfs.type"},
                {"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"nope\"]}}", "diff_ids[0]"},
                {"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[1]}}", "diff_ids[0]"},
                {"{\"config\":{\"Env\":\"PATH=/\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", "Env"},
                {"{\"config\":{\"Cmd\":[1]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", "Cmd[0]"},
                {"{\"config\":{\"Labels\":{\"a\":1}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
                 "Labels"},
                {"{\"config\":[],\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", "not an object"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                CHECK_ERR(img_config_parse(bad[i].json, strlen(bad[i].json), &c, &e), &e, ERR_INVALID,
                          bad[i].why);
}

static void test_chain_ids(void)
{
        /* chain[1] = sha256("<diff0> <diff1>"), checked against sha256sum:
         * printf '%s %s' DA DB | sha256sum */
        char *diffs[] = {DA, DB, DC, NULL};
        char **chain = img_chain_ids(diffs);
        CHECK(strv_len(chain) == 3);
        CHECK_STR(chain[0], DA);
        char *s = xasprintf("%s %s", DA, DB);
        char *want1 = img_digest_of(s, strlen(s));
        CHECK_STR(chain[1], want1);
        CHECK_STR(chain[1], "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c");
        char *s2 = xasprintf("%s %s", chain[1], DC);
        char *want2 = img_digest_of(s2, strlen(s2));
        CHECK_STR(chain[2], want2);
        /* a known value: sha256 of the empty string */
        char *empty = img_digest_of("", 0);
        CHECK_STR(empty, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        free(s);
        free(s2);
        free(want1);
        free(want2);
        free(empty);
        strv_free(chain);
        char *none[] = {NULL};
        chain = img_chain_ids(none);
        CHECK(chain && !chain[0]);
        strv_free(chain);
}

int main(void)
{
        test_manifests();
        test_config();
        test_chain_ids();
        CHECK_DONE("test_image_manifest");
}
