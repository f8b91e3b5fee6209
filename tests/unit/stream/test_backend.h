#ifndef CORRAL_TEST_STREAM_BACKEND_H
#define CORRAL_TEST_STREAM_BACKEND_H

#include <pthread.h>
#include <stdint.h>

#include "stream/stream.h"

/* Host processes for exec/attach, 127.0.0.1 for port-forward; container or
 * pod id "missing" fails like an unknown container. */
struct test_backend {
        int execs;
};
extern const struct stream_backend test_backend_ops;

struct echo_server {
        int fd;
        uint16_t port;
        pthread_t thr;
};
int echo_server_start(struct echo_server *es);
void echo_server_stop(struct echo_server *es);

#endif
