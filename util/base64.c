/* Base64 (RFC 4648, standard alphabet) and a UTF-8 check: what carries
 * arbitrary bytes through JSON, whose strings must be UTF-8. */
#include <string.h>

#include "util/util.h"

static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *buf, size_t len)
{
        const unsigned char *p = buf;
        char *out = xmalloc(4 * ((len + 2) / 3) + 1);
        size_t o = 0;
        for (size_t i = 0; i < len; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16;
                if (i + 1 < len)
                        v |= (uint32_t)p[i + 1] << 8;
                if (i + 2 < len)
                        v |= p[i + 2];
                out[o++] = tbl[(v >> 18) & 63];
                out[o++] = tbl[(v >> 12) & 63];
                out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
                out[o++] = i + 2 < len ? tbl[v & 63] : '=';
        }
        out[o] = '\0';
        return out;
}

char *base64_decode(const char *s, size_t *n)
{
        return base64_decode_n(s, strlen(s), n);
}

char *base64_decode_n(const char *s, size_t len, size_t *n)
{
        char *out = xmalloc(len / 4 * 3 + 4);
        uint32_t acc = 0;
        int bits = 0;
        size_t o = 0, i = 0;
        for (; i < len && s[i] != '='; i++) {
                if (s[i] == '\n' || s[i] == '\r') /* wrapped text (PEM-style, docker config files) */
                        continue;
                const char *pos = strchr(tbl, s[i]);
                if (pos == NULL)
                        goto bad;
                acc = acc << 6 | (uint32_t)(pos - tbl);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (char)(acc >> bits & 0xff);
                }
        }
        for (; i < len; i++)
                if (s[i] != '=' && s[i] != '\n' && s[i] != '\r')
                        goto bad;
        out[o] = '\0';
        *n = o;
        return out;
bad:
        free(out);
        return NULL;
}

bool utf8_valid(const char *s, size_t n)
{
        const unsigned char *p = (const unsigned char *)s;
        for (size_t i = 0; i < n;) {
                unsigned c = p[i];
                size_t k;
                uint32_t cp, min;
                if (c < 0x80) {
                        i++;
                        continue;
                } else if (c >= 0xc2 && c <= 0xdf) {
                        k = 1, cp = c & 0x1f, min = 0x80;
                } else if (c >= 0xe0 && c <= 0xef) {
                        k = 2, cp = c & 0x0f, min = 0x800;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        k = 3, cp = c & 0x07, min = 0x10000;
                } else {
                        return false;
                }
                if (n - i <= k)
                        return false;
                for (size_t j = 1; j <= k; j++) {
                        if ((p[i + j] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (p[i + j] & 0x3f);
                }
                /* overlong forms, UTF-16 surrogates, beyond U+10FFFF */
                if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                        return false;
                i += k + 1;
        }
        return true;
}
