/* store/containers.c: container records; each belongs to a pod and goes
 * with it (ON DELETE CASCADE). */
#include <string.h>

#include "store/store-internal.h"

#define CTR_COLS                                                                                             \
        "id, pod_id, name, attempt, image_ref, image_id, state, created_ns, started_ns, finished_ns, "       \
        "exit_code, pid, reason, message, log_path, labels_json, annotations_json, snapshot_key, config, "   \
        "extra_json"

static const char sql_put[] =
        "INSERT INTO containers(" CTR_COLS
        ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
        "?15, ?16, ?17, ?18, ?19, ?20) "
        "ON CONFLICT(id) DO UPDATE SET pod_id = excluded.pod_id, name = excluded.name, "
        "attempt = excluded.attempt, image_ref = excluded.image_ref, image_id = excluded.image_id, "
        "state = excluded.state, created_ns = excluded.created_ns, started_ns = excluded.started_ns, "
        "finished_ns = excluded.finished_ns, exit_code = excluded.exit_code, pid = excluded.pid, "
        "reason = excluded.reason, message = excluded.message, log_path = excluded.log_path, "
        "labels_json = excluded.labels_json, annotations_json = excluded.annotations_json, "
        "snapshot_key = excluded.snapshot_key, config = excluded.config, extra_json = excluded.extra_json";
static const char sql_get[] = "SELECT " CTR_COLS " FROM containers WHERE id = ?1";
static const char sql_delete[] = "DELETE FROM containers WHERE id = ?1";
static const char sql_list_all[] = "SELECT " CTR_COLS " FROM containers ORDER BY created_ns, rowid";
static const char sql_list_pod[] = "SELECT " CTR_COLS " FROM containers WHERE pod_id = ?1 "
                                   "ORDER BY created_ns, rowid";

static void read_row(sqlite3_stmt *st, struct store_container *c)
{
        memset(c, 0, sizeof(*c));
        store_col_id(st, 0, c->id);
        store_col_id(st, 1, c->pod_id);
        c->name = store_col_text(st, 2);
        c->attempt = (uint32_t)sqlite3_column_int64(st, 3);
        c->image_ref = store_col_text(st, 4);
        c->image_id = store_col_text(st, 5);
        c->state = sqlite3_column_int(st, 6);
        c->created_ns = sqlite3_column_int64(st, 7);
        c->started_ns = sqlite3_column_int64(st, 8);
        c->finished_ns = sqlite3_column_int64(st, 9);
        c->exit_code = sqlite3_column_int(st, 10);
        c->pid = sqlite3_column_int(st, 11);
        c->reason = store_col_text(st, 12);
        c->message = store_col_text(st, 13);
        c->log_path = store_col_text(st, 14);
        c->labels_json = store_col_text(st, 15);
        c->annotations_json = store_col_text(st, 16);
        c->snapshot_key = store_col_text(st, 17);
        c->config = store_col_blob(st, 18, &c->config_len);
        c->extra_json = store_col_text(st, 19);
}

static int put_locked(struct store *s, const struct store_container *c, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql_put, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, c->id);
        store_bind_text(st, 2, c->pod_id);
        store_bind_text(st, 3, c->name);
        sqlite3_bind_int64(st, 4, c->attempt);
        store_bind_text(st, 5, c->image_ref);
        store_bind_text(st, 6, c->image_id);
        sqlite3_bind_int(st, 7, c->state);
        sqlite3_bind_int64(st, 8, c->created_ns);
        sqlite3_bind_int64(st, 9, c->started_ns);
        sqlite3_bind_int64(st, 10, c->finished_ns);
        sqlite3_bind_int(st, 11, c->exit_code);
        sqlite3_bind_int(st, 12, c->pid);
        store_bind_text(st, 13, c->reason);
        store_bind_text(st, 14, c->message);
        store_bind_text(st, 15, c->log_path);
        store_bind_text(st, 16, c->labels_json);
        store_bind_text(st, 17, c->annotations_json);
        store_bind_text(st, 18, c->snapshot_key);
        store_bind_blob(st, 19, c->config, c->config_len);
        store_bind_text(st, 20, c->extra_json);
        if (store_step_done(s, st, NULL, e) < 0) {
                /* the only foreign key of a container is its pod */
                if (err_is(e, ERR_PRECONDITION))
                        return err_set(e, ERR_NOT_FOUND, "store: put container %s: pod %s not found", c->id,
                                       c->pod_id);
                return err_wrap(e, "store: put container %s", c->id);
        }
        return 0;
}

int store_ctr_put(struct store *s, const struct store_container *c, struct err *e)
{
        if (!c->id[0])
                return err_set(e, ERR_INVALID, "store: container without an id");
        if (!c->pod_id[0])
                return err_set(e, ERR_INVALID, "store: container %s without a pod id", c->id);
        return STORE_LOCKED(s, e, put_locked(s, c, e));
}

static int get_locked(struct store *s, const char *id, struct store_container *out, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql_get, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                read_row(st, out);
                return 0;
        }
        if (rc == SQLITE_DONE)
                return err_set(e, ERR_NOT_FOUND, "container %s not found", id);
        return store_sql_err(s, rc, e, "store: get container %s", id);
}

int store_ctr_get(struct store *s, const char *id, struct store_container *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        return STORE_LOCKED(s, e, get_locked(s, id, out, e));
}

int store_ctr_delete(struct store *s, const char *id, struct err *e)
{
        return store_delete_by(s, sql_delete, id, "container", e);
}

static int list_locked(struct store *s, const char *pod_id, struct store_container **out, size_t *n,
                       struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, pod_id ? sql_list_pod : sql_list_all, e);
        if (!st)
                return -1;
        if (pod_id)
                store_bind_text(st, 1, pod_id);
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
                return store_sql_err(s, rc, e, "store: list containers");
        return 0;
}

int store_ctr_list(struct store *s, const char *pod_id, struct store_container **out, size_t *n,
                   struct err *e)
{
        *out = NULL;
        *n = 0;
        if (STORE_LOCKED(s, e, list_locked(s, pod_id, out, n, e)) < 0) {
                store_ctrs_free(*out, *n);
                *out = NULL;
                *n = 0;
                return -1;
        }
        return 0;
}

void store_ctr_clear(struct store_container *c)
{
        if (!c)
                return;
        free(c->name);
        free(c->image_ref);
        free(c->image_id);
        free(c->reason);
        free(c->message);
        free(c->log_path);
        free(c->labels_json);
        free(c->annotations_json);
        free(c->snapshot_key);
        free(c->config);
        free(c->extra_json);
        memset(c, 0, sizeof(*c));
}

void store_ctrs_free(struct store_container *v, size_t n)
{
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                store_ctr_clear(&v[i]);
        free(v);
}
