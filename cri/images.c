/* ImageService: PullImage, ListImages, ImageStatus, RemoveImage,
 * ImageFsInfo, StreamImages. (Not yet wired: every method answers
 * UNIMPLEMENTED.) */
#include "cri/cri-internal.h"

int cri_images_init(struct cri_daemon *d, struct err *e)
{
        (void)d, (void)e;
        return 0;
}

void cri_images_fini(struct cri_daemon *d)
{
        (void)d;
}

const struct cri_handler cri_image_handlers[] = {
        {NULL},
};
