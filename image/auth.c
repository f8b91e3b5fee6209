/* Registry authentication: WWW-Authenticate challenges, the Docker token
 * flow (Bearer), Basic auth, OAuth2 refresh tokens (identity tokens) and
 * registry tokens given as they are. Credentials go to the origin only. */
#include <ctype.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "image/image-internal.h"

void reg_challenge_clear(struct reg_challenge *c)
{
        if (!c)
                return;
        free(c->scheme);
        free(c->realm);
        free(c->service);
        free(c->scope);
        memset(c, 0, sizeof(*c));
}

/* Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:x:pull" */
int reg_challenge_parse(const char *h, struct reg_challenge *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        while (isspace((unsigned char)*h))
                h++;
        size_t n = strcspn(h, " \t");
        if (n == 0)
                return err_set(e, ERR_UNAUTHENTICATED, "empty WWW-Authenticate challenge");
        out->scheme = xstrndup(h, n);
        for (char *p = out->scheme; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        const char *p = h + n;
        while (*p) {
                while (*p == ' ' || *p == '\t' || *p == ',')
                        p++;
                if (!*p)
                        break;
                size_t kn = strcspn(p, "= \t,");
                cleanup_free char *key = xstrndup(p, kn);
                p += kn;
                while (*p == ' ' || *p == '\t')
                        p++;
                if (*p != '=')
                        continue; /* a bare token */
                p++;
                while (*p == ' ' || *p == '\t')
                        p++;
                struct sbuf val = {0};
                if (*p == '"') {
                        p++;
                        while (*p && *p != '"') {
                                if (*p == '\\' && p[1])
                                        p++;
                                sbuf_putc(&val, *p++);
                        }
                        if (*p == '"')
                                p++;
                } else {
                        size_t vn = strcspn(p, ", \t");
                        sbuf_append(&val, p, vn);
                        p += vn;
                }
                char **slot = NULL;
                if (strcasecmp(key, "realm") == 0)
                        slot = &out->realm;
                else if (strcasecmp(key, "service") == 0)
                        slot = &out->service;
                else if (strcasecmp(key, "scope") == 0)
                        slot = &out->scope;
                if (slot && !*slot)
                        *slot = sbuf_steal(&val);
                sbuf_free(&val);
        }
        return 0;
}

static size_t mem_write(char *buf, size_t size, size_t n, void *data)
{
        struct sbuf *b = data;
        if (b->len + size * n > 1u << 20)
                return 0;
        sbuf_append(b, buf, size * n);
        return size * n;
}

static int fetch_token(struct reg_client *rc, struct reg_endpoint *ep, const struct reg_challenge *ch,
                       char **token, struct err *e)
{
        if (!ch->realm || !*ch->realm)
                return err_set(e, ERR_UNAUTHENTICATED, "bearer challenge without a realm");
        if (!str_has_prefix(ch->realm, "https://") && !str_has_prefix(ch->realm, "http://"))
                return err_set(e, ERR_UNAUTHENTICATED, "bearer realm \"%s\" is not an http(s) URL",
                               ch->realm);
        CURL *h = curl_easy_init();
        if (!h)
                return err_set(e, ERR_INTERNAL, "curl_easy_init failed");
        reg_curl_setup(h, ep);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
        bool origin = !ep->mirror;
        cleanup_free char *default_scope = xasprintf("repository:%s:pull", rc->repo);
        const char *scope = ch->scope && *ch->scope ? ch->scope : default_scope;
        char *esc_scope = curl_easy_escape(h, scope, 0);
        char *esc_service = curl_easy_escape(h, ch->service ? ch->service : "", 0);
        struct sbuf url = {0}, body = {0}, form = {0};
        if (origin && rc->identity_token) {
                /* OAuth2 refresh-token grant */
                char *esc_tok = curl_easy_escape(h, rc->identity_token, 0);
                sbuf_printf(&form,
                            "grant_type=refresh_token&client_id=corral&service=%s&scope=%s&refresh_token=%s",
                            esc_service, esc_scope, esc_tok);
                curl_free(esc_tok);
                sbuf_puts(&url, ch->realm);
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, form.buf);
        } else {
                sbuf_printf(&url, "%s%s", ch->realm, strchr(ch->realm, '?') ? "&" : "?");
                if (ch->service)
                        sbuf_printf(&url, "service=%s&", esc_service);
                sbuf_printf(&url, "scope=%s", esc_scope);
                if (origin && rc->username) {
                        curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
                        curl_easy_setopt(h, CURLOPT_USERNAME, rc->username);
                        curl_easy_setopt(h, CURLOPT_PASSWORD, rc->password ? rc->password : "");
                }
        }
        curl_free(esc_scope);
        curl_free(esc_service);
        curl_easy_setopt(h, CURLOPT_URL, url.buf);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, mem_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
        CURLcode cc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
        int ret = -1;
        if (cc != CURLE_OK) {
                err_set(e, reg_curl_kind(cc), "token server %s: %s", ch->realm, curl_easy_strerror(cc));
                goto out;
        }
        if (status == 401 || status == 403) {
                err_set(e, ERR_UNAUTHENTICATED, "token server %s refused the credentials: HTTP %ld",
                        ch->realm, status);
                goto out;
        }
        if (status != 200) {
                err_set(e, status >= 500 ? ERR_UNAVAILABLE : ERR_UNAUTHENTICATED, "token server %s: HTTP %ld",
                        ch->realm, status);
                goto out;
        }
        yajl_val root = json_parse(body.buf ? body.buf : "", body.len, "token response", e);
        if (!root)
                goto out;
        const char *tok = json_get_str(root, "token");
        if (!tok || !*tok)
                tok = json_get_str(root, "access_token");
        if (tok && *tok) {
                *token = xstrdup(tok);
                ret = 0;
        } else {
                err_set(e, ERR_UNAUTHENTICATED, "token server %s: no token in the response", ch->realm);
        }
        yajl_tree_free(root);
out:
        sbuf_free(&url);
        sbuf_free(&body);
        if (form.buf)
                explicit_bzero(form.buf, form.len);
        sbuf_free(&form);
        return ret;
}

static void set_authz(struct reg_client *rc, struct reg_endpoint *ep, char *hdr)
{
        pthread_mutex_lock(&rc->mu);
        free(ep->authz);
        ep->authz = hdr;
        pthread_mutex_unlock(&rc->mu);
}

int reg_authorize(struct reg_client *rc, struct reg_endpoint *ep, const struct reg_challenge *ch,
                  struct err *e)
{
        bool origin = !ep->mirror;
        if (strcmp(ch->scheme, "basic") == 0) {
                if (!origin || !rc->username)
                        return err_set(e, ERR_UNAUTHENTICATED,
                                       "registry %s asks for Basic credentials and none were given",
                                       ep->base);
                cleanup_free char *up = xasprintf("%s:%s", rc->username, rc->password ? rc->password : "");
                cleanup_free char *enc = base64_encode(up, strlen(up));
                explicit_bzero(up, strlen(up));
                set_authz(rc, ep, xasprintf("Authorization: Basic %s", enc));
                return 0;
        }
        if (strcmp(ch->scheme, "bearer") == 0) {
                if (origin && rc->registry_token) {
                        set_authz(rc, ep, xasprintf("Authorization: Bearer %s", rc->registry_token));
                        return 0;
                }
                char *token = NULL;
                if (fetch_token(rc, ep, ch, &token, e) < 0)
                        return -1;
                set_authz(rc, ep, xasprintf("Authorization: Bearer %s", token));
                free(token);
                return 0;
        }
        return err_set(e, ERR_UNAUTHENTICATED, "registry %s: unsupported authentication scheme \"%s\"",
                       ep->base, ch->scheme);
}
