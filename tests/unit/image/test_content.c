/* Content store: verified writes, resume of a partial file, refusals. */
#include <fcntl.h>
#include <sys/stat.h>

#include "image/image.h"
#include "check.h"

static char root[] = "/tmp/corral-test-content-XXXXXX";

static size_t file_size(const char *p)
{
        struct stat st;
        return stat(p, &st) == 0 ? (size_t)st.st_size : (size_t)-1;
}

int main(void)
{
        struct err e = ERR_INIT;
        if (!mkdtemp(root)) {
                perror("mkdtemp");
                return 1;
        }
        struct img_content *c = NULL;
        CHECK_OK(img_content_open(root, &c, &e), &e);
        if (!c)
                return 1;

        const char data[] = "hello, content store\n";
        size_t len = sizeof(data) - 1;
        char *digest = img_digest_of(data, len);
        char *path = img_content_path(c, digest);
        char *partial = xasprintf("%s.partial", path);

        /* good: streamed in pieces */
        struct img_content_writer *w = NULL;
        CHECK_OK(img_content_writer_open(c, digest, (int64_t)len, &w, &e), &e);
        CHECK(img_content_writer_offset(w) == 0);
        CHECK_OK(img_content_writer_write(w, data, 5, &e), &e);
        CHECK_OK(img_content_writer_write(w, data + 5, len - 5, &e), &e);
        CHECK_OK(img_content_writer_commit(w, &e), &e);
        img_content_writer_free(w, false);
        CHECK(img_content_has(c, digest));
        CHECK(file_size(path) == len);
        CHECK(access(partial, F_OK) < 0);
        CHECK_OK(img_content_delete(c, digest, &e), &e);
        CHECK(!img_content_has(c, digest));

        /* resume: a partial file from an interrupted download */
        CHECK_OK(img_content_writer_open(c, digest, (int64_t)len, &w, &e), &e);
        CHECK_OK(img_content_writer_write(w, data, 7, &e), &e);
        img_content_writer_free(w, false); /* the connection dropped */
        CHECK(file_size(partial) == 7);
        CHECK_OK(img_content_writer_open(c, digest, (int64_t)len, &w, &e), &e);
        CHECK(img_content_writer_offset(w) == 7);
        CHECK_OK(img_content_writer_write(w, data + 7, len - 7, &e), &e);
        CHECK_OK(img_content_writer_commit(w, &e), &e);
        img_content_writer_free(w, false);
        CHECK(img_content_has(c, digest));
        CHECK_OK(img_content_delete(c, digest, &e), &e);

        /* resume with a corrupted partial file: the hash over the re-read
         * bytes catches it, and the partial file is gone afterwards */
        int fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        CHECK(fd >= 0 && write(fd, "HELLO", 5) == 5);
        close(fd);
        CHECK_OK(img_content_writer_open(c, digest, (int64_t)len, &w, &e), &e);
        CHECK(img_content_writer_offset(w) == 5);
        CHECK_OK(img_content_writer_write(w, data + 5, len - 5, &e), &e);
        CHECK_ERR(img_content_writer_commit(w, &e), &e, ERR_DATA_LOSS, digest);
        img_content_writer_free(w, false);
        CHECK(access(partial, F_OK) < 0);
        CHECK(!img_content_has(c, digest));

        /* reset: the server ignored Range */
        CHECK_OK(img_content_writer_open(c, digest, (int64_t)len, &w, &e), &e);
        CHECK_OK(img_content_writer_write(w, "junk", 4, &e), &e);
        CHECK_OK(img_content_writer_reset(w, &e), &e);
        CHECK_OK(img_content_writer_write(w, data, len, &e), &e);
        CHECK_OK(img_content_writer_commit(w, &e), &e);
        img_content_writer_free(w, false);
        CHECK_OK(img_content_delete(c, digest, &e), &e);

        /* bad digest: the error names the digest and what was got */
        char *other = img_digest_of("other", 5);
        CHECK_OK(img_content_writer_open(c, other, (int64_t)len, &w, &e), &e);
        CHECK_OK(img_content_writer_write(w, data, len, &e), &e);
        err_clear(&e);
        CHECK(img_content_writer_commit(w, &e) < 0 && e.kind == ERR_DATA_LOSS && strstr(e.msg, other) &&
              strstr(e.msg, digest));
        err_clear(&e);
        img_content_writer_free(w, false);
        CHECK(!img_content_has(c, other));

        /* truncated: fewer bytes than the descriptor says */
        CHECK_OK(img_content_writer_open(c, digest, (int64_t)len + 10, &w, &e), &e);
        CHECK_OK(img_content_writer_write(w, data, len, &e), &e);
        CHECK_ERR(img_content_writer_commit(w, &e), &e, ERR_DATA_LOSS, "truncated");
        img_content_writer_free(w, false);
        CHECK(!img_content_has(c, digest));
        CHECK(access(partial, F_OK) < 0);

        /* too long: more bytes than the descriptor says, refused at once */
        CHECK_OK(img_content_writer_open(c, digest, 4, &w, &e), &e);
        CHECK_ERR(img_content_writer_write(w, data, len, &e), &e, ERR_DATA_LOSS, "more data");
        img_content_writer_free(w, true);
        CHECK(access(partial, F_OK) < 0);

        /* put: whole buffers, checked too */
        CHECK_OK(img_content_put(c, digest, data, len, &e), &e);
        CHECK(img_content_has(c, digest));
        CHECK_ERR(img_content_put(c, other, data, len, &e), &e, ERR_DATA_LOSS, "does not match");
        CHECK(!img_content_has(c, other));

        /* digests are never paths */
        CHECK_ERR(img_content_writer_open(c, "sha256:../../etc/passwd", 1, &w, &e), &e, ERR_INVALID,
                  "bad digest");
        CHECK(!img_content_has(c, "sha256:../x"));

        free(digest);
        free(other);
        free(path);
        free(partial);
        img_content_free(c);
        rm_rf(root, NULL);
        CHECK_DONE("test_image_content");
}
