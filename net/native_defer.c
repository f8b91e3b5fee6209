/* The slow end of a native DEL, after StopPodSandbox has replied.
 *
 * Deleting a veth makes the kernel wait for RCU grace periods (~20 ms
 * here, most of StopPodSandbox). The job holds the pod's netns open, so
 * the link stays until it deletes it, then releases the host-local address
 * (never before: no address goes to a new pod while its veth exists) and
 * removes the cached result last. If corrald dies first, the cache is still
 * there and RemovePodSandbox runs DEL again (net_cni_settle). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/native-internal.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

struct pending {
        char *pod_id;
        struct pending *next;
};
static struct pending *jobs;

static bool pending_has(const char *pod_id)
{
        for (struct pending *p = jobs; p; p = p->next)
                if (pod_id == NULL || !strcmp(p->pod_id, pod_id))
                        return true;
        return false;
}

static void job_free(struct native_del_job *j)
{
        if (j->nsfd >= 0)
                close(j->nsfd);
        free(j->ifname);
        free(j->ipam_dir);
        free(j->pod_id);
        free(j->cache_path);
        free(j);
}

static void *job_run(void *arg)
{
        struct native_del_job *j = arg;
        /* Tests widen the window between the reply and the job. */
        const char *delay = getenv("CORRAL_TEST_CNI_DEL_DELAY_MS");
        if (delay && *delay)
                usleep((useconds_t)atoi(delay) * 1000);
        struct native_ip had[8];
        size_t n = 0;
        char ns[64];
        snprintf(ns, sizeof(ns), "/proc/self/fd/%d", j->nsfd);
        cleanup_err struct err e = ERR_INIT;
        int r = native_pod_teardown(ns, j->ifname, j->loopback, true, had, 8, &n, &e);
        if (r == 0)
                r = native_ipam_release(j->ipam_dir, j->pod_id, j->ifname, &e);
        if (r == 0 && unlink(j->cache_path) < 0 && errno != ENOENT)
                r = err_make(&e, errno, "remove %s", j->cache_path);
        if (r < 0) /* the cache stays: RemovePodSandbox runs DEL again */
                log_warn("cni", "deferred DEL pod=%s: %s", j->pod_id, e.msg);
        pthread_mutex_lock(&mu);
        for (struct pending **p = &jobs; *p; p = &(*p)->next)
                if (!strcmp((*p)->pod_id, j->pod_id)) {
                        struct pending *q = *p;
                        *p = q->next;
                        free(q->pod_id);
                        free(q);
                        break;
                }
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
        job_free(j);
        return NULL;
}

int native_defer_start(struct native_del_job *in, struct err *e)
{
        struct native_del_job *j = xmalloc(sizeof(*j));
        *j = *in;
        struct pending *p = xzalloc(sizeof(*p));
        p->pod_id = xstrdup(j->pod_id);
        pthread_mutex_lock(&mu);
        p->next = jobs;
        jobs = p;
        pthread_mutex_unlock(&mu);
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 256 * 1024);
        pthread_t t;
        int r = pthread_create(&t, &at, job_run, j);
        pthread_attr_destroy(&at);
        if (r != 0) {
                /* Run it here: slower, still right. */
                (void)job_run(j);
                return 0;
        }
        (void)e;
        return 0;
}

void native_defer_wait(const char *pod_id)
{
        pthread_mutex_lock(&mu);
        while (pending_has(pod_id))
                pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
}
