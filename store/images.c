/* store/images.c: image records and the names (tags, digest references)
 * that point at them. A name belongs to one image at a time. */
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
static const char sql_delete[] = "DELETE FROM images WHERE id = ?1";
static const char sql_list[] = "SELECT " IMG_COLS " FROM images ORDER BY created_ns, rowid";

static int put_locked(struct store *s, const struct store_image *img, struct err *e)
{
        cleanup_free char *chain = store_strv_to_json(img->chain_ids);
        cleanup_free char *blobs = store_strv_to_json(img->blobs);
        sqlite3_stmt *st = store_stmt(s, sql_put, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, img->id);
        store_bind_text(st, 2, img->manifest_digest);
        store_bind_text(st, 3, img->config_json);
        store_bind_text(st, 4, chain);
        store_bind_text(st, 5, blobs);
        sqlite3_bind_int64(st, 6, (int64_t)img->size);
        sqlite3_bind_int64(st, 7, img->created_ns);
        sqlite3_bind_int(st, 8, img->pinned ? 1 : 0);
        int ret = store_step_done(s, st, NULL, e);
        sqlite3_reset(st);
        if (ret < 0)
                return -1;

        st = store_stmt(s, sql_names_clear, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, img->id);
        ret = store_step_done(s, st, NULL, e);
        sqlite3_reset(st);
        if (ret < 0)
                return -1;

        for (size_t i = 0; img->names && img->names[i]; i++) {
                if (!*img->names[i])
                        return err_set(e, ERR_INVALID, "empty image name");
                st = store_stmt(s, sql_name_put, e);
                if (!st)
                        return -1;
                store_bind_text(st, 1, img->names[i]);
                store_bind_text(st, 2, img->id);
                sqlite3_bind_int64(st, 3, (int64_t)i);
                ret = store_step_done(s, st, NULL, e);
                sqlite3_reset(st);
                if (ret < 0)
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

/* Row of sql_get / sql_list plus its names. */
static int read_image(struct store *s, sqlite3_stmt *st, struct store_image *img, struct err *e)
{
        memset(img, 0, sizeof(*img));
        img->id = store_col_text(st, 0);
        img->manifest_digest = store_col_text(st, 1);
        img->config_json = store_col_text(st, 2);
        img->size = (uint64_t)sqlite3_column_int64(st, 5);
        img->created_ns = sqlite3_column_int64(st, 6);
        img->pinned = sqlite3_column_int(st, 7) != 0;
        if (store_strv_from_json((const char *)sqlite3_column_text(st, 3), &img->chain_ids, e) < 0 ||
            store_strv_from_json((const char *)sqlite3_column_text(st, 4), &img->blobs, e) < 0)
                return err_wrap(e, "store: image %s", img->id);

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

static int get_locked(struct store *s, const char *id, struct store_image *out, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql_get, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return err_set(e, ERR_NOT_FOUND, "image %s not found", id);
        if (rc != SQLITE_ROW)
                return store_sql_err(s, rc, e, "store: get image %s", id);
        if (read_image(s, st, out, e) < 0) {
                store_image_clear(out);
                return -1;
        }
        return 0;
}

int store_image_get(struct store *s, const char *id, struct store_image *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        return STORE_LOCKED(s, e, get_locked(s, id, out, e));
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
        return get_locked(s, id, out, e);
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
        /* The names go with it (ON DELETE CASCADE), in the same statement. */
        return store_delete_by(s, sql_delete, id, "image", e);
}

static int list_locked(struct store *s, struct store_image **out, size_t *n, struct err *e)
{
        /* The list statement stays active while each image's names are
         * read, so all of it comes from one read transaction. */
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
                if (read_image(s, st, &(*out)[(*n)++], e) < 0)
                        return -1;
        }
        if (rc != SQLITE_DONE)
                return store_sql_err(s, rc, e, "store: list images");
        return 0;
}

int store_image_list(struct store *s, struct store_image **out, size_t *n, struct err *e)
{
        *out = NULL;
        *n = 0;
        if (STORE_LOCKED(s, e, list_locked(s, out, n, e)) < 0) {
                store_images_free(*out, *n);
                *out = NULL;
                *n = 0;
                return -1;
        }
        return 0;
}

void store_image_clear(struct store_image *img)
{
        if (!img)
                return;
        free(img->id);
        strv_free(img->names);
        free(img->manifest_digest);
        free(img->config_json);
        strv_free(img->chain_ids);
        strv_free(img->blobs);
        memset(img, 0, sizeof(*img));
}

void store_images_free(struct store_image *v, size_t n)
{
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                store_image_clear(&v[i]);
        free(v);
}
