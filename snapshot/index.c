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
        /* Active / view: the last walk of its tree (live_mu). */
        uint64_t live_bytes, live_inodes;
        int64_t live_mono, live_wall; /* when walked; 0: never */
        bool live_busy;               /* a walk is under way */
        struct snap_ent *prev, *next; /* oldest first, as the store lists */
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
        pthread_mutex_init(&sn->idx.live_mu, NULL);
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
        pthread_mutex_destroy(&sn->idx.live_mu);
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

/* Whether x's last walk answers a caller asking for one younger than
 * max_age_ns, or made after not_before_wall when that is set. live_mu held. */
static bool live_fresh(const struct snap_ent *x, int64_t now, int64_t max_age_ns, int64_t not_before_wall)
{
        if (x->live_mono == 0)
                return false;
        if (not_before_wall > 0)
                return x->live_wall > not_before_wall;
        return now - x->live_mono < max_age_ns;
}

/* Records a walk of `key` made at (mono, wall); rw not held. */
static void live_store(struct snap *sn, const char *key, bool ok, const struct snap_live *l)
{
        snap_idx_read_lock(sn);
        struct snap_ent *x = find(sn, key);
        if (x) {
                pthread_mutex_lock(&sn->idx.live_mu);
                x->live_busy = false;
                if (ok) {
                        x->live_bytes = l->bytes;
                        x->live_inodes = l->inodes;
                        x->live_mono = l->mono;
                        x->live_wall = l->wall;
                }
                pthread_mutex_unlock(&sn->idx.live_mu);
        }
        snap_idx_read_unlock(sn);
}

static int walk_live(struct snap *sn, const char *key, struct snap_live *out, struct err *e)
{
        out->mono = time_mono_ns();
        out->wall = time_now_ns();
        int r = sn->ops->usage(sn, key, &out->bytes, &out->inodes, e);
        live_store(sn, key, r == 0, out);
        return r;
}

int snap_live_usage(struct snap *sn, const char *key, int64_t max_age_ns, int64_t not_before_wall,
                    struct snap_live *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        int64_t now = time_mono_ns();
        snap_idx_read_lock(sn);
        struct snap_ent *x = find(sn, key);
        if (x == NULL) {
                snap_idx_read_unlock(sn);
                return err_set(e, ERR_NOT_FOUND, "snapshot %s not found", key);
        }
        pthread_mutex_lock(&sn->idx.live_mu);
        /* A walk under way: its figures come soon, the last ones will do meanwhile. */
        bool fresh = live_fresh(x, now, max_age_ns, not_before_wall) || (x->live_busy && x->live_mono);
        if (fresh)
                *out = (struct snap_live){x->live_bytes, x->live_inodes, x->live_mono, x->live_wall};
        else
                x->live_busy = true;
        pthread_mutex_unlock(&sn->idx.live_mu);
        snap_idx_read_unlock(sn);
        if (fresh)
                return 0;
        if (walk_live(sn, key, out, e) < 0)
                return err_wrap(e, "snapshot %s", key);
        return 0;
}

void snap_usage_refresh(struct snap *sn, int64_t max_age_ns)
{
        char **keys = NULL;
        size_t n = 0, cap = 0;
        int64_t now = time_mono_ns();
        snap_idx_read_lock(sn);
        pthread_mutex_lock(&sn->idx.live_mu);
        for (struct snap_ent *x = sn->idx.head; x; x = x->next) {
                if (x->rec.kind == SNAP_COMMITTED || x->live_busy || live_fresh(x, now, max_age_ns, 0))
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        keys = xrealloc(keys, cap * sizeof(*keys));
                }
                x->live_busy = true;
                keys[n++] = xstrdup(x->rec.key);
        }
        pthread_mutex_unlock(&sn->idx.live_mu);
        snap_idx_read_unlock(sn);
        /* The walks run with no lock held: they take as long as the trees are big. */
        for (size_t i = 0; i < n; i++) {
                struct snap_live l;
                struct err de = ERR_INIT;
                /* a snapshot removed meanwhile is not an error: it is left out */
                (void)walk_live(sn, keys[i], &l, &de);
                err_clear(&de);
                free(keys[i]);
        }
        free(keys);
}

void snap_cached_usage(struct snap *sn, uint64_t *bytes, uint64_t *inodes)
{
        *bytes = *inodes = 0;
        snap_idx_read_lock(sn);
        pthread_mutex_lock(&sn->idx.live_mu);
        for (struct snap_ent *x = sn->idx.head; x; x = x->next) {
                *bytes += x->rec.kind == SNAP_COMMITTED ? x->rec.size : x->live_bytes;
                *inodes += x->rec.kind == SNAP_COMMITTED ? x->rec.inodes : x->live_inodes;
        }
        pthread_mutex_unlock(&sn->idx.live_mu);
        snap_idx_read_unlock(sn);
}
