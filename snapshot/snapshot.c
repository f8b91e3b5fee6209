/* snapshot: the public entry points, dispatching to the driver's vtable. */
#include <errno.h>
#include <string.h>

#include "snapshot/snapshot-internal.h"

static const struct snap_driver_ops *const drivers[] = {&snap_overlay2_ops};

void snap_mount_free(struct snap_mount *m)
{
        if (m == NULL)
                return;
        free(m->type);
        free(m->source);
        strv_free(m->options);
        strv_free(m->lowerdirs);
        free(m->upperdir);
        free(m->workdir);
        free(m->linkroot);
        free(m);
}

int snap_open(const char *root, const char *driver, struct store *store, struct snap **out, struct err *e)
{
        *out = NULL;
        if (driver == NULL)
                driver = "overlay2";
        const struct snap_driver_ops *ops = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(drivers); i++)
                if (strcmp(drivers[i]->name, driver) == 0)
                        ops = drivers[i];
        if (ops == NULL)
                return err_set(e, ERR_UNIMPLEMENTED, "snapshotter %s: unknown driver", driver);
        struct snap *sn = xzalloc(sizeof(*sn));
        sn->ops = ops;
        sn->store = store;
        sn->root = xasprintf("%s/snapshots/%s", root, driver);
        if (mkdir_p(sn->root, 0700, e) < 0 || snap_idx_open(sn, e) < 0 ||
            (ops->init && ops->init(sn, e) < 0) || (ops->repair && ops->repair(sn, e) < 0)) {
                err_wrap(e, "snapshotter %s", sn->root);
                snap_close(sn);
                return -1;
        }
        *out = sn;
        return 0;
}

void snap_close(struct snap *sn)
{
        if (sn == NULL)
                return;
        if (sn->ops->close)
                sn->ops->close(sn);
        snap_idx_close(sn);
        free(sn->root);
        free(sn);
}

const char *snap_driver_name(const struct snap *sn)
{
        return sn->ops->name;
}
const char *snap_root(const struct snap *sn)
{
        return sn->root;
}

static int check_key(const char *what, const char *key, struct err *e)
{
        if (key == NULL || *key == '\0')
                return err_set(e, ERR_INVALID, "snapshot %s: empty key", what);
        if (strlen(key) > 1024)
                return err_set(e, ERR_INVALID, "snapshot %s: key longer than 1024 bytes", what);
        return 0;
}

static int prepare_kind(struct snap *sn, const char *key, const char *parent, enum snap_kind kind,
                        struct snap_mount **out, struct err *e)
{
        if (out)
                *out = NULL;
        if (check_key("key", key, e) < 0 || (parent && check_key("parent", parent, e) < 0))
                return -1;
        if (sn->ops->prepare(sn, key, parent, kind, e) < 0)
                return -1;
        if (out && sn->ops->mounts(sn, key, out, e) < 0) {
                struct err ignore = ERR_INIT;
                (void)sn->ops->remove(sn, key, &ignore);
                err_clear(&ignore);
                return -1;
        }
        return 0;
}

int snap_prepare(struct snap *sn, const char *key, const char *parent, struct snap_mount **out, struct err *e)
{
        return prepare_kind(sn, key, parent, SNAP_ACTIVE, out, e);
}

int snap_view(struct snap *sn, const char *key, const char *parent, struct snap_mount **out, struct err *e)
{
        if (parent == NULL)
                return err_set(e, ERR_INVALID, "snapshot view %s: a view needs a parent", key ? key : "");
        return prepare_kind(sn, key, parent, SNAP_VIEW, out, e);
}

int snap_commit(struct snap *sn, const char *name, const char *key, struct err *e)
{
        if (check_key("name", name, e) < 0 || check_key("key", key, e) < 0)
                return -1;
        return sn->ops->commit(sn, name, key, e);
}

int snap_remove(struct snap *sn, const char *key, struct err *e)
{
        if (check_key("key", key, e) < 0)
                return -1;
        return sn->ops->remove(sn, key, e);
}

int snap_stat(struct snap *sn, const char *key, struct store_snapshot *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        if (check_key("key", key, e) < 0)
                return -1;
        return sn->ops->stat(sn, key, out, e);
}

int snap_walk(struct snap *sn, int (*cb)(const struct store_snapshot *s, void *arg), void *arg, struct err *e)
{
        return sn->ops->walk(sn, cb, arg, e);
}

int snap_usage(struct snap *sn, const char *key, uint64_t *bytes, uint64_t *inodes, struct err *e)
{
        *bytes = *inodes = 0;
        if (check_key("key", key, e) < 0)
                return -1;
        return sn->ops->usage(sn, key, bytes, inodes, e);
}

int snap_mounts(struct snap *sn, const char *key, struct snap_mount **out, struct err *e)
{
        *out = NULL;
        if (check_key("key", key, e) < 0)
                return -1;
        return sn->ops->mounts(sn, key, out, e);
}

char *snap_fs_path(struct snap *sn, const char *key, struct err *e)
{
        if (check_key("key", key, e) < 0)
                return NULL;
        return sn->ops->fs_path(sn, key, e);
}

int snap_total_usage(struct snap *sn, uint64_t *bytes, uint64_t *inodes, struct err *e)
{
        (void)e;
        snap_usage_refresh(sn, 0);
        snap_cached_usage(sn, bytes, inodes);
        return 0;
}
