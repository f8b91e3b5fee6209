/* Integration-test harness: a real corrald on a temporary root, state dir
 * and socket, started as a child and stopped with SIGTERM. */
#ifndef CORRAL_TEST_HARNESS_H
#define CORRAL_TEST_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

#include "cri/cri.h"
#include "runtime/v1/api.pb-c.h"
#include "tests/unit/check.h"

struct daemon {
        pid_t pid;
        char *dir; /* temp dir holding everything below */
        char *root;
        char *state;
        char *socket;
        char *endpoint; /* unix://<socket> */
        char *log;      /* corrald's stderr */
        char *config;   /* config file path, may be NULL */
};

/* Make the temp dirs; `config_json` (may be NULL) is written as the config
 * file. Does not start anything. */
void daemon_init(struct daemon *d, const char *config_json);
/* Start corrald ($CORRALD) with extra args (NULL-terminated, may be NULL)
 * and wait for its socket. Returns -1 if it exited instead (exit status in
 * *status when not NULL). */
int daemon_start(struct daemon *d, char *const *extra, int *status);
/* Start corrald expecting it to refuse to run: wait (up to 10 s) for it to
 * exit and return its waitpid status, or -1 if it kept running. */
int daemon_expect_exit(struct daemon *d, char *const *extra);
/* SIGTERM and wait; returns the exit status (waitpid form) or -1. */
int daemon_stop(struct daemon *d);
/* SIGKILL and wait. */
void daemon_kill(struct daemon *d);
/* Stop if running and remove the temp dir. */
void daemon_cleanup(struct daemon *d);
/* Print the daemon's log to stderr (on failure). */
void daemon_dump_log(const struct daemon *d);

/* Call a CRI method by RPC name; returns the status kind (ERR_OK on success). */
enum err_kind cri_call_simple(struct cri_client *c, const char *rpc, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp, char **msg);

bool harness_is_root(void);

#endif
