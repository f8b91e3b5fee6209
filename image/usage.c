/* image/usage.c: ImageFsInfo's figures without a disk walk per call.
 *
 * kubelet asks for ImageFsInfo every few seconds (eviction and image GC
 * managers). Walking the content store and every container's writable
 * layer for each call grows with the node; containerd instead keeps
 * snapshot usage from a syncer that runs every stats_collect_period (10 s)
 * and answers from that. So do we: a thread walks the content store every
 * IMG_USAGE_PERIOD_S, and each active snapshot whose last walk (by it or by
 * the stats RPCs, which share the figures) is SNAP_LIVE_MAX_AGE_NS old;
 * committed layers are counted from the sizes recorded at commit, in
 * memory, at the time of the call. After a pull, import, commit or GC the
 * content store is walked again at once, and a call that comes meanwhile
 * waits for that walk, so an answer never predates a change this daemon
 * finished. */
#include <ftw.h>
#include <string.h>
#include <sys/stat.h>

#include "image/service-internal.h"
#include "snapshot/snapshot.h"

#define IMG_USAGE_PERIOD_S 10

static __thread uint64_t walk_bytes, walk_inodes;

static int walk_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)path, (void)flag, (void)ftw;
        walk_bytes += (uint64_t)st->st_blocks * 512;
        walk_inodes++;
        return 0;
}

static void du(const char *path, uint64_t *bytes, uint64_t *inodes)
{
        walk_bytes = walk_inodes = 0;
        (void)nftw(path, walk_cb, 32, FTW_PHYS | FTW_MOUNT);
        *bytes = walk_bytes;
        *inodes = walk_inodes;
}

static void *usage_main(void *arg)
{
        struct img_service *svc = arg;
        cleanup_free char *blobs = path_join(svc->root, "blobs");
        const int64_t period = IMG_USAGE_PERIOD_S * 1000000000LL;
        pthread_mutex_lock(&svc->usage_mu);
        while (!svc->usage_stop) {
                uint64_t want = svc->usage_want;
                pthread_mutex_unlock(&svc->usage_mu);
                int64_t now = time_mono_ns();
                uint64_t bytes = 0, inodes = 0;
                du(blobs, &bytes, &inodes);
                /* Only the writable layers whose last walk (here or by the
                 * stats RPCs) is a minute old: each tree once a minute. */
                snap_usage_refresh(svc->sn, SNAP_LIVE_MAX_AGE_NS);
                pthread_mutex_lock(&svc->usage_mu);
                svc->content_bytes = bytes;
                svc->content_inodes = inodes;
                svc->usage_done = want;
                pthread_cond_broadcast(&svc->usage_cond);
                int64_t next = now + period;
                struct timespec until = {.tv_sec = next / 1000000000LL, .tv_nsec = next % 1000000000LL};
                int r = 0;
                while (!svc->usage_stop && svc->usage_want == svc->usage_done && r == 0)
                        r = pthread_cond_timedwait(&svc->usage_cond, &svc->usage_mu, &until);
        }
        pthread_mutex_unlock(&svc->usage_mu);
        return NULL;
}

void img_usage_start(struct img_service *svc)
{
        pthread_mutex_init(&svc->usage_mu, NULL);
        pthread_condattr_t a;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&svc->usage_cond, &a);
        pthread_condattr_destroy(&a);
        svc->usage_want = 1; /* the first pass */
        svc->usage_started = pthread_create(&svc->usage_thread, NULL, usage_main, svc) == 0;
        if (!svc->usage_started)
                log_warn("image", "no usage thread: ImageFsInfo reports zero for the content store");
}

void img_usage_stop(struct img_service *svc)
{
        if (!svc->usage_started)
                return;
        pthread_mutex_lock(&svc->usage_mu);
        svc->usage_stop = true;
        pthread_cond_broadcast(&svc->usage_cond);
        pthread_mutex_unlock(&svc->usage_mu);
        pthread_join(svc->usage_thread, NULL);
        svc->usage_started = false;
        pthread_cond_destroy(&svc->usage_cond);
        pthread_mutex_destroy(&svc->usage_mu);
}

void img_usage_kick(struct img_service *svc)
{
        if (!svc->usage_started)
                return;
        pthread_mutex_lock(&svc->usage_mu);
        svc->usage_want++;
        pthread_cond_broadcast(&svc->usage_cond);
        pthread_mutex_unlock(&svc->usage_mu);
}

int img_fs_usage(struct img_service *svc, struct img_fs_usage *out, struct err *e)
{
        (void)e;
        memset(out, 0, sizeof(*out));
        out->mountpoint = svc->root;
        if (svc->usage_started) {
                pthread_mutex_lock(&svc->usage_mu);
                /* a pass asked for before this call (the first one, a change) */
                uint64_t want = svc->usage_want;
                while (svc->usage_done < want && !svc->usage_stop)
                        pthread_cond_wait(&svc->usage_cond, &svc->usage_mu);
                out->content_bytes = svc->content_bytes;
                out->content_inodes = svc->content_inodes;
                pthread_mutex_unlock(&svc->usage_mu);
        }
        snap_cached_usage(svc->sn, &out->snapshot_bytes, &out->snapshot_inodes);
        out->used_bytes = out->content_bytes + out->snapshot_bytes;
        out->inodes_used = out->content_inodes + out->snapshot_inodes;
        return 0;
}
