/* host-local's allocator, in its own on-disk format, so host-local and
 * corrald can share a data dir: one file per address named by the address
 * and holding "<container id>\r\n<ifname>", last_reserved_ip.<range set>
 * for round robin, and an flock on <dir>/lock around every change. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "net/native-internal.h"

#define LINE_BREAK "\r\n"
#define LAST_IP    "last_reserved_ip."

int native_ip_parse(const char *s, uint32_t *out)
{
        struct in_addr a;
        if (!s || inet_pton(AF_INET, s, &a) != 1)
                return -1;
        *out = ntohl(a.s_addr);
        return 0;
}

void native_ip_str(uint32_t ip, char out[16])
{
        struct in_addr a = {htonl(ip)};
        inet_ntop(AF_INET, &a, out, 16);
}

int native_cidr_parse(const char *s, uint32_t *ip, int *prefix)
{
        char buf[32];
        const char *slash = s ? strchr(s, '/') : NULL;
        if (!slash || (size_t)(slash - s) >= sizeof(buf))
                return -1;
        memcpy(buf, s, (size_t)(slash - s));
        buf[slash - s] = '\0';
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (*end || end == slash + 1 || p < 0 || p > 32 || native_ip_parse(buf, ip) < 0)
                return -1;
        *prefix = (int)p;
        return 0;
}

/* ---------- config ---------- */

static bool in_subnet(const struct native_range *r, uint32_t ip)
{
        uint32_t m = native_mask(r->prefix);
        return (ip & m) == (r->subnet & m);
}

static bool range_contains(const struct native_range *r, uint32_t ip)
{
        return in_subnet(r, ip) && ip >= r->start && ip <= r->end;
}

static bool set_contains(const struct native_rangeset *s, uint32_t ip, size_t *idx)
{
        for (size_t i = 0; i < s->n; i++)
                if (range_contains(&s->r[i], ip)) {
                        if (idx)
                                *idx = i;
                        return true;
                }
        return false;
}

static bool is_v6(const char *s)
{
        return s && strchr(s, ':');
}

/* One range object: subnet, rangeStart, rangeEnd, gateway (host-local's
 * Canonicalize: gateway and start default to subnet + 1, end to the last
 * address before broadcast). 1 = IPv6. */
static int range_parse(yajl_val v, struct native_range *r, struct err *e)
{
        const char *subnet = json_get_str(v, "subnet"), *start = json_get_str(v, "rangeStart"),
                   *end = json_get_str(v, "rangeEnd"), *gw = json_get_str(v, "gateway");
        if (is_v6(subnet) || is_v6(start) || is_v6(end) || is_v6(gw))
                return 1;
        if (native_cidr_parse(subnet, &r->subnet, &r->prefix) < 0)
                return err_set(e, ERR_INVALID, "host-local: bad subnet %s", subnet ? subnet : "(none)");
        if (r->prefix > 30)
                return err_set(e, ERR_INVALID, "host-local: network %s too small to allocate from", subnet);
        r->gw = r->subnet + 1;
        if (gw && native_ip_parse(gw, &r->gw) < 0)
                return err_set(e, ERR_INVALID, "host-local: bad gateway %s", gw);
        if (!in_subnet(r, r->gw))
                return err_set(e, ERR_INVALID, "host-local: gateway %s not in network %s", gw, subnet);
        r->start = r->subnet + 1;
        r->end = (r->subnet | ~native_mask(r->prefix)) - 1;
        uint32_t s = r->start, en = r->end;
        if (start && (native_ip_parse(start, &s) < 0 || !range_contains(r, s)))
                return err_set(e, ERR_INVALID, "host-local: rangeStart %s not in %s", start, subnet);
        if (end && (native_ip_parse(end, &en) < 0 || !range_contains(r, en)))
                return err_set(e, ERR_INVALID, "host-local: rangeEnd %s not in %s", end, subnet);
        r->start = s;
        r->end = en;
        return 0;
}

static int rangeset_parse(yajl_val arr, struct native_rangeset *s, struct err *e)
{
        if (!YAJL_IS_ARRAY(arr) || arr->u.array.len == 0)
                return err_set(e, ERR_INVALID, "host-local: a range set must be a non-empty array");
        s->r = xcalloc(arr->u.array.len, sizeof(*s->r));
        for (size_t i = 0; i < arr->u.array.len; i++) {
                int r = range_parse(arr->u.array.values[i], &s->r[s->n], e);
                if (r != 0)
                        return r;
                s->n++;
        }
        return 0;
}

static void add_set(struct native_ipam *c)
{
        c->sets = xrealloc(c->sets, (c->n_sets + 1) * sizeof(*c->sets));
        memset(&c->sets[c->n_sets], 0, sizeof(c->sets[0]));
        c->n_sets++;
}

int native_ipam_parse(yajl_val ipam, const char *net_name, const char *ip_ranges, struct native_ipam *out,
                      char **why, struct err *e)
{
        static const char *known[] = {"type",     "ranges",  "subnet", "rangeStart",
                                      "rangeEnd", "gateway", "routes", "dataDir"};
        memset(out, 0, sizeof(*out));
        *why = NULL;
        for (size_t i = 0; i < ipam->u.object.len; i++) {
                bool ok = false;
                for (size_t k = 0; k < ARRAY_SIZE(known); k++)
                        ok = ok || !strcmp(ipam->u.object.keys[i], known[k]);
                if (!ok) {
                        *why = xasprintf("host-local option %s", ipam->u.object.keys[i]);
                        return 1;
                }
        }
        const char *dd = json_get_str(ipam, "dataDir");
        out->dir = path_join(dd && dd[0] ? dd : NATIVE_IPAM_DATA_DIR, net_name);
        int r = 0;
        if (ip_ranges && ip_ranges[0]) {
                /* The ipRanges capability: the pod CIDR replaces the ranges. */
                struct native_range rg = {0};
                yajl_val v = NULL;
                cleanup_free char *j = xasprintf("{\"subnet\":\"%s\"}", ip_ranges);
                v = json_parse(j, strlen(j), "ipRanges", e);
                if (!v)
                        goto fail;
                r = range_parse(v, &rg, e);
                yajl_tree_free(v);
                if (r != 0)
                        goto fail;
                add_set(out);
                out->sets[0].r = xmemdup(&rg, sizeof(rg));
                out->sets[0].n = 1;
        } else {
                /* The old single range at the top comes first (host-local does so). */
                if (json_get_str(ipam, "subnet")) {
                        add_set(out);
                        out->sets[0].r = xcalloc(1, sizeof(struct native_range));
                        if ((r = range_parse(ipam, &out->sets[0].r[0], e)) != 0)
                                goto fail;
                        out->sets[0].n = 1;
                }
                yajl_val ranges = json_get(ipam, "ranges");
                for (size_t i = 0; ranges && YAJL_IS_ARRAY(ranges) && i < ranges->u.array.len; i++) {
                        add_set(out);
                        if ((r = rangeset_parse(ranges->u.array.values[i], &out->sets[out->n_sets - 1], e)) !=
                            0)
                                goto fail;
                }
        }
        if (out->n_sets == 0) {
                r = err_set(e, ERR_INVALID, "host-local: no IP ranges specified");
                goto fail;
        }
        yajl_val routes = json_get(ipam, "routes");
        for (size_t i = 0; routes && YAJL_IS_ARRAY(routes) && i < routes->u.array.len; i++) {
                yajl_val rv = routes->u.array.values[i];
                const char *dst = json_get_str(rv, "dst"), *gw = json_get_str(rv, "gw");
                if (is_v6(dst) || is_v6(gw) || (rv->u.object.len > (gw ? 2u : 1u))) {
                        r = 1;
                        goto fail;
                }
                struct native_route rt = {0};
                if (native_cidr_parse(dst, &rt.dst, &rt.prefix) < 0 ||
                    (gw && native_ip_parse(gw, &rt.gw) < 0)) {
                        r = err_set(e, ERR_INVALID, "host-local: bad route %s via %s", dst ? dst : "(none)",
                                    gw ? gw : "-");
                        goto fail;
                }
                rt.has_gw = gw != NULL;
                out->routes = xrealloc(out->routes, (out->n_routes + 1) * sizeof(rt));
                out->routes[out->n_routes++] = rt;
        }
        return 0;
fail:
        if (r == 1 && !*why)
                *why = xstrdup("an IPv6 range or route");
        native_ipam_free(out);
        return r;
}

void native_ipam_free(struct native_ipam *c)
{
        if (!c)
                return;
        free(c->dir);
        for (size_t i = 0; i < c->n_sets; i++)
                free(c->sets[i].r);
        free(c->sets);
        free(c->routes);
        memset(c, 0, sizeof(*c));
}

/* ---------- the store ---------- */

static int lock_dir(const char *dir, struct err *e)
{
        if (mkdir_p(dir, 0755, e) < 0)
                return -1;
        cleanup_free char *p = path_join(dir, "lock");
        int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0)
                return err_make(e, errno, "open %s", p);
        while (flock(fd, LOCK_EX) < 0) {
                if (errno != EINTR) {
                        int errnum = errno;
                        close(fd);
                        return err_make(e, errnum, "lock %s", p);
                }
        }
        return fd;
}

/* strings.TrimSpace of a small file's content, or NULL. */
static char *read_trimmed(int dfd, const char *name)
{
        char buf[512];
        cleanup_close int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return NULL;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return NULL;
        buf[n] = '\0';
        char *s = buf;
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == '\v' || *s == '\f')
                s++;
        size_t len = strlen(s);
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' || s[len - 1] == '\n' ||
                       s[len - 1] == '\v' || s[len - 1] == '\f'))
                len--;
        return xstrndup(s, len);
}

typedef bool (*entry_fn)(int dfd, const char *name, void *data);

/* Every regular file of the dir with content `a` or (when `b`) `b`. */
static void walk_matching(const char *dir, const char *a, const char *b, entry_fn fn, void *data)
{
        cleanup_dir DIR *d = opendir(dir);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
                        continue;
                cleanup_free char *c = read_trimmed(dirfd(d), de->d_name);
                if (c && (!strcmp(c, a) || (b && !strcmp(c, b))))
                        if (!fn(dirfd(d), de->d_name, data))
                                return;
        }
}

struct dup_q {
        const struct native_rangeset *set;
        uint32_t found;
        bool any;
};

static bool dup_cb(int dfd, const char *name, void *data)
{
        (void)dfd;
        struct dup_q *q = data;
        uint32_t ip;
        if (native_ip_parse(name, &ip) == 0 && set_contains(q->set, ip, NULL)) {
                q->found = ip;
                q->any = true;
                return false;
        }
        return true;
}

/* 1 reserved, 0 taken. */
static int reserve(const char *dir, const char *id, const char *ifname, uint32_t ip, size_t set,
                   struct err *e)
{
        char s[16];
        native_ip_str(ip, s);
        cleanup_free char *p = path_join(dir, s);
        int fd = open(p, O_RDWR | O_EXCL | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 && errno == EEXIST)
                return 0;
        if (fd < 0)
                return err_make(e, errno, "create %s", p);
        cleanup_free char *body = xasprintf("%s" LINE_BREAK "%s", id, ifname);
        if (fd_write_all(fd, body, strlen(body)) < 0) {
                int errnum = errno;
                close(fd);
                unlink(p);
                return err_make(e, errnum, "write %s", p);
        }
        close(fd);
        cleanup_free char *lp = xasprintf("%s/" LAST_IP "%zu", dir, set);
        cleanup_close int lfd = open(lp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (lfd < 0 || fd_write_all(lfd, s, strlen(s)) < 0)
                return err_make(e, errno, "write %s", lp);
        return 1;
}

/* host-local's RangeIter: from the range holding the last reserved address
 * (the one after it first), else from the first range's start; ranges in
 * turn, each start..end inclusive, the gateway skipped, once round. */
static int alloc_set(const struct native_ipam *c, size_t si, const char *id, const char *ifname,
                     struct native_ip *out, struct err *e)
{
        const struct native_rangeset *set = &c->sets[si];
        char lastname[48];
        snprintf(lastname, sizeof(lastname), LAST_IP "%zu", si);
        size_t ri = 0;
        uint32_t cur = 0, start = 0;
        bool have_cur = false, have_start = false;

        cleanup_dir DIR *d = opendir(c->dir);
        cleanup_free char *last = d ? read_trimmed(dirfd(d), lastname) : NULL;
        uint32_t lip;
        if (last && native_ip_parse(last, &lip) == 0 && set_contains(set, lip, &ri)) {
                cur = lip;
                have_cur = true;
        }
        for (;;) {
                const struct native_range *r = &set->r[ri];
                if (!have_cur) {
                        cur = r->start;
                        have_cur = true;
                        start = cur;
                        have_start = true;
                } else {
                        if (cur == r->end) {
                                ri = (ri + 1) % set->n;
                                r = &set->r[ri];
                                cur = r->start;
                        } else {
                                cur++;
                        }
                        if (!have_start) {
                                start = cur;
                                have_start = true;
                        } else if (cur == start) {
                                break;
                        }
                }
                if (cur == r->gw)
                        continue;
                int rv = reserve(c->dir, id, ifname, cur, si, e);
                if (rv < 0)
                        return -1;
                if (rv == 1) {
                        out->addr = cur;
                        out->prefix = r->prefix;
                        out->gw = r->gw;
                        return 0;
                }
        }
        char a[16], b[16];
        native_ip_str(set->r[0].start, a);
        native_ip_str(set->r[set->n - 1].end, b);
        return err_set(e, ERR_EXHAUSTED, "host-local: no IP addresses available in range set %s-%s", a, b);
}

int native_ipam_alloc(const struct native_ipam *c, const char *id, const char *ifname, struct native_ip *out,
                      struct err *e)
{
        cleanup_close int lk = lock_dir(c->dir, e);
        if (lk < 0)
                return -1;
        cleanup_free char *key = xasprintf("%s" LINE_BREAK "%s", id, ifname);
        size_t done = 0;
        for (size_t si = 0; si < c->n_sets; si++) {
                struct dup_q q = {&c->sets[si], 0, false};
                walk_matching(c->dir, key, id, dup_cb, &q);
                if (q.any) {
                        char s[16];
                        native_ip_str(q.found, s);
                        err_set(e, ERR_EXISTS,
                                "host-local: %s has been allocated to %s, duplicate allocation is not "
                                "allowed",
                                s, id);
                        goto undo;
                }
                if (alloc_set(c, si, id, ifname, &out[si], e) < 0)
                        goto undo;
                done++;
        }
        return 0;
undo:
        /* host-local's ADD releases what it took when a later set fails. */
        for (size_t i = 0; i < done; i++) {
                char s[16];
                native_ip_str(out[i].addr, s);
                cleanup_free char *p = path_join(c->dir, s);
                (void)unlink(p);
        }
        return -1;
}

struct rel_q {
        int n;
};

static bool rel_cb(int dfd, const char *name, void *data)
{
        struct rel_q *q = data;
        if (unlinkat(dfd, name, 0) == 0)
                q->n++;
        return true;
}

int native_ipam_release(const char *dir, const char *id, const char *ifname, struct err *e)
{
        struct stat st;
        if (stat(dir, &st) < 0 && errno == ENOENT)
                return 0;
        cleanup_close int lk = lock_dir(dir, e);
        if (lk < 0)
                return -1;
        cleanup_free char *key = xasprintf("%s" LINE_BREAK "%s", id, ifname);
        struct rel_q q = {0};
        walk_matching(dir, key, NULL, rel_cb, &q);
        if (q.n == 0)
                walk_matching(dir, id, NULL, rel_cb, &q);
        return 0;
}
