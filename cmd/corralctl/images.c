/* pull, images, inspecti, rmi, imagefsinfo */
#include <getopt.h>
#include <string.h>

#include "cmd/corralctl/ctl.h"
#include "corral/v1/corral.pb-c.h"

#define PULL_TIMEOUT_MS (30 * 60 * 1000)

#define PULL_FALLBACK 100

static void bar(char *out, size_t len, uint64_t done, uint64_t total)
{
        const int width = 30;
        int fill = total ? (int)((double)done / (double)total * width) : 0;
        if (fill > width)
                fill = width;
        snprintf(out, len, "[%.*s%.*s]", fill, "##############################", width - fill,
                 "------------------------------");
}

static void mib(char *out, size_t len, uint64_t b)
{
        if (b < 1024 * 1024)
                snprintf(out, len, "%.1f KiB", (double)b / 1024.0);
        else
                snprintf(out, len, "%.1f MiB", (double)b / (1024.0 * 1024.0));
}

/* One line per layer, redrawn in place on a terminal; elsewhere a line per
 * state change, so logs stay readable. */
static void render(const Corral__V1__PullProgress *p, bool tty, size_t *drawn, char ***last_states)
{
        if (tty && *drawn)
                printf("\033[%zuA", *drawn);
        if (*last_states == NULL) {
                /* No NULL holes: strv_free stops at the first NULL. */
                *last_states = xcalloc(p->n_layers + 1, sizeof(char *));
                for (size_t i = 0; i < p->n_layers; i++)
                        (*last_states)[i] = xstrdup("");
        }
        for (size_t i = 0; i < p->n_layers; i++) {
                const Corral__V1__LayerProgress *l = p->layers[i];
                const char *hex = str_has_prefix(l->digest, "sha256:") ? l->digest + 7 : l->digest;
                char b[64], d[32], t[32];
                bar(b, sizeof(b), l->done, l->total);
                mib(d, sizeof(d), l->done);
                mib(t, sizeof(t), l->total);
                if (tty) {
                        printf("\033[2K%.12s %-11s %s %s / %s\n", *hex ? hex : "------------", l->state, b, d,
                               t);
                } else if (strcmp((*last_states)[i], l->state) != 0 && strcmp(l->state, "resolved") != 0) {
                        printf("%s layer %zu/%zu %.12s %s %s\n", p->ref, i + 1, p->n_layers, hex, l->state,
                               t);
                        free((*last_states)[i]);
                        (*last_states)[i] = xstrdup(l->state);
                }
        }
        if (tty)
                *drawn = p->n_layers;
        fflush(stdout);
}

static int pull_with_progress(struct ctl *ctl, const Runtime__V1__PullImageRequest *req, char **image_ref)
{
        struct cri_client *c = ctl_client(ctl);
        if (c == NULL)
                return 1;
        cleanup_err struct err e = ERR_INIT;
        struct cri_client_stream *s = NULL;
        if (cri_client_stream_open(c, cri_method_path("PullImageProgress"), &req->base,
                                   &corral__v1__pull_progress__descriptor, ctl->timeout_ms, &s, &e) < 0) {
                fprintf(stderr, "corralctl: PullImage: %s\n", e.msg);
                return 1;
        }
        bool tty = isatty(STDOUT_FILENO) && ctl->output != CTL_OUT_JSON;
        size_t drawn = 0;
        char **states = NULL;
        int ret = 0;
        for (;;) {
                ProtobufCMessage *m = NULL;
                if (cri_client_stream_next(s, &m, &e) < 0) {
                        if (e.kind == ERR_UNIMPLEMENTED && drawn == 0 && states == NULL)
                                ret = PULL_FALLBACK;
                        else {
                                fprintf(stderr, "corralctl: PullImage: %s (%s)\n", e.msg,
                                        err_kind_name(e.kind));
                                ret = 1;
                        }
                        break;
                }
                if (m == NULL)
                        break;
                Corral__V1__PullProgress *p = (Corral__V1__PullProgress *)m;
                if (ctl->output != CTL_OUT_JSON)
                        render(p, tty, &drawn, &states);
                if (*p->image_ref) {
                        free(*image_ref);
                        *image_ref = xstrdup(p->image_ref);
                }
                protobuf_c_message_free_unpacked(m, NULL);
        }
        cri_client_stream_close(s);
        strv_free(states);
        if (ret == 0 && *image_ref == NULL) {
                fprintf(stderr, "corralctl: PullImage: the stream ended without an image id\n");
                ret = 1;
        }
        return ret;
}

static int cmd_pull(struct ctl *ctl, int argc, char **argv)
{
        static const struct option opts[] = {{"creds", required_argument, NULL, 'c'},
                                             {"auth", required_argument, NULL, 'a'},
                                             {NULL, 0, NULL, 0}};
        const char *creds = NULL, *auth = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "c:a:", opts, NULL)) != -1) {
                if (c == 'c')
                        creds = optarg;
                else if (c == 'a')
                        auth = optarg;
                else
                        return 2;
        }
        if (optind != argc - 1) {
                fprintf(stderr, "usage: corralctl pull [--creds USER:PASSWORD] [--auth BASE64] IMAGE\n");
                return 2;
        }
        Runtime__V1__PullImageRequest req = RUNTIME__V1__PULL_IMAGE_REQUEST__INIT;
        Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
        Runtime__V1__AuthConfig ac = RUNTIME__V1__AUTH_CONFIG__INIT;
        spec.image = argv[optind];
        req.image = &spec;
        cleanup_free char *user = NULL;
        if (creds) {
                const char *colon = strchr(creds, ':');
                if (colon == NULL) {
                        fprintf(stderr, "corralctl: --creds wants USER:PASSWORD\n");
                        return 2;
                }
                user = xstrndup(creds, (size_t)(colon - creds));
                ac.username = user;
                ac.password = (char *)colon + 1;
                req.auth = &ac;
        } else if (auth) {
                ac.auth = (char *)auth;
                req.auth = &ac;
        }
        int saved = ctl->timeout_ms;
        if (ctl->timeout_ms < PULL_TIMEOUT_MS)
                ctl->timeout_ms = PULL_TIMEOUT_MS;
        cleanup_free char *image_ref = NULL;
        int r = pull_with_progress(ctl, &req, &image_ref);
        if (r == PULL_FALLBACK) {
                /* Not corral (or an older one): plain CRI, no progress. */
                ProtobufCMessage *resp = NULL;
                r = ctl_call(ctl, "PullImage", &req.base, &runtime__v1__pull_image_response__descriptor,
                             &resp);
                if (r == 0) {
                        image_ref = xstrdup(((Runtime__V1__PullImageResponse *)resp)->image_ref);
                        protobuf_c_message_free_unpacked(resp, NULL);
                }
        }
        ctl->timeout_ms = saved;
        if (r)
                return r;
        if (ctl->output == CTL_OUT_JSON)
                printf("{\n  \"imageRef\": \"%s\"\n}\n", image_ref);
        else
                printf("Image is up to date for %s\n", image_ref);
        return 0;
}

static void human_size(uint64_t b, char *buf, size_t len)
{
        const char *units[] = {"B", "kB", "MB", "GB", "TB"};
        double v = (double)b;
        int u = 0;
        while (v >= 1000 && u < 4) {
                v /= 1000;
                u++;
        }
        snprintf(buf, len, u ? "%.3g%s" : "%.0f%s", v, units[u]);
}

/* "docker.io/library/busybox:1.36" -> repo and tag. */
static void split_tag(const char *ref, char *repo, size_t rl, char *tag, size_t tl)
{
        const char *slash = strrchr(ref, '/');
        const char *colon = strrchr(slash ? slash : ref, ':');
        if (colon) {
                snprintf(repo, rl, "%.*s", (int)(colon - ref), ref);
                snprintf(tag, tl, "%s", colon + 1);
        } else {
                snprintf(repo, rl, "%s", ref);
                snprintf(tag, tl, "<none>");
        }
}

static int cmd_images(struct ctl *ctl, int argc, char **argv)
{
        if (argc > 1 && strcmp(argv[1], "import") == 0)
                return ctl_images_import(ctl, argc - 1, argv + 1);
        if (argc > 1 && strcmp(argv[1], "export") == 0)
                return ctl_images_export(ctl, argc - 1, argv + 1);
        bool quiet = false;
        int c;
        while ((c = getopt(argc, argv, "q")) != -1) {
                if (c == 'q')
                        quiet = true;
                else
                        return 2;
        }
        Runtime__V1__ListImagesRequest req = RUNTIME__V1__LIST_IMAGES_REQUEST__INIT;
        Runtime__V1__ImageFilter f = RUNTIME__V1__IMAGE_FILTER__INIT;
        Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
        if (optind < argc) {
                spec.image = argv[optind];
                f.image = &spec;
                req.filter = &f;
        }
        ProtobufCMessage *resp = NULL;
        if (ctl_call(ctl, "ListImages", &req.base, &runtime__v1__list_images_response__descriptor, &resp))
                return 1;
        Runtime__V1__ListImagesResponse *l = (Runtime__V1__ListImagesResponse *)resp;
        if (ctl->output == CTL_OUT_JSON) {
                ctl_print_json(resp);
        } else if (quiet) {
                for (size_t i = 0; i < l->n_images; i++)
                        printf("%s\n", l->images[i]->id);
        } else {
                printf("%-40s %-12s %-13s %s\n", "IMAGE", "TAG", "IMAGE ID", "SIZE");
                for (size_t i = 0; i < l->n_images; i++) {
                        Runtime__V1__Image *img = l->images[i];
                        const char *hex = str_has_prefix(img->id, "sha256:") ? img->id + 7 : img->id;
                        char size[32], repo[256], tag[128];
                        human_size(img->size, size, sizeof(size));
                        if (img->n_repo_tags == 0) {
                                printf("%-40s %-12s %-13.13s %s\n", "<none>", "<none>", hex, size);
                                continue;
                        }
                        for (size_t k = 0; k < img->n_repo_tags; k++) {
                                split_tag(img->repo_tags[k], repo, sizeof(repo), tag, sizeof(tag));
                                printf("%-40s %-12s %-13.13s %s\n", repo, tag, hex, size);
                        }
                }
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

static int cmd_inspecti(struct ctl *ctl, int argc, char **argv)
{
        if (argc < 2) {
                fprintf(stderr, "usage: corralctl inspecti IMAGE...\n");
                return 2;
        }
        int ret = 0;
        for (int i = 1; i < argc; i++) {
                Runtime__V1__ImageStatusRequest req = RUNTIME__V1__IMAGE_STATUS_REQUEST__INIT;
                Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
                spec.image = argv[i];
                req.image = &spec;
                req.verbose = true;
                ProtobufCMessage *resp = NULL;
                if (ctl_call(ctl, "ImageStatus", &req.base, &runtime__v1__image_status_response__descriptor,
                             &resp)) {
                        ret = 1;
                        continue;
                }
                Runtime__V1__ImageStatusResponse *s = (Runtime__V1__ImageStatusResponse *)resp;
                if (s->image == NULL) {
                        fprintf(stderr, "corralctl: image %s not found\n", argv[i]);
                        ret = 1;
                } else {
                        ctl_print_json(resp);
                }
                protobuf_c_message_free_unpacked(resp, NULL);
        }
        return ret;
}

static int cmd_rmi(struct ctl *ctl, int argc, char **argv)
{
        if (argc < 2) {
                fprintf(stderr, "usage: corralctl rmi IMAGE...\n");
                return 2;
        }
        int ret = 0;
        for (int i = 1; i < argc; i++) {
                Runtime__V1__RemoveImageRequest req = RUNTIME__V1__REMOVE_IMAGE_REQUEST__INIT;
                Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
                spec.image = argv[i];
                req.image = &spec;
                ProtobufCMessage *resp = NULL;
                if (ctl_call(ctl, "RemoveImage", &req.base, &runtime__v1__remove_image_response__descriptor,
                             &resp)) {
                        ret = 1;
                        continue;
                }
                printf("Deleted: %s\n", argv[i]);
                protobuf_c_message_free_unpacked(resp, NULL);
        }
        return ret;
}

static int cmd_imagefsinfo(struct ctl *ctl, int argc, char **argv)
{
        (void)argc, (void)argv;
        Runtime__V1__ImageFsInfoRequest req = RUNTIME__V1__IMAGE_FS_INFO_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        if (ctl_call(ctl, "ImageFsInfo", &req.base, &runtime__v1__image_fs_info_response__descriptor, &resp))
                return 1;
        ctl_print_json(resp);
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

const struct ctl_verb ctl_image_verbs[] = {
        {"pull", "pull an image from a registry", cmd_pull},
        {"images", "list images (-q: ids only); images import FILE|-, images export -o FILE IMAGE...",
         cmd_images},
        {"inspecti", "show an image's status and config", cmd_inspecti},
        {"rmi", "remove images by tag, digest or id", cmd_rmi},
        {"imagefsinfo", "show image filesystem usage", cmd_imagefsinfo},
        {NULL, NULL, NULL},
};
