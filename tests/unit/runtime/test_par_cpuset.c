/* cgroup v1 cpuset: a pod's and a container's cpuset are filled by the
 * kernel at mkdir (cgroup.clone_children on the parent) once corral has
 * copied cpus/mems into the first one; every write of cpuset.cpus rebuilt
 * the scheduler domains under the global cpuset lock. Root and a v1
 * cpuset hierarchy only. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "../check.h"
#include "runtime/runtime.h"

#define CPUSET "/sys/fs/cgroup/cpuset"

static char *read_file(const char *dir, const char *name)
{
        cleanup_free char *p = path_join(dir, name);
        char *s = NULL;
        size_t n;
        if (file_read_all(p, &s, &n, 4096, NULL) < 0)
                return xstrdup("");
        s[strcspn(s, "\n")] = '\0';
        return s;
}

int main(void)
{
        if (geteuid() != 0)
                SKIP("needs root (cgroups)");
        if (rt_cgroup_mode() == RT_CGROUP_V2_UNIFIED)
                SKIP("cgroup v2 host: no v1 cpuset");
        struct stat st;
        if (stat(CPUSET "/cpuset.cpus", &st) < 0)
                SKIP("no v1 cpuset hierarchy at %s", CPUSET);
        cleanup_free char *top = xasprintf("/corral-par-cpuset-%d", (int)getpid());
        cleanup_free char *pod = xasprintf("%s/pod", top);
        cleanup_free char *c1 = xasprintf("%s/pod/c1", top);
        cleanup_free char *c2 = xasprintf("%s/pod/c2", top);
        struct rt_resources r = {0};
        cleanup_err struct err e = ERR_INIT;
        CHECK(rt_cgroup_create(c1, &r, &e) == 0);
        cleanup_free char *root_clone = read_file(CPUSET, "cgroup.clone_children");
        cleanup_free char *pod_dir = path_join(CPUSET, pod);
        cleanup_free char *top_dir = path_join(CPUSET, top);
        cleanup_free char *pod_clone = read_file(pod_dir, "cgroup.clone_children");
        cleanup_free char *top_clone = read_file(top_dir, "cgroup.clone_children");
        /* The pod's next containers inherit; the host's root is left alone. */
        CHECK_STR(pod_clone, "1");
        CHECK_STR(top_clone, "1");
        CHECK_STR(root_clone, "0");
        /* A second container, made by mkdir alone, has the pod's cpus. */
        cleanup_free char *c2_dir = path_join(CPUSET, c2);
        CHECK(mkdir(c2_dir, 0755) == 0);
        cleanup_free char *c2_cpus = read_file(c2_dir, "cpuset.cpus");
        cleanup_free char *pod_cpus = read_file(pod_dir, "cpuset.cpus");
        CHECK(c2_cpus[0] != '\0');
        CHECK_STR(c2_cpus, pod_cpus);
        CHECK(rt_cgroup_create(c2, &r, &e) == 0);
        CHECK(rt_cgroup_remove(c1, 2000, &e) == 0);
        CHECK(rt_cgroup_remove(c2, 2000, &e) == 0);
        CHECK(rt_cgroup_remove(pod, 2000, &e) == 0);
        CHECK(rt_cgroup_remove(top, 2000, &e) == 0);
        return check_report("test_runtime_par_cpuset");
}
