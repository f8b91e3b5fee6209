/* The exit monitor: one thread, one epoll, and for every running container
 * a shim connection with a wait pending (shim_wait_begin). When a
 * container exits its shim answers the wait; the record is brought up to
 * date at once and CONTAINER_STOPPED_EVENT goes out, without anyone having
 * to ask (kubelet's evented PLEG listens for it). A shim that dies closes the
 * connection; ctr_refresh then reads its exit file or records ShimGone.
 * Every READY pod whose sandbox can die by itself (a VM pod) is watched
 * the same way (sandbox_watch: the VM shim answers when QEMU ends, or hangs
 * up when it dies itself): the pod turns NOTREADY and its containers EXITED
 * at once (cri_pod_died). cri_pods_sweep asks every READY pod once, at
 * start-up, for deaths while corrald was down. Lists and status calls only
 * read the model. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "shim/shim.h"

struct watch {
        char id[ID_LEN + 1];
        bool pod; /* a pod's sandbox, not a container */
        struct shim_conn *conn;
        struct watch *next;
};

struct monitor {
        struct cri_daemon *d;
        pthread_t thread;
        int ep;
        int wake;
        pthread_mutex_t mu;
        struct watch *watches;
        atomic_bool stop;
};

/* One daemon per process; the pointer is set and cleared only by init and fini. */
static struct monitor *mon;

static void watch_free(struct monitor *m, struct watch *w)
{
        int fd = shim_conn_fd(w->conn);
        if (fd >= 0)
                (void)epoll_ctl(m->ep, EPOLL_CTL_DEL, fd, NULL);
        shim_close(w->conn);
        free(w);
}

static void unlink_watch(struct monitor *m, struct watch *w)
{
        pthread_mutex_lock(&m->mu);
        for (struct watch **pp = &m->watches; *pp; pp = &(*pp)->next) {
                if (*pp == w) {
                        *pp = w->next;
                        break;
                }
        }
        pthread_mutex_unlock(&m->mu);
}

static void watch_add(struct monitor *m, const char *id, bool pod, struct shim_conn *conn)
{
        struct watch *w = xzalloc(sizeof(*w));
        snprintf(w->id, sizeof(w->id), "%s", id);
        w->pod = pod;
        w->conn = conn;
        pthread_mutex_lock(&m->mu);
        w->next = m->watches;
        m->watches = w;
        pthread_mutex_unlock(&m->mu);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = w};
        if (epoll_ctl(m->ep, EPOLL_CTL_ADD, shim_conn_fd(conn), &ev) < 0) {
                log_warn("cri", "monitor: epoll add %s=%s: %s", pod ? "pod" : "container", id,
                         strerror(errno));
                unlink_watch(m, w);
                watch_free(m, w);
        }
}

/* The pod's sandbox, if it is READY and its type can die by itself: true
 * when it is dead (cri_pod_died has run), false when it lives (watched). */
static bool pod_check(struct monitor *m, const char *id, bool watch)
{
        struct store_pod p = {0};
        struct cri_pod_extra x = {0};
        cleanup_err struct err e = ERR_INIT;
        cleanup_free char *reason = NULL;
        bool dead = false;
        if (model_pod_get(m->d->model, id, &p, &e) == 0 && p.state == STORE_POD_READY &&
            cri_pod_extra_parse(p.extra_json, &x, &e) == 0) {
                const struct cri_handler_ops *ops = cri_handler_of_pod(&x);
                struct shim_conn *conn = NULL;
                if (ops->sandbox_dead && ops->sandbox_dead(&x, &reason))
                        dead = true;
                else if (watch && ops->sandbox_watch && ops->sandbox_watch(&x, &conn, &e) == 0)
                        watch_add(m, id, true, conn);
                else if (watch && ops->sandbox_watch)
                        log_debug("cri", "monitor: cannot watch pod=%s error=\"%s\"", id, e.msg);
        }
        cri_pod_extra_clear(&x);
        store_pod_clear(&p);
        if (dead)
                cri_pod_died(m->d, id, reason);
        return dead;
}

static void on_exit_ready(struct monitor *m, struct watch *w)
{
        struct shim_state st;
        cleanup_err struct err e = ERR_INIT;
        int r = shim_wait_finish(w->conn, w->pod ? NULL : &st, &e);
        unlink_watch(m, w);
        char id[ID_LEN + 1];
        snprintf(id, sizeof(id), "%s", w->id);
        bool pod = w->pod;
        watch_free(m, w);
        if (pod) {
                /* The VM ended (the shim answered) or the shim went (hung up).
                 * Not watched again: a shim that answers at once (one older
                 * than OP_WAIT on its VM socket) would spin the monitor. */
                int64_t t0 = time_mono_ns();
                if (pod_check(m, id, false))
                        log_info("cri", "monitor: pod=%s died, recorded in ms=%.3f", id,
                                 (double)(time_mono_ns() - t0) / 1e6);
                else if (r < 0)
                        log_debug("cri", "monitor: wait on pod=%s ended error=\"%s\"", id, e.msg);
                return;
        }
        if (r < 0)
                log_debug("cri", "monitor: wait on container=%s ended error=\"%s\"", id, e.msg);
        /* Either way the record is refreshed from the shim or its exit file. */
        struct store_container c = {0};
        if (model_ctr_get(m->d->model, id, &c, &e) == 0)
                ctr_refresh(m->d, &c);
        store_ctr_clear(&c);
}

static void *run(void *arg)
{
        struct monitor *m = arg;
        struct epoll_event evs[32];
        /* d->stopping too: the daemon is going down even if fini is late. */
        while (!atomic_load(&m->stop) && !atomic_load(&m->d->stopping)) {
                int n = epoll_wait(m->ep, evs, 32, 250);
                if (n < 0 && errno != EINTR)
                        break;
                for (int i = 0; i < n && !atomic_load(&m->stop) && !atomic_load(&m->d->stopping); i++) {
                        if (evs[i].data.ptr == NULL)
                                continue; /* the wake fd */
                        on_exit_ready(m, evs[i].data.ptr);
                }
        }
        return NULL;
}

int ctr_monitor_start(struct cri_daemon *d, struct err *e)
{
        if (mon)
                return 0;
        struct monitor *m = xzalloc(sizeof(*m));
        m->d = d;
        pthread_mutex_init(&m->mu, NULL);
        m->ep = epoll_create1(EPOLL_CLOEXEC);
        m->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (m->ep < 0 || m->wake < 0 || epoll_ctl(m->ep, EPOLL_CTL_ADD, m->wake, &ev) < 0) {
                int saved = errno;
                if (m->ep >= 0)
                        close(m->ep);
                if (m->wake >= 0)
                        close(m->wake);
                free(m);
                return err_make(e, saved, "container exit monitor");
        }
        int r = pthread_create(&m->thread, NULL, run, m);
        if (r != 0) {
                close(m->ep);
                close(m->wake);
                free(m);
                return err_make(e, r, "start container exit monitor");
        }
        mon = m;
        return 0;
}

void cri_containers_fini(struct cri_daemon *d)
{
        struct monitor *m = mon;
        if (m == NULL || m->d != d)
                return;
        atomic_store(&m->stop, true);
        uint64_t one = 1;
        (void)!write(m->wake, &one, sizeof(one));
        pthread_join(m->thread, NULL);
        mon = NULL;
        while (m->watches) {
                struct watch *w = m->watches;
                m->watches = w->next;
                watch_free(m, w);
        }
        close(m->ep);
        close(m->wake);
        pthread_mutex_destroy(&m->mu);
        free(m);
}

void ctr_monitor_watch(struct cri_daemon *d, const struct store_container *c)
{
        struct monitor *m = mon;
        if (m == NULL || m->d != d || atomic_load(&m->stop))
                return;
        cleanup_err struct err e = ERR_INIT;
        struct shim_conn *conn = NULL;
        if (ctr_connect(c, &conn, &e) < 0 || shim_wait_begin(conn, &e) < 0) {
                log_debug("cri", "monitor: cannot watch container=%s error=\"%s\"", c->id, e.msg);
                shim_close(conn);
                return;
        }
        watch_add(m, c->id, false, conn);
}

void ctr_monitor_watch_pod(struct cri_daemon *d, const struct store_pod *p, const struct cri_pod_extra *x)
{
        struct monitor *m = mon;
        const struct cri_handler_ops *ops = cri_handler_of_pod(x);
        if (m == NULL || m->d != d || atomic_load(&m->stop) || ops->sandbox_watch == NULL)
                return;
        /* No death check here: the caller may hold the pod's lock. A VM
         * already gone answers the wait at once. */
        cleanup_err struct err e = ERR_INIT;
        struct shim_conn *conn = NULL;
        if (ops->sandbox_watch(x, &conn, &e) < 0)
                log_warn("cri", "monitor: cannot watch pod=%s error=\"%s\"", p->id, e.msg);
        else
                watch_add(m, p->id, true, conn);
}

/* At start-up: a pod whose sandbox died while corrald was down is NOTREADY
 * now; every other READY pod of a type that can die is watched. */
struct swept_ids {
        char (*id)[ID_LEN + 1];
        size_t n;
};

static bool swept_of(const struct store_pod *p, const void *view, void *arg)
{
        (void)view;
        struct swept_ids *l = arg;
        if (p->state == STORE_POD_READY) {
                l->id = xrealloc(l->id, (l->n + 1) * sizeof(*l->id));
                memcpy(l->id[l->n++], p->id, sizeof(*l->id));
        }
        return true;
}

void cri_pods_sweep(struct cri_daemon *d)
{
        struct monitor *m = mon;
        if (m == NULL || m->d != d)
                return;
        struct swept_ids l = {0};
        model_pod_each(d->model, swept_of, &l);
        for (size_t i = 0; i < l.n; i++)
                (void)pod_check(m, l.id[i], true);
        free(l.id);
}
