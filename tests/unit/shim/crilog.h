/* Parse a CRI log file strictly: every line must be
 * `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ <stdout|stderr> <P|F> <text>`. */
#ifndef CORRAL_TEST_CRILOG_H
#define CORRAL_TEST_CRILOG_H

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

struct crilog_line {
        char ts[31];
        char stream[7];
        char tag;
        char *text; /* owned */
        size_t len;
};

struct crilog {
        struct crilog_line *lines;
        size_t n;
        int bad; /* lines that did not parse */
};

static inline bool crilog_ts_ok(const char *s)
{
        /* 2026-11-22T20:43:59.123456789Z */
        static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddddddddZ";
        for (size_t i = 0; i < sizeof(pat) - 1; i++) {
                if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i])
                        return false;
        }
        return true;
}

static inline void crilog_free(struct crilog *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->lines[i].text);
        free(l->lines);
        memset(l, 0, sizeof(*l));
}

/* Returns -1 when the file cannot be read. */
static inline int crilog_read(const char *path, struct crilog *out)
{
        memset(out, 0, sizeof(*out));
        char *buf = NULL;
        size_t len = 0;
        if (file_read_all(path, &buf, &len, 0, NULL) < 0)
                return -1;
        size_t pos = 0;
        while (pos < len) {
                char *nl = memchr(buf + pos, '\n', len - pos);
                size_t end = nl ? (size_t)(nl - buf) : len;
                const char *l = buf + pos;
                size_t ll = end - pos;
                pos = end + 1;
                /* ts(30) sp stream sp tag sp */
                if (!nl || ll < 30 + 1 + 6 + 1 + 1 + 1 || !crilog_ts_ok(l) || l[30] != ' ') {
                        out->bad++;
                        continue;
                }
                const char *p = l + 31;
                size_t slen = 0;
                if (strncmp(p, "stdout ", 7) == 0 || strncmp(p, "stderr ", 7) == 0)
                        slen = 6;
                if (slen == 0 || (p[7] != 'P' && p[7] != 'F') || p[8] != ' ') {
                        out->bad++;
                        continue;
                }
                out->lines = xrealloc(out->lines, (out->n + 1) * sizeof(*out->lines));
                struct crilog_line *c = &out->lines[out->n++];
                memcpy(c->ts, l, 30);
                c->ts[30] = '\0';
                memcpy(c->stream, p, 6);
                c->stream[6] = '\0';
                c->tag = p[7];
                const char *text = p + 9;
                c->len = ll - (size_t)(text - l);
                c->text = xstrndup(text, c->len);
        }
        free(buf);
        return 0;
}

/* The k-th line of `stream`, or NULL. */
static inline const struct crilog_line *crilog_nth(const struct crilog *l, const char *stream, size_t k)
{
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->lines[i].stream, stream) == 0 && k-- == 0)
                        return &l->lines[i];
        return NULL;
}

static inline size_t crilog_count(const struct crilog *l, const char *stream)
{
        size_t n = 0;
        for (size_t i = 0; i < l->n; i++)
                n += strcmp(l->lines[i].stream, stream) == 0;
        return n;
}

static inline bool crilog_all_char(const struct crilog_line *c, char ch)
{
        for (size_t i = 0; i < c->len; i++)
                if (c->text[i] != ch)
                        return false;
        return true;
}

#endif
