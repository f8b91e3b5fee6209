/* libFuzzer target: docker-archive import parsing on hostile bytes. The
 * first byte picks: odd = the bytes are a whole archive (tar, maybe gzip)
 * scanned into a staging directory, then its manifest.json parsed and
 * every Config / Layers name resolved; even = manifest.json alone. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "image/archive-internal.h"
#include "stage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void manifest(const char *buf, size_t len, const struct arc *a)
{
        struct err e = ERR_INIT;
        struct arc_docker_image *v = NULL;
        size_t n = 0;
        if (arc_docker_manifest_parse(buf, len, &v, &n, &e) == 0) {
                for (size_t i = 0; i < n && a; i++) {
                        (void)arc_find(a, v[i].config);
                        for (size_t k = 0; v[i].layers[k]; k++)
                                (void)arc_find(a, v[i].layers[k]);
                }
                for (size_t i = 0; i < n; i++) {
                        size_t nl = strv_len(v[i].layers);
                        int64_t *sizes = xcalloc(nl + 1, sizeof(*sizes));
                        free(arc_docker_manifest_json(v[i].config, 1, v[i].layers, sizes, nl));
                        free(sizes);
                }
                arc_docker_images_free(v, n);
        }
        err_clear(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        const char *buf = (const char *)data + 1;
        size_t len = size - 1;
        if (!(data[0] & 1)) {
                manifest(buf, len, NULL);
                return 0;
        }
        struct err e = ERR_INIT;
        struct arc a;
        if (arc_scan_mem(fuzz_stage("fuzz-docker-archive"), buf, len, &a, &e) == 0) {
                char *m = NULL;
                size_t mlen = 0;
                if (arc_read(&a, "manifest.json", &m, &mlen, &e) == 0)
                        manifest(m, mlen, &a);
                free(m);
                arc_clear(&a);
        }
        err_clear(&e);
        return 0;
}
