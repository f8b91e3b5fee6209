/* Single-use stream tokens that expire, like kubelet's request cache. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include "stream/stream-internal.h"

struct token_entry {
        char token[33];
        int64_t expires; /* monotonic ns */
        struct stream_request *req;
        struct token_entry *next;
};

struct token_cache {
        pthread_mutex_t lock;
        int64_t ttl_ns;
        unsigned max, count;
        struct token_entry *head;
};

void stream_request_free(struct stream_request *r)
{
        if (!r)
                return;
        free(r->container_id);
        strv_free(r->cmd);
        free(r);
}

struct token_cache *token_cache_new(int ttl_sec, unsigned max)
{
        struct token_cache *c = xzalloc(sizeof(*c));
        pthread_mutex_init(&c->lock, NULL);
        c->ttl_ns = (int64_t)(ttl_sec > 0 ? ttl_sec : 60) * 1000000000LL;
        c->max = max ? max : 1000;
        return c;
}

void token_cache_free(struct token_cache *c)
{
        if (!c)
                return;
        for (struct token_entry *t = c->head, *n; t; t = n) {
                n = t->next;
                stream_request_free(t->req);
                free(t);
        }
        pthread_mutex_destroy(&c->lock);
        free(c);
}

/* Drop entries that expired more than `grace` ago; lock held. Expired
 * tokens are kept a while so that a late client hears "expired", not
 * "unknown". */
static void purge(struct token_cache *c, int64_t now, int64_t grace)
{
        for (struct token_entry **pp = &c->head; *pp;) {
                struct token_entry *t = *pp;
                if (t->expires + grace < now) {
                        *pp = t->next;
                        stream_request_free(t->req);
                        free(t);
                        c->count--;
                } else {
                        pp = &t->next;
                }
        }
}

int token_cache_put(struct token_cache *c, struct stream_request *req, char **token, struct err *e)
{
        unsigned char raw[24];
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
                stream_request_free(req);
                return err_make(e, errno, "getrandom");
        }
        /* base64url without padding: 24 bytes -> 32 characters, URL-safe */
        char *b = base64_encode(raw, sizeof(raw));
        for (char *p = b; *p; p++)
                *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;

        struct token_entry *t = xzalloc(sizeof(*t));
        snprintf(t->token, sizeof(t->token), "%s", b);
        free(b);
        t->req = req;
        int64_t now = time_mono_ns();
        t->expires = now + c->ttl_ns;

        pthread_mutex_lock(&c->lock);
        purge(c, now, 5 * 60 * 1000000000LL);
        if (c->count >= c->max)
                purge(c, now, 0);
        if (c->count >= c->max) {
                pthread_mutex_unlock(&c->lock);
                stream_request_free(req);
                free(t);
                return err_set(e, ERR_EXHAUSTED, "too many outstanding stream requests (%u)", c->max);
        }
        t->next = c->head;
        c->head = t;
        c->count++;
        *token = xstrdup(t->token);
        pthread_mutex_unlock(&c->lock);
        return 0;
}

struct stream_request *token_cache_take(struct token_cache *c, const char *token, struct err *e)
{
        int64_t now = time_mono_ns();
        pthread_mutex_lock(&c->lock);
        for (struct token_entry **pp = &c->head; *pp; pp = &(*pp)->next) {
                struct token_entry *t = *pp;
                if (strcmp(t->token, token) != 0)
                        continue;
                *pp = t->next;
                c->count--;
                pthread_mutex_unlock(&c->lock);
                struct stream_request *r = t->req;
                bool expired = t->expires < now;
                free(t);
                if (expired) {
                        stream_request_free(r);
                        err_set(e, ERR_DEADLINE, "stream token expired");
                        return NULL;
                }
                return r;
        }
        pthread_mutex_unlock(&c->lock);
        err_set(e, ERR_NOT_FOUND, "stream token not found: unknown, or already used");
        return NULL;
}
