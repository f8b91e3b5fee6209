/* corralctl containers verbs (none yet). */
#include "cmd/corralctl/ctl.h"

const struct ctl_verb ctl_container_verbs[] = {
        {NULL, NULL, NULL},
};
