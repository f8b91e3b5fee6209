/* cri: every value of the CRI Signal enum (cri-api v0.37 names,
 * SIGNAL_...) maps to its Linux signal number; StopSignal names of images. */
#include <signal.h>

#include "cri/ctr-internal.h"
#include "tests/unit/check.h"

/* The number each enum value must give, by the enum's number: written out
 * here rather than derived from the names, so a wrong table shows. */
static int expected(int v)
{
        static const int fixed[] = {
                [1] = SIGABRT,    [2] = SIGALRM,   [3] = SIGBUS,   [4] = SIGCHLD,  [5] = SIGCHLD,
                [6] = SIGCONT,    [7] = SIGFPE,    [8] = SIGHUP,   [9] = SIGILL,   [10] = SIGINT,
                [11] = SIGIO,     [12] = SIGABRT,  [13] = SIGKILL, [14] = SIGPIPE, [15] = SIGIO,
                [16] = SIGPROF,   [17] = SIGPWR,   [18] = SIGQUIT, [19] = SIGSEGV, [20] = SIGSTKFLT,
                [21] = SIGSTOP,   [22] = SIGSYS,   [23] = SIGTERM, [24] = SIGTRAP, [25] = SIGTSTP,
                [26] = SIGTTIN,   [27] = SIGTTOU,  [28] = SIGURG,  [29] = SIGUSR1, [30] = SIGUSR2,
                [31] = SIGVTALRM, [32] = SIGWINCH, [33] = SIGXCPU, [34] = SIGXFSZ,
        };
        if (v >= 1 && v <= 34)
                return fixed[v];
        if (v >= 35 && v <= 50) /* SIGRTMIN, SIGRTMINPLUS1..15 */
                return 34 + (v - 35);
        if (v >= 51 && v <= 65) /* SIGRTMAXMINUS14..1, SIGRTMAX */
                return 64 - (65 - v);
        return 0;
}

static void test_enum(void)
{
        const ProtobufCEnumDescriptor *d = &runtime__v1__signal__descriptor;
        CHECK(d->n_values == 66);
        for (unsigned i = 0; i < d->n_values; i++) {
                const ProtobufCEnumValue *ev = &d->values[i];
                int got = ctr_signal_from_cri(ev->value);
                check_count++;
                if (got != expected(ev->value)) {
                        check_failures++;
                        fprintf(stderr, "%s (%d): got signal %d, want %d\n", ev->name, ev->value, got,
                                expected(ev->value));
                }
                /* Every value but the default names a signal. */
                CHECK((ev->value == 0) == (got == 0));
        }
        CHECK(ctr_signal_from_cri(RUNTIME__V1__SIGNAL__SIGNAL_RUNTIME_DEFAULT) == 0);
        CHECK(ctr_signal_from_cri(RUNTIME__V1__SIGNAL__SIGNAL_SIGUSR1) == SIGUSR1);
        CHECK(ctr_signal_from_cri(RUNTIME__V1__SIGNAL__SIGNAL_SIGRTMINPLUS1) == SIGRTMIN + 1);
        CHECK(ctr_signal_from_cri(RUNTIME__V1__SIGNAL__SIGNAL_SIGRTMAXMINUS1) == SIGRTMAX - 1);
        CHECK(ctr_signal_from_cri(66) == 0);
        CHECK(ctr_signal_from_cri(-1) == 0);
}

static void test_names(void)
{
        /* glibc keeps 32 and 33 for itself: what moby, Go and containers see. */
        CHECK(SIGRTMIN == 34 && SIGRTMAX == 64);
        CHECK(ctr_signal_parse("SIGTERM") == SIGTERM);
        CHECK(ctr_signal_parse("term") == SIGTERM);
        CHECK(ctr_signal_parse("9") == SIGKILL);
        CHECK(ctr_signal_parse("SIGCLD") == SIGCHLD);
        CHECK(ctr_signal_parse("SIGRTMIN") == 34);
        CHECK(ctr_signal_parse("SIGRTMIN+3") == 37);
        CHECK(ctr_signal_parse("RTMAX-2") == 62);
        CHECK(ctr_signal_parse("SIGRTMAX") == 64);
        CHECK(ctr_signal_parse("SIGRTMIN+31") == 0);
        CHECK(ctr_signal_parse("SIGRTMAX-31") == 0);
        CHECK(ctr_signal_parse("SIGRTMIN+99999999999999999999") == 0);
        CHECK(ctr_signal_parse("SIGRTMIN+") == 0);
        CHECK(ctr_signal_parse("SIGRTMIN+-1") == 0);
        CHECK(ctr_signal_parse("SIGBOGUS") == 0);
        CHECK(ctr_signal_parse("0") == 0);
        CHECK(ctr_signal_parse("") == 0);
        CHECK(ctr_signal_parse(NULL) == 0);
}

int main(void)
{
        test_enum();
        test_names();
        return check_report("cri_signal");
}
