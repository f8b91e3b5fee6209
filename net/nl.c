/* Netlink plumbing shared by link.c, ns.c and hostport.c. */
#include <errno.h>
#include <libmnl/libmnl.h>
#include <string.h>
#include <time.h>

#include "net/net-internal.h"

struct mnl_socket *nl_open(const char *netns, int bus, struct err *e)
{
        int saved = -1;
        struct mnl_socket *s;

        if (netns && net_ns_enter(netns, &saved, e) < 0)
                return NULL;
        s = mnl_socket_open2(bus, SOCK_CLOEXEC);
        int errnum = errno;
        net_ns_leave(&saved);
        if (!s) {
                err_make(e, errnum, "open netlink socket%s%s", netns ? " in " : "", netns ? netns : "");
                return NULL;
        }
        if (mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) < 0) {
                errnum = errno;
                mnl_socket_close(s);
                err_make(e, errnum, "bind netlink socket");
                return NULL;
        }
        return s;
}

void nl_closep(struct mnl_socket **s)
{
        if (*s)
                mnl_socket_close(*s);
        *s = NULL;
}

static unsigned int next_seq(void)
{
        static unsigned int seq;
        if (!seq)
                seq = (unsigned int)time(NULL);
        return __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
}

/* A dump the kernel marked interrupted (NLM_F_DUMP_INTR) still runs to its
 * NLMSG_DONE: read the rest of it, so that the socket's next request does
 * not see its messages. buf holds the last n bytes received. */
static void drain_dump(struct mnl_socket *s, char *buf, size_t size, ssize_t n, unsigned int seq)
{
        for (;;) {
                int len = (int)n;
                for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(h, len);
                     h = mnl_nlmsg_next(h, &len))
                        if (h->nlmsg_seq == seq &&
                            (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR))
                                return;
                do
                        n = mnl_socket_recvfrom(s, buf, size);
                while (n < 0 && errno == EINTR);
                if (n <= 0)
                        return;
        }
}

int nl_talk(struct mnl_socket *s, struct nlmsghdr *nlh, nl_cb cb, void *data, const char *what, struct err *e)
{
        char buf[32768];
        unsigned int seq = next_seq(), portid = mnl_socket_get_portid(s);
        ssize_t n;
        int ret;

        nlh->nlmsg_seq = seq;
        /* Dumps end with NLMSG_DONE; an extra ack would confuse the next call. */
        if ((nlh->nlmsg_flags & NLM_F_DUMP) != NLM_F_DUMP)
                nlh->nlmsg_flags |= NLM_F_ACK;
        if (mnl_socket_sendto(s, nlh, nlh->nlmsg_len) < 0)
                return err_make(e, errno, "%s: netlink send", what);
        for (;;) {
                n = mnl_socket_recvfrom(s, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return err_make(e, errno, "%s: netlink receive", what);
                }
                ret = mnl_cb_run(buf, (size_t)n, seq, portid, (mnl_cb_t)cb, data);
                if (ret == MNL_CB_STOP)
                        return 0;
                if (ret == MNL_CB_ERROR) {
                        int err = errno;
                        if (err == EINTR && (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP)
                                drain_dump(s, buf, sizeof(buf), n, seq);
                        return err_make(e, err, "%s", what);
                }
        }
}

int nl_dump(struct mnl_socket *s, struct nlmsghdr *nlh, nl_cb cb, void *data, void (*reset)(void *data),
            const char *what, struct err *e)
{
        for (int attempt = 1;; attempt++) {
                struct err ie = ERR_INIT;
                if (nl_talk(s, nlh, cb, data, what, &ie) == 0)
                        return 0;
                /* The set changed while it was read (another pod's rules):
                 * what was seen may be torn, so read it again. */
                if (ie.errnum != EINTR || attempt == 20) {
                        err_move(e, &ie);
                        return -1;
                }
                err_clear(&ie);
                reset(data);
                /* Let the change that interrupted it finish first. */
                nanosleep(&(struct timespec){0, (attempt < 5 ? attempt : 5) * 1000000L}, NULL);
        }
}
