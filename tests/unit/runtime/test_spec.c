/* runtime: spec JSON round trip, validation, systemd cgroup paths, seccomp
 * profiles. No root needed. */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "runtime/runtime-internal.h"

static int failures;
#define CHECK(cond, ...)                                                                                     \
        do {                                                                                                 \
                if (!(cond)) {                                                                               \
                        failures++;                                                                          \
                        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                      \
                        fprintf(stderr, __VA_ARGS__);                                                        \
                        fputc('\n', stderr);                                                                 \
                }                                                                                            \
        } while (0)

static struct rt_spec *sample(void)
{
        struct rt_spec *s = rt_spec_new();
        s->id = xstrdup("abc");
        s->root.path = xstrdup("/var/lib/corral/rootfs/abc");
        strv_push(&s->root.lowerdirs, "/l1");
        strv_push(&s->root.lowerdirs, "/l2");
        s->root.upperdir = xstrdup("/u");
        s->root.workdir = xstrdup("/w");
        s->readonly_rootfs = true;
        s->n_mounts = 1;
        s->mounts = xcalloc(1, sizeof(struct rt_mount));
        s->mounts[0].destination = xstrdup("/data");
        s->mounts[0].type = xstrdup("bind");
        s->mounts[0].source = xstrdup("/srv/data \"quoted\"");
        strv_push(&s->mounts[0].options, "rbind");
        strv_push(&s->mounts[0].options, "rslave");
        s->n_devices = 1;
        s->devices = xcalloc(1, sizeof(struct rt_device));
        s->devices[0] = (struct rt_device){xstrdup("/dev/fuse"), 'c', 10, 229, 0666, 0, 0, NULL};
        strv_push(&s->process.args, "/bin/sh");
        strv_push(&s->process.args, "-c");
        strv_push(&s->process.args, "echo hi\n\t");
        strv_push(&s->process.env, "PATH=/bin");
        s->process.cwd = xstrdup("/");
        s->process.uid = 1000;
        s->process.gid = 1000;
        s->process.additional_gids = xcalloc(2, sizeof(uint32_t));
        s->process.additional_gids[0] = 10;
        s->process.additional_gids[1] = 20;
        s->process.n_additional_gids = 2;
        s->process.username = xstrdup("app");
        s->process.no_new_privs = true;
        strv_push(&s->process.caps.bounding, "CAP_CHOWN");
        strv_push(&s->process.caps.effective, "CAP_CHOWN");
        s->process.rlimits = xcalloc(1, sizeof(struct rt_rlimit));
        s->process.rlimits[0] = (struct rt_rlimit){RLIMIT_NOFILE, 1024, RLIM_INFINITY};
        s->process.n_rlimits = 1;
        s->process.has_oom_score_adj = true;
        s->process.oom_score_adj = -998;
        s->seccomp = rt_seccomp_default_profile(&s->process.caps);
        s->namespaces[RT_NS_NET] = (struct rt_namespace){RT_NS_JOIN, xstrdup("/run/corral/ns/p/net")};
        s->namespaces[RT_NS_PID].mode = RT_NS_NEW;
        s->namespaces[RT_NS_IPC].mode = RT_NS_NEW;
        s->namespaces[RT_NS_UTS].mode = RT_NS_NEW;
        s->hostname = xstrdup("pod");
        s->n_sysctls = 1;
        s->sysctls = xcalloc(1, sizeof(struct rt_kv));
        s->sysctls[0] = (struct rt_kv){xstrdup("net.ipv4.ip_forward"), xstrdup("1")};
        strv_push(&s->masked_paths, "/proc/kcore");
        strv_push(&s->readonly_paths, "/proc/sys");
        s->cgroup_path = xstrdup("kubepods-besteffort-pod1.slice:cri-corral:abc");
        s->resources.cpu_shares = 512;
        s->resources.cpu_quota = 50000;
        s->resources.cpu_period = 100000;
        s->resources.memory_limit = 64 << 20;
        s->resources.pids_limit = -1;
        s->resources.cpuset_cpus = xstrdup("0-1");
        return s;
}

static void test_json_roundtrip(void)
{
        struct rt_spec *s = sample();
        char *j1 = rt_spec_to_json(s);
        struct err e = ERR_INIT;
        struct rt_spec *s2 = rt_spec_from_json(j1, strlen(j1), &e);
        CHECK(s2 != NULL, "%s", e.msg);
        if (s2) {
                char *j2 = rt_spec_to_json(s2);
                CHECK(strcmp(j1, j2) == 0, "round trip differs:\n%s\n%s", j1, j2);
                CHECK(s2->process.rlimits[0].hard == RLIM_INFINITY, "rlimit infinity kept");
                CHECK(s2->process.oom_score_adj == -998 && s2->process.has_oom_score_adj, "oom adj");
                CHECK(strcmp(s2->process.args[2], "echo hi\n\t") == 0, "escapes");
                CHECK(s2->namespaces[RT_NS_NET].mode == RT_NS_JOIN, "ns join");
                CHECK(s2->seccomp && s2->seccomp->n_rules == s->seccomp->n_rules, "seccomp rules");
                CHECK(seccomp_hash(s2->seccomp) == seccomp_hash(s->seccomp), "seccomp hash stable");
                free(j2);
        }
        free(j1);
        rt_spec_free(s);
        rt_spec_free(s2);
        err_clear(&e);

        struct rt_spec *bad = rt_spec_from_json("{\"version\":2}", 13, &e);
        CHECK(bad == NULL && err_is(&e, ERR_INVALID), "version 2 refused");
        err_clear(&e);
        bad = rt_spec_from_json("{", 1, &e);
        CHECK(bad == NULL && err_is(&e, ERR_INVALID), "bad json refused");
        err_clear(&e);
}

/* A CRI env value is bytes: what is not UTF-8 must survive spec.json,
 * which yajl would refuse as a JSON string. */
static void test_json_env_bytes(void)
{
        struct rt_spec *s = sample();
        strv_push(&s->process.env, "X=\xff\xfe");
        strv_push(&s->process.env, "Y=caf\xc3\xa9");
        strv_push(&s->process.env, "Z=\x80");
        char *j1 = rt_spec_to_json(s);
        CHECK(strstr(j1, "\"Y=caf\xc3\xa9\"") != NULL, "UTF-8 stays a plain string: %s", j1);
        struct err e = ERR_INIT;
        struct rt_spec *s2 = rt_spec_from_json(j1, strlen(j1), &e);
        CHECK(s2 != NULL, "%s", e.msg);
        if (s2) {
                CHECK(strv_len(s2->process.env) == 4, "env count %zu", strv_len(s2->process.env));
                for (size_t i = 0; i < 4 && i < strv_len(s2->process.env); i++)
                        CHECK(strcmp(s2->process.env[i], s->process.env[i]) == 0, "env[%zu] %s", i,
                              s2->process.env[i]);
                char *j2 = rt_spec_to_json(s2);
                CHECK(strcmp(j1, j2) == 0, "round trip differs:\n%s\n%s", j1, j2);
                free(j2);
        }
        free(j1);
        rt_spec_free(s);
        rt_spec_free(s2);
        err_clear(&e);

        const char *bad = "{\"version\":1,\"process\":{\"env\":[{\"base64\":\"QT0AYg==\"}]}}"; /* A=\0b */
        s2 = rt_spec_from_json(bad, strlen(bad), &e);
        CHECK(s2 == NULL && err_is(&e, ERR_INVALID) && strstr(e.msg, "env"), "NUL in env refused: %s", e.msg);
        rt_spec_free(s2);
        err_clear(&e);
}

static void test_validate(void)
{
        struct err e = ERR_INIT;
        struct rt_spec *s = sample();
        s->namespaces[RT_NS_NET].mode = RT_NS_NEW;
        CHECK(rt_spec_validate(s, &e) == 0, "%s", e.msg);
        err_clear(&e);

        s->sysctls[0].key[0] = 'k'; /* "ket.ipv4..." */
        free(s->sysctls[0].key);
        s->sysctls[0].key = xstrdup("kernel.panic");
        CHECK(rt_spec_validate(s, &e) < 0 && err_is(&e, ERR_INVALID) && strstr(e.msg, "kernel.panic"),
              "non-namespaced sysctl refused: %s", e.msg);
        err_clear(&e);
        free(s->sysctls[0].key);
        s->sysctls[0].key = xstrdup("kernel.shmmax");
        CHECK(rt_spec_validate(s, &e) == 0, "ipc sysctl ok: %s", e.msg);
        err_clear(&e);
        s->namespaces[RT_NS_IPC].mode = RT_NS_HOST;
        CHECK(rt_spec_validate(s, &e) < 0 && strstr(e.msg, "ipc"), "ipc sysctl with host ipc refused: %s",
              e.msg);
        err_clear(&e);
        s->namespaces[RT_NS_IPC].mode = RT_NS_NEW;

        free(s->mounts[0].destination);
        s->mounts[0].destination = xstrdup("/a/../../etc");
        CHECK(rt_spec_validate(s, &e) < 0, "dotdot destination refused");
        err_clear(&e);
        free(s->mounts[0].destination);
        s->mounts[0].destination = xstrdup("/data..x");
        CHECK(rt_spec_validate(s, &e) == 0, "dots inside a name are fine: %s", e.msg);
        err_clear(&e);

        strv_push(&s->process.caps.bounding, "CAP_NOPE");
        CHECK(rt_spec_validate(s, &e) < 0 && strstr(e.msg, "CAP_NOPE"), "unknown cap refused");
        err_clear(&e);
        rt_spec_free(s);
}

static void test_systemd_paths(void)
{
        struct err e = ERR_INIT;
        char *p = NULL;
        CHECK(rt_cgroup_resolve("kubepods-burstable-pod1.slice:cri-corral:abc", &p, &e) == 0, "%s", e.msg);
        CHECK(p && strcmp(p, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/"
                             "cri-corral-abc.scope") == 0,
              "got %s", p);
        free(p);
        CHECK(rt_cgroup_resolve("kubepods.slice:cri-corral:kubepods-pod2.slice", &p, &e) == 0, "%s", e.msg);
        CHECK(p && strcmp(p, "/kubepods.slice/kubepods-pod2.slice") == 0, "got %s", p);
        free(p);
        CHECK(rt_cgroup_resolve("-.slice:x:y", &p, &e) == 0 && strcmp(p, "/x-y.scope") == 0, "root slice");
        free(p);
        /* A bare slice name (the pod slice corral picks under the systemd
         * driver) is where systemd puts that slice, not a top-level directory. */
        CHECK(rt_cgroup_resolve("corral-pod1.slice", &p, &e) == 0 &&
                      strcmp(p, "/corral.slice/corral-pod1.slice") == 0,
              "bare slice: %s", p);
        free(p);
        CHECK(rt_cgroup_resolve("/top.slice", &p, &e) == 0 && strcmp(p, "/top.slice") == 0,
              "a path stays: %s", p);
        free(p);
        CHECK(rt_cgroup_resolve("kubepods/burstable/pod1/abc", &p, &e) == 0 &&
                      strcmp(p, "/kubepods/burstable/pod1/abc") == 0,
              "plain");
        free(p);
        CHECK(rt_cgroup_resolve("bad/slice.slice:x:y", &p, &e) < 0 && err_is(&e, ERR_INVALID), "bad slice");
        err_clear(&e);
        CHECK(rt_cgroup_resolve("/a/../../b", &p, &e) < 0, "dotdot");
        err_clear(&e);
}

static void test_seccomp(void)
{
        struct err e = ERR_INIT;
        const char *j =
                "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":[\"SCMP_ARCH_X86_64\"],"
                "\"syscalls\":[{\"names\":[\"read\",\"write\",\"no_such_call\"],\"action\":\"SCMP_ACT_"
                "ALLOW\"},"
                "{\"name\":\"personality\",\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":8,"
                "\"op\":\"SCMP_CMP_EQ\"}]}]}";
        struct rt_seccomp *s = rt_seccomp_from_json(j, strlen(j), &e);
        CHECK(s && s->n_rules == 2 && s->rules[1].n_args == 1, "parse: %s", e.msg);
        void *bpf = NULL;
        size_t len = 0;
        CHECK(s && rt_seccomp_compile(s, &bpf, &len, &e) == 0 && len > 0, "compile: %s", e.msg);
        free(bpf);
        rt_seccomp_free(s);
        err_clear(&e);
        s = rt_seccomp_from_json("{\"defaultAction\":\"SCMP_ACT_NOPE\"}", 33, &e);
        CHECK(s == NULL && err_is(&e, ERR_INVALID) && strstr(e.msg, "SCMP_ACT_NOPE"), "bad action: %s",
              e.msg);
        err_clear(&e);

        s = rt_seccomp_default_profile(NULL);
        int64_t t0 = time_mono_ns();
        CHECK(rt_seccomp_compile(s, &bpf, &len, &e) == 0, "default compiles: %s", e.msg);
        int64_t t1 = time_mono_ns();
        free(bpf);
        CHECK(rt_seccomp_compile(s, &bpf, &len, &e) == 0, "cached");
        int64_t t2 = time_mono_ns();
        printf("seccomp default profile: %zu BPF instructions, compile %.2f ms, cached %.3f ms\n", len / 8,
               (t1 - t0) / 1e6, (t2 - t1) / 1e6);
        free(bpf);
        rt_seccomp_free(s);
}

static void test_caps(void)
{
        CHECK(caps_parse("CAP_SYS_ADMIN") == 21, "name");
        CHECK(caps_parse("sys_admin") == 21, "short name");
        CHECK(caps_parse("21") == 21, "number");
        CHECK(caps_parse("CAP_NOPE") < 0, "unknown");
}

int main(void)
{
        test_json_roundtrip();
        test_json_env_bytes();
        test_validate();
        test_systemd_paths();
        test_seccomp();
        test_caps();
        char *f = rt_host_features_string();
        printf("host: %s\n", f);
        free(f);
        if (failures) {
                fprintf(stderr, "%d failure(s)\n", failures);
                return 1;
        }
        printf("ok\n");
        return 0;
}
