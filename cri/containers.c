/* RuntimeService containers. (Not yet wired: UNIMPLEMENTED.) */
#include "cri/cri-internal.h"

const struct cri_handler cri_container_handlers[] = {
        {NULL},
};
