/* Library-level pulls against a real registry (Debian docker-registry,
 * started and filled by tests/fixtures/registry.py), a registry with htpasswd
 * Basic auth, a mirror entry, damaged blobs, and a hostile server. Real store,
 * real overlay2 snapshotter, real unpack. */
#include <pthread.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <yajl/yajl_tree.h>

#include "image/image.h"
#include "snapshot/snapshot.h"
#include "store/store.h"
#include "check.h"

static char tmp[] = "/tmp/corral-test-pull-XXXXXX";
static char *reg_dir, *areg_dir, *hostile_dir;
static char *addr, *aaddr, *haddr;
static yajl_val info; /* what the fixture pushed */
static struct store *st;
static struct snap *sn;
static struct img_service *svc;

/* Run the fixture; its stdout, or NULL. *status is the exit code. */
static char *fixture(int *status, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *args = xvasprintf(fmt, ap);
        va_end(ap);
        char *cmd = xasprintf("python3 %s/tests/fixtures/registry.py %s", CORRAL_SOURCE_DIR, args);
        free(args);
        FILE *f = popen(cmd, "r");
        if (!f) {
                free(cmd);
                *status = -1;
                return NULL;
        }
        struct sbuf b = {0};
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
                sbuf_append(&b, buf, n);
        int ws = pclose(f);
        *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
        if (*status != 0)
                fprintf(stderr, "fixture: %s: exit %d\n", cmd, *status);
        free(cmd);
        char *out = sbuf_steal(&b);
        size_t len = strlen(out);
        while (len && (out[len - 1] == '\n' || out[len - 1] == ' '))
                out[--len] = '\0';
        return out;
}

static const char *info_str(const char *image, const char *key)
{
        const char *path[] = {image, key, NULL};
        yajl_val v = yajl_tree_get(info, path, yajl_t_string);
        return v ? v->u.string : "";
}

static const char *info_arr(const char *image, const char *key, size_t i)
{
        const char *path[] = {image, key, NULL};
        yajl_val v = yajl_tree_get(info, path, yajl_t_array);
        return v && i < v->u.array.len && YAJL_IS_STRING(v->u.array.values[i])
                       ? v->u.array.values[i]->u.string
                       : "";
}

struct counts {
        int resolved, exists, downloading, downloaded, unpacked;
        int sleep_ms_at_resolved;
};

static void count_cb(void *data, const struct img_progress *p)
{
        struct counts *c = data;
        switch (p->state) {
        case IMG_PROGRESS_RESOLVED:
                c->resolved++;
                if (c->sleep_ms_at_resolved)
                        usleep((useconds_t)c->sleep_ms_at_resolved * 1000);
                break;
        case IMG_PROGRESS_EXISTS:
                c->exists++;
                break;
        case IMG_PROGRESS_DOWNLOADING:
                c->downloading++;
                break;
        case IMG_PROGRESS_DOWNLOADED:
                c->downloaded++;
                break;
        case IMG_PROGRESS_UNPACKED:
                c->unpacked++;
                break;
        default:
                break;
        }
}

static bool has_name(const struct store_image *img, const char *name)
{
        for (size_t i = 0; img->names && img->names[i]; i++)
                if (strcmp(img->names[i], name) == 0)
                        return true;
        return false;
}

static char *layer_file(const char *chain, const char *rel)
{
        struct err e = ERR_INIT;
        cleanup_free char *dir = snap_fs_path(sn, chain, &e);
        err_clear(&e);
        return dir ? xasprintf("%s/%s", dir, rel) : xstrdup("/nonexistent");
}

static bool exists(const char *p)
{
        struct stat sb;
        return lstat(p, &sb) == 0;
}

static size_t count_kind(int kind)
{
        struct store_snapshot *v = NULL;
        size_t n = 0, k = 0;
        struct err e = ERR_INIT;
        if (store_snap_list(st, &v, &n, &e) < 0) {
                err_clear(&e);
                return (size_t)-1;
        }
        for (size_t i = 0; i < n; i++)
                if (v[i].kind == kind)
                        k++;
        store_snaps_free(v, n);
        return k;
}

static size_t count_partials(void)
{
        cleanup_free char *dir = xasprintf("%s/image/blobs/sha256", tmp);
        DIR *d = opendir(dir);
        size_t n = 0;
        struct dirent *de;
        while (d && (de = readdir(d)))
                if (str_has_suffix(de->d_name, ".partial"))
                        n++;
        if (d)
                closedir(d);
        return n;
}

static void test_multi_and_again(void)
{
        struct err e = ERR_INIT;
        struct store_image img = {0};
        struct counts c = {0};
        cleanup_free char *ref = xasprintf("%s/multi:latest", addr);
        CHECK_OK(img_pull(svc, ref, NULL, count_cb, &c, &img, &e), &e);
        CHECK_STR(img.id, info_str("multi", "config_digest"));
        CHECK(has_name(&img, ref));
        cleanup_free char *dig = xasprintf("%s/multi@%s", addr, info_str("multi", "manifest_digest"));
        CHECK(has_name(&img, dig));
        CHECK(strv_len(img.chain_ids) == 3);
        for (size_t i = 0; i < 3 && i < strv_len(img.chain_ids); i++)
                CHECK_STR(img.chain_ids[i], info_arr("multi", "chain_ids", i));
        CHECK(c.resolved == 1 && c.downloaded == 3 && c.unpacked == 3 && c.exists == 0);
        /* each layer is its own snapshot with its own files */
        cleanup_free char *f2 = layer_file(info_arr("multi", "chain_ids", 1), "etc/hello");
        cleanup_free char *f3 = layer_file(info_arr("multi", "chain_ids", 2), "data/c");
        cleanup_free char *f1 = layer_file(info_arr("multi", "chain_ids", 0), "bin/busybox");
        CHECK(exists(f1) && exists(f2) && exists(f3));
        store_image_clear(&img);

        /* again: nothing is downloaded */
        struct counts c2 = {0};
        CHECK_OK(img_pull(svc, ref, NULL, count_cb, &c2, &img, &e), &e);
        CHECK(c2.exists == 3 && c2.downloading == 0 && c2.downloaded == 0 && c2.unpacked == 0);
        CHECK_STR(img.id, info_str("multi", "config_digest"));
        store_image_clear(&img);

        /* busybox shares the base layer with multi: not downloaded either */
        struct counts c3 = {0};
        cleanup_free char *bref = xasprintf("%s/busybox", addr);
        CHECK_OK(img_pull(svc, bref, NULL, count_cb, &c3, &img, &e), &e);
        CHECK(c3.exists == 1 && c3.downloaded == 0);
        cleanup_free char *bname = xasprintf("%s/busybox:latest", addr);
        CHECK(has_name(&img, bname));
        store_image_clear(&img);
}

static void test_status_list(void)
{
        struct err e = ERR_INIT;
        struct store_image img = {0};
        const char *id = info_str("multi", "config_digest");
        CHECK_OK(img_status(svc, id, &img, &e), &e);
        CHECK_STR(img.id, id);
        store_image_clear(&img);
        CHECK_OK(img_status(svc, id + 7, &img, &e), &e); /* bare hex */
        store_image_clear(&img);
        cleanup_free char *prefix = xstrndup(id + 7, 12);
        CHECK_OK(img_status(svc, prefix, &img, &e), &e);
        CHECK_STR(img.id, id);
        store_image_clear(&img);
        cleanup_free char *byname = xasprintf("%s/multi", addr);
        CHECK_OK(img_status(svc, byname, &img, &e), &e);
        CHECK_STR(img.id, id);
        store_image_clear(&img);
        cleanup_free char *bydigest = xasprintf("%s/multi@%s", addr, info_str("multi", "manifest_digest"));
        CHECK_OK(img_status(svc, bydigest, &img, &e), &e);
        CHECK_STR(img.id, id);
        store_image_clear(&img);
        CHECK_ERR(img_status(svc, "nosuchimage:1", &img, &e), &e, ERR_NOT_FOUND, "nosuchimage");

        struct img_config cfg;
        CHECK_OK(img_status(svc, id, &img, &e), &e);
        CHECK_OK(img_image_config(&img, &cfg, &e), &e);
        CHECK(strv_len(cfg.cmd) == 1 && strcmp(cfg.cmd[0], "sh") == 0);
        CHECK(cfg.n_labels == 1);
        img_config_clear(&cfg);
        store_image_clear(&img);

        struct store_image *all = NULL;
        size_t n = 0;
        CHECK_OK(img_list(svc, &all, &n, &e), &e);
        CHECK(n == 2);
        store_images_free(all, n);

        struct img_fs_usage u;
        CHECK_OK(img_fs_usage(svc, &u, &e), &e);
        CHECK(u.content_bytes > 1000000 && u.snapshot_bytes > 1000000 && u.inodes_used > 10);
}

static void test_whiteouts_zstd(void)
{
        struct err e = ERR_INIT;
        struct store_image img = {0};
        cleanup_free char *wref = xasprintf("%s/whiteout", addr);
        CHECK_OK(img_pull(svc, wref, NULL, NULL, NULL, &img, &e), &e);
        cleanup_free char *wh = layer_file(info_arr("whiteout", "chain_ids", 2), "data/gone");
        struct stat sb;
        CHECK(lstat(wh, &sb) == 0 && S_ISCHR(sb.st_mode) && sb.st_rdev == makedev(0, 0));
        store_image_clear(&img);

        cleanup_free char *oref = xasprintf("%s/opaque", addr);
        CHECK_OK(img_pull(svc, oref, NULL, NULL, NULL, &img, &e), &e);
        cleanup_free char *opq = layer_file(info_arr("opaque", "chain_ids", 2), "opq");
        char val[8] = {0};
        CHECK(lgetxattr(opq, "trusted.overlay.opaque", val, sizeof(val)) == 1 && val[0] == 'y');
        cleanup_free char *newf = layer_file(info_arr("opaque", "chain_ids", 2), "opq/new");
        CHECK(exists(newf));
        store_image_clear(&img);

        cleanup_free char *zref = xasprintf("%s/zstd", addr);
        CHECK_OK(img_pull(svc, zref, NULL, NULL, NULL, &img, &e), &e);
        cleanup_free char *zf = layer_file(info_arr("zstd", "chain_ids", 1), "zstd/hello");
        CHECK(exists(zf));
        CHECK_STR(img.id, info_str("zstd", "config_digest"));
        store_image_clear(&img);
}

static void test_multiarch(void)
{
        struct err e = ERR_INIT;
        struct store_image img = {0};
        cleanup_free char *ref = xasprintf("%s/multiarch:latest", addr);
        const char *path_arm64[] = {"multiarch", "arm64/v8", "config_digest", NULL};
        const char *path_amd64[] = {"multiarch", "amd64", "config_digest", NULL};
        const char *path_arm[] = {"multiarch", "arm/v7", "config_digest", NULL};
        const char *path_index[] = {"multiarch", "index_digest", NULL};
        yajl_val arm64 = yajl_tree_get(info, path_arm64, yajl_t_string);
        yajl_val amd64 = yajl_tree_get(info, path_amd64, yajl_t_string);
        yajl_val arm = yajl_tree_get(info, path_arm, yajl_t_string);
        yajl_val index = yajl_tree_get(info, path_index, yajl_t_string);
        CHECK(arm64 && amd64 && arm && index);
        if (!arm64 || !amd64 || !arm || !index)
                return;
        CHECK_OK(img_pull_platform(svc, ref, "linux", "arm64", NULL, NULL, NULL, NULL, &img, &e), &e);
        CHECK_STR(img.id, arm64->u.string);
        cleanup_free char *repo_digest = xasprintf("%s/multiarch@%s", addr, index->u.string);
        CHECK(has_name(&img, repo_digest));
        store_image_clear(&img);
        CHECK_OK(img_pull_platform(svc, ref, "linux", "arm", "v7", NULL, NULL, NULL, &img, &e), &e);
        CHECK_STR(img.id, arm->u.string);
        store_image_clear(&img);
        CHECK_OK(img_pull_platform(svc, ref, "linux", "amd64", NULL, NULL, NULL, NULL, &img, &e), &e);
        CHECK_STR(img.id, amd64->u.string);
        store_image_clear(&img);
        CHECK_ERR(img_pull_platform(svc, ref, "linux", "s390x", NULL, NULL, NULL, NULL, &img, &e), &e,
                  ERR_NOT_FOUND, "s390x");
        /* the arm64 record lost its tag to the amd64 one, and is removed by id */
        CHECK_OK(img_remove(svc, arm64->u.string, &e), &e);
        CHECK_OK(img_remove(svc, arm->u.string, &e), &e);
}

static void test_auth(void)
{
        struct err e = ERR_INIT;
        struct store_image img = {0};
        cleanup_free char *ref = xasprintf("%s/busybox:latest", aaddr);
        CHECK_ERR(img_pull(svc, ref, NULL, NULL, NULL, &img, &e), &e, ERR_UNAUTHENTICATED, aaddr);
        struct img_auth wrong = {.username = "alice", .password = "wrong"};
        CHECK_ERR(img_pull(svc, ref, &wrong, NULL, NULL, &img, &e), &e, ERR_UNAUTHENTICATED, "401");
        struct img_auth right = {.username = "alice", .password = "s3cret"};
        CHECK_OK(img_pull(svc, ref, &right, NULL, NULL, &img, &e), &e);
        CHECK(has_name(&img, ref));
        store_image_clear(&img);
        char *b64 = NULL;
        {
                /* base64("alice:s3cret") */
                b64 = xstrdup("YWxpY2U6czNjcmV0");
        }
        struct img_auth viaauth = {.auth = b64};
        CHECK_OK(img_pull(svc, ref, &viaauth, NULL, NULL, &img, &e), &e);
        store_image_clear(&img);
        struct img_auth badauth = {.auth = "!!!"};
        CHECK_ERR(img_pull(svc, ref, &badauth, NULL, NULL, &img, &e), &e, ERR_INVALID, "base64");
        free(b64);
        CHECK_OK(img_remove(svc, ref, &e), &e);
}

static void test_mirror(void)
{
        struct err e = ERR_INIT;
        struct store_image img = {0};
        CHECK_OK(img_pull(svc, "registry.k8s.io/busybox:latest", NULL, NULL, NULL, &img, &e), &e);
        CHECK(has_name(&img, "registry.k8s.io/busybox:latest"));
        CHECK_STR(img.id, info_str("busybox", "config_digest"));
        store_image_clear(&img);
        CHECK_OK(img_remove(svc, "registry.k8s.io/busybox", &e), &e);
        /* still there under its other name */
        cleanup_free char *bname = xasprintf("%s/busybox:latest", addr);
        CHECK_OK(img_status(svc, bname, &img, &e), &e);
        CHECK(!has_name(&img, "registry.k8s.io/busybox:latest"));
        store_image_clear(&img);
}

static void check_nothing_half_made(const char *what, const char *config_digest)
{
        struct err e = ERR_INIT;
        struct store_image img = {0};
        if (config_digest && *config_digest)
                CHECK_ERR(store_image_get(st, config_digest, &img, &e), &e, ERR_NOT_FOUND, NULL);
        size_t active = count_kind(STORE_SNAP_ACTIVE);
        if (active != 0) {
                fprintf(stderr, "%s: %zu active snapshots left\n", what, active);
                failures++;
        }
        if (count_partials() != 0) {
                fprintf(stderr, "%s: partial blobs left\n", what);
                failures++;
        }
}

static void test_hostile(void)
{
        struct err e = ERR_INIT;
        struct store_image img = {0};
        cleanup_free char *bad = xasprintf("%s/baddigest", addr);
        CHECK_ERR(img_pull(svc, bad, NULL, NULL, NULL, &img, &e), &e, ERR_DATA_LOSS,
                  info_arr("baddigest", "layers", 1));
        check_nothing_half_made("baddigest", info_str("baddigest", "config_digest"));

        cleanup_free char *trunc = xasprintf("%s/truncated", addr);
        CHECK_ERR(img_pull(svc, trunc, NULL, NULL, NULL, &img, &e), &e, ERR_DATA_LOSS, "truncated");
        check_nothing_half_made("truncated", info_str("truncated", "config_digest"));

        cleanup_free char *notjson = xasprintf("%s/notjson:latest", haddr);
        CHECK_ERR(img_pull(svc, notjson, NULL, NULL, NULL, &img, &e), &e, ERR_INVALID, "manifest");
        cleanup_free char *huge = xasprintf("%s/huge:latest", haddr);
        CHECK_ERR(img_pull(svc, huge, NULL, NULL, NULL, &img, &e), &e, ERR_INVALID, "larger than");
        cleanup_free char *flaky = xasprintf("%s/flaky:latest", haddr);
        CHECK_ERR(img_pull(svc, flaky, NULL, NULL, NULL, &img, &e), &e, ERR_UNAVAILABLE, "HTTP 503");
        cleanup_free char *nope = xasprintf("%s/multi:nope", addr);
        CHECK_ERR(img_pull(svc, nope, NULL, NULL, NULL, &img, &e), &e, ERR_NOT_FOUND,
                  "GET /v2/multi/manifests/nope: HTTP 404");
        cleanup_free char *norepo = xasprintf("%s/nosuch/repo:1", addr);
        CHECK_ERR(img_pull(svc, norepo, NULL, NULL, NULL, &img, &e), &e, ERR_NOT_FOUND, addr);
        CHECK_ERR(img_pull(svc, "Bad Ref", NULL, NULL, NULL, &img, &e), &e, ERR_INVALID, "Bad Ref");
        /* nobody listens: a clear network error naming the registry */
        CHECK_ERR(img_pull(svc, "127.0.0.1:1/x:1", NULL, NULL, NULL, &img, &e), &e, ERR_UNAVAILABLE,
                  "127.0.0.1:1");
        check_nothing_half_made("hostile", NULL);
}

static int64_t stat_of(yajl_val stats, const char *key)
{
        int64_t v = -1;
        return json_get_int(stats, key, &v) ? v : -1;
}

/* Bearer token flow, a redirect to another host (the Authorization header
 * must not follow), and a download cut halfway then resumed with Range. */
static void test_token_redirect_resume(void)
{
        struct err e = ERR_INIT;
        struct store_image img = {0};
        cleanup_free char *info_path = xasprintf("%s/info.json", hostile_dir);
        cleanup_free char *buf = NULL;
        size_t len = 0;
        CHECK_OK(file_read_all(info_path, &buf, &len, 0, &e), &e);
        yajl_val hinfo = buf ? json_parse(buf, len, "info", &e) : NULL;
        CHECK(hinfo != NULL);
        if (!hinfo)
                return;
        cleanup_free char *ref = xasprintf("%s/tokened/img:latest", haddr);
        struct counts c = {0};
        CHECK_OK(img_pull(svc, ref, NULL, count_cb, &c, &img, &e), &e);
        CHECK_STR(img.id, json_get_str(hinfo, "config_digest"));
        CHECK(c.downloaded == 1); /* the base layer is there already */
        store_image_clear(&img);
        int status = 0;
        cleanup_free char *stats_json = fixture(&status, "stats --addr %s", haddr);
        yajl_val stats = json_parse(stats_json, strlen(stats_json), "stats", &e);
        CHECK(stats != NULL);
        if (stats) {
                CHECK(stat_of(stats, "token_requests") >= 1);
                CHECK(stat_of(stats, "storage_requests") >= 2);
                CHECK(stat_of(stats, "storage_auth") == 0);
                if (getenv("VERBOSE"))
                        printf("hostile stats: %s\n", stats_json);
                yajl_tree_free(stats);
        }
        yajl_tree_free(hinfo);
        err_clear(&e);

        /* a registry token is used as it is: no token request */
        struct img_auth regtok = {.registry_token = "good-token"};
        CHECK_OK(img_pull(svc, ref, &regtok, NULL, NULL, &img, &e), &e);
        store_image_clear(&img);
        struct img_auth badtok = {.registry_token = "forged"};
        CHECK_ERR(img_pull(svc, ref, &badtok, NULL, NULL, &img, &e), &e, ERR_UNAUTHENTICATED, "HTTP 401");
        /* an identity token goes through the OAuth2 refresh grant */
        struct img_auth ident = {.identity_token = "refresh-me"};
        CHECK_OK(img_pull(svc, ref, &ident, NULL, NULL, &img, &e), &e);
        store_image_clear(&img);
        struct img_auth badident = {.identity_token = "stale"};
        CHECK_ERR(img_pull(svc, ref, &badident, NULL, NULL, &img, &e), &e, ERR_UNAUTHENTICATED, "refused");
        cleanup_free char *after = fixture(&status, "stats --addr %s", haddr);
        yajl_val s1 = json_parse(after, strlen(after), "stats", &e);
        CHECK(s1 && stat_of(s1, "token_requests") == 1 && stat_of(s1, "oauth_requests") == 2);
        if (s1)
                yajl_tree_free(s1);
        err_clear(&e);
        CHECK_OK(img_remove(svc, ref, &e), &e);
}

/* The first download of the biggest blob is cut halfway: the pull goes on
 * with a Range request. Fresh service root so nothing is cached. */
static void test_resume(void)
{
        struct err e = ERR_INIT;
        int status = 0;
        cleanup_free char *before = fixture(&status, "stats --addr %s", haddr);
        yajl_val s0 = json_parse(before, strlen(before), "stats", &e);
        CHECK(s0 && stat_of(s0, "cut") == 1 && stat_of(s0, "range_requests") >= 1);
        if (s0)
                yajl_tree_free(s0);
        err_clear(&e);
}

struct thread_pull {
        const char *ref;
        struct counts c;
        struct err e;
        char *id;
        int r;
};

static void *pull_thread(void *data)
{
        struct thread_pull *t = data;
        struct store_image img = {0};
        t->r = img_pull(svc, t->ref, NULL, count_cb, &t->c, &img, &t->e);
        t->id = xstrdup(img.id);
        store_image_clear(&img);
        return NULL;
}

static void test_single_flight(void)
{
        struct err e = ERR_INIT;
        cleanup_free char *ref = xasprintf("%s/zstd:latest", addr);
        /* start from scratch: remove zstd (GC drops its own layer) */
        CHECK_OK(img_remove(svc, ref, &e), &e);
        struct thread_pull a = {.ref = ref, .c = {.sleep_ms_at_resolved = 500}}, b = {.ref = ref};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, pull_thread, &a);
        usleep(100 * 1000);
        pthread_create(&tb, NULL, pull_thread, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        CHECK(a.r == 0 && b.r == 0);
        CHECK(a.id && b.id && strcmp(a.id, b.id) == 0);
        /* b rode on a's pull: its callback never ran */
        CHECK(a.c.resolved == 1 && a.c.downloaded == 1 && b.c.resolved == 0);
        free(a.id);
        free(b.id);
        err_clear(&a.e);
        err_clear(&b.e);
}

static void test_remove_gc(void)
{
        struct err e = ERR_INIT;
        cleanup_free char *mref = xasprintf("%s/multi", addr);
        const char *c0 = info_arr("multi", "chain_ids", 0), *c2 = info_arr("multi", "chain_ids", 2);
        const char *l2 = info_arr("multi", "layers", 2), *l0 = info_arr("multi", "layers", 0);
        struct img_content *cs = NULL;
        cleanup_free char *root = xasprintf("%s/image", tmp);
        CHECK_OK(img_content_open(root, &cs, &e), &e);
        CHECK(img_content_has(cs, l2));
        CHECK_OK(img_remove(svc, mref, &e), &e);
        struct store_snapshot s = {0};
        CHECK_ERR(snap_stat(sn, c2, &s, &e), &e, ERR_NOT_FOUND, NULL);
        CHECK_OK(snap_stat(sn, c0, &s, &e), &e); /* busybox still uses the base */
        store_snap_clear(&s);
        CHECK(!img_content_has(cs, l2));
        CHECK(img_content_has(cs, l0));
        CHECK_ERR(img_remove(svc, mref, &e), &e, ERR_NOT_FOUND, "multi");

        /* remove every image by id: nothing stays */
        struct store_image *all = NULL;
        size_t n = 0;
        CHECK_OK(img_list(svc, &all, &n, &e), &e);
        for (size_t i = 0; i < n; i++)
                CHECK_OK(img_remove(svc, all[i].id, &e), &e);
        store_images_free(all, n);
        struct img_gc_stats gs;
        CHECK_OK(img_gc(svc, &gs, &e), &e);
        CHECK(count_kind(STORE_SNAP_COMMITTED) == 0);
        CHECK(!img_content_has(cs, l0));
        img_content_free(cs);
}

/* Different images sharing a base layer, pulled at once: the blob is
 * downloaded once (the partial file is locked), the layer is committed once
 * (the other unpacks see ERR_EXISTS and drop their active snapshots). */
static void test_concurrent_shared_layer(void)
{
        struct err e = ERR_INIT;
        cleanup_free char *r1 = xasprintf("%s/whiteout", addr);
        cleanup_free char *r2 = xasprintf("%s/opaque", addr);
        cleanup_free char *r3 = xasprintf("%s/multi", addr);
        struct thread_pull t[3] = {{.ref = r1}, {.ref = r2}, {.ref = r3}};
        pthread_t th[3];
        for (int i = 0; i < 3; i++)
                pthread_create(&th[i], NULL, pull_thread, &t[i]);
        for (int i = 0; i < 3; i++)
                pthread_join(th[i], NULL);
        for (int i = 0; i < 3; i++) {
                if (t[i].r < 0) {
                        fprintf(stderr, "concurrent pull %s: %s\n", t[i].ref, t[i].e.msg);
                        failures++;
                }
                free(t[i].id);
                err_clear(&t[i].e);
        }
        CHECK(count_kind(STORE_SNAP_ACTIVE) == 0);
        CHECK(count_kind(STORE_SNAP_COMMITTED) == 7); /* one shared base + 2 per image */
        CHECK(count_partials() == 0);
        struct store_image *all = NULL;
        size_t n = 0;
        CHECK_OK(img_list(svc, &all, &n, &e), &e);
        CHECK(n == 3);
        for (size_t i = 0; i < n; i++)
                CHECK_OK(img_remove(svc, all[i].id, &e), &e);
        store_images_free(all, n);
        CHECK(count_kind(STORE_SNAP_COMMITTED) == 0);
}

static void teardown(void)
{
        int status;
        if (reg_dir)
                free(fixture(&status, "stop --dir %s", reg_dir));
        if (areg_dir)
                free(fixture(&status, "stop --dir %s", areg_dir));
        if (hostile_dir)
                free(fixture(&status, "stop --dir %s", hostile_dir));
        img_service_free(svc);
        snap_close(sn);
        store_close(st);
        if (info)
                yajl_tree_free(info);
        if (!getenv("KEEP_TMP"))
                rm_rf(tmp, NULL);
}

int main(void)
{
        if (geteuid() != 0) {
                printf("skip: needs root (overlay whiteouts are 0/0 device nodes, opaque dirs trusted.* "
                       "xattrs)\n");
                return 77;
        }
        if (access("/usr/bin/docker-registry", X_OK) != 0) {
                printf("skip: /usr/bin/docker-registry missing (apt-get install docker-registry)\n");
                return 77;
        }
        if (!mkdtemp(tmp)) {
                perror("mkdtemp");
                return 1;
        }
        int status = 0;
        reg_dir = xasprintf("%s/reg", tmp);
        addr = fixture(&status, "start --dir %s", reg_dir);
        if (status == 77) {
                printf("skip: fixture cannot run here\n");
                teardown();
                return 77;
        }
        int s2 = 0, s3 = 0, s4 = 0, s5 = 0;
        cleanup_free char *json = fixture(&s2, "push-all --addr %s --dir %s", addr, reg_dir);
        areg_dir = xasprintf("%s/areg", tmp);
        aaddr = fixture(&s3, "start --dir %s --htpasswd alice:s3cret", areg_dir);
        free(fixture(&s4, "push-all --addr %s --auth alice:s3cret --only busybox", aaddr));
        hostile_dir = xasprintf("%s/hostile", tmp);
        haddr = fixture(&s5, "hostile --dir %s", hostile_dir);
        if (status || s2 || s3 || s4 || s5) {
                fprintf(stderr, "fixture failed\n");
                teardown();
                return 1;
        }
        char errbuf[256];
        info = yajl_tree_parse(json, errbuf, sizeof(errbuf));
        if (!info) {
                fprintf(stderr, "fixture output: %s\n", errbuf);
                teardown();
                return 1;
        }

        struct err e = ERR_INIT;
        cleanup_free char *db = xasprintf("%s/meta.db", tmp);
        cleanup_free char *iroot = xasprintf("%s/image", tmp);
        cleanup_free char *mirror = xasprintf("http://%s", addr);
        char *mirrors[] = {mirror, NULL};
        struct img_registry_conf confs[] = {{.host = "registry.k8s.io", .mirrors = mirrors}};
        if (store_open(db, &st, &e) < 0 || snap_open(tmp, NULL, st, &sn, &e) < 0 ||
            img_service_new(iroot, confs, ARRAY_SIZE(confs), 3, st, sn, &svc, &e) < 0) {
                fprintf(stderr, "setup: %s\n", e.msg);
                err_clear(&e);
                teardown();
                return 1;
        }

        test_multi_and_again();
        test_status_list();
        test_whiteouts_zstd();
        test_multiarch();
        test_auth();
        test_mirror();
        test_hostile();
        test_token_redirect_resume();
        test_resume();
        test_single_flight();
        test_remove_gc();
        test_concurrent_shared_layer();

        teardown();
        free(addr);
        free(aaddr);
        free(haddr);
        free(reg_dir);
        free(areg_dir);
        free(hostile_dir);
        CHECK_DONE("test_image_pull");
}
