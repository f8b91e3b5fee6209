/* The per-VM shim's host side of a container's files: the container's
 * spec, as corrald built it for a namespace container, is turned into the
 * guest's view. Everything the guest needs from the host goes under one
 * directory, <vm state>/share/<id>, inside the VM's single 9p share:
 *   rootfs   the snapshot's overlay, mounted here on the host
 *   m<N>     each bind mount's source (pod files, volumes), bound here
 *   m<N>.<K> each mount below that source on the host, bound on its own
 * The guest spec names them relative to the share (root.path) or under
 * /run/corral/shares/<tag>/ (mount sources). Namespaces that a namespace
 * pod joins (the pinned net, ipc, uts) are the guest's own: the VM is the
 * pod; a shared PID namespace is the guest's pod init (VM_GUEST_POD_PIDNS). Each mount made is listed for the
 * undo, which detaches them before removing only what was created here (never a recursive delete across a
 * mount). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "runtime/runtime.h"
#include "shim/vm-internal.h"
#include "vm/vm.h"

#define GUEST_SHARES "/run/corral/shares"

static int mount_rootfs(const struct rt_spec *s, const char *target, struct err *e)
{
        if (mkdir(target, 0755) < 0 && errno != EEXIST)
                return err_make(e, errno, "mkdir %s", target);
        size_t n = strv_len(s->root.lowerdirs);
        if (n == 0 || (n == 1 && !s->root.upperdir)) {
                /* A complete directory (or a single read-only layer): bind it. */
                const char *src = n ? s->root.lowerdirs[0] : s->root.path;
                if (!src || mount(src, target, NULL, MS_BIND | MS_REC, NULL) < 0)
                        return err_make(e, src ? errno : EINVAL, "bind rootfs %s on %s", src ? src : "(none)",
                                        target);
                return 0;
        }
        return mount_overlay(s->root.lowerdirs, s->root.upperdir, s->root.workdir, false, target, e);
}

static void push_mount(struct vm_ctr_files *f, const char *path)
{
        strv_push(&f->mounts, path);
}

/* Bind `src` (a file or a directory) on a new <dir>/<name>; `rec` takes
 * the mounts below it along. */
static int bind_source(struct vm_ctr_files *f, const char *src, const char *name, bool rec, char **guest,
                       struct err *e)
{
        struct stat st;
        if (stat(src, &st) < 0)
                return err_make(e, errno, "mount source %s", src);
        cleanup_free char *target = path_join(f->dir, name);
        if (S_ISDIR(st.st_mode)) {
                if (mkdir(target, 0755) < 0 && errno != EEXIST)
                        return err_make(e, errno, "mkdir %s", target);
        } else {
                int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                if (fd < 0)
                        return err_make(e, errno, "create %s", target);
                close(fd);
        }
        if (mount(src, target, NULL, MS_BIND | (rec ? MS_REC : 0), NULL) < 0)
                return err_make(e, errno, "bind %s on %s", src, target);
        push_mount(f, target);
        *guest = xasprintf("%s/%s/%s/%s", GUEST_SHARES, f->tag, f->id, name);
        return 0;
}

/* ---------- mounts below a volume ---------- */

/* A volume's source is bound into the share without the mounts below it,
 * each of which is bound on its own and mounted in the guest where it is on
 * the host: the guest then has the host's mount tree (a readonly volume
 * keeps a writable tmpfs below it writable, as in a namespace container),
 * and no mount of ours sits on a directory of the volume (whose owner could
 * not remove a submount point while the pod runs: EBUSY). */
#define SUBMOUNTS_MAX 64

struct submount {
        char *path; /* on the host */
        bool ro;
};

/* The mount points strictly below `dir` (mountinfo order: a parent before
 * its children), none under `skip` (our share). -1: more than
 * SUBMOUNTS_MAX, or one whose path mountinfo escapes. */
static ssize_t list_submounts(const char *dir, const char *skip, struct submount *out)
{
        cleanup_free char *buf = NULL;
        if (file_read_all("/proc/self/mountinfo", &buf, NULL, 0, NULL) < 0)
                return 0;
        size_t dl = strlen(dir), sl = strlen(skip), n = 0;
        bool fits = true;
        for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                char mp[4096], opts[256];
                if (sscanf(line, "%*s %*s %*s %*s %4095s %255s", mp, opts) != 2)
                        continue;
                if (strncmp(mp, dir, dl) != 0 || mp[dl] != '/' ||
                    (strncmp(mp, skip, sl) == 0 && mp[sl] == '/'))
                        continue;
                if (strchr(mp, '\\') || n == SUBMOUNTS_MAX) {
                        fits = false;
                        break;
                }
                out[n].path = xstrdup(mp);
                out[n].ro = strncmp(opts, "ro", 2) == 0 && (opts[2] == ',' || opts[2] == '\0');
                n++;
        }
        if (!fits) {
                for (size_t i = 0; i < n; i++)
                        free(out[i].path);
                return -1;
        }
        return (ssize_t)n;
}

static bool has_opt(char **opts, const char *o)
{
        for (; opts && *opts; opts++)
                if (strcmp(*opts, o) == 0)
                        return true;
        return false;
}

/* Bind volume i (`m`) into the share, its submounts each on their own;
 * those go to `extra` as guest mounts, to come after every spec mount. */
static int bind_volume(struct vm_ctr_files *f, struct rt_mount *m, size_t i, struct rt_mount **extra,
                       size_t *n_extra, struct err *e)
{
        cleanup_free char *name = xasprintf("m%zu", i);
        cleanup_free char *real = realpath(m->source, NULL);
        cleanup_free char *share = xstrdup(f->dir);
        *strrchr(share, '/') = '\0';
        struct submount subs[SUBMOUNTS_MAX];
        ssize_t ns = real ? list_submounts(real, share, subs) : 0;
        if (ns < 0)
                log_warn("vmshim",
                         "container %s: volume %s: too many mounts below it to mirror in the guest; "
                         "taken along in one",
                         f->id, m->source);
        char *guest = NULL;
        if (bind_source(f, m->source, name, ns < 0, &guest, e) < 0)
                goto fail;
        /* A recursive read-only volume makes everything below it read-only too. */
        bool all_ro = has_opt(m->options, "rro");
        for (ssize_t k = 0; k < ns; k++) {
                cleanup_free char *sub = xasprintf("%s.%zd", name, k);
                char *sguest = NULL;
                if (bind_source(f, subs[k].path, sub, false, &sguest, e) < 0) {
                        free(guest);
                        goto fail;
                }
                *extra = xrealloc(*extra, (*n_extra + 1) * sizeof(**extra));
                struct rt_mount *x = &(*extra)[(*n_extra)++];
                x->destination = path_join(m->destination, subs[k].path + strlen(real));
                x->type = xstrdup("bind");
                x->source = sguest;
                x->options = NULL;
                strv_push(&x->options, "rbind");
                strv_push(&x->options, all_ro || subs[k].ro ? "ro" : "rw");
                strv_push(&x->options, "rprivate");
        }
        free(m->source);
        m->source = guest;
        for (ssize_t k = 0; k < ns; k++)
                free(subs[k].path);
        return 0;
fail:
        for (ssize_t k = 0; k < ns; k++)
                free(subs[k].path);
        return -1;
}

static bool is_bind(const struct rt_mount *m)
{
        if (m->type && strcmp(m->type, "bind") == 0)
                return true;
        for (char **o = m->options; o && *o; o++)
                if (strcmp(*o, "bind") == 0 || strcmp(*o, "rbind") == 0)
                        return true;
        return false;
}

static void set_shm_tmpfs(struct rt_mount *m)
{
        free(m->type);
        free(m->source);
        strv_free(m->options);
        m->type = xstrdup("tmpfs");
        m->source = xstrdup("shm");
        m->options = NULL;
        strv_push(&m->options, "nosuid");
        strv_push(&m->options, "noexec");
        strv_push(&m->options, "nodev");
        strv_push(&m->options, "mode=1777");
        strv_push(&m->options, "size=65536k");
}

int vm_ctr_files_prepare(struct vm_ctr_files *f, struct rt_spec *s, struct err *e)
{
        if (mkdir(f->dir, 0755) < 0 && errno != EEXIST)
                return err_make(e, errno, "mkdir %s", f->dir);
        cleanup_free char *rootfs = path_join(f->dir, "rootfs");
        if (mount_rootfs(s, rootfs, e) < 0)
                return -1;
        push_mount(f, rootfs);
        free(s->root.path);
        s->root.path = xasprintf("%s/rootfs", f->id);
        strv_free(s->root.lowerdirs);
        s->root.lowerdirs = NULL;
        free(s->root.upperdir);
        free(s->root.workdir);
        s->root.upperdir = s->root.workdir = NULL;

        struct rt_mount *extra = NULL;
        size_t n_extra = 0;
        int r = 0;
        for (size_t i = 0; i < s->n_mounts && r == 0; i++) {
                struct rt_mount *m = &s->mounts[i];
                if (!is_bind(m) || !m->source || m->source[0] != '/' || !m->destination)
                        continue;
                if (strcmp(m->destination, "/dev/shm") == 0) {
                        /* The pod's shm tmpfs lives on the host: the guest makes its own. */
                        set_shm_tmpfs(m);
                        continue;
                }
                if (bind_volume(f, m, i, &extra, &n_extra, e) < 0)
                        r = err_wrap(e, "mount %s", m->destination);
        }
        if (n_extra) {
                s->mounts = xrealloc(s->mounts, (s->n_mounts + n_extra) * sizeof(*s->mounts));
                memcpy(s->mounts + s->n_mounts, extra, n_extra * sizeof(*extra));
                s->n_mounts += n_extra;
        }
        free(extra);
        if (r < 0)
                return -1;

        /* The guest is the pod: its network, IPC and UTS namespaces are the
         * pod's (the host paths joined by namespace pods do not exist there). */
        static const int guest_own[] = {RT_NS_NET, RT_NS_IPC, RT_NS_UTS};
        for (size_t i = 0; i < ARRAY_SIZE(guest_own); i++) {
                struct rt_namespace *ns = &s->namespaces[guest_own[i]];
                if (ns->mode == RT_NS_JOIN) {
                        ns->mode = RT_NS_HOST;
                        free(ns->path);
                        ns->path = NULL;
                }
        }
        if (s->namespaces[RT_NS_UTS].mode == RT_NS_HOST) {
                free(s->hostname); /* set for the whole guest by SetupNetwork */
                s->hostname = NULL;
        }
        if (s->namespaces[RT_NS_PID].mode == RT_NS_JOIN &&
            strcmp(s->namespaces[RT_NS_PID].path, VM_GUEST_POD_PIDNS) != 0) {
                /* A host path (a record from before the guest had a pod init):
                 * nothing the guest can join. */
                s->namespaces[RT_NS_PID].mode = RT_NS_NEW;
                free(s->namespaces[RT_NS_PID].path);
                s->namespaces[RT_NS_PID].path = NULL;
        }
        /* Namespaced sysctls need namespaces of their own; the guest's are the pod's. */
        for (size_t i = 0; i < s->n_sysctls; i++) {
                free(s->sysctls[i].key);
                free(s->sysctls[i].value);
        }
        free(s->sysctls);
        s->sysctls = NULL;
        s->n_sysctls = 0;
        /* The host's cgroup path (maybe systemd syntax) means nothing in the
         * guest: one cgroup per container under /corral there. */
        if (s->cgroup_path) {
                free(s->cgroup_path);
                s->cgroup_path = xasprintf("/corral/%s", f->id);
        }
        return 0;
}

void vm_ctr_files_undo(struct vm_ctr_files *f)
{
        size_t n = strv_len(f->mounts);
        bool clean = true;
        for (size_t i = n; i-- > 0;) {
                if (umount2(f->mounts[i], MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) {
                        log_warn("vmshim", "unmount %s: %s", f->mounts[i], strerror(errno));
                        clean = false;
                        continue;
                }
                /* Only the mount point we made: a file or an empty directory. */
                if (rmdir(f->mounts[i]) < 0 && errno == ENOTDIR)
                        (void)unlink(f->mounts[i]);
        }
        strv_free(f->mounts);
        f->mounts = NULL;
        if (clean)
                (void)rmdir(f->dir);
}
