/* store: private helpers shared by db.c, pods.c, containers.c, images.c and
 * snapshots.c. Nothing outside store/ includes this. */
#ifndef CORRAL_STORE_INTERNAL_H
#define CORRAL_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sqlite3.h>

#include "store/store.h"

#define STORE_STMT_CACHE_MAX 64

/* A prepared statement, cached per connection and keyed by the address of
 * its (static) SQL text: lookups are a pointer compare. */
struct store_stmt_slot {
        const char *sql;
        sqlite3_stmt *st;
};

struct store {
        sqlite3 *db;
        char *path;
        int version;

        /* The owner lock: `mu` guards the fields below only; the store
         * itself is held by `owner` for `lock_depth` nested acquisitions, so
         * a thread inside store_tx_begin() can keep calling the API while
         * every other thread waits on `cv`. */
        pthread_mutex_t mu;
        pthread_cond_t cv;
        pthread_t owner;
        unsigned lock_depth;

        /* Only touched by the owner. */
        unsigned tx_depth; /* store_tx_begin() nesting */
        bool tx_doomed;    /* an inner rollback already undid the transaction */

        struct store_stmt_slot stmts[STORE_STMT_CACHE_MAX];
        size_t n_stmts;

        atomic_uint_least64_t statements; /* run so far (store_statements) */
};

/* Take / release the owner lock (recursive for the owning thread). */
void store_lock(struct store *s);
void store_unlock(struct store *s);

/* Every API entry point: lock, and refuse to work inside a transaction that
 * an inner store_tx_rollback() has already undone. Returns -1 (lock NOT
 * held) on failure. */
int store_enter(struct store *s, struct err *e);
static inline void store_leave(struct store *s)
{
        store_unlock(s);
}

/* Run `call` (an int expression) between store_enter() and store_leave().
 * Statements must be reset before the lock goes: `call` is a function whose
 * cleanup_reset variables go out of scope inside it. */
#define STORE_LOCKED(s, e, call)                                                                             \
        ({                                                                                                   \
                int _r = store_enter((s), (e));                                                              \
                if (_r == 0) {                                                                               \
                        _r = (call);                                                                         \
                        store_leave(s);                                                                      \
                }                                                                                            \
                _r;                                                                                          \
        })

/* The cached statement for `sql` (a string literal or other static text),
 * reset and with cleared bindings. NULL with `e` set on a prepare error. */
sqlite3_stmt *store_stmt(struct store *s, const char *sql, struct err *e);

/* Resets a statement when it goes out of scope, so that no read
 * transaction stays open behind the caller's back. */
void store_stmt_resetp(sqlite3_stmt **st);
#define cleanup_reset __attribute__((cleanup(store_stmt_resetp)))

/* Turn a SQLite result code into an err with the connection's message.
 * Always returns -1. */
int store_sql_err(struct store *s, int rc, struct err *e, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Run SQL text without results (may hold several statements). */
int store_exec(struct store *s, const char *sql, struct err *e);
/* Run a cached statement that returns no rows; *changes gets the number of
 * rows touched (may be NULL). The statement must be bound. */
int store_step_done(struct store *s, sqlite3_stmt *st, int *changes, struct err *e);

/* DELETE by key (sql has one parameter): ERR_NOT_FOUND "<what> <key> not
 * found" when nothing matched. Takes the lock itself. */
int store_delete_by(struct store *s, const char *sql, const char *key, const char *what, struct err *e);

/* A group of statements that must land together: BEGIN IMMEDIATE when no
 * transaction is open, a SAVEPOINT inside the caller's transaction (so a
 * failing call leaves the caller's transaction as it was). */
int store_group_begin(struct store *s, struct err *e);
/* Commits (ret >= 0) or undoes (ret < 0) the group; returns ret, or -1 when
 * the commit itself fails. */
int store_group_end(struct store *s, int ret, struct err *e);

/* Binding and reading columns. NULL strings bind as SQL NULL and read back
 * as NULL; a zero-length blob reads back as NULL / 0. */
int store_bind_text(sqlite3_stmt *st, int idx, const char *s);
int store_bind_blob(sqlite3_stmt *st, int idx, const uint8_t *p, size_t n);
char *store_col_text(sqlite3_stmt *st, int col);
uint8_t *store_col_blob(sqlite3_stmt *st, int col, size_t *len);
void store_col_id(sqlite3_stmt *st, int col, char out[ID_LEN + 1]);

/* ---------- the record layer (record.c) ---------- */

/* The C type of a column's field in the record struct. */
enum store_col_type {
        STORE_COL_ID,   /* char[ID_LEN + 1] */
        STORE_COL_TEXT, /* char *, NULL <-> SQL NULL */
        STORE_COL_INT,  /* int (int32_t) */
        STORE_COL_U32,  /* uint32_t */
        STORE_COL_I64,  /* int64_t */
        STORE_COL_U64,  /* uint64_t */
        STORE_COL_BOOL, /* bool */
        STORE_COL_BLOB, /* uint8_t *, its length a size_t at len_off */
        STORE_COL_STRV, /* char ** kept as a JSON array */
};

struct store_col {
        const char *name;
        enum store_col_type type;
        size_t off;
        size_t len_off;
};

/* A table: its columns in the order of every SELECT and of sql_put's
 * parameters ?1..?n (the first is the key), and its statements. */
struct store_table {
        const char *what; /* "pod": in messages */
        size_t size;      /* of the record struct */
        const struct store_col *cols;
        size_t n_cols;
        const char *sql_put;    /* an upsert binding every column */
        const char *sql_get;    /* by key (?1) */
        const char *sql_delete; /* by key (?1) */
        const char *sql_list;   /* all rows, oldest first */
        /* Optional: what the table keeps beside the row (an image's names). */
        int (*after_read)(struct store *s, void *rec, struct err *e);
        void (*clear_extra)(void *rec);
        void (*copy_extra)(void *dst, const void *src);
};

#define STORE_COL(type_, field, kind)                                                                        \
        {                                                                                                    \
#field, kind, offsetof(type_, field), 0                                                      \
        }
#define STORE_COL_B(type_, field, len)                                                                       \
        {                                                                                                    \
#field, STORE_COL_BLOB, offsetof(type_, field), offsetof(type_, len)                         \
        }

/* Lock held by the caller (STORE_LOCKED / a group). */
int store_rec_put_locked(struct store *s, const struct store_table *t, const void *rec, struct err *e);
int store_rec_put(struct store *s, const struct store_table *t, const void *rec, struct err *e);
/* ERR_NOT_FOUND "<what> <key> not found". */
int store_rec_get(struct store *s, const struct store_table *t, const char *key, void *out, struct err *e);
int store_rec_delete(struct store *s, const struct store_table *t, const char *key, struct err *e);
/* sql NULL: t->sql_list; key: its ?1 when it has one. *out: n records. */
int store_rec_list(struct store *s, const struct store_table *t, const char *sql, const char *key, void **out,
                   size_t *n, struct err *e);
/* A bound one-row query (lock held): the record, or ERR_NOT_FOUND naming `what`. */
int store_rec_one(struct store *s, const struct store_table *t, sqlite3_stmt *st, void *out, const char *what,
                  struct err *e);
/* Fill rec from the current row (the columns only). */
int store_rec_read(const struct store_table *t, sqlite3_stmt *st, void *rec, struct err *e);
void store_rec_clear(const struct store_table *t, void *rec);
void store_rec_free(const struct store_table *t, void *v, size_t n);
void store_rec_copy(const struct store_table *t, void *dst, const void *src);

/* String vectors kept as JSON arrays in a TEXT column. NULL <-> SQL NULL,
 * an empty vector <-> "[]". */
char *store_strv_to_json(char *const *v);
int store_strv_from_json(const char *json, char ***out, struct err *e);

#endif
