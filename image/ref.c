/* Docker references, following distribution/reference's grammar:
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [domain "/"] path-component ["/" path-component]*
 *   domain    := host [":" port]   (recognised by a "." or ":" or "localhost")
 *
 * Normalisation: no domain -> docker.io; a single docker.io component ->
 * library/<name>; no tag and no digest -> :latest.
 */
#include <ctype.h>
#include <string.h>

#include "image/image.h"

#define NAME_MAX_LEN 255
#define TAG_MAX_LEN  128

static bool is_lower_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )* */
static bool valid_path_component(const char *s, size_t n)
{
        size_t i = 0;
        if (n == 0 || !is_lower_alnum(s[0]))
                return false;
        while (i < n) {
                while (i < n && is_lower_alnum(s[i]))
                        i++;
                if (i == n)
                        return true;
                /* separator */
                if (s[i] == '.') {
                        i++;
                } else if (s[i] == '_') {
                        i++;
                        if (i < n && s[i] == '_')
                                i++;
                } else if (s[i] == '-') {
                        while (i < n && s[i] == '-')
                                i++;
                } else {
                        return false;
                }
                if (i == n || !is_lower_alnum(s[i]))
                        return false;
        }
        return true;
}

/* domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9] */
static bool valid_domain_component(const char *s, size_t n)
{
        if (n == 0 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '-')
                        return false;
        return true;
}

static bool valid_port(const char *s, size_t n)
{
        if (n == 0 || n > 5)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isdigit((unsigned char)s[i]))
                        return false;
        return true;
}

static bool valid_domain(const char *s, size_t n)
{
        const char *port = NULL;
        size_t host_n = n;

        if (n > 0 && s[0] == '[') {
                /* IPv6 literal: [hex:...] */
                const char *close = memchr(s, ']', n);
                if (!close || close == s + 1)
                        return false;
                for (const char *p = s + 1; p < close; p++)
                        if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                                return false;
                size_t rest = n - (size_t)(close + 1 - s);
                if (rest == 0)
                        return true;
                if (close[1] != ':')
                        return false;
                return valid_port(close + 2, rest - 1);
        }
        const char *colon = memchr(s, ':', n);
        if (colon) {
                port = colon + 1;
                host_n = (size_t)(colon - s);
                if (!valid_port(port, n - host_n - 1))
                        return false;
        }
        size_t start = 0;
        for (size_t i = 0; i <= host_n; i++) {
                if (i == host_n || s[i] == '.') {
                        if (!valid_domain_component(s + start, i - start))
                                return false;
                        start = i + 1;
                }
        }
        return true;
}

static bool valid_tag(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > TAG_MAX_LEN)
                return false;
        if (!isalnum((unsigned char)s[0]) && s[0] != '_')
                return false;
        for (size_t i = 1; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
                        return false;
        return true;
}

bool img_digest_valid(const char *d)
{
        if (!d || !str_has_prefix(d, "sha256:") || strlen(d) != 7 + 64)
                return false;
        for (const char *p = d + 7; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

static bool all_hex64(const char *s)
{
        if (strlen(s) != 64)
                return false;
        for (; *s; s++)
                if (!isxdigit((unsigned char)*s))
                        return false;
        return true;
}

void img_ref_clear(struct img_ref *r)
{
        if (!r)
                return;
        free(r->domain);
        free(r->path);
        free(r->tag);
        free(r->digest);
        memset(r, 0, sizeof(*r));
}

int img_ref_parse(const char *s, struct img_ref *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        if (!s || !*s)
                return err_set(e, ERR_INVALID, "invalid reference \"\": empty");
        if (strlen(s) > 4096)
                return err_set(e, ERR_INVALID, "invalid reference: longer than 4096 bytes");

        cleanup_free char *work = xstrdup(s);
        cleanup_free char *digest = NULL;
        cleanup_free char *tag = NULL;

        char *at = strchr(work, '@');
        if (at) {
                *at = '\0';
                if (!img_digest_valid(at + 1))
                        return err_set(e, ERR_INVALID,
                                       "invalid reference \"%s\": bad digest \"%s\" (want sha256:<64 "
                                       "lowercase hex>)",
                                       s, at + 1);
                digest = xstrdup(at + 1);
        }
        /* A tag is after the last ':' that follows the last '/'. */
        char *slash = strrchr(work, '/');
        char *colon = strrchr(slash ? slash : work, ':');
        if (colon) {
                *colon = '\0';
                if (!valid_tag(colon + 1))
                        return err_set(e, ERR_INVALID, "invalid reference \"%s\": bad tag \"%s\"", s,
                                       colon + 1);
                tag = xstrdup(colon + 1);
        }
        const char *name = work;
        if (!*name)
                return err_set(e, ERR_INVALID, "invalid reference \"%s\": empty name", s);
        if (strlen(name) > NAME_MAX_LEN)
                return err_set(e, ERR_INVALID, "invalid reference \"%s\": name longer than %d characters", s,
                               NAME_MAX_LEN);

        cleanup_free char *domain = NULL;
        const char *rest = name;
        const char *first_slash = strchr(name, '/');
        if (first_slash) {
                size_t dn = (size_t)(first_slash - name);
                bool is_domain = memchr(name, '.', dn) || memchr(name, ':', dn) ||
                                 (dn == 9 && memcmp(name, "localhost", 9) == 0) || name[0] == '[';
                /* Upper case is only allowed in a domain. */
                for (size_t i = 0; !is_domain && i < dn; i++)
                        if (isupper((unsigned char)name[i]))
                                is_domain = true;
                if (is_domain) {
                        if (!valid_domain(name, dn))
                                return err_set(e, ERR_INVALID,
                                               "invalid reference \"%s\": bad registry host \"%.*s\"", s,
                                               (int)dn, name);
                        domain = xstrndup(name, dn);
                        rest = first_slash + 1;
                }
        }
        if (!domain)
                domain = xstrdup("docker.io");
        else if (strcmp(domain, "index.docker.io") == 0) {
                free(domain);
                domain = xstrdup("docker.io");
        }
        if (all_hex64(rest) && strcmp(domain, "docker.io") == 0 && rest == name)
                return err_set(e, ERR_INVALID,
                               "invalid reference \"%s\": a 64-character hex string is an image id, not a "
                               "repository name",
                               s);

        /* Validate the path components. */
        const char *p = rest;
        for (;;) {
                const char *end = strchr(p, '/');
                size_t n = end ? (size_t)(end - p) : strlen(p);
                if (!valid_path_component(p, n)) {
                        for (size_t i = 0; i < n; i++)
                                if (isupper((unsigned char)p[i]))
                                        return err_set(
                                                e, ERR_INVALID,
                                                "invalid reference \"%s\": repository name must be lowercase",
                                                s);
                        return err_set(e, ERR_INVALID,
                                       "invalid reference \"%s\": bad repository path component \"%.*s\"", s,
                                       (int)n, p);
                }
                if (!end)
                        break;
                p = end + 1;
        }

        if (strcmp(domain, "docker.io") == 0 && !strchr(rest, '/'))
                out->path = xasprintf("library/%s", rest);
        else
                out->path = xstrdup(rest);
        if (!tag && !digest)
                tag = xstrdup("latest");
        out->domain = steal_ptr(&domain);
        out->tag = steal_ptr(&tag);
        out->digest = steal_ptr(&digest);
        return 0;
}

char *img_ref_name(const struct img_ref *r)
{
        return xasprintf("%s/%s", r->domain, r->path);
}

char *img_ref_string(const struct img_ref *r)
{
        struct sbuf b = {0};
        sbuf_printf(&b, "%s/%s", r->domain, r->path);
        if (r->tag)
                sbuf_printf(&b, ":%s", r->tag);
        if (r->digest)
                sbuf_printf(&b, "@%s", r->digest);
        return sbuf_steal(&b);
}

char *img_ref_familiar(const struct img_ref *r)
{
        struct sbuf b = {0};
        if (strcmp(r->domain, "docker.io") == 0) {
                const char *path = r->path;
                if (str_has_prefix(path, "library/") && !strchr(path + 8, '/'))
                        path += 8;
                sbuf_puts(&b, path);
        } else {
                sbuf_printf(&b, "%s/%s", r->domain, r->path);
        }
        if (r->tag)
                sbuf_printf(&b, ":%s", r->tag);
        if (r->digest)
                sbuf_printf(&b, "@%s", r->digest);
        return sbuf_steal(&b);
}

char *img_ref_normalize(const char *s, struct err *e)
{
        struct img_ref r;
        if (img_ref_parse(s, &r, e) < 0)
                return NULL;
        char *out = img_ref_string(&r);
        img_ref_clear(&r);
        return out;
}
