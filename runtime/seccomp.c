/* seccomp: profiles (the RuntimeDefault allow-list, Docker/OCI JSON),
 * compilation to BPF with libseccomp, a cache keyed by the profile's hash,
 * and installing the filter in the child. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <yajl/yajl_tree.h>

#include "runtime/runtime-internal.h"

#define SECCOMP_CACHE_DIR "/run/corral/seccomp"

void rt_seccomp_free(struct rt_seccomp *s)
{
        if (s == NULL)
                return;
        strv_free(s->architectures);
        for (size_t i = 0; i < s->n_rules; i++) {
                strv_free(s->rules[i].names);
                free(s->rules[i].args);
        }
        free(s->rules);
        free(s);
}

static struct rt_seccomp_rule *add_rule(struct rt_seccomp *s, enum rt_seccomp_action a, unsigned err)
{
        s->rules = xrealloc(s->rules, (s->n_rules + 1) * sizeof(*s->rules));
        struct rt_seccomp_rule *r = &s->rules[s->n_rules++];
        memset(r, 0, sizeof(*r));
        r->action = a;
        r->errno_ret = err;
        return r;
}

static void add_names(struct rt_seccomp_rule *r, const char *const *names)
{
        for (; *names; names++)
                strv_push(&r->names, *names);
}

static void add_arg(struct rt_seccomp_rule *r, unsigned index, uint64_t v, uint64_t v2, enum rt_seccomp_op op)
{
        r->args = xrealloc(r->args, (r->n_args + 1) * sizeof(*r->args));
        r->args[r->n_args++] = (struct rt_seccomp_arg){index, v, v2, op};
}

/* containerd's default allow-list (contrib/seccomp/seccomp_default.go),
 * amd64 part. Names the kernel or libseccomp does not know are skipped at
 * compile time. */
static const char *const default_allow[] = {
        "accept",
        "accept4",
        "access",
        "adjtimex",
        "alarm",
        "bind",
        "brk",
        "cachestat",
        "capget",
        "capset",
        "chdir",
        "chmod",
        "chown",
        "chown32",
        "clock_adjtime",
        "clock_adjtime64",
        "clock_getres",
        "clock_getres_time64",
        "clock_gettime",
        "clock_gettime64",
        "clock_nanosleep",
        "clock_nanosleep_time64",
        "close",
        "close_range",
        "connect",
        "copy_file_range",
        "creat",
        "dup",
        "dup2",
        "dup3",
        "epoll_create",
        "epoll_create1",
        "epoll_ctl",
        "epoll_ctl_old",
        "epoll_pwait",
        "epoll_pwait2",
        "epoll_wait",
        "epoll_wait_old",
        "eventfd",
        "eventfd2",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "faccessat",
        "faccessat2",
        "fadvise64",
        "fadvise64_64",
        "fallocate",
        "fanotify_mark",
        "fchdir",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "fchown",
        "fchown32",
        "fchownat",
        "fcntl",
        "fcntl64",
        "fdatasync",
        "fgetxattr",
        "flistxattr",
        "flock",
        "fork",
        "fremovexattr",
        "fsetxattr",
        "fstat",
        "fstat64",
        "fstatat64",
        "fstatfs",
        "fstatfs64",
        "fsync",
        "ftruncate",
        "ftruncate64",
        "futex",
        "futex_requeue",
        "futex_time64",
        "futex_wait",
        "futex_waitv",
        "futex_wake",
        "futimesat",
        "getcpu",
        "getcwd",
        "getdents",
        "getdents64",
        "getegid",
        "getegid32",
        "geteuid",
        "geteuid32",
        "getgid",
        "getgid32",
        "getgroups",
        "getgroups32",
        "getitimer",
        "getpeername",
        "getpgid",
        "getpgrp",
        "getpid",
        "getppid",
        "getpriority",
        "getrandom",
        "getresgid",
        "getresgid32",
        "getresuid",
        "getresuid32",
        "getrlimit",
        "get_robust_list",
        "getrusage",
        "getsid",
        "getsockname",
        "getsockopt",
        "get_thread_area",
        "gettid",
        "gettimeofday",
        "getuid",
        "getuid32",
        "getxattr",
        "inotify_add_watch",
        "inotify_init",
        "inotify_init1",
        "inotify_rm_watch",
        "io_cancel",
        "ioctl",
        "io_destroy",
        "io_getevents",
        "io_pgetevents",
        "io_pgetevents_time64",
        "ioprio_get",
        "ioprio_set",
        "io_setup",
        "io_submit",
        "ipc",
        "kill",
        "landlock_add_rule",
        "landlock_create_ruleset",
        "landlock_restrict_self",
        "lchown",
        "lchown32",
        "lgetxattr",
        "link",
        "linkat",
        "listen",
        "listxattr",
        "llistxattr",
        "_llseek",
        "lremovexattr",
        "lseek",
        "lsetxattr",
        "lstat",
        "lstat64",
        "madvise",
        "map_shadow_stack",
        "membarrier",
        "memfd_create",
        "memfd_secret",
        "mincore",
        "mkdir",
        "mkdirat",
        "mknod",
        "mknodat",
        "mlock",
        "mlock2",
        "mlockall",
        "mmap",
        "mmap2",
        "mprotect",
        "mq_getsetattr",
        "mq_notify",
        "mq_open",
        "mq_timedreceive",
        "mq_timedreceive_time64",
        "mq_timedsend",
        "mq_timedsend_time64",
        "mq_unlink",
        "mremap",
        "msgctl",
        "msgget",
        "msgrcv",
        "msgsnd",
        "msync",
        "munlock",
        "munlockall",
        "munmap",
        "name_to_handle_at",
        "nanosleep",
        "newfstatat",
        "_newselect",
        "open",
        "openat",
        "openat2",
        "pause",
        "pidfd_open",
        "pidfd_send_signal",
        "pipe",
        "pipe2",
        "pkey_alloc",
        "pkey_free",
        "pkey_mprotect",
        "poll",
        "ppoll",
        "ppoll_time64",
        "prctl",
        "pread64",
        "preadv",
        "preadv2",
        "prlimit64",
        "process_mrelease",
        "pselect6",
        "pselect6_time64",
        "ptrace",
        "pwrite64",
        "pwritev",
        "pwritev2",
        "read",
        "readahead",
        "readlink",
        "readlinkat",
        "readv",
        "recv",
        "recvfrom",
        "recvmmsg",
        "recvmmsg_time64",
        "recvmsg",
        "remap_file_pages",
        "removexattr",
        "rename",
        "renameat",
        "renameat2",
        "restart_syscall",
        "rmdir",
        "rseq",
        "rt_sigaction",
        "rt_sigpending",
        "rt_sigprocmask",
        "rt_sigqueueinfo",
        "rt_sigreturn",
        "rt_sigsuspend",
        "rt_sigtimedwait",
        "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo",
        "sched_getaffinity",
        "sched_getattr",
        "sched_getparam",
        "sched_get_priority_max",
        "sched_get_priority_min",
        "sched_getscheduler",
        "sched_rr_get_interval",
        "sched_rr_get_interval_time64",
        "sched_setaffinity",
        "sched_setattr",
        "sched_setparam",
        "sched_setscheduler",
        "sched_yield",
        "seccomp",
        "select",
        "semctl",
        "semget",
        "semop",
        "semtimedop",
        "semtimedop_time64",
        "send",
        "sendfile",
        "sendfile64",
        "sendmmsg",
        "sendmsg",
        "sendto",
        "setfsgid",
        "setfsgid32",
        "setfsuid",
        "setfsuid32",
        "setgid",
        "setgid32",
        "setgroups",
        "setgroups32",
        "setitimer",
        "setpgid",
        "setpriority",
        "setregid",
        "setregid32",
        "setresgid",
        "setresgid32",
        "setresuid",
        "setresuid32",
        "setreuid",
        "setreuid32",
        "setrlimit",
        "set_robust_list",
        "setsid",
        "setsockopt",
        "set_thread_area",
        "set_tid_address",
        "setuid",
        "setuid32",
        "setxattr",
        "shmat",
        "shmctl",
        "shmdt",
        "shmget",
        "shutdown",
        "sigaltstack",
        "signalfd",
        "signalfd4",
        "sigprocmask",
        "sigreturn",
        "socketcall",
        "socketpair",
        "splice",
        "stat",
        "stat64",
        "statfs",
        "statfs64",
        "statx",
        "symlink",
        "symlinkat",
        "sync",
        "sync_file_range",
        "syncfs",
        "sysinfo",
        "tee",
        "tgkill",
        "time",
        "timer_create",
        "timer_delete",
        "timer_getoverrun",
        "timer_gettime",
        "timer_gettime64",
        "timer_settime",
        "timer_settime64",
        "timerfd_create",
        "timerfd_gettime",
        "timerfd_gettime64",
        "timerfd_settime",
        "timerfd_settime64",
        "times",
        "tkill",
        "truncate",
        "truncate64",
        "ugetrlimit",
        "umask",
        "uname",
        "unlink",
        "unlinkat",
        "utime",
        "utimensat",
        "utimensat_time64",
        "utimes",
        "vfork",
        "vmsplice",
        "wait4",
        "waitid",
        "waitpid",
        "write",
        "writev",
        "arch_prctl",
        "modify_ldt",
        "socket",
        NULL,
};

struct cap_rule {
        const char *cap;
        const char *const names[12];
};

static const struct cap_rule cap_rules[] = {
        {"CAP_DAC_READ_SEARCH", {"open_by_handle_at", NULL}},
        {"CAP_SYS_ADMIN",
         {"bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
          "lookup_dcookie", "mount", "mount_setattr", NULL}},
        {"CAP_SYS_ADMIN",
         {"move_mount", "open_tree", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname",
          "sethostname", "setns", "syslog", "umount", "umount2", NULL}},
        {"CAP_SYS_ADMIN", {"unshare", NULL}},
        {"CAP_SYS_BOOT", {"reboot", NULL}},
        {"CAP_SYS_CHROOT", {"chroot", NULL}},
        {"CAP_SYS_MODULE", {"delete_module", "init_module", "finit_module", NULL}},
        {"CAP_SYS_PACCT", {"acct", NULL}},
        {"CAP_SYS_PTRACE",
         {"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace", NULL}},
        {"CAP_SYS_RAWIO", {"iopl", "ioperm", NULL}},
        {"CAP_SYS_TIME", {"settimeofday", "stime", "clock_settime", "clock_settime64", NULL}},
        {"CAP_SYS_TTY_CONFIG", {"vhangup", NULL}},
        {"CAP_SYS_NICE", {"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node", NULL}},
        {"CAP_SYSLOG", {"syslog", NULL}},
        {"CAP_BPF", {"bpf", NULL}},
        {"CAP_PERFMON", {"perf_event_open", NULL}},
};

struct rt_seccomp *rt_seccomp_default_profile(const struct rt_caps *caps)
{
        struct rt_seccomp *s = xzalloc(sizeof(*s));
        char **bounding = caps ? caps->bounding : NULL;

        s->default_action = RT_SECCOMP_ERRNO;
        s->default_errno = EPERM;
        strv_push(&s->architectures, "SCMP_ARCH_X86_64");
        strv_push(&s->architectures, "SCMP_ARCH_X86");
        strv_push(&s->architectures, "SCMP_ARCH_X32");
        add_names(add_rule(s, RT_SECCOMP_ALLOW, 0), default_allow);

        /* personality: only the harmless personas. */
        static const uint64_t personas[] = {0x0, 0x0008, 0x20000, 0x20008, 0xffffffff};
        for (size_t i = 0; i < ARRAY_SIZE(personas); i++) {
                struct rt_seccomp_rule *r = add_rule(s, RT_SECCOMP_ALLOW, 0);
                strv_push(&r->names, "personality");
                add_arg(r, 0, personas[i], 0, RT_SECCOMP_OP_EQ);
        }
        bool sys_admin = caps_has(bounding, caps_parse("CAP_SYS_ADMIN"));
        for (size_t i = 0; i < ARRAY_SIZE(cap_rules); i++)
                if (caps_has(bounding, caps_parse(cap_rules[i].cap)))
                        add_names(add_rule(s, RT_SECCOMP_ALLOW, 0), cap_rules[i].names);
        if (!sys_admin) {
                /* clone without any CLONE_NEW* flag; clone3 cannot be
                 * inspected (flags live in memory), so it gets ENOSYS and
                 * libc falls back to clone. */
                struct rt_seccomp_rule *r = add_rule(s, RT_SECCOMP_ALLOW, 0);
                strv_push(&r->names, "clone");
                add_arg(r, 0, 0x7E020000ULL, 0, RT_SECCOMP_OP_MASKED_EQ);
                r = add_rule(s, RT_SECCOMP_ERRNO, ENOSYS);
                strv_push(&r->names, "clone3");
        }
        return s;
}

/* ---------- JSON (Docker/OCI profile format) ---------- */

static const char *const action_names[] = {
        [RT_SECCOMP_ALLOW] = "SCMP_ACT_ALLOW",
        [RT_SECCOMP_ERRNO] = "SCMP_ACT_ERRNO",
        [RT_SECCOMP_KILL_THREAD] = "SCMP_ACT_KILL_THREAD",
        [RT_SECCOMP_KILL_PROCESS] = "SCMP_ACT_KILL_PROCESS",
        [RT_SECCOMP_TRAP] = "SCMP_ACT_TRAP",
        [RT_SECCOMP_TRACE] = "SCMP_ACT_TRACE",
        [RT_SECCOMP_LOG] = "SCMP_ACT_LOG",
};

static const char *const op_names[] = {
        [RT_SECCOMP_OP_NE] = "SCMP_CMP_NE",
        [RT_SECCOMP_OP_LT] = "SCMP_CMP_LT",
        [RT_SECCOMP_OP_LE] = "SCMP_CMP_LE",
        [RT_SECCOMP_OP_EQ] = "SCMP_CMP_EQ",
        [RT_SECCOMP_OP_GE] = "SCMP_CMP_GE",
        [RT_SECCOMP_OP_GT] = "SCMP_CMP_GT",
        [RT_SECCOMP_OP_MASKED_EQ] = "SCMP_CMP_MASKED_EQ",
};

static int parse_action(const char *s)
{
        if (s == NULL)
                return -1;
        if (strcmp(s, "SCMP_ACT_KILL") == 0)
                return RT_SECCOMP_KILL_THREAD;
        for (size_t i = 0; i < ARRAY_SIZE(action_names); i++)
                if (strcmp(s, action_names[i]) == 0)
                        return (int)i;
        return -1;
}

void seccomp_to_json(struct sbuf *b, const struct rt_seccomp *s)
{
        sbuf_puts(b, "{\"defaultAction\":");
        json_quote(b, action_names[s->default_action]);
        sbuf_printf(b, ",\"defaultErrnoRet\":%u,\"architectures\":[", s->default_errno);
        for (size_t i = 0; s->architectures && s->architectures[i]; i++) {
                if (i)
                        sbuf_putc(b, ',');
                json_quote(b, s->architectures[i]);
        }
        sbuf_puts(b, "],\"syscalls\":[");
        for (size_t i = 0; i < s->n_rules; i++) {
                const struct rt_seccomp_rule *r = &s->rules[i];
                sbuf_puts(b, i ? ",{\"names\":[" : "{\"names\":[");
                for (size_t k = 0; r->names && r->names[k]; k++) {
                        if (k)
                                sbuf_putc(b, ',');
                        json_quote(b, r->names[k]);
                }
                sbuf_puts(b, "],\"action\":");
                json_quote(b, action_names[r->action]);
                sbuf_printf(b, ",\"errnoRet\":%u,\"args\":[", r->errno_ret);
                for (size_t k = 0; k < r->n_args; k++)
                        sbuf_printf(b, "%s{\"index\":%u,\"value\":%llu,\"valueTwo\":%llu,\"op\":\"%s\"}",
                                    k ? "," : "", r->args[k].index, (unsigned long long)r->args[k].value,
                                    (unsigned long long)r->args[k].value_two, op_names[r->args[k].op]);
                sbuf_puts(b, "]}");
        }
        sbuf_puts(b, "]}");
}

void seccomp_to_oci_json(struct sbuf *b, const struct rt_seccomp *s)
{
        sbuf_puts(b, "{\"defaultAction\":");
        json_quote(b, action_names[s->default_action]);
        if (s->default_action == RT_SECCOMP_ERRNO && s->default_errno)
                sbuf_printf(b, ",\"defaultErrnoRet\":%u", s->default_errno);
        if (s->architectures && s->architectures[0]) {
                sbuf_puts(b, ",\"architectures\":[");
                for (size_t i = 0; s->architectures[i]; i++) {
                        if (i)
                                sbuf_putc(b, ',');
                        json_quote(b, s->architectures[i]);
                }
                sbuf_putc(b, ']');
        }
        sbuf_puts(b, ",\"syscalls\":[");
        size_t n = 0;
        for (size_t i = 0; i < s->n_rules; i++) {
                const struct rt_seccomp_rule *r = &s->rules[i];
                if (!r->names || !r->names[0])
                        continue;
                sbuf_puts(b, n++ ? ",{\"names\":[" : "{\"names\":[");
                for (size_t k = 0; r->names[k]; k++) {
                        if (k)
                                sbuf_putc(b, ',');
                        json_quote(b, r->names[k]);
                }
                sbuf_puts(b, "],\"action\":");
                json_quote(b, action_names[r->action]);
                if (r->action == RT_SECCOMP_ERRNO)
                        sbuf_printf(b, ",\"errnoRet\":%u", r->errno_ret ? r->errno_ret : EPERM);
                if (r->n_args) {
                        sbuf_puts(b, ",\"args\":[");
                        for (size_t k = 0; k < r->n_args; k++)
                                sbuf_printf(
                                        b, "%s{\"index\":%u,\"value\":%llu,\"valueTwo\":%llu,\"op\":\"%s\"}",
                                        k ? "," : "", r->args[k].index, (unsigned long long)r->args[k].value,
                                        (unsigned long long)r->args[k].value_two, op_names[r->args[k].op]);
                        sbuf_putc(b, ']');
                }
                sbuf_putc(b, '}');
        }
        sbuf_puts(b, "]}");
}

struct rt_seccomp *seccomp_from_val(yajl_val v, struct err *e)
{
        if (!YAJL_IS_OBJECT(v)) {
                err_set(e, ERR_INVALID, "seccomp profile: not an object");
                return NULL;
        }
        struct rt_seccomp *s = xzalloc(sizeof(*s));
        const char *da = json_get_str(v, "defaultAction");
        int a = parse_action(da);
        if (a < 0) {
                err_set(e, ERR_INVALID, "seccomp profile: bad defaultAction %s", da ? da : "(missing)");
                goto fail;
        }
        s->default_action = a;
        int64_t n = 0;
        if (json_get_int(v, "defaultErrnoRet", &n))
                s->default_errno = (unsigned)n;
        s->architectures = jv_strv(json_get(v, "architectures"));
        yajl_val sys = json_get(v, "syscalls");
        for (size_t i = 0; YAJL_IS_ARRAY(sys) && i < sys->u.array.len; i++) {
                yajl_val o = sys->u.array.values[i];
                const char *an = json_get_str(o, "action");
                a = parse_action(an);
                if (a < 0) {
                        err_set(e, ERR_INVALID, "seccomp profile: syscalls[%zu]: bad action %s", i,
                                an ? an : "(missing)");
                        goto fail;
                }
                unsigned er = 0;
                if (json_get_int(o, "errnoRet", &n))
                        er = (unsigned)n;
                struct rt_seccomp_rule *r = add_rule(s, a, er);
                r->names = jv_strv(json_get(o, "names"));
                if (json_get_str(o, "name"))
                        strv_push(&r->names, json_get_str(o, "name"));
                yajl_val args = json_get(o, "args");
                for (size_t k = 0; YAJL_IS_ARRAY(args) && k < args->u.array.len; k++) {
                        yajl_val ao = args->u.array.values[k];
                        uint64_t idx = 0, val = 0, val2 = 0;
                        (void)jv_u64(json_get(ao, "index"), &idx);
                        (void)jv_u64(json_get(ao, "value"), &val);
                        (void)jv_u64(json_get(ao, "valueTwo"), &val2);
                        const char *on = json_get_str(ao, "op");
                        int op = -1;
                        for (size_t q = 1; on && q < ARRAY_SIZE(op_names); q++)
                                if (strcmp(on, op_names[q]) == 0)
                                        op = (int)q;
                        if (op < 0 || idx > 5) {
                                err_set(e, ERR_INVALID,
                                        "seccomp profile: syscalls[%zu].args[%zu]: bad op %s or index", i, k,
                                        on ? on : "(missing)");
                                goto fail;
                        }
                        add_arg(r, (unsigned)idx, val, val2, op);
                }
        }
        return s;
fail:
        rt_seccomp_free(s);
        return NULL;
}

struct rt_seccomp *rt_seccomp_from_json(const char *buf, size_t len, struct err *e)
{
        yajl_val t = json_parse(buf, len, "seccomp profile", e);
        if (t == NULL)
                return NULL;
        struct rt_seccomp *s = seccomp_from_val(t, e);
        yajl_tree_free(t);
        return s;
}

uint64_t seccomp_hash(const struct rt_seccomp *s)
{
        struct sbuf b = {0};
        const struct scmp_version *v = seccomp_version();
        /* The libseccomp version is part of the key: another version may
         * compile the same profile differently. */
        sbuf_printf(&b, "corral-seccomp-1 %u.%u.%u ", v->major, v->minor, v->micro);
        seccomp_to_json(&b, s);
        uint64_t h = 0xcbf29ce484222325ULL;
        for (size_t i = 0; i < b.len; i++) {
                h ^= (unsigned char)b.buf[i];
                h *= 0x100000001b3ULL;
        }
        sbuf_free(&b);
        return h;
}

/* ---------- compile + cache ---------- */

static uint32_t scmp_action(enum rt_seccomp_action a, unsigned err)
{
        switch (a) {
        case RT_SECCOMP_ALLOW:
                return SCMP_ACT_ALLOW;
        case RT_SECCOMP_ERRNO:
                return SCMP_ACT_ERRNO(err ? err : EPERM);
        case RT_SECCOMP_KILL_THREAD:
                return SCMP_ACT_KILL;
        case RT_SECCOMP_KILL_PROCESS:
                return SCMP_ACT_KILL_PROCESS;
        case RT_SECCOMP_TRAP:
                return SCMP_ACT_TRAP;
        case RT_SECCOMP_TRACE:
                return SCMP_ACT_TRACE(err);
        case RT_SECCOMP_LOG:
                return SCMP_ACT_LOG;
        }
        return SCMP_ACT_KILL;
}

static uint32_t scmp_arch(const char *name)
{
        static const struct {
                const char *n;
                uint32_t a;
        } t[] = {
                {"SCMP_ARCH_X86_64", SCMP_ARCH_X86_64}, {"SCMP_ARCH_X86", SCMP_ARCH_X86},
                {"SCMP_ARCH_X32", SCMP_ARCH_X32},       {"SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64},
                {"SCMP_ARCH_ARM", SCMP_ARCH_ARM},       {"SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE},
                {"SCMP_ARCH_S390X", SCMP_ARCH_S390X},   {"SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64},
        };
        for (size_t i = 0; i < ARRAY_SIZE(t); i++)
                if (strcmp(t[i].n, name) == 0)
                        return t[i].a;
        return 0;
}

static int compile(const struct rt_seccomp *s, void **out, size_t *out_len, struct err *e)
{
        uint32_t def = scmp_action(s->default_action, s->default_errno);
        scmp_filter_ctx ctx = seccomp_init(def);
        int r;
        if (ctx == NULL)
                return err_set(e, ERR_INTERNAL, "seccomp_init failed");
        /* We set no_new_privs ourselves when the spec asks for it. */
        (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
        uint32_t native = seccomp_arch_native();
        for (size_t i = 0; s->architectures && s->architectures[i]; i++) {
                uint32_t a = scmp_arch(s->architectures[i]);
                if (a == 0 || a == native)
                        continue;
                /* Only archs the native kernel can run (x86 on x86_64). */
                if (!((native == SCMP_ARCH_X86_64 && (a == SCMP_ARCH_X86 || a == SCMP_ARCH_X32)) ||
                      (native == SCMP_ARCH_AARCH64 && a == SCMP_ARCH_ARM)))
                        continue;
                r = seccomp_arch_add(ctx, a);
                if (r < 0 && r != -EEXIST) {
                        seccomp_release(ctx);
                        return err_make(e, -r, "seccomp: add arch %s", s->architectures[i]);
                }
        }
        for (size_t i = 0; i < s->n_rules; i++) {
                const struct rt_seccomp_rule *rule = &s->rules[i];
                uint32_t act = scmp_action(rule->action, rule->errno_ret);
                if (act == def)
                        continue; /* libseccomp refuses rules equal to the default */
                struct scmp_arg_cmp cmp[6];
                size_t nc = rule->n_args < 6 ? rule->n_args : 6;
                for (size_t k = 0; k < nc; k++) {
                        cmp[k].arg = rule->args[k].index;
                        cmp[k].op = (enum scmp_compare)rule->args[k].op; /* same numbering as libseccomp */
                        /* MASKED_EQ: (arg & datum_a) == datum_b, as Docker profiles mean it. */
                        cmp[k].datum_a = rule->args[k].value;
                        cmp[k].datum_b = rule->args[k].value_two;
                }
                for (size_t k = 0; rule->names && rule->names[k]; k++) {
                        int nr = seccomp_syscall_resolve_name(rule->names[k]);
                        if (nr == __NR_SCMP_ERROR)
                                continue;
                        r = seccomp_rule_add_array(ctx, act, nr, (unsigned)nc, cmp);
                        if (r < 0 && r != -EEXIST) {
                                seccomp_release(ctx);
                                return err_make(e, -r, "seccomp: rule for %s", rule->names[k]);
                        }
                }
        }
        cleanup_close int fd = memfd_create("corral-seccomp", MFD_CLOEXEC);
        if (fd < 0) {
                seccomp_release(ctx);
                return err_make(e, errno, "memfd_create");
        }
        r = seccomp_export_bpf(ctx, fd);
        seccomp_release(ctx);
        if (r < 0)
                return err_make(e, -r, "seccomp_export_bpf");
        off_t len = lseek(fd, 0, SEEK_END);
        if (len <= 0 || len % sizeof(struct sock_filter))
                return err_set(e, ERR_INTERNAL, "seccomp: exported filter has size %lld", (long long)len);
        char *buf = xmalloc((size_t)len);
        if (pread(fd, buf, (size_t)len, 0) != len) {
                free(buf);
                return err_make(e, errno, "seccomp: read back filter");
        }
        *out = buf;
        *out_len = (size_t)len;
        return 0;
}

struct cache_entry {
        uint64_t hash;
        void *bpf;
        size_t len;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_entry cache[16];
static size_t cache_n;

int rt_seccomp_compile(const struct rt_seccomp *s, void **bpf, size_t *len, struct err *e)
{
        uint64_t h = seccomp_hash(s);
        int ret = 0;

        pthread_mutex_lock(&cache_lock);
        for (size_t i = 0; i < cache_n; i++) {
                if (cache[i].hash == h) {
                        *bpf = xmemdup(cache[i].bpf, cache[i].len);
                        *len = cache[i].len;
                        goto out;
                }
        }
        /* The shim is a fresh process per container: the disk cache is what
         * makes the second container skip libseccomp's compiler. */
        char path[128];
        snprintf(path, sizeof(path), SECCOMP_CACHE_DIR "/%016llx.bpf", (unsigned long long)h);
        char *buf = NULL;
        size_t n = 0;
        if (file_read_all(path, &buf, &n, 1 << 20, NULL) == 0 && n > 0 &&
            n % sizeof(struct sock_filter) == 0) {
                *bpf = buf;
                *len = n;
        } else {
                free(buf);
                ret = compile(s, bpf, len, e);
                if (ret < 0)
                        goto out;
                if (mkdir_p(SECCOMP_CACHE_DIR, 0700, NULL) == 0)
                        (void)file_write_atomic(path, *bpf, *len, 0600, NULL);
        }
        if (cache_n < ARRAY_SIZE(cache)) {
                cache[cache_n].hash = h;
                cache[cache_n].bpf = xmemdup(*bpf, *len);
                cache[cache_n].len = *len;
                cache_n++;
        }
out:
        pthread_mutex_unlock(&cache_lock);
        return ret;
}

int seccomp_install(const void *bpf, size_t len, struct err *e)
{
        struct sock_fprog prog = {
                .len = (unsigned short)(len / sizeof(struct sock_filter)),
                .filter = (struct sock_filter *)bpf,
        };
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0)
                return 0;
        if (errno == ENOSYS && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0)
                return 0;
        return err_make(e, errno, "install seccomp filter");
}
