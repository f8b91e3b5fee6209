/* Container and pod stats. (Not yet wired: UNIMPLEMENTED.) */
#include "cri/cri-internal.h"

const struct cri_handler cri_stats_handlers[] = {
        {NULL},
};
