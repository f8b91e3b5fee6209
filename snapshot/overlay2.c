/* snapshot: the overlay2 driver.
 *
 * <root>/snapshots/overlay2/<dir>/{fs,work}: <dir> is a random 64-hex name
 * kept for the snapshot's whole life (commit changes metadata only), and
 * l/<ID> -> ../<dir>/fs where ID is 26 base32 characters derived from <dir>,
 * as Docker's overlay2 does to keep lowerdir= short.
 *
 * Crash safety: a new directory is made as .tmp-<dir> and renamed; its record
 * is written after, in one transaction with the checks; removal deletes the
 * record first and the directory after (as .rm-<dir>). Whatever a kill -9
 * leaves between the two steps, repair() finds on the next open.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "snapshot/snapshot-internal.h"

#define LINK_LEN  26
#define MAX_CHAIN 500 /* overlayfs' own limit on lower layers */

struct ovl {
        bool index_off; /* the kernel knows index= (4.13+) */
};

/* ---------- names ---------- */

static void link_id(const char *dir, char out[LINK_LEN + 1])
{
        static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        unsigned char raw[32] = {0};
        for (size_t i = 0; i < 32 && dir[2 * i] && dir[2 * i + 1]; i++) {
                char h[3] = {dir[2 * i], dir[2 * i + 1], 0};
                raw[i] = (unsigned char)strtoul(h, NULL, 16);
        }
        /* 26 x 5 bits from the front of the 256-bit name */
        for (size_t i = 0; i < LINK_LEN; i++) {
                size_t bit = i * 5, byte = bit / 8, shift = bit % 8;
                unsigned v = ((unsigned)raw[byte] << 8 | raw[byte + 1]) >> (11 - shift);
                out[i] = b32[v & 31];
        }
        out[LINK_LEN] = '\0';
}

static char *dir_path(struct snap *sn, const char *dir)
{
        return xasprintf("%s/%s", sn->root, dir);
}
static char *fs_dir(struct snap *sn, const char *dir)
{
        return xasprintf("%s/%s/fs", sn->root, dir);
}

static char *link_path(struct snap *sn, const char *dir)
{
        char id[LINK_LEN + 1];
        link_id(dir, id);
        return xasprintf("%s/l/%s", sn->root, id);
}

static char *link_target(const char *dir)
{
        return xasprintf("../%s/fs", dir);
}

/* A record's directory name must be ours (64 hex) before it becomes a path. */
static int check_record(const struct store_snapshot *s, struct err *e)
{
        if (s->dir == NULL || !id_is_valid(s->dir))
                return err_set(e, ERR_DATA_LOSS, "snapshot %s: bad directory name in its record", s->key);
        return 0;
}

/* ---------- directories ---------- */

/* Remove <root>/<dir> and its link; for undo and remove. */
static int destroy_dir(struct snap *sn, const char *dir, struct err *e)
{
        cleanup_free char *lp = link_path(sn, dir);
        cleanup_free char *dp = dir_path(sn, dir);
        cleanup_free char *rp = xasprintf("%s/.rm-%s", sn->root, dir);
        if (unlink(lp) < 0 && errno != ENOENT)
                return err_make(e, errno, "remove link %s", lp);
        /* renamed first so that a half-removed tree is never taken for a snapshot */
        if (rename(dp, rp) < 0) {
                if (errno == ENOENT)
                        return 0;
                return err_make(e, errno, "rename %s", dp);
        }
        return rm_rf(rp, e);
}

/* Make <root>/<dir>/{fs,work} and l/<ID>; fs takes owner and mode of the
 * parent's root so the merged root looks like the image's. */
static int create_dir(struct snap *sn, const char *dir, const char *parent_dir, struct err *e)
{
        cleanup_free char *tmp = xasprintf("%s/.tmp-%s", sn->root, dir);
        cleanup_free char *tfs = path_join(tmp, "fs"), *twork = path_join(tmp, "work");
        cleanup_free char *dp = dir_path(sn, dir), *lp = link_path(sn, dir), *lt = link_target(dir);
        if (mkdir(tmp, 0700) < 0)
                return err_make(e, errno, "mkdir %s", tmp);
        if (mkdir(tfs, 0755) < 0 || mkdir(twork, 0700) < 0) {
                err_make(e, errno, "mkdir in %s", tmp);
                goto undo;
        }
        if (parent_dir) {
                cleanup_free char *pfs = fs_dir(sn, parent_dir);
                struct stat st;
                if (stat(pfs, &st) < 0) {
                        err_make(e, errno, "parent directory %s", pfs);
                        goto undo;
                }
                if (chown(tfs, st.st_uid, st.st_gid) < 0 || chmod(tfs, st.st_mode & 07777) < 0) {
                        err_make(e, errno, "set owner of %s", tfs);
                        goto undo;
                }
        }
        if (rename(tmp, dp) < 0) {
                err_make(e, errno, "rename %s", tmp);
                goto undo;
        }
        if (symlink(lt, lp) < 0) {
                err_make(e, errno, "link %s", lp);
                struct err ignore = ERR_INIT;
                (void)destroy_dir(sn, dir, &ignore);
                err_clear(&ignore);
                return -1;
        }
        return 0;
undo:;
        struct err ignore = ERR_INIT;
        (void)rm_rf(tmp, &ignore);
        err_clear(&ignore);
        return -1;
}

/* ---------- operations ---------- */

static int ovl_init(struct snap *sn, struct err *e)
{
        struct ovl *o = xzalloc(sizeof(*o));
        sn->priv = o;
        struct utsname u;
        int maj = 0, min = 0;
        if (uname(&u) == 0 && sscanf(u.release, "%d.%d", &maj, &min) == 2)
                o->index_off = maj > 4 || (maj == 4 && min >= 13);
        cleanup_free char *l = path_join(sn->root, "l");
        return mkdir_p(l, 0700, e);
}

static void ovl_close(struct snap *sn)
{
        free(sn->priv);
}

static int ovl_prepare(struct snap *sn, const char *key, const char *parent, enum snap_kind kind,
                       struct err *e)
{
        const char *what = kind == SNAP_VIEW ? "view" : "prepare";
        struct store_snapshot p = {0};
        if (parent) {
                if (snap_idx_get(sn, parent, &p, e) < 0)
                        return err_wrap(e, "snapshot %s %s: parent %s", what, key, parent);
                if (check_record(&p, e) < 0) {
                        store_snap_clear(&p);
                        return -1;
                }
        }
        char dir[ID_LEN + 1];
        id_generate(dir);
        int r = create_dir(sn, dir, parent ? p.dir : NULL, e);
        store_snap_clear(&p);
        if (r < 0)
                return err_wrap(e, "snapshot %s %s", what, key);

        /* The checks that matter happen under the lock that writes. */
        struct store_snapshot rec = {
                .key = (char *)key,
                .parent = (char *)parent,
                .kind = kind,
                .dir = dir,
                .created_ns = time_now_ns(),
        };
        snap_idx_write_lock(sn);
        const struct store_snapshot *cur = parent ? snap_idx_peek(sn, parent) : NULL;
        if (snap_idx_peek(sn, key))
                r = err_set(e, ERR_EXISTS, "snapshot %s %s: already exists", what, key);
        else if (parent && !cur)
                r = err_set(e, ERR_NOT_FOUND, "snapshot %s %s: parent %s: snapshot %s not found", what, key,
                            parent, parent);
        else if (parent && cur->kind != SNAP_COMMITTED)
                r = err_set(e, ERR_PRECONDITION, "snapshot %s %s: parent %s is not committed", what, key,
                            parent);
        else if ((r = snap_idx_put(sn, &rec, e)) < 0)
                err_wrap(e, "snapshot %s %s", what, key);
        snap_idx_write_unlock(sn);
        if (r == 0)
                return 0;
        struct err ignore = ERR_INIT;
        (void)destroy_dir(sn, dir, &ignore);
        err_clear(&ignore);
        return -1;
}

static int ovl_commit(struct snap *sn, const char *name, const char *key, struct err *e)
{
        cleanup_free char *fs = NULL;
        struct store_snapshot a = {0};
        uint64_t bytes = 0, inodes = 0;
        int ret = -1;
        if (snap_idx_get(sn, key, &a, e) < 0 || check_record(&a, e) < 0) {
                err_wrap(e, "snapshot commit %s as %s", key, name);
                goto out;
        }
        if (a.kind != SNAP_ACTIVE) {
                err_set(e, ERR_PRECONDITION, "snapshot commit %s as %s: %s is not active", key, name, key);
                goto out;
        }
        /* Counted before the transaction: the tree is the committer's alone. */
        fs = fs_dir(sn, a.dir);
        if (snap_du(fs, &bytes, &inodes, e) < 0) {
                err_wrap(e, "snapshot commit %s as %s", key, name);
                goto out;
        }
        snap_idx_write_lock(sn);
        const struct store_snapshot *cur = snap_idx_peek(sn, key);
        if (snap_idx_peek(sn, name)) {
                err_set(e, ERR_EXISTS, "snapshot commit %s as %s: %s already exists", key, name, name);
                goto unlock;
        }
        if (!cur) {
                err_set(e, ERR_NOT_FOUND, "snapshot commit %s as %s: snapshot %s not found", key, name, key);
                goto unlock;
        }
        if (cur->kind != SNAP_ACTIVE || !cur->dir || strcmp(cur->dir, a.dir) != 0) {
                err_set(e, ERR_ABORTED, "snapshot commit %s as %s: %s changed meanwhile", key, name, key);
                goto unlock;
        }
        struct store_snapshot c = {
                .key = (char *)name,
                .parent = a.parent,
                .kind = SNAP_COMMITTED,
                .dir = a.dir,
                .created_ns = time_now_ns(),
                .size = bytes,
                .inodes = inodes,
                .labels_json = a.labels_json,
        };
        if (snap_idx_commit(sn, &c, key, e) < 0) {
                err_wrap(e, "snapshot commit %s as %s", key, name);
                goto unlock;
        }
        ret = 0;
unlock:
        snap_idx_write_unlock(sn);
out:
        store_snap_clear(&a);
        return ret;
}

static int ovl_remove(struct snap *sn, const char *key, struct err *e)
{
        cleanup_free char *dir = NULL;
        snap_idx_write_lock(sn);
        const struct store_snapshot *s = snap_idx_peek(sn, key);
        size_t children = snap_idx_children(sn, key);
        int r;
        if (!s)
                r = err_set(e, ERR_NOT_FOUND, "snapshot remove %s: snapshot %s not found", key, key);
        else if (children > 0)
                r = err_set(e, ERR_PRECONDITION,
                            "snapshot remove %s: it is the parent of %zu other snapshot%s", key, children,
                            children == 1 ? "" : "s");
        else {
                dir = xstrdup(s->dir); /* s goes with the record */
                if ((r = snap_idx_delete(sn, key, e)) < 0)
                        err_wrap(e, "snapshot remove %s", key);
        }
        snap_idx_write_unlock(sn);
        if (r < 0)
                return -1;
        if (dir && id_is_valid(dir) && destroy_dir(sn, dir, e) < 0)
                r = err_wrap(e, "snapshot remove %s: record removed, directory left for the next start", key);
        return r;
}

static int ovl_stat(struct snap *sn, const char *key, struct store_snapshot *out, struct err *e)
{
        return snap_idx_get(sn, key, out, e);
}

static int ovl_walk(struct snap *sn, int (*cb)(const struct store_snapshot *s, void *arg), void *arg,
                    struct err *e)
{
        (void)e;
        struct store_snapshot *v = NULL;
        size_t n = 0;
        /* Copies: the callback may call back into the snapshotter. */
        snap_idx_list(sn, &v, &n);
        int r = 0;
        for (size_t i = 0; i < n && r >= 0; i++)
                r = cb(&v[i], arg);
        store_snaps_free(v, n);
        return r < 0 ? r : 0;
}

static char *ovl_fs_path(struct snap *sn, const char *key, struct err *e)
{
        snap_idx_read_lock(sn);
        const struct store_snapshot *s = snap_idx_peek(sn, key);
        char *p = NULL;
        if (!s)
                err_set(e, ERR_NOT_FOUND, "snapshot %s: snapshot %s not found", key, key);
        else if (check_record(s, e) == 0)
                p = fs_dir(sn, s->dir);
        snap_idx_read_unlock(sn);
        return p;
}

static int ovl_usage(struct snap *sn, const char *key, uint64_t *bytes, uint64_t *inodes, struct err *e)
{
        cleanup_free char *fs = ovl_fs_path(sn, key, e);
        if (fs == NULL)
                return -1;
        if (snap_du(fs, bytes, inodes, e) < 0)
                return err_wrap(e, "snapshot %s", key);
        return 0;
}

/* The short links of key's ancestors (the lowerdirs), top-most first. The
 * read lock is held. */
static int parent_links(struct snap *sn, const char *parent, char ***links, char **first_fs, struct err *e)
{
        size_t depth = 0;
        for (const char *next = parent; next;) {
                const struct store_snapshot *p = snap_idx_peek(sn, next);
                if (!p)
                        return err_set(e, ERR_NOT_FOUND, "parent %s: snapshot %s not found", next, next);
                if (check_record(p, e) < 0)
                        return err_wrap(e, "parent %s", next);
                if (++depth > MAX_CHAIN)
                        return err_set(e, ERR_EXHAUSTED, "more than %d layers (overlayfs' limit)", MAX_CHAIN);
                cleanup_free char *lp = link_path(sn, p->dir);
                strv_push(links, lp);
                if (depth == 1 && first_fs)
                        *first_fs = fs_dir(sn, p->dir);
                next = p->parent;
        }
        return 0;
}

static int ovl_mounts(struct snap *sn, const char *key, struct snap_mount **out, struct err *e)
{
        struct store_snapshot s = {0};
        cleanup_strv char **lowers = NULL;
        cleanup_free char *parent_fs = NULL;
        /* The record and its chain, read together. */
        snap_idx_read_lock(sn);
        const struct store_snapshot *cur = snap_idx_peek(sn, key);
        int r = cur ? check_record(cur, e) : err_set(e, ERR_NOT_FOUND, "snapshot %s not found", key);
        if (r == 0) {
                s = (struct store_snapshot){.kind = cur->kind, .dir = xstrdup(cur->dir)};
                /* A committed snapshot is shown read-only, itself on top. */
                const char *top = cur->kind == SNAP_COMMITTED ? key : cur->parent;
                if (top)
                        r = parent_links(sn, top, &lowers, &parent_fs, e);
        }
        snap_idx_read_unlock(sn);
        if (r < 0) {
                store_snap_clear(&s);
                return err_wrap(e, "snapshot mounts %s", key);
        }
        struct ovl *o = sn->priv;
        struct snap_mount *m = xzalloc(sizeof(*m));
        m->linkroot = xstrdup(sn->root);
        size_t nl = strv_len(lowers);
        if (s.kind == SNAP_ACTIVE && nl == 0) {
                m->type = xstrdup("bind");
                m->source = fs_dir(sn, s.dir);
                strv_push(&m->options, "rbind");
                strv_push(&m->options, "rw");
        } else if (s.kind != SNAP_ACTIVE && nl <= 1) {
                /* overlay needs two lowers without an upper: bind the one */
                m->type = xstrdup("bind");
                m->source = nl ? steal_ptr(&parent_fs) : fs_dir(sn, s.dir);
                m->readonly = true;
                strv_push(&m->options, "rbind");
                strv_push(&m->options, "ro");
        } else {
                m->type = xstrdup("overlay");
                m->source = xstrdup("overlay");
                m->readonly = s.kind != SNAP_ACTIVE;
                if (m->readonly)
                        strv_push(&m->options, "ro");
                if (o->index_off)
                        strv_push(&m->options, "index=off");
                struct sbuf b = {0};
                sbuf_puts(&b, "lowerdir=");
                for (size_t i = 0; i < nl; i++) {
                        if (i)
                                sbuf_putc(&b, ':');
                        sbuf_puts(&b, lowers[i]);
                }
                char *opt = sbuf_steal(&b);
                strv_push(&m->options, opt);
                free(opt);
                if (s.kind == SNAP_ACTIVE) {
                        m->upperdir = fs_dir(sn, s.dir);
                        m->workdir = xasprintf("%s/%s/work", sn->root, s.dir);
                        opt = xasprintf("upperdir=%s", m->upperdir);
                        strv_push(&m->options, opt);
                        free(opt);
                        opt = xasprintf("workdir=%s", m->workdir);
                        strv_push(&m->options, opt);
                        free(opt);
                }
                m->lowerdirs = steal_ptr(&lowers);
        }
        store_snap_clear(&s);
        *out = m;
        return 0;
}

/* ---------- repair ---------- */

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

struct lnk {
        char id[LINK_LEN + 1];
        const char *dir;
};

static int cmp_lnk(const void *a, const void *b)
{
        return strcmp(((const struct lnk *)a)->id, ((const struct lnk *)b)->id);
}

static bool has(char **sorted, size_t n, const char *s)
{
        return s && bsearch(&s, sorted, n, sizeof(char *), cmp_str) != NULL;
}

/* After a crash: records whose directory is gone (and their descendants,
 * which cannot mount without it) are deleted; directories and links nobody
 * records are removed. Logged at debug only. */
static int ovl_repair(struct snap *sn, struct err *e)
{
        struct store_snapshot *v = NULL;
        size_t n = 0;
        snap_idx_list(sn, &v, &n);
        bool *bad = xcalloc(n ? n : 1, sizeof(bool));
        char **keys = xcalloc(n + 1, sizeof(char *)), **dirs = xcalloc(n + 1, sizeof(char *));
        size_t nk = 0, nd = 0;
        for (size_t i = 0; i < n; i++) {
                struct stat st;
                cleanup_free char *fs = v[i].dir && id_is_valid(v[i].dir) ? fs_dir(sn, v[i].dir) : NULL;
                bad[i] = fs == NULL || stat(fs, &st) < 0 || !S_ISDIR(st.st_mode);
                if (!bad[i])
                        keys[nk++] = v[i].key;
        }
        /* a parent that is bad or missing spoils its children, transitively */
        for (bool changed = true; changed;) {
                changed = false;
                qsort(keys, nk, sizeof(char *), cmp_str);
                for (size_t i = 0; i < n; i++) {
                        if (bad[i] || v[i].parent == NULL || has(keys, nk, v[i].parent))
                                continue;
                        bad[i] = changed = true;
                }
                nk = 0;
                for (size_t i = 0; i < n; i++)
                        if (!bad[i])
                                keys[nk++] = v[i].key;
        }
        /* delete bad records children first (the store keeps parents referenced) */
        int ret = 0;
        /* Declared before any goto: clang refuses jumps into a cleanup variable's scope. */
        cleanup_dir DIR *d = NULL;
        cleanup_dir DIR *ld = NULL;
        cleanup_free char *ldir = NULL;
        for (bool progress = true; progress;) {
                progress = false;
                for (size_t i = 0; i < n; i++) {
                        if (!bad[i] || v[i].key == NULL)
                                continue;
                        snap_idx_write_lock(sn);
                        size_t children = snap_idx_children(sn, v[i].key);
                        int r = children > 0 ? 0 : snap_idx_delete(sn, v[i].key, e);
                        snap_idx_write_unlock(sn);
                        if (r < 0) {
                                ret = -1;
                                goto out;
                        }
                        if (children > 0)
                                continue;
                        log_debug("snapshot", "repair removed record key=%s dir=%s", v[i].key,
                                  v[i].dir ? v[i].dir : "");
                        free(v[i].key);
                        v[i].key = NULL;
                        progress = true;
                }
        }
        for (size_t i = 0; i < n; i++)
                if (!bad[i])
                        dirs[nd++] = v[i].dir;
        qsort(dirs, nd, sizeof(char *), cmp_str);

        /* directories: keep l/ and recorded ones */
        d = opendir(sn->root);
        struct dirent *de;
        if (d == NULL) {
                ret = err_make(e, errno, "repair: open %s", sn->root);
                goto out;
        }
        while ((de = readdir(d)) != NULL) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, "l"))
                        continue;
                if (has(dirs, nd, de->d_name))
                        continue;
                cleanup_free char *p = path_join(sn->root, de->d_name);
                log_debug("snapshot", "repair removed directory %s", p);
                if (rm_rf(p, e) < 0) {
                        ret = -1;
                        goto out;
                }
        }
        /* links: keep the right one for each recorded dir, make missing ones */
        ldir = path_join(sn->root, "l");
        ld = opendir(ldir);
        if (ld == NULL) {
                ret = err_make(e, errno, "repair: open %s", ldir);
                goto out;
        }
        struct lnk *ls = xcalloc(nd + 1, sizeof(*ls));
        for (size_t i = 0; i < nd; i++) {
                link_id(dirs[i], ls[i].id);
                ls[i].dir = dirs[i];
        }
        qsort(ls, nd, sizeof(*ls), cmp_lnk);
        while ((de = readdir(ld)) != NULL) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                struct lnk key = {0};
                struct lnk *hit = NULL;
                if (strlen(de->d_name) == LINK_LEN) {
                        memcpy(key.id, de->d_name, LINK_LEN);
                        hit = bsearch(&key, ls, nd, sizeof(*ls), cmp_lnk);
                }
                char target[256] = {0};
                bool keep = false;
                if (hit && readlinkat(dirfd(ld), de->d_name, target, sizeof(target) - 1) > 0) {
                        cleanup_free char *want = link_target(hit->dir);
                        keep = strcmp(target, want) == 0;
                }
                if (!keep) {
                        log_debug("snapshot", "repair removed link %s/%s", ldir, de->d_name);
                        (void)unlinkat(dirfd(ld), de->d_name, 0);
                }
        }
        free(ls);
        for (size_t i = 0; i < nd && ret == 0; i++) {
                cleanup_free char *lp = link_path(sn, dirs[i]), *lt = link_target(dirs[i]);
                if (symlink(lt, lp) == 0)
                        log_debug("snapshot", "repair made link %s", lp);
                else if (errno != EEXIST)
                        ret = err_make(e, errno, "repair: link %s", lp);
        }
out:
        free(bad);
        free(keys);
        free(dirs);
        store_snaps_free(v, n);
        return ret < 0 ? err_wrap(e, "repair") : 0;
}

const struct snap_driver_ops snap_overlay2_ops = {
        .name = "overlay2",
        .init = ovl_init,
        .prepare = ovl_prepare,
        .commit = ovl_commit,
        .remove = ovl_remove,
        .stat = ovl_stat,
        .walk = ovl_walk,
        .usage = ovl_usage,
        .mounts = ovl_mounts,
        .fs_path = ovl_fs_path,
        .repair = ovl_repair,
        .close = ovl_close,
};
