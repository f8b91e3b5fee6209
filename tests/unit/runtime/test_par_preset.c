/* rt_cgroup_v1_preset: a process given its parent's cgroup v1 table (the
 * shim, from corrald) uses it and reads no /proc/self/mountinfo: a table
 * naming plain directories makes rt_cgroup_create work in them. */
#include <string.h>
#include <sys/stat.h>

#include "../check.h"
#include "runtime/runtime.h"

int main(void)
{
        if (rt_cgroup_mode() == RT_CGROUP_V2_UNIFIED)
                SKIP("cgroup v2 host: the v1 table is not used");
        char tmpl[] = "/tmp/corral-par-preset.XXXXXX";
        char *tmp = mkdtemp(tmpl);
        if (tmp == NULL)
                return 1;
        cleanup_free char *layout = xasprintf("%s/pids ,pids,\n%s/named ,name=test,\n", tmp, tmp);
        rt_cgroup_v1_preset(layout);
        cleanup_free char *back = rt_cgroup_v1_layout();
        CHECK_STR(back, layout);
        cleanup_err struct err e = ERR_INIT;
        CHECK(rt_cgroup_create("/pod/ctr", NULL, &e) == 0);
        cleanup_free char *d1 = xasprintf("%s/pids/pod/ctr", tmp);
        cleanup_free char *d2 = xasprintf("%s/named/pod/ctr", tmp);
        struct stat st;
        CHECK(stat(d1, &st) == 0 && S_ISDIR(st.st_mode));
        CHECK(stat(d2, &st) == 0 && S_ISDIR(st.st_mode));
        (void)rm_rf(tmp, NULL);
        return check_report("test_runtime_par_preset");
}
