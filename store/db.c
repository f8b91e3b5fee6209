/* store/db.c: opening the database, pragmas, schema migrations, the owner
 * lock, transactions, the statement cache and the meta table. */
#include <errno.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <yajl/yajl_tree.h>

#include "store/store-internal.h"

/* The schema, one step per version: migrations[i] takes a database from
 * version i to i + 1 and runs in its own transaction together with the
 * user_version bump, so a crash mid-upgrade leaves the old version intact.
 * Append only: never edit a step that has shipped. */
static const char *const migrations[] = {
        /* 1: pods, containers, settings */
        "CREATE TABLE meta ("
        "  key TEXT PRIMARY KEY NOT NULL,"
        "  value TEXT);"
        "CREATE TABLE pods ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  name TEXT, uid TEXT, namespace TEXT,"
        "  attempt INTEGER NOT NULL DEFAULT 0,"
        "  state INTEGER NOT NULL,"
        "  created_ns INTEGER NOT NULL DEFAULT 0,"
        "  runtime_handler TEXT, labels_json TEXT, annotations_json TEXT,"
        "  netns_path TEXT, ips_json TEXT, cgroup_parent TEXT,"
        "  config BLOB, extra_json TEXT);"
        "CREATE INDEX pods_meta ON pods(name, namespace, uid, attempt);"
        "CREATE TABLE containers ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  pod_id TEXT NOT NULL REFERENCES pods(id) ON DELETE CASCADE,"
        "  name TEXT,"
        "  attempt INTEGER NOT NULL DEFAULT 0,"
        "  image_ref TEXT, image_id TEXT,"
        "  state INTEGER NOT NULL,"
        "  created_ns INTEGER NOT NULL DEFAULT 0,"
        "  started_ns INTEGER NOT NULL DEFAULT 0,"
        "  finished_ns INTEGER NOT NULL DEFAULT 0,"
        "  exit_code INTEGER NOT NULL DEFAULT 0,"
        "  pid INTEGER NOT NULL DEFAULT 0,"
        "  reason TEXT, message TEXT, log_path TEXT,"
        "  labels_json TEXT, annotations_json TEXT, snapshot_key TEXT,"
        "  config BLOB, extra_json TEXT);"
        "CREATE INDEX containers_pod ON containers(pod_id);",

        /* 2: images and their names */
        "CREATE TABLE images ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  manifest_digest TEXT, config_json TEXT,"
        "  chain_ids_json TEXT, blobs_json TEXT,"
        "  size INTEGER NOT NULL DEFAULT 0,"
        "  created_ns INTEGER NOT NULL DEFAULT 0,"
        "  pinned INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE image_names ("
        "  name TEXT PRIMARY KEY NOT NULL,"
        "  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
        "  pos INTEGER NOT NULL DEFAULT 0);"
        "CREATE INDEX image_names_image ON image_names(image_id);",

        /* 3: snapshots; a parent cannot go while it has children */
        "CREATE TABLE snapshots ("
        "  key TEXT PRIMARY KEY NOT NULL,"
        "  parent TEXT REFERENCES snapshots(key),"
        "  kind INTEGER NOT NULL,"
        "  dir TEXT,"
        "  created_ns INTEGER NOT NULL DEFAULT 0,"
        "  size INTEGER NOT NULL DEFAULT 0,"
        "  inodes INTEGER NOT NULL DEFAULT 0,"
        "  labels_json TEXT);"
        "CREATE INDEX snapshots_parent ON snapshots(parent);",
};

#define SCHEMA_VERSION ((int)ARRAY_SIZE(migrations))

/* ---------- errors ---------- */

static enum err_kind kind_of(int rc)
{
        switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return ERR_UNAVAILABLE;
        case SQLITE_FULL:
        case SQLITE_NOMEM:
                return ERR_EXHAUSTED;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return ERR_DATA_LOSS;
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return ERR_PERMISSION;
        case SQLITE_CONSTRAINT:
                if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
                        return ERR_EXISTS;
                if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
                        return ERR_PRECONDITION;
                return ERR_INVALID;
        default:
                return ERR_INTERNAL;
        }
}

int store_sql_err(struct store *s, int rc, struct err *e, const char *fmt, ...)
{
        if (!e)
                return -1;
        va_list ap;
        va_start(ap, fmt);
        cleanup_free char *ctx = xvasprintf(fmt, ap);
        va_end(ap);
        const char *msg = s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
        err_set(e, kind_of(rc), "%s: %s (%s)", ctx, msg, sqlite3_errstr(rc));
        if (s && s->db && ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_CANTOPEN))
                e->errnum = sqlite3_system_errno(s->db);
        return -1;
}

/* ---------- the owner lock ---------- */

void store_lock(struct store *s)
{
        pthread_t self = pthread_self();
        pthread_mutex_lock(&s->mu);
        if (s->lock_depth > 0 && pthread_equal(s->owner, self)) {
                s->lock_depth++;
        } else {
                while (s->lock_depth > 0)
                        pthread_cond_wait(&s->cv, &s->mu);
                s->owner = self;
                s->lock_depth = 1;
        }
        pthread_mutex_unlock(&s->mu);
}

void store_unlock(struct store *s)
{
        pthread_mutex_lock(&s->mu);
        if (--s->lock_depth == 0)
                pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
}

static bool owned_by_me(struct store *s)
{
        pthread_mutex_lock(&s->mu);
        bool mine = s->lock_depth > 0 && pthread_equal(s->owner, pthread_self());
        pthread_mutex_unlock(&s->mu);
        return mine;
}

int store_enter(struct store *s, struct err *e)
{
        store_lock(s);
        if (s->tx_doomed) {
                store_unlock(s);
                return err_set(e, ERR_ABORTED, "store: transaction was rolled back by an inner rollback");
        }
        return 0;
}

/* ---------- statements ---------- */

sqlite3_stmt *store_stmt(struct store *s, const char *sql, struct err *e)
{
        for (size_t i = 0; i < s->n_stmts; i++) {
                if (s->stmts[i].sql == sql) {
                        sqlite3_reset(s->stmts[i].st);
                        sqlite3_clear_bindings(s->stmts[i].st);
                        return s->stmts[i].st;
                }
        }
        if (s->n_stmts == STORE_STMT_CACHE_MAX) {
                err_set(e, ERR_INTERNAL, "store: statement cache full (raise STORE_STMT_CACHE_MAX)");
                return NULL;
        }
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
        if (rc != SQLITE_OK) {
                store_sql_err(s, rc, e, "store: prepare \"%.60s\"", sql);
                return NULL;
        }
        s->stmts[s->n_stmts].sql = sql;
        s->stmts[s->n_stmts].st = st;
        s->n_stmts++;
        return st;
}

void store_stmt_resetp(sqlite3_stmt **st)
{
        if (*st) {
                sqlite3_reset(*st);
                sqlite3_clear_bindings(*st);
        }
}

int store_exec(struct store *s, const char *sql, struct err *e)
{
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return store_sql_err(s, rc, e, "store: \"%.40s\"", sql);
        return 0;
}

int store_step_done(struct store *s, sqlite3_stmt *st, int *changes, struct err *e)
{
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                return store_sql_err(s, rc, e, "store");
        if (changes)
                *changes = sqlite3_changes(s->db);
        return 0;
}

/* ---------- transactions ---------- */

int store_group_begin(struct store *s, struct err *e)
{
        return store_exec(s, s->tx_depth == 0 ? "BEGIN IMMEDIATE" : "SAVEPOINT store_group", e);
}

int store_group_end(struct store *s, int ret, struct err *e)
{
        if (s->tx_depth > 0) {
                if (ret < 0) {
                        (void)store_exec(s, "ROLLBACK TO store_group; RELEASE store_group", NULL);
                        return ret;
                }
                if (store_exec(s, "RELEASE store_group", e) < 0) {
                        (void)store_exec(s, "ROLLBACK TO store_group; RELEASE store_group", NULL);
                        return -1;
                }
                return ret;
        }
        if (ret < 0) {
                (void)store_exec(s, "ROLLBACK", NULL);
                return ret;
        }
        if (store_exec(s, "COMMIT", e) < 0) {
                if (!sqlite3_get_autocommit(s->db))
                        (void)store_exec(s, "ROLLBACK", NULL);
                return -1;
        }
        return ret;
}

int store_tx_begin(struct store *s, struct err *e)
{
        store_lock(s); /* held until the matching commit / rollback */
        if (s->tx_depth == 0) {
                if (store_exec(s, "BEGIN IMMEDIATE", e) < 0) {
                        store_unlock(s);
                        return err_wrap(e, "store: begin transaction");
                }
                s->tx_doomed = false;
        }
        s->tx_depth++;
        return 0;
}

int store_tx_commit(struct store *s, struct err *e)
{
        if (!owned_by_me(s) || s->tx_depth == 0)
                return err_set(e, ERR_PRECONDITION, "store: commit without a transaction on this thread");
        int ret = 0;
        s->tx_depth--;
        if (s->tx_doomed) {
                ret = err_set(e, ERR_ABORTED, "store: transaction was rolled back by an inner rollback");
        } else if (s->tx_depth == 0) {
                if (store_exec(s, "COMMIT", e) < 0) {
                        if (!sqlite3_get_autocommit(s->db))
                                (void)store_exec(s, "ROLLBACK", NULL);
                        ret = err_wrap(e, "store: commit");
                }
        }
        if (s->tx_depth == 0)
                s->tx_doomed = false;
        store_unlock(s);
        return ret;
}

void store_tx_rollback(struct store *s)
{
        if (!owned_by_me(s) || s->tx_depth == 0)
                return;
        if (!s->tx_doomed) {
                if (!sqlite3_get_autocommit(s->db))
                        (void)store_exec(s, "ROLLBACK", NULL);
                s->tx_doomed = true;
        }
        if (--s->tx_depth == 0)
                s->tx_doomed = false;
        store_unlock(s);
}

/* ---------- open / close / migrate ---------- */

static int pragma_int(struct store *s, const char *sql, int *out, struct err *e)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK) {
                rc = sqlite3_step(st);
                if (rc == SQLITE_ROW) {
                        *out = sqlite3_column_int(st, 0);
                        rc = SQLITE_OK;
                }
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_OK)
                return store_sql_err(s, rc, e, "store: %s", sql);
        return 0;
}

static int set_pragmas(struct store *s, struct err *e)
{
        sqlite3_busy_timeout(s->db, 5000);
        /* journal_mode answers with the mode it ended up in. */
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        bool wal = rc == SQLITE_ROW && sqlite3_column_text(st, 0) &&
                   strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW)
                return store_sql_err(s, rc, e, "store: set WAL mode");
        if (!wal)
                return err_set(e, ERR_INTERNAL, "the database refused WAL journal mode");
        if (store_exec(s, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", e) < 0)
                return -1;
        int fk = 0;
        if (pragma_int(s, "PRAGMA foreign_keys", &fk, e) < 0)
                return -1;
        if (fk != 1)
                return err_set(e, ERR_INTERNAL, "store: SQLite was built without foreign key support");
        return 0;
}

static int migrate(struct store *s, struct err *e)
{
        for (;;) {
                /* Version read and step applied under one write lock, so two
                 * processes opening the same file never apply a step twice. */
                if (store_exec(s, "BEGIN IMMEDIATE", e) < 0)
                        return -1;
                int v = 0;
                if (pragma_int(s, "PRAGMA user_version", &v, e) < 0)
                        goto fail;
                if (v > SCHEMA_VERSION) {
                        err_set(e, ERR_PRECONDITION,
                                "schema version %d is newer than this corral knows (%d): refusing to open "
                                "a database written by a newer corral",
                                v, SCHEMA_VERSION);
                        goto fail;
                }
                if (v < 0) {
                        err_set(e, ERR_DATA_LOSS, "negative schema version %d", v);
                        goto fail;
                }
                if (v == SCHEMA_VERSION) {
                        s->version = v;
                        return store_exec(s, "COMMIT", e);
                }
                char bump[64];
                snprintf(bump, sizeof(bump), "PRAGMA user_version=%d", v + 1);
                if (store_exec(s, migrations[v], e) < 0 || store_exec(s, bump, e) < 0 ||
                    store_exec(s, "COMMIT", e) < 0) {
                        err_wrap(e, "migrate schema from version %d to %d", v, v + 1);
                        goto fail;
                }
                log_debug("store", "migrated path=%s version=%d", s->path, v + 1);
        }
fail:
        if (!sqlite3_get_autocommit(s->db))
                (void)store_exec(s, "ROLLBACK", NULL);
        return -1;
}

/* SQLite's own hook, so the count covers every statement whatever path
 * ran it: what is answered from memory can be shown to run none. */
static int count_statement(unsigned type, void *ctx, void *p, void *x)
{
        (void)type, (void)p, (void)x;
        atomic_fetch_add_explicit(&((struct store *)ctx)->statements, 1, memory_order_relaxed);
        return 0;
}

uint64_t store_statements(struct store *s)
{
        return atomic_load_explicit(&s->statements, memory_order_relaxed);
}

int store_open(const char *path, struct store **out, struct err *e)
{
        *out = NULL;
        if (!path || !*path)
                return err_set(e, ERR_INVALID, "store: empty database path");
        if (strcmp(path, ":memory:") != 0) {
                cleanup_free char *dir = xstrdup(path);
                if (mkdir_p(dirname(dir), 0700, e) < 0)
                        return err_wrap(e, "store: open %s", path);
        }

        struct store *s = xzalloc(sizeof(*s));
        s->path = xstrdup(path);
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);

        /* Our own lock serialises every use, so SQLite's can go (NOMUTEX).
         * The unix VFS opens its files O_CLOEXEC: shims never inherit them. */
        int rc = sqlite3_open_v2(path, &s->db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                         SQLITE_OPEN_EXRESCODE,
                                 NULL);
        if (rc != SQLITE_OK) {
                store_sql_err(s, rc, e, "store: open %s", path);
                store_close(s);
                return -1;
        }
        sqlite3_extended_result_codes(s->db, 1);
        sqlite3_trace_v2(s->db, SQLITE_TRACE_STMT, count_statement, s);
        /* The records hold pod and container configs (env values included). */
        if (strcmp(path, ":memory:") != 0 && chmod(path, 0600) < 0 && errno != EPERM) {
                err_make(e, errno, "store: chmod %s", path);
                store_close(s);
                return -1;
        }
        if (set_pragmas(s, e) < 0 || migrate(s, e) < 0) {
                err_wrap(e, "store: open %s", path);
                store_close(s);
                return -1;
        }
        *out = s;
        return 0;
}

void store_close(struct store *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->n_stmts; i++)
                sqlite3_finalize(s->stmts[i].st);
        if (s->db)
                sqlite3_close(s->db);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s->path);
        free(s);
}

int store_schema_version(struct store *s)
{
        return s->version;
}

/* ---------- meta ---------- */

static const char sql_meta_set[] = "INSERT INTO meta(key, value) VALUES(?1, ?2) "
                                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value";
static const char sql_meta_get[] = "SELECT value FROM meta WHERE key = ?1";

static int meta_set_locked(struct store *s, const char *key, const char *value, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql_meta_set, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, key);
        store_bind_text(st, 2, value);
        if (store_step_done(s, st, NULL, e) < 0)
                return err_wrap(e, "store: set meta %s", key);
        return 0;
}

int store_meta_set(struct store *s, const char *key, const char *value, struct err *e)
{
        if (!key || !*key)
                return err_set(e, ERR_INVALID, "store: empty meta key");
        return STORE_LOCKED(s, e, meta_set_locked(s, key, value, e));
}

static int meta_get_locked(struct store *s, const char *key, char **value, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql_meta_get, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, key);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *value = store_col_text(st, 0);
        else if (rc != SQLITE_DONE)
                return store_sql_err(s, rc, e, "store: get meta %s", key);
        return 0;
}

int store_meta_get(struct store *s, const char *key, char **value, struct err *e)
{
        *value = NULL;
        return STORE_LOCKED(s, e, meta_get_locked(s, key, value, e));
}

/* ---------- deletes ---------- */

static int delete_locked(struct store *s, const char *sql, const char *key, const char *what, struct err *e)
{
        cleanup_reset sqlite3_stmt *st = store_stmt(s, sql, e);
        if (!st)
                return -1;
        store_bind_text(st, 1, key);
        int changes = 0;
        if (store_step_done(s, st, &changes, e) < 0)
                return err_wrap(e, "store: delete %s %s", what, key);
        if (changes == 0)
                return err_set(e, ERR_NOT_FOUND, "%s %s not found", what, key);
        return 0;
}

int store_delete_by(struct store *s, const char *sql, const char *key, const char *what, struct err *e)
{
        return STORE_LOCKED(s, e, delete_locked(s, sql, key, what, e));
}

/* ---------- columns ---------- */

int store_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
        if (!s)
                return sqlite3_bind_null(st, idx);
        return sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
}

int store_bind_blob(sqlite3_stmt *st, int idx, const uint8_t *p, size_t n)
{
        if (!p || n == 0)
                return sqlite3_bind_null(st, idx);
        return sqlite3_bind_blob64(st, idx, p, n, SQLITE_TRANSIENT);
}

char *store_col_text(sqlite3_stmt *st, int col)
{
        if (sqlite3_column_type(st, col) == SQLITE_NULL)
                return NULL;
        const unsigned char *t = sqlite3_column_text(st, col);
        return xstrndup((const char *)t, (size_t)sqlite3_column_bytes(st, col));
}

uint8_t *store_col_blob(sqlite3_stmt *st, int col, size_t *len)
{
        *len = 0;
        if (sqlite3_column_type(st, col) == SQLITE_NULL)
                return NULL;
        const void *p = sqlite3_column_blob(st, col);
        int n = sqlite3_column_bytes(st, col);
        if (!p || n <= 0)
                return NULL;
        *len = (size_t)n;
        return xmemdup(p, (size_t)n);
}

void store_col_id(sqlite3_stmt *st, int col, char out[ID_LEN + 1])
{
        const unsigned char *t = sqlite3_column_text(st, col);
        snprintf(out, ID_LEN + 1, "%s", t ? (const char *)t : "");
}

char *store_strv_to_json(char *const *v)
{
        if (!v)
                return NULL;
        struct sbuf b = {0};
        sbuf_putc(&b, '[');
        for (size_t i = 0; v[i]; i++) {
                if (i)
                        sbuf_putc(&b, ',');
                json_quote(&b, v[i]);
        }
        sbuf_putc(&b, ']');
        return sbuf_steal(&b);
}

int store_strv_from_json(const char *json, char ***out, struct err *e)
{
        *out = NULL;
        if (!json)
                return 0;
        yajl_val v = json_parse(json, strlen(json), "store string list", e);
        if (!v)
                return -1;
        if (!YAJL_IS_ARRAY(v)) {
                yajl_tree_free(v);
                return err_set(e, ERR_DATA_LOSS, "store: string list is not a JSON array");
        }
        char **r = xcalloc(v->u.array.len + 1, sizeof(*r));
        for (size_t i = 0; i < v->u.array.len; i++) {
                yajl_val it = v->u.array.values[i];
                if (!YAJL_IS_STRING(it)) {
                        strv_free(r);
                        yajl_tree_free(v);
                        return err_set(e, ERR_DATA_LOSS, "store: string list holds a non-string");
                }
                r[i] = xstrdup(it->u.string);
        }
        yajl_tree_free(v);
        *out = r;
        return 0;
}
