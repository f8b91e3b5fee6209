/* corral-shim: one per container. Started by corrald through shim_spawn();
 * see shim/shim.h. The options mirror struct shim_opts.
 *
 * `corral-shim exec ...` is the other mode: one interactive exec session
 * (shim_exec_spawn starts it; the options mirror struct shim_exec_opts). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>

#include "runtime/runtime.h"
#include "shim/shim.h"
#include "util/util.h"

static void usage(FILE *f)
{
        fprintf(f,
                "usage: corral-shim --id ID --bundle DIR --state DIR [--log PATH] [--stdin] [--stdin-once]\n"
                "                   [--tty] [--runtime PATH --runtime-root DIR] [--report-fd N] [--debug-log "
                "PATH] [--log-level LEVEL]\n"
                "                   [--cgroup-v1 LAYOUT]\n"
                "       corral-shim vm --id POD --bundle DIR --state DIR [--report-fd N] [--debug-log PATH]\n"
                "       corral-shim exec --bundle DIR --pid PID [--tty] [--resize-fd N] [--report-fd N]\n"
                "                   [--cwd DIR] [--env K=V]... -- CMD [ARG]...\n");
}

static int exec_main(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"bundle", required_argument, NULL, 'b'},
                {"pid", required_argument, NULL, 'p'},
                {"tty", no_argument, NULL, 't'},
                {"resize-fd", required_argument, NULL, 'z'},
                {"report-fd", required_argument, NULL, 'r'},
                {"cwd", required_argument, NULL, 'c'},
                {"env", required_argument, NULL, 'e'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct shim_exec_opts o = {
                .stdin_fd = 0, .stdout_fd = 1, .stderr_fd = 2, .report_fd = -1, .resize_fd = -1};
        cleanup_strv char **env = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
                switch (c) {
                case 'b':
                        o.bundle = optarg;
                        break;
                case 'p':
                        o.pid = (pid_t)atoi(optarg);
                        break;
                case 't':
                        o.tty = true;
                        break;
                case 'z':
                        o.resize_fd = atoi(optarg);
                        break;
                case 'r':
                        o.report_fd = atoi(optarg);
                        break;
                case 'c':
                        o.cwd = optarg;
                        break;
                case 'e':
                        strv_push(&env, optarg);
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!o.bundle || o.pid <= 0 || optind >= argc) {
                usage(stderr);
                return 2;
        }
        o.args = argv + optind;
        o.env = env;
        return shim_exec_run(&o);
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"id", required_argument, NULL, 'i'},
                {"bundle", required_argument, NULL, 'b'},
                {"state", required_argument, NULL, 's'},
                {"log", required_argument, NULL, 'l'},
                {"stdin", no_argument, NULL, 'I'},
                {"stdin-once", no_argument, NULL, 'O'},
                {"tty", no_argument, NULL, 't'},
                {"runtime", required_argument, NULL, 'R'},
                {"runtime-root", required_argument, NULL, 'T'},
                {"report-fd", required_argument, NULL, 'r'},
                {"debug-log", required_argument, NULL, 'd'},
                {"log-level", required_argument, NULL, 'L'},
                {"cgroup-v1", required_argument, NULL, 'C'},
                {"version", no_argument, NULL, 'V'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct shim_opts o = {0};
        int report_fd = -1;
        const char *debug_log = NULL;
        if (argc > 1 && strcmp(argv[1], "exec") == 0)
                return exec_main(argc - 1, argv + 1);
        bool vm_mode = argc > 1 && strcmp(argv[1], "vm") == 0;
        if (vm_mode) {
                /* `corral-shim vm --id POD --bundle DIR --state DIR`: the per-VM shim. */
                argc--;
                argv++;
        }
        int c;
        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                switch (c) {
                case 'i':
                        o.id = optarg;
                        break;
                case 'b':
                        o.bundle = optarg;
                        break;
                case 's':
                        o.state_dir = optarg;
                        break;
                case 'l':
                        o.log_path = optarg;
                        break;
                case 'I':
                        o.stdin_open = true;
                        break;
                case 'O':
                        o.stdin_once = true;
                        break;
                case 't':
                        o.tty = true;
                        break;
                case 'R':
                        o.runtime_path = optarg;
                        break;
                case 'T':
                        o.runtime_root = optarg;
                        break;
                case 'r':
                        report_fd = atoi(optarg);
                        break;
                case 'd':
                        debug_log = optarg;
                        break;
                case 'L': {
                        enum log_level lvl;
                        if (log_level_parse(optarg, &lvl) < 0) {
                                fprintf(stderr, "corral-shim: unknown log level %s\n", optarg);
                                return 2;
                        }
                        log_set_level(lvl);
                        break;
                }
                case 'C':
                        rt_cgroup_v1_preset(optarg);
                        break;
                case 'V':
                        printf("corral-shim %s\n", CORRAL_VERSION);
                        return 0;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!o.id || !o.bundle || !o.state_dir || (o.runtime_path && !o.runtime_root)) {
                usage(stderr);
                return 2;
        }
        o.shim_path = argv[0];
        if (debug_log) {
                /* shim_spawn leaves stderr on /dev/null; this is for debugging. */
                int fd = open(debug_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        dup2(fd, 2);
                        close(fd);
                }
        }
        return vm_mode ? shim_vm_run(&o, report_fd) : shim_run(&o, report_fd);
}
