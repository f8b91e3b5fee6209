/* snapshot: the snapshotter. Layers are committed snapshots keyed by their
 * chain ID and shared by every image that has them; containers' root
 * filesystems (and layers being unpacked) are active snapshots with an upper
 * and a work directory over a parent chain; views are read-only.
 *
 * One interface (struct snap_driver_ops), one driver today: overlay2, laid
 * out as Docker's overlay2 under <root>/snapshots/overlay2/:
 *   <dir>/fs     the snapshot's own files (upperdir while active)
 *   <dir>/work   overlay's workdir
 *   l/<ID>       26-char short links to ../<dir>/fs, so that the lowerdir
 *                option of a deep image fits in one page
 * Metadata lives in memory, loaded at snap_open() from the store
 * (store_snap_*), which every change is committed to first: reads run no
 * SQL. Directories are created under a temporary name and renamed, and
 * snap_open() repairs what a crash left.
 *
 * Keys are opaque strings (chain IDs, container IDs, "extract-..." keys):
 * they never become paths. Thread-safe: mutations run one at a time, each
 * in one store transaction; reads take a read lock.
 */
#ifndef CORRAL_SNAPSHOT_H
#define CORRAL_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "util/util.h"

/* Same values as enum store_snap_kind. */
enum snap_kind { SNAP_COMMITTED = 0, SNAP_ACTIVE = 1, SNAP_VIEW = 2 };

/* A mount that makes a snapshot usable: hand it to snap_mount(), or use the
 * parts (virtio-fs / 9p shares, the new mount API). */
struct snap_mount {
        char *type;       /* "overlay" or "bind" */
        char *source;     /* "overlay", or the directory to bind */
        char **options;   /* NULL-terminated, as mount(8) -o: "ro", "rbind", "rw", "index=off",
                             "lowerdir=<root>/l/<ID>:...", "upperdir=...", "workdir=..." (may
                             exceed one page for deep images: snap_mount() copes) */
        char **lowerdirs; /* NULL-terminated absolute short links <root>/l/<ID>, top-most first
                             (overlay only); overlayfs follows them */
        char *upperdir;   /* absolute; NULL for a read-only overlay */
        char *workdir;
        bool readonly;
        char *linkroot; /* the driver directory that the relative "l/<ID>" names are under */
};

void snap_mount_free(struct snap_mount *m);

struct snap;

/* The driver interface. The public wrappers below check the keys first;
 * drivers keep their own consistency with store transactions. `kind` is
 * SNAP_ACTIVE or SNAP_VIEW in prepare. */
struct snap_driver_ops {
        const char *name;
        int (*init)(struct snap *sn, struct err *e);
        int (*prepare)(struct snap *sn, const char *key, const char *parent, enum snap_kind kind,
                       struct err *e);
        int (*commit)(struct snap *sn, const char *name, const char *key, struct err *e);
        int (*remove)(struct snap *sn, const char *key, struct err *e);
        int (*stat)(struct snap *sn, const char *key, struct store_snapshot *out, struct err *e);
        int (*walk)(struct snap *sn, int (*cb)(const struct store_snapshot *s, void *arg), void *arg,
                    struct err *e);
        int (*usage)(struct snap *sn, const char *key, uint64_t *bytes, uint64_t *inodes, struct err *e);
        int (*mounts)(struct snap *sn, const char *key, struct snap_mount **out, struct err *e);
        /* Path of the snapshot's own files (the upperdir of an active one). */
        char *(*fs_path)(struct snap *sn, const char *key, struct err *e);
        /* Remove directories without records and records without directories. */
        int (*repair)(struct snap *sn, struct err *e);
        void (*close)(struct snap *sn);
};

/* Open the snapshotter under <root>/snapshots/<driver>/ ("overlay2"; NULL
 * means overlay2) with metadata in `store` (borrowed, must outlive it), and
 * repair after a crash. ERR_UNIMPLEMENTED for an unknown driver. */
int snap_open(const char *root, const char *driver, struct store *store, struct snap **out, struct err *e);
void snap_close(struct snap *sn);
const char *snap_driver_name(const struct snap *sn);

/* A new active snapshot `key` over the committed snapshot `parent` (NULL for
 * an empty base). ERR_EXISTS when key exists, ERR_NOT_FOUND when the parent
 * does not, ERR_PRECONDITION when the parent is not committed. *out (may be
 * NULL) gets its mount. */
int snap_prepare(struct snap *sn, const char *key, const char *parent, struct snap_mount **out,
                 struct err *e);
/* A read-only view `key` of `parent` (which must be committed). */
int snap_view(struct snap *sn, const char *key, const char *parent, struct snap_mount **out, struct err *e);
/* Active `key` becomes committed `name` (a layer's chain ID): one store
 * transaction, the directory is kept, not copied; its usage is recorded.
 * ERR_EXISTS when name exists (another pull committed it first: remove
 * `key` and use name), ERR_PRECONDITION when key is not active. */
int snap_commit(struct snap *sn, const char *name, const char *key, struct err *e);
/* Remove a snapshot and its directory. ERR_PRECONDITION while it has
 * children; ERR_NOT_FOUND when absent. Unmounting is the caller's part. */
int snap_remove(struct snap *sn, const char *key, struct err *e);
/* The record; clear with store_snap_clear(). */
int snap_stat(struct snap *sn, const char *key, struct store_snapshot *out, struct err *e);
/* Every snapshot, oldest first; a negative return from cb stops the walk and
 * is returned. */
int snap_walk(struct snap *sn, int (*cb)(const struct store_snapshot *s, void *arg), void *arg,
              struct err *e);
/* Disk use of the snapshot's own files (blocks, hardlinks counted once). */
int snap_usage(struct snap *sn, const char *key, uint64_t *bytes, uint64_t *inodes, struct err *e);
/* The mount for a snapshot: overlay over the parent chain (upper + work for
 * an active one), a bind mount for a base layer (rw active, ro view). */
int snap_mounts(struct snap *sn, const char *key, struct snap_mount **out, struct err *e);
/* The directory holding the snapshot's own files: unpack a layer into an
 * active snapshot's fs path, then commit. Caller frees. */
char *snap_fs_path(struct snap *sn, const char *key, struct err *e);
/* Usage of the snapshotter's filesystem (ImageFsInfo): bytes and inodes of
 * all snapshots as recorded at commit, plus live usage of active ones
 * (snap_usage_refresh, then snap_cached_usage). */
int snap_total_usage(struct snap *sn, uint64_t *bytes, uint64_t *inodes, struct err *e);
/* Walk the tree (snap_usage) of every active snapshot whose last walk is
 * max_age_ns old or older (0: all of them) and keep the figures in memory;
 * no lock is held during the walks. */
void snap_usage_refresh(struct snap *sn, int64_t max_age_ns);
/* How old a writable layer's walk may be when the stats RPCs or
 * ImageFsInfo report it: cAdvisor, which gave kubelet these figures
 * before CRI stats, walked every minute too. */
#define SNAP_LIVE_MAX_AGE_NS (INT64_C(60) * 1000000000)
/* An active snapshot's usage as last walked, and when (mono and wall ns). */
struct snap_live {
        uint64_t bytes, inodes;
        int64_t mono, wall;
};
/* `key`'s usage from its last walk (by this call, snap_usage_refresh or
 * another caller) if that walk is younger than max_age_ns, or, with
 * not_before_wall > 0, if it was made after that wall time; else walked
 * now. While another caller walks it, the previous figures are returned.
 * One walk per tree serves the stats RPCs and ImageFsInfo alike. */
int snap_live_usage(struct snap *sn, const char *key, int64_t max_age_ns, int64_t not_before_wall,
                    struct snap_live *out, struct err *e);
/* From memory, no syscall: committed snapshots as recorded at commit,
 * active ones as of their last walk (0 before it). */
void snap_cached_usage(struct snap *sn, uint64_t *bytes, uint64_t *inodes);
/* The directory the snapshots live in (<root>/snapshots/<driver>). */
const char *snap_root(const struct snap *sn);

/* Mount m on target (which must exist). An overlay whose lowerdir option
 * does not fit in one page with absolute short links is mounted with the
 * new mount API ("lowerdir+", Linux 6.8+), else with relative short links
 * from the driver directory; ERR_EXHAUSTED names the layer count when neither
 * fits. */
int snap_mount(const struct snap_mount *m, const char *target, struct err *e);
/* Unmount target; not mounted is fine. */
int snap_unmount(const char *target, struct err *e);

#endif
