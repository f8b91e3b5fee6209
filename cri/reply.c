/* Replies sent as bytes: one kept for every caller of an unfiltered list
 * while the model has not changed. kubelet relists every second and on a
 * quiet node the answer is the same each time; it is built once and sent by
 * reference, with no walk of the model and no copy. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "cri/cri-internal.h"
#include "model/model.h"

struct cri_shared_reply {
        atomic_int refs;
        size_t len;
        char *data;
};

struct cri_shared_reply *cri_shared_reply_new(struct sbuf *b)
{
        struct cri_shared_reply *r = xzalloc(sizeof(*r));
        atomic_init(&r->refs, 1);
        r->len = b->len;
        r->data = sbuf_steal(b);
        return r;
}

struct cri_shared_reply *cri_shared_reply_ref(struct cri_shared_reply *r)
{
        atomic_fetch_add(&r->refs, 1);
        return r;
}

void cri_shared_reply_unref(void *p)
{
        struct cri_shared_reply *r = p;
        if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
                free(r->data);
                free(r);
        }
}

const char *cri_shared_reply_bytes(const struct cri_shared_reply *r, size_t *len)
{
        *len = r->len;
        return r->data;
}

struct cri_list_cache {
        pthread_mutex_t mu;
        uint64_t gen;
        struct cri_shared_reply *r;
};

struct cri_list_cache *cri_list_cache_new(void)
{
        struct cri_list_cache *c = xzalloc(sizeof(*c));
        pthread_mutex_init(&c->mu, NULL);
        return c;
}

void cri_list_cache_free(struct cri_list_cache *c)
{
        if (c == NULL)
                return;
        cri_shared_reply_unref(c->r);
        pthread_mutex_destroy(&c->mu);
        free(c);
}

struct cri_shared_reply *cri_list_cache_get(struct cri_list_cache *c, struct cri_daemon *d, uint64_t *gen)
{
        *gen = model_gen(d->model);
        pthread_mutex_lock(&c->mu);
        struct cri_shared_reply *r = c->r && c->gen == *gen ? cri_shared_reply_ref(c->r) : NULL;
        pthread_mutex_unlock(&c->mu);
        return r;
}

struct cri_shared_reply *cri_list_cache_put(struct cri_list_cache *c, uint64_t gen, struct sbuf *b)
{
        struct cri_shared_reply *r = cri_shared_reply_new(b), *old = NULL;
        pthread_mutex_lock(&c->mu);
        /* gen was read before the walk: the bytes are at least that new. */
        if (c->r == NULL || gen >= c->gen) {
                old = c->r;
                c->r = cri_shared_reply_ref(r);
                c->gen = gen;
        }
        pthread_mutex_unlock(&c->mu);
        cri_shared_reply_unref(old);
        return r;
}
