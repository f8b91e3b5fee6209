/* store: every record type round-trips with all its fields; not-found
 * kinds; names moving between images; pod delete cascades; transactions
 * (rollback, nesting, other threads wait). */
#include <pthread.h>
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/check.h"
#include "tests/unit/store/common.h"

static struct store *s;
static char *dir, *dbpath;

static bool blob_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
        return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static bool strv_eq(char *const *a, char *const *b)
{
        if (!a || !b)
                return a == b;
        size_t i;
        for (i = 0; a[i] && b[i]; i++)
                if (strcmp(a[i], b[i]) != 0)
                        return false;
        return !a[i] && !b[i];
}

static void check_pod_eq(const struct store_pod *a, const struct store_pod *b)
{
        CHECK_NSTR(a->id, b->id);
        CHECK_NSTR(a->name, b->name);
        CHECK_NSTR(a->uid, b->uid);
        CHECK_NSTR(a->namespace, b->namespace);
        CHECK(a->attempt == b->attempt);
        CHECK(a->state == b->state);
        CHECK(a->created_ns == b->created_ns);
        CHECK_NSTR(a->runtime_handler, b->runtime_handler);
        CHECK_NSTR(a->labels_json, b->labels_json);
        CHECK_NSTR(a->annotations_json, b->annotations_json);
        CHECK_NSTR(a->netns_path, b->netns_path);
        CHECK_NSTR(a->ips_json, b->ips_json);
        CHECK_NSTR(a->cgroup_parent, b->cgroup_parent);
        CHECK(blob_eq(a->config, a->config_len, b->config, b->config_len));
        CHECK_NSTR(a->extra_json, b->extra_json);
}

static void check_ctr_eq(const struct store_container *a, const struct store_container *b)
{
        CHECK_NSTR(a->id, b->id);
        CHECK_NSTR(a->pod_id, b->pod_id);
        CHECK_NSTR(a->name, b->name);
        CHECK(a->attempt == b->attempt);
        CHECK_NSTR(a->image_ref, b->image_ref);
        CHECK_NSTR(a->image_id, b->image_id);
        CHECK(a->state == b->state);
        CHECK(a->created_ns == b->created_ns);
        CHECK(a->started_ns == b->started_ns);
        CHECK(a->finished_ns == b->finished_ns);
        CHECK(a->exit_code == b->exit_code);
        CHECK(a->pid == b->pid);
        CHECK_NSTR(a->reason, b->reason);
        CHECK_NSTR(a->message, b->message);
        CHECK_NSTR(a->log_path, b->log_path);
        CHECK_NSTR(a->labels_json, b->labels_json);
        CHECK_NSTR(a->annotations_json, b->annotations_json);
        CHECK_NSTR(a->snapshot_key, b->snapshot_key);
        CHECK(blob_eq(a->config, a->config_len, b->config, b->config_len));
        CHECK_NSTR(a->extra_json, b->extra_json);
}

static void test_open(void)
{
        cleanup_err struct err e = ERR_INIT;
        CHECK(store_schema_version(s) == 3);
        sqlite3 *db = NULL;
        CHECK(sqlite3_open(dbpath, &db) == SQLITE_OK);
        sqlite3_stmt *st = NULL;
        CHECK(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK);
        CHECK(sqlite3_step(st) == SQLITE_ROW);
        CHECK_STR((const char *)sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        sqlite3_close(db);
        CHECK(store_open("", &(struct store *){NULL}, &e) < 0 && e.kind == ERR_INVALID);
}

static void test_meta(void)
{
        cleanup_err struct err e = ERR_INIT;
        cleanup_free char *v = NULL;
        CHECK(store_meta_get(s, "pod_cidr", &v, &e) == 0 && v == NULL);
        CHECK(store_meta_set(s, "pod_cidr", "10.88.0.0/16", &e) == 0);
        CHECK(store_meta_get(s, "pod_cidr", &v, &e) == 0);
        CHECK_STR(v, "10.88.0.0/16");
        free(v);
        CHECK(store_meta_set(s, "pod_cidr", "10.99.0.0/16", &e) == 0);
        CHECK(store_meta_get(s, "pod_cidr", &v, &e) == 0);
        CHECK_STR(v, "10.99.0.0/16");
        free(v);
        v = (char *)1;
        CHECK(store_meta_set(s, "nullval", NULL, &e) == 0);
        CHECK(store_meta_get(s, "nullval", &v, &e) == 0 && v == NULL);
        CHECK(store_meta_set(s, "", "x", &e) < 0 && e.kind == ERR_INVALID);
}

static void test_pods(void)
{
        cleanup_err struct err e = ERR_INIT;
        struct store_pod p, q, r;
        make_pod(&p, "a", 1000);
        CHECK(store_pod_put(s, &p, &e) == 0);
        CHECK(store_pod_get(s, p.id, &q, &e) == 0);
        check_pod_eq(&p, &q);
        store_pod_clear(&q);

        /* update in place */
        p.state = STORE_POD_NOTREADY;
        free(p.netns_path);
        p.netns_path = xstrdup("/elsewhere");
        CHECK(store_pod_put(s, &p, &e) == 0);
        CHECK(store_pod_get(s, p.id, &q, &e) == 0);
        check_pod_eq(&p, &q);
        store_pod_clear(&q);

        /* NULL strings and empty config come back as NULL */
        struct store_pod n = {0};
        id_generate(n.id);
        n.state = STORE_POD_CREATING;
        n.created_ns = 2000;
        CHECK(store_pod_put(s, &n, &e) == 0);
        CHECK(store_pod_get(s, n.id, &q, &e) == 0);
        CHECK(q.name == NULL && q.uid == NULL && q.labels_json == NULL && q.config == NULL &&
              q.config_len == 0 && q.extra_json == NULL && q.state == STORE_POD_CREATING);
        store_pod_clear(&q);

        /* find by metadata */
        CHECK(store_pod_find(s, "pod-a", "default", "uid-a", 2, &q, &e) == 0);
        CHECK_STR(q.id, p.id);
        store_pod_clear(&q);
        CHECK(store_pod_find(s, "pod-a", "default", "uid-a", 3, &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(e.msg && strstr(e.msg, "pod-a"));
        CHECK(store_pod_find(s, NULL, NULL, NULL, 0, &q, &e) == 0);
        CHECK_STR(q.id, n.id);
        store_pod_clear(&q);

        /* list: oldest first */
        make_pod(&r, "b", 500);
        CHECK(store_pod_put(s, &r, &e) == 0);
        struct store_pod *v = NULL;
        size_t cnt = 0;
        CHECK(store_pod_list(s, &v, &cnt, &e) == 0);
        CHECK(cnt == 3);
        if (cnt == 3) {
                CHECK_STR(v[0].id, r.id);
                CHECK_STR(v[1].id, p.id);
                CHECK_STR(v[2].id, n.id);
                check_pod_eq(&v[0], &r);
        }
        store_pods_free(v, cnt);

        /* not found */
        char missing[ID_LEN + 1];
        id_generate(missing);
        CHECK(store_pod_get(s, missing, &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(e.msg && strstr(e.msg, missing));
        CHECK(store_pod_delete(s, missing, &e) < 0 && e.kind == ERR_NOT_FOUND);

        CHECK(store_pod_delete(s, p.id, &e) == 0);
        CHECK(store_pod_delete(s, r.id, &e) == 0);
        CHECK(store_pod_delete(s, n.id, &e) == 0);
        CHECK(store_pod_get(s, p.id, &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_pod_list(s, &v, &cnt, &e) == 0 && cnt == 0);
        store_pods_free(v, cnt);
        struct store_pod bad = {0};
        CHECK(store_pod_put(s, &bad, &e) < 0 && e.kind == ERR_INVALID);
        store_pod_clear(&p);
        store_pod_clear(&r);
}

static void test_containers(void)
{
        cleanup_err struct err e = ERR_INIT;
        struct store_pod p, p2;
        make_pod(&p, "c", 1);
        make_pod(&p2, "d", 2);
        CHECK(store_pod_put(s, &p, &e) == 0);
        CHECK(store_pod_put(s, &p2, &e) == 0);

        struct store_container c1, c2, c3, q;
        make_ctr(&c1, p.id, "1", 30);
        make_ctr(&c2, p.id, "2", 10);
        make_ctr(&c3, p2.id, "3", 20);
        CHECK(store_ctr_put(s, &c1, &e) == 0);
        CHECK(store_ctr_put(s, &c2, &e) == 0);
        CHECK(store_ctr_put(s, &c3, &e) == 0);
        CHECK(store_ctr_get(s, c1.id, &q, &e) == 0);
        check_ctr_eq(&c1, &q);
        store_ctr_clear(&q);

        c1.state = STORE_CTR_RUNNING;
        c1.exit_code = 0;
        free(c1.reason);
        c1.reason = NULL;
        CHECK(store_ctr_put(s, &c1, &e) == 0);
        CHECK(store_ctr_get(s, c1.id, &q, &e) == 0);
        check_ctr_eq(&c1, &q);
        CHECK(q.reason == NULL);
        store_ctr_clear(&q);

        struct store_container *v = NULL;
        size_t n = 0;
        CHECK(store_ctr_list(s, p.id, &v, &n, &e) == 0 && n == 2);
        if (n == 2) {
                CHECK_STR(v[0].id, c2.id);
                CHECK_STR(v[1].id, c1.id);
        }
        store_ctrs_free(v, n);
        CHECK(store_ctr_list(s, NULL, &v, &n, &e) == 0 && n == 3);
        if (n == 3) {
                CHECK_STR(v[0].id, c2.id);
                CHECK_STR(v[1].id, c3.id);
                CHECK_STR(v[2].id, c1.id);
                check_ctr_eq(&v[1], &c3);
        }
        store_ctrs_free(v, n);

        /* a pod update is an upsert: it must not cascade to the containers */
        p.state = STORE_POD_NOTREADY;
        CHECK(store_pod_put(s, &p, &e) == 0);
        CHECK(store_ctr_list(s, p.id, &v, &n, &e) == 0 && n == 2);
        store_ctrs_free(v, n);

        /* container of a missing pod */
        struct store_container orphan;
        char missing[ID_LEN + 1];
        id_generate(missing);
        make_ctr(&orphan, missing, "o", 1);
        CHECK(store_ctr_put(s, &orphan, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(e.msg && strstr(e.msg, missing));
        CHECK(store_ctr_get(s, orphan.id, &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        store_ctr_clear(&orphan);

        /* delete one; then the pod cascades to the rest */
        CHECK(store_ctr_delete(s, c2.id, &e) == 0);
        CHECK(store_ctr_delete(s, c2.id, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_pod_delete(s, p.id, &e) == 0);
        CHECK(store_ctr_get(s, c1.id, &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_ctr_list(s, NULL, &v, &n, &e) == 0 && n == 1);
        if (n == 1)
                CHECK_STR(v[0].id, c3.id);
        store_ctrs_free(v, n);
        CHECK(store_pod_delete(s, p2.id, &e) == 0);
        CHECK(store_ctr_list(s, NULL, &v, &n, &e) == 0 && n == 0);
        store_ctrs_free(v, n);

        store_ctr_clear(&c1);
        store_ctr_clear(&c2);
        store_ctr_clear(&c3);
        store_pod_clear(&p);
        store_pod_clear(&p2);
}

static void make_image(struct store_image *img, const char *id, const char *const *names, int64_t created)
{
        memset(img, 0, sizeof(*img));
        img->id = xstrdup(id);
        for (size_t i = 0; names[i]; i++)
                strv_push(&img->names, names[i]);
        if (!img->names)
                img->names = xcalloc(1, sizeof(char *));
        img->manifest_digest = xasprintf("sha256:m-%s", id);
        img->config_json = xstrdup("{\"config\":{\"Cmd\":[\"sh\"]},\"rootfs\":{}}");
        strv_push(&img->chain_ids, "sha256:c1");
        strv_push(&img->chain_ids, "sha256:c2");
        strv_push(&img->blobs, "sha256:b1");
        strv_push(&img->blobs, "sha256:b2");
        strv_push(&img->blobs, "sha256:b\"quoted\\");
        img->size = 5ULL << 32; /* beyond 32 bits */
        img->created_ns = created;
        img->pinned = true;
}

static void check_image_eq(const struct store_image *a, const struct store_image *b)
{
        CHECK_NSTR(a->id, b->id);
        CHECK(strv_eq(a->names, b->names));
        CHECK_NSTR(a->manifest_digest, b->manifest_digest);
        CHECK_NSTR(a->config_json, b->config_json);
        CHECK(strv_eq(a->chain_ids, b->chain_ids));
        CHECK(strv_eq(a->blobs, b->blobs));
        CHECK(a->size == b->size);
        CHECK(a->created_ns == b->created_ns);
        CHECK(a->pinned == b->pinned);
}

static void test_images(void)
{
        cleanup_err struct err e = ERR_INIT;
        struct store_image a, b, q;
        make_image(&a, "sha256:aaa", (const char *const[]){"busybox:latest", "busybox@sha256:m1", NULL}, 20);
        make_image(&b, "sha256:bbb", (const char *const[]){"alpine:3", NULL}, 10);
        CHECK(store_image_put(s, &a, &e) == 0);
        CHECK(store_image_put(s, &b, &e) == 0);
        CHECK(store_image_get(s, a.id, &q, &e) == 0);
        check_image_eq(&a, &q);
        store_image_clear(&q);
        CHECK(store_image_find_name(s, "busybox@sha256:m1", &q, &e) == 0);
        check_image_eq(&a, &q);
        store_image_clear(&q);

        /* the tag moves from a to b, as when busybox:latest is re-pulled */
        strv_free(b.names);
        b.names = NULL;
        strv_push(&b.names, "alpine:3");
        strv_push(&b.names, "busybox:latest");
        CHECK(store_image_put(s, &b, &e) == 0);
        CHECK(store_image_find_name(s, "busybox:latest", &q, &e) == 0);
        CHECK_STR(q.id, "sha256:bbb");
        store_image_clear(&q);
        CHECK(store_image_get(s, a.id, &q, &e) == 0);
        CHECK(strv_len(q.names) == 1);
        CHECK_STR(q.names[0], "busybox@sha256:m1");
        store_image_clear(&q);

        /* a re-put drops names not listed any more */
        strv_free(b.names);
        b.names = NULL;
        strv_push(&b.names, "busybox:latest");
        CHECK(store_image_put(s, &b, &e) == 0);
        CHECK(store_image_find_name(s, "alpine:3", &q, &e) < 0 && e.kind == ERR_NOT_FOUND);

        /* removing the last name keeps the record */
        CHECK(store_image_remove_name(s, "busybox@sha256:m1", &e) == 0);
        CHECK(store_image_remove_name(s, "busybox@sha256:m1", &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_image_get(s, a.id, &q, &e) == 0);
        CHECK(q.names && q.names[0] == NULL);
        store_image_clear(&q);

        /* NULL vectors stay NULL, empty ones stay empty */
        struct store_image m = {0};
        m.id = xstrdup("sha256:mmm");
        m.blobs = xcalloc(1, sizeof(char *));
        m.created_ns = 30;
        CHECK(store_image_put(s, &m, &e) == 0);
        CHECK(store_image_get(s, m.id, &q, &e) == 0);
        CHECK(q.chain_ids == NULL);
        CHECK(q.blobs && q.blobs[0] == NULL);
        CHECK(q.manifest_digest == NULL && q.config_json == NULL && !q.pinned && q.size == 0);
        store_image_clear(&q);

        struct store_image *v = NULL;
        size_t n = 0;
        CHECK(store_image_list(s, &v, &n, &e) == 0 && n == 3);
        if (n == 3) {
                check_image_eq(&v[0], &b);
                CHECK_STR(v[1].id, a.id);
                CHECK_STR(v[2].id, m.id);
        }
        store_images_free(v, n);

        /* a failing put changes nothing (the empty name fails mid-way) */
        struct store_image bad;
        make_image(&bad, "sha256:bad", (const char *const[]){"bad:1", "", NULL}, 40);
        CHECK(store_image_put(s, &bad, &e) < 0 && e.kind == ERR_INVALID);
        CHECK(store_image_get(s, bad.id, &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_image_find_name(s, "bad:1", &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        store_image_clear(&bad);

        /* delete takes the names along */
        CHECK(store_image_delete(s, b.id, &e) == 0);
        CHECK(store_image_find_name(s, "busybox:latest", &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_image_delete(s, b.id, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_image_get(s, "sha256:nope", &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_image_delete(s, a.id, &e) == 0);
        CHECK(store_image_delete(s, m.id, &e) == 0);
        store_image_clear(&a);
        store_image_clear(&b);
        store_image_clear(&m);
}

static void test_snapshots(void)
{
        cleanup_err struct err e = ERR_INIT;
        struct store_snapshot base = {.key = xstrdup("sha256:chain1"),
                                      .kind = STORE_SNAP_COMMITTED,
                                      .dir = xstrdup("1"),
                                      .created_ns = 5,
                                      .size = 1ULL << 40,
                                      .inodes = 77,
                                      .labels_json = xstrdup("{\"x\":\"y\"}")};
        struct store_snapshot top = {.key = xstrdup("ctr1"),
                                     .parent = xstrdup("sha256:chain1"),
                                     .kind = STORE_SNAP_ACTIVE,
                                     .dir = xstrdup("2"),
                                     .created_ns = 6};
        struct store_snapshot q;
        CHECK(store_snap_put(s, &top, &e) < 0 && e.kind == ERR_NOT_FOUND); /* parent first */
        CHECK(e.msg && strstr(e.msg, "sha256:chain1"));
        CHECK(store_snap_put(s, &base, &e) == 0);
        CHECK(store_snap_put(s, &top, &e) == 0);
        CHECK(store_snap_get(s, "sha256:chain1", &q, &e) == 0);
        CHECK_STR(q.key, base.key);
        CHECK(q.parent == NULL);
        CHECK(q.kind == STORE_SNAP_COMMITTED);
        CHECK_STR(q.dir, "1");
        CHECK(q.created_ns == 5 && q.size == 1ULL << 40 && q.inodes == 77);
        CHECK_STR(q.labels_json, base.labels_json);
        store_snap_clear(&q);
        CHECK(store_snap_get(s, "ctr1", &q, &e) == 0);
        CHECK_STR(q.parent, "sha256:chain1");
        CHECK(q.kind == STORE_SNAP_ACTIVE && q.labels_json == NULL);
        store_snap_clear(&q);

        /* usage update is an upsert: the child stays */
        base.size = 123;
        CHECK(store_snap_put(s, &base, &e) == 0);
        size_t n = 99;
        CHECK(store_snap_children(s, "sha256:chain1", &n, &e) == 0 && n == 1);
        CHECK(store_snap_children(s, "ctr1", &n, &e) == 0 && n == 0);
        CHECK(store_snap_delete(s, "sha256:chain1", &e) < 0 && e.kind == ERR_PRECONDITION);
        struct store_snapshot *v = NULL;
        CHECK(store_snap_list(s, &v, &n, &e) == 0 && n == 2);
        if (n == 2) {
                CHECK_STR(v[0].key, "sha256:chain1");
                CHECK(v[0].size == 123);
                CHECK_STR(v[1].key, "ctr1");
        }
        store_snaps_free(v, n);
        CHECK(store_snap_delete(s, "ctr1", &e) == 0);
        CHECK(store_snap_delete(s, "sha256:chain1", &e) == 0);
        CHECK(store_snap_delete(s, "sha256:chain1", &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_snap_get(s, "ctr1", &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        store_snap_clear(&base);
        store_snap_clear(&top);
}

static void test_tx_rollback(void)
{
        cleanup_err struct err e = ERR_INIT;
        struct store_pod p, q;
        struct store_container c, cq;
        struct store_image img, iq;
        make_pod(&p, "tx", 1);
        make_ctr(&c, p.id, "tx", 1);
        make_image(&img, "sha256:tx", (const char *const[]){"tx:1", NULL}, 1);
        CHECK(store_tx_begin(s, &e) == 0);
        CHECK(store_pod_put(s, &p, &e) == 0);
        CHECK(store_ctr_put(s, &c, &e) == 0);
        CHECK(store_image_put(s, &img, &e) == 0);
        CHECK(store_meta_set(s, "txkey", "1", &e) == 0);
        CHECK(store_pod_get(s, p.id, &q, &e) == 0); /* visible inside */
        store_pod_clear(&q);
        store_tx_rollback(s);
        CHECK(store_pod_get(s, p.id, &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_ctr_get(s, c.id, &cq, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_image_find_name(s, "tx:1", &iq, &e) < 0 && e.kind == ERR_NOT_FOUND);
        cleanup_free char *mv = NULL;
        CHECK(store_meta_get(s, "txkey", &mv, &e) == 0 && mv == NULL);

        /* commit keeps everything; a failing call inside leaves the rest */
        CHECK(store_tx_begin(s, &e) == 0);
        CHECK(store_pod_put(s, &p, &e) == 0);
        struct store_image bad;
        make_image(&bad, "sha256:bad2", (const char *const[]){"bad2:1", "", NULL}, 1);
        CHECK(store_image_put(s, &bad, &e) < 0);
        store_image_clear(&bad);
        CHECK(store_ctr_put(s, &c, &e) == 0);
        CHECK(store_tx_commit(s, &e) == 0);
        CHECK(store_pod_get(s, p.id, &q, &e) == 0);
        store_pod_clear(&q);
        CHECK(store_ctr_get(s, c.id, &cq, &e) == 0);
        store_ctr_clear(&cq);
        CHECK(store_image_find_name(s, "bad2:1", &iq, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_pod_delete(s, p.id, &e) == 0);

        CHECK(store_tx_commit(s, &e) < 0 && e.kind == ERR_PRECONDITION);
        store_tx_rollback(s); /* harmless without a transaction */
        store_pod_clear(&p);
        store_ctr_clear(&c);
        store_image_clear(&img);
}

static void test_tx_nested(void)
{
        cleanup_err struct err e = ERR_INIT;
        struct store_pod a, b, q;
        make_pod(&a, "na", 1);
        make_pod(&b, "nb", 2);

        /* inner commit writes nothing yet; the outer rollback undoes both */
        CHECK(store_tx_begin(s, &e) == 0);
        CHECK(store_pod_put(s, &a, &e) == 0);
        CHECK(store_tx_begin(s, &e) == 0);
        CHECK(store_pod_put(s, &b, &e) == 0);
        CHECK(store_tx_commit(s, &e) == 0);
        store_tx_rollback(s);
        CHECK(store_pod_get(s, a.id, &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_pod_get(s, b.id, &q, &e) < 0 && e.kind == ERR_NOT_FOUND);

        /* both commits: both there */
        CHECK(store_tx_begin(s, &e) == 0);
        CHECK(store_pod_put(s, &a, &e) == 0);
        CHECK(store_tx_begin(s, &e) == 0);
        CHECK(store_pod_put(s, &b, &e) == 0);
        CHECK(store_tx_commit(s, &e) == 0);
        CHECK(store_tx_commit(s, &e) == 0);
        CHECK(store_pod_get(s, a.id, &q, &e) == 0);
        store_pod_clear(&q);
        CHECK(store_pod_get(s, b.id, &q, &e) == 0);
        store_pod_clear(&q);
        CHECK(store_pod_delete(s, a.id, &e) == 0);
        CHECK(store_pod_delete(s, b.id, &e) == 0);

        /* inner rollback undoes the whole transaction; later calls and the
         * outer commit report ERR_ABORTED */
        CHECK(store_tx_begin(s, &e) == 0);
        CHECK(store_pod_put(s, &a, &e) == 0);
        CHECK(store_tx_begin(s, &e) == 0);
        store_tx_rollback(s);
        CHECK(store_pod_put(s, &b, &e) < 0 && e.kind == ERR_ABORTED);
        CHECK(store_tx_commit(s, &e) < 0 && e.kind == ERR_ABORTED);
        CHECK(store_pod_get(s, a.id, &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_pod_get(s, b.id, &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        /* and the store works again afterwards */
        CHECK(store_pod_put(s, &a, &e) == 0);
        CHECK(store_pod_delete(s, a.id, &e) == 0);
        store_pod_clear(&a);
        store_pod_clear(&b);
}

struct waiter {
        struct store_pod *pod;
        volatile int done;
        int ret;
};

static void *waiter_main(void *arg)
{
        struct waiter *w = arg;
        struct err e = ERR_INIT;
        w->ret = store_pod_put(s, w->pod, &e);
        err_clear(&e);
        __atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
        return NULL;
}

/* Another thread's call waits for the transaction: were it to run inside
 * it, the rollback would take its write along. */
static void test_tx_other_thread_waits(void)
{
        cleanup_err struct err e = ERR_INIT;
        struct store_pod a, b, q;
        make_pod(&a, "ta", 1);
        make_pod(&b, "tb", 2);
        struct waiter w = {.pod = &b};
        CHECK(store_tx_begin(s, &e) == 0);
        CHECK(store_pod_put(s, &a, &e) == 0);
        pthread_t t;
        pthread_create(&t, NULL, waiter_main, &w);
        usleep(200 * 1000);
        CHECK(__atomic_load_n(&w.done, __ATOMIC_SEQ_CST) == 0);
        store_tx_rollback(s);
        pthread_join(t, NULL);
        CHECK(w.ret == 0);
        CHECK(store_pod_get(s, a.id, &q, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(store_pod_get(s, b.id, &q, &e) == 0);
        store_pod_clear(&q);
        CHECK(store_pod_delete(s, b.id, &e) == 0);
        store_pod_clear(&a);
        store_pod_clear(&b);
}

static void test_reopen(void)
{
        cleanup_err struct err e = ERR_INIT;
        struct store_pod p, q;
        make_pod(&p, "persist", 7);
        CHECK(store_pod_put(s, &p, &e) == 0);
        store_close(s);
        s = NULL;
        CHECK(store_open(dbpath, &s, &e) == 0);
        if (!s)
                return;
        CHECK(store_schema_version(s) == 3);
        CHECK(store_pod_get(s, p.id, &q, &e) == 0);
        check_pod_eq(&p, &q);
        store_pod_clear(&q);
        store_pod_clear(&p);
}

int main(void)
{
        cleanup_err struct err e = ERR_INIT;
        dir = scratch_dir("store-crud");
        dbpath = path_join(dir, "sub/dir/meta.db"); /* parents are created */
        if (store_open(dbpath, &s, &e) < 0) {
                fprintf(stderr, "store_open: %s\n", e.msg);
                return 1;
        }
        test_open();
        test_meta();
        test_pods();
        test_containers();
        test_images();
        test_snapshots();
        test_tx_rollback();
        test_tx_nested();
        test_tx_other_thread_waits();
        test_reopen();
        store_close(s);
        (void)rm_rf(dir, NULL);
        free(dbpath);
        free(dir);
        return check_report("test_store_crud");
}
