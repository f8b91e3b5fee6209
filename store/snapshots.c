/* store/snapshots.c: snapshot records for the snapshotter. The parent is a
 * foreign key: a snapshot cannot name a parent that does not exist, and a
 * parent cannot be deleted while it has children. */
#include <string.h>

#include "store/store-internal.h"

#define SNAP_COLS "key, parent, kind, dir, created_ns, size, inodes, labels_json"

static const char sql_put[] =
        "INSERT INTO snapshots(" SNAP_COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
        "ON CONFLICT(key) DO UPDATE SET parent = excluded.parent, kind = excluded.kind, "
        "dir = excluded.dir, created_ns = excluded.created_ns, size = excluded.size, "
        "inodes = excluded.inodes, labels_json = excluded.labels_json";
static const char sql_get[] = "SELECT " SNAP_COLS " FROM snapshots WHERE key = ?1";
static const char sql_delete[] = "DELETE FROM snapshots WHERE key = ?1";
static const char sql_children[] = "SELECT count(*) FROM snapshots WHERE parent = ?1";
static const char sql_list[] = "SELECT " SNAP_COLS " FROM snapshots ORDER BY created_ns, rowid";

static void read_row(sqlite3_stmt *st, struct store_snapshot *sn)
{
        memset(sn, 0, sizeof(*sn));
        sn->key = store_col_text(st, 0);
        sn->parent = store_col_text(st, 1);
        sn->kind = sqlite3_column_int(st, 2);
        sn->dir = store_col_text(st, 3);
        sn->created_ns = sqlite3_column_int64(st, 4);
        sn->size = (uint64_t)sqlite3_column_int64(st, 5);
        sn->inodes = (uint64_t)sqlite3_column_int64(st, 6);
        sn->labels_json = store_col_text(st, 7);
}

static int put_locked(struct store *s, const struct store_snapshot *sn, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql_put, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, sn->key);
        store_bind_text(st, 2, sn->parent);
        sqlite3_bind_int(st, 3, sn->kind);
        store_bind_text(st, 4, sn->dir);
        sqlite3_bind_int64(st, 5, sn->created_ns);
        sqlite3_bind_int64(st, 6, (int64_t)sn->size);
        sqlite3_bind_int64(st, 7, (int64_t)sn->inodes);
        store_bind_text(st, 8, sn->labels_json);
        if (store_step_done(s, st, NULL, e) < 0) {
                if (err_is(e, ERR_PRECONDITION))
                        return err_set(e, ERR_NOT_FOUND,
                                       "store: put snapshot %s: parent snapshot %s not found", sn->key,
                                       sn->parent);
                return err_wrap(e, "store: put snapshot %s", sn->key);
        }
        return 0;
}

int store_snap_put(struct store *s, const struct store_snapshot *sn, struct err *e)
{
        if (!sn->key || !*sn->key)
                return err_set(e, ERR_INVALID, "store: snapshot without a key");
        return STORE_LOCKED(s, e, put_locked(s, sn, e));
}

static int get_locked(struct store *s, const char *key, struct store_snapshot *out, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql_get, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, key);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                read_row(st, out);
                return 0;
        }
        if (rc == SQLITE_DONE)
                return err_set(e, ERR_NOT_FOUND, "snapshot %s not found", key);
        return store_sql_err(s, rc, e, "store: get snapshot %s", key);
}

int store_snap_get(struct store *s, const char *key, struct store_snapshot *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        return STORE_LOCKED(s, e, get_locked(s, key, out, e));
}

static int children_locked(struct store *s, const char *key, size_t *n, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql_children, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, key);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return store_sql_err(s, rc, e, "store: children of snapshot %s", key);
        *n = (size_t)sqlite3_column_int64(st, 0);
        return 0;
}

int store_snap_children(struct store *s, const char *key, size_t *n, struct err *e)
{
        *n = 0;
        return STORE_LOCKED(s, e, children_locked(s, key, n, e));
}

int store_snap_delete(struct store *s, const char *key, struct err *e)
{
        int ret = store_delete_by(s, sql_delete, key, "snapshot", e);
        if (ret < 0 && err_is(e, ERR_PRECONDITION))
                return err_set(e, ERR_PRECONDITION, "store: snapshot %s still has children", key);
        return ret;
}

static int list_locked(struct store *s, struct store_snapshot **out, size_t *n, struct err *e)
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
                return store_sql_err(s, rc, e, "store: list snapshots");
        return 0;
}

int store_snap_list(struct store *s, struct store_snapshot **out, size_t *n, struct err *e)
{
        *out = NULL;
        *n = 0;
        if (STORE_LOCKED(s, e, list_locked(s, out, n, e)) < 0) {
                store_snaps_free(*out, *n);
                *out = NULL;
                *n = 0;
                return -1;
        }
        return 0;
}

void store_snap_clear(struct store_snapshot *sn)
{
        if (!sn)
                return;
        free(sn->key);
        free(sn->parent);
        free(sn->dir);
        free(sn->labels_json);
        memset(sn, 0, sizeof(*sn));
}

void store_snaps_free(struct store_snapshot *v, size_t n)
{
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                store_snap_clear(&v[i]);
        free(v);
}
