/* model: corrald's pods and containers in memory, in front of the store.
 *
 * kubelet relists every second; every CRI read is answered from here under
 * a read lock, with no SQL and no syscall per object. The store is the
 * write-through journal: a put or delete is committed there first and
 * lands in memory only when the commit succeeded, so what is in memory is
 * always what the journal holds; model_open() loads it back after a start.
 *
 * Records are the store's structs: get/list hand out deep copies the
 * caller frees (store_pod_clear, store_ctrs_free ...). The *_each walks
 * lend the caller the records themselves, read-only and only for the call.
 *
 * Locking: one reader-writer lock guards the indexes and is held for
 * writing only while pointers are swapped (never across SQL). Writes to one
 * record are ordered by a lock striped over ids, so puts of different pods
 * never wait on each other except inside SQLite itself.
 */
#ifndef CORRAL_MODEL_H
#define CORRAL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct model;

/* Data a caller derives from a record (parsed labels, the fields of a list
 * item ...): made once when the record is put or loaded, outside any lock,
 * and freed when it is replaced or removed. Every member may be NULL. */
struct model_hooks {
        void *(*pod_view)(const struct store_pod *p);
        void (*pod_view_free)(void *view);
        void *(*ctr_view)(const struct store_container *c);
        void (*ctr_view_free)(void *view);
};

/* Loads every pod and container from the store. `hooks` may be NULL. */
int model_open(struct store *s, const struct model_hooks *hooks, struct model **out, struct err *e);
void model_free(struct model *m);
size_t model_pod_count(struct model *m);
size_t model_ctr_count(struct model *m);
/* Grows with every change to any pod or container: what was read at one
 * value still holds while the value is the same (a reply cache's key). */
uint64_t model_gen(struct model *m);

/* A read-modify-write of one record (pod or container id) holds this
 * across get ... put; other ids (but for the rare stripe they share) go on. */
void model_lock(struct model *m, const char *id);
void model_unlock(struct model *m, const char *id);

/* ---------- pods ---------- */

/* Journal, then memory. Same errors as store_pod_put. */
int model_pod_put(struct model *m, const struct store_pod *p, struct err *e);
/* ERR_NOT_FOUND ("pod <id> not found") when absent. */
int model_pod_get(struct model *m, const char *id, struct store_pod *out, struct err *e);
/* By metadata, newest first, as store_pod_find. */
int model_pod_find(struct model *m, const char *name, const char *ns, const char *uid, uint32_t attempt,
                   struct store_pod *out, struct err *e);
/* The pod and its containers. */
int model_pod_delete(struct model *m, const char *id, struct err *e);
/* Oldest first; free with store_pods_free. */
int model_pod_list(struct model *m, struct store_pod **out, size_t *n, struct err *e);
/* A full id or a unique prefix to the full id. */
int model_pod_resolve(struct model *m, const char *id, char out[ID_LEN + 1], struct err *e);
/* Oldest first under the read lock; fn returns false to stop. view is what
 * hooks->pod_view made (NULL without one). */
typedef bool (*model_pod_fn)(const struct store_pod *p, const void *view, void *arg);
void model_pod_each(struct model *m, model_pod_fn fn, void *arg);
/* fn on the pod of this full id under the read lock, as model_pod_each
 * lends it; false (fn not called) when there is none. */
bool model_pod_with(struct model *m, const char *id, model_pod_fn fn, void *arg);

/* ---------- containers ---------- */

/* Journal, then memory. ERR_NOT_FOUND when its pod is not there. */
int model_ctr_put(struct model *m, const struct store_container *c, struct err *e);
int model_ctr_get(struct model *m, const char *id, struct store_container *out, struct err *e);
int model_ctr_delete(struct model *m, const char *id, struct err *e);
/* pod_id NULL: all containers. Oldest first; free with store_ctrs_free. */
int model_ctr_list(struct model *m, const char *pod_id, struct store_container **out, size_t *n,
                   struct err *e);
int model_ctr_resolve(struct model *m, const char *id, char out[ID_LEN + 1], struct err *e);
/* pod_id NULL: all containers, oldest first; else the pod's only (its
 * index, not a scan). */
typedef bool (*model_ctr_fn)(const struct store_container *c, const void *view, void *arg);
void model_ctr_each(struct model *m, const char *pod_id, model_ctr_fn fn, void *arg);
/* fn on the container of this full id, as model_pod_with. */
bool model_ctr_with(struct model *m, const char *id, model_ctr_fn fn, void *arg);

#endif
