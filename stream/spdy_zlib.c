/* SPDY/3 header block compression: zlib with the SPDY/3 dictionary.
 *
 * The dictionary (SPDY/3 draft §2.6.10.1) is a list of header words, each
 * with a 4-byte big-endian length, followed by a run of common values; it
 * is built from that description once, and its length (1423 bytes) and
 * Adler-32 are checked in the unit test. */
#include <string.h>

#include "stream/stream-internal.h"

static const char *const dict_words[] = {
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
};

static const char dict_tail[] =
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
        "203 Non-Authoritative Information"
        "204 No Content"
        "301 Moved Permanently"
        "400 Bad Request"
        "401 Unauthorized"
        "403 Forbidden"
        "404 Not Found"
        "500 Internal Server Error"
        "501 Not Implemented"
        "503 Service Unavailable"
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
        "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

#define DICT_LEN SPDY_DICT_LEN
static uint8_t dict_buf[DICT_LEN];
static pthread_once_t dict_once = PTHREAD_ONCE_INIT;

static void dict_build(void)
{
        size_t off = 0;
        for (size_t i = 0; i < ARRAY_SIZE(dict_words); i++) {
                size_t l = strlen(dict_words[i]);
                dict_buf[off++] = (uint8_t)(l >> 24);
                dict_buf[off++] = (uint8_t)(l >> 16);
                dict_buf[off++] = (uint8_t)(l >> 8);
                dict_buf[off++] = (uint8_t)l;
                memcpy(dict_buf + off, dict_words[i], l);
                off += l;
        }
        memcpy(dict_buf + off, dict_tail, sizeof(dict_tail) - 1);
        off += sizeof(dict_tail) - 1;
        if (off != DICT_LEN)
                abort(); /* the table above is wrong: caught by every test */
}

const uint8_t *spdy_dict(void)
{
        pthread_once(&dict_once, dict_build);
        return dict_buf;
}

int spdy_zlib_init(struct spdy_zlib *z, struct err *e)
{
        memset(z, 0, sizeof(*z));
        const uint8_t *dict = spdy_dict();
        if (deflateInit(&z->def, Z_BEST_COMPRESSION) != Z_OK)
                return err_set(e, ERR_INTERNAL, "deflateInit failed");
        z->def_ok = true;
        if (deflateSetDictionary(&z->def, dict, DICT_LEN) != Z_OK) {
                spdy_zlib_free(z);
                return err_set(e, ERR_INTERNAL, "deflateSetDictionary failed");
        }
        if (inflateInit(&z->inf) != Z_OK) {
                spdy_zlib_free(z);
                return err_set(e, ERR_INTERNAL, "inflateInit failed");
        }
        z->inf_ok = true;
        return 0;
}

void spdy_zlib_free(struct spdy_zlib *z)
{
        if (!z)
                return;
        if (z->def_ok)
                deflateEnd(&z->def);
        if (z->inf_ok)
                inflateEnd(&z->inf);
        z->def_ok = z->inf_ok = false;
}

int spdy_zlib_deflate(struct spdy_zlib *z, const void *in, size_t len, struct sbuf *out, struct err *e)
{
        uint8_t chunk[4096];
        z->def.next_in = (Bytef *)in;
        z->def.avail_in = (uInt)len;
        do {
                z->def.next_out = chunk;
                z->def.avail_out = sizeof(chunk);
                int r = deflate(&z->def, Z_SYNC_FLUSH);
                if (r != Z_OK && r != Z_BUF_ERROR)
                        return err_set(e, ERR_INTERNAL, "deflate: %d", r);
                sbuf_append(out, chunk, sizeof(chunk) - z->def.avail_out);
        } while (z->def.avail_out == 0);
        return 0;
}

int spdy_zlib_inflate(struct spdy_zlib *z, const void *in, size_t len, size_t max, struct sbuf *out,
                      struct err *e)
{
        uint8_t chunk[4096];
        size_t start = out->len;
        z->inf.next_in = (Bytef *)in;
        z->inf.avail_in = (uInt)len;
        while (z->inf.avail_in > 0) {
                z->inf.next_out = chunk;
                z->inf.avail_out = sizeof(chunk);
                int r = inflate(&z->inf, Z_SYNC_FLUSH);
                if (r == Z_NEED_DICT) {
                        if (inflateSetDictionary(&z->inf, spdy_dict(), DICT_LEN) != Z_OK)
                                return err_set(e, ERR_INVALID, "spdy header block: wrong zlib dictionary");
                        r = inflate(&z->inf, Z_SYNC_FLUSH);
                }
                if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END)
                        return err_set(e, ERR_INVALID, "spdy header block: inflate: %s",
                                       z->inf.msg ? z->inf.msg : "error");
                size_t got = sizeof(chunk) - z->inf.avail_out;
                if (out->len - start + got > max)
                        return err_set(e, ERR_INVALID, "spdy header block larger than %zu bytes", max);
                sbuf_append(out, chunk, got);
                if (r == Z_STREAM_END)
                        break;
                if (got == 0 && r == Z_BUF_ERROR)
                        break;
        }
        if (z->inf.avail_in > 0)
                return err_set(e, ERR_INVALID, "spdy header block: trailing compressed bytes");
        /* Output may still be pending with avail_in == 0 (all input consumed
         * but the window not flushed): drain it. */
        for (;;) {
                z->inf.next_out = chunk;
                z->inf.avail_out = sizeof(chunk);
                int r = inflate(&z->inf, Z_SYNC_FLUSH);
                size_t got = sizeof(chunk) - z->inf.avail_out;
                if (got == 0)
                        break;
                if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END)
                        return err_set(e, ERR_INVALID, "spdy header block: inflate error");
                if (out->len - start + got > max)
                        return err_set(e, ERR_INVALID, "spdy header block larger than %zu bytes", max);
                sbuf_append(out, chunk, got);
        }
        return 0;
}
