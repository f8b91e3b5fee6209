/* libFuzzer: the WebSocket frame parser (masked client frames, fragments,
 * control frames), plus the base64 channel decoder. */
#include <string.h>

#include "stream/stream-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint8_t *buf = xmemdup(data, size ? size : 1); /* the parser unmasks in place */
        size_t off = 0;
        bool require_mask = size && (data[0] & 1);
        while (off < size) {
                struct ws_frame f;
                long n = ws_parse(buf + off, size - off, 1 << 20, require_mask, &f, NULL);
                if (n <= 0)
                        break;
                if (f.len > 1 && f.opcode == WS_TEXT) {
                        size_t dn;
                        free(base64_decode_n((const char *)f.payload + 1, f.len - 1, &dn));
                }
                off += (size_t)n;
        }
        free(buf);
        return 0;
}
