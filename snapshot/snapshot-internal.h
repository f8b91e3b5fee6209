/* snapshot: what the public wrappers, the drivers and the tests share. */
#ifndef CORRAL_SNAPSHOT_INTERNAL_H
#define CORRAL_SNAPSHOT_INTERNAL_H

#include "snapshot/snapshot.h"

struct snap {
        const struct snap_driver_ops *ops;
        struct store *store; /* borrowed */
        char *root;          /* <root>/snapshots/<driver> */
        void *priv;          /* the driver's */
};

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
