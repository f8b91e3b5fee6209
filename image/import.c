/* Import: an archive is spooled and hashed into a staging directory
 * (archive.c), its images chosen and checked whole (every blob against its
 * digest and size, every layer against its diff_id), and only then stored:
 * blobs linked into the content store, layers unpacked into snapshots,
 * records written in one transaction. Whatever this import added is undone
 * on an error after that point. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "image/archive-internal.h"
#include "image/image-internal.h"
#include "image/service-internal.h"
#include "snapshot/snapshot.h"
#include "store/store.h"

/* One image to import. */
struct cand {
        char *manifest; /* bytes */
        size_t manifest_len;
        char *manifest_digest;
        char *top_digest; /* of the index it came from, else the manifest's: the repo digest */
        char **names;     /* normalised "repo:tag" */
        char **extra;     /* index blobs to keep with the image */
        struct img_manifest m;
        struct img_config cfg;
        char *config_json;
        char **chain;
        bool secondary; /* another platform of an index imported with --all-platforms: no names */
};

static void cand_clear(struct cand *c)
{
        free(c->manifest);
        free(c->manifest_digest);
        free(c->top_digest);
        strv_free(c->names);
        strv_free(c->extra);
        img_manifest_clear(&c->m);
        img_config_clear(&c->cfg);
        free(c->config_json);
        strv_free(c->chain);
}

struct import {
        struct img_service *svc;
        const struct img_import_opts *o;
        const char *os, *arch, *variant;
        struct arc a;
        struct cand *v;
        size_t n;
        char **skipped; /* platforms left out, for the error */
        /* diff_id per layer digest, computed once */
        char **diff_keys;
        char **diff_vals;
};

void img_imported_free(struct img_imported *v, size_t n)
{
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].id);
                strv_free(v[i].names);
                free(v[i].manifest_digest);
        }
        free(v);
}

static void push_unique(char ***v, const char *s)
{
        for (size_t i = 0; *v && (*v)[i]; i++)
                if (strcmp((*v)[i], s) == 0)
                        return;
        strv_push(v, s);
}

static struct cand *cand_new(struct import *im)
{
        im->v = xrealloc(im->v, (im->n + 1) * sizeof(*im->v));
        struct cand *c = &im->v[im->n++];
        memset(c, 0, sizeof(*c));
        return c;
}

/* A blob of the OCI layout, checked against its descriptor. */
static const struct arc_entry *oci_blob(struct import *im, const struct img_descriptor *d, struct err *e)
{
        if (!img_digest_valid(d->digest)) {
                err_set(e, ERR_INVALID, "unsupported digest %s", d->digest);
                return NULL;
        }
        cleanup_free char *name = xasprintf("blobs/sha256/%s", d->digest + 7);
        const struct arc_entry *x = arc_find(&im->a, name);
        if (!x) {
                err_set(e, ERR_INVALID, "the archive has no blob %s", name);
                return NULL;
        }
        if (strcmp(x->digest, d->digest) != 0) {
                err_set(e, ERR_DATA_LOSS, "blob %s: its bytes hash to %s", name, x->digest);
                return NULL;
        }
        if (d->size >= 0 && x->size != d->size) {
                err_set(e, ERR_DATA_LOSS, "blob %s: %" PRId64 " bytes, the descriptor says %" PRId64, name,
                        x->size, d->size);
                return NULL;
        }
        return x;
}

static int add_name(char ***names, const char *ref, struct err *e)
{
        char *n = img_ref_normalize(ref, e);
        if (!n)
                return err_wrap(e, "image name \"%s\"", ref);
        push_unique(names, n);
        free(n);
        return 0;
}

/* org.opencontainers.image.ref.name is a whole reference when it has a
 * repository part, else only a tag (which names nothing without --name). */
static int oci_names(const struct arc_oci_ref *r, char ***names, struct err *e)
{
        if (r->image_name)
                return add_name(names, r->image_name, e);
        if (r->ref_name && strpbrk(r->ref_name, "/:"))
                return add_name(names, r->ref_name, e);
        return 0;
}

static bool platform_matches(struct import *im, const struct img_platform *p)
{
        if (im->o->all_platforms || !p->architecture)
                return true;
        struct img_manifest one = {.kind = IMG_KIND_INDEX, .n_manifests = 1};
        struct img_descriptor d = {
                .media_type = (char *)IMG_MT_OCI_MANIFEST, .digest = (char *)"", .platform = *p};
        one.manifests = &d;
        const struct img_descriptor *hit;
        return img_index_select(&one, im->os, im->arch, im->variant, &hit, NULL) == 0;
}

static void note_skipped(struct import *im, const struct img_platform *p)
{
        cleanup_free char *s =
                xasprintf("%s/%s%s%s", p->os ? p->os : "?", p->architecture ? p->architecture : "?",
                          p->variant ? "/" : "", p->variant ? p->variant : "");
        push_unique(&im->skipped, s);
}

static int oci_manifest(struct import *im, const struct img_descriptor *d, const char *top,
                        char *const *names, const char *index_digest, bool secondary, struct err *e)
{
        const struct arc_entry *x = oci_blob(im, d, e);
        if (!x)
                return -1;
        struct cand *c = cand_new(im);
        if (arc_read(&im->a, x->name, &c->manifest, &c->manifest_len, e) < 0)
                return -1;
        c->manifest_digest = xstrdup(d->digest);
        c->top_digest = xstrdup(top);
        c->names = names && !secondary ? strv_dup(names) : xcalloc(1, sizeof(char *));
        c->secondary = secondary;
        c->extra = xcalloc(1, sizeof(char *));
        if (index_digest)
                strv_push(&c->extra, index_digest);
        return 0;
}

static int collect_oci(struct import *im, struct err *e)
{
        cleanup_free char *layout = NULL, *index = NULL;
        size_t len = 0;
        if (arc_read(&im->a, "oci-layout", &layout, &len, e) < 0)
                return -1;
        yajl_val lv = json_parse(layout, len, "oci-layout", e);
        if (!lv)
                return -1;
        const char *ver = json_get_str(lv, "imageLayoutVersion");
        bool ok = ver && strcmp(ver, "1.0.0") == 0;
        yajl_tree_free(lv);
        if (!ok)
                return err_set(e, ERR_INVALID, "oci-layout: imageLayoutVersion is not 1.0.0");
        if (arc_read(&im->a, "index.json", &index, &len, e) < 0)
                return -1;
        struct arc_oci_ref *refs = NULL;
        size_t n_refs = 0;
        if (arc_oci_index_parse(index, len, &refs, &n_refs, e) < 0)
                return -1;
        int ret = 0;
        for (size_t i = 0; i < n_refs && ret == 0; i++) {
                const struct img_descriptor *d = &refs[i].d;
                cleanup_strv char **names = xcalloc(1, sizeof(char *));
                if (oci_names(&refs[i], &names, e) < 0) {
                        ret = -1;
                        break;
                }
                struct img_manifest probe = {0};
                bool is_index = strcmp(d->media_type, IMG_MT_OCI_INDEX) == 0 ||
                                strcmp(d->media_type, IMG_MT_DOCKER_LIST) == 0;
                if (!is_index) {
                        if (!platform_matches(im, &d->platform)) {
                                note_skipped(im, &d->platform);
                                continue;
                        }
                        ret = oci_manifest(im, d, d->digest, names, NULL, false, e);
                        continue;
                }
                const struct arc_entry *x = oci_blob(im, d, e);
                cleanup_free char *buf = NULL;
                if (!x || arc_read(&im->a, x->name, &buf, &len, e) < 0 ||
                    img_manifest_parse(buf, len, d->media_type, &probe, e) < 0) {
                        ret = -1;
                        break;
                }
                if (probe.kind != IMG_KIND_INDEX) {
                        img_manifest_clear(&probe);
                        ret = err_set(e, ERR_INVALID, "blob %s is not an index", d->digest);
                        break;
                }
                if (im->o->all_platforms) {
                        /* a name belongs to one image: the one for this host (or
                         * --platform); the other platforms are kept by id */
                        const struct img_descriptor *mine = NULL;
                        struct err se = ERR_INIT;
                        if (img_index_select(&probe, im->os, im->arch, im->variant, &mine, &se) < 0)
                                mine = probe.n_manifests ? &probe.manifests[0] : NULL;
                        err_clear(&se);
                        for (size_t k = 0; k < probe.n_manifests && ret == 0; k++) {
                                const struct img_descriptor *pd = &probe.manifests[k];
                                /* attestations of buildx are "unknown/unknown" */
                                if (pd->platform.os && strcmp(pd->platform.os, "unknown") == 0)
                                        continue;
                                ret = oci_manifest(im, pd, d->digest, names, d->digest, pd != mine, e);
                        }
                } else {
                        const struct img_descriptor *pd;
                        struct err se = ERR_INIT;
                        if (img_index_select(&probe, im->os, im->arch, im->variant, &pd, &se) == 0)
                                ret = oci_manifest(im, pd, d->digest, names, d->digest, false, e);
                        else
                                for (size_t k = 0; k < probe.n_manifests; k++)
                                        note_skipped(im, &probe.manifests[k].platform);
                        err_clear(&se);
                }
                img_manifest_clear(&probe);
        }
        arc_oci_refs_free(refs, n_refs);
        return ret;
}

static int collect_docker(struct import *im, struct err *e)
{
        cleanup_free char *buf = NULL;
        size_t len = 0;
        if (arc_read(&im->a, "manifest.json", &buf, &len, e) < 0)
                return -1;
        struct arc_docker_image *imgs = NULL;
        size_t n = 0;
        if (arc_docker_manifest_parse(buf, len, &imgs, &n, e) < 0)
                return -1;
        int ret = 0;
        for (size_t i = 0; i < n && ret == 0; i++) {
                const struct arc_entry *cfg = arc_find(&im->a, imgs[i].config);
                if (!cfg) {
                        ret = err_set(e, ERR_INVALID, "manifest.json[%zu]: the archive has no config %s", i,
                                      imgs[i].config);
                        break;
                }
                size_t nl = strv_len(imgs[i].layers);
                char **digests = xcalloc(nl + 1, sizeof(char *));
                int64_t *sizes = xcalloc(nl + 1, sizeof(int64_t));
                for (size_t k = 0; k < nl && ret == 0; k++) {
                        const struct arc_entry *l = arc_find(&im->a, imgs[i].layers[k]);
                        if (!l) {
                                ret = err_set(e, ERR_INVALID,
                                              "manifest.json[%zu]: the archive has no layer %s", i,
                                              imgs[i].layers[k]);
                                break;
                        }
                        digests[k] = l->digest;
                        sizes[k] = l->size;
                }
                if (ret == 0) {
                        struct cand *c = cand_new(im);
                        c->manifest = arc_docker_manifest_json(cfg->digest, cfg->size, digests, sizes, nl);
                        c->manifest_len = strlen(c->manifest);
                        c->manifest_digest = img_digest_of(c->manifest, c->manifest_len);
                        c->top_digest = xstrdup(c->manifest_digest);
                        c->names = xcalloc(1, sizeof(char *));
                        c->extra = xcalloc(1, sizeof(char *));
                        for (size_t k = 0; imgs[i].repo_tags[k] && ret == 0; k++)
                                ret = add_name(&c->names, imgs[i].repo_tags[k], e);
                }
                free(digests);
                free(sizes);
        }
        arc_docker_images_free(imgs, n);
        return ret;
}

/* A blob of a chosen image by digest: an OCI layout names blobs by their
 * digest, a docker-archive by any name (its digest is what was hashed). */
static const struct arc_entry *blob_of(struct import *im, const struct img_descriptor *d, struct err *e)
{
        cleanup_free char *name = xasprintf("blobs/sha256/%s", d->digest + 7);
        if (arc_find(&im->a, name))
                return oci_blob(im, d, e);
        for (size_t i = 0; i < im->a.n; i++) {
                const struct arc_entry *x = &im->a.v[i];
                if (!x->link && strcmp(x->digest, d->digest) == 0 && x->size == d->size)
                        return x;
        }
        err_set(e, ERR_INVALID, "the archive has no blob %s", d->digest);
        return NULL;
}

static const char *diff_id_of(struct import *im, const struct arc_entry *x, struct err *e)
{
        for (size_t i = 0; im->diff_keys && im->diff_keys[i]; i++)
                if (strcmp(im->diff_keys[i], x->digest) == 0)
                        return im->diff_vals[i];
        cleanup_free char *diff = NULL;
        if (img_layer_diff_id(x->path, &diff, NULL, e) < 0)
                return NULL;
        strv_push(&im->diff_keys, x->digest);
        strv_push(&im->diff_vals, diff);
        return im->diff_vals[strv_len(im->diff_vals) - 1];
}

/* Everything a candidate needs is in the archive and sound. */
static int check(struct import *im, struct cand *c, struct err *e)
{
        if (img_manifest_parse(c->manifest, c->manifest_len, NULL, &c->m, e) < 0)
                return err_wrap(e, "manifest %s", c->manifest_digest);
        if (c->m.kind != IMG_KIND_MANIFEST)
                return err_set(e, ERR_INVALID, "manifest %s is an index inside an index", c->manifest_digest);
        const struct arc_entry *cx = blob_of(im, &c->m.config, e);
        if (!cx)
                return err_wrap(e, "config of %s", c->manifest_digest);
        size_t len = 0;
        if (arc_read(&im->a, cx->name, &c->config_json, &len, e) < 0 ||
            img_config_parse(c->config_json, len, &c->cfg, e) < 0)
                return err_wrap(e, "config %s", c->m.config.digest);
        if (strv_len(c->cfg.diff_ids) != c->m.n_layers)
                return err_set(e, ERR_INVALID, "config %s has %zu diff_ids but the manifest has %zu layers",
                               c->m.config.digest, strv_len(c->cfg.diff_ids), c->m.n_layers);
        for (size_t i = 0; i < c->m.n_layers; i++) {
                const struct arc_entry *lx = blob_of(im, &c->m.layers[i], e);
                if (!lx)
                        return err_wrap(e, "layer %zu", i);
                const char *diff = diff_id_of(im, lx, e);
                if (!diff)
                        return err_wrap(e, "layer %zu (%s)", i, lx->name);
                if (strcmp(diff, c->cfg.diff_ids[i]) != 0)
                        return err_set(e, ERR_DATA_LOSS,
                                       "layer %zu (%s): uncompressed digest %s does not match diff_id %s", i,
                                       lx->name, diff, c->cfg.diff_ids[i]);
        }
        c->chain = img_chain_ids(c->cfg.diff_ids);
        if (im->o->name && !c->secondary) {
                strv_free(c->names);
                c->names = xcalloc(1, sizeof(char *));
                if (add_name(&c->names, im->o->name, e) < 0)
                        return -1;
        }
        return 0;
}

struct undo {
        char **blobs;
        char **snaps; /* in the order made: removed in reverse */
};

static int store_blob(struct import *im, struct undo *u, const char *digest, const struct arc_entry *x,
                      const char *buf, size_t len, struct err *e)
{
        struct img_content *cs = im->svc->cs;
        if (img_content_has(cs, digest))
                return 0;
        int r = x ? img_content_adopt(cs, digest, x->path, e) : img_content_put(cs, digest, buf, len, e);
        if (r < 0)
                return -1;
        strv_push(&u->blobs, digest);
        return 0;
}

static int store_cand(struct import *im, struct undo *u, struct cand *c, struct err *e)
{
        if (store_blob(im, u, c->manifest_digest, NULL, c->manifest, c->manifest_len, e) < 0)
                return -1;
        const struct arc_entry *x = blob_of(im, &c->m.config, e);
        if (!x || store_blob(im, u, c->m.config.digest, x, NULL, 0, e) < 0)
                return -1;
        for (size_t i = 0; c->extra[i]; i++) {
                struct img_descriptor d = {.digest = c->extra[i], .size = -1};
                if (!(x = blob_of(im, &d, e)) || store_blob(im, u, c->extra[i], x, NULL, 0, e) < 0)
                        return -1;
        }
        for (size_t i = 0; i < c->m.n_layers; i++) {
                const struct img_descriptor *d = &c->m.layers[i];
                if (!(x = blob_of(im, d, e)) || store_blob(im, u, d->digest, x, NULL, 0, e) < 0)
                        return -1;
                if (img_snapshot_committed(im->svc->sn, c->chain[i]))
                        continue;
                cleanup_free char *blob = img_content_path(im->svc->cs, d->digest);
                bool created = false;
                if (img_layer_apply(im->svc, i ? c->chain[i - 1] : NULL, c->chain[i], blob, d->media_type,
                                    &created, e) < 0)
                        return err_wrap(e, "layer %zu (%s)", i, d->digest);
                if (created)
                        strv_push(&u->snaps, c->chain[i]);
        }
        return 0;
}

/* The record of one image, owning its strings; an image already there
 * keeps its names, blobs and creation time (img_index_put merges). */
static void record(struct cand *c, struct store_image *out)
{
        char **names = xcalloc(1, sizeof(char *));
        char **blobs = NULL;
        strv_push(&blobs, c->manifest_digest);
        push_unique(&blobs, c->m.config.digest);
        for (size_t i = 0; c->extra[i]; i++)
                push_unique(&blobs, c->extra[i]);
        uint64_t size = (uint64_t)c->m.config.size;
        for (size_t i = 0; i < c->m.n_layers; i++) {
                push_unique(&blobs, c->m.layers[i].digest);
                size += (uint64_t)c->m.layers[i].size;
        }
        for (size_t i = 0; c->names[i]; i++) {
                push_unique(&names, c->names[i]);
                struct img_ref ref;
                if (img_ref_parse(c->names[i], &ref, NULL) == 0) {
                        cleanup_free char *base = img_ref_name(&ref);
                        cleanup_free char *rd = xasprintf("%s@%s", base, c->top_digest);
                        push_unique(&names, rd);
                        img_ref_clear(&ref);
                }
        }
        *out = (struct store_image){
                .id = xstrdup(c->m.config.digest),
                .names = names,
                .manifest_digest = xstrdup(c->manifest_digest),
                .config_json = xstrdup(c->config_json),
                .chain_ids = strv_dup(c->chain ? c->chain : (char *[]){NULL}),
                .blobs = blobs,
                .size = size,
                .created_ns = time_now_ns(),
        };
}

/* What this import added goes with the next collection, which runs as soon
 * as no pull or import holds the service (at the latest when this one lets
 * go): a blob or layer another import took up meanwhile is kept, since GC
 * goes by every image record. */
static void undo(struct import *im, struct undo *u)
{
        if (u->blobs || u->snaps)
                img_service_gc_later(im->svc);
}

static int import_staged(struct import *im, struct img_imported **out, size_t *n_out, struct err *e)
{
        bool oci = arc_find(&im->a, "index.json") != NULL;
        if (!oci && !arc_find(&im->a, "manifest.json"))
                return err_set(
                        e, ERR_INVALID,
                        "neither an OCI image layout (index.json) nor a docker-archive (manifest.json)");
        /* a blob named by a digest it does not have is a corrupt archive, referenced or not */
        for (size_t i = 0; i < im->a.n; i++) {
                const struct arc_entry *x = &im->a.v[i];
                if (!x->link && str_has_prefix(x->name, "blobs/sha256/") &&
                    strcmp(x->name + strlen("blobs/sha256/"), x->digest + 7) != 0)
                        return err_set(e, ERR_DATA_LOSS, "blob %s: its bytes hash to %s", x->name, x->digest);
        }
        if ((oci ? collect_oci(im, e) : collect_docker(im, e)) < 0)
                return -1;
        if (im->n == 0) {
                cleanup_free char *have = NULL;
                struct sbuf b = {0};
                for (size_t i = 0; im->skipped && im->skipped[i]; i++)
                        sbuf_printf(&b, "%s%s", i ? ", " : "", im->skipped[i]);
                have = sbuf_steal(&b);
                return err_set(e, ERR_NOT_FOUND, "no image for %s/%s%s%s in the archive%s%s%s", im->os,
                               im->arch, im->variant ? "/" : "", im->variant ? im->variant : "",
                               *have ? " (it has " : "", have, *have ? ")" : "");
        }
        for (size_t i = 0; i < im->n; i++)
                if (check(im, &im->v[i], e) < 0)
                        return -1;
        const struct cand *named = NULL;
        for (size_t i = 0; im->o->name && i < im->n; i++) {
                if (im->v[i].secondary)
                        continue;
                if (named && strcmp(im->v[i].m.config.digest, named->m.config.digest) != 0)
                        return err_set(e, ERR_INVALID, "a name names one image; the archive has %zu", im->n);
                named = &im->v[i];
        }

        struct undo u = {0};
        int ret = 0;
        for (size_t i = 0; i < im->n && ret == 0; i++)
                ret = store_cand(im, &u, &im->v[i], e);
        if (ret == 0) {
                /* all records in one transaction */
                struct store_image *recs = xcalloc(im->n, sizeof(*recs));
                for (size_t i = 0; i < im->n; i++)
                        record(&im->v[i], &recs[i]);
                ret = img_index_put(&im->svc->idx, recs, im->n, true, e);
                if (ret < 0)
                        err_wrap(e, "save image records");
                else
                        img_usage_kick(im->svc);
                for (size_t i = 0; i < im->n; i++)
                        store_image_clear(&recs[i]);
                free(recs);
        }
        if (ret < 0)
                undo(im, &u);
        strv_free(u.blobs);
        strv_free(u.snaps);
        if (ret < 0)
                return -1;
        struct img_imported *v = xcalloc(im->n, sizeof(*v));
        size_t k = 0;
        for (size_t i = 0; i < im->n; i++) {
                struct store_image si = {0};
                struct err ge = ERR_INIT;
                if (img_index_get(&im->svc->idx, im->v[i].m.config.digest, &si, &ge) < 0) {
                        err_clear(&ge);
                        continue;
                }
                v[k].id = xstrdup(si.id);
                v[k].names = strv_dup(si.names ? si.names : (char *[]){NULL});
                v[k].manifest_digest = xstrdup(im->v[i].manifest_digest);
                k++;
                store_image_clear(&si);
        }
        *out = v;
        *n_out = k;
        return 0;
}

int img_import(struct img_service *svc, img_read_fn rd, void *rd_data, const struct img_import_opts *o,
               struct img_imported **out, size_t *n, struct err *e)
{
        struct import im = {.svc = svc, .o = o};
        *out = NULL;
        *n = 0;
        if (o->os) {
                im.os = o->os;
                im.arch = o->arch;
                im.variant = o->variant;
        } else {
                img_host_platform(&im.os, &im.arch, &im.variant);
        }
        cleanup_free char *base = path_join(svc->root, "import");
        if (mkdir_p(base, 0700, e) < 0)
                return err_wrap(e, "import staging");
        char rnd[ID_LEN + 1];
        id_generate(rnd);
        cleanup_free char *dir = xasprintf("%s/%.16s", base, rnd);
        img_service_hold(svc);
        int64_t t0 = time_mono_ns();
        int ret = arc_scan(dir, rd, rd_data, &im.a, e);
        if (ret == 0)
                ret = import_staged(&im, out, n, e);
        if (ret == 0)
                log_info("image", "imported images=%zu entries=%zu ms=%lld", *n, im.a.n,
                         (long long)((time_mono_ns() - t0) / 1000000));
        arc_clear(&im.a);
        for (size_t i = 0; i < im.n; i++)
                cand_clear(&im.v[i]);
        free(im.v);
        strv_free(im.skipped);
        strv_free(im.diff_keys);
        strv_free(im.diff_vals);
        img_service_release(svc);
        return ret < 0 ? err_wrap(e, "import") : 0;
}
