/* corralctl stream verbs: attach, port-forward; and ctl_stream_exec, the
 * interactive half of `exec -i/-t` (the exec verb lives in containers.c).
 * The RPC hands out a URL; the session runs over SPDY/3.1 (default, what
 * kubelet and crictl speak) or WebSocket (--transport=websocket). */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "cmd/corralctl/ctl.h"
#include "stream/stream.h"

/* ---------- one exec/attach session over either transport ---------- */

struct session {
        struct stream_client *spdy;
        struct stream_ws_client *ws;
        pthread_mutex_t lock; /* the SIGWINCH thread vs. the end of the session */
        bool over;
};

static int session_resize(struct session *s, uint16_t w, uint16_t h)
{
        int r = 0;
        pthread_mutex_lock(&s->lock);
        if (!s->over)
                r = s->ws ? stream_ws_resize(s->ws, w, h, NULL) : stream_client_resize(s->spdy, w, h, NULL);
        pthread_mutex_unlock(&s->lock);
        return r;
}

static bool term_size(uint16_t *w, uint16_t *h)
{
        struct winsize ws;
        for (int fd = 0; fd <= 2; fd++) {
                if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) {
                        *w = ws.ws_col;
                        *h = ws.ws_row;
                        return true;
                }
        }
        return false;
}

static void *winch_main(void *arg)
{
        struct session *s = arg;
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGWINCH);
        for (;;) {
                int sig;
                if (sigwait(&set, &sig) != 0)
                        continue;
                uint16_t w, h;
                if (term_size(&w, &h))
                        (void)session_resize(s, w, h);
        }
        return NULL;
}

/* Runs the session to its end; returns the remote command's exit code (or
 * 1 with a message when the session failed). */
static int run_session(const char *url, bool in, bool tty, bool websocket)
{
        cleanup_err struct err e = ERR_INIT;
        struct session s = {0};
        pthread_mutex_init(&s.lock, NULL);
        int r = websocket ? stream_ws_dial(url, NULL, &s.ws, &e) : stream_client_dial(url, NULL, &s.spdy, &e);
        if (r < 0) {
                fprintf(stderr, "corralctl: %s\n", e.msg);
                return 1;
        }
        struct stream_client_exec_opts o = {
                .tty = tty,
                .in_fd = in ? 0 : -1,
                .out_fd = 1,
                .err_fd = tty ? -1 : 2,
        };
        struct termios saved;
        bool raw = false;
        if (tty) {
                (void)term_size(&o.width, &o.height);
                if (in && isatty(0) && tcgetattr(0, &saved) == 0) {
                        struct termios t = saved;
                        cfmakeraw(&t);
                        raw = tcsetattr(0, TCSANOW, &t) == 0;
                }
                /* Block SIGWINCH before any other thread exists, so only
                 * the watcher takes it. */
                sigset_t set;
                sigemptyset(&set);
                sigaddset(&set, SIGWINCH);
                pthread_sigmask(SIG_BLOCK, &set, NULL);
                pthread_t thr;
                if (pthread_create(&thr, NULL, winch_main, &s) == 0)
                        pthread_detach(thr);
        }
        struct stream_client_result res;
        r = s.ws ? stream_ws_exec(s.ws, &o, &res, &e) : stream_client_exec(s.spdy, &o, &res, &e);
        if (raw)
                (void)tcsetattr(0, TCSANOW, &saved);
        pthread_mutex_lock(&s.lock);
        s.over = true;
        pthread_mutex_unlock(&s.lock);
        int code;
        if (r < 0) {
                fprintf(stderr, "corralctl: %s\n", e.msg);
                code = 1;
        } else if (res.exit_code >= 0) {
                code = res.exit_code;
        } else {
                fprintf(stderr, "corralctl: %s\n", res.message ? res.message : "the session failed");
                code = 1;
        }
        stream_client_result_clear(&res);
        stream_ws_client_free(s.ws);
        stream_client_free(s.spdy);
        return code;
}

static int parse_transport(const char *v, bool *websocket)
{
        if (strcmp(v, "websocket") == 0 || strcmp(v, "ws") == 0)
                *websocket = true;
        else if (strcmp(v, "spdy") == 0)
                *websocket = false;
        else {
                fprintf(stderr, "corralctl: unknown transport %s (spdy or websocket)\n", v);
                return -1;
        }
        return 0;
}

int ctl_stream_exec(struct ctl *ctl, const char *container, char **cmd, bool in, bool tty, bool websocket)
{
        Runtime__V1__ExecRequest req = RUNTIME__V1__EXEC_REQUEST__INIT;
        req.container_id = (char *)container;
        req.cmd = cmd;
        req.n_cmd = strv_len(cmd);
        req.tty = tty;
        req.stdin = in;
        req.stdout = true;
        req.stderr = !tty;
        ProtobufCMessage *resp = NULL;
        if (ctl_call(ctl, "Exec", &req.base, &runtime__v1__exec_response__descriptor, &resp))
                return 1;
        cleanup_free char *url = xstrdup(((Runtime__V1__ExecResponse *)resp)->url);
        protobuf_c_message_free_unpacked(resp, NULL);
        return run_session(url, in, tty, websocket);
}

/* ---------- attach ---------- */

static int cmd_attach(struct ctl *ctl, int argc, char **argv)
{
        static const struct option opts[] = {{"stdin", no_argument, NULL, 'i'},
                                             {"tty", no_argument, NULL, 't'},
                                             {"transport", required_argument, NULL, 'T'},
                                             {NULL, 0, NULL, 0}};
        bool in = false, tty = false, websocket = false;
        int c;
        while ((c = getopt_long(argc, argv, "it", opts, NULL)) != -1) {
                if (c == 'i')
                        in = true;
                else if (c == 't')
                        tty = true;
                else if (c == 'T') {
                        if (parse_transport(optarg, &websocket) < 0)
                                return 2;
                } else
                        return 2;
        }
        if (optind != argc - 1) {
                fprintf(stderr, "usage: corralctl attach [-i] [-t] [--transport=spdy|websocket] CONTAINER\n");
                return 2;
        }
        cleanup_free char *id = ctl_resolve_container(ctl, argv[optind]);
        if (id == NULL)
                return 1;
        Runtime__V1__AttachRequest req = RUNTIME__V1__ATTACH_REQUEST__INIT;
        req.container_id = id;
        req.stdin = in;
        req.tty = tty;
        req.stdout = true;
        req.stderr = !tty;
        ProtobufCMessage *resp = NULL;
        if (ctl_call(ctl, "Attach", &req.base, &runtime__v1__attach_response__descriptor, &resp))
                return 1;
        cleanup_free char *url = xstrdup(((Runtime__V1__AttachResponse *)resp)->url);
        protobuf_c_message_free_unpacked(resp, NULL);
        return run_session(url, in, tty, websocket);
}

/* ---------- port-forward ---------- */

struct mapping {
        uint16_t local, remote;
        int lfd;
};

static int parse_mapping(const char *s, struct mapping *m)
{
        char *end;
        const char *colon = strchr(s, ':');
        unsigned long l = 0, r;
        if (colon == NULL) {
                r = strtoul(s, &end, 10);
                l = r;
        } else {
                if (colon != s) {
                        l = strtoul(s, &end, 10);
                        if (end != colon)
                                return -1;
                }
                r = strtoul(colon + 1, &end, 10);
        }
        if (*end != '\0' || l > 65535 || r == 0 || r > 65535)
                return -1;
        m->local = (uint16_t)l;
        m->remote = (uint16_t)r;
        return 0;
}

static int listen_local(struct mapping *m, struct err *e)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return err_make(e, errno, "socket");
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(m->local),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sa);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
                int saved = errno;
                close(fd);
                return err_make(e, saved, "listen on 127.0.0.1:%u", (unsigned)m->local);
        }
        m->local = ntohs(sa.sin_port);
        m->lfd = fd;
        return 0;
}

/* A fresh port-forward URL (tokens are single-use). */
static char *pf_url(struct ctl *ctl, const char *pod, int32_t *ports, size_t n)
{
        Runtime__V1__PortForwardRequest req = RUNTIME__V1__PORT_FORWARD_REQUEST__INIT;
        req.pod_sandbox_id = (char *)pod;
        req.port = ports;
        req.n_port = n;
        ProtobufCMessage *resp = NULL;
        if (ctl_call(ctl, "PortForward", &req.base, &runtime__v1__port_forward_response__descriptor, &resp))
                return NULL;
        char *url = xstrdup(((Runtime__V1__PortForwardResponse *)resp)->url);
        protobuf_c_message_free_unpacked(resp, NULL);
        return url;
}

static int cmd_port_forward(struct ctl *ctl, int argc, char **argv)
{
        static const struct option opts[] = {{"transport", required_argument, NULL, 'T'}, {NULL, 0, NULL, 0}};
        bool websocket = false;
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                if (c != 'T' || parse_transport(optarg, &websocket) < 0)
                        return 2;
        }
        if (argc - optind < 2) {
                fprintf(stderr,
                        "usage: corralctl port-forward [--transport=spdy|websocket] POD [LOCAL:]REMOTE...\n");
                return 2;
        }
        cleanup_free char *pod = ctl_resolve_pod(ctl, argv[optind++]);
        if (pod == NULL)
                return 1;
        size_t n = (size_t)(argc - optind);
        cleanup_free struct mapping *maps = xcalloc(n, sizeof(*maps));
        cleanup_free int32_t *ports = xcalloc(n, sizeof(*ports));
        for (size_t i = 0; i < n; i++) {
                maps[i].lfd = -1;
                if (parse_mapping(argv[optind + (int)i], &maps[i]) < 0) {
                        fprintf(stderr, "corralctl: bad port mapping %s (want [LOCAL:]REMOTE)\n",
                                argv[optind + (int)i]);
                        return 2;
                }
                ports[i] = maps[i].remote;
        }
        /* SPDY: one connection carries every forwarded connection. WebSocket:
         * a connection (and a URL) per forwarded connection; the first URL
         * checks the pod before we listen. */
        cleanup_free char *url = pf_url(ctl, pod, ports, n);
        if (url == NULL)
                return 1;
        cleanup_err struct err e = ERR_INIT;
        struct stream_client *sc = NULL;
        int r = 0;
        if (!websocket && stream_client_dial(url, NULL, &sc, &e) < 0) {
                fprintf(stderr, "corralctl: %s\n", e.msg);
                return 1;
        }
        int code = 0;
        for (size_t i = 0; i < n && code == 0; i++) {
                if (listen_local(&maps[i], &e) < 0) {
                        fprintf(stderr, "corralctl: %s\n", e.msg);
                        code = 1;
                }
        }
        if (code == 0) {
                for (size_t i = 0; i < n; i++)
                        printf("Forwarding from 127.0.0.1:%u -> %u\n", (unsigned)maps[i].local,
                               (unsigned)maps[i].remote);
                fflush(stdout);
        }
        /* Until SIGINT/SIGTERM or the streaming connection breaks. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);
        int sfd = code == 0 ? signalfd(-1, &set, SFD_CLOEXEC) : -1;
        struct pollfd *p = xcalloc(n + 1, sizeof(*p));
        while (code == 0) {
                for (size_t i = 0; i < n; i++)
                        p[i] = (struct pollfd){.fd = maps[i].lfd, .events = POLLIN};
                p[n] = (struct pollfd){.fd = sfd, .events = POLLIN};
                if (poll(p, (nfds_t)n + 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[n].revents)
                        break;
                for (size_t i = 0; i < n; i++) {
                        if (!(p[i].revents & POLLIN))
                                continue;
                        int cfd = accept4(maps[i].lfd, NULL, NULL, SOCK_CLOEXEC);
                        if (cfd < 0)
                                continue;
                        int one = 1;
                        (void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                        err_clear(&e);
                        if (sc) {
                                r = stream_client_forward(sc, maps[i].remote, cfd, &e);
                        } else {
                                int32_t one_port = maps[i].remote;
                                cleanup_free char *u = url ? steal_ptr(&url) : pf_url(ctl, pod, &one_port, 1);
                                r = u ? stream_ws_forward(u, maps[i].remote, cfd, &e)
                                      : (close(cfd), err_set(&e, ERR_UNAVAILABLE, "no port-forward URL"));
                        }
                        if (r < 0) {
                                fprintf(stderr, "corralctl: forward to port %u: %s\n",
                                        (unsigned)maps[i].remote, e.msg);
                                if (sc) { /* the connection is gone: nothing more can be forwarded */
                                        code = 1;
                                        break;
                                }
                        }
                }
        }
        free(p);
        if (sfd >= 0)
                close(sfd);
        for (size_t i = 0; i < n; i++)
                if (maps[i].lfd >= 0)
                        close(maps[i].lfd);
        stream_client_free(sc);
        return code;
}

const struct ctl_verb ctl_stream_verbs[] = {
        {"attach", "attach to a running container's stdio", cmd_attach},
        {"port-forward", "forward local ports to a pod", cmd_port_forward},
        {NULL, NULL, NULL},
};
