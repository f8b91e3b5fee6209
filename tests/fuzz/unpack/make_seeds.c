/* Writes a seed corpus for fuzz_unpack: ordinary layers and the hostile
 * shapes the unit test checks, some aimed at the fuzzer's canary. */
#include <errno.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "tests/unit/unpack/tarbuild.h"
#include "util/util.h"

#define CANARY "/dev/shm/corral-fuzz-canary"

static void save(const char *dir, const char *name, struct tb *t)
{
        size_t len;
        cleanup_free char *data = tb_finish(t, &len);
        cleanup_free char *p = xasprintf("%s/%s", dir, name);
        struct err e = ERR_INIT;
        if (file_write_atomic(p, data, len, 0644, &e) < 0) {
                fprintf(stderr, "%s\n", e.msg);
                exit(1);
        }
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: %s DIR\n", argv[0]);
                return 2;
        }
        const char *dir = argv[1];
        struct err e = ERR_INIT;
        if (mkdir_p(dir, 0755, &e) < 0) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
        }
        struct tb t;
        const char *const xa[] = {"trusted.x", "1", "user.y", "2", NULL};

        tb_init(&t, TB_NONE);
        tb_dir(&t, "etc", 0755);
        tb_file(&t, "etc/hosts", "127.0.0.1 localhost\n", 0644);
        tb_symlink(&t, "etc/link", "hosts");
        tb_hardlink(&t, "etc/hard", "etc/hosts");
        tb_add(&t, "dev/null", AE_IFCHR, 0666, NULL, 0, NULL, NULL, 0, 0, 1, makedev(1, 3), NULL);
        tb_add(&t, "run/fifo", AE_IFIFO, 0600, NULL, 0, NULL, NULL, 0, 0, 1, 0, NULL);
        tb_add(&t, "bin/x", AE_IFREG, 04755, "x", 1, NULL, NULL, 1, 2, 3, 0, xa);
        tb_file(&t, "a/.wh.b", "", 0644);
        tb_file(&t, "c/.wh..wh..opq", "", 0644);
        save(dir, "plain.tar", &t);

        tb_init(&t, TB_GZIP);
        tb_file(&t, "f", "gzip", 0644);
        tb_dir(&t, "d", 0700);
        save(dir, "plain.tar.gz", &t);

        tb_init(&t, TB_ZSTD);
        tb_file(&t, "f", "zstd", 0644);
        save(dir, "plain.tar.zst", &t);

        tb_init(&t, TB_NONE);
        tb_symlink(&t, "evil", CANARY);
        tb_file(&t, "evil/secret", "pwned", 0644);
        tb_file(&t, "evil/.wh.secret", "", 0644);
        tb_hardlink(&t, "hl", "evil/secret");
        save(dir, "abs-symlink.tar", &t);

        tb_init(&t, TB_NONE);
        tb_symlink(&t, "up", "../../../../../../..");
        tb_file(&t, "up/dev/shm/corral-fuzz-canary/new", "pwned", 0644);
        tb_file(&t, "../corral-fuzz-canary/new", "pwned", 0644);
        tb_file(&t, CANARY "/new", "inside", 0644);
        save(dir, "rel-escape.tar", &t);

        tb_init(&t, TB_NONE);
        tb_dir(&t, "d", 0755);
        tb_file(&t, "d/a", "a", 0644);
        tb_symlink(&t, "d", CANARY);
        tb_file(&t, "d/b", "b", 0644);
        tb_symlink(&t, "s", CANARY "/secret");
        tb_file(&t, "s", "over the link", 0644);
        save(dir, "replace.tar", &t);
        return 0;
}
