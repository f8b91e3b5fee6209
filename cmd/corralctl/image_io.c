/* images import, images export, commit: corral.v1 calls over the same socket. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <string.h>

#include "cmd/corralctl/ctl.h"
#include "corral/v1/corral.pb-c.h"

#define IO_TIMEOUT_MS (60 * 60 * 1000)
#define CHUNK         (1u << 20)

static int open_in(const char *path)
{
        if (strcmp(path, "-") == 0)
                return STDIN_FILENO;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                fprintf(stderr, "corralctl: open %s: %s\n", path, strerror(errno));
        return fd;
}

int ctl_images_import(struct ctl *ctl, int argc, char **argv)
{
        static const struct option opts[] = {{"platform", required_argument, NULL, 'p'},
                                             {"all-platforms", no_argument, NULL, 'a'},
                                             {"name", required_argument, NULL, 'n'},
                                             {NULL, 0, NULL, 0}};
        Corral__V1__ImportImageOptions o = CORRAL__V1__IMPORT_IMAGE_OPTIONS__INIT;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "p:an:", opts, NULL)) != -1) {
                if (c == 'p')
                        o.platform = optarg;
                else if (c == 'a')
                        o.all_platforms = true;
                else if (c == 'n')
                        o.name = optarg;
                else
                        return 2;
        }
        if (optind != argc - 1) {
                fprintf(stderr,
                        "usage: corralctl images import [--platform OS/ARCH[/VARIANT] | --all-platforms] "
                        "[--name NAME] FILE|-\n");
                return 2;
        }
        int fd = open_in(argv[optind]);
        if (fd < 0)
                return 1;
        struct cri_client *cl = ctl_client(ctl);
        if (!cl)
                return 1;
        cleanup_err struct err e = ERR_INIT;
        struct cri_client_upload *u = NULL;
        if (cri_client_upload_open(cl, cri_method_path("ImportImage"), IO_TIMEOUT_MS, &u, &e) < 0) {
                fprintf(stderr, "corralctl: ImportImage: %s\n", e.msg);
                return 1;
        }
        cleanup_free uint8_t *buf = xmalloc(CHUNK);
        bool first = true;
        int64_t t0 = time_mono_ns();
        uint64_t total = 0;
        for (;;) {
                size_t have = 0;
                /* fill whole chunks: a pipe gives little at a time */
                while (have < CHUNK) {
                        ssize_t n = read(fd, buf + have, CHUNK - have);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0) {
                                fprintf(stderr, "corralctl: read %s: %s\n", argv[optind], strerror(errno));
                                if (fd != STDIN_FILENO)
                                        close(fd);
                                ProtobufCMessage *r = NULL;
                                cleanup_err struct err fe = ERR_INIT;
                                (void)cri_client_upload_finish(
                                        u, &corral__v1__import_image_response__descriptor, &r, &fe);
                                if (r)
                                        protobuf_c_message_free_unpacked(r, NULL);
                                return 1;
                        }
                        if (n == 0)
                                break;
                        have += (size_t)n;
                }
                if (have == 0 && !first)
                        break;
                Corral__V1__ImportImageRequest rq = CORRAL__V1__IMPORT_IMAGE_REQUEST__INIT;
                if (first)
                        rq.options = &o;
                rq.data.data = buf;
                rq.data.len = have;
                first = false;
                total += have;
                if (cri_client_upload_send(u, &rq.base, &e) < 0)
                        break; /* the daemon ended the call: finish says why */
                if (have < CHUNK)
                        break;
        }
        if (fd != STDIN_FILENO)
                close(fd);
        ProtobufCMessage *resp = NULL;
        err_clear(&e);
        if (cri_client_upload_finish(u, &corral__v1__import_image_response__descriptor, &resp, &e) < 0) {
                fprintf(stderr, "corralctl: ImportImage: %s (%s)\n", e.msg, err_kind_name(e.kind));
                return 1;
        }
        double s = (double)(time_mono_ns() - t0) / 1e9;
        Corral__V1__ImportImageResponse *r = (Corral__V1__ImportImageResponse *)resp;
        if (ctl->output == CTL_OUT_JSON) {
                ctl_print_json(resp);
        } else {
                for (size_t i = 0; i < r->n_images; i++) {
                        printf("Imported %s", r->images[i]->id);
                        for (size_t k = 0; k < r->images[i]->n_names; k++)
                                printf(" %s", r->images[i]->names[k]);
                        printf("\n");
                }
                fprintf(stderr, "%.1f MB in %.2f s (%.1f MB/s)\n", (double)total / 1e6, s,
                        s > 0 ? (double)total / 1e6 / s : 0.0);
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

int ctl_images_export(struct ctl *ctl, int argc, char **argv)
{
        static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                             {"format", required_argument, NULL, 'f'},
                                             {NULL, 0, NULL, 0}};
        const char *out = NULL, *format = "oci-archive";
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "o:f:", opts, NULL)) != -1) {
                if (c == 'o')
                        out = optarg;
                else if (c == 'f')
                        format = optarg;
                else
                        return 2;
        }
        if (!out || optind >= argc) {
                fprintf(stderr,
                        "usage: corralctl images export [--format oci-archive|docker-archive] -o FILE|- "
                        "IMAGE...\n");
                return 2;
        }
        struct cri_client *cl = ctl_client(ctl);
        if (!cl)
                return 1;
        Corral__V1__ExportImageRequest rq = CORRAL__V1__EXPORT_IMAGE_REQUEST__INIT;
        rq.images = argv + optind;
        rq.n_images = (size_t)(argc - optind);
        rq.format = (char *)format;
        bool to_stdout = strcmp(out, "-") == 0;
        cleanup_free char *tmp = to_stdout ? NULL : xasprintf("%s.partial", out);
        int fd = to_stdout ? STDOUT_FILENO : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
                fprintf(stderr, "corralctl: create %s: %s\n", tmp, strerror(errno));
                return 1;
        }
        cleanup_err struct err e = ERR_INIT;
        struct cri_client_stream *s = NULL;
        int ret = 0;
        int64_t t0 = time_mono_ns();
        uint64_t total = 0;
        if (cri_client_stream_open(cl, cri_method_path("ExportImage"), &rq.base,
                                   &corral__v1__export_image_chunk__descriptor, IO_TIMEOUT_MS, &s, &e) < 0) {
                fprintf(stderr, "corralctl: ExportImage: %s\n", e.msg);
                ret = 1;
        }
        while (ret == 0) {
                ProtobufCMessage *m = NULL;
                if (cri_client_stream_next(s, &m, &e) < 0) {
                        fprintf(stderr, "corralctl: ExportImage: %s (%s)\n", e.msg, err_kind_name(e.kind));
                        ret = 1;
                        break;
                }
                if (!m)
                        break;
                Corral__V1__ExportImageChunk *ch = (Corral__V1__ExportImageChunk *)m;
                if (fd_write_all(fd, ch->data.data, ch->data.len) < 0) {
                        fprintf(stderr, "corralctl: write %s: %s\n", out, strerror(errno));
                        ret = 1;
                }
                total += ch->data.len;
                protobuf_c_message_free_unpacked(m, NULL);
        }
        cri_client_stream_close(s);
        if (!to_stdout) {
                if (ret == 0 && fsync(fd) < 0)
                        ret = 1;
                close(fd);
                if (ret == 0 && rename(tmp, out) < 0) {
                        fprintf(stderr, "corralctl: rename %s: %s\n", out, strerror(errno));
                        ret = 1;
                }
                if (ret != 0)
                        (void)unlink(tmp);
        }
        if (ret == 0 && !to_stdout) {
                double sec = (double)(time_mono_ns() - t0) / 1e9;
                fprintf(stderr, "%.1f MB in %.2f s (%.1f MB/s)\n", (double)total / 1e6, sec,
                        sec > 0 ? (double)total / 1e6 / sec : 0.0);
        }
        return ret;
}

static int cmd_commit(struct ctl *ctl, int argc, char **argv)
{
        static const struct option opts[] = {{"author", required_argument, NULL, 'a'},
                                             {"message", required_argument, NULL, 'm'},
                                             {NULL, 0, NULL, 0}};
        Corral__V1__CommitContainerRequest rq = CORRAL__V1__COMMIT_CONTAINER_REQUEST__INIT;
        int c;
        while ((c = getopt_long(argc, argv, "a:m:", opts, NULL)) != -1) {
                if (c == 'a')
                        rq.author = optarg;
                else if (c == 'm')
                        rq.message = optarg;
                else
                        return 2;
        }
        if (optind != argc - 2) {
                fprintf(stderr, "usage: corralctl commit [--author A] [--message M] CONTAINER IMAGE\n");
                return 2;
        }
        rq.container_id = argv[optind];
        rq.image = argv[optind + 1];
        int saved = ctl->timeout_ms;
        if (ctl->timeout_ms < IO_TIMEOUT_MS)
                ctl->timeout_ms = IO_TIMEOUT_MS;
        ProtobufCMessage *resp = NULL;
        int r = ctl_call(ctl, "CommitContainer", &rq.base, &corral__v1__commit_container_response__descriptor,
                         &resp);
        ctl->timeout_ms = saved;
        if (r)
                return r;
        printf("%s\n", ((Corral__V1__CommitContainerResponse *)resp)->image_ref);
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

const struct ctl_verb ctl_image_io_verbs[] = {
        {"commit", "a container's changes as a new image", cmd_commit},
        {NULL, NULL, NULL},
};
