/* usage_nano_cores for the stats RPCs and the CRI metrics alike. */
#include <pthread.h>
#include <string.h>

#include "cri/cri-internal.h"

/* Two samples per object, the older at least 1 s before the newer, so the
 * rate spans >= 1 s however often kubelet and others ask (kubelet's
 * cri_stats_provider keeps one previous sample the same way). Entries not
 * seen for 10 minutes go. The daemon is one per process: a static table. */
struct sample {
        char id[ID_LEN + 1];
        int64_t t_old, t_new, seen;
        uint64_t c_old, c_new;
};
static pthread_mutex_t samples_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sample *samples;
static size_t n_samples, cap_samples;
static int64_t last_sweep;

#define SAMPLE_MIN_NS  INT64_C(1000000000)
#define SAMPLE_KEEP_NS (INT64_C(600) * 1000000000)

static struct sample *sample_find(const char *id)
{
        for (size_t i = 0; i < n_samples; i++)
                if (strcmp(samples[i].id, id) == 0)
                        return &samples[i];
        return NULL;
}

static void sample_sweep(int64_t now)
{
        size_t k = 0;
        for (size_t i = 0; i < n_samples; i++)
                if (now - samples[i].seen < SAMPLE_KEEP_NS)
                        samples[k++] = samples[i];
        n_samples = k;
        last_sweep = now;
}

bool cri_cpu_nano_cores(const char *id, uint64_t cpu_ns, uint64_t *out)
{
        int64_t now = time_mono_ns();
        bool ok = false;
        pthread_mutex_lock(&samples_mu);
        if (now - last_sweep > SAMPLE_KEEP_NS)
                sample_sweep(now);
        struct sample *s = sample_find(id);
        if (s == NULL) {
                if (n_samples == cap_samples) {
                        cap_samples = cap_samples ? cap_samples * 2 : 64;
                        samples = xrealloc(samples, cap_samples * sizeof(*samples));
                }
                s = &samples[n_samples++];
                memset(s, 0, sizeof(*s));
                snprintf(s->id, sizeof(s->id), "%s", id);
                s->t_new = now;
                s->c_new = cpu_ns;
        } else if (cpu_ns < s->c_new) {
                /* A new cgroup under the same id: start over. */
                s->t_old = 0;
                s->t_new = now;
                s->c_new = cpu_ns;
        } else {
                if (now - s->t_new >= SAMPLE_MIN_NS) {
                        s->t_old = s->t_new;
                        s->c_old = s->c_new;
                        s->t_new = now;
                        s->c_new = cpu_ns;
                }
                if (s->t_old && now > s->t_old && cpu_ns >= s->c_old) {
                        *out = (uint64_t)((double)(cpu_ns - s->c_old) * 1e9 / (double)(now - s->t_old));
                        ok = true;
                }
        }
        s->seen = now;
        pthread_mutex_unlock(&samples_mu);
        return ok;
}
