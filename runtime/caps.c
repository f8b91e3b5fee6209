/* Capabilities with libcap: parse names, drop the bounding set, set the
 * effective/permitted/inheritable and ambient sets. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include "runtime/runtime-internal.h"

int caps_parse(const char *name)
{
        if (name == NULL || name[0] == '\0')
                return -1;
        char *end;
        long n = strtol(name, &end, 10);
        if (*end == '\0')
                return n >= 0 && n < 64 ? (int)n : -1;
        char buf[64];
        if (strncasecmp(name, "CAP_", 4) != 0)
                snprintf(buf, sizeof(buf), "cap_%s", name);
        else
                snprintf(buf, sizeof(buf), "%s", name);
        for (char *p = buf; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        cap_value_t v;
        if (cap_from_name(buf, &v) < 0)
                return -1;
        return (int)v;
}

bool caps_has(char *const *set, int cap)
{
        for (; cap >= 0 && set && *set; set++)
                if (caps_parse(*set) == cap)
                        return true;
        return false;
}

static int last_cap(void)
{
        int n = (int)cap_max_bits();
        return n > 0 ? n - 1 : CAP_LAST_CAP;
}

int rt_cap_parse(const char *name)
{
        int n = caps_parse(name);
        return n <= last_cap() ? n : -1;
}

char **rt_caps_all(void)
{
        char **v = NULL;
        for (int cap = 0; cap <= last_cap(); cap++) {
                char *n = cap_to_name((cap_value_t)cap);
                cleanup_free char *up = xstrdup(n ? n : "");
                cap_free(n);
                for (char *p = up; *p; p++)
                        *p = (char)toupper((unsigned char)*p);
                strv_push(&v, up);
        }
        return v ? v : xcalloc(1, sizeof(char *));
}

/* Ours to give: one we lack in our bounding set cannot be raised in any
 * set (cap_set_proc fails with EPERM). */
static bool held(int cap)
{
        return prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1;
}

int caps_drop_bounding(const struct rt_caps *c, bool privileged, struct err *e)
{
        if (privileged)
                return 0;
        for (int cap = 0; cap <= last_cap(); cap++) {
                if (caps_has(c->bounding, cap))
                        continue;
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
                        return err_make(e, errno, "drop capability %d from the bounding set", cap);
        }
        return 0;
}

static int fill(cap_t t, cap_flag_t flag, char *const *set, bool all)
{
        cap_value_t v[64];
        int n = 0;
        /* "all" (privileged) is every capability we hold in our bounding
         * set, and any set is clamped to it (see held). */
        for (int cap = 0; cap <= last_cap() && n < 64; cap++)
                if (held(cap) && (all || caps_has(set, cap)))
                        v[n++] = cap;
        return n ? cap_set_flag(t, flag, n, v, CAP_SET) : 0;
}

int caps_apply(const struct rt_caps *c, bool privileged, struct err *e)
{
        cap_t t = cap_init();
        if (t == NULL)
                return err_make(e, errno, "cap_init");
        if (fill(t, CAP_EFFECTIVE, c->effective, privileged) < 0 ||
            fill(t, CAP_PERMITTED, c->permitted, privileged) < 0 ||
            fill(t, CAP_INHERITABLE, c->inheritable, false) < 0) {
                cap_free(t);
                return err_make(e, errno, "cap_set_flag");
        }
        if (cap_set_proc(t) < 0) {
                int er = errno;
                cap_free(t);
                return err_make(e, er, "set capabilities");
        }
        cap_free(t);
        if (c->ambient && c->ambient[0]) {
                (void)cap_reset_ambient();
                for (int cap = 0; cap <= last_cap(); cap++)
                        if (held(cap) && caps_has(c->ambient, cap) && cap_set_ambient(cap, CAP_SET) < 0)
                                return err_make(
                                        e, errno,
                                        "raise ambient capability %d (it must be permitted and inheritable)",
                                        cap);
        }
        return 0;
}
