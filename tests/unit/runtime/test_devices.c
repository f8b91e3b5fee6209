/* runtime: the devices cgroup. Real containers through the host's driver
 * (v1 devices controller here, v2 eBPF on a unified host), and the v2 eBPF
 * program for real on any cgroup2 mount (on a v1 hybrid host:
 * /sys/fs/cgroup/unified, where device programs work without controllers).
 * Root only. */
#include <errno.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

#include "runtime/runtime-internal.h"
#include "rt_helpers.h"

static char cg_base[64];

static void add_device(struct rt_spec *s, const char *path, char type, int64_t maj, int64_t min,
                       const char *perm)
{
        s->devices = xrealloc(s->devices, (s->n_devices + 1) * sizeof(struct rt_device));
        s->devices[s->n_devices++] =
                (struct rt_device){xstrdup(path), type, maj, min, 0666, 0, 0, perm ? xstrdup(perm) : NULL};
}

static void test_rules(void)
{
        CHECK(dev_parse_access("rwm") == DEV_ACC_ALL && dev_parse_access("r") == DEV_ACC_READ &&
                      dev_parse_access(NULL) == DEV_ACC_ALL && dev_parse_access("rx") < 0,
              "access strings");
        struct rt_spec *s = rt_spec_new();
        add_device(s, "/dev/fuse", 'c', 10, 229, "rw");
        add_device(s, "/dev/fifo", 'p', 0, 0, NULL);
        struct dev_rule *r = NULL;
        size_t n = 0;
        struct err e = ERR_INIT;
        CHECK(dev_rules_for_spec(s, &r, &n, &e) == 0, "%s", e.msg);
        /* deny-all, 9 defaults, fuse; the fifo needs no rule */
        CHECK(n == 11 && !r[0].allow && r[0].type == 'a' && r[10].major == 10 && r[10].minor == 229 &&
                      r[10].access == (DEV_ACC_READ | DEV_ACC_WRITE),
              "n=%zu", n);
        struct bpf_insn *insns = NULL;
        size_t ni = 0;
        dev_bpf_compile(r, n, &insns, &ni);
        /* The last rule first: fuse is "c 10:229 rw" = type, 3 access, major, minor, verdict. */
        CHECK(ni > 8 && insns[6].code == (BPF_JMP | BPF_JNE | BPF_K) && insns[6].imm == BPF_DEVCG_DEV_CHAR &&
                      insns[6].off == 7 && insns[12].imm == 1,
              "fuse block at 6: off %d", insns[6].off);
        CHECK(insns[ni - 1].code == (BPF_JMP | BPF_EXIT) && insns[ni - 2].imm == 0,
              "deny-all ends the program");
        free(insns);
        free(r);

        s->privileged = true;
        CHECK(dev_rules_for_spec(s, &r, &n, &e) == 0 && n == 1 && r[0].allow && r[0].type == 'a',
              "privileged");
        dev_bpf_compile(r, n, &insns, &ni);
        CHECK(ni == 8 && insns[6].imm == 1, "allow-all program: %zu insns", ni);
        free(insns);
        free(r);

        s->privileged = false;
        free(s->devices[0].permissions);
        s->devices[0].permissions = xstrdup("rwx");
        CHECK(dev_rules_for_spec(s, &r, &n, &e) < 0 && err_is(&e, ERR_INVALID) && strstr(e.msg, "/dev/fuse"),
              "bad permissions refused: %s", e.msg);
        err_clear(&e);
        rt_spec_free(s);
}

/* ---------- v2: the eBPF program on a real cgroup2 directory ---------- */

static const char *v2_root(void)
{
        struct statfs st;
        if (statfs("/sys/fs/cgroup", &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC)
                return "/sys/fs/cgroup";
        if (statfs("/sys/fs/cgroup/unified", &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC)
                return "/sys/fs/cgroup/unified";
        return NULL;
}

static const char *res(int r)
{
        return r == 0 ? "0" : strerror(r);
}

/* open(path, flags) -> 0 or errno */
static int try_open(const char *path, int flags)
{
        int fd = open(path, flags | O_CLOEXEC);
        if (fd < 0)
                return errno;
        close(fd);
        return 0;
}

static int try_mknod(const char *path, int maj, int min)
{
        unlink(path);
        int r = mknod(path, S_IFCHR | 0600, makedev(maj, min)) < 0 ? errno : 0;
        unlink(path);
        return r;
}

/* A child moved into the v2 cgroup `path` tries the devices; its report. */
static void probe_in_v2(const char *root, const char *path, char *out, size_t cap)
{
        int go[2], rep[2];
        if (pipe(go) < 0 || pipe(rep) < 0)
                exit(1);
        pid_t p = fork();
        if (p == 0) {
                char c, mem[300], kmsg[300], tun[300], mk[300], buf[1024];
                close(go[1]);
                close(rep[0]);
                if (read(go[0], &c, 1) != 1)
                        _exit(1);
                snprintf(mem, sizeof(mem), "%s/mem", tmp);
                snprintf(kmsg, sizeof(kmsg), "%s/kmsg", tmp);
                snprintf(tun, sizeof(tun), "%s/tun", tmp);
                snprintf(mk, sizeof(mk), "%s/mknod", tmp);
                int n = snprintf(
                        buf, sizeof(buf),
                        "null=%s urandom=%s mem=%s kmsg=%s tun-r=%s tun-rw=%s mknod-mem=%s mknod-tun=%s",
                        res(try_open("/dev/null", O_RDWR)), res(try_open("/dev/urandom", O_RDONLY)),
                        res(try_open(mem, O_RDONLY)), res(try_open(kmsg, O_RDONLY)),
                        res(try_open(tun, O_RDONLY)), res(try_open(tun, O_RDWR)), res(try_mknod(mk, 1, 1)),
                        res(try_mknod(mk, 10, 200)));
                (void)!write(rep[1], buf, (size_t)n);
                _exit(0);
        }
        close(go[0]);
        close(rep[1]);
        struct err e = ERR_INIT;
        CHECK(rt_cgroup_v2_ops.enter(root, path, p, &e) == 0, "enter v2 cgroup: %s", e.msg);
        (void)!write(go[1], "g", 1);
        close(go[1]);
        read_all(rep[0], out, cap);
        close(rep[0]);
        waitpid(p, NULL, 0);
}

static void test_v2_ebpf(void)
{
        const char *root = v2_root();
        if (root == NULL) {
                fprintf(stderr, "skip v2 eBPF: no cgroup2 mount on this host\n");
                return;
        }
        char path[128], cmd[1024];
        snprintf(path, sizeof(path), "%s-v2", cg_base);
        /* Host-side nodes: /dev/mem's 1:1 (this kernel may have no /dev/mem:
         * open then says ENXIO, past the cgroup check), /dev/kmsg's 1:11,
         * /dev/net/tun's 10:200. */
        snprintf(cmd, sizeof(cmd), "cd %s && mknod mem c 1 1 && mknod kmsg c 1 11 && mknod tun c 10 200",
                 tmp);
        sh(cmd);
        struct err e = ERR_INIT;
        CHECK(rt_cgroup_v2_ops.create(root, path, NULL, &e) == 0, "v2 cgroup %s%s: %s", root, path, e.msg);

        char out[1024];
        probe_in_v2(root, path, out, sizeof(out));
        fprintf(stderr, "     no program: %s\n", out);
        CHECK(strstr(out, "kmsg=0 tun-r=0 tun-rw=0") && strstr(out, "mknod-mem=0"), "control: all open: %s",
              out);

        /* The default list plus tun with "rw", and 10:* read-only. */
        struct rt_spec *s = rt_spec_new();
        add_device(s, "/dev/net/tun", 'c', 10, 200, "rw");
        add_device(s, "/dev/misc-any", 'c', 10, -1, "r");
        struct dev_rule *r = NULL;
        size_t n = 0;
        CHECK(dev_rules_for_spec(s, &r, &n, &e) == 0, "%s", e.msg);
        CHECK(rt_cgroup_v2_ops.devices(root, path, r, n, &e) == 0, "attach: %s", e.msg);
        free(r);
        probe_in_v2(root, path, out, sizeof(out));
        fprintf(stderr, "     container rules: %s\n", out);
        CHECK(strstr(out, "null=0 urandom=0 mem=Operation not permitted kmsg=Operation not permitted tun-r=0 "
                          "tun-rw=0 mknod-mem=Operation not permitted mknod-tun=Operation not permitted"),
              "default list + tun rw: %s", out);

        /* Re-apply for a privileged container: the old program goes. */
        s->privileged = true;
        CHECK(dev_rules_for_spec(s, &r, &n, &e) == 0, "%s", e.msg);
        CHECK(rt_cgroup_v2_ops.devices(root, path, r, n, &e) == 0, "re-attach: %s", e.msg);
        free(r);
        char dir[300];
        snprintf(dir, sizeof(dir), "%s%s", root, path);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        uint32_t ids[8], nid = 0;
        CHECK(dev_bpf_query(dfd, ids, 8, &nid, &e) == 0 && nid == 1, "one program attached: %u %s", nid,
              e.msg);
        close(dfd);
        probe_in_v2(root, path, out, sizeof(out));
        fprintf(stderr, "     privileged: %s\n", out);
        CHECK(strstr(out, "kmsg=0") && strstr(out, "mknod-mem=0 mknod-tun=0") &&
                      !strstr(out, "Operation not permitted"),
              "privileged: %s", out);

        /* Only r on 10:*: write access to tun is refused. */
        s->privileged = false;
        rt_spec_free(s);
        s = rt_spec_new();
        add_device(s, "/dev/misc-any", 'c', 10, -1, "r");
        CHECK(dev_rules_for_spec(s, &r, &n, &e) == 0, "%s", e.msg);
        CHECK(rt_cgroup_v2_ops.devices(root, path, r, n, &e) == 0, "attach: %s", e.msg);
        free(r);
        probe_in_v2(root, path, out, sizeof(out));
        CHECK(strstr(out, "tun-r=0 tun-rw=Operation not permitted"), "10:* r: %s", out);
        rt_spec_free(s);
        CHECK(rt_cgroup_v2_ops.remove(root, path, 2000, &e) == 0, "remove: %s", e.msg);
        snprintf(cmd, sizeof(cmd), "cd %s && rm -f mem kmsg tun", tmp);
        sh(cmd);
}

/* ---------- containers through rt_container_create ---------- */

static void test_container_default(void)
{
        char cg[128], cmd[1024];
        snprintf(cg, sizeof(cg), "%s/default", cg_base);
        /* A node already in the image: the cgroup, not mknod, must stop it. */
        snprintf(cmd, sizeof(cmd), "rm -f %s/kmsg && mknod %s/kmsg c 1 11", rootfs, rootfs);
        sh(cmd);
        struct rt_spec *s = spec_for("head -c1 /dev/null; echo null=$?; head -c4 /dev/urandom | wc -c; "
                                     "rm -f /tmp/m; mknod /tmp/m c 1 1 && head -c1 /tmp/m; echo mknod=$?; "
                                     "dd if=/kmsg of=/dev/null count=0; echo kmsg=$?");
        s->cgroup_path = xstrdup(cg);
        int po[2];
        pipe2(po, O_CLOEXEC);
        struct rt_stdio io = {-1, po[1], po[1]};
        struct rt_container *c = NULL;
        struct err e = ERR_INIT;
        CHECK(rt_container_create(s, &io, &c, &e) == 0, "%s", e.msg);
        close(po[1]);
        if (c == NULL)
                return;
        if (rt_cgroup_mode() != RT_CGROUP_V2_UNIFIED) {
                char p[512], *v = NULL;
                size_t n;
                snprintf(p, sizeof(p), "/sys/fs/cgroup/devices%s/devices.list", cg);
                CHECK(file_read_all(p, &v, &n, 0, NULL) == 0 && strstr(v, "c 1:3 rwm") &&
                              strstr(v, "c 136:* rwm") && !strstr(v, "a *:*") && !strstr(v, "1:11"),
                      "devices.list:\n%s", v);
                free(v);
        }
        CHECK(rt_container_start(c, &e) == 0, "%s", e.msg);
        char out[2048];
        read_all(po[0], out, sizeof(out));
        close(po[0]);
        waitpid(rt_container_pid(c), NULL, 0);
        fprintf(stderr, "     %s", out);
        CHECK(strstr(out, "null=0\n4\n"), "null and urandom usable: %s", out);
        CHECK(strstr(out, "mknod: /tmp/m: Operation not permitted\nmknod=1"), "mknod 1:1 refused: %s", out);
        CHECK(strstr(out, "can't open '/kmsg': Operation not permitted\nkmsg=1"),
              "node in the image refused: %s", out);
        CHECK(rt_cgroup_remove(cg, 2000, &e) == 0, "remove: %s", e.msg);
        rt_container_free(c);
        rt_spec_free(s);
}

static void test_container_spec_devices(void)
{
        char cg[128];
        snprintf(cg, sizeof(cg), "%s/devices", cg_base);
        bool tun = access("/dev/net/tun", F_OK) == 0, fuse = access("/dev/fuse", F_OK) == 0;
        if (!tun || !fuse) {
                fprintf(stderr, "skip spec devices: needs /dev/net/tun and /dev/fuse on the host\n");
                return;
        }
        struct rt_spec *s = spec_for("dd if=/dev/net/tun of=/dev/null count=0 && echo tun-ok; "
                                     "dd if=/dev/fuse of=/dev/null count=0 && echo fuse-r-ok; "
                                     "dd if=/dev/zero of=/dev/fuse count=0; echo fuse-w=$?; "
                                     "rm -f /tmp/f; mknod /tmp/f c 10 229; echo fuse-m=$?");
        s->cgroup_path = xstrdup(cg);
        add_device(s, "/dev/net/tun", 'c', 10, 200, NULL); /* rwm */
        add_device(s, "/dev/fuse", 'c', 10, 229, "r");     /* made before the rules: no "m" needed */
        struct result r;
        CHECK(run(s, &r) == 0, "%s", r.e.msg);
        fprintf(stderr, "     %s", r.out);
        CHECK(strstr(r.out, "tun-ok\n"), "listed tun usable: %s", r.out);
        CHECK(strstr(r.out, "fuse-r-ok\n"), "listed fuse readable: %s", r.out);
        CHECK(strstr(r.out, "can't open '/dev/fuse': Operation not permitted\nfuse-w=1"),
              "fuse \"r\" only: %s", r.out);
        CHECK(strstr(r.out, "Operation not permitted\nfuse-m=1"), "no mknod without \"m\": %s", r.out);
        err_clear(&r.e);
        struct err e = ERR_INIT;
        CHECK(rt_cgroup_remove(cg, 2000, &e) == 0, "remove: %s", e.msg);
        rt_spec_free(s);

        /* Not listed: the same node made in the image is refused. */
        s = spec_for("rm -f /tmp/t; mknod /tmp/t c 10 200; echo m=$?");
        s->cgroup_path = xstrdup(cg);
        CHECK(run(s, &r) == 0, "%s", r.e.msg);
        CHECK(strstr(r.out, "Operation not permitted\nm=1"), "unlisted tun: %s", r.out);
        CHECK(rt_cgroup_remove(cg, 2000, &e) == 0, "remove: %s", e.msg);
        rt_spec_free(s);
}

static void test_container_privileged(void)
{
        char cg[128];
        snprintf(cg, sizeof(cg), "%s/priv", cg_base);
        struct rt_spec *s =
                spec_for("rm -f /tmp/m /tmp/k; mknod /tmp/m c 1 1 && echo mknod-ok; "
                         "dd if=/tmp/m of=/dev/null count=0; "
                         "mknod /tmp/k c 1 11 && dd if=/tmp/k of=/dev/null count=0 && echo kmsg-ok; "
                         "rm -f /tmp/m /tmp/k");
        s->cgroup_path = xstrdup(cg);
        s->privileged = true;
        struct result r;
        CHECK(run(s, &r) == 0, "%s", r.e.msg);
        fprintf(stderr, "     %s", r.out);
        CHECK(strstr(r.out, "mknod-ok\n") && strstr(r.out, "kmsg-ok\n") && !strstr(r.out, "not permitted"),
              "privileged: %s", r.out);
        /* 1:1 is /dev/mem: a kernel without CONFIG_DEVMEM says ENXIO, past the cgroup. */
        CHECK(access("/dev/mem", F_OK) == 0
                      ? !strstr(r.out, "can't open '/tmp/m'")
                      : strstr(r.out, "can't open '/tmp/m': No such device or address") != NULL,
              "1:1 opened (or reached the driver): %s", r.out);
        if (rt_cgroup_mode() != RT_CGROUP_V2_UNIFIED) {
                char p[512], *v = NULL;
                size_t n;
                snprintf(p, sizeof(p), "/sys/fs/cgroup/devices%s/devices.list", cg);
                CHECK(file_read_all(p, &v, &n, 0, NULL) == 0 && strcmp(v, "a *:* rwm\n") == 0,
                      "devices.list %s", v);
                free(v);
        }
        err_clear(&r.e);
        struct err e = ERR_INIT;
        CHECK(rt_cgroup_remove(cg, 2000, &e) == 0, "remove: %s", e.msg);
        rt_spec_free(s);
}

int main(void)
{
        need_root_and_busybox();
        make_rootfs();
        snprintf(cg_base, sizeof(cg_base), "/corral-devtest-%d", (int)getpid());
        fprintf(stderr, "cgroup mode: %s\n", rt_cgroup_mode_name(rt_cgroup_mode()));

        test_rules();
        test_v2_ebpf();
        test_container_default();
        test_container_spec_devices();
        test_container_privileged();

        (void)rt_cgroup_remove(cg_base, 1000, NULL);
        struct err e = ERR_INIT;
        rm_rf(tmp, &e);
        if (failures) {
                fprintf(stderr, "%d failure(s)\n", failures);
                return 1;
        }
        printf("ok\n");
        return 0;
}
