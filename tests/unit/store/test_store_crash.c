/* store: crash safety. A child commits numbered transactions in a loop
 * (a pod and two containers each) and reports every commit through a pipe;
 * the parent kill -9s it at a random moment, reopens the database, and
 * checks PRAGMA integrity_check and that every reported commit is there.
 * Several rounds, each continuing on the same file. */
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/unit/store/common.h"

#define ROUNDS   5
#define MAX_ROWS 200000

static void row_id(char out[ID_LEN + 1], uint32_t n, char kind)
{
        snprintf(out, ID_LEN + 1, "%c%055u%08x", kind, 0u, n);
}

static void child(const char *path, int wfd, uint32_t first)
{
        struct err e = ERR_INIT;
        struct store *s = NULL;
        if (store_open(path, &s, &e) < 0) {
                fprintf(stderr, "child: %s\n", e.msg);
                _exit(2);
        }
        for (uint32_t n = first;; n++) {
                struct store_pod p;
                char tag[16];
                snprintf(tag, sizeof(tag), "%u", n);
                make_pod(&p, tag, n);
                row_id(p.id, n, 'p');
                struct store_container c1, c2;
                make_ctr(&c1, p.id, tag, n);
                make_ctr(&c2, p.id, tag, n);
                row_id(c1.id, n, 'a');
                row_id(c2.id, n, 'b');
                if (store_tx_begin(s, &e) < 0 || store_pod_put(s, &p, &e) < 0 ||
                    store_ctr_put(s, &c1, &e) < 0 || store_ctr_put(s, &c2, &e) < 0 ||
                    store_tx_commit(s, &e) < 0) {
                        fprintf(stderr, "child: %s\n", e.msg);
                        _exit(3);
                }
                /* only now is it promised */
                if (fd_write_all(wfd, &n, sizeof(n)) < 0)
                        _exit(4);
                store_pod_clear(&p);
                store_ctr_clear(&c1);
                store_ctr_clear(&c2);
        }
}

static const char *integrity(const char *path, char *buf, size_t len)
{
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        snprintf(buf, len, "(no answer)");
        if (sqlite3_open(path, &db) == SQLITE_OK &&
            sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        sqlite3_close(db);
        return buf;
}

int main(void)
{
        cleanup_free char *dir = scratch_dir("store-crash");
        cleanup_free char *path = path_join(dir, "meta.db");
        unsigned seed = (unsigned)time_now_ns();
        srand(seed);
        fprintf(stderr, "seed=%u\n", seed);

        static uint32_t reported[MAX_ROWS];
        size_t n_reported = 0;
        uint32_t next = 0;
        for (int round = 0; round < ROUNDS; round++) {
                int p[2];
                if (pipe(p) < 0)
                        return 1;
                pid_t pid = fork();
                if (pid == 0) {
                        close(p[0]);
                        child(path, p[1], next);
                }
                close(p[1]);
                /* Once its first commit is reported (a loaded machine may take
                 * long to get there), let it run 0..350 ms more and kill it
                 * wherever it is. */
                size_t before = n_reported;
                uint32_t n;
                ssize_t r = read(p[0], &n, sizeof(n));
                CHECK(r == sizeof(n)); /* the child got some work done */
                if (r == sizeof(n)) {
                        if (n_reported < MAX_ROWS)
                                reported[n_reported++] = n;
                        next = n + 1;
                }
                struct timespec ts = {0, (rand() % 350) * 1000000L};
                nanosleep(&ts, NULL);
                CHECK(kill(pid, SIGKILL) == 0);
                int status = 0;
                waitpid(pid, &status, 0);
                CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
                while ((r = read(p[0], &n, sizeof(n))) == sizeof(n)) {
                        if (n_reported < MAX_ROWS)
                                reported[n_reported++] = n;
                        next = n + 1;
                }
                close(p[0]);
                CHECK(n_reported > before);

                char buf[256];
                CHECK_STR(integrity(path, buf, sizeof(buf)), "ok");

                cleanup_err struct err e = ERR_INIT;
                struct store *s = NULL;
                CHECK(store_open(path, &s, &e) == 0);
                if (!s)
                        break;
                size_t missing = 0;
                for (size_t i = 0; i < n_reported; i++) {
                        char id[ID_LEN + 1];
                        struct store_pod q;
                        struct store_container c;
                        row_id(id, reported[i], 'p');
                        if (store_pod_get(s, id, &q, &e) < 0 || q.created_ns != reported[i])
                                missing++;
                        store_pod_clear(&q);
                        row_id(id, reported[i], 'b');
                        if (store_ctr_get(s, id, &c, &e) < 0)
                                missing++;
                        store_ctr_clear(&c);
                }
                CHECK(missing == 0);
                /* no half transaction: containers are exactly twice the pods */
                struct store_pod *pods = NULL;
                struct store_container *ctrs = NULL;
                size_t np = 0, nc = 0;
                CHECK(store_pod_list(s, &pods, &np, &e) == 0);
                CHECK(store_ctr_list(s, NULL, &ctrs, &nc, &e) == 0);
                CHECK(nc == 2 * np);
                /* At most the one commit in flight when it died is there
                 * unreported; it counts from now on (numbers are contiguous). */
                CHECK(np == n_reported || np == n_reported + 1);
                if (np == n_reported + 1 && n_reported < MAX_ROWS) {
                        char id[ID_LEN + 1];
                        struct store_pod q;
                        row_id(id, next, 'p');
                        CHECK(store_pod_get(s, id, &q, &e) == 0);
                        store_pod_clear(&q);
                        reported[n_reported++] = next++;
                }
                fprintf(stderr, "round %d: reported=%zu in store=%zu missing=%zu\n", round, n_reported, np,
                        missing);
                store_pods_free(pods, np);
                store_ctrs_free(ctrs, nc);
                store_close(s);
        }
        (void)rm_rf(dir, NULL);
        return check_report("test_store_crash");
}
