/* What the CRI bench clients share: the client, a call that prints and
 * counts its failure, and an int64 comparison for qsort. Each bench is one
 * file, so these are static. */
#ifndef CORRAL_BENCH_H
#define CORRAL_BENCH_H

#include <stdatomic.h>
#include <stdio.h>

#include "cri/cri.h"
#include "runtime/v1/api.pb-c.h"

static struct cri_client *C;
static atomic_int failures;

/* The reply (free with protobuf_c_message_free_unpacked), or NULL. */
static ProtobufCMessage *call(const char *rpc, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *d)
{
        ProtobufCMessage *resp = NULL;
        cleanup_err struct err e = ERR_INIT;
        if (cri_client_call(C, cri_method_path(rpc), req, d, 120000, &resp, &e) < 0) {
                fprintf(stderr, "%s: %s\n", rpc, e.msg);
                failures++;
                return NULL;
        }
        return resp;
}

/* A pod on the host network, as the benches make theirs; pc is its config
 * (CreateContainer's sandbox_config), pointing into the other members. */
struct bench_host_pod {
        Runtime__V1__PodSandboxMetadata md;
        Runtime__V1__PodSandboxConfig pc;
        Runtime__V1__LinuxPodSandboxConfig lx;
        Runtime__V1__LinuxSandboxSecurityContext sc;
        Runtime__V1__NamespaceOption no;
};

/* Runs the pod `name` (kept by reference); its id (caller frees) or NULL. */
static inline char *bench_run_host_pod(struct bench_host_pod *h, char *name, const char *log_dir)
{
        runtime__v1__pod_sandbox_metadata__init(&h->md);
        runtime__v1__pod_sandbox_config__init(&h->pc);
        runtime__v1__linux_pod_sandbox_config__init(&h->lx);
        runtime__v1__linux_sandbox_security_context__init(
                &h->sc); /* the INIT macro names a deprecated field */
        runtime__v1__namespace_option__init(&h->no);
        h->md.name = name;
        h->md.uid = name;
        h->md.namespace_ = "bench";
        h->no.network = RUNTIME__V1__NAMESPACE_MODE__NODE;
        h->sc.namespace_options = &h->no;
        h->lx.security_context = &h->sc;
        h->pc.metadata = &h->md;
        h->pc.linux = &h->lx;
        h->pc.log_directory = (char *)log_dir;
        Runtime__V1__RunPodSandboxRequest rr = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
        rr.config = &h->pc;
        ProtobufCMessage *m =
                call("RunPodSandbox", &rr.base, &runtime__v1__run_pod_sandbox_response__descriptor);
        if (m == NULL)
                return NULL;
        char *id = xstrdup(((Runtime__V1__RunPodSandboxResponse *)m)->pod_sandbox_id);
        protobuf_c_message_free_unpacked(m, NULL);
        return id;
}

static int cmp64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

#endif
