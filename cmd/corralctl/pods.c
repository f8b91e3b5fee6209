/* corralctl pods verbs (none yet). */
#include "cmd/corralctl/ctl.h"

const struct ctl_verb ctl_pod_verbs[] = {
        {NULL, NULL, NULL},
};
