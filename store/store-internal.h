/* store: private helpers shared by db.c, pods.c, containers.c, images.c and
 * snapshots.c. Nothing outside store/ includes this. */
#ifndef CORRAL_STORE_INTERNAL_H
#define CORRAL_STORE_INTERNAL_H

#include <pthread.h>
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

/* String vectors kept as JSON arrays in a TEXT column. NULL <-> SQL NULL,
 * an empty vector <-> "[]". */
char *store_strv_to_json(char *const *v);
int store_strv_from_json(const char *json, char ***out, struct err *e);

#endif
