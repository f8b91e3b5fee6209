/* References: normalisation, familiar form, and refusals. */
#include "image/image.h"
#include "check.h"

#define D64 "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const struct {
        const char *in, *full, *familiar, *domain, *path;
} good[] = {
        {"busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io", "library/busybox"},
        {"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", "docker.io", "library/busybox"},
        {"library/busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io",
         "library/busybox"},
        {"docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io",
         "library/busybox"},
        {"index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io",
         "library/busybox"},
        {"bitnami/redis:7", "docker.io/bitnami/redis:7", "bitnami/redis:7", "docker.io", "bitnami/redis"},
        {"registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10",
         "registry.k8s.io", "pause"},
        {"localhost/foo", "localhost/foo:latest", "localhost/foo:latest", "localhost", "foo"},
        {"localhost:5000/a/b/c:v1", "localhost:5000/a/b/c:v1", "localhost:5000/a/b/c:v1", "localhost:5000",
         "a/b/c"},
        {"127.0.0.1:5000/x", "127.0.0.1:5000/x:latest", "127.0.0.1:5000/x:latest", "127.0.0.1:5000", "x"},
        {"[::1]:5000/x:1", "[::1]:5000/x:1", "[::1]:5000/x:1", "[::1]:5000", "x"},
        {"busybox@" D64, "docker.io/library/busybox@" D64, "busybox@" D64, "docker.io", "library/busybox"},
        {"busybox:1.36@" D64, "docker.io/library/busybox:1.36@" D64, "busybox:1.36@" D64, "docker.io",
         "library/busybox"},
        {"quay.io/a-b/c_d.e__f---g:T_ag.1-x", "quay.io/a-b/c_d.e__f---g:T_ag.1-x",
         "quay.io/a-b/c_d.e__f---g:T_ag.1-x", "quay.io", "a-b/c_d.e__f---g"},
        {"Example.COM/x", "Example.COM/x:latest", "Example.COM/x:latest", "Example.COM", "x"},
        {"localhost:5000", "docker.io/library/localhost:5000", "localhost:5000", "docker.io",
         "library/localhost"},
        {"ghcr.io/library/x", "ghcr.io/library/x:latest", "ghcr.io/library/x:latest", "ghcr.io", "library/x"},
};

static const struct {
        const char *in, *why;
} bad[] = {
        {"", "empty"},
        {"Busybox", "lowercase"},
        {"busybox:", "bad tag"},
        {"busybox:-x", "bad tag"},
        {"busybox:a/b", "bad"},
        {"busybox@sha256:abc", "bad digest"},
        {"busybox@md5:0123456789abcdef0123456789abcdef", "bad digest"},
        {"busybox@"
         "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
         "bad digest"},
        {"/busybox", "bad"},
        {"busybox/", "bad"},
        {"a//b", "bad"},
        {"a/../b", "bad repository path component"},
        {"-foo", "bad"},
        {"foo-", "bad"},
        {"foo..bar", "bad"},
        {"foo___bar", "bad"},
        {"exa mple/x", "bad"},
        {"-bad.com/x", "bad registry host"},
        {"bad.com:port/x", "bad registry host"},
        {"bad.com:123456/x", "bad registry host"},
        {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "image id"},
        {"x:"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "bad tag"},
        {"busybox@" D64 "@" D64, "bad digest"},
};

int main(void)
{
        struct err e = ERR_INIT;
        for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
                struct img_ref r;
                if (img_ref_parse(good[i].in, &r, &e) < 0) {
                        fprintf(stderr, "parse \"%s\": %s\n", good[i].in, e.msg);
                        failures++;
                        err_clear(&e);
                        continue;
                }
                char *full = img_ref_string(&r), *fam = img_ref_familiar(&r);
                CHECK_STR(full, good[i].full);
                CHECK_STR(fam, good[i].familiar);
                CHECK_STR(r.domain, good[i].domain);
                CHECK_STR(r.path, good[i].path);
                /* normalising is idempotent */
                char *again = img_ref_normalize(full, &e);
                CHECK_STR(again, full);
                free(again);
                free(full);
                free(fam);
                img_ref_clear(&r);
        }
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                struct img_ref r;
                CHECK_ERR(img_ref_parse(bad[i].in, &r, &e), &e, ERR_INVALID, bad[i].why);
                /* the message names the reference */
                err_clear(&e);
                if (img_ref_parse(bad[i].in, &r, &e) < 0 && *bad[i].in && !strstr(e.msg, bad[i].in) &&
                    strlen(bad[i].in) < 100) {
                        fprintf(stderr, "error for \"%s\" does not name it: %s\n", bad[i].in, e.msg);
                        failures++;
                }
                err_clear(&e);
        }
        /* a 256-character name */
        char longname[300];
        memset(longname, 'a', 256);
        longname[256] = '\0';
        struct img_ref r;
        CHECK_ERR(img_ref_parse(longname, &r, &e), &e, ERR_INVALID, "longer than 255");
        CHECK(img_digest_valid(D64));
        CHECK(!img_digest_valid("sha256:"));
        CHECK_DONE("test_image_ref");
}
