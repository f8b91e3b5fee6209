/* Bad input: a missing kernel, an agent that never answers (an initrd
 * whose /init just sleeps), a guest that dies in boot (no usable /init),
 * and a VMM that sends malformed agent frames. Each: a clear error, the VMM
 * killed, nothing left behind. */
#include <sys/wait.h>

#include "vmtest.h"

static char tmp[] = "/tmp/cve-XXXXXX";

static void cleanup(void)
{
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
        (void)!system(cmd);
}

/* No process (qemu, the fake VMM) whose command line mentions this test's
 * directory. */
static bool no_vmm_left(void)
{
        cleanup_dir DIR *d = opendir("/proc");
        struct dirent *de;
        bool none = true;
        while (d && (de = readdir(d))) {
                int pid = atoi(de->d_name);
                if (pid <= 0 || pid == getpid())
                        continue;
                char p[64];
                snprintf(p, sizeof(p), "/proc/%d/cmdline", pid);
                cleanup_free char *cl = NULL;
                size_t n = 0;
                if (file_read_all(p, &cl, &n, 0, NULL) < 0)
                        continue;
                for (size_t i = 0; i < n; i++)
                        if (!cl[i])
                                cl[i] = ' ';
                if (strstr(cl, tmp)) {
                        fprintf(stderr, "left behind: pid %d %s\n", pid, cl);
                        none = false;
                }
        }
        return none;
}

static void make_initrd(const char *dir, const char *out, const char *init_script)
{
        char cmd[2048];
        snprintf(cmd, sizeof(cmd),
                 "set -e; mkdir -p %s/bin %s/dev; cp /bin/busybox %s/bin/; ln -sf busybox %s/bin/sh; "
                 "ln -sf busybox %s/bin/sleep; printf '%%s' '%s' > %s/init; chmod 755 %s/init; "
                 "cd %s && find . | cpio -o -H newc --quiet | gzip > %s",
                 dir, dir, dir, dir, dir, init_script, dir, dir, dir, out);
        if (system(cmd) != 0)
                abort();
}

static int boot_expect_fail(struct vm_config *c, enum err_kind kind, const char *what, int64_t max_ms)
{
        struct vm *v = NULL;
        struct err e = ERR_INIT;
        int64_t t0 = time_mono_ns();
        CHECK(vm_create(c, &v, &e) == 0);
        if (!v) {
                fprintf(stderr, "%s: create: %s\n", what, e.msg);
                err_clear(&e);
                return -1;
        }
        CHECK(vm_boot(v, &e) < 0);
        int64_t ms = (time_mono_ns() - t0) / 1000000;
        fprintf(stderr, "%s: %lld ms, %s: %s\n", what, (long long)ms, err_kind_name(e.kind), e.msg);
        CHECK(e.kind == kind);
        CHECK(ms <= max_ms);
        CHECK(vm_pid(v) == 0);
        CHECK(no_vmm_left());
        char *s = path_join(c->state_dir, "agent.sock"), *q = path_join(c->state_dir, "qmp.sock");
        CHECK(access(s, F_OK) < 0 && access(q, F_OK) < 0);
        free(s), free(q);
        vm_free(v);
        CHECK(access(c->state_dir, F_OK) < 0);
        err_clear(&e);
        return 0;
}

int main(void)
{
        const char *why = vmt_need_qemu();
        if (why)
                SKIP("test_vm_errors: %s", why);
        why = vmt_guest_image();
        if (why)
                SKIP("test_vm_errors: %s", why);
        if (!mkdtemp(tmp))
                abort();
        atexit(cleanup);
        char *state = path_join(tmp, "s");

        /* missing kernel: refused before anything starts */
        struct vm_config c = {.vmm = VM_VMM_QEMU,
                              .kernel = "/nonexistent/vmlinux",
                              .initrd = vmt_initrd,
                              .state_dir = state,
                              .agent_timeout_ms = 4000};
        struct vm *v = NULL;
        struct err e = ERR_INIT;
        CHECK(vm_create(&c, &v, &e) < 0);
        CHECK(err_is(&e, ERR_NOT_FOUND) && strstr(e.msg, "/nonexistent/vmlinux"));
        fprintf(stderr, "missing kernel: %s\n", e.msg);
        CHECK(access(state, F_OK) < 0);
        err_clear(&e);

        /* an agent that never answers: ERR_DEADLINE within the timeout */
        char *d1 = path_join(tmp, "i1"), *img1 = path_join(tmp, "sleep.img");
        make_initrd(d1, img1, "#!/bin/sh\nexec sleep 1000\n");
        c.kernel = vmt_kernel;
        c.initrd = img1;
        boot_expect_fail(&c, ERR_DEADLINE, "silent agent", 4000 + 1500);

        /* a guest that cannot start /init: the kernel panics, QEMU exits */
        char *d2 = path_join(tmp, "i2"), *img2 = path_join(tmp, "panic.img");
        char cmd[600];
        snprintf(cmd, sizeof(cmd),
                 "set -e; mkdir -p %s; printf 'not a program' > %s/init; chmod 644 %s/init; "
                 "cd %s && find . | cpio -o -H newc --quiet | gzip > %s",
                 d2, d2, d2, d2, img2);
        CHECK(system(cmd) == 0);
        c.initrd = img2;
        c.agent_timeout_ms = 30000;
        boot_expect_fail(&c, ERR_UNAVAILABLE, "guest panic", 30000);

        /* a VMM that speaks garbage on the agent socket: ERR_DATA_LOSS, killed */
        char *fake = path_join(tmp, "fake-qemu");
        const char *py = "#!/usr/bin/python3\n"
                         "import socket, sys, time, os\n"
                         "a = [x for x in sys.argv if 'id=agent' in x][0]\n"
                         "p = [f[5:] for f in a.split(',') if f.startswith('path=')][0]\n"
                         "s = socket.socket(socket.AF_UNIX); s.bind(p); s.listen(1)\n"
                         "c, _ = s.accept(); c.recv(4096); c.sendall(b'\\x7f\\xff\\xff\\xff garbage')\n"
                         "time.sleep(1000)\n";
        CHECK(file_write_atomic(fake, py, strlen(py), 0755, NULL) == 0);
        c.vmm_path = fake;
        c.initrd = vmt_initrd;
        c.accel = VM_ACCEL_TCG;
        boot_expect_fail(&c, ERR_DATA_LOSS, "malformed agent frame", 5000);

        free(d1), free(img1), free(d2), free(img2), free(fake), free(state);
        return check_report("test_vm_errors");
}
