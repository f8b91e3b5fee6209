/* version, info */
#include <string.h>

#include "cmd/corralctl/ctl.h"

static int cmd_version(struct ctl *ctl, int argc, char **argv)
{
        (void)argc, (void)argv;
        Runtime__V1__VersionRequest req = RUNTIME__V1__VERSION_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        if (ctl_call(ctl, "Version", &req.base, &runtime__v1__version_response__descriptor, &resp))
                return 1;
        Runtime__V1__VersionResponse *v = (Runtime__V1__VersionResponse *)resp;
        if (ctl->output == CTL_OUT_JSON) {
                ctl_print_json(resp);
        } else {
                printf("Version:  %s\nRuntimeName:  %s\nRuntimeVersion:  %s\nRuntimeApiVersion:  %s\n",
                       v->version, v->runtime_name, v->runtime_version, v->runtime_api_version);
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

static int cmd_info(struct ctl *ctl, int argc, char **argv)
{
        (void)argc, (void)argv;
        Runtime__V1__StatusRequest req = RUNTIME__V1__STATUS_REQUEST__INIT;
        req.verbose = true;
        ProtobufCMessage *resp = NULL;
        if (ctl_call(ctl, "Status", &req.base, &runtime__v1__status_response__descriptor, &resp))
                return 1;
        Runtime__V1__StatusResponse *s = (Runtime__V1__StatusResponse *)resp;
        if (ctl->output == CTL_OUT_JSON) {
                ctl_print_json(resp);
        } else {
                for (size_t i = 0; s->status && i < s->status->n_conditions; i++) {
                        Runtime__V1__RuntimeCondition *c = s->status->conditions[i];
                        printf("%-14s %-5s %s%s%s\n", c->type, c->status ? "true" : "false", c->reason,
                               *c->message ? ": " : "", c->message);
                }
                for (size_t i = 0; i < s->n_runtime_handlers; i++)
                        printf("handler        %s\n",
                               *s->runtime_handlers[i]->name ? s->runtime_handlers[i]->name : "(default)");
                for (size_t i = 0; i < s->n_info; i++)
                        printf("%s: %s\n", s->info[i]->key, s->info[i]->value);
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

const struct ctl_verb ctl_info_verbs[] = {
        {"version", "show the runtime's name and version", cmd_version},
        {"info", "show the runtime's status, handlers and host facts", cmd_info},
        {NULL, NULL, NULL},
};
