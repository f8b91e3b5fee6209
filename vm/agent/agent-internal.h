/* corral-agent: pid 1 of a corral microVM. */
#ifndef CORRAL_VM_AGENT_INTERNAL_H
#define CORRAL_VM_AGENT_INTERNAL_H

#include <stdbool.h>

#include "vm/frame-internal.h"

#define AGENT_PORT_NAME  "corral.agent"
#define AGENT_SHARES_DIR "/run/corral/shares"

/* pid 1 set-up (init.c): leave the initramfs for a tmpfs root (pivot_root
 * refuses rootfs), mount proc/sys/dev/cgroup2/tmp/run, load the modules
 * listed in /lib/modules/order, send the log to /dev/hvc0. */
int agent_init_system(struct err *e);
/* Load every module in `order_file` (names relative to its directory). */
int agent_load_modules(const char *order_file, struct err *e);
/* Find the virtio-serial port named `name` and open it (O_RDWR|O_NONBLOCK),
 * waiting up to timeout_ms for it to appear. */
int agent_open_port(const char *name, int timeout_ms, struct err *e);

/* netcfg.c: interface addresses, routes and MTU over rtnetlink. */
int agent_net_setup(const Corral__Agent__V1__SetupNetworkRequest *r, struct err *e);

/* serve.c: the protocol loop. With `reconnect`, EOF on fd means the host
 * went away for now (virtio-serial): wait and go on; otherwise (a socket in
 * tests) return 0. Only returns early after Shutdown (1). */
int agent_serve(int fd, bool reconnect, bool is_pid1);

#endif
