/* The devices cgroup: which device nodes a container may create (mknod) and
 * open. Without it a container with CAP_MKNOD can make and open any node.
 *
 * One rule list per container (deny everything, then containerd's default
 * allow-list and the spec's devices; privileged: allow everything), written
 * to devices.deny/devices.allow on v1, or compiled to a
 * BPF_PROG_TYPE_CGROUP_DEVICE program on v2 (same shape as systemd's and
 * crun's: a block per rule, checked last rule first, first match decides). */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime/runtime-internal.h"

/* containerd's WithDefaultUnixDevices, minus tun/tap (c 10:200), which it
 * allows to every container: here a pod that needs /dev/net/tun lists the
 * device. No docker-style "c *:* m" / "b *:* m" either: mknod of anything
 * else is refused, not just its open. */
static const struct dev_rule default_allow[] = {
        {true, 'c', 1, 3, DEV_ACC_ALL},    /* /dev/null */
        {true, 'c', 1, 5, DEV_ACC_ALL},    /* /dev/zero */
        {true, 'c', 1, 7, DEV_ACC_ALL},    /* /dev/full */
        {true, 'c', 1, 8, DEV_ACC_ALL},    /* /dev/random */
        {true, 'c', 1, 9, DEV_ACC_ALL},    /* /dev/urandom */
        {true, 'c', 5, 0, DEV_ACC_ALL},    /* /dev/tty */
        {true, 'c', 5, 1, DEV_ACC_ALL},    /* /dev/console */
        {true, 'c', 5, 2, DEV_ACC_ALL},    /* /dev/ptmx, /dev/pts/ptmx */
        {true, 'c', 136, -1, DEV_ACC_ALL}, /* /dev/pts/N */
};

int dev_parse_access(const char *s)
{
        int acc = 0;
        if (s == NULL || s[0] == '\0')
                return DEV_ACC_ALL;
        for (; *s; s++) {
                switch (*s) {
                case 'r':
                        acc |= DEV_ACC_READ;
                        break;
                case 'w':
                        acc |= DEV_ACC_WRITE;
                        break;
                case 'm':
                        acc |= DEV_ACC_MKNOD;
                        break;
                default:
                        return -1;
                }
        }
        return acc;
}

int dev_rules_for_spec(const struct rt_spec *s, struct dev_rule **out, size_t *n, struct err *e)
{
        *out = NULL;
        *n = 0;
        if (s->privileged) {
                *out = xmalloc(sizeof(struct dev_rule));
                (*out)[0] = (struct dev_rule){true, 'a', -1, -1, DEV_ACC_ALL};
                *n = 1;
                return 0;
        }
        struct dev_rule *r = xcalloc(1 + ARRAY_SIZE(default_allow) + s->n_devices, sizeof(*r));
        size_t k = 0;
        r[k++] = (struct dev_rule){false, 'a', -1, -1, DEV_ACC_ALL};
        for (size_t i = 0; i < ARRAY_SIZE(default_allow); i++)
                r[k++] = default_allow[i];
        for (size_t i = 0; i < s->n_devices; i++) {
                const struct rt_device *d = &s->devices[i];
                char type = d->type == 'u' ? 'c' : d->type;
                if (type == 'p')
                        continue; /* a fifo is no device: nothing to allow */
                int acc = dev_parse_access(d->permissions);
                const char *what = d->path ? d->path : "(no path)";
                if (type != 'c' && type != 'b') {
                        free(r);
                        return err_set(e, ERR_INVALID, "device %s: type '%c' is not c, b or p", what,
                                       d->type);
                }
                if (acc < 0) {
                        free(r);
                        return err_set(e, ERR_INVALID,
                                       "device %s: permissions \"%s\" are not a subset of rwm", what,
                                       d->permissions);
                }
                if (d->major > INT32_MAX || d->minor > INT32_MAX) {
                        free(r);
                        return err_set(e, ERR_INVALID, "device %s: major/minor out of range", what);
                }
                r[k++] = (struct dev_rule){true, type, d->major < 0 ? -1 : d->major,
                                           d->minor < 0 ? -1 : d->minor, (unsigned)acc};
        }
        *out = r;
        *n = k;
        return 0;
}

/* ---------- v1: devices.deny / devices.allow ---------- */

static void v1_line(const struct dev_rule *r, char *buf, size_t cap)
{
        if (r->type == 'a') {
                /* "a" alone: all devices, all access; resets the list. */
                snprintf(buf, cap, "a");
                return;
        }
        char maj[24] = "*", min[24] = "*", acc[4];
        size_t k = 0;
        if (r->major >= 0)
                snprintf(maj, sizeof(maj), "%lld", (long long)r->major);
        if (r->minor >= 0)
                snprintf(min, sizeof(min), "%lld", (long long)r->minor);
        if (r->access & DEV_ACC_READ)
                acc[k++] = 'r';
        if (r->access & DEV_ACC_WRITE)
                acc[k++] = 'w';
        if (r->access & DEV_ACC_MKNOD)
                acc[k++] = 'm';
        acc[k] = '\0';
        snprintf(buf, cap, "%c %s:%s %s", r->type, maj, min, acc);
}

int dev_v1_write(const char *dir, const struct dev_rule *r, size_t n, struct err *e)
{
        /* In order: a leading "a" deny (or allow) sets the default and
         * empties the exception list, so re-applying is idempotent. */
        for (size_t i = 0; i < n; i++) {
                char line[64];
                v1_line(&r[i], line, sizeof(line));
                if (cg_write(dir, r[i].allow ? "devices.allow" : "devices.deny", line, e) < 0)
                        return err_wrap(e, "devices cgroup");
        }
        return 0;
}

/* ---------- v2: a BPF_PROG_TYPE_CGROUP_DEVICE program ---------- */

#define INSN(c, d, s, o, i)                                                                                  \
        ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define LDX_W(dst, src, off)    INSN(BPF_LDX | BPF_W | BPF_MEM, dst, src, off, 0)
#define ALU32_IMM(op, dst, imm) INSN(BPF_ALU | (op) | BPF_K, dst, 0, 0, imm)
#define MOV32_REG(dst, src)     INSN(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
#define MOV64_IMM(dst, imm)     INSN(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
#define JNE_IMM(dst, imm)       INSN(BPF_JMP | BPF_JNE | BPF_K, dst, 0, 0, imm)
#define JNE_REG(dst, src)       INSN(BPF_JMP | BPF_JNE | BPF_X, dst, src, 0, 0)
#define EXIT()                  INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

struct prog {
        struct bpf_insn *v;
        size_t n, cap;
};

static void emit(struct prog *p, struct bpf_insn i)
{
        if (p->n == p->cap) {
                p->cap = p->cap ? p->cap * 2 : 64;
                p->v = xrealloc(p->v, p->cap * sizeof(*p->v));
        }
        p->v[p->n++] = i;
}

/* One rule: each check jumps past the block when the request does not
 * match; a request that passes them all gets the rule's verdict. Returns
 * true when the rule matches everything (later blocks are unreachable). */
static bool emit_rule(struct prog *p, const struct dev_rule *r)
{
        struct bpf_insn blk[8];
        size_t k = 0;
        bool any_type = r->type == 'a';
        unsigned acc = 0;
        if (r->access & DEV_ACC_READ)
                acc |= BPF_DEVCG_ACC_READ;
        if (r->access & DEV_ACC_WRITE)
                acc |= BPF_DEVCG_ACC_WRITE;
        if (r->access & DEV_ACC_MKNOD)
                acc |= BPF_DEVCG_ACC_MKNOD;
        if (!any_type)
                blk[k++] = JNE_IMM(BPF_REG_2, r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
        if ((r->access & DEV_ACC_ALL) != DEV_ACC_ALL) {
                /* Every requested access must be in the rule's. */
                blk[k++] = MOV32_REG(BPF_REG_1, BPF_REG_3);
                blk[k++] = ALU32_IMM(BPF_AND, BPF_REG_1, (int32_t)acc);
                blk[k++] = JNE_REG(BPF_REG_1, BPF_REG_3);
        }
        /* v1 ignores major:minor for type "a"; so do we. */
        if (!any_type && r->major >= 0)
                blk[k++] = JNE_IMM(BPF_REG_4, (int32_t)r->major);
        if (!any_type && r->minor >= 0)
                blk[k++] = JNE_IMM(BPF_REG_5, (int32_t)r->minor);
        size_t checks = k;
        blk[k++] = MOV64_IMM(BPF_REG_0, r->allow ? 1 : 0);
        blk[k++] = EXIT();
        for (size_t j = 0; j < checks; j++)
                if (BPF_CLASS(blk[j].code) == BPF_JMP)
                        blk[j].off = (int16_t)(k - j - 1);
        for (size_t j = 0; j < k; j++)
                emit(p, blk[j]);
        return checks == 0;
}

void dev_bpf_compile(const struct dev_rule *r, size_t n, struct bpf_insn **out, size_t *n_insns)
{
        struct prog p = {0};
        /* struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; },
         * access_type = access << 16 | type. */
        emit(&p, LDX_W(BPF_REG_2, BPF_REG_1, 0));
        emit(&p, ALU32_IMM(BPF_AND, BPF_REG_2, 0xFFFF));
        emit(&p, LDX_W(BPF_REG_3, BPF_REG_1, 0));
        emit(&p, ALU32_IMM(BPF_RSH, BPF_REG_3, 16));
        emit(&p, LDX_W(BPF_REG_4, BPF_REG_1, 4));
        emit(&p, LDX_W(BPF_REG_5, BPF_REG_1, 8));
        /* The last matching rule wins, as the v1 list and OCI read them. */
        bool total = false;
        for (size_t i = n; i-- > 0 && !total;)
                total = emit_rule(&p, &r[i]);
        if (!total) {
                emit(&p, MOV64_IMM(BPF_REG_0, 0));
                emit(&p, EXIT());
        }
        *out = p.v;
        *n_insns = p.n;
}

static int sys_bpf(int cmd, union bpf_attr *attr)
{
        return (int)syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

static int prog_load(const struct bpf_insn *insns, size_t n, struct err *e)
{
        union bpf_attr a;
        memset(&a, 0, sizeof(a));
        a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
        a.insns = (uint64_t)(uintptr_t)insns;
        a.insn_cnt = (uint32_t)n;
        a.license = (uint64_t)(uintptr_t) "GPL";
        strncpy(a.prog_name, "corral_devices", sizeof(a.prog_name) - 1);
        int fd = sys_bpf(BPF_PROG_LOAD, &a);
        if (fd >= 0)
                return fd;
        if (errno != EINVAL && errno != EACCES)
                return err_make(e, errno, "load devices eBPF program");
        /* Rejected by the verifier: load again for its log. */
        int er = errno;
        const size_t cap = 16384;
        cleanup_free char *log = xzalloc(cap);
        a.log_level = 1;
        a.log_buf = (uint64_t)(uintptr_t)log;
        a.log_size = (uint32_t)cap;
        fd = sys_bpf(BPF_PROG_LOAD, &a);
        if (fd >= 0)
                return fd;
        return err_make(e, er, "load devices eBPF program: %.512s", log);
}

int dev_bpf_query(int dirfd, uint32_t *ids, uint32_t cap, uint32_t *n, struct err *e)
{
        union bpf_attr a;
        memset(&a, 0, sizeof(a));
        a.query.target_fd = (uint32_t)dirfd;
        a.query.attach_type = BPF_CGROUP_DEVICE;
        a.query.prog_ids = (uint64_t)(uintptr_t)ids;
        a.query.prog_cnt = cap;
        if (sys_bpf(BPF_PROG_QUERY, &a) < 0)
                return err_make(e, errno, "query devices eBPF programs");
        *n = a.query.prog_cnt < cap ? a.query.prog_cnt : cap;
        return 0;
}

int dev_bpf_attach(int dirfd, const struct dev_rule *r, size_t n, struct err *e)
{
        cleanup_free struct bpf_insn *insns = NULL;
        size_t n_insns = 0;
        dev_bpf_compile(r, n, &insns, &n_insns);
        cleanup_close int pfd = prog_load(insns, n_insns, e);
        if (pfd < 0)
                return -1;
        /* The kernel caps a cgroup at 64 programs per attach type. */
        uint32_t old[64];
        uint32_t n_old = 0;
        if (dev_bpf_query(dirfd, old, ARRAY_SIZE(old), &n_old, e) < 0)
                return -1;
        /* Attach first, then detach what was there: no moment without a
         * program. ALLOW_MULTI: a parent's programs keep running too, and
         * one that denies wins. */
        union bpf_attr a;
        memset(&a, 0, sizeof(a));
        a.target_fd = (uint32_t)dirfd;
        a.attach_bpf_fd = (uint32_t)pfd;
        a.attach_type = BPF_CGROUP_DEVICE;
        a.attach_flags = BPF_F_ALLOW_MULTI;
        if (sys_bpf(BPF_PROG_ATTACH, &a) < 0)
                return err_make(e, errno, "attach devices eBPF program");
        for (uint32_t i = 0; i < n_old; i++) {
                memset(&a, 0, sizeof(a));
                a.prog_id = old[i];
                cleanup_close int ofd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
                if (ofd < 0) {
                        if (errno == ENOENT)
                                continue;
                        return err_make(e, errno, "open old devices eBPF program %u", old[i]);
                }
                memset(&a, 0, sizeof(a));
                a.target_fd = (uint32_t)dirfd;
                a.attach_bpf_fd = (uint32_t)ofd;
                a.attach_type = BPF_CGROUP_DEVICE;
                if (sys_bpf(BPF_PROG_DETACH, &a) < 0 && errno != ENOENT)
                        return err_make(e, errno, "detach old devices eBPF program %u", old[i]);
        }
        /* The attachment holds the program: our fd can go. */
        return 0;
}

/* ---------- entry point for create ---------- */

int cg_devices_apply(const char *path, const struct rt_spec *s, struct err *e)
{
        cleanup_free struct dev_rule *rules = NULL;
        size_t n = 0;
        if (dev_rules_for_spec(s, &rules, &n, e) < 0)
                return -1;
        const char *root;
        const struct rt_cgroup_ops *ops = cg_ops(&root);
        return ops->devices(root, path, rules, n, e);
}
