/* bench_vm: boot a corral guest N times and print VMM start -> agent ready,
 * an exec round trip, the VMM's RSS and shutdown time.
 *   bench_vm --kernel K --initrd I [--accel auto|kvm|tcg] [-n N] [--memory MiB] */
#include <getopt.h>
#include <string.h>

#include "util/util.h"
#include "vm/vm.h"

int main(int argc, char **argv)
{
        const char *kernel = NULL, *initrd = NULL, *accel = "auto";
        int n = 3, mem = 256, timeout = 60000;
        static const struct option opts[] = {{"kernel", 1, 0, 'k'},     {"initrd", 1, 0, 'i'},
                                             {"accel", 1, 0, 'a'},      {"memory", 1, 0, 'm'},
                                             {"timeout-ms", 1, 0, 't'}, {0, 0, 0, 0}};
        int c;
        while ((c = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
                switch (c) {
                case 'k':
                        kernel = optarg;
                        break;
                case 'i':
                        initrd = optarg;
                        break;
                case 'a':
                        accel = optarg;
                        break;
                case 'm':
                        mem = atoi(optarg);
                        break;
                case 'n':
                        n = atoi(optarg);
                        break;
                case 't':
                        timeout = atoi(optarg);
                        break;
                default:
                        return 2;
                }
        }
        if (!kernel || !initrd) {
                fprintf(stderr, "usage: bench_vm --kernel K --initrd I [--accel auto|kvm|tcg] [-n N]\n");
                return 2;
        }
        enum vm_accel acc = !strcmp(accel, "kvm")   ? VM_ACCEL_KVM
                            : !strcmp(accel, "tcg") ? VM_ACCEL_TCG
                                                    : VM_ACCEL_AUTO;
        char dir[] = "/tmp/cvb-XXXXXX";
        if (!mkdtemp(dir))
                return 1;
        char *state = path_join(dir, "s");
        double sum_boot = 0, sum_exec = 0, sum_rss = 0;
        int ok = 0;
        for (int i = 0; i < n; i++) {
                struct vm_config cfg = {.kernel = kernel,
                                        .initrd = initrd,
                                        .memory_mib = (uint32_t)mem,
                                        .agent_timeout_ms = (uint32_t)timeout,
                                        .state_dir = state,
                                        .accel = acc};
                struct vm *v = NULL;
                struct err e = ERR_INIT;
                int64_t t0 = time_mono_ns();
                if (vm_create(&cfg, &v, &e) < 0 || vm_boot(v, &e) < 0) {
                        fprintf(stderr, "bench_vm: %s\n", e.msg);
                        err_clear(&e);
                        vm_free(v);
                        break;
                }
                double boot = (double)(time_mono_ns() - t0) / 1e6;
                char *args[] = {"/init", "--version-does-not-exist", NULL};
                int code;
                int64_t t1 = time_mono_ns();
                (void)vm_agent_exec(vm_agent(v), NULL, args, 10000, NULL, NULL, &code, NULL);
                double ex = (double)(time_mono_ns() - t1) / 1e6;
                struct vm_stats st;
                (void)vm_stats(v, &st, NULL);
                int64_t t2 = time_mono_ns();
                (void)vm_shutdown(v, 10000, NULL);
                double down = (double)(time_mono_ns() - t2) / 1e6;
                printf("vm boot %d (%s): agent ready %.0f ms, exec round trip %.1f ms, qemu RSS %llu KiB, "
                       "shutdown %.0f ms\n",
                       i + 1, vm_accel_used(v), boot, ex, (unsigned long long)st.rss_bytes / 1024, down);
                fflush(stdout);
                sum_boot += boot;
                sum_exec += ex;
                sum_rss += (double)st.rss_bytes / 1024;
                ok++;
                vm_free(v);
        }
        if (ok)
                printf("vm (%s) mean of %d: agent ready %.0f ms, exec %.1f ms, qemu RSS %.0f KiB\n", accel,
                       ok, sum_boot / ok, sum_exec / ok, sum_rss / ok);
        rmdir(dir);
        free(state);
        return ok == n ? 0 : 1;
}
