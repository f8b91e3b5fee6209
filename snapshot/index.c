/* snapshot/index.c: every snapshot record in memory, in front of the store.
 *
 * The snapshotter is the only writer of the snapshots table, so memory is
 * the journal's copy: loaded at open, and every change is committed to the
 * store first and lands in memory only when the commit succeeded. Reads
 * (stat, walk, mounts, fs paths, usage) run no SQL.
 *
 * Locks: `wmu` orders mutations (their checks, journal write and memory
 * update run under it, so a writer reads memory without `rw`); `rw` is held
 * for writing only while pointers move, never across SQL or disk work. */
#include <string.h>

#include "snapshot/snapshot-internal.h"

struct snap_ent {
        struct store_snapshot rec;
        size_t children;
        uint64_t live_bytes, live_inodes; /* active / view: du at the last refresh */
        struct snap_ent *prev, *next;     /* oldest first, as the store lists */
};

static struct snap_ent *find(struct snap *sn, const char *key)
{
        return key ? strmap_get(&sn->idx.by_key, key) : NULL;
}

static void copy_rec(struct store_snapshot *dst, const struct store_snapshot *src)
{
        *dst = *src;
        dst->key = xstrdup(src->key);
        dst->parent = xstrdup(src->parent);
        dst->dir = xstrdup(src->dir);
        dst->labels_json = xstrdup(src->labels_json);
}

/* rw held for writing (or no reader yet). Takes *rec. */
static void mem_insert(struct snap *sn, struct store_snapshot *rec)
{
        struct snap_ent *x = xzalloc(sizeof(*x));
        x->rec = *rec;
        memset(rec, 0, sizeof(*rec));
        x->prev = sn->idx.tail;
        if (sn->idx.tail)
                sn->idx.tail->next = x;
        else
                sn->idx.head = x;
        sn->idx.tail = x;
        strmap_put(&sn->idx.by_key, x->rec.key, x);
        struct snap_ent *p = find(sn, x->rec.parent);
        if (p)
                p->children++;
}

/* rw held for writing. Returns the entry to free outside the lock. */
static struct snap_ent *mem_remove(struct snap *sn, const char *key)
{
        struct snap_ent *x = strmap_del(&sn->idx.by_key, key);
        if (x == NULL)
                return NULL;
        if (x->prev)
                x->prev->next = x->next;
        else
                sn->idx.head = x->next;
        if (x->next)
                x->next->prev = x->prev;
        else
                sn->idx.tail = x->prev;
        struct snap_ent *p = find(sn, x->rec.parent);
        if (p && p->children > 0)
                p->children--;
        return x;
}

static void ent_free(struct snap_ent *x)
{
        if (x == NULL)
                return;
        store_snap_clear(&x->rec);
        free(x);
}

int snap_idx_open(struct snap *sn, struct err *e)
{
        pthread_rwlock_init(&sn->idx.rw, NULL);
        pthread_mutex_init(&sn->idx.wmu, NULL);
        sn->idx.ready = true;
        struct store_snapshot *v = NULL;
        size_t n = 0;
        if (store_snap_list(sn->store, &v, &n, e) < 0)
                return err_wrap(e, "load snapshots");
        /* Oldest first: a parent is created (and listed) before its children. */
        for (size_t i = 0; i < n; i++)
                mem_insert(sn, &v[i]);
        store_snaps_free(v, n);
        return 0;
}

void snap_idx_close(struct snap *sn)
{
        if (!sn->idx.ready)
                return;
        for (struct snap_ent *x = sn->idx.head, *next; x; x = next) {
                next = x->next;
                ent_free(x);
        }
        strmap_clear(&sn->idx.by_key);
        pthread_rwlock_destroy(&sn->idx.rw);
        pthread_mutex_destroy(&sn->idx.wmu);
        memset(&sn->idx, 0, sizeof(sn->idx));
}

void snap_idx_write_lock(struct snap *sn)
{
        pthread_mutex_lock(&sn->idx.wmu);
}

void snap_idx_write_unlock(struct snap *sn)
{
        pthread_mutex_unlock(&sn->idx.wmu);
}

void snap_idx_read_lock(struct snap *sn)
{
        pthread_rwlock_rdlock(&sn->idx.rw);
}

void snap_idx_read_unlock(struct snap *sn)
{
        pthread_rwlock_unlock(&sn->idx.rw);
}

const struct store_snapshot *snap_idx_peek(struct snap *sn, const char *key)
{
        struct snap_ent *x = find(sn, key);
        return x ? &x->rec : NULL;
}

size_t snap_idx_children(struct snap *sn, const char *key)
{
        struct snap_ent *x = find(sn, key);
        return x ? x->children : 0;
}

int snap_idx_get(struct snap *sn, const char *key, struct store_snapshot *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        snap_idx_read_lock(sn);
        struct snap_ent *x = find(sn, key);
        if (x)
                copy_rec(out, &x->rec);
        snap_idx_read_unlock(sn);
        return x ? 0 : err_set(e, ERR_NOT_FOUND, "snapshot %s not found", key);
}

void snap_idx_list(struct snap *sn, struct store_snapshot **out, size_t *n)
{
        snap_idx_read_lock(sn);
        *n = sn->idx.by_key.count;
        *out = xcalloc(*n ? *n : 1, sizeof(**out));
        size_t k = 0;
        for (struct snap_ent *x = sn->idx.head; x && k < *n; x = x->next)
                copy_rec(&(*out)[k++], &x->rec);
        snap_idx_read_unlock(sn);
        *n = k;
}

int snap_idx_put(struct snap *sn, const struct store_snapshot *rec, struct err *e)
{
        if (store_snap_put(sn->store, rec, e) < 0)
                return -1;
        struct store_snapshot copy;
        copy_rec(&copy, rec);
        pthread_rwlock_wrlock(&sn->idx.rw);
        struct snap_ent *old = mem_remove(sn, rec->key);
        mem_insert(sn, &copy);
        pthread_rwlock_unlock(&sn->idx.rw);
        ent_free(old);
        return 0;
}

int snap_idx_delete(struct snap *sn, const char *key, struct err *e)
{
        struct err le = ERR_INIT;
        int r = store_snap_delete(sn->store, key, &le);
        /* Gone from the journal either way: memory follows. */
        if (r == 0 || err_is(&le, ERR_NOT_FOUND)) {
                pthread_rwlock_wrlock(&sn->idx.rw);
                struct snap_ent *old = mem_remove(sn, key);
                pthread_rwlock_unlock(&sn->idx.rw);
                ent_free(old);
        }
        if (r < 0)
                err_move(e, &le);
        return r;
}

int snap_idx_commit(struct snap *sn, const struct store_snapshot *committed, const char *key, struct err *e)
{
        if (store_tx_begin(sn->store, e) < 0)
                return -1;
        if (store_snap_put(sn->store, committed, e) < 0 || store_snap_delete(sn->store, key, e) < 0 ||
            store_tx_commit(sn->store, e) < 0) {
                store_tx_rollback(sn->store);
                return -1;
        }
        struct store_snapshot copy;
        copy_rec(&copy, committed);
        pthread_rwlock_wrlock(&sn->idx.rw);
        struct snap_ent *old = mem_remove(sn, key);
        struct snap_ent *same = mem_remove(sn, committed->key);
        mem_insert(sn, &copy);
        pthread_rwlock_unlock(&sn->idx.rw);
        ent_free(old);
        ent_free(same);
        return 0;
}

/* ---------- usage ---------- */

struct live {
        char *key;
        uint64_t bytes, inodes;
        bool ok;
};

void snap_usage_refresh(struct snap *sn)
{
        struct live *v = NULL;
        size_t n = 0, cap = 0;
        snap_idx_read_lock(sn);
        for (struct snap_ent *x = sn->idx.head; x; x = x->next) {
                if (x->rec.kind == SNAP_COMMITTED)
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        v = xrealloc(v, cap * sizeof(*v));
                }
                v[n++] = (struct live){.key = xstrdup(x->rec.key)};
        }
        snap_idx_read_unlock(sn);
        /* The walks run with no lock held: they take as long as the trees are big. */
        for (size_t i = 0; i < n; i++) {
                struct err de = ERR_INIT;
                /* a snapshot removed meanwhile is not an error: it is left out */
                v[i].ok = sn->ops->usage(sn, v[i].key, &v[i].bytes, &v[i].inodes, &de) == 0;
                err_clear(&de);
        }
        pthread_rwlock_wrlock(&sn->idx.rw);
        for (size_t i = 0; i < n; i++) {
                struct snap_ent *x = find(sn, v[i].key);
                if (x && v[i].ok) {
                        x->live_bytes = v[i].bytes;
                        x->live_inodes = v[i].inodes;
                }
        }
        pthread_rwlock_unlock(&sn->idx.rw);
        for (size_t i = 0; i < n; i++)
                free(v[i].key);
        free(v);
}

void snap_cached_usage(struct snap *sn, uint64_t *bytes, uint64_t *inodes)
{
        *bytes = *inodes = 0;
        snap_idx_read_lock(sn);
        for (struct snap_ent *x = sn->idx.head; x; x = x->next) {
                *bytes += x->rec.kind == SNAP_COMMITTED ? x->rec.size : x->live_bytes;
                *inodes += x->rec.kind == SNAP_COMMITTED ? x->rec.inodes : x->live_inodes;
        }
        snap_idx_read_unlock(sn);
}
