/* corralctl's private header: the global options every verb sees, the
 * verb table, and the output helpers. */
#ifndef CORRALCTL_H
#define CORRALCTL_H

#include "cri/cri.h"
#include "runtime/v1/api.pb-c.h"

enum ctl_output { CTL_OUT_TABLE, CTL_OUT_JSON };

struct ctl {
        const char *endpoint;
        int timeout_ms;
        enum ctl_output output;
        struct cri_client *client; /* connected lazily by ctl_client() */
};

struct ctl_verb {
        const char *name;
        const char *summary;
        int (*run)(struct ctl *ctl, int argc, char **argv);
};

/* Verbs by file; each file exports a table ending in {NULL}. */
extern const struct ctl_verb ctl_info_verbs[];      /* info.c: version, info */
extern const struct ctl_verb ctl_image_verbs[];     /* images.c: pull, images, inspecti, rmi, imagefsinfo */
extern const struct ctl_verb ctl_pod_verbs[];       /* pods.c: runp, pods, inspectp, stopp, rmp */
extern const struct ctl_verb ctl_container_verbs[]; /* containers.c: create, start, ps, inspect, stop, rm,
                                                       logs, exec, stats, run */
extern const struct ctl_verb ctl_stream_verbs[];    /* stream.c: exec -it, attach, port-forward */
extern const struct ctl_verb ctl_image_io_verbs[];  /* image_io.c: commit */
/* "images import ..." and "images export ..." (image_io.c); argv[0] is the subverb. */
int ctl_images_import(struct ctl *ctl, int argc, char **argv);
int ctl_images_export(struct ctl *ctl, int argc, char **argv);

struct cri_client *ctl_client(struct ctl *ctl);
/* Call `rpc` ("Version") and print errors as "corralctl: RPC: message".
 * Returns 0 or 1 (the exit code). */
int ctl_call(struct ctl *ctl, const char *rpc, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp);

/* Protobuf message as JSON with lowerCamel names like protojson (crictl's
 * inspect output); enums by name, bytes in base64 (but see
 * ctl_bytes_as_text), 64-bit ints as strings. */
void ctl_pb_to_json(const ProtobufCMessage *msg, struct sbuf *out, int indent);
void ctl_print_json(const ProtobufCMessage *msg);

/* JSON (crictl's config files: snake_case or lowerCamel names) into a heap
 * message of `desc` (free with protobuf_c_message_free_unpacked). ERR_INVALID
 * names the field path. jsonpb.c */
int ctl_json_to_pb(const char *buf, size_t len, const ProtobufCMessageDescriptor *desc, const char *what,
                   ProtobufCMessage **out, struct err *e);
int ctl_json_file_to_pb(const char *path, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
                        struct err *e);
/* A bytes field that crictl-format files carry as plain text, not base64:
 * KeyValue.value (an env value). jsonpb.c */
bool ctl_bytes_as_text(const ProtobufCFieldDescriptor *f);
/* Full pod / container id from a unique prefix (or a pod's name for pods).
 * Prints the error and returns NULL. pods.c / containers.c */
char *ctl_resolve_pod(struct ctl *ctl, const char *id);
char *ctl_resolve_container(struct ctl *ctl, const char *id);

/* The streaming (-i/-t) form of exec: Exec + a session on the returned URL.
 * Returns the exit code. stream.c */
int ctl_stream_exec(struct ctl *ctl, const char *container, char **cmd, bool in, bool tty, bool websocket);

/* Shorten an id for tables (13 chars like crictl). */
const char *ctl_short_id(const char *id, char buf[14]);
/* "3 minutes ago" style age of a nanosecond timestamp. */
void ctl_age(int64_t ns, char *buf, size_t len);

#endif
