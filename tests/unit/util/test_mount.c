/* mount_overlay: a stack of layers whose lowerdir list is over a page
 * (mount(2)'s limit) still mounts, read-only and with an upper layer, and
 * every layer's file shows through. Needs root. */
#include <sys/mount.h>
#include <unistd.h>

#include "tests/unit/check.h"
#include "util/util.h"

#define LAYERS 150

static int mount_and_check(char **lower, const char *upper, const char *work, const char *target)
{
        cleanup_err struct err e = ERR_INIT;
        if (mount_overlay(lower, upper, work, upper == NULL, target, &e) < 0) {
                fprintf(stderr, "mount_overlay: %s\n", e.msg);
                return -1;
        }
        int seen = 0;
        for (int i = 0; i < LAYERS; i++) {
                char p[512];
                snprintf(p, sizeof(p), "%s/f%03d", target, i);
                seen += access(p, F_OK) == 0;
        }
        CHECK(seen == LAYERS);
        char top[512];
        snprintf(top, sizeof(top), "%s/shadowed", target);
        cleanup_free char *text = NULL;
        CHECK(file_read_all(top, &text, NULL, 0, NULL) == 0 && text && strcmp(text, "000") == 0);
        if (upper) {
                char w[512];
                snprintf(w, sizeof(w), "%s/written", target);
                CHECK(file_write_atomic(w, "x", 1, 0644, NULL) == 0);
        }
        CHECK(umount2(target, 0) == 0);
        return 0;
}

int main(void)
{
        if (geteuid() != 0) {
                fprintf(stderr, "SKIP: test_util_mount: not root\n");
                return 77;
        }
        char tmp[] = "/tmp/corral-mount-XXXXXX";
        CHECK(mkdtemp(tmp) != NULL);
        char **lower = NULL;
        size_t optlen = 0;
        for (int i = 0; i < LAYERS; i++) {
                /* long names, as the snapshotter's paths are */
                char *d = xasprintf("%s/layer-%03d-abcdefghijklmnopqrstuvwxyz", tmp, i);
                CHECK(mkdir_p(d, 0755, NULL) == 0);
                char *f = xasprintf("%s/f%03d", d, i);
                CHECK(file_write_atomic(f, "x", 1, 0644, NULL) == 0);
                char *s = xasprintf("%s/shadowed", d);
                char v[8];
                snprintf(v, sizeof(v), "%03d", i);
                CHECK(file_write_atomic(s, v, 3, 0644, NULL) == 0); /* the top layer's wins */
                strv_push(&lower, d);
                optlen += strlen(d) + 1;
                free(d), free(f), free(s);
        }
        CHECK(optlen > (size_t)sysconf(_SC_PAGESIZE)); /* beyond mount(2): the other path */
        char *target = path_join(tmp, "merged"), *upper = path_join(tmp, "upper"),
             *work = path_join(tmp, "work");
        CHECK(mkdir_p(target, 0755, NULL) == 0 && mkdir_p(upper, 0755, NULL) == 0 &&
              mkdir_p(work, 0755, NULL) == 0);
        CHECK(mount_and_check(lower, NULL, NULL, target) == 0);
        CHECK(mount_and_check(lower, upper, work, target) == 0);
        char *written = path_join(upper, "written");
        CHECK(access(written, F_OK) == 0); /* the write went to the upper layer */
        /* a few layers: the plain mount(2) path */
        char *few[] = {lower[0], lower[1], NULL};
        cleanup_err struct err e = ERR_INIT;
        CHECK(mount_overlay(few, NULL, NULL, true, target, &e) == 0);
        CHECK(umount2(target, 0) == 0);
        /* a missing layer: a clear error naming the target */
        char *bad[] = {"/nonexistent/layer", NULL};
        err_clear(&e);
        CHECK(mount_overlay(bad, NULL, NULL, true, target, &e) < 0 && e.msg && strstr(e.msg, target));
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
        (void)!system(cmd);
        strv_free(lower);
        free(target), free(upper), free(work), free(written);
        return check_report("test_util_mount");
}
