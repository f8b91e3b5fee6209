/* util/strmap.c: a string-keyed hash map (FNV-1a, chained, power-of-two
 * buckets, grown at a load of 3/4). */
#include <string.h>

#include "util/util.h"

struct strmap_ent {
        char *key;
        void *value;
        struct strmap_ent *next;
};

static size_t hash(const char *s)
{
        uint64_t h = 1469598103934665603ULL;
        for (; *s; s++)
                h = (h ^ (uint8_t)*s) * 1099511628211ULL;
        return (size_t)h;
}

static struct strmap_ent **slot(const struct strmap *m, const char *key)
{
        return &m->buckets[hash(key) & (m->n_buckets - 1)];
}

void *strmap_get(const struct strmap *m, const char *key)
{
        if (m->n_buckets == 0)
                return NULL;
        for (struct strmap_ent *p = *slot(m, key); p; p = p->next)
                if (strcmp(p->key, key) == 0)
                        return p->value;
        return NULL;
}

static void grow(struct strmap *m)
{
        size_t nb = m->n_buckets ? m->n_buckets * 2 : 64;
        struct strmap_ent **b = xcalloc(nb, sizeof(*b));
        for (size_t i = 0; i < m->n_buckets; i++) {
                for (struct strmap_ent *p = m->buckets[i], *next; p; p = next) {
                        next = p->next;
                        size_t k = hash(p->key) & (nb - 1);
                        p->next = b[k];
                        b[k] = p;
                }
        }
        free(m->buckets);
        m->buckets = b;
        m->n_buckets = nb;
}

void *strmap_put(struct strmap *m, const char *key, void *value)
{
        if (m->n_buckets) {
                for (struct strmap_ent *p = *slot(m, key); p; p = p->next) {
                        if (strcmp(p->key, key) == 0) {
                                void *old = p->value;
                                p->value = value;
                                return old;
                        }
                }
        }
        if (m->count + 1 > m->n_buckets * 3 / 4)
                grow(m);
        struct strmap_ent *p = xmalloc(sizeof(*p));
        p->key = xstrdup(key);
        p->value = value;
        struct strmap_ent **s = slot(m, key);
        p->next = *s;
        *s = p;
        m->count++;
        return NULL;
}

void *strmap_del(struct strmap *m, const char *key)
{
        if (m->n_buckets == 0)
                return NULL;
        for (struct strmap_ent **pp = slot(m, key); *pp; pp = &(*pp)->next) {
                struct strmap_ent *p = *pp;
                if (strcmp(p->key, key) == 0) {
                        void *v = p->value;
                        *pp = p->next;
                        free(p->key);
                        free(p);
                        m->count--;
                        return v;
                }
        }
        return NULL;
}

void strmap_clear(struct strmap *m)
{
        for (size_t i = 0; i < m->n_buckets; i++) {
                for (struct strmap_ent *p = m->buckets[i], *next; p; p = next) {
                        next = p->next;
                        free(p->key);
                        free(p);
                }
        }
        free(m->buckets);
        memset(m, 0, sizeof(*m));
}
