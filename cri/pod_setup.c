/* What a namespace pod's own kernel state gets at RunPodSandbox beyond
 * its namespaces: its hostname, and its sysctls, written from a child
 * that joins the pod's namespaces (never from a daemon thread). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cri/cri-internal.h"

char *cri_pod_hostname(const Runtime__V1__PodSandboxConfig *cfg, bool host_net)
{
        /* kubelet always sets it (cut to 63 bytes); crictl and critest often
         * do not, and their pod names are longer than a hostname may be:
         * the node's name then, as containerd and CRI-O do. */
        if (!host_net && cfg && cfg->hostname && *cfg->hostname)
                return xstrdup(cfg->hostname);
        char hn[HOST_NAME_MAX + 1] = "";
        (void)gethostname(hn, sizeof(hn) - 1);
        return xstrdup(hn);
}

/* Pod-level sysctls are applied once, in the pod's namespaces, by a child
 * that joins them (setns in a forked child: never in a daemon thread). */
int cri_pod_apply_sysctls(const struct cri_pod_extra *x, const Runtime__V1__LinuxPodSandboxConfig *lx,
                          struct err *e)
{
        if (lx == NULL || lx->n_sysctls == 0)
                return 0;
        for (size_t i = 0; i < lx->n_sysctls; i++) {
                const char *k = lx->sysctls[i]->key;
                bool net = str_has_prefix(k, "net.");
                bool ipc = str_has_prefix(k, "kernel.shm") || str_has_prefix(k, "kernel.msg") ||
                           strcmp(k, "kernel.sem") == 0 || str_has_prefix(k, "fs.mqueue.");
                if (!net && !ipc)
                        return err_set(e, ERR_INVALID, "sysctl %s is not namespaced: refused for a pod", k);
                if ((net && x->host_net) || (ipc && x->host_ipc))
                        return err_set(e, ERR_INVALID,
                                       "sysctl %s would change the host: the pod shares the host's %s", k,
                                       net ? "network" : "IPC namespace");
        }
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) < 0)
                return err_make(e, errno, "pipe");
        cleanup_free char *netns = path_join(x->ns_dir, "net");
        cleanup_free char *ipcns = path_join(x->ns_dir, "ipc");
        pid_t self = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                close(pfd[0]);
                close(pfd[1]);
                return err_make(e, errno, "fork");
        }
        if (pid == 0) {
                child_isolate(self, &pfd[1], 1);
                char msg[512] = "";
                const char *paths[] = {x->host_net ? NULL : netns, x->host_ipc ? NULL : ipcns};
                const int types[] = {CLONE_NEWNET, CLONE_NEWIPC};
                for (int i = 0; i < 2; i++) {
                        if (paths[i] == NULL)
                                continue;
                        int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
                        if (fd < 0 || setns(fd, types[i]) < 0) {
                                snprintf(msg, sizeof(msg), "join %s: %s", paths[i], strerror(errno));
                                goto out;
                        }
                        close(fd);
                }
                for (size_t i = 0; i < lx->n_sysctls; i++) {
                        char path[512] = "/proc/sys/";
                        size_t off = strlen(path);
                        for (const char *k = lx->sysctls[i]->key; *k && off < sizeof(path) - 1; k++)
                                path[off++] = *k == '.' ? '/' : *k;
                        path[off] = '\0';
                        int fd = open(path, O_WRONLY | O_CLOEXEC);
                        const char *val = lx->sysctls[i]->value;
                        if (fd < 0 || write(fd, val, strlen(val)) < 0) {
                                snprintf(msg, sizeof(msg), "sysctl %s=%s: %s", lx->sysctls[i]->key, val,
                                         strerror(errno));
                                goto out;
                        }
                        close(fd);
                }
        out:
                if (msg[0])
                        (void)!write(pfd[1], msg, strlen(msg));
                _exit(msg[0] ? 1 : 0);
        }
        close(pfd[1]);
        char msg[512];
        ssize_t n = read(pfd[0], msg, sizeof(msg) - 1);
        close(pfd[0]);
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        if (n > 0) {
                msg[n] = '\0';
                return err_set(e, ERR_INVALID, "%s", msg);
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return err_set(e, ERR_INTERNAL, "applying sysctls failed");
        return 0;
}
