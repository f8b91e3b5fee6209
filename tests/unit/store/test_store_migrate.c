/* store: schema migrations. A version 1 database written by hand is
 * upgraded with its rows intact; a newer version is refused; a step that
 * fails leaves the file at its old version; a non-database is refused. */
#include <sqlite3.h>
#include <string.h>

#include "tests/unit/store/common.h"

/* Schema version 1 as corral 0.1 wrote it (copied, not shared with the
 * code on purpose: this is what old files on disk look like). */
static const char v1_schema[] =
        "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT);"
        "CREATE TABLE pods (id TEXT PRIMARY KEY NOT NULL, name TEXT, uid TEXT, namespace TEXT,"
        "  attempt INTEGER NOT NULL DEFAULT 0, state INTEGER NOT NULL, created_ns INTEGER NOT NULL DEFAULT 0,"
        "  runtime_handler TEXT, labels_json TEXT, annotations_json TEXT, netns_path TEXT, ips_json TEXT,"
        "  cgroup_parent TEXT, config BLOB, extra_json TEXT);"
        "CREATE INDEX pods_meta ON pods(name, namespace, uid, attempt);"
        "CREATE TABLE containers (id TEXT PRIMARY KEY NOT NULL,"
        "  pod_id TEXT NOT NULL REFERENCES pods(id) ON DELETE CASCADE, name TEXT,"
        "  attempt INTEGER NOT NULL DEFAULT 0, image_ref TEXT, image_id TEXT, state INTEGER NOT NULL,"
        "  created_ns INTEGER NOT NULL DEFAULT 0, started_ns INTEGER NOT NULL DEFAULT 0,"
        "  finished_ns INTEGER NOT NULL DEFAULT 0, exit_code INTEGER NOT NULL DEFAULT 0,"
        "  pid INTEGER NOT NULL DEFAULT 0, reason TEXT, message TEXT, log_path TEXT, labels_json TEXT,"
        "  annotations_json TEXT, snapshot_key TEXT, config BLOB, extra_json TEXT);"
        "CREATE INDEX containers_pod ON containers(pod_id);"
        "INSERT INTO meta VALUES('pod_cidr', '10.88.0.0/16');"
        "INSERT INTO pods(id, name, uid, namespace, attempt, state, created_ns, runtime_handler, config)"
        "  VALUES('p1', 'web', 'u1', 'default', 1, 0, 42, 'vm', x'00ff');"
        "INSERT INTO containers(id, pod_id, name, state, exit_code) VALUES('c1', 'p1', 'nginx', 2, 137);"
        "PRAGMA user_version = 1;";

static int sql_int(const char *path, const char *sql)
{
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        int v = -1;
        if (sqlite3_open(path, &db) == SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

static int sql_exec(const char *path, const char *sql)
{
        sqlite3 *db = NULL;
        int rc = sqlite3_open(path, &db);
        if (rc == SQLITE_OK)
                rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        sqlite3_close(db);
        return rc == SQLITE_OK ? 0 : -1;
}

static void test_upgrade(const char *dir)
{
        cleanup_err struct err e = ERR_INIT;
        cleanup_free char *path = path_join(dir, "v1.db");
        CHECK(sql_exec(path, v1_schema) == 0);
        CHECK(sql_int(path, "PRAGMA user_version") == 1);

        struct store *s = NULL;
        CHECK(store_open(path, &s, &e) == 0);
        if (!s) {
                fprintf(stderr, "%s\n", e.msg);
                return;
        }
        CHECK(store_schema_version(s) == 3);
        struct store_pod p;
        CHECK(store_pod_get(s, "p1", &p, &e) == 0);
        CHECK_STR(p.name, "web");
        CHECK(p.created_ns == 42 && p.attempt == 1);
        CHECK(p.config_len == 2 && p.config && p.config[1] == 0xff);
        store_pod_clear(&p);
        struct store_container c;
        CHECK(store_ctr_get(s, "c1", &c, &e) == 0);
        CHECK(c.exit_code == 137 && c.state == STORE_CTR_EXITED);
        store_ctr_clear(&c);
        cleanup_free char *cidr = NULL;
        CHECK(store_meta_get(s, "pod_cidr", &cidr, &e) == 0);
        CHECK_STR(cidr, "10.88.0.0/16");

        /* the tables of versions 2 and 3 work */
        struct store_image img = {.id = xstrdup("sha256:new"), .created_ns = 1};
        strv_push(&img.names, "new:1");
        CHECK(store_image_put(s, &img, &e) == 0);
        struct store_image iq;
        CHECK(store_image_find_name(s, "new:1", &iq, &e) == 0);
        store_image_clear(&iq);
        store_image_clear(&img);
        struct store_snapshot sn = {.key = "k", .kind = STORE_SNAP_COMMITTED};
        CHECK(store_snap_put(s, &sn, &e) == 0);
        /* the pod cascade still holds after the upgrade */
        CHECK(store_pod_delete(s, "p1", &e) == 0);
        CHECK(store_ctr_get(s, "c1", &c, &e) < 0 && e.kind == ERR_NOT_FOUND);
        store_close(s);
        CHECK(sql_int(path, "PRAGMA user_version") == 3);

        /* opening again is a no-op */
        CHECK(store_open(path, &s, &e) == 0);
        CHECK(s && store_schema_version(s) == 3);
        store_close(s);
}

static void test_newer_refused(const char *dir)
{
        cleanup_err struct err e = ERR_INIT;
        cleanup_free char *path = path_join(dir, "future.db");
        CHECK(sql_exec(path, "CREATE TABLE future(x); PRAGMA user_version = 99;") == 0);
        struct store *s = (struct store *)1;
        CHECK(store_open(path, &s, &e) < 0);
        CHECK(s == NULL);
        CHECK(e.kind == ERR_PRECONDITION);
        CHECK(e.msg && strstr(e.msg, "99") && strstr(e.msg, "newer") && strstr(e.msg, path));
        if (e.msg)
                fprintf(stderr, "refused as expected: %s\n", e.msg);
        CHECK(sql_int(path, "PRAGMA user_version") == 99);
        CHECK(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'pods'") == 0);
}

static void test_failed_step_rolls_back(const char *dir)
{
        cleanup_err struct err e = ERR_INIT;
        cleanup_free char *path = path_join(dir, "broken.db");
        CHECK(sql_exec(path, v1_schema) == 0);
        /* step 2 creates `images` first, then trips over this */
        CHECK(sql_exec(path, "CREATE TABLE image_names(x)") == 0);
        struct store *s = NULL;
        CHECK(store_open(path, &s, &e) < 0 && s == NULL);
        CHECK(e.msg && strstr(e.msg, "version 1 to 2"));
        CHECK(sql_int(path, "PRAGMA user_version") == 1);
        CHECK(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'images'") == 0);
        CHECK(sql_int(path, "SELECT count(*) FROM pods") == 1);
}

static void test_not_a_database(const char *dir)
{
        cleanup_err struct err e = ERR_INIT;
        cleanup_free char *path = path_join(dir, "junk.db");
        char junk[4096];
        memset(junk, 'x', sizeof(junk));
        FILE *f = fopen(path, "w");
        CHECK(f && fwrite(junk, 1, sizeof(junk), f) == sizeof(junk));
        if (f)
                fclose(f);
        struct store *s = NULL;
        CHECK(store_open(path, &s, &e) < 0 && s == NULL);
        CHECK(e.kind == ERR_DATA_LOSS);
}

int main(void)
{
        cleanup_free char *dir = scratch_dir("store-migrate");
        test_upgrade(dir);
        test_newer_refused(dir);
        test_failed_step_rolls_back(dir);
        test_not_a_database(dir);
        (void)rm_rf(dir, NULL);
        return check_report("test_store_migrate");
}
