/* Signal names to numbers: the image's StopSignal ("SIGTERM", "TERM", "15",
 * "SIGRTMIN+3") and the CRI Signal enum of ContainerConfig.stop_signal. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cri/ctr-internal.h"

static const struct {
        const char *name;
        int num;
} signals[] = {
        {"HUP", SIGHUP},       {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"ILL", SIGILL},
        {"TRAP", SIGTRAP},     {"ABRT", SIGABRT},   {"IOT", SIGIOT},   {"BUS", SIGBUS},
        {"FPE", SIGFPE},       {"KILL", SIGKILL},   {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},
        {"USR2", SIGUSR2},     {"PIPE", SIGPIPE},   {"ALRM", SIGALRM}, {"TERM", SIGTERM},
        {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},   {"CLD", SIGCHLD},  {"CONT", SIGCONT},
        {"STOP", SIGSTOP},     {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},
        {"URG", SIGURG},       {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM},
        {"PROF", SIGPROF},     {"WINCH", SIGWINCH}, {"IO", SIGIO},     {"POLL", SIGPOLL},
        {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

/* "n" after a prefix: a decimal offset, or -1. */
static long offset_of(const char *s)
{
        if (*s < '0' || *s > '9')
                return -1;
        char *end;
        long n = strtol(s, &end, 10);
        return *end == '\0' ? n : -1;
}

/* The real-time signals: "RTMIN", "RTMIN+n", "RTMAX-n" (signal(7), and
 * what moby's ParseSignal takes) and the enum spellings "RTMINPLUSn",
 * "RTMAXMINUSn". */
static int parse_rt(const char *p)
{
        long n = -1;
        if (strcasecmp(p, "RTMIN") == 0)
                return SIGRTMIN;
        if (strcasecmp(p, "RTMAX") == 0)
                return SIGRTMAX;
        if (strncasecmp(p, "RTMIN+", 6) == 0)
                n = offset_of(p + 6);
        else if (strncasecmp(p, "RTMINPLUS", 9) == 0)
                n = offset_of(p + 9);
        if (n >= 0)
                return n <= SIGRTMAX - SIGRTMIN ? SIGRTMIN + (int)n : 0;
        if (strncasecmp(p, "RTMAX-", 6) == 0)
                n = offset_of(p + 6);
        else if (strncasecmp(p, "RTMAXMINUS", 10) == 0)
                n = offset_of(p + 10);
        if (n >= 0)
                return n <= SIGRTMAX - SIGRTMIN ? SIGRTMAX - (int)n : 0;
        return 0;
}

int ctr_signal_parse(const char *s)
{
        if (s == NULL || *s == '\0')
                return 0;
        char *end;
        long n = strtol(s, &end, 10);
        if (*end == '\0')
                return n > 0 && n < NSIG ? (int)n : 0;
        const char *p = s;
        if (strncasecmp(p, "SIG", 3) == 0)
                p += 3;
        for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
                if (strcasecmp(p, signals[i].name) == 0)
                        return signals[i].num;
        return parse_rt(p);
}

int ctr_signal_from_cri(int v)
{
        if (v <= 0)
                return 0;
        const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value(&runtime__v1__signal__descriptor, v);
        if (ev == NULL)
                return 0;
        /* cri-api v0.37 prefixes every value with the enum's name
         * (SIGNAL_SIGTERM); older protos said SIGTERM. Take both. */
        const char *name = ev->name;
        if (strncmp(name, "SIGNAL_", 7) == 0)
                name += 7;
        return ctr_signal_parse(name);
}
