/* Pull: resolve -> manifest (index -> platform) -> config -> layers.
 *
 * Layers download in parallel on up to max_concurrent_downloads threads;
 * the calling thread unpacks them in order, each as soon as it and every
 * layer below it are there: prepare an active snapshot on the parent chain
 * ID, unpack into it, commit it as the layer's chain ID. A layer whose chain
 * ID is already committed is not downloaded at all. Concurrent pulls of one
 * reference share a single pull (single-flight). On error the active
 * snapshot is removed and no image record is written; committed layers are
 * whole and stay until GC. */
#include <archive.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <string.h>

#include "image/image-internal.h"
#include "image/service-internal.h"
#include "image/unpack-internal.h"
#include "snapshot/snapshot.h"
#include "store/store.h"

enum layer_state { L_EXISTS, L_QUEUED, L_DOWNLOADING, L_DOWNLOADED };

struct pull {
        struct img_service *svc;
        struct reg_client *rc;
        const char *ref; /* normalised */
        img_progress_fn cb;
        void *cb_data;
        const struct img_manifest *m;
        char **diff_ids;
        char **chain;
        int n;
        enum layer_state *state;
        int next; /* next layer for a worker to take */
        pthread_mutex_t mu;
        pthread_cond_t cond;
        atomic_bool cancel;
        struct err err; /* the first failure; under mu */
};

struct layer_progress {
        struct pull *p;
        int i;
};

static void progress(struct pull *p, enum img_progress_state st, int i, uint64_t done, uint64_t total)
{
        if (!p->cb)
                return;
        struct img_progress ev = {
                .ref = p->ref,
                .state = st,
                .layer = i,
                .n_layers = p->n,
                .digest = i >= 0 ? p->m->layers[i].digest : NULL,
                .done = done,
                .total = total,
        };
        p->cb(p->cb_data, &ev);
}

static void download_progress(void *data, uint64_t done, uint64_t total)
{
        struct layer_progress *lp = data;
        pthread_mutex_lock(&lp->p->mu);
        progress(lp->p, IMG_PROGRESS_DOWNLOADING, lp->i, done, total);
        pthread_mutex_unlock(&lp->p->mu);
}

/* Record the first error and stop everything else. */
static void fail(struct pull *p, struct err *e)
{
        pthread_mutex_lock(&p->mu);
        if (!p->err.msg)
                err_move(&p->err, e);
        else
                err_clear(e);
        atomic_store(&p->cancel, true);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mu);
}

/* sha256 of the uncompressed layer, to check it against the config's
 * diff_id: a registry must not be able to plant content under the chain ID
 * of a layer it did not send. */
int img_layer_diff_id(const char *path, char **out, atomic_bool *cancel, struct err *e)
{
        struct archive *a = archive_read_new();
        if (!a)
                abort();
        /* only what layers use: no external decompressor programs on registry bytes */
        archive_read_support_filter_gzip(a);
        archive_read_support_filter_zstd(a);
        archive_read_support_format_raw(a);
        int ret = -1;
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
                abort();
        struct archive_entry *ent;
        if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK ||
            archive_read_next_header(a, &ent) != ARCHIVE_OK) {
                err_set(e, ERR_INVALID, "layer %s: %s", path, archive_error_string(a));
                goto out;
        }
        for (;;) {
                const void *buf;
                size_t n;
                la_int64_t off;
                int r = archive_read_data_block(a, &buf, &n, &off);
                if (r == ARCHIVE_EOF)
                        break;
                if (r != ARCHIVE_OK) {
                        err_set(e, ERR_INVALID, "decompress layer: %s", archive_error_string(a));
                        goto out;
                }
                EVP_DigestUpdate(md, buf, n);
                if (cancel && atomic_load(cancel)) {
                        err_set(e, ERR_CANCELLED, "cancelled");
                        goto out;
                }
        }
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int dn = 0;
        EVP_DigestFinal_ex(md, d, &dn);
        *out = img_digest_hex(d, dn);
        ret = 0;
out:
        EVP_MD_CTX_free(md);
        archive_read_free(a);
        return ret;
}

static void *download_worker(void *data)
{
        struct pull *p = data;
        for (;;) {
                pthread_mutex_lock(&p->mu);
                while (p->next < p->n && p->state[p->next] != L_QUEUED)
                        p->next++;
                if (p->next >= p->n || atomic_load(&p->cancel)) {
                        pthread_mutex_unlock(&p->mu);
                        return NULL;
                }
                int i = p->next++;
                p->state[i] = L_DOWNLOADING;
                pthread_mutex_unlock(&p->mu);

                const struct img_descriptor *d = &p->m->layers[i];
                struct layer_progress lp = {p, i};
                struct err e = ERR_INIT;
                if (reg_get_blob(p->rc, p->svc->cs, d->digest, d->size, download_progress, &lp, &e) < 0) {
                        err_wrap(&e, "layer %d (%s)", i, d->digest);
                        fail(p, &e);
                        return NULL;
                }
                cleanup_free char *path = img_content_path(p->svc->cs, d->digest);
                cleanup_free char *diff = NULL;
                if (img_layer_diff_id(path, &diff, &p->cancel, &e) < 0) {
                        err_wrap(&e, "layer %d (%s)", i, d->digest);
                        fail(p, &e);
                        return NULL;
                }
                if (strcmp(diff, p->diff_ids[i]) != 0) {
                        /* the compressed blob matched its digest, so it is the
                         * config that lies; drop the blob all the same */
                        (void)img_content_delete(p->svc->cs, d->digest, NULL);
                        err_set(&e, ERR_DATA_LOSS,
                                "layer %d (%s): uncompressed digest %s does not match diff_id %s", i,
                                d->digest, diff, p->diff_ids[i]);
                        fail(p, &e);
                        return NULL;
                }
                pthread_mutex_lock(&p->mu);
                p->state[i] = L_DOWNLOADED;
                progress(p, IMG_PROGRESS_DOWNLOADED, i, (uint64_t)d->size, (uint64_t)d->size);
                pthread_cond_broadcast(&p->cond);
                pthread_mutex_unlock(&p->mu);
        }
}

int img_layer_apply(struct img_service *svc, const char *parent, const char *chain, const char *blob,
                    const char *media_type, bool *created, struct err *e)
{
        struct snap *sn = svc->sn;
        char rnd[ID_LEN + 1];
        id_generate(rnd);
        cleanup_free char *active = xasprintf("%s%.12s-%s", IMG_EXTRACT_PREFIX, rnd, chain + 7);
        cleanup_free char *dir = NULL;
        if (created)
                *created = false;
        if (snap_prepare(sn, active, parent, NULL, e) < 0)
                return err_wrap(e, "prepare snapshot");
        dir = snap_fs_path(sn, active, e);
        if (!dir) {
                (void)snap_remove(sn, active, NULL);
                return err_wrap(e, "snapshot path");
        }
        struct img_unpack_stats stats = {0};
        if (img_unpack_layer(blob, media_type, dir, &stats, e) < 0) {
                (void)snap_remove(sn, active, NULL);
                return err_wrap(e, "unpack");
        }
        if (snap_commit(sn, chain, active, e) < 0) {
                (void)snap_remove(sn, active, NULL);
                if (err_is(e, ERR_EXISTS)) {
                        /* another pull committed the same layer first */
                        err_clear(e);
                        return 0;
                }
                return err_wrap(e, "commit snapshot %s", chain);
        }
        if (created)
                *created = true;
        log_debug("image", "layer unpacked chain=%s files=%llu bytes=%llu", chain,
                  (unsigned long long)stats.files, (unsigned long long)stats.bytes);
        return 0;
}

static int unpack_layer(struct pull *p, int i, struct err *e)
{
        const struct img_descriptor *d = &p->m->layers[i];
        cleanup_free char *blob = img_content_path(p->svc->cs, d->digest);
        if (img_layer_apply(p->svc, i > 0 ? p->chain[i - 1] : NULL, p->chain[i], blob, d->media_type, NULL,
                            e) < 0)
                return err_wrap(e, "layer %d (%s)", i, d->digest);
        return 0;
}

bool img_snapshot_committed(struct snap *sn, const char *key)
{
        struct store_snapshot st = {0};
        struct err e = ERR_INIT;
        bool ok = snap_stat(sn, key, &st, &e) == 0 && st.kind == STORE_SNAP_COMMITTED;
        store_snap_clear(&st);
        err_clear(&e);
        return ok;
}

/* Download and unpack every layer not yet committed. */
static int fetch_layers(struct pull *p, struct err *e)
{
        int needed = 0;
        for (int i = 0; i < p->n; i++) {
                if (img_snapshot_committed(p->svc->sn, p->chain[i])) {
                        p->state[i] = L_EXISTS;
                        progress(p, IMG_PROGRESS_EXISTS, i, 0, (uint64_t)p->m->layers[i].size);
                } else {
                        p->state[i] = L_QUEUED;
                        needed++;
                        progress(p, IMG_PROGRESS_WAITING, i, 0, (uint64_t)p->m->layers[i].size);
                }
        }
        int n_threads = p->svc->max_downloads < needed ? p->svc->max_downloads : needed;
        pthread_t *threads = xcalloc((size_t)n_threads + 1, sizeof(*threads));
        int started = 0;
        for (; started < n_threads; started++) {
                int r = pthread_create(&threads[started], NULL, download_worker, p);
                if (r != 0) {
                        struct err te = ERR_INIT;
                        err_make(&te, r, "start download thread");
                        fail(p, &te);
                        break;
                }
        }
        for (int i = 0; i < p->n && !atomic_load(&p->cancel); i++) {
                if (p->state[i] == L_EXISTS)
                        continue;
                pthread_mutex_lock(&p->mu);
                while (p->state[i] != L_DOWNLOADED && !p->err.msg)
                        pthread_cond_wait(&p->cond, &p->mu);
                bool failed = p->err.msg != NULL;
                if (!failed)
                        progress(p, IMG_PROGRESS_UNPACKING, i, 0, (uint64_t)p->m->layers[i].size);
                pthread_mutex_unlock(&p->mu);
                if (failed)
                        break;
                struct err ue = ERR_INIT;
                if (unpack_layer(p, i, &ue) < 0) {
                        fail(p, &ue);
                        break;
                }
                pthread_mutex_lock(&p->mu);
                progress(p, IMG_PROGRESS_UNPACKED, i, (uint64_t)p->m->layers[i].size,
                         (uint64_t)p->m->layers[i].size);
                pthread_mutex_unlock(&p->mu);
        }
        for (int t = 0; t < started; t++)
                pthread_join(threads[t], NULL);
        free(threads);
        if (p->err.msg) {
                err_move(e, &p->err);
                return -1;
        }
        return 0;
}

static int fetch_manifest(struct reg_client *rc, const char *reference, const char *want_digest, char **body,
                          size_t *len, char **digest, struct img_manifest *m, struct err *e)
{
        cleanup_free char *ct = NULL;
        if (reg_get_manifest(rc, reference, body, len, &ct, e) < 0)
                return -1;
        *digest = img_digest_of(*body, *len);
        if (want_digest && strcmp(*digest, want_digest) != 0)
                return err_set(e, ERR_DATA_LOSS, "manifest %s from %s does not match its digest: got %s",
                               want_digest, rc->registry, *digest);
        if (img_manifest_parse(*body, *len, ct, m, e) < 0)
                return err_wrap(e, "%s/%s%s%s", rc->registry, rc->repo,
                                str_has_prefix(reference, "sha256:") ? "@" : ":", reference);
        return 0;
}

static void push_unique(char ***v, const char *s)
{
        for (size_t i = 0; *v && (*v)[i]; i++)
                if (strcmp((*v)[i], s) == 0)
                        return;
        strv_push(v, s);
}

int pull_one(struct img_service *svc, const struct img_ref *ref, const char *refstr, const char *os,
             const char *arch, const char *variant, const struct img_auth *auth, img_progress_fn cb,
             void *cb_data, char **image_id, struct err *e)
{
        struct pull p = {.svc = svc, .ref = refstr, .cb = cb, .cb_data = cb_data};
        pthread_mutex_init(&p.mu, NULL);
        pthread_cond_init(&p.cond, NULL);
        atomic_init(&p.cancel, false);
        struct img_manifest top = {0}, plat = {0};
        struct img_config cfg = {0};
        cleanup_free char *top_body = NULL, *top_digest = NULL, *plat_body = NULL, *plat_digest = NULL;
        cleanup_free char *config_json = NULL;
        size_t top_len = 0, plat_len = 0, config_len = 0;
        cleanup_strv char **blobs = NULL;
        cleanup_free char *config_path = NULL, *name = NULL, *repo_digest = NULL;
        cleanup_strv char **names = NULL;
        int ret = -1;

        if (reg_client_new(ref, svc->regs, svc->n_regs, auth, &p.cancel, &p.rc, e) < 0)
                goto out;
        const char *reference = ref->digest ? ref->digest : ref->tag;
        if (fetch_manifest(p.rc, reference, ref->digest, &top_body, &top_len, &top_digest, &top, e) < 0)
                goto out;
        const struct img_manifest *m = &top;
        const char *manifest_digest = top_digest;
        if (top.kind == IMG_KIND_INDEX) {
                const struct img_descriptor *d;
                if (img_index_select(&top, os, arch, variant, &d, e) < 0)
                        goto out;
                if (fetch_manifest(p.rc, d->digest, d->digest, &plat_body, &plat_len, &plat_digest, &plat,
                                   e) < 0)
                        goto out;
                if (plat.kind != IMG_KIND_MANIFEST) {
                        err_set(e, ERR_INVALID, "index entry %s is not an image manifest", d->digest);
                        goto out;
                }
                m = &plat;
                manifest_digest = plat_digest;
                if (img_content_put(svc->cs, top_digest, top_body, top_len, e) < 0)
                        goto out;
                strv_push(&blobs, top_digest);
        }
        if (img_content_put(svc->cs, manifest_digest, m == &top ? top_body : plat_body,
                            m == &top ? top_len : plat_len, e) < 0)
                goto out;
        push_unique(&blobs, manifest_digest);
        p.m = m;
        p.n = (int)m->n_layers;

        /* config: small, verified like every blob */
        if (m->config.size > (int64_t)MANIFEST_MAX_BYTES) {
                err_set(e, ERR_INVALID, "config %s claims %" PRId64 " bytes (limit %u)", m->config.digest,
                        m->config.size, MANIFEST_MAX_BYTES);
                goto out;
        }
        if (reg_get_blob(p.rc, svc->cs, m->config.digest, m->config.size, NULL, NULL, e) < 0) {
                err_wrap(e, "config %s", m->config.digest);
                goto out;
        }
        push_unique(&blobs, m->config.digest);
        config_path = img_content_path(svc->cs, m->config.digest);
        if (file_read_all(config_path, &config_json, &config_len, MANIFEST_MAX_BYTES, e) < 0 ||
            img_config_parse(config_json, config_len, &cfg, e) < 0) {
                err_wrap(e, "config %s", m->config.digest);
                goto out;
        }
        if (strv_len(cfg.diff_ids) != m->n_layers) {
                err_set(e, ERR_INVALID, "config %s has %zu diff_ids but the manifest has %zu layers",
                        m->config.digest, strv_len(cfg.diff_ids), m->n_layers);
                goto out;
        }
        p.diff_ids = cfg.diff_ids;
        p.chain = img_chain_ids(cfg.diff_ids);
        p.state = xcalloc((size_t)p.n + 1, sizeof(*p.state));
        if (cb) {
                struct img_progress ev = {
                        .ref = refstr, .state = IMG_PROGRESS_RESOLVED, .layer = -1, .n_layers = p.n};
                cb(cb_data, &ev);
        }
        if (fetch_layers(&p, e) < 0)
                goto out;

        /* the record */
        uint64_t size = (uint64_t)m->config.size;
        for (size_t i = 0; i < m->n_layers; i++) {
                size += (uint64_t)m->layers[i].size;
                if (img_content_has(svc->cs, m->layers[i].digest))
                        push_unique(&blobs, m->layers[i].digest);
        }
        name = img_ref_name(ref);
        repo_digest = xasprintf("%s@%s", name, top_digest);
        /* An image already there keeps its names, blobs and creation time (the merge). */
        if (!ref->digest) {
                cleanup_free char *tagged = xasprintf("%s:%s", name, ref->tag);
                push_unique(&names, tagged);
        }
        push_unique(&names, repo_digest);
        struct store_image img = {
                .id = m->config.digest,
                .names = names,
                .manifest_digest = (char *)manifest_digest,
                .config_json = config_json,
                .chain_ids = p.chain,
                .blobs = blobs,
                .size = size,
                .created_ns = time_now_ns(),
        };
        if (img_index_put(&svc->idx, &img, 1, true, e) < 0) {
                err_wrap(e, "save image record");
                goto out;
        }
        *image_id = xstrdup(m->config.digest);
        ret = 0;
out:
        reg_client_free(p.rc);
        img_manifest_clear(&top);
        img_manifest_clear(&plat);
        img_config_clear(&cfg);
        strv_free(p.chain);
        free(p.state);
        err_clear(&p.err);
        pthread_mutex_destroy(&p.mu);
        pthread_cond_destroy(&p.cond);
        return ret;
}
