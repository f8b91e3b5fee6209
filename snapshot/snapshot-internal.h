/* snapshot: what the public wrappers, the drivers and the tests share. */
#ifndef CORRAL_SNAPSHOT_INTERNAL_H
#define CORRAL_SNAPSHOT_INTERNAL_H

#include <pthread.h>

#include "snapshot/snapshot.h"

struct snap_ent;

/* Every record in memory (index.c); the store is its journal. */
struct snap_index {
        pthread_rwlock_t rw;     /* readers; writers take it only while pointers move */
        pthread_mutex_t wmu;     /* one mutation at a time: its checks, journal write and memory update */
        pthread_mutex_t live_mu; /* the entries' live usage (with rw held for reading) */
        struct strmap by_key;
        struct snap_ent *head, *tail; /* oldest first */
        bool ready;
};

struct snap {
        const struct snap_driver_ops *ops;
        struct store *store; /* borrowed */
        char *root;          /* <root>/snapshots/<driver> */
        void *priv;          /* the driver's */
        struct snap_index idx;
};

/* Load every record from the store / free the memory. */
int snap_idx_open(struct snap *sn, struct err *e);
void snap_idx_close(struct snap *sn);
/* A mutation holds the write lock across its checks, snap_idx_put /
 * _delete / _commit and nothing slow; memory cannot change under it, so it
 * may peek without the read lock. */
void snap_idx_write_lock(struct snap *sn);
void snap_idx_write_unlock(struct snap *sn);
void snap_idx_read_lock(struct snap *sn);
void snap_idx_read_unlock(struct snap *sn);
/* Under either lock: the record itself (NULL when absent), lent until unlock. */
const struct store_snapshot *snap_idx_peek(struct snap *sn, const char *key);
/* Under either lock: how many records name `key` as their parent. */
size_t snap_idx_children(struct snap *sn, const char *key);
/* A copy (store_snap_clear); ERR_NOT_FOUND "snapshot <key> not found". */
int snap_idx_get(struct snap *sn, const char *key, struct store_snapshot *out, struct err *e);
/* Copies of all, oldest first (store_snaps_free). */
void snap_idx_list(struct snap *sn, struct store_snapshot **out, size_t *n);
/* Write lock held: journal, then memory. The store's errors. */
int snap_idx_put(struct snap *sn, const struct store_snapshot *rec, struct err *e);
int snap_idx_delete(struct snap *sn, const char *key, struct err *e);
/* Active `key` becomes `committed` in one store transaction. */
int snap_idx_commit(struct snap *sn, const struct store_snapshot *committed, const char *key, struct err *e);

extern const struct snap_driver_ops snap_overlay2_ops;

/* Disk use of a tree: st_blocks * 512 per inode, hardlinked inodes once,
 * not crossing into other filesystems. */
int snap_du(const char *path, uint64_t *bytes, uint64_t *inodes, struct err *e);

/* How snap_mount may mount an overlay, in this order; tests narrow it to
 * exercise each way. */
enum {
        SNAP_MOUNT_ABSOLUTE = 1 << 0, /* mount(2), absolute short links, when they fit a page */
        SNAP_MOUNT_NEWAPI = 1 << 1,   /* fsopen + fsconfig "lowerdir+" per layer (Linux 6.8+) */
        SNAP_MOUNT_RELATIVE = 1 << 2, /* mount(2) from a child in the driver dir, "l/<ID>" */
        SNAP_MOUNT_ALL = 7,
};
extern unsigned snap_mount_ways;

#endif
