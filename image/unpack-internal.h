/* image/unpack: apply one layer blob (tar, tar+gzip, tar+zstd) to a directory,
 * turning OCI/Docker whiteouts into overlayfs whiteouts.
 *
 * Security contract: no entry is created, written, chowned or linked outside
 * dest_dir. Names with a `..` component are refused; absolute names are taken
 * relative to dest_dir (as Docker does); parent directories are opened with
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) from a dirfd of dest_dir
 * (or an equivalent manual walk where openat2 is missing), so symlinks from
 * the layer resolve inside dest_dir; the last component of a name is never
 * followed. A refused entry fails the whole unpack with ERR_INVALID naming
 * the entry; the caller removes dest_dir.
 */
#ifndef CORRAL_IMAGE_UNPACK_INTERNAL_H
#define CORRAL_IMAGE_UNPACK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

struct img_unpack_stats {
        uint64_t bytes;     /* file data bytes written */
        uint64_t files;     /* entries created: files, dirs, links, nodes, whiteouts */
        uint64_t whiteouts; /* overlay whiteouts and opaque markers among them */
        uint64_t skipped;   /* entries ignored: aufs metadata, sockets, device nodes without CAP_MKNOD */
};

/* Unpack the layer at blob_path into dest_dir (which must exist).
 * media_type: the layer's descriptor media type (OCI or Docker schema2, with
 * or without +gzip/+zstd); NULL or "" to go by magic bytes alone. The magic
 * bytes decide the decompressor (registries mislabel layers); a media type
 * that is not a layer type is ERR_INVALID, an encrypted one ERR_UNIMPLEMENTED.
 * stats may be NULL. Ends with one syncfs(2) of dest_dir's filesystem. */
int img_unpack_layer(const char *blob_path, const char *media_type, const char *dest_dir,
                     struct img_unpack_stats *stats, struct err *e);

/* The same from a buffer in memory (fuzzing, tests). */
int img_unpack_layer_mem(const void *data, size_t len, const char *media_type, const char *dest_dir,
                         struct img_unpack_stats *stats, struct err *e);

/* Tests only: behave as if the kernel lacked openat2(2), to exercise the
 * manual O_NOFOLLOW component walk. */
void img_unpack_force_manual_walk(bool on);

#endif
