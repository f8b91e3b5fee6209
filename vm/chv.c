/* The cloud-hypervisor driver: not implemented yet. cloud-hypervisor is
 * driven over its REST API (--api-socket: vm.create, vm.boot, vm.add-fs
 * with virtiofsd, vm.add-net, hybrid vsock "CONNECT <port>\n",
 * vm.shutdown/vmm.shutdown); it needs /dev/kvm, and Debian 12 does not
 * package it. Every operation fails with ERR_UNIMPLEMENTED. */
#include <string.h>

#include "vm/vm-internal.h"

#define CHV_UNIMPLEMENTED "cloud-hypervisor driver not implemented yet (use vmm \"qemu\")"

static const char *chv_unavailable(const char *vmm_path)
{
        (void)vmm_path;
        if (!vm_kvm_usable())
                return "cloud-hypervisor needs /dev/kvm, which is not usable here";
        char *bin = vm_find_binary(vmm_path && *vmm_path ? vmm_path : "cloud-hypervisor");
        if (!bin)
                return "the cloud-hypervisor binary is not installed";
        free(bin);
        return CHV_UNIMPLEMENTED;
}

static int chv_unimpl(struct err *e)
{
        return err_set(e, ERR_UNIMPLEMENTED, CHV_UNIMPLEMENTED);
}
static int chv_add_share(struct vm *v, const struct vm_share *s, struct err *e)
{
        (void)v, (void)s;
        return chv_unimpl(e);
}
static int chv_add_net(struct vm *v, const struct vm_net *n, struct err *e)
{
        (void)v, (void)n;
        return chv_unimpl(e);
}
static int chv_boot(struct vm *v, struct err *e)
{
        (void)v;
        return chv_unimpl(e);
}
static int chv_connect(struct vm *v, int64_t d, struct err *e)
{
        (void)v, (void)d;
        return chv_unimpl(e);
}
static int chv_shutdown(struct vm *v, int t, struct err *e)
{
        (void)v, (void)t;
        return chv_unimpl(e);
}
static int chv_kill(struct vm *v, struct err *e)
{
        (void)v;
        return chv_unimpl(e);
}
static int chv_stats(struct vm *v, struct vm_stats *o, struct err *e)
{
        (void)v, (void)o;
        return chv_unimpl(e);
}

const struct vm_driver_ops vm_chv_ops = {
        .name = "cloud-hypervisor",
        .unavailable = chv_unavailable,
        .add_share = chv_add_share,
        .add_net = chv_add_net,
        .boot = chv_boot,
        .connect_agent = chv_connect,
        .shutdown = chv_shutdown,
        .kill = chv_kill,
        .stats = chv_stats,
};
