/* Shares under QEMU, 9p against virtio-fs, on real guests: each VM mounts
 * the share with the type it was booted with (seen in the guest's
 * /proc/mounts), reads a big file and walks a tree (timed: the figures are
 * printed), sees a mount made on the host after boot (the shim mounts each
 * container's rootfs then), writes back to the host, runs a container from
 * the share. virtio-fs: the virtiofsd is counted in stats and gone with its
 * socket after shutdown; a virtiofsd killed from outside is reported as
 * the VM's death. Skips (77) without QEMU, the guest image or virtiofsd. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <time.h>

#include "runtime/runtime.h"
#include "vmtest.h"

static char tmp[] = "/tmp/cvf-XXXXXX";
static char late_mnt[400];

static void cleanup(void)
{
        if (late_mnt[0])
                (void)umount2(late_mnt, MNT_DETACH);
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
        (void)!system(cmd);
}

static void make_rootfs(const char *root)
{
        static const char *const dirs[] = {"bin", "proc", "sys", "dev", "tmp", "etc", "run", "late", "tree"};
        static const char *const applets[] = {"sh", "echo", "cat", "find", "wc", "grep", "true", "sleep"};
        vmt_busybox_rootfs(root, dirs, ARRAY_SIZE(dirs), applets, ARRAY_SIZE(applets));
        /* 64 MiB to read, 40 x 50 files to walk. */
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "dd if=/dev/urandom of=%s/big bs=1M count=64 status=none", root);
        if (system(cmd) != 0)
                abort();
        for (int d = 0; d < 40; d++) {
                char *dir = xasprintf("%s/tree/d%d", root, d);
                mkdir_p(dir, 0755, NULL);
                for (int f = 0; f < 50; f++) {
                        char *p = xasprintf("%s/f%d", dir, f);
                        (void)file_write_atomic(p, "x\n", 2, 0644, NULL);
                        free(p);
                }
                free(dir);
        }
}

static struct rt_spec *container_spec(const char *script)
{
        struct rt_spec *s = rt_spec_new();
        s->id = xstrdup("c1");
        s->root.path = xstrdup("");
        strv_push(&s->process.args, "/bin/sh");
        strv_push(&s->process.args, "-c");
        strv_push(&s->process.args, script);
        strv_push(&s->process.env, "PATH=/bin");
        s->namespaces[RT_NS_PID].mode = RT_NS_NEW;
        s->namespaces[RT_NS_UTS].mode = RT_NS_NEW;
        s->hostname = xstrdup("vfs");
        return s;
}

struct output {
        struct sbuf out;
};
static void on_output(void *arg, const char *cid, const char *eid, int stream, const void *data, size_t len,
                      bool eof)
{
        struct output *o = arg;
        (void)cid, (void)eid, (void)eof;
        if (stream == 1)
                sbuf_append(&o->out, data, len);
}

/* pids of processes whose command line mentions `needle` */
static pid_t find_pid(const char *needle)
{
        DIR *d = opendir("/proc");
        struct dirent *de;
        pid_t found = 0;
        while (d && (de = readdir(d)) && !found) {
                if (de->d_name[0] < '0' || de->d_name[0] > '9')
                        continue;
                char p[300];
                snprintf(p, sizeof(p), "/proc/%s/cmdline", de->d_name);
                char *s = NULL;
                size_t len = 0;
                if (file_read_all(p, &s, &len, 1 << 16, NULL) == 0) {
                        for (size_t i = 0; i < len; i++)
                                if (!s[i])
                                        s[i] = ' ';
                        if (strstr(s, needle) && !strstr(s, "test_vm"))
                                found = atoi(de->d_name);
                }
                free(s);
        }
        if (d)
                closedir(d);
        return found;
}

static int64_t ms_since(int64_t t0)
{
        return (time_mono_ns() - t0) / 1000000;
}

/* Run a guest command twice, keep the faster time (the host is shared). */
static int64_t timed(struct vm_agent *a, char **args, char **out)
{
        int64_t best = -1;
        for (int i = 0; i < 2; i++) {
                char *o = NULL;
                int code = -1;
                int64_t t0 = time_mono_ns();
                CHECK_OK(vm_agent_exec(a, NULL, args, 120000, &o, NULL, &code, e));
                int64_t t = ms_since(t0);
                CHECK(code == 0);
                if (best < 0 || t < best)
                        best = t;
                if (out && i == 1)
                        *out = o;
                else
                        free(o);
        }
        return best;
}

struct figures {
        int64_t boot, cat, find;
};

static void run(enum vm_share_type type, const char *rootfs, const char *state, struct figures *fig)
{
        const char *name = type == VM_SHARE_VIRTIOFS ? "virtiofs" : "9p";
        struct vm_config c = {.vmm = VM_VMM_QEMU,
                              .kernel = vmt_kernel,
                              .initrd = vmt_initrd,
                              .memory_mib = 256,
                              .agent_timeout_ms = 90000,
                              .state_dir = state,
                              .share = type};
        struct vm *v = NULL;
        CHECK_OK(vm_create(&c, &v, e));
        if (!v)
                return;
        CHECK_STR(vm_share_fstype(v), name);
        CHECK_OK(vm_add_share(v, &(struct vm_share){.tag = "rootfs", .path = rootfs}, e));
        int64_t t0 = time_mono_ns();
        struct err be = ERR_INIT;
        if (vm_boot(v, &be) < 0) {
                fprintf(stderr, "%s: boot failed: %s\n", name, be.msg);
                CHECK(!"vm_boot");
                err_clear(&be);
                vm_free(v);
                return;
        }
        fig->boot = ms_since(t0);
        struct vm_agent *a = vm_agent(v);
        CHECK_OK(vm_mount_share(v, "rootfs", false, 20000, e));
        char *out = NULL;
        int code = -1;
        char *mounts[] = {"/run/corral/shares/rootfs/bin/cat", "/proc/mounts", NULL};
        CHECK_OK(vm_agent_exec(a, NULL, mounts, 10000, &out, NULL, &code, e));
        char *want = xasprintf("rootfs /run/corral/shares/rootfs %s ", name);
        CHECK(out && strstr(out, want));
        if (!out || !strstr(out, want))
                fprintf(stderr, "%s: guest mounts: %s\n", name, out ? out : "(none)");
        free(want);
        free(out);

        char *cat[] = {"/run/corral/shares/rootfs/bin/sh", "-c",
                       "cat /run/corral/shares/rootfs/big >/dev/null", NULL};
        fig->cat = timed(a, cat, NULL);
        char *find[] = {"/run/corral/shares/rootfs/bin/sh", "-c",
                        "find /run/corral/shares/rootfs/tree | wc -l", NULL};
        out = NULL;
        fig->find = timed(a, find, &out);
        CHECK(out && atoi(out) == 1 + 40 + 40 * 50);
        free(out);

        /* A mount made on the host after boot, as the shim does per container. */
        char *src = path_join(tmp, "latesrc");
        mkdir_p(src, 0755, NULL);
        char *marker = path_join(src, "marker");
        CHECK(file_write_atomic(marker, "late\n", 5, 0644, NULL) == 0);
        snprintf(late_mnt, sizeof(late_mnt), "%s/late", rootfs);
        CHECK(mount(src, late_mnt, NULL, MS_BIND, NULL) == 0);
        char *late[] = {"/run/corral/shares/rootfs/bin/cat", "/run/corral/shares/rootfs/late/marker", NULL};
        out = NULL;
        CHECK_OK(vm_agent_exec(a, NULL, late, 10000, &out, NULL, &code, e));
        CHECK_STR(out, "late\n");
        free(out);
        /* and a write from the guest lands on the host */
        char *wr[] = {"/run/corral/shares/rootfs/bin/sh", "-c",
                      "echo from-guest > /run/corral/shares/rootfs/late/back", NULL};
        CHECK_OK(vm_agent_exec(a, NULL, wr, 10000, NULL, NULL, &code, e));
        char *back = path_join(src, "back");
        char *got = NULL;
        CHECK(file_read_all(back, &got, NULL, 0, NULL) == 0);
        CHECK_STR(got, "from-guest\n");
        free(got);
        (void)unlink(back);
        free(back);
        CHECK(umount2(late_mnt, MNT_DETACH) == 0);
        late_mnt[0] = '\0';
        free(marker);
        free(src);

        /* a container whose root is the share */
        struct output o = {0};
        vm_agent_set_output(a, on_output, &o);
        struct rt_spec *spec =
                container_spec("echo hello over $(grep -o ' /run/corral/shares/rootfs [a-z0-9]*' "
                               "/proc/self/mountinfo | head -n1 >/dev/null; echo share)");
        char *json = rt_spec_to_json(spec);
        CHECK_OK(vm_agent_create_container(a, "c1", json, "rootfs", 30000, e));
        CHECK_OK(vm_agent_start_container(a, "c1", 30000, NULL, e));
        int ccode = -1;
        CHECK_OK(vm_agent_wait(a, "c1", 60000, &ccode, e));
        CHECK(ccode == 0);
        CHECK_STR(o.out.buf, "hello over share\n");
        CHECK_OK(vm_agent_remove_container(a, "c1", 10000, e));
        free(json);
        rt_spec_free(spec);
        sbuf_free(&o.out);

        struct vm_stats vs;
        CHECK_OK(vm_stats(v, &vs, e));
        char *sock = path_join(state, "fs0.sock");
        pid_t fsd = find_pid(sock);
        if (type == VM_SHARE_VIRTIOFS) {
                CHECK(vs.n_virtiofsd == 1 && vs.virtiofsd_rss_bytes > 0);
                CHECK(fsd > 0 && vmt_pid_alive(fsd));
                CHECK(access(sock, F_OK) == 0);
        } else {
                CHECK(vs.n_virtiofsd == 0 && fsd == 0);
        }
        fprintf(stderr, "%s: qemu rss %llu KiB, virtiofsd %u rss %llu KiB\n", name,
                (unsigned long long)vs.rss_bytes >> 10, vs.n_virtiofsd,
                (unsigned long long)vs.virtiofsd_rss_bytes >> 10);
        pid_t qpid = vm_pid(v);
        CHECK_OK(vm_shutdown(v, 10000, e));
        CHECK(!vmt_pid_alive(qpid));
        CHECK(fsd == 0 || !vmt_pid_alive(fsd));
        CHECK(access(sock, F_OK) < 0);
        vm_free(v);
        CHECK(access(state, F_OK) < 0);
        free(sock);
}

/* virtiofsd killed under a running VM: the VM is reported dead, named. */
static void daemon_death(const char *rootfs, const char *state)
{
        struct vm_config c = {.vmm = VM_VMM_QEMU,
                              .kernel = vmt_kernel,
                              .initrd = vmt_initrd,
                              .agent_timeout_ms = 90000,
                              .state_dir = state,
                              .share = VM_SHARE_VIRTIOFS};
        struct vm *v = NULL;
        CHECK_OK(vm_create(&c, &v, e));
        if (!v)
                return;
        CHECK_OK(vm_add_share(v, &(struct vm_share){.tag = "rootfs", .path = rootfs}, e));
        struct err be = ERR_INIT;
        if (vm_boot(v, &be) < 0) {
                fprintf(stderr, "boot failed: %s\n", be.msg);
                CHECK(!"vm_boot");
                err_clear(&be);
                vm_free(v);
                return;
        }
        char *sock = path_join(state, "fs0.sock");
        pid_t fsd = find_pid(sock);
        pid_t qpid = vm_pid(v);
        CHECK(fsd > 0);
        if (fsd > 0)
                kill(fsd, SIGKILL);
        struct vm_status st = {0};
        for (int i = 0; i < 500; i++) {
                vm_status(v, &st);
                if (st.state == VM_DIED)
                        break;
                struct timespec ts = {0, 10 * 1000000};
                nanosleep(&ts, NULL);
        }
        CHECK(st.state == VM_DIED);
        CHECK(st.reason && strstr(st.reason, "virtiofsd of share rootfs killed by signal 9"));
        fprintf(stderr, "after killing virtiofsd: %s\n", st.reason ? st.reason : "(no reason)");
        for (int i = 0; i < 200 && vmt_pid_alive(qpid); i++) {
                vm_status(v, &st);
                struct timespec ts = {0, 10 * 1000000};
                nanosleep(&ts, NULL);
        }
        CHECK(!vmt_pid_alive(qpid));
        vm_free(v);
        CHECK(access(sock, F_OK) < 0);
        CHECK(access(state, F_OK) < 0);
        free(sock);
}

int main(void)
{
        const char *why = vmt_need_qemu();
        if (why)
                SKIP("test_vm_qemu_virtiofs: %s", why);
        why = vm_share_unavailable_reason(VM_VMM_QEMU, VM_SHARE_VIRTIOFS, NULL);
        if (why)
                SKIP("test_vm_qemu_virtiofs: %s", why);
        why = vmt_guest_image();
        if (why)
                SKIP("test_vm_qemu_virtiofs: %s", why);
        if (!mkdtemp(tmp))
                abort();
        atexit(cleanup);
        char *rootfs = path_join(tmp, "rootfs");
        make_rootfs(rootfs);
        char *state = path_join(tmp, "s");
        /* AUTO picks virtio-fs when the daemon exists; cloud-hypervisor has no 9p. */
        CHECK(vm_share_resolve(VM_VMM_QEMU, VM_SHARE_AUTO, NULL) == VM_SHARE_VIRTIOFS);
        CHECK(vm_share_resolve(VM_VMM_QEMU, VM_SHARE_AUTO, "/nonexistent/virtiofsd") == VM_SHARE_9P);
        CHECK(vm_share_unavailable_reason(VM_VMM_CLOUD_HYPERVISOR, VM_SHARE_9P, NULL) != NULL);
        CHECK(vm_share_unavailable_reason(VM_VMM_QEMU, VM_SHARE_VIRTIOFS, "/nonexistent/virtiofsd") != NULL);

        /* A first boot settles KVM or TCG (a KVM that boots no guest costs a
         * 5 s probe once), so the boots below compare the shares only. */
        {
                struct vm_config w = {.vmm = VM_VMM_QEMU,
                                      .kernel = vmt_kernel,
                                      .initrd = vmt_initrd,
                                      .agent_timeout_ms = 90000,
                                      .state_dir = state,
                                      .share = VM_SHARE_9P};
                struct vm *v = NULL;
                CHECK_OK(vm_create(&w, &v, e));
                if (v)
                        CHECK_OK(vm_boot(v, e));
                vm_free(v);
        }
        struct figures f9 = {0}, ffs = {0};
        run(VM_SHARE_9P, rootfs, state, &f9);
        run(VM_SHARE_VIRTIOFS, rootfs, state, &ffs);
        fprintf(stderr,
                "figures (ms, TCG, best of 2; %s):\n"
                "  boot to agent:        9p %6lld  virtiofs %6lld\n"
                "  cat 64 MiB file:      9p %6lld  virtiofs %6lld\n"
                "  find 2041 entries:    9p %6lld  virtiofs %6lld\n",
                vm_kvm_usable() && !vm_kvm_broken_reason() ? "KVM usable" : "TCG", (long long)f9.boot,
                (long long)ffs.boot, (long long)f9.cat, (long long)ffs.cat, (long long)f9.find,
                (long long)ffs.find);
        daemon_death(rootfs, state);
        free(rootfs);
        free(state);
        return check_report("test_vm_qemu_virtiofs");
}
