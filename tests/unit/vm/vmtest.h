/* Helpers for the vm/ tests: the guest image (built on first use), skips. */
#ifndef CORRAL_VMTEST_H
#define CORRAL_VMTEST_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "util/util.h"
#include "vm/vm.h"

static char vmt_kernel[512], vmt_initrd[512], vmt_release[128];

/* <build>/vm/{vmlinux,initramfs.img}; runs build-initramfs.sh when they
 * are missing or older than the agent. Returns a reason to skip, or NULL. */
static inline const char *vmt_guest_image(void)
{
        static char why[600];
        snprintf(vmt_kernel, sizeof(vmt_kernel), "%s/vm/vmlinux", CORRAL_BUILD_DIR);
        snprintf(vmt_initrd, sizeof(vmt_initrd), "%s/vm/initramfs.img", CORRAL_BUILD_DIR);
        if (!CORRAL_AGENT_BIN[0])
                return "corral-agent is not built (static archives missing)";
        struct stat a, i;
        if (stat(CORRAL_AGENT_BIN, &a) < 0)
                return "corral-agent binary missing";
        if (stat(vmt_initrd, &i) < 0 || stat(vmt_kernel, &i) < 0 || i.st_mtime < a.st_mtime ||
            stat(vmt_initrd, &i) < 0 || i.st_mtime < a.st_mtime) {
                char cmd[2048];
                snprintf(cmd, sizeof(cmd),
                         "%s/vm/guest/build-initramfs.sh --agent %s --out %s/vm >/tmp/vmt-image.log 2>&1",
                         CORRAL_SOURCE_DIR, CORRAL_AGENT_BIN, CORRAL_BUILD_DIR);
                if (system(cmd) != 0) {
                        snprintf(why, sizeof(why), "guest image could not be built (see /tmp/vmt-image.log)");
                        return why;
                }
        }
        char p[600];
        snprintf(p, sizeof(p), "%s/vm/kernel-release", CORRAL_BUILD_DIR);
        FILE *f = fopen(p, "r");
        if (!f || !fgets(vmt_release, sizeof(vmt_release), f)) {
                if (f)
                        fclose(f);
                return "guest kernel-release missing";
        }
        fclose(f);
        vmt_release[strcspn(vmt_release, "\n")] = '\0';
        return NULL;
}

static inline const char *vmt_need_qemu(void)
{
        if (geteuid() != 0)
                return "not root";
        const char *why = vm_vmm_unavailable_reason(VM_VMM_QEMU, NULL);
        return why;
}

static inline bool vmt_pid_alive(pid_t pid)
{
        return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

#define CHECK_OK(call)                                                                                       \
        do {                                                                                                 \
                struct err e_ = ERR_INIT;                                                                    \
                struct err *e = &e_;                                                                         \
                check_count++;                                                                               \
                if ((call) < 0) {                                                                            \
                        check_failures++;                                                                    \
                        fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, e_.msg);        \
                }                                                                                            \
                err_clear(&e_);                                                                              \
        } while (0)

/* A root filesystem for guest tests: the host's static busybox as
 * /bin/busybox with `applets` linked to it, and empty `dirs`. */
static inline void vmt_busybox_rootfs(const char *root, const char *const *dirs, size_t n_dirs,
                                      const char *const *applets, size_t n_applets)
{
        for (size_t i = 0; i < n_dirs; i++) {
                char *p = path_join(root, dirs[i]);
                mkdir_p(p, 0755, NULL);
                free(p);
        }
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "cp /bin/busybox %s/bin/busybox", root);
        if (system(cmd) != 0)
                abort();
        for (size_t i = 0; i < n_applets; i++) {
                char *p = xasprintf("%s/bin/%s", root, applets[i]);
                (void)!symlink("busybox", p);
                free(p);
        }
}

#endif
