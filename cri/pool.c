/* A worker pool that grows on demand: a job never waits for a busy thread,
 * so one slow call (an image pull, a stop with a grace period) cannot delay
 * another. Idle threads above `keep_idle` retire after IDLE_NS. */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "cri/cri-internal.h"

#define IDLE_NS (30LL * 1000000000LL)

struct job {
        void (*fn)(void *);
        void *arg;
        struct job *next;
};

struct cri_pool {
        pthread_mutex_t mu;
        pthread_cond_t work;
        pthread_cond_t done;
        struct job *head, *tail;
        unsigned threads, idle, keep_idle, max_threads;
        bool closing;
};

static void *worker(void *arg)
{
        struct cri_pool *p = arg;
        pthread_mutex_lock(&p->mu);
        for (;;) {
                while (p->head == NULL && !p->closing) {
                        p->idle++;
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_sec += IDLE_NS / 1000000000LL;
                        int r = pthread_cond_timedwait(&p->work, &p->mu, &ts);
                        p->idle--;
                        if (r == ETIMEDOUT && p->head == NULL && p->threads > p->keep_idle)
                                goto out;
                }
                if (p->head == NULL && p->closing)
                        goto out;
                struct job *j = p->head;
                p->head = j->next;
                if (p->head == NULL)
                        p->tail = NULL;
                pthread_mutex_unlock(&p->mu);
                j->fn(j->arg);
                free(j);
                pthread_mutex_lock(&p->mu);
        }
out:
        p->threads--;
        pthread_cond_broadcast(&p->done);
        pthread_mutex_unlock(&p->mu);
        return NULL;
}

struct cri_pool *cri_pool_new(unsigned keep_idle, unsigned max_threads)
{
        struct cri_pool *p = xzalloc(sizeof(*p));
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->work, NULL);
        pthread_cond_init(&p->done, NULL);
        p->keep_idle = keep_idle;
        p->max_threads = max_threads;
        return p;
}

void cri_pool_submit(struct cri_pool *p, void (*fn)(void *), void *arg)
{
        struct job *j = xzalloc(sizeof(*j));
        j->fn = fn;
        j->arg = arg;
        pthread_mutex_lock(&p->mu);
        if (p->tail)
                p->tail->next = j;
        else
                p->head = j;
        p->tail = j;
        /* Count queued jobs against idle threads: spawn when they outnumber. */
        size_t queued = 0;
        for (struct job *q = p->head; q && queued <= p->idle; q = q->next)
                queued++;
        if (queued > p->idle && p->threads < p->max_threads) {
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                pthread_attr_setstacksize(&attr, 1 << 20);
                pthread_t t;
                if (pthread_create(&t, &attr, worker, p) == 0)
                        p->threads++;
                pthread_attr_destroy(&attr);
        }
        pthread_cond_signal(&p->work);
        pthread_mutex_unlock(&p->mu);
}

void cri_pool_free(struct cri_pool *p)
{
        if (p == NULL)
                return;
        pthread_mutex_lock(&p->mu);
        p->closing = true;
        pthread_cond_broadcast(&p->work);
        while (p->threads > 0)
                pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->work);
        pthread_cond_destroy(&p->done);
        free(p);
}
