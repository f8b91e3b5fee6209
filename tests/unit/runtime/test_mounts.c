/* runtime: bind mount propagation (private, slave, shared both ways) and
 * recursive read-only binds, with real containers. Root only. */
#include <errno.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "rt_helpers.h"

static char vol[300];

/* A volume directory that is its own shared mount on the host, as kubelet
 * makes /var/lib/kubelet (and critest its temp dirs). */
static void make_shared_volume(void)
{
        snprintf(vol, sizeof(vol), "%s/vol", tmp);
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "mkdir -p %s/src && echo flag > %s/src/flag && mkdir -p %s", tmp, tmp,
                 vol);
        sh(cmd);
        if (mount(vol, vol, NULL, MS_BIND | MS_REC, NULL) < 0 ||
            mount(NULL, vol, NULL, MS_SHARED | MS_REC, NULL) < 0) {
                fprintf(stderr, "setup: shared bind of %s: %s\n", vol, strerror(errno));
                exit(1);
        }
}

static struct rt_spec *spec_with_volume(const char *script, const char *prop, const char *rootfs_prop)
{
        struct rt_spec *s = spec_for(script);
        s->privileged = true; /* the script mounts */
        s->rootfs_propagation = rootfs_prop ? xstrdup(rootfs_prop) : NULL;
        s->mounts = xcalloc(1, sizeof(struct rt_mount));
        s->n_mounts = 1;
        s->mounts[0].destination = xstrdup("/vol");
        s->mounts[0].type = xstrdup("bind");
        s->mounts[0].source = xstrdup(vol);
        strv_push(&s->mounts[0].options, "rbind");
        strv_push(&s->mounts[0].options, "rw");
        strv_push(&s->mounts[0].options, prop);
        return s;
}

static bool host_exists(const char *rel)
{
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", vol, rel);
        return access(p, F_OK) == 0;
}

static void host_umount(const char *rel)
{
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", vol, rel);
        (void)umount2(p, MNT_DETACH);
}

/* Create the container; mount <tmp>/src on <vol>/<hostdir> on the host
 * while the container waits to start (its mount namespace is complete:
 * only propagation can bring the new mount in); start; collect. The script
 * runs `mount` itself for the other direction. */
static int run_propagation(const char *prop, const char *rootfs_prop, const char *hostdir, struct result *r)
{
        char script[1024];
        snprintf(script, sizeof(script),
                 "if [ -e /vol/%s/flag ]; then echo host-mount-seen; fi; "
                 "mkdir -p /vol/c-%s && mount -t tmpfs ctr /vol/c-%s && touch /vol/c-%s/x && echo mounted",
                 hostdir, hostdir, hostdir, hostdir);
        struct rt_spec *s = spec_with_volume(script, prop, rootfs_prop);
        memset(r, 0, sizeof(*r));
        int po[2];
        if (pipe2(po, O_CLOEXEC) < 0)
                exit(1);
        struct rt_stdio io = {-1, po[1], po[1]};
        struct rt_container *c = NULL;
        char src[512], dst[512];
        snprintf(src, sizeof(src), "%s/src", tmp);
        snprintf(dst, sizeof(dst), "%s/%s", vol, hostdir);
        mkdir(dst, 0755);
        int ret = rt_container_create(s, &io, &c, &r->e);
        close(po[1]);
        if (ret == 0) {
                if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
                        fprintf(stderr, "host mount %s: %s\n", dst, strerror(errno));
                ret = rt_container_start(c, &r->e);
                read_all(po[0], r->out, sizeof(r->out));
                if (ret == 0)
                        waitpid(rt_container_pid(c), &r->status, 0);
                rt_container_free(c);
        }
        close(po[0]);
        rt_spec_free(s);
        return ret;
}

static void test_private(void)
{
        struct result r;
        CHECK(run_propagation("rprivate", NULL, "p", &r) == 0, "%s", r.e.msg);
        CHECK(strstr(r.out, "mounted") != NULL, "out=%s", r.out);
        CHECK(strstr(r.out, "host-mount-seen") == NULL, "private: host mount reached the container: %s",
              r.out);
        CHECK(!host_exists("c-p/x"), "private: container mount reached the host");
        host_umount("p");
        host_umount("c-p");
}

static void test_slave(void)
{
        struct result r;
        CHECK(run_propagation("rslave", "rslave", "s", &r) == 0, "%s", r.e.msg);
        CHECK(strstr(r.out, "mounted") != NULL, "out=%s", r.out);
        CHECK(strstr(r.out, "host-mount-seen") != NULL, "rslave: host mount not in the container: %s", r.out);
        CHECK(!host_exists("c-s/x"), "rslave: container mount reached the host");
        host_umount("s");
        host_umount("c-s");
}

static void test_shared(void)
{
        struct result r;
        CHECK(run_propagation("rshared", "rshared", "b", &r) == 0, "%s", r.e.msg);
        CHECK(strstr(r.out, "mounted") != NULL, "out=%s", r.out);
        CHECK(strstr(r.out, "host-mount-seen") != NULL, "rshared: host mount not in the container: %s",
              r.out);
        CHECK(host_exists("c-b/x"), "rshared: container mount did not reach the host: %s", r.out);
        host_umount("b");
        host_umount("c-b");

        /* Nothing else the container mounted (its rootfs, /proc, ...) leaks. */
        cleanup_free char *mi = NULL;
        size_t n;
        CHECK(file_read_all("/proc/self/mountinfo", &mi, &n, 0, NULL) == 0, "mountinfo");
        CHECK(mi && strstr(mi, rootfs) == NULL, "a container mount leaked to the host:\n%s", mi);
}

static void test_recursive_readonly(void)
{
        char sub[512], cmd[1024];
        snprintf(sub, sizeof(sub), "%s/ro/sub", tmp);
        snprintf(cmd, sizeof(cmd), "mkdir -p %s", sub);
        sh(cmd);
        CHECK(mount("none", sub, "tmpfs", 0, NULL) == 0, "tmpfs on %s: %s", sub, strerror(errno));
        const char *script = "touch /vol/top 2>&1; touch /vol/sub/x 2>&1 && echo sub-writable";

        for (int rro = 0; rro <= 1; rro++) {
                struct rt_spec *s = spec_for(script);
                s->mounts = xcalloc(1, sizeof(struct rt_mount));
                s->n_mounts = 1;
                s->mounts[0].destination = xstrdup("/vol");
                s->mounts[0].type = xstrdup("bind");
                snprintf(cmd, sizeof(cmd), "%s/ro", tmp);
                s->mounts[0].source = xstrdup(cmd);
                strv_push(&s->mounts[0].options, "rbind");
                strv_push(&s->mounts[0].options, "ro");
                strv_push(&s->mounts[0].options, "rprivate");
                if (rro)
                        strv_push(&s->mounts[0].options, "rro");
                struct result r;
                CHECK(run(s, &r) == 0, "%s", r.e.msg);
                CHECK(strstr(r.out, "/vol/top") && strstr(r.out, "Read-only file system"), "top ro: %s",
                      r.out);
                if (rro)
                        CHECK(strstr(r.out, "sub-writable") == NULL, "rro: the submount stayed writable: %s",
                              r.out);
                else
                        CHECK(strstr(r.out, "sub-writable") != NULL, "ro (not recursive): submount ro: %s",
                              r.out);
                rt_spec_free(s);
        }

        /* "rro" without "ro" is a contradiction, refused before anything runs. */
        struct rt_spec *s = spec_for("true");
        s->mounts = xcalloc(1, sizeof(struct rt_mount));
        s->n_mounts = 1;
        s->mounts[0].destination = xstrdup("/vol");
        s->mounts[0].type = xstrdup("bind");
        s->mounts[0].source = xstrdup(vol);
        strv_push(&s->mounts[0].options, "rbind");
        strv_push(&s->mounts[0].options, "rro");
        struct result r;
        CHECK(run(s, &r) < 0 && err_is(&r.e, ERR_INVALID), "rro without ro: %s",
              r.e.msg ? r.e.msg : "accepted");
        err_clear(&r.e);
        rt_spec_free(s);
        (void)umount2(sub, MNT_DETACH);
}

static void test_host_propagation(void)
{
        unsigned prop = 99;
        cleanup_free char *mp = NULL;
        struct err e = ERR_INIT;
        char missing[512];
        snprintf(missing, sizeof(missing), "%s/not/yet", vol);
        CHECK(rt_mount_propagation(missing, &prop, &mp, &e) == 0, "%s", e.msg);
        CHECK(prop == RT_PROP_SHARED, "shared volume: prop=%u", prop);
        CHECK(mp && strcmp(mp, vol) == 0, "mountpoint %s", mp ? mp : "(null)");
        char sub[512];
        snprintf(sub, sizeof(sub), "%s/ro/sub", tmp);
        mkdir(sub, 0755);
        CHECK(mount("none", sub, "tmpfs", 0, NULL) == 0 && mount(NULL, sub, NULL, MS_PRIVATE, NULL) == 0,
              "tmpfs");
        CHECK(rt_mount_propagation(sub, &prop, NULL, &e) == 0 && prop == 0, "private tmpfs: prop=%u %s", prop,
              e.msg ? e.msg : "");
        (void)umount2(sub, MNT_DETACH);
}

int main(void)
{
        need_root_and_busybox();
        if (!rt_host_features()->new_mount_api) {
                printf("skipped: no mount_setattr (Linux 5.12)\n");
                return 77;
        }
        make_rootfs();
        make_shared_volume();

        test_private();
        test_slave();
        test_shared();
        test_recursive_readonly();
        test_host_propagation();

        (void)umount2(vol, MNT_DETACH);
        struct err e = ERR_INIT;
        rm_rf(tmp, &e);
        if (failures) {
                fprintf(stderr, "%d failure(s)\n", failures);
                return 1;
        }
        fprintf(stderr, "all passed\n");
        return 0;
}
