/* The per-VM shim (corral-shim vm), private: vm_server.c (event loop,
 * sockets, the VM, container life) and vm_rootfs.c (a container's files on
 * the host, its spec in the guest's view). */
#ifndef CORRAL_SHIM_VM_INTERNAL_H
#define CORRAL_SHIM_VM_INTERNAL_H

#include "util/util.h"

struct rt_spec;

/* One container's files under the VM share. */
struct vm_ctr_files {
        const char *id;
        const char *tag; /* the share's tag */
        char *dir;       /* <vm state>/share/<id> */
        char **mounts;   /* host mount points made, in order */
};

/* Mount the rootfs and bind sources under f->dir and rewrite `s` for the
 * guest. On failure what was mounted stays listed: call the undo. */
int vm_ctr_files_prepare(struct vm_ctr_files *f, struct rt_spec *s, struct err *e);
/* Detach every mount made and remove the mount points and f->dir. */
void vm_ctr_files_undo(struct vm_ctr_files *f);

#endif
