/* store/record.c: the one record layer. A table is described once (its
 * columns: name, C type, offset in the record struct); binding a put,
 * reading a row, listing, clearing and copying are written here once for
 * every table instead of once per table. */
#include <string.h>

#include "store/store-internal.h"

#define FIELD(rec, c, type)  ((type *)((char *)(rec) + (c)->off))
#define CFIELD(rec, c, type) ((const type *)((const char *)(rec) + (c)->off))

static void bind_col(sqlite3_stmt *st, int idx, const struct store_col *c, const void *rec)
{
        switch (c->type) {
        case STORE_COL_ID:
                store_bind_text(st, idx, CFIELD(rec, c, char));
                break;
        case STORE_COL_TEXT:
                store_bind_text(st, idx, *CFIELD(rec, c, char *));
                break;
        case STORE_COL_INT:
                sqlite3_bind_int(st, idx, *CFIELD(rec, c, int));
                break;
        case STORE_COL_U32:
                sqlite3_bind_int64(st, idx, *CFIELD(rec, c, uint32_t));
                break;
        case STORE_COL_I64:
                sqlite3_bind_int64(st, idx, *CFIELD(rec, c, int64_t));
                break;
        case STORE_COL_U64:
                sqlite3_bind_int64(st, idx, (int64_t)*CFIELD(rec, c, uint64_t));
                break;
        case STORE_COL_BOOL:
                sqlite3_bind_int(st, idx, *CFIELD(rec, c, bool) ? 1 : 0);
                break;
        case STORE_COL_BLOB:
                store_bind_blob(st, idx, *CFIELD(rec, c, uint8_t *),
                                *(const size_t *)((const char *)rec + c->len_off));
                break;
        case STORE_COL_STRV: {
                char *json = store_strv_to_json(*(char **const *)((const char *)rec + c->off));
                sqlite3_bind_text(st, idx, json, -1, free);
                break;
        }
        }
}

int store_rec_read(const struct store_table *t, sqlite3_stmt *st, void *rec, struct err *e)
{
        memset(rec, 0, t->size);
        for (size_t i = 0; i < t->n_cols; i++) {
                const struct store_col *c = &t->cols[i];
                int col = (int)i;
                switch (c->type) {
                case STORE_COL_ID:
                        store_col_id(st, col, FIELD(rec, c, char));
                        break;
                case STORE_COL_TEXT:
                        *FIELD(rec, c, char *) = store_col_text(st, col);
                        break;
                case STORE_COL_INT:
                        *FIELD(rec, c, int) = sqlite3_column_int(st, col);
                        break;
                case STORE_COL_U32:
                        *FIELD(rec, c, uint32_t) = (uint32_t)sqlite3_column_int64(st, col);
                        break;
                case STORE_COL_I64:
                        *FIELD(rec, c, int64_t) = sqlite3_column_int64(st, col);
                        break;
                case STORE_COL_U64:
                        *FIELD(rec, c, uint64_t) = (uint64_t)sqlite3_column_int64(st, col);
                        break;
                case STORE_COL_BOOL:
                        *FIELD(rec, c, bool) = sqlite3_column_int(st, col) != 0;
                        break;
                case STORE_COL_BLOB:
                        *FIELD(rec, c, uint8_t *) =
                                store_col_blob(st, col, (size_t *)((char *)rec + c->len_off));
                        break;
                case STORE_COL_STRV:
                        if (store_strv_from_json((const char *)sqlite3_column_text(st, col),
                                                 FIELD(rec, c, char **), e) < 0) {
                                store_rec_clear(t, rec);
                                return err_wrap(e, "store: %s column %s", t->what, c->name);
                        }
                        break;
                }
        }
        return 0;
}

int store_rec_put_locked(struct store *s, const struct store_table *t, const void *rec, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, t->sql_put, e);
        if (!st)
                return -1;
        for (size_t i = 0; i < t->n_cols; i++)
                bind_col(st, (int)i + 1, &t->cols[i], rec);
        return store_step_done(s, st, NULL, e);
}

int store_rec_put(struct store *s, const struct store_table *t, const void *rec, struct err *e)
{
        return STORE_LOCKED(s, e, store_rec_put_locked(s, t, rec, e));
}

/* The row and what the table keeps beside it (an image's names). */
static int read_full(struct store *s, const struct store_table *t, sqlite3_stmt *st, void *rec, struct err *e)
{
        if (store_rec_read(t, st, rec, e) < 0)
                return -1;
        if (t->after_read && t->after_read(s, rec, e) < 0) {
                store_rec_clear(t, rec);
                return -1;
        }
        return 0;
}

int store_rec_one(struct store *s, const struct store_table *t, sqlite3_stmt *st, void *out, const char *what,
                  struct err *e)
{
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                return read_full(s, t, st, out, e);
        if (rc == SQLITE_DONE)
                return err_set(e, ERR_NOT_FOUND, "%s %s not found", t->what, what);
        return store_sql_err(s, rc, e, "store: get %s %s", t->what, what);
}

static int get_locked(struct store *s, const struct store_table *t, const char *key, void *out, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, t->sql_get, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, key);
        return store_rec_one(s, t, st, out, key, e);
}

int store_rec_get(struct store *s, const struct store_table *t, const char *key, void *out, struct err *e)
{
        memset(out, 0, t->size);
        return STORE_LOCKED(s, e, get_locked(s, t, key, out, e));
}

int store_rec_delete(struct store *s, const struct store_table *t, const char *key, struct err *e)
{
        return store_delete_by(s, t->sql_delete, key, t->what, e);
}

static int list_locked(struct store *s, const struct store_table *t, const char *sql, const char *key,
                       void **out, size_t *n, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql, e);
        if (!st)
                return -1;
        if (key)
                store_bind_text(st, 1, key);
        size_t cap = 0;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (*n == cap) {
                        cap = cap ? cap * 2 : 16;
                        *out = xrealloc(*out, cap * t->size);
                }
                if (read_full(s, t, st, (char *)*out + *n * t->size, e) < 0)
                        return -1;
                (*n)++;
        }
        if (rc != SQLITE_DONE)
                return store_sql_err(s, rc, e, "store: list %ss", t->what);
        return 0;
}

int store_rec_list(struct store *s, const struct store_table *t, const char *sql, const char *key, void **out,
                   size_t *n, struct err *e)
{
        *out = NULL;
        *n = 0;
        if (STORE_LOCKED(s, e, list_locked(s, t, sql ? sql : t->sql_list, key, out, n, e)) < 0) {
                store_rec_free(t, *out, *n);
                *out = NULL;
                *n = 0;
                return -1;
        }
        return 0;
}

void store_rec_clear(const struct store_table *t, void *rec)
{
        if (rec == NULL)
                return;
        for (size_t i = 0; i < t->n_cols; i++) {
                const struct store_col *c = &t->cols[i];
                if (c->type == STORE_COL_TEXT || c->type == STORE_COL_BLOB)
                        free(*FIELD(rec, c, void *));
                else if (c->type == STORE_COL_STRV)
                        strv_free(*FIELD(rec, c, char **));
        }
        if (t->clear_extra)
                t->clear_extra(rec);
        memset(rec, 0, t->size);
}

void store_rec_free(const struct store_table *t, void *v, size_t n)
{
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                store_rec_clear(t, (char *)v + i * t->size);
        free(v);
}

void store_rec_copy(const struct store_table *t, void *dst, const void *src)
{
        memcpy(dst, src, t->size);
        for (size_t i = 0; i < t->n_cols; i++) {
                const struct store_col *c = &t->cols[i];
                switch (c->type) {
                case STORE_COL_TEXT:
                        *FIELD(dst, c, char *) = xstrdup(*CFIELD(src, c, char *));
                        break;
                case STORE_COL_BLOB: {
                        size_t len = *(const size_t *)((const char *)src + c->len_off);
                        const uint8_t *p = *CFIELD(src, c, uint8_t *);
                        *FIELD(dst, c, uint8_t *) = p && len ? xmemdup(p, len) : NULL;
                        *(size_t *)((char *)dst + c->len_off) = p && len ? len : 0;
                        break;
                }
                case STORE_COL_STRV:
                        *FIELD(dst, c, char **) = strv_dup(*(char **const *)((const char *)src + c->off));
                        break;
                default:
                        break;
                }
        }
        if (t->copy_extra)
                t->copy_extra(dst, src);
}
