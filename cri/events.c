/* Container events: a ring of the last EVENT_RING events and one
 * GetContainerEvents stream per subscriber. A subscriber that falls more
 * than a ring behind is told so in the log and skips ahead (kubelet's PLEG
 * relists anyway). */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "cri/cri-internal.h"

#define EVENT_RING 1024

struct slot {
        uint8_t *data;
        size_t len;
};

struct cri_events {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        struct slot ring[EVENT_RING];
        uint64_t next; /* sequence number of the next event */
        bool closed;
};

struct cri_events *cri_events_new(void)
{
        struct cri_events *ev = xzalloc(sizeof(*ev));
        pthread_mutex_init(&ev->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&ev->cv, &ca);
        pthread_condattr_destroy(&ca);
        return ev;
}

void cri_events_close(struct cri_events *ev)
{
        pthread_mutex_lock(&ev->mu);
        ev->closed = true;
        pthread_cond_broadcast(&ev->cv);
        pthread_mutex_unlock(&ev->mu);
}

void cri_events_free(struct cri_events *ev)
{
        if (ev == NULL)
                return;
        for (size_t i = 0; i < EVENT_RING; i++)
                free(ev->ring[i].data);
        pthread_mutex_destroy(&ev->mu);
        pthread_cond_destroy(&ev->cv);
        free(ev);
}

void cri_events_publish(struct cri_events *ev, const Runtime__V1__ContainerEventResponse *msg)
{
        size_t len = protobuf_c_message_get_packed_size(&msg->base);
        uint8_t *data = xmalloc(len);
        protobuf_c_message_pack(&msg->base, data);
        pthread_mutex_lock(&ev->mu);
        struct slot *s = &ev->ring[ev->next % EVENT_RING];
        free(s->data);
        s->data = data;
        s->len = len;
        ev->next++;
        pthread_cond_broadcast(&ev->cv);
        pthread_mutex_unlock(&ev->mu);
}

static int get_events(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req, struct err *e)
{
        (void)req;
        struct cri_events *ev = d->events;
        pthread_mutex_lock(&ev->mu);
        uint64_t seq = ev->next;
        for (;;) {
                while (seq == ev->next && !ev->closed && !cri_call_cancelled(call)) {
                        struct timespec ts;
                        clock_gettime(CLOCK_MONOTONIC, &ts);
                        ts.tv_nsec += 200 * 1000000L;
                        if (ts.tv_nsec >= 1000000000L) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000L;
                        }
                        (void)pthread_cond_timedwait(&ev->cv, &ev->mu, &ts);
                }
                if (ev->closed || cri_call_cancelled(call))
                        break;
                if (ev->next - seq > EVENT_RING) {
                        log_warn("cri", "events subscriber fell behind skipped=%llu",
                                 (unsigned long long)(ev->next - seq - EVENT_RING));
                        seq = ev->next - EVENT_RING;
                }
                struct slot *s = &ev->ring[seq % EVENT_RING];
                ProtobufCMessage *msg = protobuf_c_message_unpack(
                        &runtime__v1__container_event_response__descriptor, NULL, s->len, s->data);
                seq++;
                pthread_mutex_unlock(&ev->mu);
                int r = msg ? cri_call_send(call, msg, e) : 0;
                if (msg)
                        protobuf_c_message_free_unpacked(msg, NULL);
                if (r < 0)
                        return r;
                pthread_mutex_lock(&ev->mu);
        }
        pthread_mutex_unlock(&ev->mu);
        if (cri_call_cancelled(call) && !atomic_load(&d->stopping))
                return err_set(e, ERR_CANCELLED, "GetContainerEvents: the client went away");
        return 0;
}

const struct cri_handler cri_event_handlers[] = {
        {.name = "GetContainerEvents", .stream = get_events},
        {0},
};
