/* libFuzzer target: manifest / index / config parsers and platform choice
 * on registry-controlled bytes. The first byte picks the parser. */
#include <stdint.h>

#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        struct err e = ERR_INIT;
        const char *buf = (const char *)data + 1;
        size_t len = size - 1;
        static const char *const types[] = {NULL, IMG_MT_OCI_INDEX, IMG_MT_DOCKER_MANIFEST,
                                            IMG_MT_OCI_MANIFEST};
        if (data[0] & 1) {
                struct img_config c;
                if (img_config_parse(buf, len, &c, &e) == 0) {
                        char **chain = img_chain_ids(c.diff_ids);
                        strv_free(chain);
                        img_config_clear(&c);
                }
        } else {
                struct img_manifest m;
                if (img_manifest_parse(buf, len, types[(data[0] >> 1) & 3], &m, &e) == 0) {
                        const struct img_descriptor *d;
                        if (m.kind == IMG_KIND_INDEX) {
                                (void)img_index_select(&m, "linux", "amd64", NULL, &d, NULL);
                                (void)img_index_select(&m, "linux", "arm", "v7", &d, NULL);
                                (void)img_index_select(&m, "linux", "arm64", "v8", &d, NULL);
                        }
                        img_manifest_clear(&m);
                }
        }
        err_clear(&e);
        /* references too: the second half of the inputs */
        if (data[0] & 0x80) {
                char *s = xstrndup(buf, len);
                struct img_ref r;
                if (img_ref_parse(s, &r, &e) == 0) {
                        free(img_ref_familiar(&r));
                        free(img_ref_string(&r));
                        img_ref_clear(&r);
                }
                err_clear(&e);
                free(s);
        }
        return 0;
}
