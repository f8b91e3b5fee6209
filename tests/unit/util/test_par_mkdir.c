/* mkdir_p tries the whole path first and its parents only on ENOENT:
 * the same results as one mkdir per component, from many threads too. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include "../check.h"
#include "util/util.h"

static char *tmp;

static bool is_dir(const char *p, mode_t mode)
{
        struct stat st;
        return stat(p, &st) == 0 && S_ISDIR(st.st_mode) && (mode == 0 || (st.st_mode & 0777) == mode);
}

static void *worker(void *arg)
{
        cleanup_free char *p = xasprintf("%s/shared/x/y/t%d/z", tmp, (int)(intptr_t)arg);
        return mkdir_p(p, 0755, NULL) == 0 ? NULL : (void *)1;
}

int main(void)
{
        char tmpl[] = "/tmp/corral-par-mkdir.XXXXXX";
        tmp = mkdtemp(tmpl);
        if (tmp == NULL)
                return 1;
        umask(022);
        cleanup_err struct err e = ERR_INIT;
        cleanup_free char *deep = path_join(tmp, "a/b/c/d");
        CHECK(mkdir_p(deep, 0700, &e) == 0);
        cleanup_free char *a = path_join(tmp, "a");
        CHECK(is_dir(deep, 0700) && is_dir(a, 0700));
        CHECK(mkdir_p(deep, 0755, &e) == 0); /* exists: fine, mode kept */
        CHECK(is_dir(deep, 0700));
        cleanup_free char *slash = xasprintf("%s/e/f//", tmp);
        CHECK(mkdir_p(slash, 0755, &e) == 0);
        cleanup_free char *ef = path_join(tmp, "e/f");
        CHECK(is_dir(ef, 0755));
        cleanup_free char *file = path_join(tmp, "file");
        CHECK(file_write_atomic(file, "x", 1, 0644, &e) == 0);
        err_clear(&e);
        CHECK(mkdir_p(file, 0755, &e) < 0 && e.kind == ERR_EXISTS);
        err_clear(&e);
        cleanup_free char *under = path_join(tmp, "file/g/h");
        CHECK(mkdir_p(under, 0755, &e) < 0 && e.errnum == ENOTDIR);
        err_clear(&e);
        CHECK(mkdir_p("/", 0755, &e) == 0);
        pthread_t th[8];
        for (int i = 0; i < 8; i++)
                CHECK(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)(i % 3)) == 0);
        for (int i = 0; i < 8; i++) {
                void *r;
                pthread_join(th[i], &r);
                CHECK(r == NULL);
        }
        cleanup_free char *t2 = xasprintf("%s/shared/x/y/t2/z", tmp);
        CHECK(is_dir(t2, 0755));
        (void)rm_rf(tmp, NULL);
        return check_report("test_util_par_mkdir");
}
