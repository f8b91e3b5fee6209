/* The image service: single-flight pulls, list / status / remove, file
 * system usage and garbage collection of blobs and snapshots. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <string.h>
#include <sys/stat.h>

#include "image/image-internal.h"
#include "image/service-internal.h"
#include "snapshot/snapshot.h"
#include "store/store.h"

int img_service_new(const char *root, const struct img_registry_conf *regs, size_t n_regs,
                    int max_concurrent_downloads, struct store *st, struct snap *sn, struct img_service **out,
                    struct err *e)
{
        struct img_service *svc = xzalloc(sizeof(*svc));
        svc->root = xstrdup(root);
        svc->st = st;
        svc->sn = sn;
        svc->max_downloads = max_concurrent_downloads > 0 ? max_concurrent_downloads : 3;
        pthread_mutex_init(&svc->mu, NULL);
        pthread_cond_init(&svc->gc_cond, NULL);
        svc->regs = xcalloc(n_regs + 1, sizeof(*svc->regs));
        for (size_t i = 0; i < n_regs; i++) {
                svc->regs[i].host = xstrdup(regs[i].host);
                svc->regs[i].mirrors = regs[i].mirrors ? strv_dup(regs[i].mirrors) : NULL;
                svc->regs[i].insecure = regs[i].insecure;
                svc->regs[i].tls = regs[i].tls;
        }
        svc->n_regs = n_regs;
        if (img_content_open(root, &svc->cs, e) < 0) {
                img_service_free(svc);
                return -1;
        }
        /* staging directories of imports a crash interrupted */
        cleanup_free char *staging = path_join(root, "import");
        (void)rm_rf(staging, NULL);
        *out = svc;
        return 0;
}

void img_service_free(struct img_service *svc)
{
        if (!svc)
                return;
        for (size_t i = 0; i < svc->n_regs; i++) {
                free((char *)svc->regs[i].host);
                strv_free(svc->regs[i].mirrors);
        }
        free(svc->regs);
        img_content_free(svc->cs);
        pthread_mutex_destroy(&svc->mu);
        pthread_cond_destroy(&svc->gc_cond);
        free(svc->root);
        free(svc);
}

/* ---------- pull: single flight ---------- */

static void inflight_unref(struct inflight *f)
{
        if (--f->users > 0)
                return;
        free(f->key);
        err_clear(&f->err);
        free(f->image_id);
        pthread_cond_destroy(&f->cond);
        free(f);
}

int img_pull_platform(struct img_service *svc, const char *refs, const char *os, const char *arch,
                      const char *variant, const struct img_auth *auth, img_progress_fn cb, void *cb_data,
                      struct store_image *out, struct err *e)
{
        struct img_ref ref;
        if (img_ref_parse(refs, &ref, e) < 0)
                return -1;
        cleanup_free char *refstr = img_ref_string(&ref);
        cleanup_free char *key = xasprintf("%s|%s/%s/%s", refstr, os, arch, variant ? variant : "");

        pthread_mutex_lock(&svc->mu);
        struct inflight *f = svc->inflight;
        while (f && strcmp(f->key, key) != 0)
                f = f->next;
        bool leader = !f;
        if (leader) {
                f = xzalloc(sizeof(*f));
                f->key = xstrdup(key);
                pthread_cond_init(&f->cond, NULL);
                f->next = svc->inflight;
                svc->inflight = f;
                while (svc->gc_running)
                        pthread_cond_wait(&svc->gc_cond, &svc->mu);
                svc->pulls++;
        }
        f->users++;
        pthread_mutex_unlock(&svc->mu);

        bool run_gc = false;
        if (leader) {
                struct err pe = ERR_INIT;
                char *id = NULL;
                int r = pull_one(svc, &ref, refstr, os, arch, variant, auth, cb, cb_data, &id, &pe);
                pthread_mutex_lock(&svc->mu);
                if (r < 0) {
                        err_wrap(&pe, "pull %s", refstr);
                        err_move(&f->err, &pe);
                }
                f->image_id = id;
                f->done = true;
                for (struct inflight **pp = &svc->inflight; *pp; pp = &(*pp)->next) {
                        if (*pp == f) {
                                *pp = f->next;
                                break;
                        }
                }
                svc->pulls--;
                run_gc = svc->pulls == 0 && svc->gc_pending;
                pthread_cond_broadcast(&f->cond);
        } else {
                pthread_mutex_lock(&svc->mu);
                while (!f->done)
                        pthread_cond_wait(&f->cond, &svc->mu);
        }
        int ret = 0;
        cleanup_free char *id = xstrdup(f->image_id);
        if (f->err.msg) {
                ret = err_set(e, f->err.kind, "%s", f->err.msg);
                if (e)
                        e->errnum = f->err.errnum;
        }
        inflight_unref(f);
        pthread_mutex_unlock(&svc->mu);
        img_ref_clear(&ref);

        if (run_gc) {
                struct img_gc_stats st;
                struct err ge = ERR_INIT;
                if (img_gc(svc, &st, &ge) < 0)
                        log_debug("image", "deferred gc failed: %s", ge.msg);
                err_clear(&ge);
        }
        if (ret < 0)
                return ret;
        if (out && store_image_get(svc->st, id, out, e) < 0)
                return err_wrap(e, "pull %s", refs);
        return 0;
}

int img_pull(struct img_service *svc, const char *ref, const struct img_auth *auth, img_progress_fn cb,
             void *cb_data, struct store_image *out, struct err *e)
{
        const char *os, *arch, *variant;
        img_host_platform(&os, &arch, &variant);
        return img_pull_platform(svc, ref, os, arch, variant, auth, cb, cb_data, out, e);
}

void img_service_hold(struct img_service *svc)
{
        pthread_mutex_lock(&svc->mu);
        while (svc->gc_running)
                pthread_cond_wait(&svc->gc_cond, &svc->mu);
        svc->pulls++;
        pthread_mutex_unlock(&svc->mu);
}

void img_service_release(struct img_service *svc)
{
        pthread_mutex_lock(&svc->mu);
        svc->pulls--;
        bool run_gc = svc->pulls == 0 && svc->gc_pending;
        pthread_mutex_unlock(&svc->mu);
        if (run_gc) {
                struct img_gc_stats st;
                struct err ge = ERR_INIT;
                if (img_gc(svc, &st, &ge) < 0)
                        log_debug("image", "deferred gc failed: %s", ge.msg);
                err_clear(&ge);
        }
}

void img_service_gc_later(struct img_service *svc)
{
        pthread_mutex_lock(&svc->mu);
        svc->gc_pending = true;
        pthread_mutex_unlock(&svc->mu);
}

/* ---------- list / status / remove ---------- */

int img_list(struct img_service *svc, struct store_image **out, size_t *n, struct err *e)
{
        return store_image_list(svc->st, out, n, e);
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

/* *name is set (caller frees) when `what` matched a name rather than an id. */
static int resolve(struct img_service *svc, const char *what, struct store_image *out, char **name,
                   struct err *e)
{
        struct err le = ERR_INIT;
        *name = NULL;
        if (!what || !*what)
                return err_set(e, ERR_INVALID, "empty image reference");
        const char *hex = str_has_prefix(what, "sha256:") ? what + 7 : what;
        if (all_hex(hex, 64, 64)) {
                cleanup_free char *id = xasprintf("sha256:%s", hex);
                if (store_image_get(svc->st, id, out, &le) == 0)
                        return 0;
                if (!err_is(&le, ERR_NOT_FOUND)) {
                        err_move(e, &le);
                        return -1;
                }
                err_clear(&le);
        }
        struct img_ref ref;
        if (img_ref_parse(what, &ref, &le) == 0) {
                cleanup_free char *n = NULL;
                if (ref.digest) {
                        cleanup_free char *base = img_ref_name(&ref);
                        n = xasprintf("%s@%s", base, ref.digest);
                } else {
                        n = img_ref_string(&ref);
                }
                img_ref_clear(&ref);
                if (store_image_find_name(svc->st, n, out, &le) == 0) {
                        *name = steal_ptr(&n);
                        return 0;
                }
                if (!err_is(&le, ERR_NOT_FOUND)) {
                        err_move(e, &le);
                        return -1;
                }
        }
        err_clear(&le);
        /* a bare digest: a repo digest of some image */
        struct store_image *all = NULL;
        size_t n_all = 0;
        if (store_image_list(svc->st, &all, &n_all, e) < 0)
                return -1;
        int ret = 1;
        if (img_digest_valid(what)) {
                cleanup_free char *suffix = xasprintf("@%s", what);
                for (size_t i = 0; i < n_all && ret == 1; i++)
                        for (size_t k = 0; all[i].names && all[i].names[k]; k++)
                                if (str_has_suffix(all[i].names[k], suffix)) {
                                        *out = all[i];
                                        memset(&all[i], 0, sizeof(all[i]));
                                        ret = 0;
                                        break;
                                }
        }
        /* a unique prefix of an id */
        if (ret == 1 && all_hex(hex, 1, 63)) {
                char **ids = xcalloc(n_all + 1, sizeof(char *));
                for (size_t i = 0; i < n_all; i++)
                        ids[i] = all[i].id + (str_has_prefix(all[i].id, "sha256:") ? 7 : 0);
                const char *hit = NULL;
                if (id_resolve_prefix(hex, ids, n_all, &hit, &le) == 0) {
                        for (size_t i = 0; i < n_all; i++)
                                if (ids[i] == hit) {
                                        *out = all[i];
                                        memset(&all[i], 0, sizeof(all[i]));
                                        ret = 0;
                                }
                } else if (err_is(&le, ERR_INVALID)) {
                        err_move(e, &le);
                        err_wrap(e, "image \"%s\"", what);
                        ret = -1;
                }
                err_clear(&le);
                free(ids);
        }
        store_images_free(all, n_all);
        if (ret == 1)
                return err_set(e, ERR_NOT_FOUND, "image \"%s\" not found", what);
        return ret;
}

int img_status(struct img_service *svc, const char *what, struct store_image *out, struct err *e)
{
        cleanup_free char *name = NULL;
        memset(out, 0, sizeof(*out));
        return resolve(svc, what, out, &name, e);
}

int img_remove(struct img_service *svc, const char *what, struct err *e)
{
        cleanup_free char *name = NULL;
        struct store_image img = {0};
        if (resolve(svc, what, &img, &name, e) < 0)
                return -1;
        int ret = 0;
        bool delete = !name;
        if (name) {
                ret = store_image_remove_name(svc->st, name, e);
                /* No tag left: the image goes, with its repo digests (as docker rmi). */
                bool tag_left = false;
                for (size_t i = 0; img.names && img.names[i]; i++)
                        if (strcmp(img.names[i], name) != 0 && !strchr(img.names[i], '@'))
                                tag_left = true;
                delete = ret == 0 && !tag_left;
        }
        if (delete)
                ret = store_image_delete(svc->st, img.id, e);
        store_image_clear(&img);
        if (ret < 0)
                return err_wrap(e, "remove image \"%s\"", what);
        if (delete) {
                struct img_gc_stats st;
                struct err ge = ERR_INIT;
                if (img_gc(svc, &st, &ge) < 0)
                        log_debug("image", "gc after remove failed: %s", ge.msg);
                err_clear(&ge);
        }
        return 0;
}

int img_image_config(const struct store_image *img, struct img_config *out, struct err *e)
{
        if (!img->config_json)
                return err_set(e, ERR_NOT_FOUND, "image %s has no config", img->id);
        return img_config_parse(img->config_json, strlen(img->config_json), out, e);
}

/* ---------- usage ---------- */

static __thread uint64_t walk_bytes, walk_inodes;

static int walk_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)path, (void)flag, (void)ftw;
        walk_bytes += (uint64_t)st->st_blocks * 512;
        walk_inodes++;
        return 0;
}

static void du(const char *path, uint64_t *bytes, uint64_t *inodes)
{
        walk_bytes = walk_inodes = 0;
        (void)nftw(path, walk_cb, 32, FTW_PHYS | FTW_MOUNT);
        *bytes = walk_bytes;
        *inodes = walk_inodes;
}

int img_fs_usage(struct img_service *svc, struct img_fs_usage *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        out->mountpoint = svc->root;
        cleanup_free char *blobs = path_join(svc->root, "blobs");
        du(blobs, &out->content_bytes, &out->content_inodes);
        if (snap_total_usage(svc->sn, &out->snapshot_bytes, &out->snapshot_inodes, e) < 0)
                return err_wrap(e, "snapshot usage");
        out->used_bytes = out->content_bytes + out->snapshot_bytes;
        out->inodes_used = out->content_inodes + out->snapshot_inodes;
        return 0;
}

/* ---------- garbage collection ---------- */

static bool strv_has(char *const *v, const char *s)
{
        for (size_t i = 0; v && v[i]; i++)
                if (strcmp(v[i], s) == 0)
                        return true;
        return false;
}

static ssize_t snap_index(const struct store_snapshot *v, size_t n, const char *key)
{
        for (size_t i = 0; key && i < n; i++)
                if (strcmp(v[i].key, key) == 0)
                        return (ssize_t)i;
        return -1;
}

static int gc_snapshots(struct img_service *svc, char *const *chains, struct img_gc_stats *st, struct err *e)
{
        struct store_snapshot *v = NULL;
        size_t n = 0;
        if (store_snap_list(svc->st, &v, &n, e) < 0)
                return -1;
        bool *keep = xcalloc(n + 1, sizeof(bool));
        int *depth = xcalloc(n + 1, sizeof(int));
        for (size_t i = 0; i < n; i++) {
                if (v[i].kind == STORE_SNAP_COMMITTED && !strv_has(chains, v[i].key))
                        continue;
                if (v[i].kind != STORE_SNAP_COMMITTED && str_has_prefix(v[i].key, IMG_EXTRACT_PREFIX))
                        continue; /* left by an interrupted pull: no pull runs now */
                /* kept: it and every ancestor */
                for (ssize_t k = (ssize_t)i; k >= 0 && !keep[k]; k = snap_index(v, n, v[k].parent))
                        keep[k] = true;
        }
        for (size_t i = 0; i < n; i++)
                for (ssize_t k = snap_index(v, n, v[i].parent); k >= 0 && depth[i] < (int)n;
                     k = snap_index(v, n, v[k].parent))
                        depth[i]++;
        /* children before parents */
        int ret = 0;
        for (int d = (int)n; d >= 0; d--) {
                for (size_t i = 0; i < n; i++) {
                        if (keep[i] || depth[i] != d)
                                continue;
                        struct err re = ERR_INIT;
                        if (snap_remove(svc->sn, v[i].key, &re) < 0) {
                                log_debug("image", "gc: remove snapshot key=%s: %s", v[i].key, re.msg);
                                err_clear(&re);
                                continue;
                        }
                        st->snapshots_removed++;
                }
        }
        free(keep);
        free(depth);
        store_snaps_free(v, n);
        return ret;
}

static int gc_blobs(struct img_service *svc, char *const *blobs, struct img_gc_stats *st, struct err *e)
{
        cleanup_free char *dir = xasprintf("%s/blobs/sha256", svc->root);
        cleanup_dir DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : err_make(e, errno, "open %s", dir);
        struct dirent *de;
        int64_t now = time_now_ns();
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                struct stat sb;
                if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                bool drop;
                if (str_has_suffix(de->d_name, ".partial")) {
                        /* kept an hour for a retried pull to resume */
                        drop = now - (int64_t)sb.st_mtime * 1000000000LL > 3600LL * 1000000000LL;
                } else {
                        cleanup_free char *digest = xasprintf("sha256:%s", de->d_name);
                        drop = !strv_has(blobs, digest);
                }
                if (!drop)
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) == 0) {
                        st->blobs_removed++;
                        st->bytes_freed += (uint64_t)sb.st_size;
                }
        }
        return 0;
}

int img_gc(struct img_service *svc, struct img_gc_stats *st, struct err *e)
{
        memset(st, 0, sizeof(*st));
        pthread_mutex_lock(&svc->mu);
        if (svc->pulls > 0 || svc->gc_running) {
                svc->gc_pending = true;
                st->deferred = true;
                pthread_mutex_unlock(&svc->mu);
                return 0;
        }
        svc->gc_running = true;
        svc->gc_pending = false;
        pthread_mutex_unlock(&svc->mu);

        struct store_image *imgs = NULL;
        size_t n = 0;
        cleanup_strv char **chains = NULL;
        cleanup_strv char **blobs = NULL;
        int ret = store_image_list(svc->st, &imgs, &n, e);
        if (ret == 0) {
                for (size_t i = 0; i < n; i++) {
                        for (size_t k = 0; imgs[i].chain_ids && imgs[i].chain_ids[k]; k++)
                                strv_push(&chains, imgs[i].chain_ids[k]);
                        for (size_t k = 0; imgs[i].blobs && imgs[i].blobs[k]; k++)
                                strv_push(&blobs, imgs[i].blobs[k]);
                }
                store_images_free(imgs, n);
                ret = gc_snapshots(svc, chains, st, e);
                if (ret == 0)
                        ret = gc_blobs(svc, blobs, st, e);
        }
        pthread_mutex_lock(&svc->mu);
        svc->gc_running = false;
        pthread_cond_broadcast(&svc->gc_cond);
        pthread_mutex_unlock(&svc->mu);
        if (ret < 0)
                return err_wrap(e, "image gc");
        return 0;
}
