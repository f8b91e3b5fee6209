/* 64-hex-char ids like containerd and CRI-O, and the CLI's prefix lookup. */
#include <string.h>
#include <sys/random.h>

#include "util/util.h"

void id_generate(char out[ID_LEN + 1])
{
        static const char hex[] = "0123456789abcdef";
        unsigned char raw[ID_LEN / 2];
        size_t got = 0;
        while (got < sizeof(raw)) {
                ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
                if (n < 0)
                        abort(); /* the kernel's CSPRNG cannot fail once seeded */
                got += (size_t)n;
        }
        for (size_t i = 0; i < sizeof(raw); i++) {
                out[2 * i] = hex[raw[i] >> 4];
                out[2 * i + 1] = hex[raw[i] & 15];
        }
        out[ID_LEN] = '\0';
}

bool id_is_valid(const char *s)
{
        if (s == NULL || strlen(s) != ID_LEN)
                return false;
        for (size_t i = 0; i < ID_LEN; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

int id_resolve_prefix(const char *prefix, char *const *ids, size_t n, const char **out, struct err *e)
{
        const char *found = NULL;
        size_t matches = 0;
        if (prefix == NULL || *prefix == '\0')
                return err_set(e, ERR_INVALID, "empty id");
        size_t lp = strlen(prefix);
        for (size_t i = 0; i < n; i++) {
                if (strcmp(ids[i], prefix) == 0) {
                        *out = ids[i];
                        return 0;
                }
                if (strncmp(ids[i], prefix, lp) == 0) {
                        found = ids[i];
                        matches++;
                }
        }
        if (matches == 0)
                return err_set(e, ERR_NOT_FOUND, "no id matches %s", prefix);
        if (matches > 1)
                return err_set(e, ERR_INVALID, "id prefix %s is ambiguous (%zu matches)", prefix, matches);
        *out = found;
        return 0;
}
