/* model/model.c: the in-memory pods and containers (see model.h). Each
 * record lives in one entry, found by id through a hash table, kept in
 * creation order on a list of its kind, and a container also on its pod's
 * list. A put of a known id swaps the record inside its entry, so order and
 * links stay. */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "model/model.h"

#define STRIPES 64

struct ctr_ent;

struct pod_ent {
        struct store_pod rec;
        void *view;
        struct pod_ent *prev, *next;         /* every pod, oldest first */
        struct ctr_ent *ctr_head, *ctr_tail; /* its containers, oldest first */
        struct pod_ent *hnext;
};

struct ctr_ent {
        struct store_container rec;
        void *view;
        struct ctr_ent *prev, *next;   /* every container, oldest first */
        struct ctr_ent *pprev, *pnext; /* on its pod's list */
        struct pod_ent *pod;
        struct ctr_ent *hnext;
};

struct table {
        void **buckets; /* struct pod_ent * or struct ctr_ent * chains */
        size_t n_buckets;
        size_t count;
};

struct model {
        struct store *store;
        struct model_hooks hooks;
        pthread_rwlock_t rw;
        _Atomic uint64_t gen;
        pthread_mutex_t stripes[STRIPES]; /* recursive: model_lock + put on one thread */
        struct table pods, ctrs;
        struct pod_ent *pod_head, *pod_tail;
        struct ctr_ent *ctr_head, *ctr_tail;
};

/* ---------- records ---------- */

static void pod_view_free(struct model *m, void *view)
{
        if (view && m->hooks.pod_view_free)
                m->hooks.pod_view_free(view);
}

static void ctr_view_free(struct model *m, void *view)
{
        if (view && m->hooks.ctr_view_free)
                m->hooks.ctr_view_free(view);
}

/* ---------- hash tables ---------- */

static size_t hash_id(const char *id)
{
        uint64_t h = 1469598103934665603ULL;
        for (; *id; id++)
                h = (h ^ (uint8_t)*id) * 1099511628211ULL;
        return (size_t)h;
}

/* The chain link of either entry kind is found by `hoff`, its id by `idoff`. */
static void **chain_next(void *ent, size_t hoff)
{
        return (void **)((char *)ent + hoff);
}

static void *table_find(const struct table *t, const char *id, size_t idoff, size_t hoff)
{
        if (t->n_buckets == 0)
                return NULL;
        for (void *p = t->buckets[hash_id(id) & (t->n_buckets - 1)]; p; p = *chain_next(p, hoff))
                if (strcmp((const char *)p + idoff, id) == 0)
                        return p;
        return NULL;
}

static void table_insert(struct table *t, void *ent, const char *id, size_t idoff, size_t hoff)
{
        if (t->count + 1 > t->n_buckets * 3 / 4) {
                size_t nb = t->n_buckets ? t->n_buckets * 2 : 256;
                void **b = xcalloc(nb, sizeof(*b));
                for (size_t i = 0; i < t->n_buckets; i++) {
                        for (void *p = t->buckets[i], *next; p; p = next) {
                                next = *chain_next(p, hoff);
                                size_t k = hash_id((const char *)p + idoff) & (nb - 1);
                                *chain_next(p, hoff) = b[k];
                                b[k] = p;
                        }
                }
                free(t->buckets);
                t->buckets = b;
                t->n_buckets = nb;
        }
        size_t k = hash_id(id) & (t->n_buckets - 1);
        *chain_next(ent, hoff) = t->buckets[k];
        t->buckets[k] = ent;
        t->count++;
}

static void table_remove(struct table *t, void *ent, const char *id, size_t hoff)
{
        if (t->n_buckets == 0)
                return;
        for (void **pp = &t->buckets[hash_id(id) & (t->n_buckets - 1)]; *pp; pp = chain_next(*pp, hoff)) {
                if (*pp == ent) {
                        *pp = *chain_next(ent, hoff);
                        t->count--;
                        return;
                }
        }
}

#define POD_ID offsetof(struct pod_ent, rec.id)
#define POD_H  offsetof(struct pod_ent, hnext)
#define CTR_ID offsetof(struct ctr_ent, rec.id)
#define CTR_H  offsetof(struct ctr_ent, hnext)

static struct pod_ent *pod_find(struct model *m, const char *id)
{
        return table_find(&m->pods, id, POD_ID, POD_H);
}

static struct ctr_ent *ctr_find(struct model *m, const char *id)
{
        return table_find(&m->ctrs, id, CTR_ID, CTR_H);
}

/* ---------- locks ---------- */

void model_lock(struct model *m, const char *id)
{
        pthread_mutex_lock(&m->stripes[hash_id(id) % STRIPES]);
}

void model_unlock(struct model *m, const char *id)
{
        pthread_mutex_unlock(&m->stripes[hash_id(id) % STRIPES]);
}

static void rd(struct model *m)
{
        pthread_rwlock_rdlock(&m->rw);
}

/* Only changes take the write lock: each one is a new generation. */
static void wr(struct model *m)
{
        pthread_rwlock_wrlock(&m->rw);
        atomic_fetch_add(&m->gen, 1);
}

uint64_t model_gen(struct model *m)
{
        return atomic_load(&m->gen);
}

static void unlock(struct model *m)
{
        pthread_rwlock_unlock(&m->rw);
}

/* ---------- memory side of writes (write lock held) ---------- */

/* Takes *rec and view; hands back in *old / *old_view what they replaced,
 * for the caller to free outside the lock. */
static void mem_pod_put(struct model *m, struct store_pod *rec, void **view, struct store_pod *old,
                        void **old_view)
{
        struct pod_ent *p = pod_find(m, rec->id);
        if (p) {
                *old = p->rec;
                *old_view = p->view;
        } else {
                p = xzalloc(sizeof(*p));
                p->prev = m->pod_tail;
                if (m->pod_tail)
                        m->pod_tail->next = p;
                else
                        m->pod_head = p;
                m->pod_tail = p;
                memcpy(p->rec.id, rec->id, sizeof(p->rec.id));
                table_insert(&m->pods, p, p->rec.id, POD_ID, POD_H);
        }
        p->rec = *rec;
        p->view = *view;
        memset(rec, 0, sizeof(*rec));
        *view = NULL;
}

static void ctr_unlink(struct model *m, struct ctr_ent *c)
{
        if (c->pod) {
                if (c->pprev)
                        c->pprev->pnext = c->pnext;
                else
                        c->pod->ctr_head = c->pnext;
                if (c->pnext)
                        c->pnext->pprev = c->pprev;
                else
                        c->pod->ctr_tail = c->pprev;
        }
        if (c->prev)
                c->prev->next = c->next;
        else
                m->ctr_head = c->next;
        if (c->next)
                c->next->prev = c->prev;
        else
                m->ctr_tail = c->prev;
        table_remove(&m->ctrs, c, c->rec.id, CTR_H);
}

/* Returns the entry to free (outside the lock) or NULL. */
static struct ctr_ent *mem_ctr_delete(struct model *m, const char *id)
{
        struct ctr_ent *c = ctr_find(m, id);
        if (c)
                ctr_unlink(m, c);
        return c;
}

static struct pod_ent *mem_pod_delete(struct model *m, const char *id, struct ctr_ent **ctrs)
{
        *ctrs = NULL;
        struct pod_ent *p = pod_find(m, id);
        if (p == NULL)
                return NULL;
        /* The journal's delete cascaded to the containers: so does memory's. */
        while (p->ctr_head) {
                struct ctr_ent *c = p->ctr_head;
                ctr_unlink(m, c);
                c->next = *ctrs;
                *ctrs = c;
        }
        if (p->prev)
                p->prev->next = p->next;
        else
                m->pod_head = p->next;
        if (p->next)
                p->next->prev = p->prev;
        else
                m->pod_tail = p->prev;
        table_remove(&m->pods, p, p->rec.id, POD_H);
        return p;
}

/* false when its pod is not in memory (deleted meanwhile: the journal's
 * cascade took the row too); the record is then left to the caller. */
static bool mem_ctr_put(struct model *m, struct store_container *rec, void **view,
                        struct store_container *old, void **old_view)
{
        struct pod_ent *pod = pod_find(m, rec->pod_id);
        if (pod == NULL)
                return false;
        struct ctr_ent *c = ctr_find(m, rec->id);
        if (c && c->pod != pod) {
                ctr_unlink(m, c);
                *old = c->rec;
                *old_view = c->view;
                free(c);
                c = NULL;
        }
        if (c) {
                *old = c->rec;
                *old_view = c->view;
        } else {
                c = xzalloc(sizeof(*c));
                c->prev = m->ctr_tail;
                if (m->ctr_tail)
                        m->ctr_tail->next = c;
                else
                        m->ctr_head = c;
                m->ctr_tail = c;
                c->pod = pod;
                c->pprev = pod->ctr_tail;
                if (pod->ctr_tail)
                        pod->ctr_tail->pnext = c;
                else
                        pod->ctr_head = c;
                pod->ctr_tail = c;
                memcpy(c->rec.id, rec->id, sizeof(c->rec.id));
                table_insert(&m->ctrs, c, c->rec.id, CTR_ID, CTR_H);
        }
        c->rec = *rec;
        c->view = *view;
        memset(rec, 0, sizeof(*rec));
        *view = NULL;
        return true;
}

static void free_ctr_ents(struct model *m, struct ctr_ent *c)
{
        while (c) {
                struct ctr_ent *next = c->next;
                store_ctr_clear(&c->rec);
                ctr_view_free(m, c->view);
                free(c);
                c = next;
        }
}

/* ---------- open / free ---------- */

static void load_pod(struct model *m, struct store_pod *rec)
{
        void *view = m->hooks.pod_view ? m->hooks.pod_view(rec) : NULL;
        struct store_pod old = {0};
        void *old_view = NULL;
        mem_pod_put(m, rec, &view, &old, &old_view);
}

int model_open(struct store *s, const struct model_hooks *hooks, struct model **out, struct err *e)
{
        *out = NULL;
        struct store_pod *pods = NULL;
        struct store_container *ctrs = NULL;
        size_t np = 0, nc = 0;
        if (store_pod_list(s, &pods, &np, e) < 0)
                return err_wrap(e, "model: load pods");
        if (store_ctr_list(s, NULL, &ctrs, &nc, e) < 0) {
                store_pods_free(pods, np);
                return err_wrap(e, "model: load containers");
        }
        struct model *m = xzalloc(sizeof(*m));
        m->store = s;
        if (hooks)
                m->hooks = *hooks;
        pthread_rwlock_init(&m->rw, NULL);
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
        for (size_t i = 0; i < STRIPES; i++)
                pthread_mutex_init(&m->stripes[i], &a);
        pthread_mutexattr_destroy(&a);
        for (size_t i = 0; i < np; i++)
                load_pod(m, &pods[i]);
        for (size_t i = 0; i < nc; i++) {
                void *view = m->hooks.ctr_view ? m->hooks.ctr_view(&ctrs[i]) : NULL;
                struct store_container old = {0};
                void *old_view = NULL;
                if (!mem_ctr_put(m, &ctrs[i], &view, &old, &old_view))
                        ctr_view_free(m, view); /* no pod: the foreign key makes this impossible */
        }
        store_pods_free(pods, np);
        store_ctrs_free(ctrs, nc);
        *out = m;
        return 0;
}

void model_free(struct model *m)
{
        if (m == NULL)
                return;
        free_ctr_ents(m, m->ctr_head);
        for (struct pod_ent *p = m->pod_head, *next; p; p = next) {
                next = p->next;
                store_pod_clear(&p->rec);
                pod_view_free(m, p->view);
                free(p);
        }
        free(m->pods.buckets);
        free(m->ctrs.buckets);
        for (size_t i = 0; i < STRIPES; i++)
                pthread_mutex_destroy(&m->stripes[i]);
        pthread_rwlock_destroy(&m->rw);
        free(m);
}

size_t model_pod_count(struct model *m)
{
        rd(m);
        size_t n = m->pods.count;
        unlock(m);
        return n;
}

size_t model_ctr_count(struct model *m)
{
        rd(m);
        size_t n = m->ctrs.count;
        unlock(m);
        return n;
}

/* ---------- pods ---------- */

int model_pod_put(struct model *m, const struct store_pod *p, struct err *e)
{
        struct store_pod rec, old = {0};
        store_pod_copy(&rec, p);
        void *view = m->hooks.pod_view ? m->hooks.pod_view(&rec) : NULL, *old_view = NULL;
        model_lock(m, p->id);
        int r = store_pod_put(m->store, p, e);
        if (r == 0) {
                wr(m);
                mem_pod_put(m, &rec, &view, &old, &old_view);
                unlock(m);
        }
        model_unlock(m, p->id);
        store_pod_clear(&rec);
        store_pod_clear(&old);
        pod_view_free(m, view);
        pod_view_free(m, old_view);
        return r;
}

int model_pod_get(struct model *m, const char *id, struct store_pod *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        rd(m);
        struct pod_ent *p = pod_find(m, id);
        if (p)
                store_pod_copy(out, &p->rec);
        unlock(m);
        return p ? 0 : err_set(e, ERR_NOT_FOUND, "pod %s not found", id);
}

static bool str_eq(const char *a, const char *b)
{
        return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

int model_pod_find(struct model *m, const char *name, const char *ns, const char *uid, uint32_t attempt,
                   struct store_pod *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        bool found = false;
        rd(m);
        /* Newest first, as the store's query. */
        for (struct pod_ent *p = m->pod_tail; p && !found; p = p->prev) {
                if (p->rec.attempt == attempt && str_eq(p->rec.name, name) && str_eq(p->rec.namespace, ns) &&
                    str_eq(p->rec.uid, uid)) {
                        store_pod_copy(out, &p->rec);
                        found = true;
                }
        }
        unlock(m);
        if (!found)
                return err_set(e, ERR_NOT_FOUND, "pod name=%s namespace=%s uid=%s attempt=%u not found",
                               name ? name : "", ns ? ns : "", uid ? uid : "", attempt);
        return 0;
}

int model_pod_delete(struct model *m, const char *id, struct err *e)
{
        model_lock(m, id);
        int r = store_pod_delete(m->store, id, e);
        struct pod_ent *p = NULL;
        struct ctr_ent *ctrs = NULL;
        if (r == 0) {
                wr(m);
                p = mem_pod_delete(m, id, &ctrs);
                unlock(m);
        }
        model_unlock(m, id);
        free_ctr_ents(m, ctrs);
        if (p) {
                store_pod_clear(&p->rec);
                pod_view_free(m, p->view);
                free(p);
        }
        return r;
}

int model_pod_list(struct model *m, struct store_pod **out, size_t *n, struct err *e)
{
        (void)e;
        rd(m);
        *n = m->pods.count;
        *out = xcalloc(*n ? *n : 1, sizeof(**out));
        size_t k = 0;
        for (struct pod_ent *p = m->pod_head; p && k < *n; p = p->next)
                store_pod_copy(&(*out)[k++], &p->rec);
        unlock(m);
        *n = k;
        return 0;
}

/* A full id, else a unique prefix among `ids` (the caller holds the read lock). */
static int resolve(const char *id, char **ids, size_t n, char out[ID_LEN + 1], struct err *e)
{
        const char *found = NULL;
        int r = id_resolve_prefix(id, ids, n, &found, e);
        if (r == 0)
                snprintf(out, ID_LEN + 1, "%s", found);
        return r;
}

int model_pod_resolve(struct model *m, const char *id, char out[ID_LEN + 1], struct err *e)
{
        int r;
        rd(m);
        if (pod_find(m, id)) {
                snprintf(out, ID_LEN + 1, "%s", id);
                r = 0;
        } else if (id_is_valid(id)) {
                r = err_set(e, ERR_NOT_FOUND, "pod sandbox %s not found", id);
        } else {
                char **ids = xcalloc(m->pods.count + 1, sizeof(char *));
                size_t n = 0;
                for (struct pod_ent *p = m->pod_head; p; p = p->next)
                        ids[n++] = p->rec.id;
                r = resolve(id, ids, n, out, e);
                free(ids);
        }
        unlock(m);
        return r;
}

void model_pod_each(struct model *m, model_pod_fn fn, void *arg)
{
        rd(m);
        for (struct pod_ent *p = m->pod_head; p; p = p->next)
                if (!fn(&p->rec, p->view, arg))
                        break;
        unlock(m);
}

bool model_pod_with(struct model *m, const char *id, model_pod_fn fn, void *arg)
{
        rd(m);
        struct pod_ent *p = pod_find(m, id);
        if (p)
                fn(&p->rec, p->view, arg);
        unlock(m);
        return p != NULL;
}

/* ---------- containers ---------- */

int model_ctr_put(struct model *m, const struct store_container *c, struct err *e)
{
        struct store_container rec, old = {0};
        store_ctr_copy(&rec, c);
        void *view = m->hooks.ctr_view ? m->hooks.ctr_view(&rec) : NULL, *old_view = NULL;
        model_lock(m, c->id);
        int r = store_ctr_put(m->store, c, e);
        if (r == 0) {
                wr(m);
                bool in = mem_ctr_put(m, &rec, &view, &old, &old_view);
                unlock(m);
                if (!in)
                        r = err_set(e, ERR_NOT_FOUND, "container %s: pod %s not found", c->id, c->pod_id);
        }
        model_unlock(m, c->id);
        store_ctr_clear(&rec);
        store_ctr_clear(&old);
        ctr_view_free(m, view);
        ctr_view_free(m, old_view);
        return r;
}

int model_ctr_get(struct model *m, const char *id, struct store_container *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        rd(m);
        struct ctr_ent *c = ctr_find(m, id);
        if (c)
                store_ctr_copy(out, &c->rec);
        unlock(m);
        return c ? 0 : err_set(e, ERR_NOT_FOUND, "container %s not found", id);
}

int model_ctr_delete(struct model *m, const char *id, struct err *e)
{
        model_lock(m, id);
        int r = store_ctr_delete(m->store, id, e);
        struct ctr_ent *c = NULL;
        if (r == 0 || err_is(e, ERR_NOT_FOUND)) {
                /* Gone from the journal either way: memory follows. */
                wr(m);
                c = mem_ctr_delete(m, id);
                unlock(m);
        }
        model_unlock(m, id);
        if (c) {
                c->next = NULL;
                free_ctr_ents(m, c);
        }
        return r;
}

int model_ctr_list(struct model *m, const char *pod_id, struct store_container **out, size_t *n,
                   struct err *e)
{
        (void)e;
        *out = NULL;
        *n = 0;
        rd(m);
        struct ctr_ent *first = m->ctr_head;
        if (pod_id) {
                struct pod_ent *p = pod_find(m, pod_id);
                first = p ? p->ctr_head : NULL;
        }
        size_t cap = 0;
        for (struct ctr_ent *c = first; c; c = pod_id ? c->pnext : c->next) {
                if (*n == cap) {
                        cap = cap ? cap * 2 : 8;
                        *out = xrealloc(*out, cap * sizeof(**out));
                }
                store_ctr_copy(&(*out)[(*n)++], &c->rec);
        }
        unlock(m);
        return 0;
}

int model_ctr_resolve(struct model *m, const char *id, char out[ID_LEN + 1], struct err *e)
{
        int r;
        rd(m);
        if (ctr_find(m, id)) {
                snprintf(out, ID_LEN + 1, "%s", id);
                r = 0;
        } else if (id_is_valid(id)) {
                r = err_set(e, ERR_NOT_FOUND, "container %s not found", id);
        } else {
                char **ids = xcalloc(m->ctrs.count + 1, sizeof(char *));
                size_t n = 0;
                for (struct ctr_ent *c = m->ctr_head; c; c = c->next)
                        ids[n++] = c->rec.id;
                r = resolve(id, ids, n, out, e);
                free(ids);
        }
        unlock(m);
        return r;
}

void model_ctr_each(struct model *m, const char *pod_id, model_ctr_fn fn, void *arg)
{
        rd(m);
        struct ctr_ent *first = m->ctr_head;
        if (pod_id) {
                struct pod_ent *p = pod_find(m, pod_id);
                first = p ? p->ctr_head : NULL;
        }
        for (struct ctr_ent *c = first; c; c = pod_id ? c->pnext : c->next)
                if (!fn(&c->rec, c->view, arg))
                        break;
        unlock(m);
}

bool model_ctr_with(struct model *m, const char *id, model_ctr_fn fn, void *arg)
{
        rd(m);
        struct ctr_ent *c = ctr_find(m, id);
        if (c)
                fn(&c->rec, c->view, arg);
        unlock(m);
        return c != NULL;
}
