/* config: the key tables shared by parsing (parse.c), printing (emit.c)
 * and copying (config.c). One table row per key: adding a key means adding
 * a row, a struct field, a default and a line in docs/config.md. */
#ifndef CORRAL_CONFIG_INTERNAL_H
#define CORRAL_CONFIG_INTERNAL_H

#include "config/config.h"

enum cfg_ftype {
        FT_STR,
        FT_STRV,
        FT_BOOL,
        FT_U32,
        FT_U64,
        FT_ENUM,       /* int field; value = index in `names` */
        FT_OBJ,        /* nested object: `sub` rows, offsets from the same base */
        FT_REGISTRIES, /* object keyed by host: entries of struct cfg_registry */
        FT_RUNTIMES,   /* object keyed by handler: entries of struct cfg_runtime */
};

struct cfg_field {
        const char *key;
        enum cfg_ftype type;
        size_t off;
        uint64_t min, max;           /* FT_U32 / FT_U64, inclusive */
        const char *const *names;    /* FT_ENUM, NULL-terminated */
        const struct cfg_field *sub; /* FT_OBJ, and the entry rows of the maps */
};

/* NULL-key-terminated tables. */
extern const struct cfg_field cfg_top_fields[];
extern const struct cfg_field cfg_registry_fields[];
extern const struct cfg_field cfg_runtime_fields[];

#define CFG_FIELD_PTR(base, f, type)  ((type *)((char *)(base) + (f)->off))
#define CFG_FIELD_CPTR(base, f, type) ((type const *)((const char *)(base) + (f)->off))

/* A fresh handler entry with the per-handler defaults. */
void cfg_runtime_init(struct cfg_runtime *rt, const char *name);
void cfg_runtime_clear(struct cfg_runtime *rt);
void cfg_registry_clear(struct cfg_registry *r);
struct cfg_runtime *cfg_runtime_get_or_add(struct cfg *c, const char *name);
struct cfg_registry *cfg_registry_get_or_add(struct cfg *c, const char *host);

/* Applies the JSON in buf over *c (no validation of cross-key rules).
 * `set` collects the key paths the file named, as printed in errors. */
int cfg_apply_json(struct cfg *c, const char *buf, size_t len, const char *what, char ***set, struct err *e);

/* A key path for messages: segments joined by ".", a segment that is not a
 * plain identifier quoted as a JSON string: registries."myreg:5000".insecure */
char *cfg_key_path(const char *const *segs, size_t n);

/* Optimal string alignment distance (an adjacent swap counts as one edit). */
size_t cfg_edit_distance(const char *a, const char *b);

#endif
