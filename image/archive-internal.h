/* image/: image archives (docker-archive, OCI image layout tars) for
 * import.c and export.c, and the parsers the fuzz targets drive.
 *
 * Archives come from anyone: names are normalised (no "..", no absolute
 * names), links must stay inside the archive, nothing of the archive ever
 * becomes a path on the host (regular files are spooled to numbered files
 * in a staging directory), and every file is hashed as it is spooled. */
#ifndef CORRAL_IMAGE_ARCHIVE_INTERNAL_H
#define CORRAL_IMAGE_ARCHIVE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/image.h"

#define ARC_MAX_ENTRIES 65536
#define ARC_MAX_JSON    (4u << 20)

struct arc_entry {
        char *name;   /* normalised: "blobs/sha256/<hex>", "abc/layer.tar" */
        char *link;   /* symlink or hardlink target, normalised from the root; NULL for a file */
        char *path;   /* the spooled file (regular files) */
        char *digest; /* "sha256:<hex>" of its bytes */
        int64_t size;
};

struct arc {
        char *dir; /* staging directory (removed by arc_clear) */
        struct arc_entry *v;
        size_t n;
};

/* Read a tar (plain, gzip or zstd) from rd into staging directory `dir`
 * (created; must not exist). ERR_INVALID names a refused entry (a ".."
 * component, an absolute name, a link leaving the archive, a device, a
 * duplicate) or a truncated / corrupt archive. */
int arc_scan(const char *dir, img_read_fn rd, void *data, struct arc *out, struct err *e);
/* The same over bytes in memory (tests, fuzzing). */
int arc_scan_mem(const char *dir, const void *buf, size_t len, struct arc *out, struct err *e);
/* Remove the staging directory and free. */
void arc_clear(struct arc *a);
/* A regular file by name, links followed; NULL when absent. */
const struct arc_entry *arc_find(const struct arc *a, const char *name);
/* A small file's bytes (at most ARC_MAX_JSON). ERR_NOT_FOUND when absent. */
int arc_read(const struct arc *a, const char *name, char **buf, size_t *len, struct err *e);

/* "./a//b/./c" -> "a/b/c". ERR_INVALID for "", absolute names and ".."
 * components (or, with allow_up, for ".." that climbs above the root). */
int arc_name_clean(const char *name, bool allow_up, char **out, struct err *e);

/* One image of a docker-archive's manifest.json. */
struct arc_docker_image {
        char *config;
        char **repo_tags; /* never NULL */
        char **layers;    /* never NULL */
};
int arc_docker_manifest_parse(const char *buf, size_t len, struct arc_docker_image **out, size_t *n,
                              struct err *e);
void arc_docker_images_free(struct arc_docker_image *v, size_t n);
/* The schema2 manifest skopeo makes for a docker-archive image (byte for
 * byte, so that the digests agree). Caller frees. */
char *arc_docker_manifest_json(const char *config_digest, int64_t config_size, char *const *layer_digests,
                               const int64_t *layer_sizes, size_t n_layers);

/* One entry of an OCI layout's index.json, with its names. */
struct arc_oci_ref {
        struct img_descriptor d;
        char *ref_name;   /* org.opencontainers.image.ref.name, or NULL */
        char *image_name; /* io.containerd.image.name, or NULL */
};
int arc_oci_index_parse(const char *buf, size_t len, struct arc_oci_ref **out, size_t *n, struct err *e);
void arc_oci_refs_free(struct arc_oci_ref *v, size_t n);

#endif
