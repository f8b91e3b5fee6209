/* image/: private interfaces between registry.c, auth.c, pull.c and service.c. */
#ifndef CORRAL_IMAGE_INTERNAL_H
#define CORRAL_IMAGE_INTERNAL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "image/image.h"

#define MANIFEST_MAX_BYTES (4u << 20)

/* ---------- registry.c ---------- */

struct reg_endpoint {
        char *base;       /* "https://registry-1.docker.io", "http://127.0.0.1:5000/prefix" */
        bool mirror;      /* credentials are sent to the origin only */
        bool skip_verify; /* TLS without certificate checks (insecure registries) */
        char *authz;      /* "Authorization: ..." header learnt from a challenge; under mu */
};

struct reg_client {
        char *registry;           /* the reference's domain, for messages */
        char *repo;               /* "library/busybox" */
        struct reg_endpoint *eps; /* mirrors in order, then the origin */
        size_t n_eps;
        /* credentials (copies) */
        char *username;
        char *password;
        char *identity_token;
        char *registry_token;
        pthread_mutex_t mu;
        atomic_bool *cancel; /* set to abort transfers; may be NULL */
};

/* Endpoints for `ref` from the registry configuration. */
int reg_client_new(const struct img_ref *ref, const struct img_registry_conf *confs, size_t n_confs,
                   const struct img_auth *auth, atomic_bool *cancel, struct reg_client **out, struct err *e);
void reg_client_free(struct reg_client *rc);

/* GET /v2/<repo>/manifests/<reference> (a tag or a digest), at most
 * MANIFEST_MAX_BYTES. *content_type may be NULL when the registry sent none. */
int reg_get_manifest(struct reg_client *rc, const char *reference, char **body, size_t *len,
                     char **content_type, struct err *e);

typedef void (*reg_progress_fn)(void *data, uint64_t done, uint64_t total);
/* Download a blob into the content store (verified, resumed with Range,
 * retried), unless it is there already. */
int reg_get_blob(struct reg_client *rc, struct img_content *cs, const char *digest, int64_t size,
                 reg_progress_fn cb, void *cb_data, struct err *e);

/* ---------- auth.c ---------- */

struct reg_challenge {
        char *scheme; /* "bearer" or "basic", lower case */
        char *realm;
        char *service;
        char *scope;
};

/* Parse a WWW-Authenticate header value. */
int reg_challenge_parse(const char *header, struct reg_challenge *out, struct err *e);
void reg_challenge_clear(struct reg_challenge *c);
/* Answer a challenge for endpoint `ep`: sets ep->authz (under rc->mu). Bearer:
 * fetches a token from the realm (Basic credentials, or the OAuth2 refresh
 * flow with an identity token, or a given registry token). Basic: needs
 * credentials. ERR_UNAUTHENTICATED when there is nothing to answer with or
 * the token server refuses. */
int reg_authorize(struct reg_client *rc, struct reg_endpoint *ep, const struct reg_challenge *ch,
                  struct err *e);
/* Common curl settings (timeouts, TLS, no signals). */
void reg_curl_setup(CURL *h, const struct reg_endpoint *ep);
/* Map a curl failure to an error kind. */
enum err_kind reg_curl_kind(CURLcode rc);

/* The OCI media type of a layer with the same bytes (manifest.c). */
const char *img_oci_layer_type(const char *media_type);

/* "sha256:" + lowercase hex of a digest (config.c). Caller frees. */
char *img_digest_hex(const unsigned char *md, unsigned int n);

#endif
