/* corral.v1: ImportImage (client stream of archive bytes), ExportImage
 * (server stream of archive bytes) and CommitContainer, over image/. */
#include <string.h>

#include "corral/v1/corral.pb-c.h"
#include "cri/ctr-internal.h"
#include "image/image.h"
#include "snapshot/snapshot.h"

#define CHUNK (1u << 20)

/* ---------- ImportImage ---------- */

struct upload {
        struct cri_call *call;
        const Corral__V1__ImportImageRequest *first;
        Corral__V1__ImportImageRequest *cur;
        bool first_done;
};

static ssize_t upload_read(void *data, const void **buf, struct err *e)
{
        struct upload *u = data;
        if (!u->first_done) {
                u->first_done = true;
                if (u->first->data.len > 0) {
                        *buf = u->first->data.data;
                        return (ssize_t)u->first->data.len;
                }
        }
        for (;;) {
                if (u->cur)
                        protobuf_c_message_free_unpacked(&u->cur->base, NULL);
                u->cur = NULL;
                ProtobufCMessage *m = NULL;
                int r = cri_call_recv(u->call, &m, e);
                if (r <= 0)
                        return r;
                u->cur = (Corral__V1__ImportImageRequest *)m;
                if (u->cur->data.len > 0) {
                        *buf = u->cur->data.data;
                        return (ssize_t)u->cur->data.len;
                }
        }
}

/* "linux/arm64/v8" -> parts (pointers into the copy `buf`). */
static int parse_platform(const char *s, char *buf, size_t len, struct img_import_opts *o, struct err *e)
{
        if (strlen(s) >= len)
                return err_set(e, ERR_INVALID, "platform \"%s\" is too long", s);
        strcpy(buf, s);
        char *save = NULL;
        o->os = strtok_r(buf, "/", &save);
        o->arch = strtok_r(NULL, "/", &save);
        o->variant = strtok_r(NULL, "/", &save);
        if (!o->os || !o->arch || strtok_r(NULL, "/", &save))
                return err_set(e, ERR_INVALID, "platform \"%s\": want os/arch[/variant]", s);
        return 0;
}

static int import_image(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                        ProtobufCMessage **resp, struct err *e)
{
        const Corral__V1__ImportImageRequest *rq = (const Corral__V1__ImportImageRequest *)req;
        struct img_import_opts o = {0};
        char plat[256];
        if (rq->options) {
                if (*rq->options->platform &&
                    parse_platform(rq->options->platform, plat, sizeof(plat), &o, e) < 0)
                        return -1;
                o.all_platforms = rq->options->all_platforms;
                o.name = *rq->options->name ? rq->options->name : NULL;
        }
        struct upload u = {.call = call, .first = rq};
        struct img_imported *v = NULL;
        size_t n = 0;
        int r = img_import(d->images, upload_read, &u, &o, &v, &n, e);
        if (u.cur)
                protobuf_c_message_free_unpacked(&u.cur->base, NULL);
        if (r < 0)
                return -1;
        Corral__V1__ImportImageResponse *out = xmalloc(sizeof(*out));
        corral__v1__import_image_response__init(out);
        out->images = xcalloc(n ? n : 1, sizeof(*out->images));
        for (size_t i = 0; i < n; i++) {
                Corral__V1__ImportedImage *im = xmalloc(sizeof(*im));
                corral__v1__imported_image__init(im);
                im->id = steal_ptr(&v[i].id);
                im->manifest_digest = steal_ptr(&v[i].manifest_digest);
                im->n_names = strv_len(v[i].names);
                im->names = steal_ptr(&v[i].names);
                out->images[out->n_images++] = im;
        }
        img_imported_free(v, n);
        *resp = &out->base;
        return 0;
}

/* ---------- ExportImage ---------- */

struct download {
        struct cri_call *call;
        struct sbuf buf;
};

static int flush(struct download *dl, struct err *e)
{
        if (dl->buf.len == 0)
                return 0;
        Corral__V1__ExportImageChunk ch = CORRAL__V1__EXPORT_IMAGE_CHUNK__INIT;
        ch.data.data = (uint8_t *)dl->buf.buf;
        ch.data.len = dl->buf.len;
        int r = cri_call_send(dl->call, &ch.base, e);
        dl->buf.len = 0;
        return r;
}

static int download_write(void *data, const void *buf, size_t len, struct err *e)
{
        struct download *dl = data;
        sbuf_append(&dl->buf, buf, len);
        return dl->buf.len >= CHUNK ? flush(dl, e) : 0;
}

static int export_image(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                        struct err *e)
{
        const Corral__V1__ExportImageRequest *rq = (const Corral__V1__ExportImageRequest *)req;
        if (rq->n_images == 0)
                return err_set(e, ERR_INVALID, "ExportImage: no image named");
        enum img_archive_format fmt;
        if (!*rq->format || strcmp(rq->format, "oci-archive") == 0)
                fmt = IMG_ARCHIVE_OCI;
        else if (strcmp(rq->format, "docker-archive") == 0)
                fmt = IMG_ARCHIVE_DOCKER;
        else
                return err_set(e, ERR_INVALID,
                               "ExportImage: format \"%s\": want oci-archive or docker-archive", rq->format);
        cleanup_strv char **names = xcalloc(rq->n_images + 1, sizeof(char *));
        for (size_t i = 0; i < rq->n_images; i++)
                names[i] = xstrdup(rq->images[i]);
        struct download dl = {.call = call};
        int r = img_export(d->images, names, fmt, download_write, &dl, e);
        if (r == 0)
                r = flush(&dl, e);
        sbuf_free(&dl.buf);
        return r;
}

/* ---------- CommitContainer ---------- */

static int commit_container(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                            ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Corral__V1__CommitContainerRequest *rq = (const Corral__V1__CommitContainerRequest *)req;
        if (!*rq->container_id || !*rq->image)
                return err_set(e, ERR_INVALID, "CommitContainer: container_id and image are required");
        struct store_container c = {0};
        if (ctr_resolve(d, rq->container_id, &c, e) < 0)
                return -1;
        cleanup_free char *upper = snap_fs_path(d->snaps, c.snapshot_key ? c.snapshot_key : c.id, e);
        int r = -1;
        cleanup_free char *id = NULL;
        if (upper) {
                struct img_commit_opts o = {
                        .image_id = c.image_id,
                        .upper = upper,
                        .name = rq->image,
                        .author = *rq->author ? rq->author : NULL,
                        .comment = *rq->message ? rq->message : NULL,
                };
                r = img_commit(d->images, &o, &id, e);
        }
        if (r < 0)
                err_wrap(e, "commit container %s", c.id);
        store_ctr_clear(&c);
        if (r < 0)
                return -1;
        Corral__V1__CommitContainerResponse *out = xmalloc(sizeof(*out));
        corral__v1__commit_container_response__init(out);
        out->image_ref = steal_ptr(&id);
        *resp = &out->base;
        return 0;
}

const struct cri_handler cri_image_io_handlers[] = {
        {.name = "ImportImage", .unary = import_image},
        {.name = "ExportImage", .stream = export_image},
        {.name = "CommitContainer", .unary = commit_container},
        {0},
};
