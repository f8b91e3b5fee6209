/* cloud-hypervisor, end to end: boot a guest over the REST API with a
 * virtio-fs share, reach the agent over hybrid vsock, mount the share and
 * run from it, vm.info stats, then shutdown leaving nothing behind. It needs
 * a KVM that boots guests and the binary: skips by name (77) otherwise,
 * saying which is missing. The API client, body and handshake are tested
 * without KVM in test_chv_api.c. */
#include "vmtest.h"

int main(void)
{
        if (geteuid() != 0)
                SKIP("test_vm_cloud_hypervisor: not root");
        const char *why = vm_vmm_unavailable_reason(VM_VMM_CLOUD_HYPERVISOR, NULL);
        if (why)
                SKIP("test_vm_cloud_hypervisor: %s", why);
        /* corrald's verdict file, if a daemon on this host found KVM boots no guest */
        if (access("/run/corral/vm-kvm-broken", F_OK) == 0)
                SKIP("test_vm_cloud_hypervisor: /run/corral/vm-kvm-broken says KVM boots no guest here");
        why = vm_share_unavailable_reason(VM_VMM_CLOUD_HYPERVISOR, VM_SHARE_VIRTIOFS, NULL);
        if (why)
                SKIP("test_vm_cloud_hypervisor: %s", why);
        why = vmt_guest_image();
        if (why)
                SKIP("test_vm_cloud_hypervisor: %s", why);
        char tmp[] = "/tmp/cvc-XXXXXX";
        if (!mkdtemp(tmp))
                abort();
        char *share = path_join(tmp, "share");
        mkdir_p(share, 0755, NULL);
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "cp /bin/busybox %s/busybox", share);
        CHECK(system(cmd) == 0);
        char *state = path_join(tmp, "s");
        struct vm_config c = {.vmm = VM_VMM_CLOUD_HYPERVISOR,
                              .kernel = vmt_kernel,
                              .initrd = vmt_initrd,
                              .accel = VM_ACCEL_KVM,
                              .agent_timeout_ms = 30000,
                              .state_dir = state};
        struct vm *v = NULL;
        CHECK_OK(vm_create(&c, &v, e));
        if (!v)
                return check_report("test_vm_cloud_hypervisor");
        CHECK_STR(vm_share_fstype(v), "virtiofs");
        CHECK_OK(vm_add_share(v, &(struct vm_share){.tag = "s", .path = share}, e));
        struct err be = ERR_INIT;
        if (vm_boot(v, &be) < 0) {
                fprintf(stderr, "boot failed: %s\n", be.msg);
                CHECK(!"vm_boot");
                vm_free(v);
                return check_report("test_vm_cloud_hypervisor");
        }
        struct vm_agent *a = vm_agent(v);
        CHECK_OK(vm_mount_share(v, "s", false, 10000, e));
        char *out = NULL;
        int code = -1;
        char *u[] = {"/run/corral/shares/s/busybox", "uname", "-r", NULL};
        CHECK_OK(vm_agent_exec(a, NULL, u, 10000, &out, NULL, &code, e));
        CHECK(code == 0 && out && strncmp(out, vmt_release, strlen(vmt_release)) == 0);
        free(out);
        struct vm_stats st;
        CHECK_OK(vm_stats(v, &st, e));
        CHECK_STR(st.vmm_status, "Running");
        CHECK(st.n_virtiofsd == 1);
        fprintf(stderr, "cloud-hypervisor boot %llu ms rss %llu KiB\n", (unsigned long long)st.boot_ms,
                (unsigned long long)st.rss_bytes >> 10);
        pid_t pid = vm_pid(v);
        CHECK_OK(vm_shutdown(v, 10000, e));
        CHECK(!vmt_pid_alive(pid));
        vm_free(v);
        CHECK(access(state, F_OK) < 0);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
        (void)!system(cmd);
        free(share);
        free(state);
        return check_report("test_vm_cloud_hypervisor");
}
