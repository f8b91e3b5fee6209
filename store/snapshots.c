/* store/snapshots.c: snapshot records for the snapshotter (the table; the
 * record layer does the rest). The parent is a foreign key: a snapshot
 * cannot name a parent that does not exist, and a parent cannot be deleted
 * while it has children. */
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

#define C(field, kind) STORE_COL(struct store_snapshot, field, kind)
static const struct store_col cols[] = {
        C(key, STORE_COL_TEXT),   C(parent, STORE_COL_TEXT),      C(kind, STORE_COL_INT),
        C(dir, STORE_COL_TEXT),   C(created_ns, STORE_COL_I64),   C(size, STORE_COL_U64),
        C(inodes, STORE_COL_U64), C(labels_json, STORE_COL_TEXT),
};
#undef C

static const struct store_table snaps = {
        .what = "snapshot",
        .size = sizeof(struct store_snapshot),
        .cols = cols,
        .n_cols = sizeof(cols) / sizeof(cols[0]),
        .sql_put = sql_put,
        .sql_get = sql_get,
        .sql_delete = sql_delete,
        .sql_list = sql_list,
};

int store_snap_put(struct store *s, const struct store_snapshot *sn, struct err *e)
{
        if (!sn->key || !*sn->key)
                return err_set(e, ERR_INVALID, "store: snapshot without a key");
        if (store_rec_put(s, &snaps, sn, e) < 0) {
                if (err_is(e, ERR_PRECONDITION))
                        return err_set(e, ERR_NOT_FOUND,
                                       "store: put snapshot %s: parent snapshot %s not found", sn->key,
                                       sn->parent);
                return err_wrap(e, "store: put snapshot %s", sn->key);
        }
        return 0;
}

int store_snap_get(struct store *s, const char *key, struct store_snapshot *out, struct err *e)
{
        return store_rec_get(s, &snaps, key, out, e);
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
        int ret = store_rec_delete(s, &snaps, key, e);
        if (ret < 0 && err_is(e, ERR_PRECONDITION))
                return err_set(e, ERR_PRECONDITION, "store: snapshot %s still has children", key);
        return ret;
}

int store_snap_list(struct store *s, struct store_snapshot **out, size_t *n, struct err *e)
{
        return store_rec_list(s, &snaps, NULL, NULL, (void **)out, n, e);
}

void store_snap_clear(struct store_snapshot *sn)
{
        store_rec_clear(&snaps, sn);
}

void store_snaps_free(struct store_snapshot *v, size_t n)
{
        store_rec_free(&snaps, v, n);
}
