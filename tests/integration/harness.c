#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"

void daemon_init(struct daemon *d, const char *config_json)
{
        memset(d, 0, sizeof(*d));
        char tmpl[] = "/tmp/corral-it-XXXXXX";
        if (mkdtemp(tmpl) == NULL) {
                perror("mkdtemp");
                abort();
        }
        d->dir = xstrdup(tmpl);
        d->root = path_join(d->dir, "root");
        d->state = path_join(d->dir, "state");
        d->socket = path_join(d->dir, "state/corral.sock");
        d->endpoint = xasprintf("unix://%s", d->socket);
        d->log = path_join(d->dir, "corrald.log");
        if (config_json) {
                d->config = path_join(d->dir, "corral.json");
                struct err e = ERR_INIT;
                if (file_write_atomic(d->config, config_json, strlen(config_json), 0644, &e) < 0) {
                        fprintf(stderr, "%s\n", e.msg);
                        abort();
                }
        }
}

static pid_t spawn(struct daemon *d, char *const *extra);

int daemon_expect_exit(struct daemon *d, char *const *extra)
{
        pid_t pid = spawn(d, extra);
        for (int i = 0; i < 1000; i++) {
                int st;
                if (waitpid(pid, &st, WNOHANG) == pid)
                        return st;
                struct timespec ts = {0, 10 * 1000000L};
                nanosleep(&ts, NULL);
        }
        d->pid = pid;
        daemon_kill(d);
        return -1;
}

int daemon_start(struct daemon *d, char *const *extra, int *status)
{
        pid_t pid = spawn(d, extra);
        d->pid = pid;
        for (int i = 0; i < 1000; i++) {
                int st;
                if (waitpid(pid, &st, WNOHANG) == pid) {
                        d->pid = 0;
                        if (status)
                                *status = st;
                        return -1;
                }
                struct stat sb;
                if (stat(d->socket, &sb) == 0 && S_ISSOCK(sb.st_mode))
                        return 0;
                struct timespec ts = {0, 10 * 1000000L};
                nanosleep(&ts, NULL);
        }
        fprintf(stderr, "corrald did not create %s in 10 s\n", d->socket);
        return -1;
}

static pid_t spawn(struct daemon *d, char *const *extra)
{
        const char *bin = getenv("CORRALD");
        if (bin == NULL)
                bin = "corrald";
        char **argv = NULL;
        strv_push(&argv, bin);
        strv_push(&argv, "--root");
        strv_push(&argv, d->root);
        strv_push(&argv, "--state");
        strv_push(&argv, d->state);
        strv_push(&argv, "--listen");
        strv_push(&argv, d->endpoint);
        strv_push(&argv, "--log-level");
        strv_push(&argv, "debug");
        /* A config of our own (or none) so the host's /etc/corral never leaks in. */
        cleanup_free char *empty = NULL;
        if (d->config == NULL) {
                empty = path_join(d->dir, "empty.json");
                struct err e = ERR_INIT;
                (void)file_write_atomic(empty, "{}", 2, 0644, &e);
                err_clear(&e);
        }
        strv_push(&argv, "--config");
        strv_push(&argv, d->config ? d->config : empty);
        for (size_t i = 0; extra && extra[i]; i++)
                strv_push(&argv, extra[i]);
        pid_t pid = fork();
        if (pid == 0) {
                int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
                if (fd >= 0) {
                        dup2(fd, 2);
                        dup2(fd, 1);
                }
                execv(bin, argv);
                _exit(127);
        }
        strv_free(argv);
        return pid;
}

int daemon_stop(struct daemon *d)
{
        if (d->pid <= 0)
                return -1;
        kill(d->pid, SIGTERM);
        int st = -1;
        for (int i = 0; i < 3000; i++) {
                if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
                        d->pid = 0;
                        return st;
                }
                struct timespec ts = {0, 10 * 1000000L};
                nanosleep(&ts, NULL);
        }
        fprintf(stderr, "corrald did not stop within 30 s after SIGTERM\n");
        daemon_kill(d);
        return -1;
}

void daemon_kill(struct daemon *d)
{
        if (d->pid <= 0)
                return;
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
}

void daemon_dump_log(const struct daemon *d)
{
        char *buf = NULL;
        struct err e = ERR_INIT;
        if (file_read_all(d->log, &buf, NULL, 0, &e) == 0)
                fprintf(stderr, "----- corrald log -----\n%s-----------------------\n", buf);
        free(buf);
        err_clear(&e);
}

void daemon_cleanup(struct daemon *d)
{
        daemon_kill(d);
        struct err e = ERR_INIT;
        (void)rm_rf(d->dir, &e);
        err_clear(&e);
        free(d->dir);
        free(d->root);
        free(d->state);
        free(d->socket);
        free(d->endpoint);
        free(d->log);
        free(d->config);
        memset(d, 0, sizeof(*d));
}

enum err_kind cri_call_simple(struct cri_client *c, const char *rpc, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp, char **msg)
{
        struct err e = ERR_INIT;
        const char *path = cri_method_path(rpc);
        if (path == NULL) {
                fprintf(stderr, "no such RPC %s\n", rpc);
                abort();
        }
        ProtobufCMessage *r = NULL;
        if (cri_client_call(c, path, req, desc, 30000, &r, &e) < 0) {
                enum err_kind k = e.kind;
                if (msg)
                        *msg = steal_ptr(&e.msg);
                err_clear(&e);
                return k;
        }
        if (resp)
                *resp = r;
        else
                protobuf_c_message_free_unpacked(r, NULL);
        if (msg)
                *msg = NULL;
        return ERR_OK;
}

bool harness_is_root(void)
{
        return geteuid() == 0;
}
