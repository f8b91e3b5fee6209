/* net: helpers shared by the files of net/ only. */
#ifndef CORRAL_NET_INTERNAL_H
#define CORRAL_NET_INTERNAL_H

#include "net/net.h"
#include "util/util.h"

struct mnl_socket;
struct nlmsghdr;

/* A netlink socket of protocol `bus` living in `netns` (NULL: ours): opened
 * after a setns of this thread, which then returns home. The socket keeps
 * talking to that namespace. */
struct mnl_socket *nl_open(const char *netns, int bus, struct err *e);
void nl_closep(struct mnl_socket **s);
#define cleanup_nl __attribute__((cleanup(nl_closep)))

/* Send one request (NLM_F_ACK is added) and wait for its ack; for dumps,
 * `cb` sees every message. Returns -1 with the kernel's errno in `e`. */
typedef int (*nl_cb)(const struct nlmsghdr *nlh, void *data);
int nl_talk(struct mnl_socket *s, struct nlmsghdr *nlh, nl_cb cb, void *data, const char *what,
            struct err *e);
/* A dump that is read again (after reset(data)) while the kernel reports
 * it interrupted by a concurrent change (EINTR), up to 20 times. */
int nl_dump(struct mnl_socket *s, struct nlmsghdr *nlh, nl_cb cb, void *data, void (*reset)(void *data),
            const char *what, struct err *e);

#endif
