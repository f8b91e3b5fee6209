/* store/pods.c: pod sandbox records (the table; the record layer does the rest). */
#include <string.h>

#include "store/store-internal.h"

#define POD_COLS                                                                                             \
        "id, name, uid, namespace, attempt, state, created_ns, runtime_handler, labels_json, "               \
        "annotations_json, netns_path, ips_json, cgroup_parent, config, extra_json"

/* An upsert, not INSERT OR REPLACE: REPLACE deletes the old row first, and
 * that delete would cascade to the pod's containers. */
static const char sql_put[] =
        "INSERT INTO pods(" POD_COLS
        ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) "
        "ON CONFLICT(id) DO UPDATE SET name = excluded.name, uid = excluded.uid, "
        "namespace = excluded.namespace, attempt = excluded.attempt, state = excluded.state, "
        "created_ns = excluded.created_ns, runtime_handler = excluded.runtime_handler, "
        "labels_json = excluded.labels_json, annotations_json = excluded.annotations_json, "
        "netns_path = excluded.netns_path, ips_json = excluded.ips_json, "
        "cgroup_parent = excluded.cgroup_parent, config = excluded.config, extra_json = excluded.extra_json";
static const char sql_get[] = "SELECT " POD_COLS " FROM pods WHERE id = ?1";
/* IS, not =: a NULL uid or namespace matches a NULL one. Newest first, in
 * case the caller let two records share their metadata. */
static const char sql_find[] =
        "SELECT " POD_COLS " FROM pods WHERE name IS ?1 AND namespace IS ?2 AND uid IS ?3 "
        "AND attempt = ?4 ORDER BY created_ns DESC, rowid DESC LIMIT 1";
/* One statement: the cascade to the pod's containers is part of it. */
static const char sql_delete[] = "DELETE FROM pods WHERE id = ?1";
static const char sql_list[] = "SELECT " POD_COLS " FROM pods ORDER BY created_ns, rowid";

#define C(field, kind) STORE_COL(struct store_pod, field, kind)
static const struct store_col cols[] = {
        C(id, STORE_COL_ID),
        C(name, STORE_COL_TEXT),
        C(uid, STORE_COL_TEXT),
        C(namespace, STORE_COL_TEXT),
        C(attempt, STORE_COL_U32),
        C(state, STORE_COL_INT),
        C(created_ns, STORE_COL_I64),
        C(runtime_handler, STORE_COL_TEXT),
        C(labels_json, STORE_COL_TEXT),
        C(annotations_json, STORE_COL_TEXT),
        C(netns_path, STORE_COL_TEXT),
        C(ips_json, STORE_COL_TEXT),
        C(cgroup_parent, STORE_COL_TEXT),
        STORE_COL_B(struct store_pod, config, config_len),
        C(extra_json, STORE_COL_TEXT),
};
#undef C

static const struct store_table pods = {
        .what = "pod",
        .size = sizeof(struct store_pod),
        .cols = cols,
        .n_cols = sizeof(cols) / sizeof(cols[0]),
        .sql_put = sql_put,
        .sql_get = sql_get,
        .sql_delete = sql_delete,
        .sql_list = sql_list,
};

int store_pod_put(struct store *s, const struct store_pod *p, struct err *e)
{
        if (!p->id[0])
                return err_set(e, ERR_INVALID, "store: pod without an id");
        if (store_rec_put(s, &pods, p, e) < 0)
                return err_wrap(e, "store: put pod %s", p->id);
        return 0;
}

int store_pod_get(struct store *s, const char *id, struct store_pod *out, struct err *e)
{
        return store_rec_get(s, &pods, id, out, e);
}

static int find_locked(struct store *s, const char *name, const char *ns, const char *uid, uint32_t attempt,
                       struct store_pod *out, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql_find, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, name);
        store_bind_text(st, 2, ns);
        store_bind_text(st, 3, uid);
        sqlite3_bind_int64(st, 4, attempt);
        cleanup_free char *what = xasprintf("name=%s namespace=%s uid=%s attempt=%u", name ? name : "",
                                            ns ? ns : "", uid ? uid : "", attempt);
        return store_rec_one(s, &pods, st, out, what, e);
}

int store_pod_find(struct store *s, const char *name, const char *ns, const char *uid, uint32_t attempt,
                   struct store_pod *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        return STORE_LOCKED(s, e, find_locked(s, name, ns, uid, attempt, out, e));
}

int store_pod_delete(struct store *s, const char *id, struct err *e)
{
        return store_rec_delete(s, &pods, id, e);
}

int store_pod_list(struct store *s, struct store_pod **out, size_t *n, struct err *e)
{
        return store_rec_list(s, &pods, NULL, NULL, (void **)out, n, e);
}

void store_pod_copy(struct store_pod *dst, const struct store_pod *src)
{
        store_rec_copy(&pods, dst, src);
}

void store_pod_clear(struct store_pod *p)
{
        store_rec_clear(&pods, p);
}

void store_pods_free(struct store_pod *v, size_t n)
{
        store_rec_free(&pods, v, n);
}
