/* image/: the image records in memory (index.c), in front of the store. */
#ifndef CORRAL_IMAGE_INDEX_INTERNAL_H
#define CORRAL_IMAGE_INDEX_INTERNAL_H

#include <pthread.h>

#include "image/image.h"

struct img_ent;

/* The service is the only writer of the image tables, so memory is the
 * journal's copy: loaded at start, and every change is committed to the
 * store first and lands in memory only when the commit succeeded. Lookups
 * (by id, name, repo digest, id prefix) and lists run no SQL.
 *
 * `wmu` orders writers (journal write and memory update under it, so a
 * writer reads memory without `rw`); `rw` is taken for writing only while
 * pointers move, never across SQL. */
struct img_index {
        struct store *st;
        pthread_rwlock_t rw;
        pthread_mutex_t wmu;
        struct strmap by_id;         /* "sha256:<hex>" -> entry */
        struct strmap by_name;       /* "repo:tag", "repo@sha256:..." -> entry */
        struct img_ent *head, *tail; /* oldest first, as the store lists */
        bool ready;
};

int img_index_open(struct img_index *x, struct store *st, struct err *e);
void img_index_close(struct img_index *x);
size_t img_index_count(struct img_index *x);

/* Journal (one transaction for all n), then memory. `merge`: a record whose
 * id is there already keeps its names (first), blobs (after the new ones),
 * created_ns and pinned, as when an image is pulled again under another
 * name; records of the same id within imgs merge in order. A name taken by
 * another image moves to this one. The store's errors. */
int img_index_put(struct img_index *x, const struct store_image *imgs, size_t n, bool merge, struct err *e);
/* The store's ERR_NOT_FOUND when absent; memory follows the journal. */
int img_index_remove_name(struct img_index *x, const char *name, struct err *e);
int img_index_delete(struct img_index *x, const char *id, struct err *e);
/* By exact id; a copy (store_image_clear). */
int img_index_get(struct img_index *x, const char *id, struct store_image *out, struct err *e);
void img_index_list(struct img_index *x, struct store_image **out, size_t *n);
void img_index_each(struct img_index *x, img_each_fn fn, void *arg);
/* Resolve as img_status documents and lend the record to fn under the
 * read lock; *name (may be NULL; caller frees) is set when `what` matched
 * a name rather than an id. */
int img_index_resolve(struct img_index *x, const char *what, img_each_fn fn, void *arg, char **name,
                      struct err *e);

#endif
