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

static int cmp64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

#endif
