/* corrald: flags and config in, daemon up, wait for a signal, daemon down. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "config/config.h"
#include "cri/cri.h"

#define DEFAULT_CONFIG    "/etc/corral/corral.json"
#define SHUTDOWN_GRACE_MS 10000

static void usage(FILE *f)
{
        fprintf(f, "Usage: corrald [OPTIONS]\n"
                   "\n"
                   "The corral CRI runtime daemon.\n"
                   "\n"
                   "  -c, --config FILE     configuration file (default " DEFAULT_CONFIG ", optional)\n"
                   "      --root DIR        persistent state (default /var/lib/corral)\n"
                   "      --state DIR       runtime state (default /run/corral)\n"
                   "  -l, --listen ADDR     gRPC socket (default unix:///run/corral/corral.sock)\n"
                   "      --log-level LVL   error, warn, info, debug or trace\n"
                   "      --log-format FMT  logfmt or json\n"
                   "      --debug-delay M=MS  tests only: delay method M by MS milliseconds\n"
                   "  -v, --version         print the version\n"
                   "  -h, --help            this help\n");
}

/* systemd Type=notify: say READY=1 on $NOTIFY_SOCKET when there is one. */
static void notify_ready(void)
{
        const char *path = getenv("NOTIFY_SOCKET");
        if (path == NULL || (*path != '/' && *path != '@') ||
            strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
                return;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        memcpy(sa.sun_path, path, strlen(path));
        if (sa.sun_path[0] == '@')
                sa.sun_path[0] = '\0';
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return;
        static const char msg[] = "READY=1";
        (void)sendto(fd, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&sa,
                     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path)));
        close(fd);
}

struct overrides {
        const char *root, *state, *listen, *level, *format;
};

static void replace(char **field, const char *value)
{
        free(*field);
        *field = xstrdup(value);
}

static int apply_overrides(struct cfg *c, const struct overrides *o, struct err *e)
{
        if (o->root)
                replace(&c->root, o->root);
        if (o->state)
                replace(&c->state, o->state);
        if (o->listen)
                replace(&c->listen, o->listen);
        if (o->level) {
                enum log_level lvl;
                if (log_level_parse(o->level, &lvl) < 0)
                        return err_set(e, ERR_INVALID,
                                       "--log-level %s: want error, warn, info, debug or trace", o->level);
                c->log_level = (int)lvl;
        }
        if (o->format) {
                if (strcmp(o->format, "json") != 0 && strcmp(o->format, "logfmt") != 0)
                        return err_set(e, ERR_INVALID, "--log-format %s: want logfmt or json", o->format);
                c->log_format = strcmp(o->format, "json") == 0 ? CFG_LOG_JSON : CFG_LOG_LOGFMT;
        }
        return 0;
}

int main(int argc, char **argv)
{
        enum { OPT_ROOT = 256, OPT_STATE, OPT_LOG_LEVEL, OPT_LOG_FORMAT, OPT_DEBUG_DELAY };
        static const struct option opts[] = {
                {"config", required_argument, NULL, 'c'},
                {"root", required_argument, NULL, OPT_ROOT},
                {"state", required_argument, NULL, OPT_STATE},
                {"listen", required_argument, NULL, 'l'},
                {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
                {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
                {"debug-delay", required_argument, NULL, OPT_DEBUG_DELAY},
                {"version", no_argument, NULL, 'v'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        const char *config = NULL, *root = NULL, *state = NULL, *listen = NULL, *level = NULL, *format = NULL;
        struct cri_daemon_opts dopts = {0};
        /* A relist reply at node scale is a few hundred KiB. glibc would map
         * each such buffer fresh and fault its pages in on every call, which
         * cost more than building the reply; up to 1 MiB comes from the heap
         * and up to 8 MiB of freed heap is kept for the next call. */
        mallopt(M_MMAP_THRESHOLD, 1 << 20);
        mallopt(M_TRIM_THRESHOLD, 8 << 20);
        int c;
        while ((c = getopt_long(argc, argv, "c:l:vh", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        config = optarg;
                        break;
                case OPT_ROOT:
                        root = optarg;
                        break;
                case OPT_STATE:
                        state = optarg;
                        break;
                case 'l':
                        listen = optarg;
                        break;
                case OPT_LOG_LEVEL:
                        level = optarg;
                        break;
                case OPT_LOG_FORMAT:
                        format = optarg;
                        break;
                case OPT_DEBUG_DELAY:
                        dopts.debug_delay = optarg;
                        break;
                case 'v':
                        printf("corrald %s\n", CORRAL_VERSION);
                        return 0;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "corrald: unexpected argument %s\n", argv[optind]);
                return 2;
        }

        struct cfg cfg;
        cfg_init_defaults(&cfg);
        cleanup_err struct err e = ERR_INIT;
        /* Flags win over the file; applied first too, so that paths the file
         * leaves empty resolve under the --root given on the command line. */
        struct overrides ov = {root, state, listen, level, format};
        if (apply_overrides(&cfg, &ov, &e) < 0 ||
            cfg_load(&cfg, config ? config : DEFAULT_CONFIG, config != NULL, &e) < 0 ||
            apply_overrides(&cfg, &ov, &e) < 0) {
                fprintf(stderr, "corrald: %s\n", e.msg);
                cfg_clear(&cfg);
                return 1;
        }
        log_set_level((enum log_level)cfg.log_level);
        log_set_json(cfg.log_format == CFG_LOG_JSON);

        /* Signals are taken synchronously by this thread only. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);

        struct cri_daemon *d = NULL;
        if (cri_daemon_start(&cfg, &dopts, &d, &e) < 0) {
                log_error("daemon", "start failed: %s", e.msg);
                cfg_clear(&cfg);
                return 1;
        }
        notify_ready();
        for (;;) {
                int sig = 0;
                if (sigwait(&set, &sig) != 0)
                        continue;
                if (sig == SIGHUP) {
                        log_info("daemon", "SIGHUP ignored: restart corrald to apply a new configuration");
                        continue;
                }
                log_info("daemon", "stopping signal=%s", strsignal(sig));
                break;
        }
        cri_daemon_stop(d, SHUTDOWN_GRACE_MS);
        cfg_clear(&cfg);
        return 0;
}
