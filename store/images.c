/* store/images.c: image records and the names (tags, digest references)
 * that point at them. A name belongs to one image at a time. The row goes
 * through the record layer; the names are this file's. */
#include <string.h>

#include "store/store-internal.h"

#define IMG_COLS "id, manifest_digest, config_json, chain_ids_json, blobs_json, size, created_ns, pinned"

static const char sql_put[] =
        "INSERT INTO images(" IMG_COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
        "ON CONFLICT(id) DO UPDATE SET manifest_digest = excluded.manifest_digest, "
        "config_json = excluded.config_json, chain_ids_json = excluded.chain_ids_json, "
        "blobs_json = excluded.blobs_json, size = excluded.size, created_ns = excluded.created_ns, "
        "pinned = excluded.pinned";
static const char sql_names_clear[] = "DELETE FROM image_names WHERE image_id = ?1";
/* Takes the name from whichever image held it. */
static const char sql_name_put[] =
        "INSERT INTO image_names(name, image_id, pos) VALUES(?1, ?2, ?3) "
        "ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, pos = excluded.pos";
static const char sql_names_get[] = "SELECT name FROM image_names WHERE image_id = ?1 ORDER BY pos, name";
static const char sql_get[] = "SELECT " IMG_COLS " FROM images WHERE id = ?1";
static const char sql_find_name[] = "SELECT image_id FROM image_names WHERE name = ?1";
static const char sql_name_delete[] = "DELETE FROM image_names WHERE name = ?1";
/* The names go with it (ON DELETE CASCADE), in the same statement. */
static const char sql_delete[] = "DELETE FROM images WHERE id = ?1";
static const char sql_list[] = "SELECT " IMG_COLS " FROM images ORDER BY created_ns, rowid";

/* Its names, read while the row's statement is still active, so a list
 * comes from one read transaction. */
static int read_names(struct store *s, void *rec, struct err *e)
{
        struct store_image *img = rec;
        cleanup_reset sqlite3_stmt *ns = store_stmt(s, sql_names_get, e);
        if (!ns)
                return -1;
        store_bind_text(ns, 1, img->id);
        /* Always a vector, possibly empty: callers loop without a NULL check. */
        img->names = xcalloc(1, sizeof(char *));
        int rc;
        while ((rc = sqlite3_step(ns)) == SQLITE_ROW)
                strv_push(&img->names, (const char *)sqlite3_column_text(ns, 0));
        if (rc != SQLITE_DONE)
                return store_sql_err(s, rc, e, "store: names of image %s", img->id);
        return 0;
}

static void clear_names(void *rec)
{
        strv_free(((struct store_image *)rec)->names);
}

static void copy_names(void *dst, const void *src)
{
        ((struct store_image *)dst)->names = strv_dup(((const struct store_image *)src)->names);
}

#define C(field, kind) STORE_COL(struct store_image, field, kind)
static const struct store_col cols[] = {
        C(id, STORE_COL_TEXT),        C(manifest_digest, STORE_COL_TEXT), C(config_json, STORE_COL_TEXT),
        C(chain_ids, STORE_COL_STRV), C(blobs, STORE_COL_STRV),           C(size, STORE_COL_U64),
        C(created_ns, STORE_COL_I64), C(pinned, STORE_COL_BOOL),
};
#undef C

static const struct store_table images = {
        .what = "image",
        .size = sizeof(struct store_image),
        .cols = cols,
        .n_cols = sizeof(cols) / sizeof(cols[0]),
        .sql_put = sql_put,
        .sql_get = sql_get,
        .sql_delete = sql_delete,
        .sql_list = sql_list,
        .after_read = read_names,
        .clear_extra = clear_names,
        .copy_extra = copy_names,
};

static int step_name(struct store *s, const char *sql, const char *a, const char *b, int64_t pos,
                     struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, a);
        if (b)
                store_bind_text(st, 2, b);
        if (pos >= 0)
                sqlite3_bind_int64(st, 3, pos);
        return store_step_done(s, st, NULL, e);
}

static int put_locked(struct store *s, const struct store_image *img, struct err *e)
{
        if (store_rec_put_locked(s, &images, img, e) < 0 ||
            step_name(s, sql_names_clear, img->id, NULL, -1, e) < 0)
                return -1;
        for (size_t i = 0; img->names && img->names[i]; i++) {
                if (!*img->names[i])
                        return err_set(e, ERR_INVALID, "empty image name");
                if (step_name(s, sql_name_put, img->names[i], img->id, (int64_t)i, e) < 0)
                        return -1;
        }
        return 0;
}

/* The image row, its names and the names it takes from other images land
 * together or not at all. */
static int put_group(struct store *s, const struct store_image *img, struct err *e)
{
        if (store_group_begin(s, e) < 0)
                return -1;
        return store_group_end(s, put_locked(s, img, e), e);
}

int store_image_put(struct store *s, const struct store_image *img, struct err *e)
{
        if (!img->id || !*img->id)
                return err_set(e, ERR_INVALID, "store: image without an id");
        if (STORE_LOCKED(s, e, put_group(s, img, e)) < 0)
                return err_wrap(e, "store: put image %s", img->id);
        return 0;
}

int store_image_get(struct store *s, const char *id, struct store_image *out, struct err *e)
{
        return store_rec_get(s, &images, id, out, e);
}

static int find_name_locked(struct store *s, const char *name, struct store_image *out, struct err *e)
{
        cleanup_free char *id = NULL;
        {
                cleanup_reset sqlite3_stmt *st = store_stmt(s, sql_find_name, e);
                if (!st)
                        return -1;
                store_bind_text(st, 1, name);
                int rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        return err_set(e, ERR_NOT_FOUND, "image %s not found", name);
                if (rc != SQLITE_ROW)
                        return store_sql_err(s, rc, e, "store: find image %s", name);
                id = store_col_text(st, 0);
        }
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql_get, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, id);
        return store_rec_one(s, &images, st, out, id, e);
}

int store_image_find_name(struct store *s, const char *name, struct store_image *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        return STORE_LOCKED(s, e, find_name_locked(s, name, out, e));
}

int store_image_remove_name(struct store *s, const char *name, struct err *e)
{
        return store_delete_by(s, sql_name_delete, name, "image name", e);
}

int store_image_delete(struct store *s, const char *id, struct err *e)
{
        return store_rec_delete(s, &images, id, e);
}

int store_image_list(struct store *s, struct store_image **out, size_t *n, struct err *e)
{
        return store_rec_list(s, &images, NULL, NULL, (void **)out, n, e);
}

void store_image_clear(struct store_image *img)
{
        store_rec_clear(&images, img);
}

void store_images_free(struct store_image *v, size_t n)
{
        store_rec_free(&images, v, n);
}
