/* Growable strings and string vectors. */
#include <string.h>

#include "util/util.h"

static void grow(struct sbuf *b, size_t extra)
{
        if (b->len + extra + 1 <= b->cap)
                return;
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + extra + 1)
                cap *= 2;
        b->buf = xrealloc(b->buf, cap);
        b->cap = cap;
}

void sbuf_append(struct sbuf *b, const void *data, size_t n)
{
        grow(b, n);
        if (n)
                memcpy(b->buf + b->len, data, n);
        b->len += n;
        b->buf[b->len] = '\0';
}

void sbuf_puts(struct sbuf *b, const char *s)
{
        sbuf_append(b, s, strlen(s));
}

void sbuf_putc(struct sbuf *b, char c)
{
        sbuf_append(b, &c, 1);
}

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
        va_list ap, ap2;
        va_start(ap, fmt);
        va_copy(ap2, ap);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n > 0) {
                grow(b, (size_t)n);
                vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap2);
                b->len += (size_t)n;
        }
        va_end(ap2);
}

char *sbuf_steal(struct sbuf *b)
{
        if (b->buf == NULL)
                return xstrdup("");
        char *r = b->buf;
        b->buf = NULL;
        b->len = b->cap = 0;
        return r;
}

void sbuf_free(struct sbuf *b)
{
        free(b->buf);
        b->buf = NULL;
        b->len = b->cap = 0;
}

bool str_has_prefix(const char *s, const char *prefix)
{
        return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_has_suffix(const char *s, const char *suffix)
{
        if (s == NULL)
                return false;
        size_t ls = strlen(s), lx = strlen(suffix);
        return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

size_t strv_len(char *const *v)
{
        size_t n = 0;
        while (v && v[n])
                n++;
        return n;
}

char **strv_dup(char *const *v)
{
        if (v == NULL)
                return NULL;
        size_t n = strv_len(v);
        char **r = xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
                r[i] = xstrdup(v[i]);
        return r;
}

void strv_free(char **v)
{
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
}

void strv_push(char ***v, const char *s)
{
        size_t n = strv_len(*v);
        *v = xrealloc(*v, (n + 2) * sizeof(char *));
        (*v)[n] = xstrdup(s);
        (*v)[n + 1] = NULL;
}
