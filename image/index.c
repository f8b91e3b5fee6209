/* image/index.c: every image record in memory (see index-internal.h). Each
 * record lives in one entry, found by id and by each of its names through
 * hash maps, and kept in load / creation order on a list. A put of a known
 * id swaps the record inside its entry, so its place in the list stays. */
#include <string.h>

#include "image/index-internal.h"
#include "store/store.h"

struct img_ent {
        struct store_image rec;
        char *user; /* the config's User, parsed once: ListImages shows it */
        struct img_ent *prev, *next;
};

/* ---------- records ---------- */

static bool strv_has(char *const *v, const char *s)
{
        for (size_t i = 0; v && v[i]; i++)
                if (strcmp(v[i], s) == 0)
                        return true;
        return false;
}

static void push_unique(char ***v, const char *s)
{
        if (!strv_has(*v, s))
                strv_push(v, s);
}

/* Drop s from a NULL-terminated vector, keeping the order. */
static void strv_remove(char **v, const char *s)
{
        size_t k = 0;
        for (size_t i = 0; v && v[i]; i++) {
                if (strcmp(v[i], s) == 0)
                        free(v[i]);
                else
                        v[k++] = v[i];
        }
        if (v)
                v[k] = NULL;
}

static char **strv_or_empty(char *const *v)
{
        return v ? strv_dup(v) : xcalloc(1, sizeof(char *));
}

static void copy_rec(struct store_image *dst, const struct store_image *src)
{
        *dst = *src;
        dst->id = xstrdup(src->id);
        dst->manifest_digest = xstrdup(src->manifest_digest);
        dst->config_json = xstrdup(src->config_json);
        dst->chain_ids = src->chain_ids ? strv_dup(src->chain_ids) : NULL;
        dst->blobs = src->blobs ? strv_dup(src->blobs) : NULL;
        /* The store keeps one row per name, at the position of its last
         * occurrence: so does memory, and a reload reads the same order. */
        dst->names = xcalloc(1, sizeof(char *));
        for (size_t i = 0; src->names && src->names[i]; i++)
                if (!strv_has(src->names + i + 1, src->names[i]))
                        strv_push(&dst->names, src->names[i]);
}

static char *config_user(const struct store_image *img)
{
        struct img_config cfg = {0};
        cleanup_err struct err e = ERR_INIT;
        if (img_image_config(img, &cfg, &e) < 0)
                return NULL;
        char *u = cfg.user && *cfg.user ? xstrdup(cfg.user) : NULL;
        img_config_clear(&cfg);
        return u;
}

static void ent_free(struct img_ent *x)
{
        if (x == NULL)
                return;
        store_image_clear(&x->rec);
        free(x->user);
        free(x);
}

/* ---------- memory side of writes (rw held for writing) ---------- */

/* Takes *rec and *user; what they replaced goes to *old for the caller to
 * free outside the lock. */
static void mem_put(struct img_index *x, struct store_image *rec, char **user, struct img_ent *old)
{
        struct img_ent *ent = strmap_get(&x->by_id, rec->id);
        if (ent) {
                for (size_t i = 0; ent->rec.names && ent->rec.names[i]; i++)
                        if (strmap_get(&x->by_name, ent->rec.names[i]) == ent)
                                strmap_del(&x->by_name, ent->rec.names[i]);
                old->rec = ent->rec;
                old->user = ent->user;
        } else {
                ent = xzalloc(sizeof(*ent));
                ent->prev = x->tail;
                if (x->tail)
                        x->tail->next = ent;
                else
                        x->head = ent;
                x->tail = ent;
                strmap_put(&x->by_id, rec->id, ent);
        }
        /* A name belongs to one image: it leaves the one that had it. */
        for (size_t i = 0; rec->names[i]; i++) {
                struct img_ent *other = strmap_put(&x->by_name, rec->names[i], ent);
                if (other && other != ent)
                        strv_remove(other->rec.names, rec->names[i]);
        }
        ent->rec = *rec;
        ent->user = *user;
        memset(rec, 0, sizeof(*rec));
        *user = NULL;
}

static struct img_ent *mem_delete(struct img_index *x, const char *id)
{
        struct img_ent *ent = strmap_del(&x->by_id, id);
        if (ent == NULL)
                return NULL;
        for (size_t i = 0; ent->rec.names && ent->rec.names[i]; i++)
                if (strmap_get(&x->by_name, ent->rec.names[i]) == ent)
                        strmap_del(&x->by_name, ent->rec.names[i]);
        if (ent->prev)
                ent->prev->next = ent->next;
        else
                x->head = ent->next;
        if (ent->next)
                ent->next->prev = ent->prev;
        else
                x->tail = ent->prev;
        return ent;
}

/* ---------- open / close ---------- */

int img_index_open(struct img_index *x, struct store *st, struct err *e)
{
        memset(x, 0, sizeof(*x));
        x->st = st;
        pthread_rwlock_init(&x->rw, NULL);
        pthread_mutex_init(&x->wmu, NULL);
        x->ready = true;
        struct store_image *v = NULL;
        size_t n = 0;
        if (store_image_list(st, &v, &n, e) < 0)
                return err_wrap(e, "load images");
        for (size_t i = 0; i < n; i++) {
                char *user = config_user(&v[i]);
                struct img_ent old = {0};
                struct store_image rec;
                copy_rec(&rec, &v[i]);
                mem_put(x, &rec, &user, &old);
        }
        store_images_free(v, n);
        return 0;
}

void img_index_close(struct img_index *x)
{
        if (!x->ready)
                return;
        for (struct img_ent *p = x->head, *next; p; p = next) {
                next = p->next;
                ent_free(p);
        }
        strmap_clear(&x->by_id);
        strmap_clear(&x->by_name);
        pthread_rwlock_destroy(&x->rw);
        pthread_mutex_destroy(&x->wmu);
        memset(x, 0, sizeof(*x));
}

size_t img_index_count(struct img_index *x)
{
        pthread_rwlock_rdlock(&x->rw);
        size_t n = x->by_id.count;
        pthread_rwlock_unlock(&x->rw);
        return n;
}

/* ---------- writes ---------- */

/* new over old, as a pull of a known image under another name records it. */
static void merge_into(struct store_image *rec, const struct store_image *old)
{
        char **names = strv_or_empty(old->names);
        for (size_t i = 0; rec->names && rec->names[i]; i++)
                push_unique(&names, rec->names[i]);
        char **blobs = strv_or_empty(rec->blobs);
        for (size_t i = 0; old->blobs && old->blobs[i]; i++)
                push_unique(&blobs, old->blobs[i]);
        strv_free(rec->names);
        strv_free(rec->blobs);
        rec->names = names;
        rec->blobs = blobs;
        rec->created_ns = old->created_ns;
        rec->pinned = old->pinned;
}

static int journal(struct img_index *x, const struct store_image *v, size_t n, struct err *e)
{
        if (n == 1)
                return store_image_put(x->st, &v[0], e);
        if (store_tx_begin(x->st, e) < 0)
                return -1;
        for (size_t i = 0; i < n; i++) {
                if (store_image_put(x->st, &v[i], e) < 0) {
                        store_tx_rollback(x->st);
                        return -1;
                }
        }
        return store_tx_commit(x->st, e);
}

int img_index_put(struct img_index *x, const struct store_image *imgs, size_t n, bool merge, struct err *e)
{
        struct store_image *v = xcalloc(n ? n : 1, sizeof(*v));
        char **users = xcalloc(n ? n : 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
                copy_rec(&v[i], &imgs[i]);
                users[i] = config_user(&v[i]);
        }
        pthread_mutex_lock(&x->wmu);
        for (size_t i = 0; merge && i < n; i++) {
                /* the latest of this batch, else memory (stable: we are the writer) */
                const struct store_image *old = NULL;
                for (size_t k = i; k-- > 0 && !old;)
                        if (strcmp(v[k].id, v[i].id) == 0)
                                old = &v[k];
                if (!old) {
                        struct img_ent *ent = strmap_get(&x->by_id, v[i].id);
                        old = ent ? &ent->rec : NULL;
                }
                if (old)
                        merge_into(&v[i], old);
        }
        int r = journal(x, v, n, e);
        struct img_ent *old = xcalloc(n ? n : 1, sizeof(*old));
        if (r == 0) {
                pthread_rwlock_wrlock(&x->rw);
                for (size_t i = 0; i < n; i++)
                        mem_put(x, &v[i], &users[i], &old[i]);
                pthread_rwlock_unlock(&x->rw);
        }
        pthread_mutex_unlock(&x->wmu);
        for (size_t i = 0; i < n; i++) {
                store_image_clear(&v[i]);
                free(users[i]);
                store_image_clear(&old[i].rec);
                free(old[i].user);
        }
        free(v);
        free(users);
        free(old);
        return r;
}

int img_index_remove_name(struct img_index *x, const char *name, struct err *e)
{
        struct err le = ERR_INIT;
        pthread_mutex_lock(&x->wmu);
        int r = store_image_remove_name(x->st, name, &le);
        /* Gone from the journal either way: memory follows. */
        if (r == 0 || err_is(&le, ERR_NOT_FOUND)) {
                pthread_rwlock_wrlock(&x->rw);
                struct img_ent *ent = strmap_del(&x->by_name, name);
                if (ent)
                        strv_remove(ent->rec.names, name);
                pthread_rwlock_unlock(&x->rw);
        }
        pthread_mutex_unlock(&x->wmu);
        if (r < 0)
                err_move(e, &le);
        return r;
}

int img_index_delete(struct img_index *x, const char *id, struct err *e)
{
        struct err le = ERR_INIT;
        pthread_mutex_lock(&x->wmu);
        int r = store_image_delete(x->st, id, &le);
        struct img_ent *ent = NULL;
        if (r == 0 || err_is(&le, ERR_NOT_FOUND)) {
                pthread_rwlock_wrlock(&x->rw);
                ent = mem_delete(x, id);
                pthread_rwlock_unlock(&x->rw);
        }
        pthread_mutex_unlock(&x->wmu);
        ent_free(ent);
        if (r < 0)
                err_move(e, &le);
        return r;
}

/* ---------- reads ---------- */

int img_index_get(struct img_index *x, const char *id, struct store_image *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        pthread_rwlock_rdlock(&x->rw);
        struct img_ent *ent = strmap_get(&x->by_id, id);
        if (ent)
                copy_rec(out, &ent->rec);
        pthread_rwlock_unlock(&x->rw);
        return ent ? 0 : err_set(e, ERR_NOT_FOUND, "image %s not found", id);
}

void img_index_list(struct img_index *x, struct store_image **out, size_t *n)
{
        pthread_rwlock_rdlock(&x->rw);
        *n = x->by_id.count;
        *out = xcalloc(*n ? *n : 1, sizeof(**out));
        size_t k = 0;
        for (struct img_ent *p = x->head; p && k < *n; p = p->next)
                copy_rec(&(*out)[k++], &p->rec);
        pthread_rwlock_unlock(&x->rw);
        *n = k;
}

void img_index_each(struct img_index *x, img_each_fn fn, void *arg)
{
        pthread_rwlock_rdlock(&x->rw);
        for (struct img_ent *p = x->head; p; p = p->next)
                if (!fn(&p->rec, p->user, arg))
                        break;
        pthread_rwlock_unlock(&x->rw);
}

static bool all_hex(const char *s, size_t min, size_t max)
{
        size_t n = strlen(s);
        if (n < min || n > max)
                return false;
        for (; *s; s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
                        return false;
        return true;
}

/* What `what` may be, worked out before the lock is taken. */
struct query {
        char *id;           /* "sha256:<64 hex>" */
        char *name;         /* normalised "repo:tag" or "repo@sha256:..." */
        char *suffix;       /* "@sha256:..." of a bare digest: some image's repo digest */
        const char *prefix; /* 1-63 hex: an id prefix */
};

static void query_clear(struct query *q)
{
        free(q->id);
        free(q->name);
        free(q->suffix);
}

static void query_parse(const char *what, struct query *q)
{
        const char *hex = str_has_prefix(what, "sha256:") ? what + 7 : what;
        if (all_hex(hex, 64, 64))
                q->id = xasprintf("sha256:%s", hex);
        struct img_ref ref;
        if (img_ref_parse(what, &ref, NULL) == 0) {
                if (ref.digest) {
                        cleanup_free char *base = img_ref_name(&ref);
                        q->name = xasprintf("%s@%s", base, ref.digest);
                } else {
                        q->name = img_ref_string(&ref);
                }
                img_ref_clear(&ref);
        }
        if (img_digest_valid(what))
                q->suffix = xasprintf("@%s", what);
        if (all_hex(hex, 1, 63))
                q->prefix = hex;
}

/* Read lock held. NULL with e set when nothing (or more than one id
 * prefix) matches. */
static struct img_ent *lookup(struct img_index *x, const char *what, const struct query *q, bool *by_name,
                              struct err *e)
{
        struct img_ent *ent = q->id ? strmap_get(&x->by_id, q->id) : NULL;
        if (ent)
                return ent;
        if (q->name && (ent = strmap_get(&x->by_name, q->name))) {
                *by_name = true;
                return ent;
        }
        for (struct img_ent *p = x->head; q->suffix && p; p = p->next)
                for (size_t k = 0; p->rec.names && p->rec.names[k]; k++)
                        if (str_has_suffix(p->rec.names[k], q->suffix))
                                return p;
        if (q->prefix) {
                size_t n = x->by_id.count;
                char **ids = xcalloc(n + 1, sizeof(char *));
                struct img_ent **ents = xcalloc(n + 1, sizeof(*ents));
                size_t k = 0;
                for (struct img_ent *p = x->head; p && k < n; p = p->next, k++) {
                        ents[k] = p;
                        ids[k] = p->rec.id + (str_has_prefix(p->rec.id, "sha256:") ? 7 : 0);
                }
                const char *hit = NULL;
                struct err le = ERR_INIT;
                if (id_resolve_prefix(q->prefix, ids, k, &hit, &le) == 0) {
                        for (size_t i = 0; i < k; i++)
                                if (ids[i] == hit)
                                        ent = ents[i];
                } else if (err_is(&le, ERR_INVALID)) {
                        err_move(e, &le);
                        err_wrap(e, "image \"%s\"", what);
                }
                err_clear(&le);
                free(ids);
                free(ents);
                if (ent || (e && e->msg))
                        return ent;
        }
        err_set(e, ERR_NOT_FOUND, "image \"%s\" not found", what);
        return NULL;
}

int img_index_resolve(struct img_index *x, const char *what, img_each_fn fn, void *arg, char **name,
                      struct err *e)
{
        if (name)
                *name = NULL;
        if (!what || !*what)
                return err_set(e, ERR_INVALID, "empty image reference");
        struct query q = {0};
        query_parse(what, &q);
        bool by_name = false;
        struct err le = ERR_INIT;
        pthread_rwlock_rdlock(&x->rw);
        struct img_ent *ent = lookup(x, what, &q, &by_name, &le);
        if (ent)
                fn(&ent->rec, ent->user, arg);
        pthread_rwlock_unlock(&x->rw);
        if (ent && by_name && name)
                *name = steal_ptr(&q.name);
        query_clear(&q);
        if (!ent) {
                err_move(e, &le);
                return -1;
        }
        return 0;
}
