/* image/index.c: the image records in memory. Lookups by id, bare hex,
 * normalised name, repo digest, bare digest and id prefix; a name moves to
 * the image that takes it; merges keep names, blobs and creation time; a
 * put the journal refuses leaves memory as it was; after every change
 * memory equals the journal and a reload gives it back; the reads
 * (ListImages, ImageStatus, ImageFsInfo, CreateContainer's lookup, the
 * snapshotter's stat / mounts / walk) run no SQL statement; readers run
 * beside writers. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image/index-internal.h"
#include "image/service-internal.h"
#include "snapshot/snapshot.h"
#include "store/store.h"
#include "tests/unit/check.h"

static char dir[256], dbpath[300];
static struct store *st;
static struct snap *sn;
static struct img_service *svc;

#define HEX_A "aaaa000000000000000000000000000000000000000000000000000000000001"
#define HEX_B "aaab000000000000000000000000000000000000000000000000000000000002"
#define HEX_C "c000000000000000000000000000000000000000000000000000000000000003"
#define MD_A  "sha256:dddd000000000000000000000000000000000000000000000000000000000001"
#define MD_B  "sha256:dddd000000000000000000000000000000000000000000000000000000000002"

#define CONFIG(user)                                                                                         \
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"User\":\"" user "\"},"                   \
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}"

static struct store_image img(const char *hex, const char *md, char **names, char **blobs, const char *config)
{
        return (struct store_image){
                .id = xasprintf("sha256:%s", hex),
                .names = strv_dup(names),
                .manifest_digest = xstrdup(md),
                .config_json = xstrdup(config),
                .chain_ids = strv_dup((char *[]){"sha256:chain", NULL}),
                .blobs = strv_dup(blobs),
                .size = 1000,
                .created_ns = time_now_ns(),
        };
}

static int put(struct store_image *v, size_t n, bool merge)
{
        struct err e = ERR_INIT;
        int r = img_index_put(&svc->idx, v, n, merge, &e);
        if (r < 0)
                fprintf(stderr, "  put: %s\n", e.msg);
        err_clear(&e);
        for (size_t i = 0; i < n; i++)
                store_image_clear(&v[i]);
        return r;
}

/* What img_status finds for `what`: its id, or NULL. */
static char *found(const char *what, enum err_kind *kind)
{
        struct store_image out;
        struct err e = ERR_INIT;
        char *id = NULL;
        if (img_status(svc, what, &out, &e) == 0)
                id = xstrdup(out.id);
        if (kind)
                *kind = e.kind;
        err_clear(&e);
        store_image_clear(&out);
        return id;
}

static void check_finds(const char *what, const char *want_id)
{
        enum err_kind k;
        cleanup_free char *id = found(what, &k);
        if (!id || strcmp(id, want_id) != 0)
                fprintf(stderr, "  lookup \"%s\": got %s (%s), want %s\n", what, id ? id : "nothing",
                        err_kind_name(k), want_id);
        CHECK(id && strcmp(id, want_id) == 0);
}

static void check_misses(const char *what, enum err_kind want)
{
        enum err_kind k = ERR_OK;
        cleanup_free char *id = found(what, &k);
        if (id || k != want)
                fprintf(stderr, "  lookup \"%s\": got %s (%s), want %s\n", what, id ? id : "nothing",
                        err_kind_name(k), err_kind_name(want));
        CHECK(!id && k == want);
}

static bool same_strv(char *const *a, char *const *b)
{
        size_t n = strv_len(a);
        if (n != strv_len(b))
                return false;
        for (size_t i = 0; i < n; i++)
                if (strcmp(a[i], b[i]) != 0)
                        return false;
        return true;
}

static bool same_image(const struct store_image *a, const struct store_image *b)
{
        return strcmp(a->id, b->id) == 0 && same_strv(a->names, b->names) && same_strv(a->blobs, b->blobs) &&
               same_strv(a->chain_ids, b->chain_ids) && a->created_ns == b->created_ns &&
               a->pinned == b->pinned && a->size == b->size &&
               strcmp(a->manifest_digest ? a->manifest_digest : "",
                      b->manifest_digest ? b->manifest_digest : "") == 0 &&
               strcmp(a->config_json ? a->config_json : "", b->config_json ? b->config_json : "") == 0;
}

/* Memory and the journal hold the same records, in the same order. */
static void check_journal(const char *when)
{
        struct store_image *mem = NULL, *jr = NULL;
        size_t nm = 0, nj = 0;
        struct err e = ERR_INIT;
        CHECK(img_list(svc, &mem, &nm, &e) == 0);
        CHECK(store_image_list(st, &jr, &nj, &e) == 0);
        bool same = nm == nj;
        for (size_t i = 0; same && i < nm; i++)
                same = same_image(&mem[i], &jr[i]);
        if (!same) {
                fprintf(stderr, "  %s: memory (%zu) and journal (%zu) differ\n", when, nm, nj);
                for (size_t i = 0; i < nm || i < nj; i++)
                        fprintf(stderr, "    %s / %s\n", i < nm ? mem[i].id : "-", i < nj ? jr[i].id : "-");
        }
        CHECK(same);
        store_images_free(mem, nm);
        store_images_free(jr, nj);
        err_clear(&e);
}

static void reopen(void)
{
        img_service_free(svc);
        struct err e = ERR_INIT;
        CHECK(img_service_new(dir, NULL, 0, 1, st, sn, &svc, &e) == 0);
        err_clear(&e);
}

static bool user_of_a(const struct store_image *im, const char *user, void *arg)
{
        *(char **)arg = xasprintf("%s %s", im->id, user ? user : "(none)");
        return true;
}

static bool count_each(const struct store_image *im, const char *user, void *arg)
{
        (void)im, (void)user;
        (*(size_t *)arg)++;
        return true;
}

/* ---------- readers beside writers ---------- */

static atomic_int stop_readers, readers_started;

/* Counts its own misses: the CHECK counters are not shared between threads. */
static void *reader(void *arg)
{
        size_t bad = 0;
        atomic_fetch_add(&readers_started, 1);
        do {
                cleanup_free char *id = found("docker.io/library/stay:1", NULL);
                bad += !id || strcmp(id, "sha256:" HEX_C) != 0;
                size_t n = 0;
                img_each(svc, count_each, &n);
                bad += n < 1;
        } while (!atomic_load(&stop_readers));
        return bad == 0 ? arg : NULL;
}

static void churn(void)
{
        pthread_t th[3];
        static int ids[3];
        for (int i = 0; i < 3; i++)
                pthread_create(&th[i], NULL, reader, &ids[i]);
        while (atomic_load(&readers_started) < 3)
                sched_yield();
        for (int i = 0; i < 200; i++) {
                char hex[65];
                snprintf(hex, sizeof(hex), "%064x", i + 1000);
                cleanup_free char *name = xasprintf("docker.io/library/churn:%d", i % 7);
                struct store_image v =
                        img(hex, MD_B, (char *[]){name, NULL}, (char *[]){MD_B, NULL}, CONFIG(""));
                CHECK(put(&v, 1, true) == 0);
                if (i % 3 == 0) {
                        cleanup_free char *id = xasprintf("sha256:%s", hex);
                        struct err e = ERR_INIT;
                        CHECK(img_index_delete(&svc->idx, id, &e) == 0);
                        err_clear(&e);
                }
        }
        atomic_store(&stop_readers, 1);
        for (int i = 0; i < 3; i++) {
                void *ok;
                pthread_join(th[i], &ok);
                CHECK(ok != NULL);
        }
        check_journal("after churn");
}

int main(void)
{
        snprintf(dir, sizeof(dir), "/tmp/corral-test-imgidx-XXXXXX");
        CHECK(mkdtemp(dir) != NULL);
        snprintf(dbpath, sizeof(dbpath), "%s/corral.db", dir);
        struct err e = ERR_INIT;
        CHECK(store_open(dbpath, &st, &e) == 0);
        CHECK(snap_open(dir, "overlay2", st, &sn, &e) == 0);
        CHECK(img_service_new(dir, NULL, 0, 1, st, sn, &svc, &e) == 0);
        if (!svc) {
                fprintf(stderr, "setup: %s\n", e.msg);
                return 1;
        }

        /* ---------- lookups ---------- */
        struct store_image a =
                img(HEX_A, MD_A,
                    (char *[]){"docker.io/library/busybox:latest", "docker.io/library/busybox@" MD_A, NULL},
                    (char *[]){MD_A, "sha256:blob1", NULL}, CONFIG("1000:1000"));
        struct store_image b =
                img(HEX_B, MD_B, (char *[]){"quay.io/x/y:1", NULL}, (char *[]){MD_B, NULL}, CONFIG("nobody"));
        CHECK(put(&a, 1, true) == 0);
        CHECK(put(&b, 1, true) == 0);
        check_journal("two puts");
        check_finds("sha256:" HEX_A, "sha256:" HEX_A);
        check_finds(HEX_A, "sha256:" HEX_A);     /* bare hex */
        check_finds("busybox", "sha256:" HEX_A); /* normalised */
        check_finds("busybox:latest", "sha256:" HEX_A);
        check_finds("docker.io/library/busybox@" MD_A, "sha256:" HEX_A);
        check_finds("busybox@" MD_A, "sha256:" HEX_A);
        check_finds(MD_A, "sha256:" HEX_A); /* a bare repo digest */
        check_finds("quay.io/x/y:1", "sha256:" HEX_B);
        check_finds("aaaa", "sha256:" HEX_A); /* unique prefix */
        check_finds("sha256:aaab", "sha256:" HEX_B);
        check_misses("aaa", ERR_INVALID); /* two ids start so */
        check_misses("alpine", ERR_NOT_FOUND);
        check_misses("sha256:" HEX_C, ERR_NOT_FOUND);
        check_misses("", ERR_INVALID);
        char *lent = NULL;
        CHECK(img_status_with(svc, "busybox", user_of_a, &lent, &e) == 0);
        CHECK_STR(lent, "sha256:" HEX_A " 1000:1000");
        free(lent);

        /* ---------- a name moves; a merge keeps what the image had ---------- */
        struct store_image q;
        CHECK(img_status(svc, "sha256:" HEX_B, &q, &e) == 0);
        int64_t b_created = q.created_ns;
        store_image_clear(&q);
        struct store_image b2 = img(HEX_B, MD_B, (char *[]){"docker.io/library/busybox:latest", NULL},
                                    (char *[]){"sha256:blob2", NULL}, CONFIG("nobody"));
        CHECK(put(&b2, 1, true) == 0);
        check_finds("busybox", "sha256:" HEX_B);
        CHECK(img_status(svc, "sha256:" HEX_B, &q, &e) == 0);
        CHECK(same_strv(q.names, (char *[]){"quay.io/x/y:1", "docker.io/library/busybox:latest", NULL}));
        CHECK(same_strv(q.blobs, (char *[]){"sha256:blob2", MD_B, NULL}));
        CHECK(q.created_ns == b_created);
        store_image_clear(&q);
        CHECK(img_status(svc, "sha256:" HEX_A, &q, &e) == 0);
        CHECK(same_strv(q.names, (char *[]){"docker.io/library/busybox@" MD_A, NULL}));
        store_image_clear(&q);
        check_journal("a tag moved");

        /* ---------- the journal refuses: memory stays as it was ---------- */
        struct store_image bad = img(HEX_C, MD_B, (char *[]){"quay.io/x/y:1", "", NULL}, NULL, CONFIG(""));
        CHECK(put(&bad, 1, true) < 0);
        check_misses("sha256:" HEX_C, ERR_NOT_FOUND);
        check_finds("quay.io/x/y:1", "sha256:" HEX_B); /* the name did not move either */
        check_journal("refused put");

        /* ---------- a batch: one transaction, in-batch merges ---------- */
        struct store_image batch[2] = {
                img(HEX_C, MD_B, (char *[]){"docker.io/library/stay:1", NULL}, (char *[]){"sha256:x", NULL},
                    CONFIG("")),
                img(HEX_C, MD_B, (char *[]){"docker.io/library/stay:2", NULL}, (char *[]){"sha256:y", NULL},
                    CONFIG("")),
        };
        CHECK(put(batch, 2, true) == 0);
        CHECK(img_status(svc, "stay:2", &q, &e) == 0);
        CHECK(same_strv(q.names, (char *[]){"docker.io/library/stay:1", "docker.io/library/stay:2", NULL}));
        CHECK(same_strv(q.blobs, (char *[]){"sha256:y", "sha256:x", NULL}));
        store_image_clear(&q);
        struct store_image batch_bad[2] = {
                img(HEX_C, MD_B, (char *[]){"docker.io/library/stay:3", NULL}, NULL, CONFIG("")),
                img(HEX_A, MD_B, (char *[]){"", NULL}, NULL, CONFIG("")),
        };
        CHECK(put(batch_bad, 2, true) < 0);
        check_misses("stay:3", ERR_NOT_FOUND); /* the first of the batch was rolled back too */
        check_journal("batches");

        /* ---------- names and images go ---------- */
        CHECK(img_index_remove_name(&svc->idx, "docker.io/library/stay:2", &e) == 0);
        check_misses("stay:2", ERR_NOT_FOUND);
        CHECK(img_index_remove_name(&svc->idx, "docker.io/library/stay:2", &e) < 0 &&
              err_is(&e, ERR_NOT_FOUND));
        err_clear(&e);
        CHECK(img_remove(svc, "quay.io/x/y:1", &e) == 0); /* B keeps busybox:latest */
        check_finds("busybox", "sha256:" HEX_B);
        CHECK(img_remove(svc, "busybox", &e) == 0); /* its last tag: B goes */
        check_misses("sha256:" HEX_B, ERR_NOT_FOUND);
        check_misses(MD_B, ERR_NOT_FOUND);
        check_journal("removals");

        /* ---------- the same after a reload ---------- */
        struct store_image *before = NULL;
        size_t nb = 0;
        CHECK(img_list(svc, &before, &nb, &e) == 0);
        reopen();
        struct store_image *after = NULL;
        size_t na = 0;
        CHECK(img_list(svc, &after, &na, &e) == 0);
        CHECK(na == nb && na == 2);
        for (size_t i = 0; i < na && i < nb; i++)
                CHECK(same_image(&before[i], &after[i]));
        store_images_free(before, nb);
        store_images_free(after, na);
        CHECK(img_status_with(svc, "sha256:" HEX_A, user_of_a, &lent, &e) == 0);
        CHECK_STR(lent, "sha256:" HEX_A " 1000:1000"); /* the user is parsed at load too */
        free(lent);

        /* ---------- reads run no SQL ---------- */
        struct snap_mount *m = NULL;
        CHECK(snap_prepare(sn, "base", NULL, NULL, &e) == 0);
        CHECK(snap_commit(sn, "sha256:chain", "base", &e) == 0);
        CHECK(snap_prepare(sn, "ctr", "sha256:chain", NULL, &e) == 0);
        struct img_fs_usage u;
        CHECK(img_fs_usage(svc, &u, &e) == 0); /* the first pass of the usage thread */
        uint64_t n0 = store_statements(st);
        for (int i = 0; i < 10; i++) {
                struct store_image *all = NULL;
                size_t n = 0;
                CHECK(img_list(svc, &all, &n, &e) == 0 && n == 2);
                store_images_free(all, n);
                n = 0;
                img_each(svc, count_each, &n);
                CHECK(n == 2);
                CHECK(img_count(svc) == 2);
                const char *whats[] = {("busybox@" MD_A), HEX_A, "aaaa", MD_A, "stay:1", "nothere:1"};
                for (size_t k = 0; k < ARRAY_SIZE(whats); k++) {
                        free(found(whats[k], NULL));
                        CHECK(img_status_with(svc, whats[k], count_each, &n, NULL) == (k == 5 ? -1 : 0));
                }
                CHECK(img_fs_usage(svc, &u, &e) == 0);
                struct store_snapshot ss;
                CHECK(snap_stat(sn, "ctr", &ss, &e) == 0);
                store_snap_clear(&ss);
                CHECK(snap_mounts(sn, "ctr", &m, &e) == 0);
                snap_mount_free(m);
                free(snap_fs_path(sn, "ctr", &e));
                uint64_t by = 0, in = 0;
                snap_cached_usage(sn, &by, &in);
        }
        uint64_t n1 = store_statements(st);
        if (n1 != n0)
                fprintf(stderr, "  reads ran %llu SQL statements\n", (unsigned long long)(n1 - n0));
        CHECK(n1 == n0);
        /* the count is live: a write runs statements */
        struct store_image w = img(HEX_B, MD_B, (char *[]){"docker.io/library/w:1", NULL}, NULL, CONFIG(""));
        CHECK(put(&w, 1, true) == 0);
        CHECK(store_statements(st) > n1);

        churn();

        img_service_free(svc);
        snap_close(sn);
        store_close(st);
        err_clear(&e);
        cleanup_free char *cmd = xasprintf("rm -rf %s", dir);
        CHECK(system(cmd) == 0);
        return check_report("test_image_index");
}
