/* model/: records go to the journal and to memory together; memory is what
 * the journal holds after a reload; indexes by id, prefix and pod; a
 * pod's delete takes its containers; views follow each put; parallel puts
 * of different pods all land. */
#include <pthread.h>

#include "common.h"
#include "model/model.h"

static int views_alive;

static void *view_make(const struct store_container *c)
{
        views_alive++;
        return xstrdup(c->name);
}

static void view_free(void *v)
{
        views_alive--;
        free(v);
}

static const struct model_hooks hooks = {.ctr_view = view_make, .ctr_view_free = view_free};

static bool count_ctr(const struct store_container *c, const void *view, void *arg)
{
        CHECK_STR(view, c->name);
        (*(size_t *)arg)++;
        return true;
}

static bool count_pod(const struct store_pod *p, const void *view, void *arg)
{
        (void)p;
        CHECK(view == NULL);
        (*(size_t *)arg)++;
        return true;
}

struct worker {
        struct model *m;
        int n;
};

static void *put_many(void *arg)
{
        struct worker *w = arg;
        for (int i = 0; i < w->n; i++) {
                struct store_pod p;
                make_pod(&p, "par", i);
                CHECK(model_pod_put(w->m, &p, NULL) == 0);
                struct store_container c;
                make_ctr(&c, p.id, "par", i);
                CHECK(model_ctr_put(w->m, &c, NULL) == 0);
                store_ctr_clear(&c);
                store_pod_clear(&p);
        }
        return NULL;
}

int main(void)
{
        char *dir = scratch_dir("model");
        char *db = path_join(dir, "corral.db");
        struct store *s = NULL;
        struct err e = ERR_INIT;
        CHECK(store_open(db, &s, &e) == 0);
        struct model *m = NULL;
        CHECK(model_open(s, &hooks, &m, &e) == 0);

        struct store_pod p1, p2;
        make_pod(&p1, "a", 1);
        make_pod(&p2, "b", 2);
        CHECK(model_pod_put(m, &p1, &e) == 0);
        CHECK(model_pod_put(m, &p2, &e) == 0);
        struct store_container c1, c2, c3;
        make_ctr(&c1, p1.id, "1", 10);
        make_ctr(&c2, p2.id, "2", 11);
        make_ctr(&c3, p1.id, "3", 12);
        CHECK(model_ctr_put(m, &c1, &e) == 0);
        CHECK(model_ctr_put(m, &c2, &e) == 0);
        CHECK(model_ctr_put(m, &c3, &e) == 0);

        /* A container of a pod that does not exist: refused, nowhere. */
        struct store_container bad;
        make_ctr(&bad, "0000000000000000000000000000000000000000000000000000000000000000", "x", 13);
        CHECK(model_ctr_put(m, &bad, &e) < 0 && err_is(&e, ERR_NOT_FOUND));
        err_clear(&e);
        CHECK(model_ctr_count(m) == 3);

        /* Read back, by id and by prefix. */
        struct store_container got = {0};
        CHECK(model_ctr_get(m, c3.id, &got, &e) == 0);
        CHECK_STR(got.name, c3.name);
        CHECK(got.config_len == c3.config_len && memcmp(got.config, c3.config, c3.config_len) == 0);
        store_ctr_clear(&got);
        char full[ID_LEN + 1];
        char pre[13];
        memcpy(pre, c2.id, 12);
        pre[12] = '\0';
        CHECK(model_ctr_resolve(m, pre, full, &e) == 0);
        CHECK_STR(full, c2.id);
        CHECK(model_ctr_resolve(m, "zz", full, &e) < 0 && err_is(&e, ERR_NOT_FOUND));
        err_clear(&e);
        memcpy(pre, p1.id, 12);
        CHECK(model_pod_resolve(m, pre, full, &e) == 0);
        CHECK_STR(full, p1.id);

        /* By pod, oldest first. */
        struct store_container *v = NULL;
        size_t n = 0;
        CHECK(model_ctr_list(m, p1.id, &v, &n, &e) == 0);
        CHECK(n == 2);
        if (n == 2) {
                CHECK_STR(v[0].id, c1.id);
                CHECK_STR(v[1].id, c3.id);
        }
        store_ctrs_free(v, n);
        size_t k = 0;
        model_ctr_each(m, p2.id, count_ctr, &k);
        CHECK(k == 1);

        /* One record by id, lent with its view. */
        k = 0;
        CHECK(model_ctr_with(m, c2.id, count_ctr, &k) && k == 1);
        CHECK(!model_ctr_with(m, bad.id, count_ctr, &k) && k == 1);
        CHECK(model_pod_with(m, p1.id, count_pod, &k) && k == 2);

        /* Reads leave the generation alone; a change moves it (the key of
         * cri's list reply cache: a stale key would serve an old list). */
        uint64_t gen = model_gen(m);
        model_ctr_each(m, NULL, count_ctr, &k);
        CHECK(model_ctr_get(m, c3.id, &got, &e) == 0);
        store_ctr_clear(&got);
        CHECK(model_gen(m) == gen);

        /* An update replaces in place (order kept) and renews the view. */
        c1.state = STORE_CTR_EXITED;
        free(c1.name);
        c1.name = xstrdup("renamed");
        CHECK(model_ctr_put(m, &c1, &e) == 0);
        CHECK(model_gen(m) > gen);
        gen = model_gen(m);
        CHECK(model_pod_put(m, &p2, &e) == 0);
        CHECK(model_gen(m) > gen);
        k = 0;
        model_ctr_each(m, NULL, count_ctr, &k);
        CHECK(k == 3);
        CHECK(views_alive == 3);

        /* By metadata. */
        struct store_pod fp = {0};
        CHECK(model_pod_find(m, p2.name, p2.namespace, p2.uid, p2.attempt, &fp, &e) == 0);
        CHECK_STR(fp.id, p2.id);
        store_pod_clear(&fp);

        /* The pod's delete takes its containers, in the journal and here. */
        gen = model_gen(m);
        CHECK(model_pod_delete(m, p1.id, &e) == 0);
        CHECK(model_gen(m) > gen);
        CHECK(model_ctr_count(m) == 1);
        CHECK(views_alive == 1);
        CHECK(model_ctr_get(m, c3.id, &got, &e) < 0 && err_is(&e, ERR_NOT_FOUND));
        err_clear(&e);
        CHECK(store_ctr_get(s, c3.id, &got, &e) < 0);
        err_clear(&e);

        /* Parallel puts of different pods. */
        pthread_t t[4];
        struct worker w = {m, 50};
        for (int i = 0; i < 4; i++)
                pthread_create(&t[i], NULL, put_many, &w);
        for (int i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        CHECK(model_pod_count(m) == 1 + 200);
        CHECK(model_ctr_count(m) == 1 + 200);

        /* After a restart memory is what the journal holds. */
        model_free(m);
        CHECK(views_alive == 0);
        CHECK(model_open(s, &hooks, &m, &e) == 0);
        CHECK(model_pod_count(m) == 201);
        CHECK(model_ctr_count(m) == 201);
        CHECK(model_ctr_get(m, c2.id, &got, &e) == 0);
        CHECK_STR(got.pod_id, p2.id);
        store_ctr_clear(&got);
        model_free(m);
        store_close(s);

        store_pod_clear(&p1);
        store_pod_clear(&p2);
        store_ctr_clear(&c1);
        store_ctr_clear(&c2);
        store_ctr_clear(&c3);
        store_ctr_clear(&bad);
        (void)rm_rf(dir, NULL);
        free(db);
        free(dir);
        return check_report("test_model");
}
