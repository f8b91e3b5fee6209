/* image: references, registry client (distribution API v2 over libcurl),
 * manifests and image configs, a sha256-verified content store, pull with
 * parallel downloads and in-order unpack into snapshots, image records and GC.
 *
 * Nothing here knows protobuf: cri/ translates CRI messages into these
 * structs. Errors follow util/util.h: ERR_INVALID for a bad reference or a
 * bad manifest, ERR_NOT_FOUND for a missing image / tag / blob,
 * ERR_UNAUTHENTICATED / ERR_PERMISSION for 401 / 403, ERR_UNAVAILABLE for
 * network errors and 5xx, ERR_DATA_LOSS for a blob whose bytes do not match
 * its digest or size. Messages name the reference, the registry, the URL path
 * and the HTTP status.
 */
#ifndef CORRAL_IMAGE_H
#define CORRAL_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/util.h"

struct store;
struct store_image;
struct snap;

/* ---------- references (ref.c) ---------- */

/* A parsed, normalised docker reference:
 * "busybox" -> domain "docker.io", path "library/busybox", tag "latest". */
struct img_ref {
        char *domain; /* "docker.io", "localhost:5000", "[::1]:5000" */
        char *path;   /* "library/busybox" */
        char *tag;    /* NULL when only a digest was given */
        char *digest; /* "sha256:<64 hex>" or NULL */
};

/* Parse and normalise. A name without tag and digest gets tag "latest".
 * ERR_INVALID naming the reference and what is wrong with it. */
int img_ref_parse(const char *s, struct img_ref *out, struct err *e);
void img_ref_clear(struct img_ref *r);
/* "docker.io/library/busybox" */
char *img_ref_name(const struct img_ref *r);
/* Full normalised form: "docker.io/library/busybox:latest", "name@sha256:..",
 * "name:tag@sha256:..". */
char *img_ref_string(const struct img_ref *r);
/* Familiar (display) form: "busybox:latest", "quay.io/x/y@sha256:..". */
char *img_ref_familiar(const struct img_ref *r);
/* Shorthand: parse + img_ref_string. */
char *img_ref_normalize(const char *s, struct err *e);
/* "sha256:<64 lowercase hex>" (other algorithms are refused). */
bool img_digest_valid(const char *digest);

/* ---------- manifests (manifest.c) ---------- */

#define IMG_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define IMG_MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define IMG_MT_DOCKER_CONFIG   "application/vnd.docker.container.image.v1+json"
#define IMG_MT_DOCKER_LAYER    "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define IMG_MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define IMG_MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define IMG_MT_OCI_CONFIG      "application/vnd.oci.image.config.v1+json"
#define IMG_MT_OCI_LAYER       "application/vnd.oci.image.layer.v1.tar"
#define IMG_MT_OCI_LAYER_GZIP  "application/vnd.oci.image.layer.v1.tar+gzip"
#define IMG_MT_OCI_LAYER_ZSTD  "application/vnd.oci.image.layer.v1.tar+zstd"

struct img_platform {
        char *os;           /* "linux" */
        char *architecture; /* "amd64", "arm64", "arm" */
        char *variant;      /* "v8", "v7", or NULL */
};

struct img_descriptor {
        char *media_type;
        char *digest;
        int64_t size;
        struct img_platform platform; /* index entries only; fields may be NULL */
};

enum img_manifest_kind { IMG_KIND_MANIFEST = 1, IMG_KIND_INDEX = 2 };

struct img_manifest {
        enum img_manifest_kind kind;
        char *media_type;
        struct img_descriptor config;  /* IMG_KIND_MANIFEST */
        struct img_descriptor *layers; /* IMG_KIND_MANIFEST, lowest first */
        size_t n_layers;
        struct img_descriptor *manifests; /* IMG_KIND_INDEX */
        size_t n_manifests;
};

/* Parse a Docker schema2 manifest / manifest list or an OCI manifest / index.
 * `content_type` (the HTTP Content-Type, may be NULL) is used when the body
 * has no mediaType. Schema 1 and anything malformed: ERR_INVALID. */
int img_manifest_parse(const char *buf, size_t len, const char *content_type, struct img_manifest *out,
                       struct err *e);
void img_manifest_clear(struct img_manifest *m);
/* Pick the entry of an index for os/arch/variant (variant may be NULL:
 * the architecture's default, e.g. v8 for arm64). Architecture aliases
 * (x86_64, aarch64) are understood; a v7 request falls back to v6/v5
 * entries. ERR_NOT_FOUND listing what the index offers. */
int img_index_select(const struct img_manifest *index, const char *os, const char *arch, const char *variant,
                     const struct img_descriptor **out, struct err *e);
/* The platform of this host (GOARCH names: amd64, arm64, ...). */
void img_host_platform(const char **os, const char **arch, const char **variant);

/* ---------- image config (config.c) ---------- */

struct img_kv {
        char *key;
        char *value;
};

struct img_config {
        char *os;
        char *architecture;
        char *variant;
        int64_t created_ns; /* 0 when absent */
        char *author;
        char *user;
        char *workdir;
        char *stop_signal;
        char **env;           /* NULL-terminated "K=V", never NULL */
        char **entrypoint;    /* NULL when unset */
        char **cmd;           /* NULL when unset */
        char **exposed_ports; /* "80/tcp", never NULL */
        char **volumes;       /* never NULL */
        struct img_kv *labels;
        size_t n_labels;
        char **diff_ids; /* rootfs.diff_ids, lowest first, never NULL */
};

/* Parse an OCI / Docker image config. ERR_INVALID when malformed or when
 * rootfs is not "layers" with valid sha256 diff_ids. */
int img_config_parse(const char *buf, size_t len, struct img_config *out, struct err *e);
void img_config_clear(struct img_config *c);
/* Chain IDs from diff ids: chain[0] = diff[0],
 * chain[i] = "sha256:" hex(sha256(chain[i-1] + " " + diff[i])). */
char **img_chain_ids(char *const *diff_ids);
/* "sha256:<hex>" of a buffer. Caller frees. */
char *img_digest_of(const void *buf, size_t len);

/* ---------- content store (content.c) ---------- */

/* Blobs at <root>/blobs/sha256/<hex>, written to <hex>.partial and renamed
 * once size and digest match. */
struct img_content;
int img_content_open(const char *root, struct img_content **out, struct err *e);
void img_content_free(struct img_content *c);
/* Path of a blob (it may not exist). Caller frees. */
char *img_content_path(const struct img_content *c, const char *digest);
bool img_content_has(const struct img_content *c, const char *digest);
/* Store a whole buffer as a blob after checking it against digest. */
int img_content_put(struct img_content *c, const char *digest, const void *buf, size_t len, struct err *e);
int img_content_delete(struct img_content *c, const char *digest, struct err *e);
/* Take a file already checked against digest (on the store's file system)
 * as the blob, by a hard link; a blob already there is kept. */
int img_content_adopt(struct img_content *c, const char *digest, const char *path, struct err *e);

/* A streaming writer: every byte is hashed as it arrives. Opening resumes an
 * existing partial file (its bytes are re-hashed); img_content_writer_offset
 * says where the download should continue (HTTP Range). */
struct img_content_writer;
/* `size` < 0: unknown. */
int img_content_writer_open(struct img_content *c, const char *digest, int64_t size,
                            struct img_content_writer **out, struct err *e);
uint64_t img_content_writer_offset(const struct img_content_writer *w);
/* More bytes than the descriptor size: ERR_DATA_LOSS. */
int img_content_writer_write(struct img_content_writer *w, const void *buf, size_t n, struct err *e);
/* Start over (the server ignored the Range). */
int img_content_writer_reset(struct img_content_writer *w, struct err *e);
/* Check size and digest and rename into place. On a mismatch the partial
 * file is deleted and the error (ERR_DATA_LOSS) names the digest and both
 * values. */
int img_content_writer_commit(struct img_content_writer *w, struct err *e);
/* Close; the partial file stays for a later resume unless `discard`. */
void img_content_writer_free(struct img_content_writer *w, bool discard);

/* ---------- registry access ---------- */

/* Per-registry settings, filled by the caller from the daemon config. */
struct img_registry_conf {
        const char *host; /* "registry.k8s.io", "myreg:5000", "docker.io" */
        char **mirrors;   /* NULL-terminated endpoints tried in order before the origin:
                           * "http://127.0.0.1:5000", "https://mirror.example/prefix" */
        bool insecure;    /* plain HTTP to the origin (and TLS without verification for https mirrors) */
        bool tls;         /* force HTTPS even for localhost / 127.0.0.0/8 */
};

/* Credentials, as in CRI AuthConfig. All fields may be NULL. */
struct img_auth {
        const char *username;
        const char *password;
        const char *auth;           /* base64("user:password") */
        const char *identity_token; /* OAuth2 refresh token */
        const char *registry_token; /* a bearer token used as is */
};

/* ---------- service (pull.c, service.c) ---------- */

struct img_service;

/* `root` holds the content store (<root>/blobs). `regs` is copied. The store
 * and snapshotter are borrowed and must outlive the service. */
int img_service_new(const char *root, const struct img_registry_conf *regs, size_t n_regs,
                    int max_concurrent_downloads, struct store *st, struct snap *sn, struct img_service **out,
                    struct err *e);
void img_service_free(struct img_service *svc);

enum img_progress_state {
        IMG_PROGRESS_RESOLVED = 0, /* manifest and config known; n_layers set */
        IMG_PROGRESS_WAITING,      /* layer queued for download */
        IMG_PROGRESS_DOWNLOADING,  /* done/total bytes */
        IMG_PROGRESS_EXISTS,       /* layer already unpacked: not downloaded */
        IMG_PROGRESS_DOWNLOADED,
        IMG_PROGRESS_UNPACKING,
        IMG_PROGRESS_UNPACKED,
};

struct img_progress {
        const char *ref; /* normalised reference */
        enum img_progress_state state;
        int layer; /* index, lowest first; -1 for IMG_PROGRESS_RESOLVED */
        int n_layers;
        const char *digest; /* layer digest, NULL for IMG_PROGRESS_RESOLVED */
        uint64_t done;
        uint64_t total;
};

/* Called from the pull's threads, never concurrently for one pull. */
typedef void (*img_progress_fn)(void *data, const struct img_progress *p);

/* Pull `ref` for the host platform: on success *out is the image record
 * (caller clears with store_image_clear). Concurrent pulls of the same
 * normalised reference share one download. On error nothing half-made is
 * left: no image record, no active snapshot. `auth` and `cb` may be NULL. */
int img_pull(struct img_service *svc, const char *ref, const struct img_auth *auth, img_progress_fn cb,
             void *cb_data, struct store_image *out, struct err *e);
/* Same with an explicit platform (arch "arm64", variant "v8" or NULL). */
int img_pull_platform(struct img_service *svc, const char *ref, const char *os, const char *arch,
                      const char *variant, const struct img_auth *auth, img_progress_fn cb, void *cb_data,
                      struct store_image *out, struct err *e);

/* The image records are kept in memory (loaded from the store at
 * img_service_new, every change written to the store first): the reads
 * below run no SQL. */

/* All image records, oldest first, as copies (store_images_free). */
int img_list(struct img_service *svc, struct store_image **out, size_t *n, struct err *e);
/* A record lent under the service's read lock, with the User of its config
 * (parsed once when the record landed; NULL when unset). The callback must
 * not call into the image service. Returns false to stop a walk. */
typedef bool (*img_each_fn)(const struct store_image *img, const char *user, void *arg);
/* Every image, oldest first, without copies. */
void img_each(struct img_service *svc, img_each_fn fn, void *arg);
size_t img_count(struct img_service *svc);
/* Find by id ("sha256:<hex>" or bare hex), unique id prefix, name
 * ("busybox" normalises to docker.io/library/busybox:latest) or repo digest.
 * ERR_NOT_FOUND when there is none. */
int img_status(struct img_service *svc, const char *what, struct store_image *out, struct err *e);
/* The same lookup, the record lent to fn instead of copied. */
int img_status_with(struct img_service *svc, const char *what, img_each_fn fn, void *arg, struct err *e);
/* By a name (tag or repo digest): drop that name; the image is deleted when
 * it has no names left. By id: delete the image with all its names.
 * Unreferenced blobs and snapshots are then collected. ERR_NOT_FOUND when
 * nothing matches. */
int img_remove(struct img_service *svc, const char *what, struct err *e);
/* The parsed config of an image record. */
int img_image_config(const struct store_image *img, struct img_config *out, struct err *e);

/* From figures a thread of the service keeps (usage.c): the content store
 * and active snapshots are walked every 10 s, the content store again after
 * each pull, import, commit or GC (a call waits for that walk); committed
 * layers count with the size recorded at their commit. No SQL, no walk in
 * the call. */
struct img_fs_usage {
        const char *mountpoint; /* the service root; owned by the service */
        uint64_t content_bytes;
        uint64_t content_inodes;
        uint64_t snapshot_bytes;
        uint64_t snapshot_inodes;
        uint64_t used_bytes;  /* sum */
        uint64_t inodes_used; /* sum */
};
int img_fs_usage(struct img_service *svc, struct img_fs_usage *out, struct err *e);

struct img_gc_stats {
        size_t blobs_removed;
        size_t snapshots_removed;
        uint64_t bytes_freed;
        bool deferred; /* a pull was running: collection postponed until it ends */
};
/* Remove blobs no image references, committed snapshots not reachable from
 * any image's chain and not below an active snapshot, and leftovers of
 * interrupted pulls. */
int img_gc(struct img_service *svc, struct img_gc_stats *out, struct err *e);

/* ---------- archives: import, export (import.c, export.c) ---------- */

/* Supplies the next bytes of a stream: > 0 with *buf set (valid until the
 * next call), 0 at the end, -1 with e set. */
typedef ssize_t (*img_read_fn)(void *data, const void **buf, struct err *e);
/* Consumes bytes of a stream being written. */
typedef int (*img_write_fn)(void *data, const void *buf, size_t len, struct err *e);

struct img_import_opts {
        const char *os, *arch, *variant; /* NULL os: this host's platform */
        bool all_platforms;              /* every platform of an index */
        const char *name;                /* instead of the archive's names; may be NULL */
};

struct img_imported {
        char *id;
        char **names;
        char *manifest_digest;
};

/* Import a docker-archive (docker save, plain or gzip) or an OCI image
 * layout tar. Digests are kept: the config digest is the image id and
 * "<name>@<manifest or index digest>" its repo digest, as for a pull.
 * Every blob is checked against its digest, every layer against its
 * diff_id, before anything is stored; on any error nothing is left (no
 * record, no blob, no snapshot). ERR_INVALID names a refused entry,
 * ERR_DATA_LOSS a blob whose bytes do not match, ERR_NOT_FOUND a platform
 * the archive lacks. *out (img_imported_free) lists the images. */
int img_import(struct img_service *svc, img_read_fn rd, void *rd_data, const struct img_import_opts *o,
               struct img_imported **out, size_t *n, struct err *e);
void img_imported_free(struct img_imported *v, size_t n);

enum img_archive_format { IMG_ARCHIVE_OCI = 0, IMG_ARCHIVE_DOCKER = 1 };

/* Write images (names, ids, digests) as an OCI image layout tar or a
 * docker-archive to wr. ERR_NOT_FOUND for an unknown image,
 * ERR_PRECONDITION when a blob is not in the content store. */
int img_export(struct img_service *svc, char *const *images, enum img_archive_format fmt, img_write_fn wr,
               void *wr_data, struct err *e);

/* ---------- commit (commit.c) ---------- */

struct img_commit_opts {
        const char *image_id; /* the container's image */
        const char *upper;    /* the container's upper directory (overlay) */
        const char *name;     /* the new image's name */
        const char *author;   /* may be NULL */
        const char *comment;  /* may be NULL */
};

/* The upper directory as a new layer (overlay whiteouts and opaque
 * directories become OCI .wh. entries) on top of the image: a new config,
 * manifest and image record. *id (caller frees) is the new image's id. */
int img_commit(struct img_service *svc, const struct img_commit_opts *o, char **id, struct err *e);

#endif
