/* store: 8 threads x 500 mixed operations (puts, gets, deletes with cascade,
 * read-modify-write transactions, rolled-back transactions) on one store;
 * afterwards the contents equal what the threads believe they wrote. */
#include <pthread.h>
#include <sqlite3.h>
#include <string.h>

#include "tests/unit/store/common.h"

#define NTHREADS 8
#define NOPS     500

static struct store *s;

struct own_pod {
        char id[ID_LEN + 1];
        size_t n_ctrs;
};

struct worker {
        int idx;
        struct own_pod pods[NOPS];
        size_t n_pods;
        unsigned increments;
        unsigned seed;
        int failures; /* checks made off the main thread */
};

static int counter_increment(struct err *e)
{
        if (store_tx_begin(s, e) < 0)
                return -1;
        cleanup_free char *v = NULL;
        if (store_meta_get(s, "counter", &v, e) < 0) {
                store_tx_rollback(s);
                return -1;
        }
        char buf[32];
        snprintf(buf, sizeof(buf), "%ld", (v ? strtol(v, NULL, 10) : 0) + 1);
        if (store_meta_set(s, "counter", buf, e) < 0) {
                store_tx_rollback(s);
                return -1;
        }
        return store_tx_commit(s, e);
}

static void *worker_main(void *arg)
{
        struct worker *w = arg;
        struct err e = ERR_INIT;
        for (int i = 0; i < NOPS; i++) {
                int op = rand_r(&w->seed) % 6;
                if (w->n_pods == 0)
                        op = 0;
                char tag[32];
                snprintf(tag, sizeof(tag), "%d-%d", w->idx, i);
                if (op == 0) {
                        struct store_pod p;
                        make_pod(&p, tag, i);
                        if (store_pod_put(s, &p, &e) == 0) {
                                memcpy(w->pods[w->n_pods].id, p.id, sizeof(p.id));
                                w->pods[w->n_pods++].n_ctrs = 0;
                        } else {
                                w->failures++;
                        }
                        store_pod_clear(&p);
                } else if (op == 1) {
                        struct own_pod *op_ = &w->pods[rand_r(&w->seed) % w->n_pods];
                        struct store_container c;
                        make_ctr(&c, op_->id, tag, i);
                        if (store_ctr_put(s, &c, &e) == 0)
                                op_->n_ctrs++;
                        else
                                w->failures++;
                        store_ctr_clear(&c);
                } else if (op == 2) {
                        if (counter_increment(&e) == 0)
                                w->increments++;
                        else
                                w->failures++;
                } else if (op == 3) {
                        /* written then rolled back: must never show up */
                        struct store_pod p;
                        struct store_container c;
                        make_pod(&p, "ghost", i);
                        make_ctr(&c, p.id, "ghost", i);
                        if (store_tx_begin(s, &e) < 0 || store_pod_put(s, &p, &e) < 0 ||
                            store_ctr_put(s, &c, &e) < 0)
                                w->failures++;
                        store_tx_rollback(s);
                        store_pod_clear(&p);
                        store_ctr_clear(&c);
                } else if (op == 4) {
                        size_t k = rand_r(&w->seed) % w->n_pods;
                        struct store_pod q;
                        if (store_pod_get(s, w->pods[k].id, &q, &e) < 0 || strcmp(q.id, w->pods[k].id) != 0)
                                w->failures++;
                        store_pod_clear(&q);
                        struct store_container *v = NULL;
                        size_t n = 0;
                        if (store_ctr_list(s, w->pods[k].id, &v, &n, &e) < 0 || n != w->pods[k].n_ctrs)
                                w->failures++;
                        store_ctrs_free(v, n);
                } else {
                        size_t k = rand_r(&w->seed) % w->n_pods;
                        if (store_pod_delete(s, w->pods[k].id, &e) < 0)
                                w->failures++;
                        w->pods[k] = w->pods[--w->n_pods];
                }
                if (e.msg) {
                        fprintf(stderr, "worker %d op %d: %s\n", w->idx, op, e.msg);
                        err_clear(&e);
                }
        }
        return NULL;
}

int main(void)
{
        cleanup_err struct err e = ERR_INIT;
        cleanup_free char *dir = scratch_dir("store-threads");
        cleanup_free char *path = path_join(dir, "meta.db");
        if (store_open(path, &s, &e) < 0) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
        }
        static struct worker w[NTHREADS];
        pthread_t t[NTHREADS];
        for (int i = 0; i < NTHREADS; i++) {
                w[i].idx = i;
                w[i].seed = 1234 + i;
                pthread_create(&t[i], NULL, worker_main, &w[i]);
        }
        size_t want_pods = 0, want_ctrs = 0;
        unsigned want_incr = 0;
        for (int i = 0; i < NTHREADS; i++) {
                pthread_join(t[i], NULL);
                CHECK(w[i].failures == 0);
                want_pods += w[i].n_pods;
                want_incr += w[i].increments;
                for (size_t k = 0; k < w[i].n_pods; k++)
                        want_ctrs += w[i].pods[k].n_ctrs;
        }
        CHECK(want_incr > 0 && want_pods > 0 && want_ctrs > 0);

        struct store_pod *pods = NULL;
        size_t np = 0;
        CHECK(store_pod_list(s, &pods, &np, &e) == 0);
        CHECK(np == want_pods);
        for (size_t i = 0; i < np; i++)
                CHECK(strcmp(pods[i].name, "pod-ghost") != 0);
        store_pods_free(pods, np);
        for (int i = 0; i < NTHREADS; i++) {
                for (size_t k = 0; k < w[i].n_pods; k++) {
                        struct store_pod q;
                        CHECK(store_pod_get(s, w[i].pods[k].id, &q, &e) == 0);
                        store_pod_clear(&q);
                }
        }
        struct store_container *ctrs = NULL;
        size_t nc = 0;
        CHECK(store_ctr_list(s, NULL, &ctrs, &nc, &e) == 0);
        CHECK(nc == want_ctrs);
        store_ctrs_free(ctrs, nc);
        cleanup_free char *v = NULL;
        CHECK(store_meta_get(s, "counter", &v, &e) == 0 && v);
        CHECK(v && strtoul(v, NULL, 10) == want_incr);
        fprintf(stderr, "pods=%zu containers=%zu increments=%u\n", want_pods, want_ctrs, want_incr);
        store_close(s);

        /* the file is sound */
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        CHECK(sqlite3_open(path, &db) == SQLITE_OK);
        CHECK(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK);
        CHECK(sqlite3_step(st) == SQLITE_ROW);
        CHECK_STR((const char *)sqlite3_column_text(st, 0), "ok");
        sqlite3_finalize(st);
        sqlite3_close(db);
        (void)rm_rf(dir, NULL);
        return check_report("test_store_threads");
}
