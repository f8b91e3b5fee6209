/* image/: the service object shared by pull.c and service.c. */
#ifndef CORRAL_IMAGE_SERVICE_INTERNAL_H
#define CORRAL_IMAGE_SERVICE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "image/image.h"
#include "image/index-internal.h"

/* Active snapshots of a pull in progress; stale ones (a crash) go in GC. */
#define IMG_EXTRACT_PREFIX "extract-"

/* One pull in progress, shared by every caller asking for the same
 * reference and platform. */
struct inflight {
        char *key;
        int users;
        bool done;
        struct err err;
        char *image_id;
        pthread_cond_t cond;
        struct inflight *next;
};

struct img_service {
        char *root;
        struct img_registry_conf *regs;
        size_t n_regs;
        int max_downloads;
        struct store *st;
        struct snap *sn;
        struct img_content *cs;
        pthread_mutex_t mu; /* inflight, gc_pending, pulls */
        struct inflight *inflight;
        int pulls;       /* running pulls: GC waits for none */
        bool gc_pending; /* a GC was asked for while pulls ran */
        bool gc_running; /* pulls wait for it (GC is short: local files only) */
        pthread_cond_t gc_cond;
        struct img_index idx; /* the records, in memory */

        /* ImageFsInfo's figures, kept by a thread of their own (usage.c). */
        pthread_t usage_thread;
        bool usage_started;
        pthread_mutex_t usage_mu;
        pthread_cond_t usage_cond;
        bool usage_stop;
        uint64_t usage_want, usage_done; /* content passes asked for / made */
        uint64_t content_bytes, content_inodes;
};

/* The usage thread (usage.c): start, stop, and ask for a pass over the
 * content store after it changed (a pull, import, commit or GC). */
void img_usage_start(struct img_service *svc);
void img_usage_stop(struct img_service *svc);
void img_usage_kick(struct img_service *svc);

/* The pull itself (pull.c); *image_id is the config digest. */
int pull_one(struct img_service *svc, const struct img_ref *ref, const char *refstr, const char *os,
             const char *arch, const char *variant, const struct img_auth *auth, img_progress_fn cb,
             void *cb_data, char **image_id, struct err *e);

/* Unpack one layer blob into a new snapshot `chain` over `parent` (NULL
 * for a base layer): an extract- active snapshot, committed when whole and
 * removed on error. *created (may be NULL) says whether this call committed
 * it (false: it was there already, or another pull won). */
int img_layer_apply(struct img_service *svc, const char *parent, const char *chain, const char *blob,
                    const char *media_type, bool *created, struct err *e);
bool img_snapshot_committed(struct snap *sn, const char *key);
/* sha256 of a layer blob's uncompressed bytes (its diff_id); cancel may be NULL. */
int img_layer_diff_id(const char *path, char **out, atomic_bool *cancel, struct err *e);

/* Imports and commits hold the service like a pull: GC waits for them. */
void img_service_hold(struct img_service *svc);
void img_service_release(struct img_service *svc);
/* Ask for a collection when the last holder lets go. */
void img_service_gc_later(struct img_service *svc);

#endif
