/* RuntimeService pod sandboxes. (Not yet wired: UNIMPLEMENTED.) */
#include "cri/cri-internal.h"

int cri_pods_init(struct cri_daemon *d, struct err *e)
{
        (void)d, (void)e;
        return 0;
}

void cri_pods_fini(struct cri_daemon *d)
{
        (void)d;
}

const struct cri_handler cri_pod_handlers[] = {
        {NULL},
};
