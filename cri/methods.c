/* The method table: every RPC of both CRI services, taken from the
 * protobuf-c service descriptors so none can be forgotten, joined with the
 * handlers the service-area files provide. */
#include <pthread.h>
#include <string.h>

#include "corral/v1/corral.pb-c.h"
#include "cri/cri-internal.h"

/* protobuf-c service descriptors do not record streaming; the proto does. */
static const char *const streaming_rpcs[] = {
        "StreamPodSandboxes",    "StreamContainers",        "StreamContainerStats",
        "StreamPodSandboxStats", "StreamPodSandboxMetrics", "GetContainerEvents",
        "StreamImages",          "PullImageProgress",       "ExportImage",
};

static const struct cri_handler *const *handler_tables(void)
{
        static const struct cri_handler *const tables[] = {
                cri_info_handlers,       cri_event_handlers,
                cri_image_handlers,      cri_pod_handlers,
                cri_pod_status_handlers, cri_container_handlers,
                cri_ctr_status_handlers, cri_ctr_update_handlers,
                cri_ctr_exec_handlers,   cri_stats_handlers,
                cri_streaming_handlers,  cri_pod_metrics_handlers,
                cri_image_io_handlers,   NULL,
        };
        return tables;
}

static struct cri_method *methods;
static size_t n_methods;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static const struct cri_handler *find_handler(const char *name)
{
        for (const struct cri_handler *const *t = handler_tables(); *t; t++)
                for (const struct cri_handler *h = *t; h->name; h++)
                        if (strcmp(h->name, name) == 0)
                                return h;
        return NULL;
}

static bool is_streaming(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(streaming_rpcs); i++)
                if (strcmp(streaming_rpcs[i], name) == 0)
                        return true;
        return false;
}

static void build(void)
{
        const ProtobufCServiceDescriptor *services[] = {
                &runtime__v1__runtime_service__descriptor,
                &runtime__v1__image_service__descriptor,
                &corral__v1__corral__descriptor,
        };
        size_t total = 0;
        for (size_t i = 0; i < ARRAY_SIZE(services); i++)
                total += services[i]->n_methods;
        methods = xcalloc(total, sizeof(*methods));
        for (size_t i = 0; i < ARRAY_SIZE(services); i++) {
                const ProtobufCServiceDescriptor *sd = services[i];
                for (unsigned j = 0; j < sd->n_methods; j++) {
                        struct cri_method *m = &methods[n_methods++];
                        m->name = sd->methods[j].name;
                        m->path = xasprintf("/%s/%s", sd->name, m->name);
                        m->input = sd->methods[j].input;
                        m->output = sd->methods[j].output;
                        m->server_streaming = is_streaming(m->name);
                        m->handler = find_handler(m->name);
                }
        }
}

const struct cri_method *cri_methods(size_t *n)
{
        pthread_once(&once, build);
        *n = n_methods;
        return methods;
}

int cri_status_code(const struct err *e)
{
        if (e == NULL || e->msg == NULL)
                return 0;
        return e->kind == ERR_OK ? ERR_INTERNAL : (int)e->kind;
}
