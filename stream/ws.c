/* WebSocket (RFC 6455) frames, the handshake key, base64. */
#include <string.h>

#include <openssl/evp.h>

#include "stream/stream-internal.h"

long ws_parse(uint8_t *buf, size_t len, size_t max_len, bool require_mask, struct ws_frame *f, struct err *e)
{
        if (len < 2)
                return 0;
        memset(f, 0, sizeof(*f));
        f->fin = buf[0] & 0x80;
        if (buf[0] & 0x70)
                return err_set(e, ERR_INVALID,
                               "websocket frame with reserved bits set (no extension negotiated)");
        f->opcode = buf[0] & 0x0f;
        switch (f->opcode) {
        case WS_CONT:
        case WS_TEXT:
        case WS_BINARY:
        case WS_CLOSE:
        case WS_PING:
        case WS_PONG:
                break;
        default:
                return err_set(e, ERR_INVALID, "websocket frame with unknown opcode %u", f->opcode);
        }
        f->masked = buf[1] & 0x80;
        if (require_mask && !f->masked)
                return err_set(e, ERR_INVALID, "unmasked websocket frame from a client");
        uint64_t plen = buf[1] & 0x7f;
        size_t off = 2;
        if (plen == 126) {
                if (len < 4)
                        return 0;
                plen = (uint64_t)buf[2] << 8 | buf[3];
                off = 4;
                if (plen < 126)
                        return err_set(e, ERR_INVALID, "websocket length not minimally encoded");
        } else if (plen == 127) {
                if (len < 10)
                        return 0;
                if (buf[2] & 0x80)
                        return err_set(e, ERR_INVALID, "websocket 64-bit length with the top bit set");
                plen = 0;
                for (int i = 0; i < 8; i++)
                        plen = plen << 8 | buf[2 + i];
                off = 10;
                if (plen <= 0xffff)
                        return err_set(e, ERR_INVALID, "websocket length not minimally encoded");
        }
        if (f->opcode >= WS_CLOSE) {
                if (!f->fin)
                        return err_set(e, ERR_INVALID, "fragmented websocket control frame");
                if (plen > 125)
                        return err_set(e, ERR_INVALID, "websocket control frame of %llu bytes",
                                       (unsigned long long)plen);
        }
        if (plen > max_len)
                return err_set(e, ERR_INVALID, "websocket frame of %llu bytes exceeds the limit of %zu",
                               (unsigned long long)plen, max_len);
        uint8_t key[4] = {0};
        if (f->masked) {
                if (len < off + 4)
                        return 0;
                memcpy(key, buf + off, 4);
                off += 4;
        }
        if (len - off < plen)
                return 0;
        f->len = plen;
        f->payload = buf + off;
        if (f->masked)
                for (uint64_t i = 0; i < plen; i++)
                        f->payload[i] ^= key[i & 3];
        return (long)(off + plen);
}

void ws_put_frame(struct sbuf *b, uint8_t opcode, bool fin, const void *data, size_t len,
                  const uint8_t *mask_key)
{
        uint8_t h[14];
        size_t n = 0;
        h[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
        uint8_t m = mask_key ? 0x80 : 0;
        if (len < 126) {
                h[n++] = m | (uint8_t)len;
        } else if (len <= 0xffff) {
                h[n++] = m | 126;
                h[n++] = (uint8_t)(len >> 8);
                h[n++] = (uint8_t)len;
        } else {
                h[n++] = m | 127;
                for (int i = 7; i >= 0; i--)
                        h[n++] = (uint8_t)((uint64_t)len >> (8 * i));
        }
        if (mask_key) {
                memcpy(h + n, mask_key, 4);
                n += 4;
        }
        sbuf_append(b, h, n);
        if (!len)
                return;
        size_t at = b->len;
        sbuf_append(b, data, len);
        if (mask_key)
                for (size_t i = 0; i < len; i++)
                        b->buf[at + i] ^= (char)mask_key[i & 3];
}

char *ws_accept_key(const char *key)
{
        static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        cleanup_free char *cat = xasprintf("%s%s", key, guid);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        if (!EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL))
                abort(); /* SHA-1 is always there in libcrypto */
        return base64_encode(md, mdlen);
}
