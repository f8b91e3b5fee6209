/* The image service: single-flight pulls, list / status / remove, file
 * system usage and garbage collection of blobs and snapshots. */
#include <errno.h>
#include <fcntl.h>
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
        if (img_content_open(root, &svc->cs, e) < 0 || img_index_open(&svc->idx, st, e) < 0) {
                img_service_free(svc);
                return -1;
        }
        /* staging directories of imports a crash interrupted */
        cleanup_free char *staging = path_join(root, "import");
        (void)rm_rf(staging, NULL);
        img_usage_start(svc);
        *out = svc;
        return 0;
}

void img_service_free(struct img_service *svc)
{
        if (!svc)
                return;
        img_usage_stop(svc);
        img_index_close(&svc->idx);
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
                if (r == 0)
                        img_usage_kick(svc);
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
        if (out && img_index_get(&svc->idx, id, out, e) < 0)
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
        (void)e;
        img_index_list(&svc->idx, out, n);
        return 0;
}

void img_each(struct img_service *svc, img_each_fn fn, void *arg)
{
        img_index_each(&svc->idx, fn, arg);
}

size_t img_count(struct img_service *svc)
{
        return img_index_count(&svc->idx);
}

static bool copy_out(const struct store_image *img, const char *user, void *arg)
{
        (void)user;
        struct store_image *out = arg;
        *out = *img;
        out->id = xstrdup(img->id);
        out->names = strv_dup(img->names ? img->names : (char *[]){NULL});
        out->manifest_digest = xstrdup(img->manifest_digest);
        out->config_json = xstrdup(img->config_json);
        out->chain_ids = img->chain_ids ? strv_dup(img->chain_ids) : NULL;
        out->blobs = img->blobs ? strv_dup(img->blobs) : NULL;
        return true;
}

int img_status(struct img_service *svc, const char *what, struct store_image *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        return img_index_resolve(&svc->idx, what, copy_out, out, NULL, e);
}

int img_status_with(struct img_service *svc, const char *what, img_each_fn fn, void *arg, struct err *e)
{
        return img_index_resolve(&svc->idx, what, fn, arg, NULL, e);
}

int img_remove(struct img_service *svc, const char *what, struct err *e)
{
        cleanup_free char *name = NULL;
        struct store_image img = {0};
        if (img_index_resolve(&svc->idx, what, copy_out, &img, &name, e) < 0)
                return -1;
        int ret = 0;
        bool delete = !name;
        if (name) {
                ret = img_index_remove_name(&svc->idx, name, e);
                /* No tag left: the image goes, with its repo digests (as docker rmi). */
                bool tag_left = false;
                for (size_t i = 0; img.names && img.names[i]; i++)
                        if (strcmp(img.names[i], name) != 0 && !strchr(img.names[i], '@'))
                                tag_left = true;
                delete = ret == 0 && !tag_left;
        }
        if (delete)
                ret = img_index_delete(&svc->idx, img.id, e);
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

struct snaps {
        struct store_snapshot *v;
        size_t n, cap;
};

static int collect_snap(const struct store_snapshot *s, void *arg)
{
        struct snaps *c = arg;
        if (c->n == c->cap) {
                c->cap = c->cap ? c->cap * 2 : 64;
                c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
        }
        c->v[c->n++] = (struct store_snapshot){
                .key = xstrdup(s->key), .parent = xstrdup(s->parent), .kind = s->kind};
        return 0;
}

static int gc_snapshots(struct img_service *svc, char *const *chains, struct img_gc_stats *st, struct err *e)
{
        struct snaps c = {0};
        if (snap_walk(svc->sn, collect_snap, &c, e) < 0) {
                store_snaps_free(c.v, c.n);
                return -1;
        }
        struct store_snapshot *v = c.v;
        size_t n = c.n;
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

/* What the images reference: the GC keeps these. */
struct refs {
        char **chains, **blobs;
};

static bool collect_refs(const struct store_image *img, const char *user, void *arg)
{
        (void)user;
        struct refs *r = arg;
        for (size_t k = 0; img->chain_ids && img->chain_ids[k]; k++)
                strv_push(&r->chains, img->chain_ids[k]);
        for (size_t k = 0; img->blobs && img->blobs[k]; k++)
                strv_push(&r->blobs, img->blobs[k]);
        return true;
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

        struct refs r = {0};
        img_index_each(&svc->idx, collect_refs, &r);
        int ret = gc_snapshots(svc, r.chains, st, e);
        if (ret == 0)
                ret = gc_blobs(svc, r.blobs, st, e);
        strv_free(r.chains);
        strv_free(r.blobs);
        if (st->blobs_removed || st->snapshots_removed)
                img_usage_kick(svc);
        pthread_mutex_lock(&svc->mu);
        svc->gc_running = false;
        pthread_cond_broadcast(&svc->gc_cond);
        pthread_mutex_unlock(&svc->mu);
        if (ret < 0)
                return err_wrap(e, "image gc");
        return 0;
}
