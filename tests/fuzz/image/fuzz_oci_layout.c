/* libFuzzer target: OCI image layout import parsing on hostile bytes. The
 * first byte picks: odd = the bytes are a whole archive scanned into a
 * staging directory, then index.json parsed and every blob it names looked
 * up (nested indexes and manifests parsed too); even = index.json alone.
 * Entry names are cleaned either way. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "image/archive-internal.h"
#include "stage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void blob(const struct arc *a, const struct img_descriptor *d, int depth)
{
        if (!img_digest_valid(d->digest) || depth > 2)
                return;
        char *name = xasprintf("blobs/sha256/%s", d->digest + 7);
        char *buf = NULL;
        size_t len = 0;
        if (arc_read(a, name, &buf, &len, NULL) == 0) {
                struct img_manifest m;
                if (img_manifest_parse(buf, len, d->media_type, &m, NULL) == 0) {
                        for (size_t i = 0; i < m.n_manifests; i++)
                                blob(a, &m.manifests[i], depth + 1);
                        if (m.kind == IMG_KIND_MANIFEST)
                                blob(a, &m.config, depth + 1);
                        img_manifest_clear(&m);
                }
        }
        free(buf);
        free(name);
}

static void index_json(const char *buf, size_t len, const struct arc *a)
{
        struct err e = ERR_INIT;
        struct arc_oci_ref *v = NULL;
        size_t n = 0;
        if (arc_oci_index_parse(buf, len, &v, &n, &e) == 0) {
                for (size_t i = 0; i < n && a; i++)
                        blob(a, &v[i].d, 0);
                arc_oci_refs_free(v, n);
        }
        err_clear(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        const char *buf = (const char *)data + 1;
        size_t len = size - 1;
        struct err e = ERR_INIT;
        if (!(data[0] & 1)) {
                index_json(buf, len, NULL);
                char *s = xstrndup(buf, len);
                char *out = NULL;
                if (arc_name_clean(s, data[0] & 2, &out, &e) == 0)
                        free(out);
                err_clear(&e);
                free(s);
                return 0;
        }
        struct arc a;
        if (arc_scan_mem(fuzz_stage("fuzz-oci-layout"), buf, len, &a, &e) == 0) {
                char *m = NULL;
                size_t mlen = 0;
                if (arc_read(&a, "index.json", &m, &mlen, &e) == 0)
                        index_json(m, mlen, &a);
                free(m);
                arc_clear(&a);
        }
        err_clear(&e);
        return 0;
}
