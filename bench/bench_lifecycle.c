/* critest-style lifecycle benchmark over CRI: RunPodSandbox, CreateContainer,
 * StartContainer, StopContainer, RemoveContainer, StopPodSandbox,
 * RemovePodSandbox, N samples, median and p90 of each step. Then M pods with
 * one running container each, to measure memory per pod (the caller reads
 * RSS while they run: -p holds them until stdin closes). Works against any
 * CRI runtime (corral or containerd). -H names a runtime handler (a VM pod:
 * "vm"); -F makes the container print a line first and adds a step, "first
 * log line", timed from RunPodSandbox until that line is in the CRI log:
 * the start time a user sees. "pod start" is Run + Create + Start of one
 * sample. -P N starts N pods at once (one thread each, as kubelet's pod
 * workers do) and N one at a time, and prints pods per second of both. */
#include <getopt.h>
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"

enum { RUN, CREATE, START, FIRSTLOG, STOP, REMOVE, STOPP, REMOVEP, PODSTART, NSTEPS };
static const char *const step_names[NSTEPS] = {
        "RunPodSandbox",  "CreateContainer",  "StartContainer",
        "first log line", "StopContainer",    "RemoveContainer",
        "StopPodSandbox", "RemovePodSandbox", "pod start (Run+Create+Start)"};

static const char *image = "busybox";
static const char *logdir = "/tmp/corral-bench-logs";
static const char *handler = "";
static bool first_line; /* -F */

#define READY_LINE "corral-bench-ready"

/* Until the container's CRI log holds READY_LINE (polled: the log is
 * written by the runtime, not us), or 120 s. */
static bool wait_log_line(const char *path)
{
        for (int i = 0; i < 120000; i++) {
                cleanup_free char *text = NULL;
                if (file_read_all(path, &text, NULL, 1 << 20, NULL) == 0 && strstr(text, READY_LINE))
                        return true;
                nanosleep(&(struct timespec){0, 1000000}, NULL);
        }
        return false;
}

struct pod {
        char *pod_id;
        char *ctr_id;
};

static Runtime__V1__PodSandboxConfig *pod_config(const char *name, Runtime__V1__PodSandboxConfig *cfg,
                                                 Runtime__V1__PodSandboxMetadata *md)
{
        runtime__v1__pod_sandbox_config__init(cfg);
        runtime__v1__pod_sandbox_metadata__init(md);
        md->name = (char *)name;
        md->uid = (char *)name;
        md->namespace_ = "bench";
        cfg->metadata = md;
        cfg->hostname = (char *)name;
        cfg->log_directory = (char *)logdir;
        return cfg;
}

/* Runs one pod with one container; times[] gets the first three steps. */
static int up(const char *name, struct pod *p, int64_t *times)
{
        Runtime__V1__PodSandboxMetadata md;
        Runtime__V1__PodSandboxConfig pcs;
        Runtime__V1__PodSandboxConfig *pc = pod_config(name, &pcs, &md);
        Runtime__V1__RunPodSandboxRequest rr = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
        rr.config = pc;
        rr.runtime_handler = (char *)handler;
        int64_t t0 = time_mono_ns(), t_run = t0;
        ProtobufCMessage *m =
                call("RunPodSandbox", &rr.base, &runtime__v1__run_pod_sandbox_response__descriptor);
        if (times)
                times[RUN] = time_mono_ns() - t0;
        if (m == NULL)
                return -1;
        p->pod_id = xstrdup(((Runtime__V1__RunPodSandboxResponse *)m)->pod_sandbox_id);
        protobuf_c_message_free_unpacked(m, NULL);

        Runtime__V1__CreateContainerRequest cr = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
        Runtime__V1__ContainerConfig cc = RUNTIME__V1__CONTAINER_CONFIG__INIT;
        Runtime__V1__ContainerMetadata cm = RUNTIME__V1__CONTAINER_METADATA__INIT;
        Runtime__V1__ImageSpec is = RUNTIME__V1__IMAGE_SPEC__INIT;
        char *cmd[] = {"sleep", "3600"};
        char *cmd_ready[] = {"sh", "-c", "echo " READY_LINE "; exec sleep 3600"};
        cm.name = "c";
        cc.metadata = &cm;
        is.image = (char *)image;
        cc.image = &is;
        cc.command = first_line ? cmd_ready : cmd;
        cc.n_command = first_line ? 3 : 2;
        cleanup_free char *log = xasprintf("%s.log", name);
        cc.log_path = log;
        cr.pod_sandbox_id = p->pod_id;
        cr.config = &cc;
        cr.sandbox_config = pc;
        t0 = time_mono_ns();
        m = call("CreateContainer", &cr.base, &runtime__v1__create_container_response__descriptor);
        if (times)
                times[CREATE] = time_mono_ns() - t0;
        if (m == NULL)
                return -1;
        p->ctr_id = xstrdup(((Runtime__V1__CreateContainerResponse *)m)->container_id);
        protobuf_c_message_free_unpacked(m, NULL);

        Runtime__V1__StartContainerRequest sr = RUNTIME__V1__START_CONTAINER_REQUEST__INIT;
        sr.container_id = p->ctr_id;
        t0 = time_mono_ns();
        m = call("StartContainer", &sr.base, &runtime__v1__start_container_response__descriptor);
        if (times)
                times[START] = time_mono_ns() - t0;
        if (m == NULL)
                return -1;
        protobuf_c_message_free_unpacked(m, NULL);
        if (first_line) {
                cleanup_free char *path = path_join(logdir, log);
                if (!wait_log_line(path)) {
                        fprintf(stderr, "%s: no \"%s\" in %s after 120 s\n", name, READY_LINE, path);
                        failures++;
                        return -1;
                }
                if (times)
                        times[FIRSTLOG] = time_mono_ns() - t_run;
        }
        return 0;
}

static void down(struct pod *p, int64_t *times)
{
        ProtobufCMessage *m;
        int64_t t0;
        if (p->ctr_id) {
                Runtime__V1__StopContainerRequest st = RUNTIME__V1__STOP_CONTAINER_REQUEST__INIT;
                st.container_id = p->ctr_id;
                st.timeout = 0;
                t0 = time_mono_ns();
                m = call("StopContainer", &st.base, &runtime__v1__stop_container_response__descriptor);
                if (times)
                        times[STOP] = time_mono_ns() - t0;
                if (m)
                        protobuf_c_message_free_unpacked(m, NULL);
                Runtime__V1__RemoveContainerRequest rm = RUNTIME__V1__REMOVE_CONTAINER_REQUEST__INIT;
                rm.container_id = p->ctr_id;
                t0 = time_mono_ns();
                m = call("RemoveContainer", &rm.base, &runtime__v1__remove_container_response__descriptor);
                if (times)
                        times[REMOVE] = time_mono_ns() - t0;
                if (m)
                        protobuf_c_message_free_unpacked(m, NULL);
        }
        if (p->pod_id) {
                Runtime__V1__StopPodSandboxRequest sp = RUNTIME__V1__STOP_POD_SANDBOX_REQUEST__INIT;
                sp.pod_sandbox_id = p->pod_id;
                t0 = time_mono_ns();
                m = call("StopPodSandbox", &sp.base, &runtime__v1__stop_pod_sandbox_response__descriptor);
                if (times)
                        times[STOPP] = time_mono_ns() - t0;
                if (m)
                        protobuf_c_message_free_unpacked(m, NULL);
                Runtime__V1__RemovePodSandboxRequest rp = RUNTIME__V1__REMOVE_POD_SANDBOX_REQUEST__INIT;
                rp.pod_sandbox_id = p->pod_id;
                t0 = time_mono_ns();
                m = call("RemovePodSandbox", &rp.base, &runtime__v1__remove_pod_sandbox_response__descriptor);
                if (times)
                        times[REMOVEP] = time_mono_ns() - t0;
                if (m)
                        protobuf_c_message_free_unpacked(m, NULL);
        }
        free(p->pod_id);
        free(p->ctr_id);
        memset(p, 0, sizeof(*p));
}

struct par {
        char name[64];
        struct pod p;
        int r;
        int64_t times[NSTEPS];
};

static void *par_up(void *arg)
{
        struct par *q = arg;
        memset(q->times, 0, sizeof(q->times));
        q->r = up(q->name, &q->p, q->times);
        return NULL;
}

/* User + system time of this process (all its threads). */
static int64_t cpu_self_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Busy and total jiffies of the whole host (/proc/stat's first line). */
static void host_jiffies(int64_t *busy, int64_t *total)
{
        long long v[10] = {0};
        FILE *f = fopen("/proc/stat", "r");
        if (f == NULL || fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1],
                                &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) < 5) {
                if (f)
                        fclose(f);
                *busy = *total = 0;
                return;
        }
        fclose(f);
        *total = 0;
        for (int i = 0; i < 8; i++) /* guest time is already counted in user */
                *total += v[i];
        *busy = *total - v[3] - v[4]; /* idle, iowait */
}

/* Waits (up to 3 s) until the host is idle: the kernel finishes a removed
 * pod's network namespace, cgroups and mounts in its own workers after the
 * calls return, and that work must not be billed to the next burst. One
 * at a time it would run on the idle core; ten at once it would compete. */
static void settle(void)
{
        for (int i = 0; i < 30; i++) {
                int64_t b0, t0, b1, t1;
                host_jiffies(&b0, &t0);
                usleep(100000);
                host_jiffies(&b1, &t1);
                if (t1 <= t0 || (double)(b1 - b0) / (double)(t1 - t0) < 0.05)
                        return;
        }
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

/* What this machine gives a CPU-bound job: n processes of ~15 ms of ALU
 * work each, one at a time and then all at once; the ratio of the two
 * times. Measured in the same rounds as the pods: two virtual CPUs are not
 * always two CPUs' worth (a host's other guests), and a pod start is
 * mostly CPU. */
static double cpu_job_ratio(int n)
{
        double t[2];
        for (int mode = 0; mode < 2; mode++) {
                int64_t t0 = time_mono_ns();
                for (int i = 0; i < n; i++) {
                        pid_t p = fork();
                        if (p == 0) {
                                volatile uint64_t x = 0;
                                for (uint64_t k = 0; k < 40000000; k++)
                                        x += k * k;
                                _exit(x == 1 ? 1 : 0); /* read: clang warns of a sum never used */
                        }
                        if (mode == 0 && p > 0)
                                waitpid(p, NULL, 0);
                }
                if (mode == 1)
                        while (wait(NULL) > 0)
                                ;
                t[mode] = (double)(time_mono_ns() - t0);
        }
        return t[0] / t[1];
}

/* -m 0 or 1: only that way (to profile one of them); -1: both, in turn. */
static int only_mode = -1;

/* N pods one at a time, then N at once, `rounds` times in turn (one burst
 * of 10 pods lasts a fraction of a second, so one round is mostly noise):
 * the median pods per second of each. */
static void parallel(const char *label, int n, int rounds)
{
        struct par *q = xcalloc((size_t)n, sizeof(*q));
        pthread_t *th = xcalloc((size_t)n, sizeof(*th));
        double *rate[2] = {xcalloc((size_t)rounds, sizeof(double)), xcalloc((size_t)rounds, sizeof(double))};
        double *ratio = xcalloc((size_t)rounds, sizeof(double));
        double *cpu_ratio = xcalloc((size_t)rounds, sizeof(double));
        /* Each step's time per pod, both ways: which step waits when ten run at once. */
        int64_t *steps[2][3];
        for (int m = 0; m < 2; m++)
                for (int k = 0; k < 3; k++)
                        steps[m][k] = xcalloc((size_t)(rounds * n), sizeof(int64_t));
        double client[2] = {0, 0};
        int64_t hbusy[2] = {0, 0}, htotal[2] = {0, 0};
        settle();
        for (int r = 0; r < rounds; r++) {
                for (int mode = 0; mode < 2; mode++) {
                        if (only_mode >= 0 && mode != only_mode) {
                                rate[mode][r] = 1; /* not measured */
                                continue;
                        }
                        for (int i = 0; i < n; i++)
                                snprintf(q[i].name, sizeof(q[i].name), "par-%d-%d-%d-%d", (int)getpid(), r,
                                         mode, i);
                        int64_t c0 = cpu_self_ns(), hb0, ht0, hb1, ht1;
                        host_jiffies(&hb0, &ht0);
                        int64_t t0 = time_mono_ns();
                        for (int i = 0; i < n; i++) {
                                if (mode == 0)
                                        par_up(&q[i]);
                                else if (pthread_create(&th[i], NULL, par_up, &q[i]) != 0)
                                        q[i].r = -1;
                        }
                        if (mode == 1)
                                for (int i = 0; i < n; i++)
                                        pthread_join(th[i], NULL);
                        double sec = (double)(time_mono_ns() - t0) / 1e9;
                        host_jiffies(&hb1, &ht1);
                        hbusy[mode] += hb1 - hb0;
                        htotal[mode] += ht1 - ht0;
                        rate[mode][r] = n / sec;
                        for (int i = 0; i < n; i++)
                                for (int k = 0; k < 3; k++)
                                        steps[mode][k][r * n + i] = q[i].times[RUN + k];
                        client[mode] += (double)(cpu_self_ns() - c0) / 1e9 / sec / rounds;
                        for (int i = 0; i < n; i++)
                                down(&q[i].p, NULL);
                        settle();
                }
                ratio[r] = rate[1][r] / rate[0][r];
                cpu_ratio[r] = cpu_job_ratio(n);
        }
        printf("  %d pods (Run+Create+Start), each way %d times in turn; rounds' ratios:", n, rounds);
        for (int r = 0; r < rounds; r++)
                printf(" %.2f", ratio[r]);
        printf("\n");
        qsort(rate[0], (size_t)rounds, sizeof(double), cmp_double);
        qsort(rate[1], (size_t)rounds, sizeof(double), cmp_double);
        qsort(ratio, (size_t)rounds, sizeof(double), cmp_double);
        printf("  %d pods, medians: one at a time %.1f pods/s, %d in parallel %.1f pods/s (%.2fx; median of "
               "the rounds' ratios %.2fx)\n",
               n, rate[0][rounds / 2], n, rate[1][rounds / 2], rate[1][rounds / 2] / rate[0][rounds / 2],
               ratio[rounds / 2]);
        printf("  each step's median, one at a time -> %d in parallel (ms):", n);
        for (int k = 0; k < 3; k++) {
                qsort(steps[0][k], (size_t)(rounds * n), sizeof(int64_t), cmp64);
                qsort(steps[1][k], (size_t)(rounds * n), sizeof(int64_t), cmp64);
                printf(" %s %.1f -> %.1f", step_names[RUN + k], (double)steps[0][k][rounds * n / 2] / 1e6,
                       (double)steps[1][k][rounds * n / 2] / 1e6);
                free(steps[0][k]);
                free(steps[1][k]);
        }
        printf("\n");
        /* The client must not be what limits the parallel case. */
        printf("  this client's own CPU meanwhile: %.0f%% of one core one at a time, %.0f%% in parallel\n",
               100 * client[0], 100 * client[1]);
        qsort(cpu_ratio, (size_t)rounds, sizeof(double), cmp_double);
        printf("  the same for a CPU-bound job on this machine (%d processes of ALU work, same rounds): "
               "median "
               "%.2fx\n",
               n, cpu_ratio[rounds / 2]);
        free(cpu_ratio);
        /* Whether the parallel case is short of CPU or waits on something. */
        printf("  host CPU busy meanwhile (all processes, %ld CPUs): %.0f%% one at a time, %.0f%% in "
               "parallel\n",
               sysconf(_SC_NPROCESSORS_ONLN), htotal[0] ? 100.0 * (double)hbusy[0] / (double)htotal[0] : 0,
               htotal[1] ? 100.0 * (double)hbusy[1] / (double)htotal[1] : 0);
        (void)label;
        free(rate[0]);
        free(rate[1]);
        free(ratio);
        free(q);
        free(th);
}

int main(int argc, char **argv)
{
        const char *endpoint = "unix:///run/corral/corral.sock", *label = "runtime";
        int samples = 30, pods = 0, npar = 0, rounds = 5, c;
        while ((c = getopt(argc, argv, "r:i:n:p:P:R:l:L:H:Fm:")) != -1) {
                switch (c) {
                case 'r':
                        endpoint = optarg;
                        break;
                case 'i':
                        image = optarg;
                        break;
                case 'n':
                        samples = atoi(optarg);
                        break;
                case 'p':
                        pods = atoi(optarg);
                        break;
                case 'P':
                        npar = atoi(optarg);
                        break;
                case 'R':
                        rounds = atoi(optarg);
                        break;
                case 'l':
                        label = optarg;
                        break;
                case 'L':
                        logdir = optarg;
                        break;
                case 'H':
                        handler = optarg;
                        break;
                case 'F':
                        first_line = true;
                        break;
                case 'm':
                        only_mode = atoi(optarg);
                        break;
                default:
                        fprintf(stderr, "usage: bench_lifecycle [-r endpoint] [-i image] [-n samples] [-p "
                                        "pods] [-P parallel] [-R rounds] "
                                        "[-l label] [-L logdir] [-H handler] [-F] [-m 0|1]\n");
                        return 2;
                }
        }
        cleanup_err struct err e = ERR_INIT;
        if (cri_client_new(endpoint, &C, &e) < 0) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
        }
        (void)mkdir_p(logdir, 0755, &e);
        Runtime__V1__PullImageRequest pr = RUNTIME__V1__PULL_IMAGE_REQUEST__INIT;
        Runtime__V1__ImageSpec is = RUNTIME__V1__IMAGE_SPEC__INIT;
        is.image = (char *)image;
        pr.image = &is;
        ProtobufCMessage *m = call("PullImage", &pr.base, &runtime__v1__pull_image_response__descriptor);
        if (m == NULL)
                return 1;
        protobuf_c_message_free_unpacked(m, NULL);

        if (samples > 0) {
                int64_t *t[NSTEPS];
                for (int s = 0; s < NSTEPS; s++)
                        t[s] = xcalloc((size_t)samples, sizeof(int64_t));
                int done = 0;
                for (int i = 0; i < samples; i++) {
                        char name[64];
                        snprintf(name, sizeof(name), "bench-%d-%d", (int)getpid(), i);
                        struct pod p = {0};
                        int64_t times[NSTEPS] = {0};
                        int r = up(name, &p, times);
                        down(&p, times);
                        if (r < 0)
                                continue;
                        times[PODSTART] = times[RUN] + times[CREATE] + times[START];
                        for (int s = 0; s < NSTEPS; s++)
                                t[s][done] = times[s];
                        done++;
                }
                printf("%s lifecycle, %d samples (ms):\n", label, done);
                for (int s = 0; s < NSTEPS && done > 0; s++) {
                        if (s == FIRSTLOG && !first_line) {
                                free(t[s]);
                                continue;
                        }
                        qsort(t[s], (size_t)done, sizeof(int64_t), cmp64);
                        printf("  %-18s median %7.2f  p90 %7.2f\n", step_names[s],
                               (double)t[s][done / 2] / 1e6, (double)t[s][done * 9 / 10] / 1e6);
                        free(t[s]);
                }
        }
        if (npar > 0)
                parallel(label, npar, rounds > 0 ? rounds : 1);
        if (pods > 0) {
                struct pod *ps = xcalloc((size_t)pods, sizeof(*ps));
                int up_ok = 0;
                for (int i = 0; i < pods; i++) {
                        char name[64];
                        snprintf(name, sizeof(name), "mem-%d-%d", (int)getpid(), i);
                        if (up(name, &ps[i], NULL) == 0)
                                up_ok++;
                }
                printf("%s: %d pods running; press Enter (or close stdin) to tear down\n", label, up_ok);
                fflush(stdout);
                char buf[16];
                (void)!fgets(buf, sizeof(buf), stdin);
                for (int i = 0; i < pods; i++)
                        down(&ps[i], NULL);
                free(ps);
        }
        cri_client_free(C);
        if (failures)
                fprintf(stderr, "%s: %d calls failed\n", label, (int)failures);
        return failures ? 1 : 0;
}
