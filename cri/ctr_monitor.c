/* The exit monitor: one thread, one epoll, and for every running container
 * a shim connection with a wait pending (shim_wait_begin). When a
 * container exits its shim answers the wait; the record is brought up to
 * date at once and CONTAINER_STOPPED_EVENT goes out, without anyone having
 * to ask (kubelet's evented PLEG listens for it). A shim that dies closes the
 * connection; ctr_refresh then reads its exit file or records ShimGone.
 * Once a second it also sweeps the VM pods for a dead VM
 * (cri_pods_sweep). Lists and status calls only read the model. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "shim/shim.h"

struct watch {
        char id[ID_LEN + 1];
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

static void on_exit_ready(struct monitor *m, struct watch *w)
{
        struct shim_state st;
        cleanup_err struct err e = ERR_INIT;
        int r = shim_wait_finish(w->conn, &st, &e);
        unlink_watch(m, w);
        char id[ID_LEN + 1];
        snprintf(id, sizeof(id), "%s", w->id);
        watch_free(m, w);
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
        int64_t next_sweep = 0;
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
                /* A VM's death is noticed here, not when someone asks. */
                int64_t now = time_mono_ns();
                if (now >= next_sweep) {
                        cri_pods_sweep(m->d);
                        next_sweep = now + 1000000000LL;
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
        struct watch *w = xzalloc(sizeof(*w));
        snprintf(w->id, sizeof(w->id), "%s", c->id);
        w->conn = conn;
        pthread_mutex_lock(&m->mu);
        w->next = m->watches;
        m->watches = w;
        pthread_mutex_unlock(&m->mu);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = w};
        if (epoll_ctl(m->ep, EPOLL_CTL_ADD, shim_conn_fd(conn), &ev) < 0) {
                log_warn("cri", "monitor: epoll add container=%s: %s", c->id, strerror(errno));
                unlink_watch(m, w);
                watch_free(m, w);
        }
}

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
        struct swept_ids l = {0};
        model_pod_each(d->model, swept_of, &l);
        for (size_t i = 0; i < l.n; i++) {
                struct store_pod p = {0};
                struct cri_pod_extra x = {0};
                cleanup_err struct err e = ERR_INIT;
                cleanup_free char *reason = NULL;
                if (model_pod_get(d->model, l.id[i], &p, &e) == 0 &&
                    cri_pod_extra_parse(p.extra_json, &x, &e) == 0) {
                        const struct cri_handler_ops *ops = cri_handler_of_pod(&x);
                        if (ops->sandbox_dead && ops->sandbox_dead(&x, &reason))
                                cri_pod_died(d, l.id[i], reason);
                }
                cri_pod_extra_clear(&x);
                store_pod_clear(&p);
        }
        free(l.id);
}
