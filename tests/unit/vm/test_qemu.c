/* Boot a real guest under QEMU (KVM when it works, else TCG), talk to
 * corral-agent: ping, exec (uname -r is the guest's kernel, an exit code
 * comes back, a timeout kills), a busybox container from a 9p share, the
 * network from the host, then a clean shutdown; then a second VM killed
 * from outside, reported as dead. */
#include <sched.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "net/net.h"
#include "runtime/runtime.h"
#include "vmtest.h"

static char tmp[] = "/tmp/cvq-XXXXXX";
static char netns_dir[300];

static void cleanup(void)
{
        char cmd[400];
        if (netns_dir[0]) {
                (void)net_ns_unpin(netns_dir, NULL);
                /* net_ns_pin made the ns root a private bind mount of itself. */
                snprintf(cmd, sizeof(cmd), "umount %s/nsroot 2>/dev/null", tmp);
                (void)!system(cmd);
        }
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
        (void)!system(cmd);
}

static void make_rootfs(const char *root)
{
        static const char *const dirs[] = {"bin", "proc", "sys", "dev", "tmp", "etc", "run"};
        static const char *const applets[] = {"sh", "echo", "uname", "cat", "sleep", "ip", "ls", "true"};
        vmt_busybox_rootfs(root, dirs, ARRAY_SIZE(dirs), applets, ARRAY_SIZE(applets));
        char *pw = path_join(root, "etc/passwd");
        file_write_atomic(pw, "root:x:0:0:root:/:/bin/sh\n", 26, 0644, NULL);
        free(pw);
}

struct output {
        struct sbuf out, err;
        bool out_eof;
};

static void on_output(void *arg, const char *cid, const char *eid, int stream, const void *data, size_t len,
                      bool eof)
{
        struct output *o = arg;
        (void)cid, (void)eid;
        if (stream == 1) {
                sbuf_append(&o->out, data, len);
                o->out_eof |= eof;
        } else {
                sbuf_append(&o->err, data, len);
        }
}

static struct rt_spec *container_spec(const char *script)
{
        struct rt_spec *s = rt_spec_new();
        s->id = xstrdup("c1");
        s->root.path = xstrdup(""); /* the share's root */
        strv_push(&s->process.args, "/bin/sh");
        strv_push(&s->process.args, "-c");
        strv_push(&s->process.args, script);
        strv_push(&s->process.env, "PATH=/bin");
        s->namespaces[RT_NS_PID].mode = RT_NS_NEW;
        s->namespaces[RT_NS_IPC].mode = RT_NS_NEW;
        s->namespaces[RT_NS_UTS].mode = RT_NS_NEW;
        s->hostname = xstrdup("vmctr");
        return s;
}

int main(void)
{
        const char *why = vmt_need_qemu();
        if (why)
                SKIP("test_vm_qemu: %s", why);
        why = vmt_guest_image();
        if (why)
                SKIP("test_vm_qemu: %s", why);
        if (!mkdtemp(tmp))
                abort();
        atexit(cleanup);
        char *rootfs = path_join(tmp, "rootfs");
        make_rootfs(rootfs);
        char *state = path_join(tmp, "s");

        /* The pod network: a pinned netns with a tap the VM uses. */
        snprintf(netns_dir, sizeof(netns_dir), "%s/nsroot/pod", tmp);
        struct net_ns_paths ns = {0};
        CHECK_OK(net_ns_pin(netns_dir, CLONE_NEWNET, NULL, &ns, e));
        CHECK_OK(net_link_tap_create(ns.net, "vmtap0", 0, false, e));
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "nsenter --net=%s ip addr add 10.99.0.1/24 dev vmtap0", ns.net);
        CHECK(system(cmd) == 0);

        struct vm_config c = {.vmm = VM_VMM_QEMU,
                              .kernel = vmt_kernel,
                              .initrd = vmt_initrd,
                              .cpus = 1,
                              .memory_mib = 256,
                              .agent_timeout_ms = 60000,
                              .state_dir = state,
                              .netns = ns.net};
        struct vm *v = NULL;
        CHECK_OK(vm_create(&c, &v, e));
        if (!v)
                return check_report("test_vm_qemu");
        CHECK_OK(vm_add_share(v, &(struct vm_share){.tag = "rootfs", .path = rootfs}, e));
        CHECK_OK(vm_add_net(v, &(struct vm_net){.tap = "vmtap0", .mac = "52:54:00:12:34:56"}, e));
        int64_t t0 = time_mono_ns();
        struct err be = ERR_INIT;
        if (vm_boot(v, &be) < 0) {
                fprintf(stderr, "boot failed: %s\n", be.msg);
                CHECK(!"vm_boot");
                vm_free(v);
                return check_report("test_vm_qemu");
        }
        fprintf(stderr, "booted under %s in %lld ms (KVM usable: %s%s%s)\n", vm_accel_used(v),
                (long long)((time_mono_ns() - t0) / 1000000), vm_kvm_usable() ? "yes" : "no",
                vm_kvm_broken_reason() ? "; " : "", vm_kvm_broken_reason() ? vm_kvm_broken_reason() : "");
        pid_t qpid = vm_pid(v);
        CHECK(vmt_pid_alive(qpid));
        struct vm_agent *a = vm_agent(v);

        /* ping: the guest's kernel, not the host's */
        struct vm_agent_info info = {0};
        CHECK_OK(vm_agent_ping(a, 5000, &info, e));
        struct utsname u;
        uname(&u);
        fprintf(stderr, "guest kernel %s, host kernel %s\n", info.kernel_release, u.release);
        CHECK_STR(info.kernel_release, vmt_release);
        vm_agent_info_clear(&info);

        /* the share (virtio-fs where virtiofsd is installed, else 9p), then exec in the guest */
        CHECK_OK(vm_mount_share(v, "rootfs", false, 10000, e));
        char *out = NULL, *err = NULL;
        int code = -1;
        char *uname_r[] = {"/run/corral/shares/rootfs/bin/uname", "-r", NULL};
        CHECK_OK(vm_agent_exec(a, NULL, uname_r, 10000, &out, &err, &code, e));
        CHECK(code == 0);
        if (out)
                out[strcspn(out, "\n")] = '\0';
        CHECK_STR(out, vmt_release);
        CHECK(out && strcmp(out, u.release) != 0);
        free(out), free(err);
        char *exit3[] = {"/run/corral/shares/rootfs/bin/sh", "-c", "exit 3", NULL};
        CHECK_OK(vm_agent_exec(a, NULL, exit3, 10000, NULL, NULL, &code, e));
        CHECK(code == 3);
        char *slp[] = {"/run/corral/shares/rootfs/bin/sleep", "30", NULL};
        struct err te = ERR_INIT;
        t0 = time_mono_ns();
        CHECK(vm_agent_exec(a, NULL, slp, 500, NULL, NULL, &code, &te) < 0 && err_is(&te, ERR_DEADLINE));
        CHECK(time_mono_ns() - t0 < 5000000000LL);
        err_clear(&te);

        /* network: addresses and routes from the host; the host reaches the guest */
        const char *addrs[] = {"10.99.0.2/24", NULL};
        struct vm_route routes[] = {{.dst = "default", .gw = "10.99.0.1"}};
        CHECK_OK(vm_agent_setup_network(a,
                                        &(struct vm_net_config){.mac = "52:54:00:12:34:56",
                                                                .addresses = addrs,
                                                                .routes = routes,
                                                                .n_routes = 1,
                                                                .hostname = "vmpod"},
                                        10000, e));
        char *ipr[] = {"/run/corral/shares/rootfs/bin/ip", "route", NULL};
        CHECK_OK(vm_agent_exec(a, NULL, ipr, 10000, &out, NULL, &code, e));
        CHECK(out && strstr(out, "default via 10.99.0.1"));
        fprintf(stderr, "guest routes: %s", out ? out : "");
        free(out);
        snprintf(cmd, sizeof(cmd), "nsenter --net=%s /bin/busybox ping -c1 -W5 10.99.0.2 >/dev/null 2>&1",
                 ns.net);
        CHECK(system(cmd) == 0);

        /* a container from the 9p share, output streamed back */
        struct output o = {0};
        vm_agent_set_output(a, on_output, &o);
        struct rt_spec *spec = container_spec(
                "echo hello from $(uname -r) as $(hostname); echo oops >&2; sleep 0.2; exit 7");
        char *json = rt_spec_to_json(spec);
        CHECK_OK(vm_agent_create_container(a, "c1", json, "rootfs", 20000, e));
        CHECK_OK(vm_agent_start_container(a, "c1", 20000, NULL, e));
        int ccode = -1;
        CHECK_OK(vm_agent_wait(a, "c1", 30000, &ccode, e));
        CHECK(ccode == 7);
        char *want = xasprintf("hello from %s as vmctr\n", vmt_release);
        CHECK_STR(o.out.buf, want);
        CHECK_STR(o.err.buf, "oops\n");
        CHECK(o.out_eof);
        free(want);
        free(json);
        rt_spec_free(spec);
        CHECK_OK(vm_agent_remove_container(a, "c1", 10000, e));

        /* a long-running container: exec into it, signal it */
        sbuf_free(&o.out);
        sbuf_free(&o.err);
        spec = container_spec("echo ready; exec sleep 1000");
        json = rt_spec_to_json(spec);
        CHECK_OK(vm_agent_create_container(a, "c2", json, "rootfs", 20000, e));
        CHECK_OK(vm_agent_start_container(a, "c2", 20000, NULL, e));
        char *cu[] = {"uname", "-r", NULL};
        CHECK_OK(vm_agent_exec(a, "c2", cu, 10000, &out, NULL, &code, e));
        CHECK(out && strncmp(out, vmt_release, strlen(vmt_release)) == 0);
        free(out);
        char *c3[] = {"sh", "-c", "exit 3", NULL};
        CHECK_OK(vm_agent_exec(a, "c2", c3, 10000, NULL, NULL, &code, e));
        CHECK(code == 3);
        CHECK_OK(vm_agent_signal(a, "c2", SIGKILL, 5000, e));
        CHECK_OK(vm_agent_wait(a, "c2", 10000, &ccode, e));
        CHECK(ccode == 128 + SIGKILL);
        free(json);
        rt_spec_free(spec);

        /* stats */
        struct vm_stats vs;
        CHECK_OK(vm_stats(v, &vs, e));
        CHECK_STR(vs.vmm_status, "running");
        CHECK(vs.rss_bytes > 0);
        fprintf(stderr, "qemu pid %d rss %llu KiB boot %llu ms status %s\n", (int)vs.pid,
                (unsigned long long)vs.rss_bytes / 1024, (unsigned long long)vs.boot_ms, vs.vmm_status);
        struct vm_agent_stats as;
        CHECK_OK(vm_agent_stats(a, NULL, 5000, &as, e));
        CHECK(as.memory_total > 100ull << 20 && as.pids > 0);

        /* a clean shutdown: no qemu left, sockets gone */
        t0 = time_mono_ns();
        CHECK_OK(vm_shutdown(v, 10000, e));
        fprintf(stderr, "shutdown in %lld ms\n", (long long)((time_mono_ns() - t0) / 1000000));
        CHECK(!vmt_pid_alive(qpid));
        struct vm_status st;
        vm_status(v, &st);
        CHECK(st.state == VM_STOPPED);
        char *sock = path_join(state, "agent.sock");
        char *qmp = path_join(state, "qmp.sock");
        CHECK(access(sock, F_OK) < 0 && access(qmp, F_OK) < 0);
        vm_free(v);
        CHECK(access(state, F_OK) < 0);
        sbuf_free(&o.out);
        sbuf_free(&o.err);

        /* a second VM, killed from outside: the host side reports it */
        c.netns = NULL;
        CHECK_OK(vm_create(&c, &v, e));
        t0 = time_mono_ns();
        CHECK_OK(vm_boot(v, e));
        fprintf(stderr, "second boot under %s in %lld ms\n", vm_accel_used(v),
                (long long)((time_mono_ns() - t0) / 1000000));
        qpid = vm_pid(v);
        CHECK(qpid > 0 && kill(qpid, SIGKILL) == 0);
        struct err de = ERR_INIT;
        CHECK(vm_agent_ping(vm_agent(v), 5000, NULL, &de) < 0);
        fprintf(stderr, "agent after the kill: %s\n", de.msg);
        err_clear(&de);
        for (int i = 0; i < 200; i++) {
                vm_status(v, &st);
                if (st.state != VM_RUNNING)
                        break;
                usleep(10000);
        }
        CHECK(st.state == VM_DIED);
        CHECK(st.reason && strstr(st.reason, "signal 9"));
        fprintf(stderr, "death reported: %s\n", st.reason ? st.reason : "(none)");
        CHECK(access(sock, F_OK) < 0 && access(qmp, F_OK) < 0);
        vm_free(v);
        free(sock), free(qmp), free(state), free(rootfs);
        net_ns_paths_free(&ns);
        return check_report("test_vm_qemu");
}
