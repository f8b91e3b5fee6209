/* store: corral's metadata in SQLite (WAL), crash-safe, schema versioned.
 *
 * One connection guarded by a mutex; every call is atomic on its own, and
 * store_tx_begin()/store_tx_commit() group several calls into one
 * transaction (the calling thread holds the store until commit/rollback).
 * Records are plain structs; strings they hold are owned by the record and
 * freed by the matching *_clear(). Each table is described once to the
 * record layer (record.c), which binds, reads, lists, copies and frees for all. Blobs such as `config` are
 * opaque bytes to the store (cri/ keeps the packed CRI config there).
 */
#ifndef CORRAL_STORE_H
#define CORRAL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

struct store;

/* Opens (creating and migrating) the database at `path`. */
int store_open(const char *path, struct store **out, struct err *e);
void store_close(struct store *s);
/* Schema version after migrations. */
int store_schema_version(struct store *s);
/* SQL statements run on the connection since it was opened (SQLite's trace
 * hook counts them): tests and /metrics show with it that reads answered
 * from memory run none. */
uint64_t store_statements(struct store *s);

/* BEGIN IMMEDIATE ... COMMIT. Nesting on the same thread is counted: only the
 * outermost commit writes. Rollback undoes the whole outermost transaction. */
int store_tx_begin(struct store *s, struct err *e);
int store_tx_commit(struct store *s, struct err *e);
void store_tx_rollback(struct store *s);

/* Small key/value settings (e.g. the pod CIDR from UpdateRuntimeConfig). */
int store_meta_set(struct store *s, const char *key, const char *value, struct err *e);
/* *value is NULL (and 0 returned) when the key is absent. Caller frees. */
int store_meta_get(struct store *s, const char *key, char **value, struct err *e);

/* ---------- pods ---------- */

/* Same values as CRI PodSandboxState, plus a private CREATING state that
 * marks a RunPodSandbox in progress (repaired on restart). */
enum store_pod_state { STORE_POD_READY = 0, STORE_POD_NOTREADY = 1, STORE_POD_CREATING = 100 };

struct store_pod {
        char id[ID_LEN + 1];
        char *name;
        char *uid;
        char *namespace;
        uint32_t attempt;
        int state;
        int64_t created_ns;
        char *runtime_handler;
        char *labels_json;      /* JSON object, may be NULL */
        char *annotations_json; /* JSON object, may be NULL */
        char *netns_path;
        char *ips_json; /* JSON array of strings, may be NULL */
        char *cgroup_parent;
        uint8_t *config; /* opaque (packed CRI PodSandboxConfig) */
        size_t config_len;
        char *extra_json; /* module-private state (netns, ports, vm ...) */
};

/* Insert or replace by id. */
int store_pod_put(struct store *s, const struct store_pod *p, struct err *e);
/* ERR_NOT_FOUND when absent. */
int store_pod_get(struct store *s, const char *id, struct store_pod *out, struct err *e);
/* Pod with this metadata (name, namespace, uid, attempt); ERR_NOT_FOUND when absent. */
int store_pod_find(struct store *s, const char *name, const char *ns, const char *uid, uint32_t attempt,
                   struct store_pod *out, struct err *e);
int store_pod_delete(struct store *s, const char *id, struct err *e); /* deletes its containers too */
/* All pods, oldest first. *out is an array the caller frees with store_pods_free. */
int store_pod_list(struct store *s, struct store_pod **out, size_t *n, struct err *e);
/* A deep copy (dst is overwritten, not cleared). */
void store_pod_copy(struct store_pod *dst, const struct store_pod *src);
void store_pod_clear(struct store_pod *p);
void store_pods_free(struct store_pod *v, size_t n);

/* ---------- containers ---------- */

/* Same values as CRI ContainerState. */
enum store_ctr_state {
        STORE_CTR_CREATED = 0,
        STORE_CTR_RUNNING = 1,
        STORE_CTR_EXITED = 2,
        STORE_CTR_UNKNOWN = 3,
};

struct store_container {
        char id[ID_LEN + 1];
        char pod_id[ID_LEN + 1];
        char *name;
        uint32_t attempt;
        char *image_ref; /* as requested */
        char *image_id;  /* resolved image id */
        int state;
        int64_t created_ns;
        int64_t started_ns;
        int64_t finished_ns;
        int32_t exit_code;
        int32_t pid;
        char *reason;
        char *message;
        char *log_path;
        char *labels_json;
        char *annotations_json;
        char *snapshot_key;
        uint8_t *config; /* opaque (packed CRI ContainerConfig) */
        size_t config_len;
        char *extra_json; /* module-private state (shim socket, ...) */
};

int store_ctr_put(struct store *s, const struct store_container *c, struct err *e);
int store_ctr_get(struct store *s, const char *id, struct store_container *out, struct err *e);
int store_ctr_delete(struct store *s, const char *id, struct err *e);
/* pod_id NULL: all containers. Oldest first. */
int store_ctr_list(struct store *s, const char *pod_id, struct store_container **out, size_t *n,
                   struct err *e);
void store_ctr_copy(struct store_container *dst, const struct store_container *src);
void store_ctr_clear(struct store_container *c);
void store_ctrs_free(struct store_container *v, size_t n);

/* ---------- images ---------- */

struct store_image {
        char *id;              /* "sha256:<hex>" of the image config */
        char **names;          /* NULL-terminated: "repo:tag" and "repo@sha256:..." */
        char *manifest_digest; /* of the platform manifest that was chosen */
        char *config_json;     /* the image config blob */
        char **chain_ids;      /* NULL-terminated, lowest layer first */
        char **blobs;          /* NULL-terminated digests this image holds in the content store */
        uint64_t size;         /* compressed size of layers + config */
        int64_t created_ns;
        bool pinned;
};

/* Insert or replace by id; names are reassigned: a name held by another
 * image moves to this one (as when a tag is re-pulled). */
int store_image_put(struct store *s, const struct store_image *img, struct err *e);
int store_image_get(struct store *s, const char *id, struct store_image *out, struct err *e);
/* By exact name (tag or digest reference). ERR_NOT_FOUND when absent. */
int store_image_find_name(struct store *s, const char *name, struct store_image *out, struct err *e);
/* Remove one name; the image record stays (even with no names left). */
int store_image_remove_name(struct store *s, const char *name, struct err *e);
int store_image_delete(struct store *s, const char *id, struct err *e);
int store_image_list(struct store *s, struct store_image **out, size_t *n, struct err *e);
void store_image_clear(struct store_image *img);
void store_images_free(struct store_image *v, size_t n);

/* ---------- snapshots ---------- */

enum store_snap_kind { STORE_SNAP_COMMITTED = 0, STORE_SNAP_ACTIVE = 1, STORE_SNAP_VIEW = 2 };

struct store_snapshot {
        char *key;    /* chain id for committed layers, container id for active ones */
        char *parent; /* key of the parent, NULL for a base layer */
        int kind;
        char *dir; /* the driver's directory name under its root */
        int64_t created_ns;
        uint64_t size; /* bytes, filled by usage */
        uint64_t inodes;
        char *labels_json;
};

int store_snap_put(struct store *s, const struct store_snapshot *sn, struct err *e);
int store_snap_get(struct store *s, const char *key, struct store_snapshot *out, struct err *e);
int store_snap_delete(struct store *s, const char *key, struct err *e);
/* Number of snapshots whose parent is `key`. */
int store_snap_children(struct store *s, const char *key, size_t *n, struct err *e);
int store_snap_list(struct store *s, struct store_snapshot **out, size_t *n, struct err *e);
void store_snap_clear(struct store_snapshot *sn);
void store_snaps_free(struct store_snapshot *v, size_t n);

#endif
