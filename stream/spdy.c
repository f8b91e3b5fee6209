/* SPDY/3.1 frame parsing and encoding, and name/value header blocks.
 *
 * Control frame: |1|version(15)|type(16)|flags(8)|length(24)|body
 * Data frame:    |0|stream-id(31)|flags(8)|length(24)|data
 */
#include <string.h>
#include <strings.h>

#include "stream/stream-internal.h"

static uint32_t get32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(struct sbuf *b, uint32_t v)
{
        uint8_t x[4] = {v >> 24, v >> 16, v >> 8, v};
        sbuf_append(b, x, 4);
}

static void put_len(struct sbuf *b, uint8_t flags, size_t len)
{
        uint8_t x[4] = {flags, len >> 16, len >> 8, len};
        sbuf_append(b, x, 4);
}

bool spdy_is_control_known(uint16_t type)
{
        switch (type) {
        case SPDY_SYN_STREAM:
        case SPDY_SYN_REPLY:
        case SPDY_RST_STREAM:
        case SPDY_SETTINGS:
        case SPDY_PING:
        case SPDY_GOAWAY:
        case SPDY_HEADERS:
        case SPDY_WINDOW_UPDATE:
                return true;
        }
        return false;
}

long spdy_parse(const uint8_t *buf, size_t len, size_t max_len, struct spdy_frame *f, struct err *e)
{
        if (len < 8)
                return 0;
        size_t flen = (size_t)buf[5] << 16 | (size_t)buf[6] << 8 | buf[7];
        if (flen > max_len)
                return err_set(e, ERR_INVALID, "spdy frame of %zu bytes exceeds the limit of %zu", flen,
                               max_len);
        if (len < 8 + flen)
                return 0;
        memset(f, 0, sizeof(*f));
        f->flags = buf[4];
        const uint8_t *p = buf + 8;

        if (!(buf[0] & 0x80)) {
                f->type = SPDY_DATA;
                f->stream_id = get32(buf) & 0x7fffffff;
                if (f->stream_id == 0)
                        return err_set(e, ERR_INVALID, "spdy data frame on stream 0");
                f->payload = p;
                f->payload_len = flen;
                return (long)(8 + flen);
        }

        uint16_t version = (uint16_t)((buf[0] & 0x7f) << 8 | buf[1]);
        if (version != SPDY_VERSION)
                return err_set(e, ERR_INVALID, "spdy control frame version %u, want 3", version);
        f->type = (uint16_t)(buf[2] << 8 | buf[3]);
        switch (f->type) {
        case SPDY_SYN_STREAM:
                if (flen < 10)
                        return err_set(e, ERR_INVALID, "spdy SYN_STREAM too short (%zu bytes)", flen);
                f->stream_id = get32(p) & 0x7fffffff;
                f->assoc_id = get32(p + 4) & 0x7fffffff;
                f->priority = p[8] >> 5;
                f->payload = p + 10;
                f->payload_len = flen - 10;
                if (f->stream_id == 0)
                        return err_set(e, ERR_INVALID, "spdy SYN_STREAM with stream id 0");
                break;
        case SPDY_SYN_REPLY:
        case SPDY_HEADERS:
                if (flen < 4)
                        return err_set(e, ERR_INVALID, "spdy control frame %u too short", f->type);
                f->stream_id = get32(p) & 0x7fffffff;
                f->payload = p + 4;
                f->payload_len = flen - 4;
                if (f->stream_id == 0)
                        return err_set(e, ERR_INVALID, "spdy control frame %u with stream id 0", f->type);
                break;
        case SPDY_RST_STREAM:
        case SPDY_GOAWAY:
        case SPDY_WINDOW_UPDATE:
                if (flen != 8)
                        return err_set(e, ERR_INVALID, "spdy control frame %u has length %zu, want 8",
                                       f->type, flen);
                f->stream_id = get32(p) & 0x7fffffff;
                f->value = get32(p + 4);
                if (f->type == SPDY_WINDOW_UPDATE)
                        f->value &= 0x7fffffff;
                break;
        case SPDY_SETTINGS:
                if (flen < 4)
                        return err_set(e, ERR_INVALID, "spdy SETTINGS too short");
                f->value = get32(p);
                if ((uint64_t)f->value * 8 + 4 != flen)
                        return err_set(e, ERR_INVALID, "spdy SETTINGS with %u entries has length %zu",
                                       f->value, flen);
                f->payload = p + 4;
                f->payload_len = flen - 4;
                break;
        case SPDY_PING:
                if (flen != 4)
                        return err_set(e, ERR_INVALID, "spdy PING has length %zu, want 4", flen);
                f->value = get32(p);
                break;
        default:
                /* Unknown control frames are ignored by the receiver (SPDY/3 §2.2.1). */
                f->payload = p;
                f->payload_len = flen;
                break;
        }
        return (long)(8 + flen);
}

void spdy_put_data(struct sbuf *b, uint32_t id, uint8_t flags, const void *data, size_t len)
{
        put32(b, id & 0x7fffffff);
        put_len(b, flags, len);
        if (len)
                sbuf_append(b, data, len);
}

void spdy_put_control(struct sbuf *b, uint16_t type, uint8_t flags, const void *body, size_t len)
{
        uint8_t h[4] = {0x80, SPDY_VERSION, type >> 8, type & 0xff};
        sbuf_append(b, h, 4);
        put_len(b, flags, len);
        if (len)
                sbuf_append(b, body, len);
}

void spdy_put_syn_stream(struct sbuf *b, uint32_t id, uint8_t flags, const void *hblock, size_t hlen)
{
        uint8_t h[4] = {0x80, SPDY_VERSION, 0, SPDY_SYN_STREAM};
        sbuf_append(b, h, 4);
        put_len(b, flags, 10 + hlen);
        put32(b, id & 0x7fffffff);
        put32(b, 0);
        uint8_t pri[2] = {0, 0};
        sbuf_append(b, pri, 2);
        sbuf_append(b, hblock, hlen);
}

void spdy_put_syn_reply(struct sbuf *b, uint32_t id, uint8_t flags, const void *hblock, size_t hlen)
{
        uint8_t h[4] = {0x80, SPDY_VERSION, 0, SPDY_SYN_REPLY};
        sbuf_append(b, h, 4);
        put_len(b, flags, 4 + hlen);
        put32(b, id & 0x7fffffff);
        sbuf_append(b, hblock, hlen);
}

static void put_two(struct sbuf *b, uint16_t type, uint32_t a, uint32_t v)
{
        uint8_t h[4] = {0x80, SPDY_VERSION, 0, (uint8_t)type};
        sbuf_append(b, h, 4);
        put_len(b, 0, 8);
        put32(b, a);
        put32(b, v);
}

void spdy_put_rst(struct sbuf *b, uint32_t id, uint32_t status)
{
        put_two(b, SPDY_RST_STREAM, id & 0x7fffffff, status);
}

void spdy_put_goaway(struct sbuf *b, uint32_t last_good, uint32_t status)
{
        put_two(b, SPDY_GOAWAY, last_good & 0x7fffffff, status);
}

void spdy_put_ping(struct sbuf *b, uint32_t id)
{
        uint8_t h[4] = {0x80, SPDY_VERSION, 0, SPDY_PING};
        sbuf_append(b, h, 4);
        put_len(b, 0, 4);
        put32(b, id);
}

/* ---------- name/value blocks ---------- */

void spdy_headers_free(struct spdy_headers *h)
{
        if (!h)
                return;
        for (size_t i = 0; i < h->n; i++) {
                free(h->v[i].name);
                free(h->v[i].value);
        }
        free(h->v);
        h->v = NULL;
        h->n = 0;
}

int spdy_headers_decode(const uint8_t *raw, size_t len, struct spdy_headers *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        if (len < 4)
                return err_set(e, ERR_INVALID, "spdy header block too short");
        uint32_t n = get32(raw);
        size_t off = 4;
        /* Each pair takes at least 8 bytes: bound n before allocating. */
        if (n > (len - 4) / 8)
                return err_set(e, ERR_INVALID, "spdy header block claims %u pairs in %zu bytes", n, len);
        out->v = xcalloc(n ? n : 1, sizeof(*out->v));
        for (uint32_t i = 0; i < n; i++) {
                uint32_t l[2];
                const uint8_t *s[2];
                for (int k = 0; k < 2; k++) {
                        if (len - off < 4)
                                goto bad;
                        l[k] = get32(raw + off);
                        off += 4;
                        if (l[k] > len - off)
                                goto bad;
                        s[k] = raw + off;
                        off += l[k];
                }
                if (l[0] == 0)
                        goto bad;
                out->v[i].name = xstrndup((const char *)s[0], l[0]);
                out->v[i].value = xmalloc(l[1] + 1);
                memcpy(out->v[i].value, s[1], l[1]);
                out->v[i].value[l[1]] = 0;
                out->v[i].value_len = l[1];
                out->n++;
                if (strlen(out->v[i].name) != l[0])
                        goto bad;
        }
        if (off != len)
                goto bad;
        return 0;
bad:
        spdy_headers_free(out);
        return err_set(e, ERR_INVALID, "malformed spdy header block");
}

void spdy_headers_encode(const char *const *names, const char *const *values, size_t n, struct sbuf *out)
{
        put32(out, (uint32_t)n);
        for (size_t i = 0; i < n; i++) {
                size_t nl = strlen(names[i]), vl = strlen(values[i]);
                put32(out, (uint32_t)nl);
                /* Go's framer rejects names that are not lowercase. */
                for (size_t k = 0; k < nl; k++) {
                        char ch = names[i][k];
                        sbuf_putc(out, (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch);
                }
                put32(out, (uint32_t)vl);
                sbuf_append(out, values[i], vl);
        }
}

const char *spdy_headers_get(const struct spdy_headers *h, const char *name)
{
        for (size_t i = 0; i < h->n; i++)
                if (strcasecmp(h->v[i].name, name) == 0)
                        return h->v[i].value; /* first of NUL-separated values */
        return NULL;
}
