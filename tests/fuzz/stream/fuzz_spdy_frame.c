/* libFuzzer: the SPDY/3.1 frame parser and header-block decoding, as the
 * server's reader loop runs them on bytes from the network. */
#include <string.h>

#include "stream/stream-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct spdy_zlib z;
        if (spdy_zlib_init(&z, NULL) < 0)
                return 0;
        size_t off = 0;
        while (off < size) {
                struct spdy_frame f;
                long n = spdy_parse(data + off, size - off, 1 << 20, &f, NULL);
                if (n <= 0)
                        break;
                if (f.type == SPDY_SYN_STREAM || f.type == SPDY_SYN_REPLY || f.type == SPDY_HEADERS) {
                        struct sbuf raw = {0};
                        struct spdy_headers h;
                        if (spdy_zlib_inflate(&z, f.payload, f.payload_len, 64 * 1024, &raw, NULL) == 0 &&
                            spdy_headers_decode((const uint8_t *)raw.buf, raw.len, &h, NULL) == 0) {
                                (void)spdy_headers_get(&h, "streamtype");
                                spdy_headers_free(&h);
                        }
                        sbuf_free(&raw);
                }
                off += (size_t)n;
        }
        /* The uncompressed name/value decoder on its own as well. */
        struct spdy_headers h;
        if (spdy_headers_decode(data, size, &h, NULL) == 0)
                spdy_headers_free(&h);
        spdy_zlib_free(&z);
        return 0;
}
