/* store/pods.c: pod sandbox records. */
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
static const char sql_delete[] = "DELETE FROM pods WHERE id = ?1";
static const char sql_list[] = "SELECT " POD_COLS " FROM pods ORDER BY created_ns, rowid";

static void read_row(sqlite3_stmt *st, struct store_pod *p)
{
        memset(p, 0, sizeof(*p));
        store_col_id(st, 0, p->id);
        p->name = store_col_text(st, 1);
        p->uid = store_col_text(st, 2);
        p->namespace = store_col_text(st, 3);
        p->attempt = (uint32_t)sqlite3_column_int64(st, 4);
        p->state = sqlite3_column_int(st, 5);
        p->created_ns = sqlite3_column_int64(st, 6);
        p->runtime_handler = store_col_text(st, 7);
        p->labels_json = store_col_text(st, 8);
        p->annotations_json = store_col_text(st, 9);
        p->netns_path = store_col_text(st, 10);
        p->ips_json = store_col_text(st, 11);
        p->cgroup_parent = store_col_text(st, 12);
        p->config = store_col_blob(st, 13, &p->config_len);
        p->extra_json = store_col_text(st, 14);
}

static int put_locked(struct store *s, const struct store_pod *p, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql_put, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, p->id);
        store_bind_text(st, 2, p->name);
        store_bind_text(st, 3, p->uid);
        store_bind_text(st, 4, p->namespace);
        sqlite3_bind_int64(st, 5, p->attempt);
        sqlite3_bind_int(st, 6, p->state);
        sqlite3_bind_int64(st, 7, p->created_ns);
        store_bind_text(st, 8, p->runtime_handler);
        store_bind_text(st, 9, p->labels_json);
        store_bind_text(st, 10, p->annotations_json);
        store_bind_text(st, 11, p->netns_path);
        store_bind_text(st, 12, p->ips_json);
        store_bind_text(st, 13, p->cgroup_parent);
        store_bind_blob(st, 14, p->config, p->config_len);
        store_bind_text(st, 15, p->extra_json);
        if (store_step_done(s, st, NULL, e) < 0)
                return err_wrap(e, "store: put pod %s", p->id);
        return 0;
}

int store_pod_put(struct store *s, const struct store_pod *p, struct err *e)
{
        if (!p->id[0])
                return err_set(e, ERR_INVALID, "store: pod without an id");
        return STORE_LOCKED(s, e, put_locked(s, p, e));
}

/* Runs a one-row query; ERR_NOT_FOUND (naming `what`) when it is empty. */
static int get_one(struct store *s, sqlite3_stmt *st, struct store_pod *out, const char *what, struct err *e)
{
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                read_row(st, out);
                return 0;
        }
        if (rc == SQLITE_DONE)
                return err_set(e, ERR_NOT_FOUND, "pod %s not found", what);
        return store_sql_err(s, rc, e, "store: get pod %s", what);
}

static int get_locked(struct store *s, const char *id, struct store_pod *out, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql_get, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, id);
        return get_one(s, st, out, id, e);
}

int store_pod_get(struct store *s, const char *id, struct store_pod *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        return STORE_LOCKED(s, e, get_locked(s, id, out, e));
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
        return get_one(s, st, out, what, e);
}

int store_pod_find(struct store *s, const char *name, const char *ns, const char *uid, uint32_t attempt,
                   struct store_pod *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        return STORE_LOCKED(s, e, find_locked(s, name, ns, uid, attempt, out, e));
}

int store_pod_delete(struct store *s, const char *id, struct err *e)
{
        /* One statement: the cascade to the pod's containers is part of it. */
        return store_delete_by(s, sql_delete, id, "pod", e);
}

static int list_locked(struct store *s, struct store_pod **out, size_t *n, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql_list, e);
        if (!st)
                return -1;
        size_t cap = 0;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (*n == cap) {
                        cap = cap ? cap * 2 : 16;
                        *out = xrealloc(*out, cap * sizeof(**out));
                }
                read_row(st, &(*out)[(*n)++]);
        }
        if (rc != SQLITE_DONE)
                return store_sql_err(s, rc, e, "store: list pods");
        return 0;
}

int store_pod_list(struct store *s, struct store_pod **out, size_t *n, struct err *e)
{
        *out = NULL;
        *n = 0;
        if (STORE_LOCKED(s, e, list_locked(s, out, n, e)) < 0) {
                store_pods_free(*out, *n);
                *out = NULL;
                *n = 0;
                return -1;
        }
        return 0;
}

void store_pod_clear(struct store_pod *p)
{
        if (!p)
                return;
        free(p->name);
        free(p->uid);
        free(p->namespace);
        free(p->runtime_handler);
        free(p->labels_json);
        free(p->annotations_json);
        free(p->netns_path);
        free(p->ips_json);
        free(p->cgroup_parent);
        free(p->config);
        free(p->extra_json);
        memset(p, 0, sizeof(*p));
}

void store_pods_free(struct store_pod *v, size_t n)
{
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                store_pod_clear(&v[i]);
        free(v);
}
