/* Shared helpers for the store tests: a scratch directory and record
 * builders with every field set. */
#ifndef CORRAL_TEST_STORE_COMMON_H
#define CORRAL_TEST_STORE_COMMON_H

#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "tests/unit/check.h"
#include "util/util.h"

/* Like CHECK_STR, but NULL equals NULL (the store round-trips NULL). */
#define CHECK_NSTR(a, b)                                                                                     \
        do {                                                                                                 \
                const char *_x = (a), *_y = (b);                                                             \
                if (_x == NULL || _y == NULL)                                                                \
                        CHECK(_x == _y);                                                                     \
                else                                                                                         \
                        CHECK_STR(_x, _y);                                                                   \
        } while (0)

static inline char *scratch_dir(const char *name)
{
        char *tmpl = xasprintf("/tmp/corral-%s-XXXXXX", name);
        if (!mkdtemp(tmpl)) {
                perror("mkdtemp");
                abort();
        }
        return tmpl;
}

static inline void make_pod(struct store_pod *p, const char *tag, int64_t created)
{
        memset(p, 0, sizeof(*p));
        id_generate(p->id);
        p->name = xasprintf("pod-%s", tag);
        p->uid = xasprintf("uid-%s", tag);
        p->namespace = xstrdup("default");
        p->attempt = 2;
        p->state = STORE_POD_READY;
        p->created_ns = created;
        p->runtime_handler = xstrdup("vm");
        p->labels_json = xstrdup("{\"app\":\"web\"}");
        p->annotations_json = xstrdup("{\"a\":\"b\"}");
        p->netns_path = xasprintf("/run/corral/ns/net-%s", tag);
        p->ips_json = xstrdup("[\"10.88.0.2\",\"fd00::2\"]");
        p->cgroup_parent = xstrdup("/kubepods/besteffort");
        p->config_len = 5;
        p->config = xmemdup("\x01\x00\x02\xff\x03", 5); /* embedded NUL on purpose */
        p->extra_json = xstrdup("{\"ports\":[80]}");
}

static inline void make_ctr(struct store_container *c, const char *pod_id, const char *tag, int64_t created)
{
        memset(c, 0, sizeof(*c));
        id_generate(c->id);
        snprintf(c->pod_id, sizeof(c->pod_id), "%s", pod_id);
        c->name = xasprintf("ctr-%s", tag);
        c->attempt = 3;
        c->image_ref = xstrdup("docker.io/library/busybox:latest");
        c->image_id = xstrdup("sha256:0123");
        c->state = STORE_CTR_EXITED;
        c->created_ns = created;
        c->started_ns = created + 10;
        c->finished_ns = created + 20;
        c->exit_code = -9;
        c->pid = 4242;
        c->reason = xstrdup("OOMKilled");
        c->message = xstrdup("out of memory");
        c->log_path = xasprintf("/var/log/pods/%s.log", tag);
        c->labels_json = xstrdup("{\"l\":\"1\"}");
        c->annotations_json = xstrdup("{\"an\":\"2\"}");
        c->snapshot_key = xstrdup(c->id);
        c->config_len = 3;
        c->config = xmemdup("\x00\x01\x00", 3);
        c->extra_json = xstrdup("{\"shim\":\"/run/corral/shim.sock\"}");
}

#endif
