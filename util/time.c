#include <time.h>

#include "util/util.h"

static int64_t clock_ns(clockid_t id)
{
        struct timespec ts;
        clock_gettime(id, &ts);
        return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t time_now_ns(void)
{
        return clock_ns(CLOCK_REALTIME);
}
int64_t time_mono_ns(void)
{
        return clock_ns(CLOCK_MONOTONIC);
}

void time_rfc3339nano(int64_t ns, char out[40])
{
        time_t sec = (time_t)(ns / 1000000000LL);
        long frac = (long)(ns % 1000000000LL);
        if (frac < 0) {
                frac += 1000000000L;
                sec -= 1;
        }
        struct tm tm;
        gmtime_r(&sec, &tm);
        size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(out + n, 40 - n, ".%09ldZ", frac);
}
