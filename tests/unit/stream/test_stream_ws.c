/* The streaming server over WebSocket, driven by a client that is not ours:
 * Debian's python3-websocket (ws_client.py). Skips (77) without it. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "stream/stream.h"
#include "test_backend.h"
#include "util/util.h"

#define PY "/usr/bin/python3"

static int failures;
static struct test_backend tb;

static int py(const char *kase, const char *url, const char *arg)
{
        pid_t pid = fork();
        if (pid == 0) {
                execl(PY, PY, WS_CLIENT_PY, kase, url, arg, (char *)NULL);
                _exit(127);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        fprintf(stderr, "%s %s\n", rc == 0 ? "ok  " : "FAIL", kase);
        if (rc != 0)
                failures++;
        return rc;
}

static char *exec_url(struct stream_server *srv, char **cmd, bool tty, bool in, bool out, bool errs)
{
        struct stream_exec_req q = {.container_id = "c1",
                                    .cmd = cmd,
                                    .tty = tty,
                                    .use_stdin = in,
                                    .use_stdout = out,
                                    .use_stderr = errs};
        char *url = NULL;
        struct err e = ERR_INIT;
        if (stream_token_exec(srv, &q, &url, &e) < 0)
                abort();
        return url;
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN);
        if (system(PY " -c 'import websocket' 2>/dev/null") != 0) {
                fprintf(stderr,
                        "skip: python3-websocket is not installed (apt-get install python3-websocket)\n");
                return 77;
        }
        struct stream_server *srv = NULL;
        struct err e = ERR_INIT;
        if (stream_server_new(NULL, &test_backend_ops, &tb, &srv, &e) < 0) {
                fprintf(stderr, "server: %s\n", e.msg);
                return 1;
        }
        struct echo_server es;
        if (echo_server_start(&es) < 0)
                return 1;

        char *three[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
        char *cat[] = {"cat", NULL};
        char *stty[] = {"sh", "-c", "read x; stty size", NULL};
        char *tru[] = {"true", NULL};

        cleanup_free char *u1 = exec_url(srv, three, false, false, true, true);
        py("exec-v4", u1, NULL);
        py("reused", u1, NULL);
        cleanup_free char *u2 = exec_url(srv, three, false, false, true, true);
        py("exec-v5", u2, NULL);
        cleanup_free char *u3 = exec_url(srv, cat, false, true, true, false);
        py("cat-v5", u3, NULL);
        cleanup_free char *u4 = exec_url(srv, three, false, false, true, true);
        py("base64", u4, NULL);
        cleanup_free char *u5 = exec_url(srv, stty, true, true, true, false);
        py("tty", u5, NULL);
        cleanup_free char *u6 = exec_url(srv, cat, false, true, true, false);
        py("malformed", u6, NULL);
        cleanup_free char *u7 = exec_url(srv, tru, false, false, true, false);
        py("noproto", u7, NULL);

        cleanup_free char *pf1 = NULL, *pf2 = NULL;
        if (stream_token_portforward(srv, "pod1", &pf1, &e) < 0 ||
            stream_token_portforward(srv, "pod1", &pf2, &e) < 0)
                return 1;
        char port[8];
        snprintf(port, sizeof(port), "%u", es.port);
        py("portforward", pf1, port);
        py("portforward-refused", pf2, NULL);

        /* after the malformed frame the server still serves */
        cleanup_free char *u8 = exec_url(srv, three, false, false, true, true);
        py("exec-v4", u8, NULL);

        stream_server_free(srv);
        echo_server_stop(&es);

        /* The same over TLS (wss://) with a throw-away self-signed certificate. */
        char dir[] = "/tmp/corral-stream-tls-XXXXXX";
        if (mkdtemp(dir) && system("command -v openssl >/dev/null") == 0) {
                cleanup_free char *cert = xasprintf("%s/cert.pem", dir);
                cleanup_free char *key = xasprintf("%s/key.pem", dir);
                cleanup_free char *gen =
                        xasprintf("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                                  "-keyout %s -out %s >/dev/null 2>&1",
                                  key, cert);
                if (system(gen) == 0) {
                        struct stream_config cfg = {.tls_cert = cert, .tls_key = key};
                        struct stream_server *tls = NULL;
                        if (stream_server_new(&cfg, &test_backend_ops, &tb, &tls, &e) < 0) {
                                fprintf(stderr, "FAIL tls server: %s\n", e.msg);
                                failures++;
                        } else {
                                cleanup_free char *t1 = exec_url(tls, three, false, false, true, true);
                                if (!str_has_prefix(t1, "https://")) {
                                        fprintf(stderr, "FAIL tls url %s\n", t1);
                                        failures++;
                                }
                                py("exec-v4", t1, NULL);
                                cleanup_free char *t2 = exec_url(tls, cat, false, true, true, false);
                                py("cat-v5", t2, NULL);
                                stream_server_free(tls);
                        }
                } else {
                        fprintf(stderr, "skip tls: openssl could not make a certificate\n");
                }
                (void)rm_rf(dir, NULL);
        } else {
                fprintf(stderr, "skip tls: no openssl binary\n");
        }
        if (failures) {
                fprintf(stderr, "%d failure(s)\n", failures);
                return 1;
        }
        printf("ok\n");
        return 0;
}
