/* Streaming benchmarks, and a one-shot streaming client the integration
 * tests use (the same code path as corralctl's exec -i/-t):
 *   bench_streaming -r EP exec [-i] [-t] [--ws] CONTAINER CMD...
 *       one Exec session with this process's stdio; exits with the code
 *   bench_streaming -r EP latency [-n 100] [-t] [-l LABEL] CONTAINER CMD...
 *       N x (Exec RPC + SPDY session to the end): p50/p90/p99
 *   bench_streaming -r EP pf [-m 1024] [-l LABEL] POD PORT
 *       one SPDY port-forward connection; M MiB written to a sink in the pod
 *       (which closes at EOF): MiB/s from the first byte to the pod's close */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cri/cri.h"
#include "runtime/v1/api.pb-c.h"
#include "stream/stream.h"

static const char *endpoint = "unix:///run/corral/corral.sock";
static const char *label = "corral";

static int cmp64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

static char *exec_url(struct cri_client *c, const char *cid, char **cmd, bool in, bool tty, struct err *e)
{
        Runtime__V1__ExecRequest req = RUNTIME__V1__EXEC_REQUEST__INIT;
        req.container_id = (char *)cid;
        req.cmd = cmd;
        req.n_cmd = strv_len(cmd);
        req.tty = tty;
        req.stdin = in;
        req.stdout = true;
        req.stderr = !tty;
        ProtobufCMessage *resp = NULL;
        if (cri_client_call(c, cri_method_path("Exec"), &req.base, &runtime__v1__exec_response__descriptor,
                            10000, &resp, e) < 0)
                return NULL;
        char *url = xstrdup(((Runtime__V1__ExecResponse *)resp)->url);
        protobuf_c_message_free_unpacked(resp, NULL);
        return url;
}

static int one_exec(struct cri_client *c, const char *cid, char **cmd, bool in, bool tty, bool ws, int out_fd,
                    int err_fd, struct err *e)
{
        cleanup_free char *url = exec_url(c, cid, cmd, in, tty, e);
        if (!url)
                return -1;
        struct stream_client_exec_opts o = {
                .tty = tty, .in_fd = in ? 0 : -1, .out_fd = out_fd, .err_fd = err_fd};
        struct stream_client_result res;
        int r;
        if (ws) {
                struct stream_ws_client *w = NULL;
                if (stream_ws_dial(url, NULL, &w, e) < 0)
                        return -1;
                r = stream_ws_exec(w, &o, &res, e);
                stream_ws_client_free(w);
        } else {
                struct stream_client *s = NULL;
                if (stream_client_dial(url, NULL, &s, e) < 0)
                        return -1;
                r = stream_client_exec(s, &o, &res, e);
                stream_client_free(s);
        }
        if (r < 0)
                return -1;
        int code = res.exit_code;
        if (code < 0)
                err_set(e, ERR_INTERNAL, "%s", res.message ? res.message : "session failed");
        stream_client_result_clear(&res);
        return code;
}

static int cmd_exec(struct cri_client *c, int argc, char **argv)
{
        static const struct option opts[] = {{"ws", no_argument, NULL, 'w'}, {NULL, 0, NULL, 0}};
        bool in = false, tty = false, ws = false;
        int ch;
        while ((ch = getopt_long(argc, argv, "+itw", opts, NULL)) != -1) {
                if (ch == 'i')
                        in = true;
                else if (ch == 't')
                        tty = true;
                else if (ch == 'w')
                        ws = true;
                else
                        return 2;
        }
        if (argc - optind < 2) {
                fprintf(stderr, "usage: bench_streaming exec [-i] [-t] [--ws] CONTAINER CMD...\n");
                return 2;
        }
        cleanup_err struct err e = ERR_INIT;
        int code = one_exec(c, argv[optind], argv + optind + 1, in, tty, ws, 1, tty ? -1 : 2, &e);
        if (code < 0) {
                fprintf(stderr, "bench_streaming: %s\n", e.msg ? e.msg : "exec failed");
                return 255;
        }
        return code;
}

static int cmd_latency(struct cri_client *c, int argc, char **argv)
{
        int n = 100;
        int ch;
        bool tty = false;
        while ((ch = getopt(argc, argv, "+n:l:t")) != -1) {
                if (ch == 'n')
                        n = atoi(optarg);
                else if (ch == 't')
                        tty = true;
                else if (ch == 'l')
                        label = optarg;
                else
                        return 2;
        }
        if (argc - optind < 2 || n <= 0)
                return 2;
        int64_t *lat = xcalloc((size_t)n, sizeof(*lat));
        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        int failed = 0;
        cleanup_err struct err e = ERR_INIT;
        (void)one_exec(c, argv[optind], argv + optind + 1, false, tty, false, devnull, tty ? -1 : devnull,
                       &e); /* warm */
        err_clear(&e);
        int64_t t0 = time_mono_ns();
        for (int i = 0; i < n; i++) {
                int64_t s = time_mono_ns();
                int code = one_exec(c, argv[optind], argv + optind + 1, false, tty, false, devnull,
                                    tty ? -1 : devnull, &e);
                lat[i] = time_mono_ns() - s;
                if (code != 0) {
                        if (failed++ == 0)
                                fprintf(stderr, "exec failed: code %d %s\n", code, e.msg ? e.msg : "");
                        err_clear(&e);
                }
        }
        int64_t wall = time_mono_ns() - t0;
        qsort(lat, (size_t)n, sizeof(*lat), cmp64);
        printf("%s: exec%s round trip (%s, %d times): p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  mean %.2f ms  "
               "failed %d\n",
               label, tty ? " -t" : "", argv[optind + 1], n, lat[n / 2] / 1e6, lat[n * 9 / 10] / 1e6,
               lat[(n * 99) / 100] / 1e6, (double)wall / n / 1e6, failed);
        close(devnull);
        free(lat);
        return failed ? 1 : 0;
}

static int cmd_pf(struct cri_client *c, int argc, char **argv)
{
        long mib = 1024;
        int ch;
        while ((ch = getopt(argc, argv, "+m:l:")) != -1) {
                if (ch == 'm')
                        mib = atol(optarg);
                else if (ch == 'l')
                        label = optarg;
                else
                        return 2;
        }
        if (argc - optind != 2 || mib <= 0)
                return 2;
        int32_t port = atoi(argv[optind + 1]);
        Runtime__V1__PortForwardRequest req = RUNTIME__V1__PORT_FORWARD_REQUEST__INIT;
        req.pod_sandbox_id = argv[optind];
        req.port = &port;
        req.n_port = 1;
        cleanup_err struct err e = ERR_INIT;
        ProtobufCMessage *resp = NULL;
        if (cri_client_call(c, cri_method_path("PortForward"), &req.base,
                            &runtime__v1__port_forward_response__descriptor, 10000, &resp, &e) < 0) {
                fprintf(stderr, "PortForward: %s\n", e.msg);
                return 1;
        }
        cleanup_free char *url = xstrdup(((Runtime__V1__PortForwardResponse *)resp)->url);
        protobuf_c_message_free_unpacked(resp, NULL);
        struct stream_client *s = NULL;
        if (stream_client_dial(url, NULL, &s, &e) < 0) {
                fprintf(stderr, "dial: %s\n", e.msg);
                return 1;
        }
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                return 1;
        if (stream_client_forward(s, (uint16_t)port, sp[1], &e) < 0) {
                fprintf(stderr, "forward: %s\n", e.msg);
                return 1;
        }
        signal(SIGPIPE, SIG_IGN); /* a broken forward shows as a short count, not a silent death */
        size_t chunk = 1 << 20;
        char *buf = xzalloc(chunk);
        /* A first small write, and a pause for the server to connect in the
         * pod: what a client sends before that is buffered by the server
         * (only up to 4 MiB, see the report). */
        (void)fd_write_all(sp[0], buf, 4096);
        struct timespec pause = {0, 100 * 1000000L};
        nanosleep(&pause, NULL);
        int64_t t0 = time_mono_ns();
        long sent = 0;
        for (; sent < mib; sent++)
                if (fd_write_all(sp[0], buf, chunk) < 0)
                        break;
        (void)shutdown(sp[0], SHUT_WR);
        /* The sink closes after EOF: everything went through. */
        while (read(sp[0], buf, chunk) > 0)
                ;
        int64_t dt = time_mono_ns() - t0;
        char *errors = NULL;
        int nerr = stream_client_forward_wait(s, &errors);
        if (sent < mib || nerr)
                fprintf(stderr, "port-forward: sent %ld of %ld MiB; %s\n", sent, mib, errors ? errors : "");
        printf("%s: port-forward throughput (SPDY, %ld MiB into the pod): %.1f MiB/s (%.2f s)\n", label, sent,
               (double)sent / (dt / 1e9), dt / 1e9);
        free(errors);
        free(buf);
        close(sp[0]);
        stream_client_free(s);
        return sent < mib || nerr ? 1 : 0;
}

int main(int argc, char **argv)
{
        int ch;
        while ((ch = getopt(argc, argv, "+r:")) != -1) {
                if (ch == 'r')
                        endpoint = optarg;
                else
                        return 2;
        }
        if (optind >= argc) {
                fprintf(stderr, "usage: bench_streaming [-r ENDPOINT] exec|latency|pf ...\n");
                return 2;
        }
        const char *verb = argv[optind];
        int sub_argc = argc - optind;
        char **sub_argv = argv + optind;
        optind = 1;
        struct cri_client *c = NULL;
        cleanup_err struct err e = ERR_INIT;
        if (cri_client_new(endpoint, &c, &e) < 0) {
                fprintf(stderr, "bench_streaming: %s\n", e.msg);
                return 1;
        }
        int r = 2;
        if (strcmp(verb, "exec") == 0)
                r = cmd_exec(c, sub_argc, sub_argv);
        else if (strcmp(verb, "latency") == 0)
                r = cmd_latency(c, sub_argc, sub_argv);
        else if (strcmp(verb, "pf") == 0)
                r = cmd_pf(c, sub_argc, sub_argv);
        else
                fprintf(stderr, "bench_streaming: unknown verb %s\n", verb);
        cri_client_free(c);
        return r;
}
