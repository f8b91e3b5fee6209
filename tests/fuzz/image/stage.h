/* A staging directory for the archive fuzz targets, made once per process
 * under /tmp and removed at exit. */
#ifndef CORRAL_FUZZ_IMAGE_STAGE_H
#define CORRAL_FUZZ_IMAGE_STAGE_H

#include <stdio.h>
#include <stdlib.h>

#include "util/util.h"

static char fuzz_stage_parent[64];

static void fuzz_stage_cleanup(void)
{
        (void)rm_rf(fuzz_stage_parent, NULL);
}

/* <tmp>/stage, where tmp is /tmp/<prefix>-XXXXXX. */
static char *fuzz_stage(const char *prefix)
{
        static char *dir;
        if (!dir) {
                char tmpl[64];
                snprintf(tmpl, sizeof(tmpl), "/tmp/%s-XXXXXX", prefix);
                if (!mkdtemp(tmpl))
                        abort();
                snprintf(fuzz_stage_parent, sizeof(fuzz_stage_parent), "%s", tmpl);
                atexit(fuzz_stage_cleanup);
                dir = xasprintf("%s/stage", tmpl);
        }
        return dir;
}

#endif
