/* net: CNI configuration, shared by cni.c and cni_conf.c only. */
#ifndef CORRAL_NET_CNI_INTERNAL_H
#define CORRAL_NET_CNI_INTERNAL_H

#include "net/net-internal.h"

struct cni_conf {
        char *file;       /* where it came from */
        char *json;       /* the conflist text (a .conf wrapped as a list) */
        yajl_val tree;    /* parsed json, owns the pointers below */
        const char *name; /* network name */
        const char *version;
        yajl_val plugins; /* array of plugin objects, each with "type" */
        bool disable_check;
};

/* Parse a conflist, or a single-plugin .conf (wrapped as a list of one). */
int cni_conf_parse(const char *json, size_t len, const char *what, struct cni_conf **out, struct err *e);
/* The first valid file by name (.conflist, .conf, .json) in `dir`;
 * ERR_NOT_FOUND when there is none. */
int cni_conf_load_dir(const char *dir, struct cni_conf **out, struct err *e);
void cni_conf_free(struct cni_conf *c);
/* Full path of plugin `type` in the first bin dir that has it, or NULL. */
char *cni_find_plugin(char *const *bin_dirs, const char *type);

#endif
