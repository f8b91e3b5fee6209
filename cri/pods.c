/* RuntimeService pod sandboxes: RunPodSandbox, StopPodSandbox,
 * RemovePodSandbox, UpdatePodSandboxResources (PodSandboxStatus,
 * ListPodSandbox and StreamPodSandboxes are in pod_status.c).
 *
 * No pause container: a pod is its pinned namespaces (net, ipc, uts under
 * <state>/ns/<id>), its CNI attachment, hostPort rules, the files its
 * containers bind-mount (hostname, hosts, resolv.conf under
 * <state>/pods/<id>), and, for a shared PID namespace, a tiny init. The
 * record is written CREATING first so that a crash half-way is undone on
 * the next start.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <yajl/yajl_tree.h>

#include "config/config.h"
#include "cri/cri-internal.h"
#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "net/net.h"
#include "runtime/runtime.h"
#include "store/store.h"

/* ---------- RunPodSandbox runs in flight ---------- */

struct cri_inflight {
        char *key;
        struct cri_inflight *next;
};

static bool inflight_has(struct cri_sandboxes *s, const char *key)
{
        for (struct cri_inflight *r = s->runs; r; r = r->next)
                if (strcmp(r->key, key) == 0)
                        return true;
        return false;
}

static void inflight_remove(struct cri_sandboxes *s, const char *key)
{
        for (struct cri_inflight **pp = &s->runs; *pp; pp = &(*pp)->next) {
                if (strcmp((*pp)->key, key) == 0) {
                        struct cri_inflight *r = *pp;
                        *pp = r->next;
                        free(r->key);
                        free(r);
                        return;
                }
        }
}

static char **strv_of(char **a, size_t n)
{
        if (n == 0)
                return NULL;
        char **v = xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
                v[i] = xstrdup(a[i]);
        return v;
}

static Runtime__V1__NamespaceOption *ns_options(const Runtime__V1__PodSandboxConfig *cfg)
{
        const Runtime__V1__LinuxPodSandboxConfig *lx = cfg ? cfg->linux : NULL;
        return lx && lx->security_context ? lx->security_context->namespace_options : NULL;
}

/* A pod cgroup corral chose (no cgroup_parent given) is corral's to remove;
 * kubelet's own pod cgroups are kubelet's. */
static void release_cgroup(struct cri_daemon *d, const struct store_pod *p, const struct cri_pod_extra *x)
{
        (void)d;
        if ((p->cgroup_parent && *p->cgroup_parent) || x->cgroup == NULL)
                return;
        cleanup_err struct err e = ERR_INIT;
        if (rt_cgroup_remove(x->cgroup, 2000, &e) < 0)
                log_warn("pod", "remove cgroup %s of pod %s: %s", x->cgroup, p->id, e.msg);
}

static char *pod_cidr(struct cri_daemon *d)
{
        char *v = NULL;
        (void)store_meta_get(d->store, "pod_cidr", &v, NULL);
        return v;
}

static void fill_cni_args(struct net_cni_args *a, const struct store_pod *p, const char *netns)
{
        memset(a, 0, sizeof(*a));
        a->pod_id = p->id;
        a->netns = netns;
        a->k8s_namespace = p->namespace;
        a->k8s_name = p->name;
        a->k8s_uid = p->uid;
}

static bool dir_is_empty(const char *path)
{
        cleanup_dir DIR *d = opendir(path);
        if (d == NULL)
                return false;
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        return false;
        return true;
}

static void shm_unmount(const struct cri_pod_extra *x)
{
        if (x->pod_dir == NULL)
                return;
        cleanup_free char *shm = path_join(x->pod_dir, "shm");
        (void)umount2(shm, MNT_DETACH);
}

/* Undo whatever a pod holds, in reverse order of creation. Every step is
 * idempotent, so this serves a failed RunPodSandbox, StopPodSandbox, and
 * repair after a crash alike. Returns the first error (kubelet retries). */
static int teardown(struct cri_daemon *d, const struct store_pod *p, struct cri_pod_extra *x, struct err *e)
{
        int ret = 0;
        cleanup_err struct err e2 = ERR_INIT;
        int64_t t[5];
        t[0] = time_mono_ns();
        if (cri_handler_of_pod(x)->sandbox_stop(d, p, x, &e2) < 0) {
                /* Keep going: the network and namespaces still go; kubelet retries the rest. */
                ret = err_set(e, e2.kind, "stop pod %s: %s", p->id, e2.msg);
                err_clear(&e2);
        }
        t[1] = time_mono_ns();
        if (net_hostport_del(NULL, p->id, &e2) < 0) {
                ret = err_set(e, e2.kind, "remove hostPorts of pod %s: %s", p->id, e2.msg);
                err_clear(&e2);
        }
        t[2] = time_mono_ns();
        if (x->net_setup) {
                cleanup_free char *netns = path_join(x->ns_dir, "net");
                struct net_cni_args a;
                fill_cni_args(&a, p, net_ns_is_pinned(netns) ? netns : NULL);
                a.defer_link_delete = true; /* RemovePodSandbox waits for it */
                if (net_cni_del(d->cni, &a, &e2) < 0) {
                        if (ret == 0)
                                ret = err_set(e, e2.kind, "CNI DEL for pod %s: %s", p->id, e2.msg);
                        err_clear(&e2);
                } else {
                        x->net_setup = false;
                }
        }
        t[3] = time_mono_ns();
        if (x->ns_dir && net_ns_unpin(x->ns_dir, &e2) < 0) {
                if (ret == 0)
                        ret = err_set(e, e2.kind, "unpin namespaces of pod %s: %s", p->id, e2.msg);
                err_clear(&e2);
        }
        t[4] = time_mono_ns();
        log_debug("pod", "teardown id=%s ms: sandbox=%.3f hostport=%.3f cni_del=%.3f unpin=%.3f", p->id,
                  (double)(t[1] - t[0]) / 1e6, (double)(t[2] - t[1]) / 1e6, (double)(t[3] - t[2]) / 1e6,
                  (double)(t[4] - t[3]) / 1e6);
        return ret;
}

/* ---------- RunPodSandbox ---------- */

static int create_pod(struct cri_daemon *d, const struct cfg_runtime *rt,
                      const Runtime__V1__RunPodSandboxRequest *rq, char *id_out, struct err *e)
{
        const Runtime__V1__PodSandboxConfig *cfg = rq->config;
        const Runtime__V1__PodSandboxMetadata *md = cfg->metadata;
        const Runtime__V1__NamespaceOption *nso = ns_options(cfg);
        const Runtime__V1__LinuxPodSandboxConfig *lx = cfg->linux;
        struct store_pod p = {0};
        struct cri_pod_extra x = {0};
        struct net_ns_paths nsp = {0};
        struct net_cni_result res = {0};
        char **ips = NULL, **dns_servers = NULL, **dns_searches = NULL, **dns_options = NULL;
        cleanup_free char *hostname = NULL;
        int ret = -1;

        id_generate(p.id);
        p.name = md->name;
        p.uid = md->uid;
        p.namespace = md->namespace_;
        p.attempt = md->attempt;
        p.state = STORE_POD_CREATING;
        p.created_ns = time_now_ns();
        p.runtime_handler = rq->runtime_handler;
        p.labels_json = cri_map_to_json(cfg->n_labels, (void *const *)cfg->labels);
        p.annotations_json = cri_map_to_json(cfg->n_annotations, (void *const *)cfg->annotations);
        p.cgroup_parent = lx && lx->cgroup_parent ? lx->cgroup_parent : "";
        p.config_len = protobuf_c_message_get_packed_size(&cfg->base);
        p.config = xmalloc(p.config_len ? p.config_len : 1);
        protobuf_c_message_pack(&cfg->base, p.config);

        x.ns_dir = xasprintf("%s/ns/%s", d->cfg->state, p.id);
        x.pod_dir = xasprintf("%s/pods/%s", d->cfg->state, p.id);
        x.host_net = nso && nso->network == RUNTIME__V1__NAMESPACE_MODE__NODE;
        x.host_ipc = nso && nso->ipc == RUNTIME__V1__NAMESPACE_MODE__NODE;
        x.host_pid = nso && nso->pid == RUNTIME__V1__NAMESPACE_MODE__NODE;
        x.shared_pid = nso && nso->pid == RUNTIME__V1__NAMESPACE_MODE__POD;
        const struct cri_handler_ops *h = cri_handler_of(rt);
        int flags = h->sandbox_init(d, rt, &p, &x);
        if (cri_pod_userns(cfg, rt, &x, e) < 0)
                goto fail_record;
        if (*p.cgroup_parent)
                x.cgroup = xstrdup(p.cgroup_parent);
        else /* crictl and tests give none: one cgroup per pod, under corral's own. */
                x.cgroup = strcmp(d->cgroup_driver, "systemd") == 0 ? xasprintf("corral-pod%.12s.slice", p.id)
                                                                    : xasprintf("/corral/pod-%s", p.id);
        p.extra_json = cri_pod_extra_json(&x);
        if (model_pod_put(d->model, &p, e) < 0)
                goto fail_record;

        if (mkdir_p(x.pod_dir, 0755, e) < 0)
                goto fail;
        hostname = cri_pod_hostname(cfg, x.host_net);
        if (x.userns) {
                /* The pod's net, ipc and uts are made inside it (and it is pinned with them). */
                const struct rt_id_map um = {x.userns_uid[0], x.userns_uid[1], x.userns_uid[2]};
                const struct rt_id_map gm = {x.userns_gid[0], x.userns_gid[1], x.userns_gid[2]};
                int ufd = rt_userns_new(&um, 1, &gm, 1, e);
                int r = ufd < 0 ? -1 : net_ns_pin_userns(x.ns_dir, flags, hostname, ufd, &nsp, e);
                if (ufd >= 0)
                        close(ufd);
                if (r < 0) {
                        err_wrap(e, "the pod's user namespace");
                        goto fail;
                }
        } else if (flags && net_ns_pin(x.ns_dir, flags, hostname, &nsp, e) < 0) {
                err_wrap(e, "pin namespaces");
                goto fail;
        }
        if (!x.host_net) {
                struct net_cni_args a;
                fill_cni_args(&a, &p, nsp.net);
                cleanup_free char *cidr = pod_cidr(d);
                a.pod_cidr = cidr;
                /* Record that DEL is due before ADD runs: a crash in between is repaired. */
                x.net_setup = true;
                free(p.extra_json);
                p.extra_json = cri_pod_extra_json(&x);
                if (model_pod_put(d->model, &p, e) < 0)
                        goto fail;
                if (net_cni_add(d->cni, &a, &res, e) < 0) {
                        err_wrap(e, "set up the pod network (CNI ADD)");
                        goto fail;
                }
                ips = net_cni_result_pod_ips(&res, NULL);
                if (ips == NULL || ips[0] == NULL) {
                        err_set(e, ERR_INTERNAL, "CNI ADD returned no IP address for the pod");
                        goto fail;
                }
                size_t nmap = 0;
                struct net_port_mapping *maps = xcalloc(cfg->n_port_mappings + 1, sizeof(*maps));
                for (size_t i = 0; i < cfg->n_port_mappings; i++) {
                        const Runtime__V1__PortMapping *pm = cfg->port_mappings[i];
                        if (pm->host_port <= 0)
                                continue;
                        if (pm->host_port > 65535 || pm->container_port <= 0 || pm->container_port > 65535) {
                                free(maps);
                                err_set(e, ERR_INVALID, "port mapping %d->%d: ports must be in 1..65535",
                                        pm->host_port, pm->container_port);
                                goto fail;
                        }
                        maps[nmap++] = (struct net_port_mapping){
                                .proto = (enum net_proto)pm->protocol,
                                .host_ip = pm->host_ip,
                                .host_port = (uint16_t)pm->host_port,
                                .container_port = (uint16_t)pm->container_port,
                        };
                }
                int r = nmap ? net_hostport_add(NULL, p.id, ips[0], maps, nmap, e) : 0;
                free(maps);
                if (r < 0) {
                        err_wrap(e, "hostPorts");
                        goto fail;
                }
        }
        const Runtime__V1__DNSConfig *dc = cfg->dns_config;
        struct net_dns dns = {0};
        if (dc) {
                dns.servers = dns_servers = strv_of(dc->servers, dc->n_servers);
                dns.searches = dns_searches = strv_of(dc->searches, dc->n_searches);
                dns.options = dns_options = strv_of(dc->options, dc->n_options);
        }
        struct net_podfiles pf = {
                .hostname = hostname,
                .pod_ips = ips,
                .dns = &dns,
                .host_network = x.host_net,
        };
        if (net_podfiles_write(x.pod_dir, &pf, e) < 0) {
                err_wrap(e, "pod files");
                goto fail;
        }
        if (!*p.cgroup_parent) {
                /* A pod cgroup corral chose: made now, sized by the pod's totals. */
                struct rt_resources res = {0};
                if (lx && lx->resources) {
                        if (ctr_resources_validate(lx->resources, e) < 0)
                                goto fail;
                        ctr_resources_to_rt(lx->resources, &res);
                }
                int cr = rt_cgroup_create(x.cgroup, &res, e);
                rt_resources_clear(&res);
                if (cr < 0) {
                        err_wrap(e, "pod cgroup %s", x.cgroup);
                        goto fail;
                }
        }
        /* The handler's part: /dev/shm, sysctls and the pod init, or the VM. */
        const struct cri_sandbox_start st = {
                .rt = rt, .netns = nsp.net, .res = &res, .hostname = pf.hostname, .lx = lx};
        if (h->sandbox_start(d, &p, &x, &st, e) < 0)
                goto fail;

        p.state = STORE_POD_READY;
        p.netns_path = nsp.net;
        if (ips) {
                struct sbuf b = {0};
                sbuf_putc(&b, '[');
                for (size_t i = 0; ips[i]; i++) {
                        if (i)
                                sbuf_putc(&b, ',');
                        json_quote(&b, ips[i]);
                }
                sbuf_putc(&b, ']');
                p.ips_json = sbuf_steal(&b);
        }
        free(p.extra_json);
        p.extra_json = cri_pod_extra_json(&x);
        if (model_pod_put(d->model, &p, e) < 0)
                goto fail;
        ctr_monitor_watch_pod(d, &p, &x);
        memcpy(id_out, p.id, ID_LEN + 1);
        log_info("pod", "ready id=%s name=%s namespace=%s ip=%s", p.id, p.name, p.namespace,
                 ips && ips[0] ? ips[0] : "host");
        ret = 0;
        goto out;
fail : {
        cleanup_err struct err e2 = ERR_INIT;
        if (teardown(d, &p, &x, &e2) < 0)
                log_warn("pod", "undo of a failed RunPodSandbox id=%s: %s", p.id, e2.msg);
        err_clear(&e2);
        shm_unmount(&x);
        (void)rm_rf(x.pod_dir, &e2);
        err_clear(&e2);
        release_cgroup(d, &p, &x);
        (void)model_pod_delete(d->model, p.id, &e2);
}
fail_record:
        err_wrap(e, "RunPodSandbox %s/%s", md->namespace_, md->name);
out:
        free(p.labels_json);
        free(p.annotations_json);
        free(p.config);
        free(p.extra_json);
        free(p.ips_json);
        cri_pod_extra_clear(&x);
        net_ns_paths_free(&nsp);
        net_cni_result_free(&res);
        strv_free(ips);
        strv_free(dns_servers);
        strv_free(dns_searches);
        strv_free(dns_options);
        return ret;
}

static int run_pod(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                   ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__RunPodSandboxRequest *rq = (const Runtime__V1__RunPodSandboxRequest *)req;
        const Runtime__V1__PodSandboxConfig *cfg = rq->config;
        if (cfg == NULL || cfg->metadata == NULL)
                return err_set(e, ERR_INVALID, "RunPodSandbox: config.metadata is required");
        const Runtime__V1__PodSandboxMetadata *md = cfg->metadata;
        if (!*md->name || !*md->namespace_ || !*md->uid)
                return err_set(e, ERR_INVALID,
                               "RunPodSandbox: metadata name, namespace and uid are required");
        const Runtime__V1__LinuxSandboxSecurityContext *psc =
                cfg->linux ? cfg->linux->security_context : NULL;
        /* As containerd and CRI-O (and for containers, ctr_spec.c). */
        if (psc && psc->run_as_group && !psc->run_as_user)
                return err_set(e, ERR_INVALID, "RunPodSandbox %s/%s: run_as_group is set without run_as_user",
                               md->namespace_, md->name);
        const struct cfg_runtime *rt = cfg_runtime_find(d->cfg, rq->runtime_handler);
        if (rt == NULL)
                return err_set(e, ERR_INVALID, "RunPodSandbox: no runtime handler named \"%s\" is configured",
                               rq->runtime_handler);
        /* Refused before anything is made or any handler checked. */
        if (cri_pod_userns(cfg, rt, NULL, e) < 0)
                return err_wrap(e, "RunPodSandbox %s/%s", md->namespace_, md->name);
        const struct cri_handler_ops *h = cri_handler_of(rt);
        if (h->sandbox_check && h->sandbox_check(d, rt, cfg, e) < 0)
                return err_wrap(e, "RunPodSandbox %s/%s", md->namespace_, md->name);

        /* kubelet retries after its own timeout with the same metadata: wait
         * for an attempt still in progress, then hand back the same pod. */
        struct cri_sandboxes *s = d->sandboxes;
        cleanup_free char *key = xasprintf("%s\n%s\n%s\n%u", md->namespace_, md->name, md->uid, md->attempt);
        char id[ID_LEN + 1] = "";
        pthread_mutex_lock(&s->mu);
        while (inflight_has(s, key))
                pthread_cond_wait(&s->cv, &s->mu);
        struct store_pod existing = {0};
        cleanup_err struct err fe = ERR_INIT;
        if (model_pod_find(d->model, md->name, md->namespace_, md->uid, md->attempt, &existing, &fe) == 0 &&
            existing.state != STORE_POD_CREATING) {
                memcpy(id, existing.id, sizeof(id));
                store_pod_clear(&existing);
                pthread_mutex_unlock(&s->mu);
                log_info("pod", "RunPodSandbox retried: returning the existing pod id=%s", id);
        } else {
                store_pod_clear(&existing);
                struct cri_inflight *r = xzalloc(sizeof(*r));
                r->key = xstrdup(key);
                r->next = s->runs;
                s->runs = r;
                pthread_mutex_unlock(&s->mu);
                int ret = create_pod(d, rt, rq, id, e);
                pthread_mutex_lock(&s->mu);
                inflight_remove(s, key);
                pthread_cond_broadcast(&s->cv);
                pthread_mutex_unlock(&s->mu);
                if (ret < 0)
                        return -1;
                cri_event(d, id, id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_CREATED_EVENT);
                cri_event(d, id, id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT);
        }
        Runtime__V1__RunPodSandboxResponse *r = xmalloc(sizeof(*r));
        runtime__v1__run_pod_sandbox_response__init(r);
        r->pod_sandbox_id = xstrdup(id);
        *resp = &r->base;
        return 0;
}

/* ---------- Stop / Remove ---------- */

/* With the pod lock held. */
static int stop_locked(struct cri_daemon *d, struct store_pod *p, struct err *e)
{
        int64_t t0 = time_mono_ns();
        if (cri_containers_stop_pod(d, p->id, 0, e) < 0)
                return err_wrap(e, "stop the containers of pod %s", p->id);
        log_debug("pod", "stop id=%s containers ms=%.3f", p->id, (double)(time_mono_ns() - t0) / 1e6);
        struct cri_pod_extra x;
        if (cri_pod_extra_parse(p->extra_json, &x, e) < 0)
                return -1;
        bool was_ready = p->state == STORE_POD_READY;
        int r = teardown(d, p, &x, e);
        free(p->extra_json);
        p->extra_json = cri_pod_extra_json(&x);
        cri_pod_extra_clear(&x);
        p->state = STORE_POD_NOTREADY;
        cleanup_err struct err e2 = ERR_INIT;
        if (model_pod_put(d->model, p, r < 0 ? &e2 : e) < 0 && r == 0)
                return -1;
        if (r < 0)
                return -1;
        if (was_ready) {
                log_info("pod", "stopped id=%s name=%s", p->id, p->name);
                cri_event(d, p->id, p->id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
        }
        return 0;
}

static int stop_pod(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                    ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__StopPodSandboxRequest *rq = (const Runtime__V1__StopPodSandboxRequest *)req;
        struct store_pod p = {0};
        int r = cri_pod_resolve(d, rq->pod_sandbox_id, &p, e);
        if (r < 0 && err_is(e, ERR_NOT_FOUND)) {
                /* Idempotent: kubelet retries stops of pods that are gone
                 * (after a restart of either side). */
                err_clear(e);
                r = 1;
        }
        if (r < 0)
                return -1;
        if (r == 0) {
                char id[ID_LEN + 1];
                memcpy(id, p.id, sizeof(id));
                store_pod_clear(&p);
                cri_pod_lock(d, id);
                /* Re-read under the lock: another call may have changed it. */
                r = model_pod_get(d->model, id, &p, e);
                if (r == 0)
                        r = stop_locked(d, &p, e);
                else if (err_is(e, ERR_NOT_FOUND)) {
                        err_clear(e);
                        r = 0;
                }
                cri_pod_unlock(d, id);
        }
        store_pod_clear(&p);
        if (r < 0)
                return -1;
        Runtime__V1__StopPodSandboxResponse *out = xmalloc(sizeof(*out));
        runtime__v1__stop_pod_sandbox_response__init(out);
        *resp = &out->base;
        return 0;
}

static int remove_locked(struct cri_daemon *d, struct store_pod *p, struct err *e)
{
        /* A VM pod turns NOTREADY when its VM dies, before anything is torn
         * down: stop it again (every step is idempotent). */
        if ((p->state != STORE_POD_NOTREADY || cri_handler_of_pod_id(d, p->id)->stop_again_on_remove) &&
            stop_locked(d, p, e) < 0)
                return -1;
        if (cri_containers_remove_pod(d, p->id, e) < 0)
                return err_wrap(e, "remove the containers of pod %s", p->id);
        if (d->cni && net_cni_settle(d->cni, p->id) > 0) {
                /* StopPodSandbox's DEL did not finish (corrald died first): again. */
                struct net_cni_args a;
                fill_cni_args(&a, p, NULL);
                if (net_cni_del(d->cni, &a, e) < 0)
                        return err_wrap(e, "CNI DEL for pod %s", p->id);
        }
        struct cri_pod_extra x;
        if (cri_pod_extra_parse(p->extra_json, &x, e) < 0)
                return -1;
        int r = 0;
        shm_unmount(&x);
        if (x.pod_dir && rm_rf(x.pod_dir, e) < 0)
                r = -1;
        if (r == 0)
                release_cgroup(d, p, &x);
        if (r == 0 && x.ns_dir && net_ns_unpin(x.ns_dir, e) < 0)
                r = -1;
        cri_pod_extra_clear(&x);
        if (r == 0 && model_pod_delete(d->model, p->id, e) < 0)
                r = -1;
        if (r == 0) {
                log_info("pod", "removed id=%s name=%s", p->id, p->name);
                cri_event(d, p->id, p->id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT);
        }
        return r;
}

static int remove_pod(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                      ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__RemovePodSandboxRequest *rq = (const Runtime__V1__RemovePodSandboxRequest *)req;
        struct store_pod p = {0};
        int r = cri_pod_resolve(d, rq->pod_sandbox_id, &p, e);
        if (r < 0 && err_is(e, ERR_NOT_FOUND)) {
                /* Already gone: RemovePodSandbox is idempotent. */
                err_clear(e);
                r = 0;
        } else if (r == 0) {
                char id[ID_LEN + 1];
                memcpy(id, p.id, sizeof(id));
                cri_pod_lock(d, id);
                store_pod_clear(&p);
                if (model_pod_get(d->model, id, &p, e) == 0)
                        r = remove_locked(d, &p, e);
                else if (err_is(e, ERR_NOT_FOUND))
                        err_clear(e);
                else
                        r = -1;
                cri_pod_unlock(d, id);
        }
        store_pod_clear(&p);
        if (r < 0)
                return -1;
        Runtime__V1__RemovePodSandboxResponse *resp_ = xmalloc(sizeof(*resp_));
        runtime__v1__remove_pod_sandbox_response__init(resp_);
        *resp = &resp_->base;
        return 0;
}

/* ---------- UpdatePodSandboxResources ---------- */

/* kubelet tells the runtime a pod's new totals (in-place resize). kubelet
 * sizes the pod cgroups it made itself; corral applies the totals to a pod
 * cgroup it chose (no cgroup_parent given). Either way the request is checked. */
static int update_pod_resources(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                                ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__UpdatePodSandboxResourcesRequest *rq =
                (const Runtime__V1__UpdatePodSandboxResourcesRequest *)req;
        struct store_pod p = {0};
        if (cri_pod_resolve(d, rq->pod_sandbox_id, &p, e) < 0)
                return -1;
        int r = 0;
        if (p.state != STORE_POD_READY)
                r = err_set(e, ERR_PRECONDITION, "pod sandbox %s is not ready", p.id);
        if (r == 0 && rq->resources && ctr_resources_validate(rq->resources, e) < 0)
                r = err_wrap(e, "UpdatePodSandboxResources %s", p.id);
        if (r == 0 && rq->resources && !(p.cgroup_parent && *p.cgroup_parent)) {
                struct cri_pod_extra x = {0};
                if (cri_pod_extra_parse(p.extra_json, &x, e) == 0) {
                        struct rt_resources res = {0};
                        ctr_resources_to_rt(rq->resources, &res);
                        if (rt_cgroup_update(x.cgroup, &res, e) < 0)
                                r = err_wrap(e, "UpdatePodSandboxResources %s: cgroup %s", p.id, x.cgroup);
                        rt_resources_clear(&res);
                } else {
                        r = -1;
                }
                cri_pod_extra_clear(&x);
        }
        store_pod_clear(&p);
        if (r < 0)
                return -1;
        Runtime__V1__UpdatePodSandboxResourcesResponse *out = xmalloc(sizeof(*out));
        runtime__v1__update_pod_sandbox_resources_response__init(out);
        *resp = &out->base;
        return 0;
}

/* ---------- start-up: repair after a crash ---------- */

static int read_init_pid(const char *pod_dir)
{
        cleanup_free char *path = path_join(pod_dir, POD_INIT_PID_FILE);
        cleanup_free char *buf = NULL;
        size_t len;
        if (file_read_all(path, &buf, &len, 64, NULL) < 0)
                return 0;
        long v = strtol(buf, NULL, 10);
        return v > 1 && v < INT32_MAX ? (int)v : 0;
}

static void recover(struct cri_daemon *d)
{
        struct store_pod *pods = NULL;
        size_t n = 0;
        cleanup_err struct err e = ERR_INIT;
        if (model_pod_list(d->model, &pods, &n, &e) < 0) {
                log_error("pod", "recovery: list pods: %s", e.msg);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                struct store_pod *p = &pods[i];
                struct cri_pod_extra x = {0};
                if (cri_pod_extra_parse(p->extra_json, &x, &e) < 0) {
                        log_error("pod", "recovery: pod %s: %s", p->id, e.msg);
                        err_clear(&e);
                        continue;
                }
                if (p->state == STORE_POD_CREATING) {
                        /* A RunPodSandbox that never finished: undo it all,
                         * its init too when it was started but not recorded. */
                        log_warn("pod", "recovery: undoing a half-made pod id=%s name=%s", p->id, p->name);
                        if (x.shared_pid && x.pod_init_pid <= 0 && x.pod_dir)
                                x.pod_init_pid = read_init_pid(x.pod_dir);
                        if (teardown(d, p, &x, &e) < 0)
                                log_error("pod", "recovery: undo pod %s: %s", p->id, e.msg);
                        err_clear(&e);
                        shm_unmount(&x);
                        (void)rm_rf(x.pod_dir, &e);
                        err_clear(&e);
                        release_cgroup(d, p, &x);
                        (void)model_pod_delete(d->model, p->id, &e);
                        err_clear(&e);
                } else if (p->state == STORE_POD_READY && !x.host_net && p->netns_path &&
                           !net_ns_is_pinned(p->netns_path)) {
                        /* After a reboot /run is empty: the pod's network is gone. */
                        log_warn("pod", "recovery: pod id=%s lost its network namespace: NOTREADY", p->id);
                        (void)teardown(d, p, &x, &e);
                        err_clear(&e);
                        free(p->extra_json);
                        p->extra_json = cri_pod_extra_json(&x);
                        p->state = STORE_POD_NOTREADY;
                        (void)model_pod_put(d->model, p, &e);
                        err_clear(&e);
                }
                cri_pod_extra_clear(&x);
        }
        store_pods_free(pods, n);
}

int cri_pods_init(struct cri_daemon *d, struct err *e)
{
        struct cri_sandboxes *s = xzalloc(sizeof(*s));
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        d->sandboxes = s;
        cleanup_free char *nsdir = path_join(d->cfg->state, "ns");
        cleanup_free char *poddir = path_join(d->cfg->state, "pods");
        if (mkdir_p(nsdir, 0711, e) < 0 || mkdir_p(poddir, 0755, e) < 0)
                return -1;
        recover(d);
        return cri_containers_recover(d, e);
}

void cri_pods_fini(struct cri_daemon *d)
{
        struct cri_sandboxes *s = d->sandboxes;
        if (s == NULL)
                return;
        /* The containers' exit monitor reads pods and the store: stop it first. */
        cri_containers_fini(d);
        /* The ns root is a private bind mount of itself (net_ns_pin) kept while
         * pods are pinned below it; with none left, leave no mount behind. */
        cleanup_free char *nsdir = path_join(d->cfg->state, "ns");
        if (dir_is_empty(nsdir))
                (void)umount2(nsdir, MNT_DETACH);
        cri_pod_locks_free(s);
        while (s->runs) {
                struct cri_inflight *r = s->runs;
                s->runs = r->next;
                free(r->key);
                free(r);
        }
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        d->sandboxes = NULL;
}

const struct cri_handler cri_pod_handlers[] = {
        {.name = "RunPodSandbox", .unary = run_pod},
        {.name = "StopPodSandbox", .unary = stop_pod},
        {.name = "RemovePodSandbox", .unary = remove_pod},
        {.name = "UpdatePodSandboxResources", .unary = update_pod_resources},
        {0},
};
