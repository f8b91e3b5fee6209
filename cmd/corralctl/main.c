/* corralctl: a crictl-like client for corral (and any CRI runtime). */
#include <getopt.h>
#include <string.h>
#include <time.h>

#include "cmd/corralctl/ctl.h"

#define DEFAULT_ENDPOINT "unix:///run/corral/corral.sock"

static const struct ctl_verb *const verb_tables[] = {
        ctl_info_verbs,   ctl_image_verbs,    ctl_pod_verbs, ctl_container_verbs,
        ctl_stream_verbs, ctl_image_io_verbs, NULL,
};

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: corralctl [OPTIONS] COMMAND [ARGS]\n\n"
                "Options:\n"
                "  -r, --endpoint ADDR  CRI socket (default $CONTAINER_RUNTIME_ENDPOINT or " DEFAULT_ENDPOINT
                ")\n"
                "  -t, --timeout SECS   per-call timeout (default 10; pulls have their own)\n"
                "  -o, --output FMT     table or json\n"
                "  -h, --help           this help\n\nCommands:\n");
        for (const struct ctl_verb *const *t = verb_tables; *t; t++)
                for (const struct ctl_verb *v = *t; v->name; v++)
                        fprintf(f, "  %-14s %s\n", v->name, v->summary);
}

struct cri_client *ctl_client(struct ctl *ctl)
{
        if (ctl->client == NULL) {
                cleanup_err struct err e = ERR_INIT;
                if (cri_client_new(ctl->endpoint, &ctl->client, &e) < 0) {
                        fprintf(stderr, "corralctl: %s\n", e.msg);
                        return NULL;
                }
        }
        return ctl->client;
}

int ctl_call(struct ctl *ctl, const char *rpc, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp)
{
        struct cri_client *c = ctl_client(ctl);
        if (c == NULL)
                return 1;
        cleanup_err struct err e = ERR_INIT;
        if (cri_client_call(c, cri_method_path(rpc), req, desc, ctl->timeout_ms, resp, &e) < 0) {
                fprintf(stderr, "corralctl: %s: %s (%s)\n", rpc, e.msg, err_kind_name(e.kind));
                return 1;
        }
        return 0;
}

const char *ctl_short_id(const char *id, char buf[14])
{
        snprintf(buf, 14, "%.13s", id ? id : "");
        return buf;
}

void ctl_age(int64_t ns, char *buf, size_t len)
{
        int64_t s = (time_now_ns() - ns) / 1000000000LL;
        if (ns <= 0)
                snprintf(buf, len, "-");
        else if (s < 60)
                snprintf(buf, len, "%lld seconds ago", (long long)s);
        else if (s < 3600)
                snprintf(buf, len, "%lld minutes ago", (long long)(s / 60));
        else if (s < 86400)
                snprintf(buf, len, "%lld hours ago", (long long)(s / 3600));
        else
                snprintf(buf, len, "%lld days ago", (long long)(s / 86400));
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"endpoint", required_argument, NULL, 'r'},
                {"runtime-endpoint", required_argument, NULL, 'r'},
                {"timeout", required_argument, NULL, 't'},
                {"output", required_argument, NULL, 'o'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct ctl ctl = {.timeout_ms = 10000, .output = CTL_OUT_TABLE};
        ctl.endpoint = getenv("CONTAINER_RUNTIME_ENDPOINT");
        if (ctl.endpoint == NULL || *ctl.endpoint == '\0')
                ctl.endpoint = DEFAULT_ENDPOINT;
        int c;
        /* '+': stop at the verb, so verbs parse their own flags. */
        while ((c = getopt_long(argc, argv, "+r:t:o:h", opts, NULL)) != -1) {
                switch (c) {
                case 'r':
                        ctl.endpoint = optarg;
                        break;
                case 't': {
                        char *end;
                        double s = strtod(optarg, &end);
                        if (*end != '\0' || s <= 0) {
                                fprintf(stderr, "corralctl: bad timeout %s\n", optarg);
                                return 2;
                        }
                        ctl.timeout_ms = (int)(s * 1000);
                        break;
                }
                case 'o':
                        if (strcmp(optarg, "json") == 0)
                                ctl.output = CTL_OUT_JSON;
                        else if (strcmp(optarg, "table") == 0)
                                ctl.output = CTL_OUT_TABLE;
                        else {
                                fprintf(stderr, "corralctl: unknown output format %s (table or json)\n",
                                        optarg);
                                return 2;
                        }
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind >= argc) {
                usage(stderr);
                return 2;
        }
        const char *name = argv[optind];
        for (const struct ctl_verb *const *t = verb_tables; *t; t++) {
                for (const struct ctl_verb *v = *t; v->name; v++) {
                        if (strcmp(v->name, name) != 0)
                                continue;
                        optind++;
                        int sub_argc = argc - optind + 1;
                        char **sub_argv = argv + optind - 1;
                        optind = 1; /* verbs run getopt again on their own argv */
                        int r = v->run(&ctl, sub_argc, sub_argv);
                        cri_client_free(ctl.client);
                        return r;
                }
        }
        fprintf(stderr, "corralctl: unknown command %s\n", name);
        usage(stderr);
        return 2;
}
