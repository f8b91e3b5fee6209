/* Pinned namespaces outlive the child that made them; unpin leaves nothing. */
#include <sys/utsname.h>

#include "nettest.h"

static char *tmp, *root, *dir;

static void test_cleanup(void)
{
        if (dir)
                (void)net_ns_unpin(dir, NULL);
        if (root)
                release_ns_root(root);
        if (tmp)
                (void)rm_rf(tmp, NULL);
}

static bool mounted_under(const char *prefix)
{
        cleanup_free char *mi = NULL;
        size_t len;
        if (file_read_all("/proc/self/mountinfo", &mi, &len, 0, NULL) < 0)
                return false;
        return strstr(mi, prefix) != NULL;
}

int main(void)
{
        need_root();
        tmp = make_tmpdir();
        root = path_join(tmp, "ns");
        dir = path_join(root, "pod1");

        struct net_ns_paths p;
        CHECK_OK(net_ns_pin(dir, CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS, "corral-pod-1", &p, e));
        CHECK(p.net && p.ipc && p.uts);
        CHECK(net_ns_is_pinned(p.net) && net_ns_is_pinned(p.ipc) && net_ns_is_pinned(p.uts));

        /* The pinned netns is not ours, and it is alive with no process in it. */
        struct stat a, b;
        CHECK(stat(p.net, &a) == 0 && stat("/proc/self/ns/net", &b) == 0);
        CHECK(a.st_ino != b.st_ino);
        CHECK(stat(p.uts, &a) == 0 && stat("/proc/self/ns/uts", &b) == 0);
        CHECK(a.st_ino != b.st_ino);

        /* lo is up inside, with 127.0.0.1. */
        struct net_link_info li;
        CHECK_OK(net_link_info(p.net, "lo", &li, e));
        CHECK(li.up);
        bool has_lo_addr = false;
        for (size_t i = 0; i < li.n_addrs; i++)
                if (!strcmp(li.addrs[i].addr, "127.0.0.1"))
                        has_lo_addr = true;
        CHECK(has_lo_addr);
        net_link_info_free(&li);

        /* The hostname was set in the pinned uts namespace. */
        pid_t pid = fork();
        if (pid == 0) {
                struct utsname u;
                int fd = open(p.uts, O_RDONLY);
                if (fd < 0 || setns(fd, CLONE_NEWUTS) < 0 || uname(&u) < 0)
                        _exit(2);
                _exit(strcmp(u.nodename, "corral-pod-1") ? 3 : 0);
        }
        int st;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

        /* The ns root is a private mount of its own. */
        CHECK(mounted_under(root));

        /* Pinning again over an existing pin replaces it. */
        struct net_ns_paths p2;
        CHECK_OK(net_ns_pin(dir, CLONE_NEWNET, NULL, &p2, e));
        CHECK(net_ns_is_pinned(p2.net));
        net_ns_paths_free(&p2);

        CHECK_OK(net_ns_unpin(dir, e));
        CHECK(access(dir, F_OK) != 0);
        CHECK(!mounted_under(dir));
        CHECK_OK(net_ns_unpin(dir, e)); /* again: idempotent */

        /* Files already gone or never mounted. */
        CHECK_OK(net_ns_pin(dir, CLONE_NEWNET, NULL, &p2, e));
        CHECK(umount2(p2.net, MNT_DETACH) == 0);
        CHECK_OK(net_ns_unpin(dir, e));
        CHECK(access(dir, F_OK) != 0);
        net_ns_paths_free(&p2);

        /* Bad input. */
        struct err e = ERR_INIT;
        CHECK(net_ns_pin(dir, 0, NULL, &p2, &e) < 0 && e.kind == ERR_INVALID);
        err_clear(&e);
        CHECK(net_ns_pin("relative", CLONE_NEWNET, NULL, &p2, &e) < 0);
        err_clear(&e);
        CHECK(access(dir, F_OK) != 0);

        net_ns_paths_free(&p);
        test_cleanup();
        printf("ok\n");
        return 0;
}
