/* The VM object: configuration, boot with agent handshake, status, stop,
 * cleanup. The VMM-specific parts are behind struct vm_driver_ops. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <x86intrin.h>

#include "vm/vm-internal.h"

static int64_t now_ms(void)
{
        return time_mono_ns() / 1000000;
}

/* ---------- host detection ---------- */

static bool kvm_ok;
static pthread_once_t kvm_once = PTHREAD_ONCE_INIT;

static void detect_kvm(void)
{
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return;
        if (ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION) {
                int vmfd = ioctl(fd, KVM_CREATE_VM, 0);
                if (vmfd >= 0) {
                        kvm_ok = true;
                        close(vmfd);
                }
        }
        close(fd);
}

bool vm_kvm_usable(void)
{
        pthread_once(&kvm_once, detect_kvm);
        return kvm_ok;
}

static unsigned long tsc_khz;
static pthread_once_t tsc_once = PTHREAD_ONCE_INIT;

/* Under TCG the guest TSC ticks at the host's rate; the guest's own
 * calibration sometimes hangs on microvm, so we tell it (tsc_early_khz). */
static void measure_tsc(void)
{
        int64_t t0 = time_mono_ns();
        unsigned long long c0 = __rdtsc();
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
        unsigned long long c1 = __rdtsc();
        int64_t t1 = time_mono_ns();
        if (t1 > t0)
                tsc_khz = (unsigned long)((c1 - c0) * 1000000ull / (unsigned long long)(t1 - t0));
}

unsigned long vm_tsc_khz(void)
{
        pthread_once(&tsc_once, measure_tsc);
        return tsc_khz;
}

char *vm_find_binary(const char *name)
{
        if (strchr(name, '/'))
                return access(name, X_OK) == 0 ? xstrdup(name) : NULL;
        const char *path = getenv("PATH");
        cleanup_free char *copy = xstrdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
        char *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                char *p = path_join(d, name);
                if (access(p, X_OK) == 0)
                        return p;
                free(p);
        }
        return NULL;
}

static const struct vm_driver_ops *driver(enum vm_vmm vmm)
{
        return vmm == VM_VMM_CLOUD_HYPERVISOR ? &vm_chv_ops : &vm_qemu_ops;
}

const char *vm_vmm_unavailable_reason(enum vm_vmm vmm, const char *vmm_path)
{
        return driver(vmm)->unavailable(vmm_path);
}

/* ---------- shares: 9p or virtio-fs ---------- */

/* Rust daemon first (maintained), then the C one QEMU 7 ships. */
static const char *const virtiofsd_paths[] = {"/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd",
                                              "virtiofsd"};

char *vm_virtiofsd_binary(const char *virtiofsd_path)
{
        if (virtiofsd_path && *virtiofsd_path)
                return vm_find_binary(virtiofsd_path);
        for (size_t i = 0; i < ARRAY_SIZE(virtiofsd_paths); i++) {
                char *p = vm_find_binary(virtiofsd_paths[i]);
                if (p)
                        return p;
        }
        return NULL;
}

enum vm_share_type vm_share_resolve(enum vm_vmm vmm, enum vm_share_type share, const char *virtiofsd_path)
{
        if (share != VM_SHARE_AUTO)
                return share;
        if (vmm == VM_VMM_CLOUD_HYPERVISOR)
                return VM_SHARE_VIRTIOFS;
        cleanup_free char *bin = vm_virtiofsd_binary(virtiofsd_path);
        return bin ? VM_SHARE_VIRTIOFS : VM_SHARE_9P;
}

const char *vm_share_unavailable_reason(enum vm_vmm vmm, enum vm_share_type share, const char *virtiofsd_path)
{
        enum vm_share_type t = vm_share_resolve(vmm, share, virtiofsd_path);
        if (t == VM_SHARE_9P)
                return vmm == VM_VMM_CLOUD_HYPERVISOR ? "cloud-hypervisor has no virtio-9p device (use share "
                                                        "\"virtiofs\")"
                                                      : NULL;
        cleanup_free char *bin = vm_virtiofsd_binary(virtiofsd_path);
        if (bin)
                return NULL;
        if (virtiofsd_path && *virtiofsd_path)
                return "virtio-fs: the configured virtiofsd_path is not an executable";
        return "virtio-fs: no virtiofsd (looked for /usr/libexec/virtiofsd, /usr/lib/qemu/virtiofsd and "
               "virtiofsd in PATH; apt-get install qemu-system-common or virtiofsd)";
}

const char *vm_share_fstype(const struct vm *v)
{
        return v->share_type == VM_SHARE_VIRTIOFS ? "virtiofs" : "9p";
}

int vm_mount_share(struct vm *v, const char *tag, bool readonly, int timeout_ms, struct err *e)
{
        if (!v->agent)
                return err_set(e, ERR_PRECONDITION, "vm: not booted");
        return vm_agent_mount_share_fs(v->agent, tag, vm_share_fstype(v), readonly, timeout_ms, e);
}

int vm_shares_start(struct vm *v, int timeout_ms, struct err *e)
{
        if (v->share_type != VM_SHARE_VIRTIOFS)
                return 0;
        for (size_t i = 0; i < v->n_shares; i++) {
                if (vm_virtiofsd_start(v->virtiofsd_bin, v->shares[i].path, &v->shares[i].fsd, timeout_ms,
                                       e) < 0) {
                        vm_shares_stop(v);
                        return err_wrap(e, "share %s", v->shares[i].tag);
                }
        }
        return 0;
}

void vm_shares_stop(struct vm *v)
{
        for (size_t i = 0; i < v->n_shares; i++)
                vm_virtiofsd_stop(&v->shares[i].fsd);
}

uint64_t vm_pid_rss(pid_t pid)
{
        char p[64];
        snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
        cleanup_free char *s = NULL;
        if (file_read_all(p, &s, NULL, 0, NULL) < 0)
                return 0;
        const char *rss = strstr(s, "VmRSS:");
        return rss ? strtoull(rss + 6, NULL, 10) * 1024 : 0;
}

/* ---------- for the drivers ---------- */

char *vm_kernel_cmdline(const struct vm *v)
{
        struct sbuf cl = {0};
        /* The kernel's console is the ISA serial port (built in, so a panic
         * before any module loads is still seen). */
        sbuf_puts(&cl,
                  "console=ttyS0 quiet panic=-1 reboot=t rdinit=/init random.trust_cpu=on 8250.nr_uarts=1");
        unsigned long khz = vm_tsc_khz();
        if (khz)
                sbuf_printf(&cl, " tsc_early_khz=%lu", khz);
        if (v->extra_cmdline && *v->extra_cmdline)
                sbuf_printf(&cl, " %s", v->extra_cmdline);
        return sbuf_steal(&cl);
}

int vm_spawn_process(const char *what, const char *bin, char *const *argv, const char *netns,
                     const char *log_path, pid_t *pid_out, int *pidfd_out, struct err *e)
{
        cleanup_close int nsfd = -1;
        if (netns) {
                nsfd = open(netns, O_RDONLY | O_CLOEXEC);
                if (nsfd < 0)
                        return err_make(e, errno, "%s: open netns %s", what, netns);
        }
        cleanup_close int logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (logfd < 0)
                return err_make(e, errno, "%s: create %s", what, log_path);
        int sync[2];
        if (pipe2(sync, O_CLOEXEC) < 0)
                return err_make(e, errno, "pipe");
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                close(sync[0]);
                close(sync[1]);
                return err_make(e, errno, "%s: fork", what);
        }
        if (pid == 0) {
                /* It goes with its owner (the shim). */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                sigset_t all;
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                setsid();
                int er = 0;
                if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0)
                        er = errno;
                int devnull = open("/dev/null", O_RDWR);
                if (!er && (devnull < 0 || dup2(devnull, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0))
                        er = errno;
                if (!er) {
                        execv(bin, argv);
                        er = errno;
                }
                (void)!write(sync[1], &er, sizeof(er));
                _exit(127);
        }
        close(sync[1]);
        int er = 0;
        ssize_t n = read(sync[0], &er, sizeof(er));
        close(sync[0]);
        if (n == sizeof(er)) {
                waitpid(pid, NULL, 0);
                return err_make(e, er, "%s: start %s%s%s", what, bin, netns ? " in netns " : "",
                                netns ? netns : "");
        }
        *pid_out = pid;
        *pidfd_out = (int)syscall(SYS_pidfd_open, pid, 0);
        return 0;
}

int vm_spawn(struct vm *v, const char *bin, char *const *argv, struct err *e)
{
        return vm_spawn_process(v->ops->name, bin, argv, v->netns, v->vmm_log_path, &v->pid, &v->pidfd, e);
}

/* ---------- life ---------- */

int vm_create(const struct vm_config *c, struct vm **out, struct err *e)
{
        if (!c->state_dir || !*c->state_dir)
                return err_set(e, ERR_INVALID, "vm: state_dir is required");
        if (!c->kernel || access(c->kernel, R_OK) < 0)
                return err_set(e, ERR_NOT_FOUND,
                               "vm: guest kernel %s not found (build it with `make guest-image`)",
                               c->kernel ? c->kernel : "(none)");
        if (!c->initrd || access(c->initrd, R_OK) < 0)
                return err_set(e, ERR_NOT_FOUND,
                               "vm: guest initrd %s not found (build it with `make guest-image`)",
                               c->initrd ? c->initrd : "(none)");
        const struct vm_driver_ops *ops = driver(c->vmm);
        const char *why = ops->unavailable(c->vmm_path);
        if (why)
                return err_set(e, ERR_PRECONDITION, "vm: %s unavailable: %s", ops->name, why);
        why = vm_share_unavailable_reason(c->vmm, c->share, c->virtiofsd_path);
        if (why)
                return err_set(e, ERR_PRECONDITION, "vm: %s: %s", ops->name, why);
        struct vm *v = xzalloc(sizeof(*v));
        v->ops = ops;
        v->vmm = c->vmm;
        v->vmm_path = xstrdup(c->vmm_path && *c->vmm_path ? c->vmm_path : NULL);
        v->kernel = xstrdup(c->kernel);
        v->initrd = xstrdup(c->initrd);
        v->state_dir = xstrdup(c->state_dir);
        v->netns = xstrdup(c->netns);
        v->extra_cmdline = xstrdup(c->extra_cmdline);
        v->cpus = c->cpus ? c->cpus : 1;
        v->memory_mib = c->memory_mib ? c->memory_mib : 256;
        v->agent_timeout_ms = c->agent_timeout_ms ? c->agent_timeout_ms : 30000;
        v->accel = c->accel;
        v->share_type = vm_share_resolve(c->vmm, c->share, c->virtiofsd_path);
        if (v->share_type == VM_SHARE_VIRTIOFS)
                v->virtiofsd_bin = vm_virtiofsd_binary(c->virtiofsd_path);
        v->pidfd = -1;
        struct stat st;
        if (stat(v->state_dir, &st) < 0) {
                if (mkdir_p(v->state_dir, 0700, e) < 0) {
                        vm_free(v);
                        return -1;
                }
                v->made_state_dir = true;
        }
        v->agent_path = path_join(v->state_dir, "agent.sock");
        v->qmp_path = path_join(v->state_dir, "qmp.sock");
        v->console_path = path_join(v->state_dir, "console.log");
        v->vmm_log_path = path_join(v->state_dir, "vmm.log");
        v->api_path = path_join(v->state_dir, "api.sock");
        v->vsock_path = path_join(v->state_dir, "vsock.sock");
        *out = v;
        return 0;
}

int vm_add_share(struct vm *v, const struct vm_share *s, struct err *e)
{
        if (v->state != VM_NEW)
                return err_set(e, ERR_PRECONDITION, "vm: shares are added before boot");
        if (!s->tag || !*s->tag || strlen(s->tag) > 31 || strpbrk(s->tag, "/,= "))
                return err_set(e, ERR_INVALID, "vm: bad share tag %s", s->tag ? s->tag : "(none)");
        struct stat st;
        if (!s->path || stat(s->path, &st) < 0 || !S_ISDIR(st.st_mode))
                return err_set(e, ERR_NOT_FOUND, "vm: share %s: directory %s not found", s->tag,
                               s->path ? s->path : "(none)");
        if (strchr(s->path, ','))
                return err_set(e, ERR_INVALID, "vm: share path %s contains a comma", s->path);
        for (size_t i = 0; i < v->n_shares; i++)
                if (strcmp(v->shares[i].tag, s->tag) == 0)
                        return err_set(e, ERR_EXISTS, "vm: share tag %s already used", s->tag);
        if (v->ops->add_share(v, s, e) < 0)
                return -1;
        v->shares = xrealloc(v->shares, (v->n_shares + 1) * sizeof(*v->shares));
        size_t i = v->n_shares++;
        v->shares[i] = (struct vm_share_rec){xstrdup(s->tag), xstrdup(s->path), s->readonly, {.pidfd = -1}};
        v->shares[i].fsd.socket_path = xasprintf("%s/fs%zu.sock", v->state_dir, i);
        v->shares[i].fsd.log_path = xasprintf("%s/fs%zu.log", v->state_dir, i);
        return 0;
}

int vm_add_net(struct vm *v, const struct vm_net *n, struct err *e)
{
        if (v->state != VM_NEW)
                return err_set(e, ERR_PRECONDITION, "vm: networks are added before boot");
        if (!n->tap || !*n->tap || strlen(n->tap) >= 16 || strchr(n->tap, ','))
                return err_set(e, ERR_INVALID, "vm: bad tap name %s", n->tap ? n->tap : "(none)");
        if (v->ops->add_net(v, n, e) < 0)
                return -1;
        char mac[18];
        if (n->mac) {
                snprintf(mac, sizeof(mac), "%s", n->mac);
        } else {
                /* Locally administered, stable per tap name. */
                uint32_t h = 2166136261u;
                for (const char *p = n->tap; *p; p++)
                        h = (h ^ (uint8_t)*p) * 16777619u;
                snprintf(mac, sizeof(mac), "52:54:00:%02x:%02x:%02x", (h >> 16) & 0xff, (h >> 8) & 0xff,
                         h & 0xff);
        }
        v->nets = xrealloc(v->nets, (v->n_nets + 1) * sizeof(*v->nets));
        v->nets[v->n_nets++] = (struct vm_net_rec){xstrdup(n->tap), xstrdup(mac)};
        return 0;
}

static void remove_files(struct vm *v)
{
        (void)unlink(v->agent_path);
        (void)unlink(v->qmp_path);
        (void)unlink(v->api_path);
        (void)unlink(v->vsock_path);
}

/* A share's daemon gone means the guest's root filesystems are: the VM is
 * dead to us. The VMM is killed so its pidfd wakes the owner, and the
 * reason names the daemon. */
static bool check_virtiofsd(struct vm *v)
{
        if (v->state != VM_RUNNING || v->pid <= 0)
                return false;
        for (size_t i = 0; i < v->n_shares; i++) {
                struct vm_virtiofsd *d = &v->shares[i].fsd;
                if (d->pid <= 0 || !vm_virtiofsd_reap(d))
                        continue;
                int st = d->wait_status;
                free(v->reason);
                v->reason = xasprintf("virtiofsd of share %s %s %d; %s killed", v->shares[i].tag,
                                      WIFSIGNALED(st) ? "killed by signal" : "exited with status",
                                      WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), v->ops->name);
                v->state = VM_DIED;
                (void)kill(v->pid, SIGKILL);
                return true;
        }
        return false;
}

bool vm_reap(struct vm *v)
{
        if (v->pid <= 0)
                return v->state == VM_STOPPED || v->state == VM_DIED;
        /* Killed just now: reap it at once (SIGKILL is not refused). */
        bool killed = check_virtiofsd(v);
        int st;
        pid_t r = waitpid(v->pid, &st, killed ? 0 : WNOHANG);
        if (r == 0)
                return false;
        if (r < 0 && errno != ECHILD)
                return false;
        v->wait_status = r > 0 ? st : 0;
        v->pid = 0;
        if (v->pidfd >= 0)
                close(v->pidfd);
        v->pidfd = -1;
        if (v->state == VM_RUNNING || v->state == VM_NEW) {
                v->state = VM_DIED;
                free(v->reason);
                if (r > 0 && WIFSIGNALED(st))
                        v->reason = xasprintf("%s killed by signal %d (%s)", v->ops->name, WTERMSIG(st),
                                              strsignal(WTERMSIG(st)));
                else if (r > 0)
                        v->reason = xasprintf("%s exited with status %d", v->ops->name, WEXITSTATUS(st));
                else
                        v->reason = xasprintf("%s is gone (not our child)", v->ops->name);
        }
        vm_shares_stop(v);
        remove_files(v);
        return true;
}

static void append_tail(struct sbuf *b, const char *label, const char *path)
{
        cleanup_free char *s = NULL;
        size_t len = 0;
        if (file_read_all(path, &s, &len, 0, NULL) < 0 || len == 0)
                return;
        size_t from = len > 600 ? len - 600 : 0;
        sbuf_printf(b, "; %s: ", label);
        for (size_t i = from; i < len; i++)
                sbuf_putc(b, s[i] == '\n' || s[i] == '\r' ? ' ' : s[i]);
}

char *vm_log_tail(const struct vm *v)
{
        struct sbuf b = {0};
        append_tail(&b, "vmm log", v->vmm_log_path);
        append_tail(&b, "console", v->console_path);
        for (size_t i = 0; v->share_type == VM_SHARE_VIRTIOFS && i < v->n_shares; i++)
                append_tail(&b, "virtiofsd", v->shares[i].fsd.log_path);
        return sbuf_steal(&b);
}

static void kill_and_reap(struct vm *v)
{
        if (v->pid > 0) {
                (void)v->ops->kill(v, NULL);
                (void)waitpid(v->pid, &v->wait_status, 0);
                v->pid = 0;
        }
        if (v->pidfd >= 0)
                close(v->pidfd);
        v->pidfd = -1;
        vm_agent_free(v->agent);
        v->agent = NULL;
        vm_shares_stop(v);
        remove_files(v);
}

/* Set when a KVM boot of our guest did not reach the agent although QEMU
 * ran: some hosts (nested, emulated KVM) create VMs but never get a guest
 * to long mode. Later AUTO boots of this process go straight to TCG. */
static bool kvm_guest_broken;

const char *vm_kvm_broken_reason(void)
{
        return kvm_guest_broken ? "KVM_CREATE_VM works but a KVM guest did not boot; using TCG" : NULL;
}

/* One attempt: start the VMM, connect, ping until `deadline`. On failure
 * everything is killed and removed; *died tells whether the VMM ended. */
static int boot_once(struct vm *v, int64_t deadline, bool *died, struct err *e)
{
        *died = false;
        v->start_ns = time_mono_ns();
        v->accel_used = v->use_kvm ? "kvm" : "tcg";
        (void)unlink(v->console_path);
        if (v->ops->boot(v, e) < 0) {
                kill_and_reap(v);
                return err_wrap(e, "vm boot");
        }
        v->state = VM_RUNNING;
        if (v->ops->connect_agent(v, deadline, e) < 0)
                goto fail_tail;
        /* The agent reads the port only once it is up: ping in short rounds
         * so a VMM that dies meanwhile is noticed; stale answers to earlier
         * pings are dropped by id. */
        for (;;) {
                cleanup_err struct err pe = ERR_INIT;
                int64_t left = deadline - now_ms();
                if (left <= 0) {
                        err_set(e, ERR_DEADLINE, "vm: agent did not answer within %lld ms (%s); %s killed",
                                (long long)((time_mono_ns() - v->start_ns) / 1000000), v->accel_used,
                                v->ops->name);
                        goto fail_tail;
                }
                if (vm_agent_ping(v->agent, left < 500 ? (int)left : 500, NULL, &pe) == 0)
                        break;
                /* A reset connection usually means the VMM is on its way out. */
                for (int i = 0; !err_is(&pe, ERR_DEADLINE) && i < 100 && !vm_reap(v); i++) {
                        struct timespec ts = {0, 10 * 1000000};
                        nanosleep(&ts, NULL);
                }
                if (vm_reap(v)) {
                        *died = true;
                        err_set(e, ERR_UNAVAILABLE, "vm: %s during boot", v->reason);
                        goto fail_tail;
                }
                if (!err_is(&pe, ERR_DEADLINE)) {
                        err_move(e, &pe);
                        err_wrap(e, "vm: agent handshake failed; %s killed", v->ops->name);
                        goto fail;
                }
        }
        v->boot_ms = (uint64_t)((time_mono_ns() - v->start_ns) / 1000000);
        return 0;
fail_tail : {
        /* The VMM's and the guest's last words say why. */
        cleanup_free char *tail = vm_log_tail(v);
        if (e && e->msg && *tail) {
                char *m = xasprintf("%s%s", e->msg, tail);
                free(e->msg);
                e->msg = m;
        }
}
fail:
        if (v->state == VM_DIED)
                *died = true;
        kill_and_reap(v);
        v->state = VM_STOPPED;
        return -1;
}

/* A KVM guest reaches the agent in well under a second; far longer means
 * the host's KVM does not really run guests. */
#define KVM_PROBE_MS 5000

int vm_boot(struct vm *v, struct err *e)
{
        if (v->state != VM_NEW)
                return err_set(e, ERR_PRECONDITION, "vm: already booted");
        int64_t deadline = now_ms() + v->agent_timeout_ms;
        if (v->accel == VM_ACCEL_KVM && !vm_kvm_usable())
                return err_set(e, ERR_PRECONDITION, "vm: KVM asked for but /dev/kvm is not usable");
        bool died;
        if (v->accel == VM_ACCEL_KVM || (v->accel == VM_ACCEL_AUTO && vm_kvm_usable() && !kvm_guest_broken)) {
                v->use_kvm = true;
                if (v->accel == VM_ACCEL_KVM)
                        return boot_once(v, deadline, &died, e);
                cleanup_err struct err ke = ERR_INIT;
                int64_t probe = now_ms() + KVM_PROBE_MS;
                if (boot_once(v, probe < deadline ? probe : deadline, &died, &ke) == 0)
                        return 0;
                if (!(died || err_is(&ke, ERR_DEADLINE)) || now_ms() >= deadline) {
                        err_move(e, &ke);
                        return -1;
                }
                log_debug("vm", "kvm boot did not reach the agent, falling back to tcg: %s", ke.msg);
                kvm_guest_broken = true;
                v->state = VM_NEW;
        }
        v->use_kvm = false;
        return boot_once(v, deadline, &died, e);
}

struct vm_agent *vm_agent(struct vm *v)
{
        return v->agent;
}

int vm_kill(struct vm *v, struct err *e)
{
        (void)e;
        if (v->state == VM_RUNNING)
                v->state = VM_STOPPED;
        kill_and_reap(v);
        return 0;
}

static bool wait_exit(struct vm *v, int64_t deadline)
{
        while (!vm_reap(v)) {
                if (now_ms() >= deadline)
                        return false;
                struct timespec ts = {0, 10 * 1000000};
                nanosleep(&ts, NULL);
        }
        return true;
}

int vm_shutdown(struct vm *v, int timeout_ms, struct err *e)
{
        if (v->state != VM_RUNNING) {
                kill_and_reap(v);
                return 0;
        }
        int64_t deadline = now_ms() + timeout_ms;
        /* Marked first so the exit is not reported as a death. */
        v->state = VM_STOPPED;
        cleanup_err struct err se = ERR_INIT;
        if (v->agent && vm_agent_shutdown(v->agent, timeout_ms / 2, &se) == 0 &&
            wait_exit(v, now_ms() + timeout_ms / 2))
                goto done;
        int64_t left = deadline - now_ms();
        if (left > 0 && v->pid > 0 && v->ops->shutdown(v, (int)left, NULL) == 0 && wait_exit(v, deadline))
                goto done;
        if (v->pid > 0)
                log_debug("vm", "shutdown timed out, killing pid=%d", (int)v->pid);
done:
        kill_and_reap(v);
        (void)e;
        return 0;
}

void vm_status(struct vm *v, struct vm_status *out)
{
        if (v->pid > 0)
                (void)vm_reap(v);
        out->state = v->state;
        out->wait_status = v->wait_status;
        out->reason = v->reason;
}

pid_t vm_pid(const struct vm *v)
{
        return v->pid;
}
int vm_pidfd(const struct vm *v)
{
        return v->pidfd;
}
const char *vm_accel_used(const struct vm *v)
{
        return v->accel_used;
}
const char *vm_console_log(const struct vm *v)
{
        return v->console_path;
}

int vm_stats(struct vm *v, struct vm_stats *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        if (v->state != VM_RUNNING || vm_reap(v))
                return err_set(e, ERR_PRECONDITION, "vm: not running%s%s", v->reason ? ": " : "",
                               v->reason ? v->reason : "");
        out->pid = v->pid;
        out->boot_ms = v->boot_ms;
        out->rss_bytes = vm_pid_rss(v->pid);
        if (out->rss_bytes == 0)
                return err_set(e, ERR_UNAVAILABLE, "vm: no VmRSS for %s pid %d", v->ops->name, (int)v->pid);
        for (size_t i = 0; i < v->n_shares; i++) {
                if (v->shares[i].fsd.pid > 0) {
                        out->n_virtiofsd++;
                        out->virtiofsd_rss_bytes += vm_pid_rss(v->shares[i].fsd.pid);
                }
        }
        return v->ops->stats(v, out, e);
}

void vm_free(struct vm *v)
{
        if (!v)
                return;
        kill_and_reap(v);
        (void)unlink(v->console_path);
        (void)unlink(v->vmm_log_path);
        for (size_t i = 0; i < v->n_shares; i++)
                (void)unlink(v->shares[i].fsd.log_path);
        if (v->made_state_dir)
                (void)rmdir(v->state_dir);
        for (size_t i = 0; i < v->n_shares; i++) {
                free(v->shares[i].tag);
                free(v->shares[i].path);
                free(v->shares[i].fsd.socket_path);
                free(v->shares[i].fsd.log_path);
        }
        for (size_t i = 0; i < v->n_nets; i++) {
                free(v->nets[i].tap);
                free(v->nets[i].mac);
        }
        free(v->shares);
        free(v->nets);
        free(v->vmm_path);
        free(v->kernel);
        free(v->initrd);
        free(v->state_dir);
        free(v->netns);
        free(v->extra_cmdline);
        free(v->agent_path);
        free(v->qmp_path);
        free(v->console_path);
        free(v->vmm_log_path);
        free(v->api_path);
        free(v->vsock_path);
        free(v->virtiofsd_bin);
        free(v->reason);
        free(v);
}
