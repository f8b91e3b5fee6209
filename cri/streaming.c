/* Exec, Attach, PortForward: URLs on the streaming server. (Not yet wired:
 * UNIMPLEMENTED.) */
#include "cri/cri-internal.h"

int cri_streaming_init(struct cri_daemon *d, struct err *e)
{
        (void)d, (void)e;
        return 0;
}

void cri_streaming_fini(struct cri_daemon *d)
{
        (void)d;
}

const struct cri_handler cri_streaming_handlers[] = {
        {NULL},
};
