/* runp, pods, inspectp, stopp, rmp */
#include <getopt.h>
#include <string.h>

#include "cmd/corralctl/ctl.h"

char *ctl_resolve_pod(struct ctl *ctl, const char *id)
{
        Runtime__V1__ListPodSandboxRequest req = RUNTIME__V1__LIST_POD_SANDBOX_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        if (ctl_call(ctl, "ListPodSandbox", &req.base, &runtime__v1__list_pod_sandbox_response__descriptor,
                     &resp))
                return NULL;
        Runtime__V1__ListPodSandboxResponse *r = (Runtime__V1__ListPodSandboxResponse *)resp;
        char *found = NULL;
        int matches = 0;
        for (size_t i = 0; i < r->n_items; i++) {
                const Runtime__V1__PodSandbox *p = r->items[i];
                if (strcmp(p->id, id) == 0) {
                        free(found);
                        found = xstrdup(p->id);
                        matches = 1;
                        break;
                }
                if (str_has_prefix(p->id, id) || (p->metadata && strcmp(p->metadata->name, id) == 0)) {
                        if (found == NULL || strcmp(found, p->id) != 0)
                                matches++;
                        free(found);
                        found = xstrdup(p->id);
                }
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        if (matches == 1)
                return found;
        free(found);
        fprintf(stderr, "corralctl: pod sandbox %s: %s\n", id, matches ? "ambiguous prefix" : "not found");
        return NULL;
}

static const char *pod_state(Runtime__V1__PodSandboxState s)
{
        return s == RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY ? "Ready" : "NotReady";
}

static int cmd_runp(struct ctl *ctl, int argc, char **argv)
{
        const char *handler = "";
        int c;
        static const struct option opts[] = {{"runtime", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0}};
        while ((c = getopt_long(argc, argv, "r:", opts, NULL)) != -1) {
                if (c == 'r')
                        handler = optarg;
                else
                        return 2;
        }
        if (optind != argc - 1) {
                fprintf(stderr, "usage: corralctl runp [--runtime HANDLER] POD.json\n");
                return 2;
        }
        ProtobufCMessage *cfg = NULL;
        cleanup_err struct err e = ERR_INIT;
        if (ctl_json_file_to_pb(argv[optind], &runtime__v1__pod_sandbox_config__descriptor, &cfg, &e) < 0) {
                fprintf(stderr, "corralctl: %s\n", e.msg);
                return 1;
        }
        Runtime__V1__RunPodSandboxRequest req = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
        req.config = (Runtime__V1__PodSandboxConfig *)cfg;
        req.runtime_handler = (char *)handler;
        ProtobufCMessage *resp = NULL;
        int saved = ctl->timeout_ms;
        if (ctl->timeout_ms < 120000)
                ctl->timeout_ms = 120000; /* CNI can be slow the first time */
        int r = ctl_call(ctl, "RunPodSandbox", &req.base, &runtime__v1__run_pod_sandbox_response__descriptor,
                         &resp);
        ctl->timeout_ms = saved;
        protobuf_c_message_free_unpacked(cfg, NULL);
        if (r)
                return 1;
        printf("%s\n", ((Runtime__V1__RunPodSandboxResponse *)resp)->pod_sandbox_id);
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

static int cmd_pods(struct ctl *ctl, int argc, char **argv)
{
        bool quiet = false;
        const char *name = NULL, *state = NULL;
        int c;
        static const struct option opts[] = {{"quiet", no_argument, NULL, 'q'},
                                             {"name", required_argument, NULL, 'n'},
                                             {"state", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
        while ((c = getopt_long(argc, argv, "qn:s:", opts, NULL)) != -1) {
                if (c == 'q')
                        quiet = true;
                else if (c == 'n')
                        name = optarg;
                else if (c == 's')
                        state = optarg;
                else
                        return 2;
        }
        Runtime__V1__ListPodSandboxRequest req = RUNTIME__V1__LIST_POD_SANDBOX_REQUEST__INIT;
        Runtime__V1__PodSandboxFilter f = RUNTIME__V1__POD_SANDBOX_FILTER__INIT;
        Runtime__V1__PodSandboxStateValue sv = RUNTIME__V1__POD_SANDBOX_STATE_VALUE__INIT;
        if (state) {
                sv.state = strcasecmp(state, "ready") == 0 ? RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY
                                                           : RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
                f.state = &sv;
                req.filter = &f;
        }
        ProtobufCMessage *resp = NULL;
        if (ctl_call(ctl, "ListPodSandbox", &req.base, &runtime__v1__list_pod_sandbox_response__descriptor,
                     &resp))
                return 1;
        Runtime__V1__ListPodSandboxResponse *r = (Runtime__V1__ListPodSandboxResponse *)resp;
        if (ctl->output == CTL_OUT_JSON) {
                ctl_print_json(resp);
        } else {
                if (!quiet)
                        printf("%-13s  %-16s  %-10s  %-28s  %-12s  %-7s  %s\n", "POD ID", "CREATED", "STATE",
                               "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME");
                for (size_t i = 0; i < r->n_items; i++) {
                        const Runtime__V1__PodSandbox *p = r->items[i];
                        if (name && (!p->metadata || strstr(p->metadata->name, name) == NULL))
                                continue;
                        if (quiet) {
                                printf("%s\n", p->id);
                                continue;
                        }
                        char sid[14], age[32];
                        ctl_age(p->created_at, age, sizeof(age));
                        printf("%-13s  %-16s  %-10s  %-28s  %-12s  %-7u  %s\n", ctl_short_id(p->id, sid), age,
                               pod_state(p->state), p->metadata ? p->metadata->name : "",
                               p->metadata ? p->metadata->namespace_ : "",
                               p->metadata ? p->metadata->attempt : 0,
                               *p->runtime_handler ? p->runtime_handler : "(default)");
                }
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

static int cmd_inspectp(struct ctl *ctl, int argc, char **argv)
{
        if (argc < 2) {
                fprintf(stderr, "usage: corralctl inspectp POD-ID...\n");
                return 2;
        }
        int rc = 0;
        for (int i = 1; i < argc; i++) {
                cleanup_free char *id = ctl_resolve_pod(ctl, argv[i]);
                if (id == NULL) {
                        rc = 1;
                        continue;
                }
                Runtime__V1__PodSandboxStatusRequest req = RUNTIME__V1__POD_SANDBOX_STATUS_REQUEST__INIT;
                req.pod_sandbox_id = id;
                req.verbose = true;
                ProtobufCMessage *resp = NULL;
                if (ctl_call(ctl, "PodSandboxStatus", &req.base,
                             &runtime__v1__pod_sandbox_status_response__descriptor, &resp)) {
                        rc = 1;
                        continue;
                }
                ctl_print_json(resp);
                protobuf_c_message_free_unpacked(resp, NULL);
        }
        return rc;
}

static int each_pod(struct ctl *ctl, int argc, char **argv, const char *rpc, const char *verb)
{
        if (argc < 2) {
                fprintf(stderr, "usage: corralctl %s POD-ID...\n", verb);
                return 2;
        }
        int rc = 0;
        int saved = ctl->timeout_ms;
        if (ctl->timeout_ms < 120000)
                ctl->timeout_ms = 120000; /* containers get their grace periods */
        for (int i = 1; i < argc; i++) {
                cleanup_free char *id = ctl_resolve_pod(ctl, argv[i]);
                if (id == NULL) {
                        rc = 1;
                        continue;
                }
                ProtobufCMessage *resp = NULL;
                int r;
                if (strcmp(rpc, "StopPodSandbox") == 0) {
                        Runtime__V1__StopPodSandboxRequest req = RUNTIME__V1__STOP_POD_SANDBOX_REQUEST__INIT;
                        req.pod_sandbox_id = id;
                        r = ctl_call(ctl, rpc, &req.base, &runtime__v1__stop_pod_sandbox_response__descriptor,
                                     &resp);
                } else {
                        Runtime__V1__RemovePodSandboxRequest req =
                                RUNTIME__V1__REMOVE_POD_SANDBOX_REQUEST__INIT;
                        req.pod_sandbox_id = id;
                        r = ctl_call(ctl, rpc, &req.base,
                                     &runtime__v1__remove_pod_sandbox_response__descriptor, &resp);
                }
                if (r) {
                        rc = 1;
                        continue;
                }
                printf("%s pod sandbox %s\n", verb[0] == 's' ? "Stopped" : "Removed", id);
                protobuf_c_message_free_unpacked(resp, NULL);
        }
        ctl->timeout_ms = saved;
        return rc;
}

static int cmd_stopp(struct ctl *ctl, int argc, char **argv)
{
        return each_pod(ctl, argc, argv, "StopPodSandbox", "stopp");
}

static int cmd_rmp(struct ctl *ctl, int argc, char **argv)
{
        return each_pod(ctl, argc, argv, "RemovePodSandbox", "rmp");
}

const struct ctl_verb ctl_pod_verbs[] = {
        {"runp", "run a pod sandbox from a JSON PodSandboxConfig", cmd_runp},
        {"pods", "list pod sandboxes [-q] [--name N] [--state ready|notready]", cmd_pods},
        {"inspectp", "show a pod sandbox's status (verbose)", cmd_inspectp},
        {"stopp", "stop pod sandboxes", cmd_stopp},
        {"rmp", "remove pod sandboxes", cmd_rmp},
        {NULL, NULL, NULL},
};
