/* libFuzzer target for the layer unpacker: each input is a layer (tar, or
 * gzip/zstd by its magic) unpacked into a fresh directory that is removed
 * afterwards. Whatever the input, nothing may appear outside that directory:
 * its parent must hold it alone, and a canary directory that inputs can aim
 * at by absolute path (see make_seeds.c) must stay as made.
 *
 * Run as root for full coverage (mknod, chown, trusted xattrs), e.g.
 *   unpack_seeds corpus/ && fuzz_unpack -max_total_time=60 corpus/
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "image/unpack-internal.h"
#include "util/util.h"

#define CANARY "/dev/shm/corral-fuzz-canary"

static char base[128], dest[160];

static void die(const char *what)
{
        fprintf(stderr, "fuzz_unpack: %s\n", what);
        abort();
}

static void make_canary(void)
{
        struct err e = ERR_INIT;
        (void)mkdir(CANARY, 0700);
        if (file_write_atomic(CANARY "/secret", "s3cret", 6, 0600, &e) < 0)
                die(e.msg);
}

static void check_canary(void)
{
        cleanup_dir DIR *d = opendir(CANARY);
        if (d == NULL)
                die("canary directory gone");
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "secret"))
                        die("an entry appeared in the canary directory");
        struct stat st;
        if (lstat(CANARY "/secret", &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != 6 || st.st_nlink != 1 ||
            (st.st_mode & 07777) != 0600)
                die("the canary file changed");
        if (lstat(CANARY, &st) < 0 || (st.st_mode & 07777) != 0700 || st.st_uid != geteuid())
                die("the canary directory changed");
        char v[8];
        if (getxattr(CANARY, "trusted.overlay.opaque", v, sizeof(v)) >= 0)
                die("the canary directory became opaque");
}

static void check_base(void)
{
        cleanup_dir DIR *d = opendir(base);
        if (d == NULL)
                die("base directory gone");
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "dest"))
                        die("an entry appeared next to the layer directory");
}

static void cleanup_base(void)
{
        struct err e = ERR_INIT;
        (void)rm_rf(base, &e);
        err_clear(&e);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        /* tmpfs: fast, and syncfs is free */
        snprintf(base, sizeof(base), "/dev/shm/corral-fuzz-%d", (int)getpid());
        snprintf(dest, sizeof(dest), "%s/dest", base);
        if (mkdir(base, 0700) < 0 && errno != EEXIST)
                die("mkdir base");
        make_canary();
        atexit(cleanup_base);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct err e = ERR_INIT;
        if (mkdir(dest, 0755) < 0)
                die("mkdir dest");
        struct img_unpack_stats st;
        (void)img_unpack_layer_mem(data, size, NULL, dest, &st, &e);
        err_clear(&e);
        check_base();
        check_canary();
        if (rm_rf(dest, &e) < 0)
                die(e.msg);
        return 0;
}
