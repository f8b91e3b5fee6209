/* cloud-hypervisor driver: skips by name where /dev/kvm or the binary is
 * absent; where both exist it checks the driver reports itself clearly as
 * not implemented (and skips). */
#include "vmtest.h"

int main(void)
{
        if (!vm_kvm_usable())
                SKIP("test_vm_cloud_hypervisor: /dev/kvm is not usable");
        const char *why = vm_vmm_unavailable_reason(VM_VMM_CLOUD_HYPERVISOR, NULL);
        if (why && strstr(why, "not installed"))
                SKIP("test_vm_cloud_hypervisor: %s", why);
        struct vm_config c = {.vmm = VM_VMM_CLOUD_HYPERVISOR,
                              .kernel = "/dev/null",
                              .initrd = "/dev/null",
                              .state_dir = "/tmp/corral-chv-test"};
        struct vm *v = NULL;
        struct err e = ERR_INIT;
        CHECK(vm_create(&c, &v, &e) < 0);
        CHECK(e.msg && strstr(e.msg, "not implemented"));
        fprintf(stderr, "%s\n", e.msg ? e.msg : "");
        err_clear(&e);
        if (check_failures)
                return check_report("test_vm_cloud_hypervisor");
        SKIP("test_vm_cloud_hypervisor: driver not implemented yet");
}
