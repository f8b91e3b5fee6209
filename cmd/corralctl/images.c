/* corralctl images verbs (none yet). */
#include "cmd/corralctl/ctl.h"

const struct ctl_verb ctl_image_verbs[] = {
        {NULL, NULL, NULL},
};
