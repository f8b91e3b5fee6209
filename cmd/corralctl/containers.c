/* create, start, ps, inspect, stop, rm, logs, exec (sync), stats, run */
#include <getopt.h>
#include <string.h>
#include <time.h>

#include "cmd/corralctl/ctl.h"

char *ctl_resolve_container(struct ctl *ctl, const char *id)
{
        Runtime__V1__ListContainersRequest req = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        if (ctl_call(ctl, "ListContainers", &req.base, &runtime__v1__list_containers_response__descriptor,
                     &resp))
                return NULL;
        Runtime__V1__ListContainersResponse *r = (Runtime__V1__ListContainersResponse *)resp;
        char *found = NULL;
        int matches = 0;
        for (size_t i = 0; i < r->n_containers; i++) {
                const Runtime__V1__Container *c = r->containers[i];
                if (strcmp(c->id, id) == 0) {
                        free(found);
                        found = xstrdup(c->id);
                        matches = 1;
                        break;
                }
                if (str_has_prefix(c->id, id)) {
                        free(found);
                        found = xstrdup(c->id);
                        matches++;
                }
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        if (matches == 1)
                return found;
        free(found);
        fprintf(stderr, "corralctl: container %s: %s\n", id, matches ? "ambiguous prefix" : "not found");
        return NULL;
}

static const char *ctr_state(Runtime__V1__ContainerState s)
{
        switch (s) {
        case RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED:
                return "Created";
        case RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING:
                return "Running";
        case RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED:
                return "Exited";
        default:
                return "Unknown";
        }
}

static int load(const char *path, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out)
{
        cleanup_err struct err e = ERR_INIT;
        if (ctl_json_file_to_pb(path, d, out, &e) < 0) {
                fprintf(stderr, "corralctl: %s\n", e.msg);
                return 1;
        }
        return 0;
}

/* CreateContainer; prints nothing; *id_out is heap. */
static int create_one(struct ctl *ctl, const char *pod_id, Runtime__V1__ContainerConfig *cc,
                      Runtime__V1__PodSandboxConfig *pc, char **id_out)
{
        Runtime__V1__CreateContainerRequest req = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
        req.pod_sandbox_id = (char *)pod_id;
        req.config = cc;
        req.sandbox_config = pc;
        ProtobufCMessage *resp = NULL;
        if (ctl_call(ctl, "CreateContainer", &req.base, &runtime__v1__create_container_response__descriptor,
                     &resp))
                return 1;
        *id_out = xstrdup(((Runtime__V1__CreateContainerResponse *)resp)->container_id);
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

static int start_one(struct ctl *ctl, const char *id)
{
        Runtime__V1__StartContainerRequest req = RUNTIME__V1__START_CONTAINER_REQUEST__INIT;
        req.container_id = (char *)id;
        ProtobufCMessage *resp = NULL;
        if (ctl_call(ctl, "StartContainer", &req.base, &runtime__v1__start_container_response__descriptor,
                     &resp))
                return 1;
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

static int cmd_create(struct ctl *ctl, int argc, char **argv)
{
        if (argc != 4) {
                fprintf(stderr, "usage: corralctl create POD-ID CONTAINER.json POD.json\n");
                return 2;
        }
        cleanup_free char *pod = ctl_resolve_pod(ctl, argv[1]);
        if (pod == NULL)
                return 1;
        ProtobufCMessage *cc = NULL, *pc = NULL;
        if (load(argv[2], &runtime__v1__container_config__descriptor, &cc) ||
            load(argv[3], &runtime__v1__pod_sandbox_config__descriptor, &pc)) {
                if (cc)
                        protobuf_c_message_free_unpacked(cc, NULL);
                return 1;
        }
        cleanup_free char *id = NULL;
        int r = create_one(ctl, pod, (Runtime__V1__ContainerConfig *)cc, (Runtime__V1__PodSandboxConfig *)pc,
                           &id);
        protobuf_c_message_free_unpacked(cc, NULL);
        protobuf_c_message_free_unpacked(pc, NULL);
        if (r == 0)
                printf("%s\n", id);
        return r;
}

static int cmd_start(struct ctl *ctl, int argc, char **argv)
{
        if (argc < 2) {
                fprintf(stderr, "usage: corralctl start CONTAINER-ID...\n");
                return 2;
        }
        int rc = 0;
        for (int i = 1; i < argc; i++) {
                cleanup_free char *id = ctl_resolve_container(ctl, argv[i]);
                if (id == NULL || start_one(ctl, id)) {
                        rc = 1;
                        continue;
                }
                printf("%s\n", id);
        }
        return rc;
}

static int cmd_ps(struct ctl *ctl, int argc, char **argv)
{
        bool all = false, quiet = false;
        const char *pod = NULL, *name = NULL, *state = NULL;
        static const struct option opts[] = {
                {"all", no_argument, NULL, 'a'},         {"quiet", no_argument, NULL, 'q'},
                {"pod", required_argument, NULL, 'p'},   {"name", required_argument, NULL, 'n'},
                {"state", required_argument, NULL, 's'}, {NULL, 0, NULL, 0},
        };
        int c;
        while ((c = getopt_long(argc, argv, "aqp:n:s:", opts, NULL)) != -1) {
                switch (c) {
                case 'a':
                        all = true;
                        break;
                case 'q':
                        quiet = true;
                        break;
                case 'p':
                        pod = optarg;
                        break;
                case 'n':
                        name = optarg;
                        break;
                case 's':
                        state = optarg;
                        break;
                default:
                        return 2;
                }
        }
        cleanup_free char *pod_id = NULL;
        if (pod && (pod_id = ctl_resolve_pod(ctl, pod)) == NULL)
                return 1;
        Runtime__V1__ListContainersRequest req = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
        Runtime__V1__ContainerFilter f = RUNTIME__V1__CONTAINER_FILTER__INIT;
        Runtime__V1__ContainerStateValue sv = RUNTIME__V1__CONTAINER_STATE_VALUE__INIT;
        req.filter = &f;
        if (pod_id)
                f.pod_sandbox_id = pod_id;
        if (state) {
                if (strcasecmp(state, "created") == 0)
                        sv.state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED;
                else if (strcasecmp(state, "running") == 0)
                        sv.state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
                else if (strcasecmp(state, "exited") == 0)
                        sv.state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
                else
                        sv.state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_UNKNOWN;
                f.state = &sv;
        } else if (!all) {
                sv.state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
                f.state = &sv;
        }
        ProtobufCMessage *resp = NULL, *presp = NULL;
        if (ctl_call(ctl, "ListContainers", &req.base, &runtime__v1__list_containers_response__descriptor,
                     &resp))
                return 1;
        Runtime__V1__ListContainersResponse *r = (Runtime__V1__ListContainersResponse *)resp;
        if (ctl->output == CTL_OUT_JSON) {
                ctl_print_json(resp);
                protobuf_c_message_free_unpacked(resp, NULL);
                return 0;
        }
        Runtime__V1__ListPodSandboxRequest preq = RUNTIME__V1__LIST_POD_SANDBOX_REQUEST__INIT;
        Runtime__V1__ListPodSandboxResponse *pr = NULL;
        if (!quiet && ctl_call(ctl, "ListPodSandbox", &preq.base,
                               &runtime__v1__list_pod_sandbox_response__descriptor, &presp) == 0)
                pr = (Runtime__V1__ListPodSandboxResponse *)presp;
        if (!quiet)
                printf("%-13s  %-28s  %-16s  %-8s  %-20s  %-7s  %-13s  %s\n", "CONTAINER", "IMAGE", "CREATED",
                       "STATE", "NAME", "ATTEMPT", "POD ID", "POD");
        for (size_t i = 0; i < r->n_containers; i++) {
                const Runtime__V1__Container *ct = r->containers[i];
                if (name && (!ct->metadata || strstr(ct->metadata->name, name) == NULL))
                        continue;
                if (quiet) {
                        printf("%s\n", ct->id);
                        continue;
                }
                const char *pname = "";
                for (size_t k = 0; pr && k < pr->n_items; k++)
                        if (strcmp(pr->items[k]->id, ct->pod_sandbox_id) == 0 && pr->items[k]->metadata)
                                pname = pr->items[k]->metadata->name;
                char sid[14], spid[14], age[32];
                ctl_age(ct->created_at, age, sizeof(age));
                const char *img = ct->image && *ct->image->image ? ct->image->image : ct->image_ref;
                printf("%-13s  %-28.28s  %-16s  %-8s  %-20s  %-7u  %-13s  %s\n", ctl_short_id(ct->id, sid),
                       img, age, ctr_state(ct->state), ct->metadata ? ct->metadata->name : "",
                       ct->metadata ? ct->metadata->attempt : 0, ctl_short_id(ct->pod_sandbox_id, spid),
                       pname);
        }
        if (presp)
                protobuf_c_message_free_unpacked(presp, NULL);
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

static Runtime__V1__ContainerStatusResponse *status_of(struct ctl *ctl, const char *id, bool verbose)
{
        Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
        req.container_id = (char *)id;
        req.verbose = verbose;
        ProtobufCMessage *resp = NULL;
        if (ctl_call(ctl, "ContainerStatus", &req.base, &runtime__v1__container_status_response__descriptor,
                     &resp))
                return NULL;
        return (Runtime__V1__ContainerStatusResponse *)resp;
}

static int cmd_inspect(struct ctl *ctl, int argc, char **argv)
{
        if (argc < 2) {
                fprintf(stderr, "usage: corralctl inspect CONTAINER-ID...\n");
                return 2;
        }
        int rc = 0;
        for (int i = 1; i < argc; i++) {
                cleanup_free char *id = ctl_resolve_container(ctl, argv[i]);
                Runtime__V1__ContainerStatusResponse *s = id ? status_of(ctl, id, true) : NULL;
                if (s == NULL) {
                        rc = 1;
                        continue;
                }
                ctl_print_json(&s->base);
                protobuf_c_message_free_unpacked(&s->base, NULL);
        }
        return rc;
}

static int cmd_stop(struct ctl *ctl, int argc, char **argv)
{
        long timeout = 10;
        int c;
        static const struct option opts[] = {{"timeout", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
        while ((c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
                if (c != 't')
                        return 2;
                timeout = strtol(optarg, NULL, 10);
        }
        if (optind >= argc) {
                fprintf(stderr, "usage: corralctl stop [-t SECONDS] CONTAINER-ID...\n");
                return 2;
        }
        int saved = ctl->timeout_ms;
        ctl->timeout_ms = (int)(timeout * 1000) + 60000;
        int rc = 0;
        for (int i = optind; i < argc; i++) {
                cleanup_free char *id = ctl_resolve_container(ctl, argv[i]);
                if (id == NULL) {
                        rc = 1;
                        continue;
                }
                Runtime__V1__StopContainerRequest req = RUNTIME__V1__STOP_CONTAINER_REQUEST__INIT;
                req.container_id = id;
                req.timeout = timeout;
                ProtobufCMessage *resp = NULL;
                if (ctl_call(ctl, "StopContainer", &req.base,
                             &runtime__v1__stop_container_response__descriptor, &resp)) {
                        rc = 1;
                        continue;
                }
                protobuf_c_message_free_unpacked(resp, NULL);
                printf("%s\n", id);
        }
        ctl->timeout_ms = saved;
        return rc;
}

static int cmd_rm(struct ctl *ctl, int argc, char **argv)
{
        if (argc < 2) {
                fprintf(stderr, "usage: corralctl rm CONTAINER-ID...\n");
                return 2;
        }
        int saved = ctl->timeout_ms;
        ctl->timeout_ms = saved < 60000 ? 60000 : saved;
        int rc = 0;
        for (int i = 1; i < argc; i++) {
                cleanup_free char *id = ctl_resolve_container(ctl, argv[i]);
                if (id == NULL) {
                        rc = 1;
                        continue;
                }
                Runtime__V1__RemoveContainerRequest req = RUNTIME__V1__REMOVE_CONTAINER_REQUEST__INIT;
                req.container_id = id;
                ProtobufCMessage *resp = NULL;
                if (ctl_call(ctl, "RemoveContainer", &req.base,
                             &runtime__v1__remove_container_response__descriptor, &resp)) {
                        rc = 1;
                        continue;
                }
                protobuf_c_message_free_unpacked(resp, NULL);
                printf("%s\n", id);
        }
        ctl->timeout_ms = saved;
        return rc;
}

/* Print CRI log lines from f: "<time> <stream> <P|F> <text>", the text only. */
static void print_log_lines(FILE *f, struct sbuf *partial)
{
        char buf[65536];
        while (fgets(buf, sizeof(buf), f)) {
                size_t n = strlen(buf);
                if (n == 0 || buf[n - 1] != '\n') {
                        /* An incomplete line: keep it until the rest arrives. */
                        sbuf_puts(partial, buf);
                        continue;
                }
                sbuf_puts(partial, buf);
                char *line = partial->buf;
                char *sp1 = strchr(line, ' ');
                char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
                char *sp3 = sp2 ? strchr(sp2 + 1, ' ') : NULL;
                if (sp1 && sp2) {
                        bool is_partial = sp2[1] == 'P';
                        const char *text = sp3 ? sp3 + 1 : "\n";
                        FILE *out = strncmp(sp1 + 1, "stderr", 6) == 0 ? stderr : stdout;
                        size_t tl = strlen(text);
                        if (is_partial && tl && text[tl - 1] == '\n')
                                tl--;
                        fwrite(text, 1, tl, out);
                        fflush(out);
                } else {
                        fputs(line, stdout);
                }
                free(sbuf_steal(partial));
        }
        clearerr(f);
}

static int cmd_logs(struct ctl *ctl, int argc, char **argv)
{
        bool follow = false;
        int c;
        static const struct option opts[] = {{"follow", no_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
        while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
                if (c != 'f')
                        return 2;
                follow = true;
        }
        if (optind != argc - 1) {
                fprintf(stderr, "usage: corralctl logs [-f] CONTAINER-ID\n");
                return 2;
        }
        cleanup_free char *id = ctl_resolve_container(ctl, argv[optind]);
        if (id == NULL)
                return 1;
        Runtime__V1__ContainerStatusResponse *s = status_of(ctl, id, false);
        if (s == NULL)
                return 1;
        cleanup_free char *path = xstrdup(s->status->log_path);
        protobuf_c_message_free_unpacked(&s->base, NULL);
        if (*path == '\0') {
                fprintf(stderr, "corralctl: container %s has no log file\n", id);
                return 1;
        }
        cleanup_fclose FILE *f = fopen(path, "re");
        if (f == NULL) {
                fprintf(stderr, "corralctl: open %s: %m\n", path);
                return 1;
        }
        struct sbuf partial = {0};
        print_log_lines(f, &partial);
        while (follow) {
                struct timespec ts = {0, 200 * 1000000L};
                nanosleep(&ts, NULL);
                print_log_lines(f, &partial);
                s = status_of(ctl, id, false);
                if (s == NULL)
                        break;
                bool done = s->status->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING &&
                            s->status->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED;
                protobuf_c_message_free_unpacked(&s->base, NULL);
                if (done) {
                        print_log_lines(f, &partial);
                        break;
                }
        }
        sbuf_free(&partial);
        return 0;
}

static int cmd_exec(struct ctl *ctl, int argc, char **argv)
{
        long timeout = 0;
        bool in = false, tty = false, websocket = false;
        int c;
        static const struct option opts[] = {
                {"timeout", required_argument, NULL, 'T'},   {"sync", no_argument, NULL, 's'},
                {"stdin", no_argument, NULL, 'i'},           {"tty", no_argument, NULL, 't'},
                {"transport", required_argument, NULL, 'X'}, {NULL, 0, NULL, 0}};
        /* '+': the command's own flags are not ours */
        while ((c = getopt_long(argc, argv, "+sit", opts, NULL)) != -1) {
                switch (c) {
                case 'T':
                        timeout = strtol(optarg, NULL, 10);
                        break;
                case 's':
                        break;
                case 'i':
                        in = true;
                        break;
                case 't':
                        tty = true;
                        break;
                case 'X':
                        if (strcmp(optarg, "websocket") == 0 || strcmp(optarg, "ws") == 0)
                                websocket = true;
                        else if (strcmp(optarg, "spdy") != 0) {
                                fprintf(stderr, "corralctl: unknown transport %s (spdy or websocket)\n",
                                        optarg);
                                return 2;
                        }
                        break;
                default:
                        return 2;
                }
        }
        if (argc - optind < 2) {
                fprintf(stderr,
                        "usage: corralctl exec [-i] [-t] [--transport spdy|websocket] [--timeout SECONDS] "
                        "CONTAINER-ID COMMAND [ARG...]\n");
                return 2;
        }
        cleanup_free char *id = ctl_resolve_container(ctl, argv[optind]);
        if (id == NULL)
                return 1;
        /* -i / -t: the streaming form through the streaming server (stream.c) */
        if (in || tty)
                return ctl_stream_exec(ctl, id, argv + optind + 1, in, tty, websocket);
        Runtime__V1__ExecSyncRequest req = RUNTIME__V1__EXEC_SYNC_REQUEST__INIT;
        req.container_id = id;
        req.cmd = argv + optind + 1;
        req.n_cmd = (size_t)(argc - optind - 1);
        req.timeout = timeout;
        int saved = ctl->timeout_ms;
        ctl->timeout_ms = timeout > 0 ? (int)(timeout * 1000) + 10000 : 24 * 3600 * 1000;
        ProtobufCMessage *resp = NULL;
        int r = ctl_call(ctl, "ExecSync", &req.base, &runtime__v1__exec_sync_response__descriptor, &resp);
        ctl->timeout_ms = saved;
        if (r)
                return 126;
        Runtime__V1__ExecSyncResponse *x = (Runtime__V1__ExecSyncResponse *)resp;
        if (x->stdout.len)
                fwrite(x->stdout.data, 1, x->stdout.len, stdout);
        if (x->stderr.len)
                fwrite(x->stderr.data, 1, x->stderr.len, stderr);
        int code = x->exit_code;
        protobuf_c_message_free_unpacked(resp, NULL);
        return code;
}

static void human(char *out, size_t len, uint64_t b)
{
        const char *u[] = {"B", "kB", "MB", "GB", "TB"};
        double v = (double)b;
        int i = 0;
        while (v >= 1000 && i < 4) {
                v /= 1000;
                i++;
        }
        snprintf(out, len, i ? "%.1f%s" : "%.0f%s", v, u[i]);
}

static int cmd_stats(struct ctl *ctl, int argc, char **argv)
{
        bool all = false;
        const char *pod = NULL;
        static const struct option opts[] = {
                {"all", no_argument, NULL, 'a'}, {"pod", required_argument, NULL, 'p'}, {NULL, 0, NULL, 0}};
        int c;
        while ((c = getopt_long(argc, argv, "ap:", opts, NULL)) != -1) {
                if (c == 'a')
                        all = true;
                else if (c == 'p')
                        pod = optarg;
                else
                        return 2;
        }
        (void)all;
        Runtime__V1__ListContainerStatsRequest req = RUNTIME__V1__LIST_CONTAINER_STATS_REQUEST__INIT;
        Runtime__V1__ContainerStatsFilter f = RUNTIME__V1__CONTAINER_STATS_FILTER__INIT;
        cleanup_free char *pod_id = NULL, *cid = NULL;
        if (pod && (pod_id = ctl_resolve_pod(ctl, pod)) == NULL)
                return 1;
        if (optind < argc && (cid = ctl_resolve_container(ctl, argv[optind])) == NULL)
                return 1;
        f.pod_sandbox_id = pod_id;
        f.id = cid;
        req.filter = &f;
        ProtobufCMessage *resp = NULL;
        if (ctl_call(ctl, "ListContainerStats", &req.base,
                     &runtime__v1__list_container_stats_response__descriptor, &resp))
                return 1;
        Runtime__V1__ListContainerStatsResponse *r = (Runtime__V1__ListContainerStatsResponse *)resp;
        if (ctl->output == CTL_OUT_JSON) {
                ctl_print_json(resp);
        } else {
                printf("%-13s  %-20s  %-10s  %-10s  %-10s  %-10s\n", "CONTAINER", "NAME", "CPU TIME", "MEM",
                       "DISK", "INODES");
                for (size_t i = 0; i < r->n_stats; i++) {
                        const Runtime__V1__ContainerStats *s = r->stats[i];
                        char sid[14], mem[16], disk[16], cpu[24];
                        uint64_t ns = s->cpu && s->cpu->usage_core_nano_seconds
                                              ? s->cpu->usage_core_nano_seconds->value
                                              : 0;
                        snprintf(cpu, sizeof(cpu), "%.2fs", (double)ns / 1e9);
                        human(mem, sizeof(mem),
                              s->memory && s->memory->working_set_bytes ? s->memory->working_set_bytes->value
                                                                        : 0);
                        human(disk, sizeof(disk),
                              s->writable_layer && s->writable_layer->used_bytes
                                      ? s->writable_layer->used_bytes->value
                                      : 0);
                        printf("%-13s  %-20s  %-10s  %-10s  %-10s  %-10llu\n",
                               ctl_short_id(s->attributes ? s->attributes->id : "", sid),
                               s->attributes && s->attributes->metadata ? s->attributes->metadata->name : "",
                               cpu, mem, disk,
                               (unsigned long long)(s->writable_layer && s->writable_layer->inodes_used
                                                            ? s->writable_layer->inodes_used->value
                                                            : 0));
                }
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

static int cmd_run(struct ctl *ctl, int argc, char **argv)
{
        const char *handler = "";
        int c;
        static const struct option opts[] = {{"runtime", required_argument, NULL, 'r'}, {0}};
        while ((c = getopt_long(argc, argv, "r:", opts, NULL)) != -1) {
                if (c != 'r')
                        return 2;
                handler = optarg;
        }
        if (argc - optind != 2) {
                fprintf(stderr, "usage: corralctl run [--runtime HANDLER] CONTAINER.json POD.json\n");
                return 2;
        }
        argv += optind - 1;
        ProtobufCMessage *ccm = NULL, *pcm = NULL;
        if (load(argv[1], &runtime__v1__container_config__descriptor, &ccm) ||
            load(argv[2], &runtime__v1__pod_sandbox_config__descriptor, &pcm)) {
                if (ccm)
                        protobuf_c_message_free_unpacked(ccm, NULL);
                return 1;
        }
        Runtime__V1__ContainerConfig *cc = (Runtime__V1__ContainerConfig *)ccm;
        Runtime__V1__PodSandboxConfig *pc = (Runtime__V1__PodSandboxConfig *)pcm;
        int rc = 1;
        ProtobufCMessage *resp = NULL;
        cleanup_free char *pod_id = NULL, *cid = NULL;
        int saved = ctl->timeout_ms;
        if (cc->image == NULL || *cc->image->image == '\0') {
                fprintf(stderr, "corralctl: %s names no image\n", argv[1]);
                goto out;
        }
        /* pull if missing */
        Runtime__V1__ImageStatusRequest isr = RUNTIME__V1__IMAGE_STATUS_REQUEST__INIT;
        isr.image = cc->image;
        if (ctl_call(ctl, "ImageStatus", &isr.base, &runtime__v1__image_status_response__descriptor, &resp))
                goto out;
        bool have = ((Runtime__V1__ImageStatusResponse *)resp)->image != NULL;
        protobuf_c_message_free_unpacked(resp, NULL);
        resp = NULL;
        if (!have) {
                Runtime__V1__PullImageRequest pr = RUNTIME__V1__PULL_IMAGE_REQUEST__INIT;
                pr.image = cc->image;
                pr.sandbox_config = pc;
                ctl->timeout_ms = 30 * 60 * 1000;
                int r = ctl_call(ctl, "PullImage", &pr.base, &runtime__v1__pull_image_response__descriptor,
                                 &resp);
                ctl->timeout_ms = saved;
                if (r)
                        goto out;
                fprintf(stderr, "pulled %s\n", ((Runtime__V1__PullImageResponse *)resp)->image_ref);
                protobuf_c_message_free_unpacked(resp, NULL);
                resp = NULL;
        }
        Runtime__V1__RunPodSandboxRequest rp = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
        rp.config = pc;
        rp.runtime_handler = (char *)handler;
        ctl->timeout_ms = saved < 120000 ? 120000 : saved;
        int r = ctl_call(ctl, "RunPodSandbox", &rp.base, &runtime__v1__run_pod_sandbox_response__descriptor,
                         &resp);
        ctl->timeout_ms = saved;
        if (r)
                goto out;
        pod_id = xstrdup(((Runtime__V1__RunPodSandboxResponse *)resp)->pod_sandbox_id);
        protobuf_c_message_free_unpacked(resp, NULL);
        resp = NULL;
        if (create_one(ctl, pod_id, cc, pc, &cid) || start_one(ctl, cid))
                goto out;
        printf("%s\n", cid);
        rc = 0;
out:
        if (rc && pod_id)
                fprintf(stderr,
                        "corralctl: pod sandbox %s was left for inspection (corralctl rmp to remove)\n",
                        pod_id);
        protobuf_c_message_free_unpacked(ccm, NULL);
        protobuf_c_message_free_unpacked(pcm, NULL);
        return rc;
}

const struct ctl_verb ctl_container_verbs[] = {
        {"create", "create a container: POD-ID CONTAINER.json POD.json", cmd_create},
        {"start", "start created containers", cmd_start},
        {"ps", "list containers [-a] [-q] [--pod ID] [--name N] [--state S]", cmd_ps},
        {"inspect", "show a container's status (verbose)", cmd_inspect},
        {"stop", "stop containers [-t SECONDS]", cmd_stop},
        {"rm", "remove containers", cmd_rm},
        {"logs", "print a container's log [-f]", cmd_logs},
        {"exec", "run a command in a container: ExecSync, or streaming with -i/-t", cmd_exec},
        {"stats", "resource usage of containers [--pod ID] [ID]", cmd_stats},
        {"run",
         "pull if needed, run a pod and a container in it: [--runtime HANDLER] CONTAINER.json POD.json",
         cmd_run},
        {NULL, NULL, NULL},
};
