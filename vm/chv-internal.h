/* cloud-hypervisor's REST API, spoken over its --api-socket (chv_api.c):
 * a small HTTP/1.1 client, the vm.create body, the hybrid-vsock handshake.
 * Separate from the driver (chv.c) so the parts that need no KVM are unit
 * tested and fuzzed here. */
#ifndef CORRAL_VM_CHV_INTERNAL_H
#define CORRAL_VM_CHV_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

/* Limits: a reply bigger than this is an error, not a memory hog. */
#define VM_HTTP_MAX_HEADERS (16u << 10)
#define VM_HTTP_MAX_BODY    (16u << 20)

struct vm_http_response {
        int status;   /* 200, 204, 400, ... */
        char *reason; /* "No Content"; owned */
        char *body;   /* NUL-terminated (chunked: decoded); owned, "" when none */
        size_t body_len;
        size_t consumed; /* bytes of the input this response used */
};

/* Parse one response from buf[0..len). eof: the peer closed, no more bytes
 * will come (a body without Content-Length or chunking ends there; a cut
 * reply is an error). Returns 1 when complete (*out filled; clear it with
 * vm_http_response_clear), 0 when more bytes are needed, -1 on a malformed
 * or truncated reply (ERR_DATA_LOSS naming what is wrong). Never reads
 * beyond len. */
int vm_http_parse(const char *buf, size_t len, bool eof, struct vm_http_response *out, struct err *e);
void vm_http_response_clear(struct vm_http_response *r);

/* One request on a new connection to the unix socket `sock`: method and
 * path ("/api/v1/vm.boot"), an optional JSON body. A 2xx reply fills *out
 * (may be NULL); any other status is an error of a matching kind (400
 * ERR_INVALID, 404 ERR_NOT_FOUND, 405/409 ERR_PRECONDITION, 5xx
 * ERR_INTERNAL) whose message holds the status and the reply's text.
 * Connection refused / no socket: ERR_UNAVAILABLE. */
int vm_chv_api(const char *sock, const char *method, const char *path, const char *json_body, int timeout_ms,
               struct vm_http_response *out, struct err *e);

/* What vm.create gets; strings borrowed. */
struct vm_chv_fs {
        const char *tag, *socket;
};
struct vm_chv_net {
        const char *tap, *mac;
};
struct vm_chv_create {
        uint32_t cpus, memory_mib;
        bool shared_memory; /* virtio-fs needs guest RAM the daemon can map */
        const char *kernel, *initramfs, *cmdline;
        const char *serial_file;  /* ttyS0: the kernel's console */
        const char *console_file; /* hvc0: the agent's log; NULL: off */
        const struct vm_chv_fs *fs;
        size_t n_fs;
        const struct vm_chv_net *net;
        size_t n_net;
        uint32_t vsock_cid; /* 0: no vsock */
        const char *vsock_socket;
};
/* The VmConfig JSON (cloud-hypervisor.yaml), caller frees. */
char *vm_chv_create_body(const struct vm_chv_create *c);

/* The handshake of vm_hvsock_connect on an already connected fd. */
int vm_hvsock_handshake(int fd, uint32_t port, int timeout_ms, struct err *e);

#endif
