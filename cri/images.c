/* ImageService: PullImage, ListImages, StreamImages, ImageStatus,
 * RemoveImage, ImageFsInfo, over image/ (registry, content store, pull)
 * and snapshot/ (overlay2). */
#include <ctype.h>
#include <string.h>

#include "config/config.h"
#include "corral/v1/corral.pb-c.h"
#include "cri/cri-internal.h"
#include "image/image.h"
#include "snapshot/snapshot.h"
#include "store/store.h"

int cri_images_init(struct cri_daemon *d, struct err *e)
{
        const struct cfg *cfg = d->cfg;
        if (snap_open(cfg->root, "overlay2", d->store, &d->snaps, e) < 0)
                return err_wrap(e, "snapshotter");
        struct img_registry_conf *regs = xcalloc(cfg->n_registries + 1, sizeof(*regs));
        for (size_t i = 0; i < cfg->n_registries; i++) {
                regs[i].host = cfg->registries[i].host;
                regs[i].mirrors = cfg->registries[i].mirrors;
                regs[i].insecure = cfg->registries[i].insecure;
        }
        int r = img_service_new(cfg->root, regs, cfg->n_registries, (int)cfg->image.max_concurrent_downloads,
                                d->store, d->snaps, &d->images, e);
        free(regs);
        return r < 0 ? err_wrap(e, "image service") : 0;
}

void cri_images_fini(struct cri_daemon *d)
{
        img_service_free(d->images);
        d->images = NULL;
        snap_close(d->snaps);
        d->snaps = NULL;
}

/* "1000", "1000:1000" -> uid; anything else is a user name. */
static void image_user(const char *user, Runtime__V1__Image *img)
{
        if (user == NULL || *user == '\0')
                return;
        size_t n = strcspn(user, ":");
        bool numeric = n > 0;
        for (size_t i = 0; i < n; i++)
                numeric = numeric && isdigit((unsigned char)user[i]);
        if (numeric) {
                img->uid = xmalloc(sizeof(*img->uid));
                runtime__v1__int64_value__init(img->uid);
                img->uid->value = strtoll(user, NULL, 10);
        } else {
                free(img->username);
                img->username = xstrndup(user, n);
        }
}

/* user: the image config's User, parsed once by image/ (may be NULL). */
static Runtime__V1__Image *build_image(const struct store_image *si, const char *user)
{
        Runtime__V1__Image *img = xmalloc(sizeof(*img));
        runtime__v1__image__init(img);
        img->id = xstrdup(si->id);
        size_t n = strv_len(si->names);
        img->repo_tags = xcalloc(n ? n : 1, sizeof(char *));
        img->repo_digests = xcalloc(n ? n : 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
                if (strchr(si->names[i], '@'))
                        img->repo_digests[img->n_repo_digests++] = xstrdup(si->names[i]);
                else
                        img->repo_tags[img->n_repo_tags++] = xstrdup(si->names[i]);
        }
        img->size = si->size;
        img->pinned = si->pinned;
        img->spec = xmalloc(sizeof(*img->spec));
        runtime__v1__image_spec__init(img->spec);
        img->spec->image = xstrdup(si->id);
        img->username = xstrdup("");
        image_user(user, img);
        return img;
}

static const struct img_auth *auth_of(const Runtime__V1__AuthConfig *a, struct img_auth *out)
{
        if (a == NULL)
                return NULL;
        *out = (struct img_auth){
                .username = *a->username ? a->username : NULL,
                .password = *a->password ? a->password : NULL,
                .auth = *a->auth ? a->auth : NULL,
                .identity_token = *a->identity_token ? a->identity_token : NULL,
                .registry_token = *a->registry_token ? a->registry_token : NULL,
        };
        return out;
}

static int do_pull(struct cri_daemon *d, const Runtime__V1__PullImageRequest *rq, img_progress_fn cb,
                   void *cb_data, char **image_ref, struct err *e)
{
        if (rq->image == NULL || rq->image->image == NULL || *rq->image->image == '\0')
                return err_set(e, ERR_INVALID, "PullImage: image.image is required");
        struct img_auth auth;
        struct store_image si = {0};
        int64_t t0 = time_mono_ns();
        if (img_pull(d->images, rq->image->image, auth_of(rq->auth, &auth), cb, cb_data, &si, e) < 0)
                return err_wrap(e, "PullImage %s", rq->image->image);
        log_info("image", "pulled ref=%s id=%s ms=%.1f", rq->image->image, si.id,
                 (double)(time_mono_ns() - t0) / 1e6);
        *image_ref = xstrdup(si.id);
        store_image_clear(&si);
        return 0;
}

static int pull(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        char *ref = NULL;
        if (do_pull(d, (const Runtime__V1__PullImageRequest *)req, NULL, NULL, &ref, e) < 0)
                return -1;
        Runtime__V1__PullImageResponse *r = xmalloc(sizeof(*r));
        runtime__v1__pull_image_response__init(r);
        r->image_ref = ref;
        *resp = &r->base;
        return 0;
}

/* ---------- corral.v1.Corral/PullImageProgress ---------- */

struct layer_state {
        char *digest;
        enum img_progress_state state;
        uint64_t done, total;
};

struct progress {
        struct cri_call *call;
        char *ref;
        struct layer_state *layers;
        int n;
        int64_t last_ns;
        bool gone; /* the client left: stop sending, let the pull finish */
};

static const char *state_name(enum img_progress_state s)
{
        static const char *const names[] = {"resolved",   "waiting",   "downloading", "exists",
                                            "downloaded", "unpacking", "unpacked"};
        return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "unknown";
}

static void send_progress(struct progress *pr, const char *image_ref)
{
        if (pr->gone)
                return;
        Corral__V1__PullProgress m = CORRAL__V1__PULL_PROGRESS__INIT;
        Corral__V1__LayerProgress *lp = xcalloc((size_t)pr->n + 1, sizeof(*lp));
        Corral__V1__LayerProgress **pp = xcalloc((size_t)pr->n + 1, sizeof(*pp));
        for (int i = 0; i < pr->n; i++) {
                corral__v1__layer_progress__init(&lp[i]);
                lp[i].digest = pr->layers[i].digest ? pr->layers[i].digest : "";
                lp[i].state = (char *)state_name(pr->layers[i].state);
                lp[i].done = pr->layers[i].done;
                lp[i].total = pr->layers[i].total;
                pp[i] = &lp[i];
        }
        m.ref = pr->ref ? pr->ref : "";
        m.layers = pp;
        m.n_layers = (size_t)pr->n;
        m.image_ref = (char *)(image_ref ? image_ref : "");
        cleanup_err struct err e = ERR_INIT;
        if (cri_call_send(pr->call, &m.base, &e) < 0)
                pr->gone = true;
        pr->last_ns = time_mono_ns();
        free(pp);
        free(lp);
}

/* Called from the pull's threads, one at a time: a snapshot goes out on
 * every state change and at most every 100 ms while bytes flow. */
static void on_progress(void *data, const struct img_progress *p)
{
        struct progress *pr = data;
        if (p->state == IMG_PROGRESS_RESOLVED) {
                free(pr->ref);
                pr->ref = xstrdup(p->ref);
                if (pr->layers == NULL && p->n_layers > 0) {
                        pr->n = p->n_layers;
                        pr->layers = xcalloc((size_t)pr->n, sizeof(*pr->layers));
                }
                send_progress(pr, NULL);
                return;
        }
        if (p->layer < 0 || p->layer >= pr->n)
                return;
        struct layer_state *l = &pr->layers[p->layer];
        if (l->digest == NULL && p->digest)
                l->digest = xstrdup(p->digest);
        bool changed = l->state != p->state;
        l->state = p->state;
        l->done = p->done;
        l->total = p->total ? p->total : l->total;
        if (changed || time_mono_ns() - pr->last_ns >= 100 * 1000000LL)
                send_progress(pr, NULL);
}

static int pull_progress(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                         struct err *e)
{
        struct progress pr = {.call = call};
        char *ref = NULL;
        int r = do_pull(d, (const Runtime__V1__PullImageRequest *)req, on_progress, &pr, &ref, e);
        if (r == 0)
                send_progress(&pr, ref);
        free(ref);
        for (int i = 0; i < pr.n; i++)
                free(pr.layers[i].digest);
        free(pr.layers);
        free(pr.ref);
        return r;
}

struct built {
        Runtime__V1__Image **v;
        size_t n, cap;
};

/* Called under image/'s read lock: the record is read in place, not copied. */
static bool add_image(const struct store_image *si, const char *user, void *arg)
{
        struct built *b = arg;
        if (b->n == b->cap) {
                b->cap = b->cap ? b->cap * 2 : 64;
                b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
        }
        b->v[b->n++] = build_image(si, user);
        return true;
}

/* The images a filter selects: one by name or id, or all. */
static int select_images(struct cri_daemon *d, const Runtime__V1__ImageFilter *f, Runtime__V1__Image ***out,
                         size_t *n_out, struct err *e)
{
        struct built b = {0};
        if (f && f->image && f->image->image && *f->image->image) {
                if (img_status_with(d->images, f->image->image, add_image, &b, e) < 0) {
                        if (!err_is(e, ERR_NOT_FOUND))
                                return -1;
                        err_clear(e);
                }
        } else {
                img_each(d->images, add_image, &b);
        }
        *out = b.v ? b.v : xcalloc(1, sizeof(**out));
        *n_out = b.n;
        return 0;
}

static int list(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__ListImagesRequest *rq = (const Runtime__V1__ListImagesRequest *)req;
        Runtime__V1__ListImagesResponse *r = xmalloc(sizeof(*r));
        runtime__v1__list_images_response__init(r);
        if (select_images(d, rq->filter, &r->images, &r->n_images, e) < 0) {
                free(r);
                return -1;
        }
        *resp = &r->base;
        return 0;
}

#define STREAM_BATCH 100

static int stream(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req, struct err *e)
{
        const Runtime__V1__StreamImagesRequest *rq = (const Runtime__V1__StreamImagesRequest *)req;
        Runtime__V1__Image **imgs = NULL;
        size_t n = 0;
        if (select_images(d, rq->filter, &imgs, &n, e) < 0)
                return -1;
        int ret = 0;
        for (size_t i = 0; i < n && ret == 0; i += STREAM_BATCH) {
                Runtime__V1__StreamImagesResponse m = RUNTIME__V1__STREAM_IMAGES_RESPONSE__INIT;
                m.images = imgs + i;
                m.n_images = n - i < STREAM_BATCH ? n - i : STREAM_BATCH;
                ret = cri_call_send(call, &m.base, e);
        }
        for (size_t i = 0; i < n; i++)
                protobuf_c_message_free_unpacked(&imgs[i]->base, NULL);
        free(imgs);
        return ret;
}

struct status_of {
        Runtime__V1__ImageStatusResponse *r;
        bool verbose;
};

/* Called under image/'s read lock: the record is read in place. */
static bool status_image(const struct store_image *si, const char *user, void *arg)
{
        struct status_of *so = arg;
        Runtime__V1__ImageStatusResponse *r = so->r;
        r->image = build_image(si, user);
        if (!so->verbose)
                return true;
        struct sbuf b = {0};
        sbuf_puts(&b, "{\"id\":");
        json_quote(&b, si->id);
        sbuf_puts(&b, ",\"manifestDigest\":");
        json_quote(&b, si->manifest_digest);
        sbuf_puts(&b, ",\"chainIds\":[");
        for (size_t i = 0; si->chain_ids && si->chain_ids[i]; i++) {
                if (i)
                        sbuf_putc(&b, ',');
                json_quote(&b, si->chain_ids[i]);
        }
        sbuf_puts(&b, "],\"config\":");
        sbuf_puts(&b, si->config_json && *si->config_json ? si->config_json : "null");
        sbuf_putc(&b, '}');
        r->n_info = 1;
        r->info = xcalloc(1, sizeof(*r->info));
        Runtime__V1__ImageStatusResponse__InfoEntry *kv = xmalloc(sizeof(*kv));
        runtime__v1__image_status_response__info_entry__init(kv);
        kv->key = xstrdup("info");
        kv->value = sbuf_steal(&b);
        r->info[0] = kv;
        return true;
}

static int status(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                  ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__ImageStatusRequest *rq = (const Runtime__V1__ImageStatusRequest *)req;
        if (rq->image == NULL || rq->image->image == NULL || *rq->image->image == '\0')
                return err_set(e, ERR_INVALID, "ImageStatus: image.image is required");
        Runtime__V1__ImageStatusResponse *r = xmalloc(sizeof(*r));
        runtime__v1__image_status_response__init(r);
        struct status_of so = {.r = r, .verbose = rq->verbose};
        if (img_status_with(d->images, rq->image->image, status_image, &so, e) < 0) {
                if (!err_is(e, ERR_NOT_FOUND)) {
                        free(r);
                        return -1;
                }
                /* An absent image is an empty answer, not an error (kubelet pulls then). */
                err_clear(e);
        }
        *resp = &r->base;
        return 0;
}

static int remove_image(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                        ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__RemoveImageRequest *rq = (const Runtime__V1__RemoveImageRequest *)req;
        if (rq->image == NULL || rq->image->image == NULL || *rq->image->image == '\0')
                return err_set(e, ERR_INVALID, "RemoveImage: image.image is required");
        if (img_remove(d->images, rq->image->image, e) < 0) {
                if (!err_is(e, ERR_NOT_FOUND))
                        return err_wrap(e, "RemoveImage %s", rq->image->image);
                err_clear(e); /* already gone: RemoveImage is idempotent */
        }
        Runtime__V1__RemoveImageResponse *r = xmalloc(sizeof(*r));
        runtime__v1__remove_image_response__init(r);
        *resp = &r->base;
        return 0;
}

static Runtime__V1__FilesystemUsage *fs_usage(const char *mountpoint, uint64_t bytes, uint64_t inodes)
{
        Runtime__V1__FilesystemUsage *u = xmalloc(sizeof(*u));
        runtime__v1__filesystem_usage__init(u);
        u->timestamp = time_now_ns();
        u->fs_id = xmalloc(sizeof(*u->fs_id));
        runtime__v1__filesystem_identifier__init(u->fs_id);
        u->fs_id->mountpoint = xstrdup(mountpoint);
        u->used_bytes = xmalloc(sizeof(*u->used_bytes));
        runtime__v1__uint64_value__init(u->used_bytes);
        u->used_bytes->value = bytes;
        u->inodes_used = xmalloc(sizeof(*u->inodes_used));
        runtime__v1__uint64_value__init(u->inodes_used);
        u->inodes_used->value = inodes;
        return u;
}

static int fs_info(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                   ProtobufCMessage **resp, struct err *e)
{
        (void)call, (void)req;
        struct img_fs_usage u = {0};
        if (img_fs_usage(d->images, &u, e) < 0)
                return err_wrap(e, "ImageFsInfo");
        Runtime__V1__ImageFsInfoResponse *r = xmalloc(sizeof(*r));
        runtime__v1__image_fs_info_response__init(r);
        r->n_image_filesystems = 1;
        r->image_filesystems = xcalloc(1, sizeof(*r->image_filesystems));
        r->image_filesystems[0] = fs_usage(u.mountpoint, u.used_bytes, u.inodes_used);
        /* Containers' writable layers are snapshots under the same root. */
        cleanup_free char *snaps = path_join(d->cfg->root, "snapshots");
        r->n_container_filesystems = 1;
        r->container_filesystems = xcalloc(1, sizeof(*r->container_filesystems));
        r->container_filesystems[0] = fs_usage(snaps, u.snapshot_bytes, u.snapshot_inodes);
        *resp = &r->base;
        return 0;
}

const struct cri_handler cri_image_handlers[] = {
        {.name = "PullImage", .unary = pull},
        {.name = "ListImages", .unary = list},
        {.name = "StreamImages", .stream = stream},
        {.name = "ImageStatus", .unary = status},
        {.name = "RemoveImage", .unary = remove_image},
        {.name = "ImageFsInfo", .unary = fs_info},
        {.name = "PullImageProgress", .stream = pull_progress},
        {0},
};
