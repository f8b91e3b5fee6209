/* corralctl stream verbs (none yet). */
#include "cmd/corralctl/ctl.h"

const struct ctl_verb ctl_stream_verbs[] = {
        {NULL, NULL, NULL},
};
