/* store/containers.c: container records (the table; the record layer does
 * the rest); each belongs to a pod and goes with it (ON DELETE CASCADE). */
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

#define C(field, kind) STORE_COL(struct store_container, field, kind)
static const struct store_col cols[] = {
        C(id, STORE_COL_ID),
        C(pod_id, STORE_COL_ID),
        C(name, STORE_COL_TEXT),
        C(attempt, STORE_COL_U32),
        C(image_ref, STORE_COL_TEXT),
        C(image_id, STORE_COL_TEXT),
        C(state, STORE_COL_INT),
        C(created_ns, STORE_COL_I64),
        C(started_ns, STORE_COL_I64),
        C(finished_ns, STORE_COL_I64),
        C(exit_code, STORE_COL_INT),
        C(pid, STORE_COL_INT),
        C(reason, STORE_COL_TEXT),
        C(message, STORE_COL_TEXT),
        C(log_path, STORE_COL_TEXT),
        C(labels_json, STORE_COL_TEXT),
        C(annotations_json, STORE_COL_TEXT),
        C(snapshot_key, STORE_COL_TEXT),
        STORE_COL_B(struct store_container, config, config_len),
        C(extra_json, STORE_COL_TEXT),
};
#undef C

static const struct store_table ctrs = {
        .what = "container",
        .size = sizeof(struct store_container),
        .cols = cols,
        .n_cols = sizeof(cols) / sizeof(cols[0]),
        .sql_put = sql_put,
        .sql_get = sql_get,
        .sql_delete = sql_delete,
        .sql_list = sql_list_all,
};

int store_ctr_put(struct store *s, const struct store_container *c, struct err *e)
{
        if (!c->id[0])
                return err_set(e, ERR_INVALID, "store: container without an id");
        if (!c->pod_id[0])
                return err_set(e, ERR_INVALID, "store: container %s without a pod id", c->id);
        if (store_rec_put(s, &ctrs, c, e) < 0) {
                /* the only foreign key of a container is its pod */
                if (err_is(e, ERR_PRECONDITION))
                        return err_set(e, ERR_NOT_FOUND, "store: put container %s: pod %s not found", c->id,
                                       c->pod_id);
                return err_wrap(e, "store: put container %s", c->id);
        }
        return 0;
}

int store_ctr_get(struct store *s, const char *id, struct store_container *out, struct err *e)
{
        return store_rec_get(s, &ctrs, id, out, e);
}

int store_ctr_delete(struct store *s, const char *id, struct err *e)
{
        return store_rec_delete(s, &ctrs, id, e);
}

int store_ctr_list(struct store *s, const char *pod_id, struct store_container **out, size_t *n,
                   struct err *e)
{
        return store_rec_list(s, &ctrs, pod_id ? sql_list_pod : NULL, pod_id, (void **)out, n, e);
}

void store_ctr_copy(struct store_container *dst, const struct store_container *src)
{
        store_rec_copy(&ctrs, dst, src);
}

void store_ctr_clear(struct store_container *c)
{
        store_rec_clear(&ctrs, c);
}

void store_ctrs_free(struct store_container *v, size_t n)
{
        store_rec_free(&ctrs, v, n);
}
