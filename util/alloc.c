/* Allocation aborts on OOM: callers never branch on NULL from these. */
#include <string.h>

#include "util/util.h"

static void *check(void *p)
{
        if (p == NULL) {
                static const char msg[] = "corral: out of memory\n";
                (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
                abort();
        }
        return p;
}

void *xmalloc(size_t n)
{
        return check(malloc(n ? n : 1));
}
void *xzalloc(size_t n)
{
        return check(calloc(1, n ? n : 1));
}
void *xcalloc(size_t nmemb, size_t size)
{
        return check(calloc(nmemb ? nmemb : 1, size ? size : 1));
}
void *xrealloc(void *p, size_t n)
{
        return check(realloc(p, n ? n : 1));
}

char *xstrdup(const char *s)
{
        return s ? check(strdup(s)) : NULL;
}

char *xstrndup(const char *s, size_t n)
{
        return s ? check(strndup(s, n)) : NULL;
}

void *xmemdup(const void *p, size_t n)
{
        void *r = xmalloc(n);
        if (n)
                memcpy(r, p, n);
        return r;
}

char *xvasprintf(const char *fmt, va_list ap)
{
        char *s = NULL;
        if (vasprintf(&s, fmt, ap) < 0)
                check(NULL);
        return s;
}

char *xasprintf(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *s = xvasprintf(fmt, ap);
        va_end(ap);
        return s;
}

void cleanup_freep(void *p)
{
        free(*(void **)p);
}

void cleanup_closep(int *fd)
{
        if (*fd >= 0)
                (void)close(*fd);
}

void cleanup_fclosep(FILE **f)
{
        if (*f)
                (void)fclose(*f);
}

void cleanup_closedirp(DIR **d)
{
        if (*d)
                (void)closedir(*d);
}

void cleanup_errp(struct err *e)
{
        err_clear(e);
}

void cleanup_strvp(char ***v)
{
        strv_free(*v);
}
