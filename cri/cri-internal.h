/* cri/ private: the daemon context, the call context handlers see, and the
 * handler tables each service-area file contributes. */
#ifndef CORRAL_CRI_INTERNAL_H
#define CORRAL_CRI_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "cri/cri.h"
#include "model/model.h"
#include "runtime/v1/api.pb-c.h"

struct store;
struct store_pod;
struct cri_server;
struct cri_events;
struct net_cni;
struct snap;
struct img_service;
struct stream_server;
struct cri_sandboxes;
struct cri_metrics;

struct cri_daemon {
        const struct cfg *cfg;
        struct store *store;
        struct model *model; /* pods and containers: every read is answered from here */
        struct cri_server *server;
        struct cri_events *events;
        struct net_cni *cni;
        struct snap *snaps;              /* images.c */
        struct img_service *images;      /* images.c */
        struct cri_sandboxes *sandboxes; /* pods.c: per-pod locks, in-flight RunPodSandbox */
        struct stream_server *streaming; /* streaming.c */
        struct cri_metrics *metrics;     /* metrics.c */
        struct cri_list_cache *ctr_list; /* ctr_status.c: unfiltered ListContainers */
        struct cri_list_cache *pod_list; /* pod_status.c: unfiltered ListPodSandbox */
        int64_t started_ns;
        atomic_bool stopping;
        /* Test hook (see cri_daemon_opts.debug_delay). */
        char *delay_method;
        int delay_ms;
        /* Host facts detected once at start, for Status. */
        char *cgroup_mode;   /* "v1", "v2", "hybrid" */
        char *cgroup_driver; /* "cgroupfs" or "systemd" */
        char *cgroup_note;   /* why the systemd driver is not (fully) in use, for Status; or NULL */
        bool has_sys_resource;
        bool has_kvm;
};

/* ---------- the call a handler runs in ---------- */

struct cri_call;

/* The client went away or cancelled; long handlers check this. */
bool cri_call_cancelled(const struct cri_call *call);
/* The call's deadline on CLOCK_MONOTONIC, INT64_MAX when there is none. */
int64_t cri_call_deadline_ns(const struct cri_call *call);
/* Server-streaming: send one message and wait until it is written.
 * Returns -1 (ERR_CANCELLED) when the client has gone. */
int cri_call_send(struct cri_call *call, const ProtobufCMessage *msg, struct err *e);
/* Client-streaming: the next message of the method's input type after the
 * one the handler was called with. 1 with *msg (free with
 * protobuf_c_message_free_unpacked), 0 when the client has sent its last,
 * -1 (ERR_CANCELLED) when it went away. */
int cri_call_recv(struct cri_call *call, ProtobufCMessage **msg, struct err *e);

/* A unary reply given as the output message's wire bytes (a reply copied
 * straight from the model's packed views, with no message built); takes b's
 * buffer. The handler then returns 0 with *resp left NULL. */
void cri_call_reply_bytes(struct cri_call *call, struct sbuf *b);

/* A reply many calls send as they are (reply.c): immutable, refcounted. */
struct cri_shared_reply;
/* Takes b's buffer; one reference. */
struct cri_shared_reply *cri_shared_reply_new(struct sbuf *b);
struct cri_shared_reply *cri_shared_reply_ref(struct cri_shared_reply *r);
void cri_shared_reply_unref(void *r);
const char *cri_shared_reply_bytes(const struct cri_shared_reply *r, size_t *len);
/* As cri_call_reply_bytes, with r's bytes; takes the caller's reference. */
void cri_call_reply_shared(struct cri_call *call, struct cri_shared_reply *r);

/* The last reply of an unfiltered list and the model generation it shows
 * (reply.c). A handler asks _get first: a reference to the reply when the
 * model has not changed since, else NULL and *gen, the generation to build
 * at; it then builds the bytes and hands them to _put, which keeps them and
 * returns a reference for the call. */
struct cri_list_cache;
struct cri_list_cache *cri_list_cache_new(void);
void cri_list_cache_free(struct cri_list_cache *c);
struct cri_shared_reply *cri_list_cache_get(struct cri_list_cache *c, struct cri_daemon *d, uint64_t *gen);
struct cri_shared_reply *cri_list_cache_put(struct cri_list_cache *c, uint64_t gen, struct sbuf *b);

/* A unary handler fills *resp with a heap message of the method's output
 * type (every part malloc'ed: the server frees it with
 * protobuf_c_message_free_unpacked), or replies with cri_call_reply_bytes. */
typedef int (*cri_unary_fn)(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                            ProtobufCMessage **resp, struct err *e);
/* A streaming handler sends with cri_call_send and returns when done. */
typedef int (*cri_stream_fn)(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                             struct err *e);

enum {
        /* Cheap and never blocking: run on the completion-queue thread
         * instead of a worker (saves a thread hand-off per call). */
        CRI_INLINE = 1,
};

struct cri_handler {
        const char *name; /* RPC name, e.g. "Version" */
        cri_unary_fn unary;
        cri_stream_fn stream;
        unsigned flags;
};

/* Each service-area file exports a table ending in {NULL}. */
extern const struct cri_handler cri_info_handlers[];       /* info.c */
extern const struct cri_handler cri_event_handlers[];      /* events.c */
extern const struct cri_handler cri_image_handlers[];      /* images.c */
extern const struct cri_handler cri_pod_handlers[];        /* pods.c */
extern const struct cri_handler cri_pod_status_handlers[]; /* pod_status.c */
extern const struct cri_handler cri_container_handlers[];  /* containers.c */
extern const struct cri_handler cri_ctr_status_handlers[]; /* ctr_status.c */
extern const struct cri_handler cri_ctr_update_handlers[]; /* ctr_update.c */
extern const struct cri_handler cri_ctr_exec_handlers[];   /* ctr_exec.c */
extern const struct cri_handler cri_stats_handlers[];      /* stats.c */
extern const struct cri_handler cri_streaming_handlers[];  /* streaming.c */
extern const struct cri_handler cri_image_io_handlers[];   /* image_io.c */

/* Start-up and shut-down of each area, called by daemon.c in this order
 * (and the reverse). Each init may leave its pointers NULL and log why
 * when the host lacks something, instead of failing the daemon. */
int cri_images_init(struct cri_daemon *d, struct err *e);
void cri_images_fini(struct cri_daemon *d);
/* Loads pods and containers from the store, reconnects to live shims,
 * repairs half-done work (crash recovery). */
int cri_pods_init(struct cri_daemon *d, struct err *e);
void cri_pods_fini(struct cri_daemon *d);
int cri_streaming_init(struct cri_daemon *d, struct err *e);
void cri_streaming_fini(struct cri_daemon *d);

/* ---------- method table (methods.c) ---------- */

struct cri_method {
        char *path; /* "/runtime.v1.RuntimeService/Version" */
        const char *name;
        const ProtobufCMessageDescriptor *input;
        const ProtobufCMessageDescriptor *output;
        bool server_streaming;
        const struct cri_handler *handler; /* NULL: answers UNIMPLEMENTED */
};

/* All methods of both services, in descriptor order. */
const struct cri_method *cri_methods(size_t *n);

/* ---------- server (server.c) ---------- */

int cri_server_new(struct cri_daemon *d, const char *listen, size_t max_message_bytes,
                   struct cri_server **out, struct err *e);
void cri_server_shutdown(struct cri_server *s, int grace_ms);
void cri_server_free(struct cri_server *s);

/* ---------- worker pool (pool.c) ---------- */

/* Threads are created on demand and kept while busy, so a slow call never
 * waits behind another; idle ones retire after a while. */
struct cri_pool;
struct cri_pool *cri_pool_new(unsigned keep_idle, unsigned max_threads);
void cri_pool_submit(struct cri_pool *p, void (*fn)(void *), void *arg);
/* Waits for queued and running jobs, then frees. */
void cri_pool_free(struct cri_pool *p);

/* ---------- container events (events.c) ---------- */

struct cri_events *cri_events_new(void);
void cri_events_free(struct cri_events *ev);
/* Wakes every GetContainerEvents stream so it can end (daemon stopping). */
void cri_events_close(struct cri_events *ev);
/* Publish one event to every subscriber (the message is copied). */
void cri_events_publish(struct cri_events *ev, const Runtime__V1__ContainerEventResponse *msg);

/* ---------- metrics (metrics.c) ---------- */

int cri_metrics_init(struct cri_daemon *d, struct err *e);
void cri_metrics_fini(struct cri_daemon *d);
/* One finished call: its method, status code and duration. */
void cri_metrics_observe(struct cri_daemon *d, const struct cri_method *m, int code, int64_t ns);
/* The Prometheus text exposition (caller frees). */
char *cri_metrics_text(struct cri_daemon *d);

/* ---------- CRI metrics (pod_metrics.c) ---------- */

/* ListMetricDescriptors, ListPodSandboxMetrics, StreamPodSandboxMetrics. */
extern const struct cri_handler cri_pod_metrics_handlers[];
/* usage_nano_cores of object `id` (a container or pod) from its cumulative
 * cpu_ns now, against a sample of the same object taken >= 1 s before;
 * false while there is none yet. */
bool cri_cpu_nano_cores(const char *id, uint64_t cpu_ns, uint64_t *out);

/* ---------- network (network.c) ---------- */

int cri_network_init(struct cri_daemon *d, struct err *e);
void cri_network_fini(struct cri_daemon *d);
/* NetworkReady with its reason and message (caller frees both). */
bool cri_network_ready(struct cri_daemon *d, char **reason, char **message);

/* ---------- CRI <-> our types (convert.c) ---------- */

/* Every protobuf-c map<string,string> entry has this layout. */
struct cri_kv {
        ProtobufCMessage base;
        char *key;
        char *value;
};
/* A map field (n entries) as a JSON object; NULL when empty. */
char *cri_map_to_json(size_t n, void *const *entries);
/* A JSON object back into heap entries of `entry_desc` (a map entry type).
 * Returns the count; *out is NULL when there are none. */
size_t cri_map_from_json(const char *json, const ProtobufCMessageDescriptor *entry_desc, void ***out);
/* Every selector pair is present in the labels JSON. */
bool cri_labels_match(const char *labels_json, size_t n_sel, void *const *selector);
/* A map JSON object parsed once (the model's views keep these). */
struct cri_map {
        size_t n;
        char **keys, **values;
};
void cri_map_parse(const char *json, struct cri_map *out);
void cri_map_clear(struct cri_map *m);
/* Every selector pair is in the map. */
bool cri_map_match(const struct cri_map *m, size_t n_sel, void *const *selector);

/* A message packed once, with its length prefix, to be sent as an element
 * of a repeated message field of a parent: cri_packed_append adds it to the
 * parent's unknown fields, which protobuf-c packs verbatim, so a list reply
 * costs one copy per element instead of building and packing each anew.
 * The wire bytes are those of the field itself. */
struct cri_packed {
        uint8_t *buf;
        size_t len;
};
void cri_packed_make(const ProtobufCMessage *m, struct cri_packed *out);
/* A heap copy of p (for a reply built under the model's read lock). */
struct cri_packed cri_packed_copy(const struct cri_packed *p);
/* Appends p to the wire bytes in b as an element of field `tag` (< 16). */
void cri_packed_put(struct sbuf *b, uint32_t tag, const struct cri_packed *p);
/* Appends a varint field, and an entry of a map<string, string> field. */
void cri_wire_varint(struct sbuf *b, uint32_t tag, uint64_t v);
void cri_wire_map_entry(struct sbuf *b, uint32_t tag, const char *key, const char *value);
/* Moves the n buffers (heap, freed with the parent) into the parent as
 * elements of its field `tag` (the parent has none of its own yet). */
void cri_packed_attach(ProtobufCMessage *parent, uint32_t tag, struct cri_packed *items, size_t n);
/* Heap PodSandboxMetadata / ContainerMetadata copies. */
Runtime__V1__PodSandboxMetadata *cri_pod_metadata(const char *name, const char *uid, const char *ns,
                                                  uint32_t attempt);
/* The pod config a pod was created with (unpacked from the store record). */
Runtime__V1__PodSandboxConfig *cri_pod_config(const struct store_pod *p);

/* ---------- per-pod serialisation (ctr_state.c) ---------- */

struct cri_podlock;
struct cri_inflight;
/* d->sandboxes: the per-pod locks (ctr_state.c) and RunPodSandbox's runs in
 * flight (pods.c). */
struct cri_sandboxes {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        struct cri_podlock *locks;
        struct cri_inflight *runs;
};

/* Operations on one pod (and its containers' create/remove) run one at a
 * time; different pods never wait on each other. */
void cri_pod_lock(struct cri_daemon *d, const char *pod_id);
void cri_pod_unlock(struct cri_daemon *d, const char *pod_id);
void cri_pod_locks_free(struct cri_sandboxes *s);
/* Resolve a full or unique-prefix pod id; ERR_NOT_FOUND names it. */
int cri_pod_resolve(struct cri_daemon *d, const char *id, struct store_pod *out, struct err *e);
/* The pod's private state kept in store_pod.extra_json (record.c). */
struct cri_pod_extra {
        char *ns_dir;  /* pinned namespaces */
        char *pod_dir; /* hostname, hosts, resolv.conf */
        char *cgroup;  /* effective cgroup parent for its containers */
        bool host_net, host_ipc, host_pid;
        bool shared_pid;  /* namespace_options.pid == POD */
        int pod_init_pid; /* holds the shared pid namespace */
        bool net_setup;   /* CNI ADD done (DEL needed) */
        /* Its own user namespace (pinned at <ns_dir>/user): container id,
         * host id, length of the one uid and one gid mapping. */
        bool userns;
        uint32_t userns_uid[3], userns_gid[3];
        /* VM pods (vm_pods.c); the keys are only written for them */
        bool vm;
        char *vm_dir;    /* <state>/vm/<id prefix>: vm.json, the shim's socket, the share */
        int vm_shim_pid; /* the per-VM corral-shim */
        /* OCI-handler pods (handler_oci.c): the runtime binary, NULL for other types */
        char *oci_runtime;
};
int cri_pod_extra_parse(const char *json, struct cri_pod_extra *out, struct err *e);
void cri_pod_extra_clear(struct cri_pod_extra *x);
char *cri_pod_extra_json(const struct cri_pod_extra *x);

/* The pod's hostname: the config's, or the node's when it gives none or
 * the pod is on the host network. Caller frees. */
char *cri_pod_hostname(const Runtime__V1__PodSandboxConfig *cfg, bool host_net);
/* The pod's sysctls (namespaced ones only: InvalidArgument naming any
 * other, or one that would change a namespace shared with the host). */
int cri_pod_apply_sysctls(const struct cri_pod_extra *x, const Runtime__V1__LinuxPodSandboxConfig *lx,
                          struct err *e);

/* namespace_options.userns_options of a RunPodSandbox (pod_userns.c):
 * ERR_INVALID naming the cause for what is refused (a mode other than POD
 * or NODE, not one mapping each, container id 0 unmapped, the VM handler,
 * a host network/PID/IPC namespace, a host that cannot); x (may be NULL)
 * gets userns and the mappings for mode POD. */
struct cfg_runtime;
int cri_pod_userns(const Runtime__V1__PodSandboxConfig *cfg, const struct cfg_runtime *rt,
                   struct cri_pod_extra *x, struct err *e);
/* Its part of the pod record's private state: `b` holds the JSON object
 * (closing brace last); `v` the parsed one. */
struct yajl_val_s;
void cri_pod_userns_to_json(struct sbuf *b, const struct cri_pod_extra *x);
void cri_pod_userns_from_json(struct yajl_val_s *v, struct cri_pod_extra *x);

/* Write the pod record with `x` as its private state. */
int cri_pod_save_extra(struct cri_daemon *d, struct store_pod *p, const struct cri_pod_extra *x,
                       struct err *e);

/* ---------- VM pods (vm_pods.c) ---------- */

struct cfg_runtime;
struct net_cni_result;
struct rt_spec;
/* FailedPrecondition naming the handler and what keeps it from running
 * here (kernel, initrd, VMM, KVM for cloud-hypervisor, share type) and how
 * to fix it. RunPodSandbox calls it before making anything. */
int cri_vm_handler_check(const struct cri_daemon *d, const struct cfg_runtime *rt, struct err *e);
/* The same, as a reason for Status (caller frees), NULL when it can run. */
char *cri_vm_handler_unusable(const struct cri_daemon *d, const struct cfg_runtime *rt);
/* Why KVM creates VMs but boots no guest here (a VM pod found it), or NULL
 * while it is believed to work. Caller frees. */
char *cri_vm_kvm_broken(const struct cri_daemon *d);
/* Which accelerator VMs get here, for Status (caller frees). */
char *cri_vm_handler_note(const struct cri_daemon *d);
/* After CNI ADD and the pod files: tap + redirect, then the per-VM shim
 * boots the VM and sets the pod's sysctls (lx, may be NULL) in the guest.
 * x->vm_dir is set (and recorded) by the caller first. */
int cri_vm_sandbox_start(struct cri_daemon *d, const struct cfg_runtime *rt, const struct store_pod *p,
                         struct cri_pod_extra *x, const char *netns, const struct net_cni_result *res,
                         const char *hostname, const Runtime__V1__LinuxPodSandboxConfig *lx, struct err *e);
/* Idempotent: VM shut down, shim gone, mounts swept, tap and redirect removed, vm_dir removed. */
int cri_vm_sandbox_stop(struct cri_daemon *d, const struct store_pod *p, struct cri_pod_extra *x,
                        struct err *e);
/* True (with *reason, caller frees) when a VM pod's VM or shim is gone. */
bool cri_vm_pod_dead(const struct cri_pod_extra *x, char **reason);
/* PodSandboxStatus verbose "vm" object (caller frees). */
char *cri_vm_pod_info(const struct cri_pod_extra *x, const char *vmm);
/* Create a container of a VM pod through the pod's shim (the spec as ctr_spec.c built it);
 * stdin_open/stdin_once as the CRI ContainerConfig says (attach feeds it). */
int cri_vm_container_create(const struct cri_pod_extra *x, const char *id, const struct rt_spec *spec,
                            const char *state_dir, const char *log_path, bool stdin_open, bool stdin_once,
                            struct err *e);
/* A running VM container's cpu and memory, from the agent (its cgroup is in the guest). */
bool cri_vm_ctr_usage(const struct cri_pod_extra *x, const char *ctr_id, uint64_t *cpu_ns, uint64_t *memory);
/* The corral-shim next to our binary (caller frees). */
char *cri_shim_binary(void);

/* ---------- containers of a pod (ctr_stop.c, views.c, ctr_recover.c, ctr_monitor.c) ---------- */

/* Stop every running container the pod owns (timeout_s grace each, 0 = kill). */
int cri_containers_stop_pod(struct cri_daemon *d, const char *pod_id, int64_t timeout_s, struct err *e);
/* Remove every container of the pod. */
int cri_containers_remove_pod(struct cri_daemon *d, const char *pod_id, struct err *e);
/* ContainerStatus messages for PodSandboxStatus (heap, caller frees each). */
size_t cri_containers_statuses(struct cri_daemon *d, const char *pod_id, Runtime__V1__ContainerStatus ***out);
/* Reconcile container records with their shims after a (re)start. */
int cri_containers_recover(struct cri_daemon *d, struct err *e);
/* Stop the container exit monitor that recover started; call it first in
 * cri_pods_fini (before the store goes). */
void cri_containers_fini(struct cri_daemon *d);
/* Publish a container event (type: CONTAINER_*_EVENT) for id in pod (ctr_state.c). */
void cri_event(struct cri_daemon *d, const char *container_id, const char *pod_id,
               Runtime__V1__ContainerEventType type);
/* A READY pod whose sandbox died by itself (its VM, its shim) is NOTREADY
 * now, with its event (ctr_state.c). */
void cri_pod_died(struct cri_daemon *d, const char *id, const char *reason);

/* ---------- what the model caches per record (views.c) ---------- */

extern const struct model_hooks cri_model_hooks;
struct cri_pod_view {
        struct cri_map labels;
        struct cri_packed item;   /* Runtime__V1__PodSandbox */
        struct cri_packed status; /* Runtime__V1__PodSandboxStatus */
};
/* The status of a pod record (heap; PodSandboxStatus, the events). */
Runtime__V1__PodSandboxStatus *cri_pod_status_build(const struct store_pod *p);
Runtime__V1__PodSandboxState cri_pod_state(int st);
/* Appends each of the pod's container statuses, as packed in its view, as
 * elements of field `tag` of the message in b. */
void cri_ctr_statuses_put(struct cri_daemon *d, const char *pod_id, uint32_t tag, struct sbuf *b);
/* READY pods whose sandbox died by itself (a VM, its shim) become NOTREADY, with their event;
 * the others of such types are watched (ctr_monitor.c; once, at start-up). */
void cri_pods_sweep(struct cri_daemon *d);

/* ---------- status conversion (methods.c) ---------- */

/* grpc_status_code for an error kind (they share numbering). */
int cri_status_code(const struct err *e);

#endif
