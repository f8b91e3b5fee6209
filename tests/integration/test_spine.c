/* The spine against a real corrald: Version, Status, RuntimeConfig, an
 * unimplemented method, concurrency with a slow handler, malformed bytes,
 * a server stream, a config typo, SIGTERM. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "harness.h"

static struct daemon D;
static struct cri_client *C;

static void test_version(void)
{
        Runtime__V1__VersionRequest req = RUNTIME__V1__VERSION_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        CHECK(cri_call_simple(C, "Version", &req.base, &runtime__v1__version_response__descriptor, &resp,
                              NULL) == ERR_OK);
        if (resp == NULL)
                return;
        Runtime__V1__VersionResponse *v = (Runtime__V1__VersionResponse *)resp;
        CHECK_STR(v->runtime_name, "corral");
        CHECK_STR(v->runtime_api_version, "v1");
        CHECK_STR(v->version, "0.1.0");
        CHECK(str_has_prefix(v->runtime_version, "0.1.0"));
        protobuf_c_message_free_unpacked(resp, NULL);
}

static void test_status(void)
{
        Runtime__V1__StatusRequest req = RUNTIME__V1__STATUS_REQUEST__INIT;
        req.verbose = true;
        ProtobufCMessage *resp = NULL;
        CHECK(cri_call_simple(C, "Status", &req.base, &runtime__v1__status_response__descriptor, &resp,
                              NULL) == ERR_OK);
        if (resp == NULL)
                return;
        Runtime__V1__StatusResponse *s = (Runtime__V1__StatusResponse *)resp;
        CHECK(s->status && s->status->n_conditions == 2);
        if (s->status && s->status->n_conditions == 2) {
                CHECK_STR(s->status->conditions[0]->type, "RuntimeReady");
                CHECK(s->status->conditions[0]->status);
                CHECK_STR(s->status->conditions[1]->type, "NetworkReady");
                /* The test config points CNI at an empty dir: not ready, and says why. */
                CHECK(!s->status->conditions[1]->status);
                CHECK_STR(s->status->conditions[1]->reason, "NoCNIConfig");
        }
        bool has_default = false;
        for (size_t i = 0; i < s->n_runtime_handlers; i++)
                if (strcmp(s->runtime_handlers[i]->name, "") == 0)
                        has_default = true;
        CHECK(has_default);
        bool has_host = false, has_config = false;
        for (size_t i = 0; i < s->n_info; i++) {
                if (strcmp(s->info[i]->key, "host") == 0)
                        has_host = strstr(s->info[i]->value, "\"cgroupMode\"") != NULL;
                if (strcmp(s->info[i]->key, "config") == 0)
                        has_config = strstr(s->info[i]->value, D.root) != NULL;
        }
        CHECK(has_host);
        CHECK(has_config);
        protobuf_c_message_free_unpacked(resp, NULL);
}

static void test_runtime_config(void)
{
        Runtime__V1__RuntimeConfigRequest req = RUNTIME__V1__RUNTIME_CONFIG_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        CHECK(cri_call_simple(C, "RuntimeConfig", &req.base,
                              &runtime__v1__runtime_config_response__descriptor, &resp, NULL) == ERR_OK);
        if (resp == NULL)
                return;
        Runtime__V1__RuntimeConfigResponse *r = (Runtime__V1__RuntimeConfigResponse *)resp;
        CHECK(r->linux != NULL);
        /* The test config asks for cgroupfs explicitly. */
        CHECK(r->linux && r->linux->cgroup_driver == RUNTIME__V1__CGROUP_DRIVER__CGROUPFS);
        protobuf_c_message_free_unpacked(resp, NULL);

        Runtime__V1__UpdateRuntimeConfigRequest up = RUNTIME__V1__UPDATE_RUNTIME_CONFIG_REQUEST__INIT;
        Runtime__V1__RuntimeConfig rc = RUNTIME__V1__RUNTIME_CONFIG__INIT;
        Runtime__V1__NetworkConfig nc = RUNTIME__V1__NETWORK_CONFIG__INIT;
        nc.pod_cidr = "10.244.0.0/24";
        rc.network_config = &nc;
        up.runtime_config = &rc;
        CHECK(cri_call_simple(C, "UpdateRuntimeConfig", &up.base,
                              &runtime__v1__update_runtime_config_response__descriptor, NULL,
                              NULL) == ERR_OK);
        nc.pod_cidr = "not-a-cidr";
        CHECK(cri_call_simple(C, "UpdateRuntimeConfig", &up.base,
                              &runtime__v1__update_runtime_config_response__descriptor, NULL,
                              NULL) == ERR_INVALID);
}

static void test_unimplemented(void)
{
        Runtime__V1__CheckpointContainerRequest req = RUNTIME__V1__CHECKPOINT_CONTAINER_REQUEST__INIT;
        req.container_id = "x";
        char *msg = NULL;
        CHECK(cri_call_simple(C, "CheckpointContainer", &req.base,
                              &runtime__v1__checkpoint_container_response__descriptor, NULL,
                              &msg) == ERR_UNIMPLEMENTED);
        CHECK(msg && strstr(msg, "CheckpointContainer") != NULL);
        free(msg);
        /* A path that is not a CRI v1 method at all. */
        cleanup_err struct err e = ERR_INIT;
        uint8_t *out = NULL;
        size_t len = 0;
        CHECK(cri_client_call_raw(C, "/runtime.v1alpha2.RuntimeService/Version", NULL, 0, 5000, &out, &len,
                                  &e) < 0);
        CHECK(e.kind == ERR_UNIMPLEMENTED && e.msg && strstr(e.msg, "v1alpha2") != NULL);
}

static void test_malformed(void)
{
        static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x80};
        cleanup_err struct err e = ERR_INIT;
        uint8_t *out = NULL;
        size_t len = 0;
        CHECK(cri_client_call_raw(C, cri_method_path("Status"), junk, sizeof(junk), 5000, &out, &len, &e) <
              0);
        CHECK(e.kind == ERR_INVALID);
        CHECK(e.msg && strstr(e.msg, "malformed") != NULL);
        free(out);
        /* Still serving. */
        test_version();
}

struct slow_arg {
        atomic_bool done;
        enum err_kind kind;
};

static void *slow_status(void *arg)
{
        struct slow_arg *a = arg;
        Runtime__V1__StatusRequest req = RUNTIME__V1__STATUS_REQUEST__INIT;
        a->kind = cri_call_simple(C, "Status", &req.base, &runtime__v1__status_response__descriptor, NULL,
                                  NULL);
        atomic_store(&a->done, true);
        return NULL;
}

struct fast_arg {
        int ok;
        struct slow_arg *slow;
        bool slow_was_running;
};

static void *fast_version(void *arg)
{
        struct fast_arg *a = arg;
        for (int i = 0; i < 4; i++) {
                Runtime__V1__VersionRequest req = RUNTIME__V1__VERSION_REQUEST__INIT;
                if (cri_call_simple(C, "Version", &req.base, &runtime__v1__version_response__descriptor, NULL,
                                    NULL) == ERR_OK)
                        a->ok++;
        }
        a->slow_was_running = !atomic_load(&a->slow->done);
        return NULL;
}

/* The daemon runs with --debug-delay Status=4000: one Status call sleeps 4 s
 * in its handler. 50 concurrent clients calling Version must all be served
 * while it sleeps (ordering, not timing: each checks the slow call has not
 * returned yet when its own calls are done). */
static void test_concurrency(void)
{
        struct slow_arg slow = {0};
        pthread_t st;
        pthread_create(&st, NULL, slow_status, &slow);
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
        enum { N = 50 };
        pthread_t th[N];
        struct fast_arg fa[N];
        for (int i = 0; i < N; i++) {
                fa[i] = (struct fast_arg){.slow = &slow};
                pthread_create(&th[i], NULL, fast_version, &fa[i]);
        }
        int ok = 0, during = 0;
        for (int i = 0; i < N; i++) {
                pthread_join(th[i], NULL);
                ok += fa[i].ok;
                during += fa[i].slow_was_running;
        }
        CHECK(ok == N * 4);
        CHECK(during == N);
        pthread_join(st, NULL);
        CHECK(slow.kind == ERR_OK);
}

/* Several slow calls at once finish within one call's deadline each: the
 * daemon runs them side by side, not one after another. */
struct par_arg {
        enum err_kind kind;
};

static void *slow_with_deadline(void *arg)
{
        struct par_arg *a = arg;
        Runtime__V1__StatusRequest req = RUNTIME__V1__STATUS_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        cleanup_err struct err e = ERR_INIT;
        /* 4 s of delay, 12 s of deadline: 8 calls in series would need 32 s. */
        if (cri_client_call(C, cri_method_path("Status"), &req.base,
                            &runtime__v1__status_response__descriptor, 12000, &resp, &e) < 0)
                a->kind = e.kind;
        else
                protobuf_c_message_free_unpacked(resp, NULL);
        return NULL;
}

static void test_slow_in_parallel(void)
{
        enum { N = 8 };
        pthread_t th[N];
        struct par_arg pa[N] = {0};
        for (int i = 0; i < N; i++)
                pthread_create(&th[i], NULL, slow_with_deadline, &pa[i]);
        int ok = 0;
        for (int i = 0; i < N; i++) {
                pthread_join(th[i], NULL);
                ok += pa[i].kind == ERR_OK;
        }
        CHECK(ok == N);
}

static void test_stream(void)
{
        /* GetContainerEvents stays open with no events; the client's deadline
         * ends it, and the daemon keeps serving. */
        Runtime__V1__GetEventsRequest req = RUNTIME__V1__GET_EVENTS_REQUEST__INIT;
        struct cri_client_stream *s = NULL;
        cleanup_err struct err e = ERR_INIT;
        CHECK(cri_client_stream_open(C, cri_method_path("GetContainerEvents"), &req.base,
                                     &runtime__v1__container_event_response__descriptor, 1000, &s, &e) == 0);
        if (s) {
                ProtobufCMessage *msg = NULL;
                CHECK(cri_client_stream_next(s, &msg, &e) < 0);
                CHECK(e.kind == ERR_DEADLINE);
                cri_client_stream_close(s);
        }
        test_version();
}

static void test_config_typo(void)
{
        struct daemon bad;
        daemon_init(&bad, "{\"log_levle\": \"debug\"}");
        int st = daemon_expect_exit(&bad, NULL);
        CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 0);
        char *log = NULL;
        cleanup_err struct err e = ERR_INIT;
        CHECK(file_read_all(bad.log, &log, NULL, 0, &e) == 0);
        CHECK(log && strstr(log, "log_levle") != NULL);
        CHECK(log && strstr(log, bad.config) != NULL);
        free(log);
        daemon_cleanup(&bad);
}

static void test_second_daemon_refused(void)
{
        /* A second corrald on the same socket must refuse, not steal it. */
        struct daemon two;
        daemon_init(&two, NULL);
        free(two.socket);
        free(two.endpoint);
        two.socket = xstrdup(D.socket);
        two.endpoint = xstrdup(D.endpoint);
        int st = daemon_expect_exit(&two, NULL);
        CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 0);
        char *log = NULL;
        cleanup_err struct err e = ERR_INIT;
        CHECK(file_read_all(two.log, &log, NULL, 0, &e) == 0 && strstr(log, "already running") != NULL);
        free(log);
        daemon_cleanup(&two);
        test_version();
}

/* An orphan of a killed corrald that still holds its listening socket
 * accepts connections but never answers: a new corrald must take the socket
 * over (the liveness check is the lock, not a connect). */
static void test_stale_listener_replaced(void)
{
        struct daemon two;
        daemon_init(&two, NULL);
        CHECK(mkdir_p(two.state, 0711, NULL) == 0);
        int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", two.socket);
        CHECK(ls >= 0 && bind(ls, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(ls, 16) == 0);
        int st = 0;
        CHECK(daemon_start(&two, NULL, &st) == 0);
        /* Give a refusing corrald the time to exit. */
        bool alive = true;
        for (int i = 0; i < 100 && alive; i++) {
                alive = waitpid(two.pid, &st, WNOHANG) == 0;
                struct timespec ts = {0, 10 * 1000000L};
                nanosleep(&ts, NULL);
        }
        CHECK(alive);
        if (!alive) {
                two.pid = -1;
                daemon_dump_log(&two);
        }
        struct cri_client *c2 = NULL;
        cleanup_err struct err e = ERR_INIT;
        if (alive && cri_client_new(two.endpoint, &c2, &e) == 0) {
                Runtime__V1__VersionRequest req = RUNTIME__V1__VERSION_REQUEST__INIT;
                ProtobufCMessage *resp = NULL;
                CHECK(cri_call_simple(c2, "Version", &req.base, &runtime__v1__version_response__descriptor,
                                      &resp, NULL) == ERR_OK);
                if (resp)
                        protobuf_c_message_free_unpacked(resp, NULL);
                cri_client_free(c2);
        }
        close(ls);
        daemon_cleanup(&two);
}

int main(void)
{
        if (getenv("CORRALD") == NULL)
                SKIP("CORRALD is not set (run through ctest)");
        char cni_dir[] = "/tmp/corral-it-cni-XXXXXX";
        if (mkdtemp(cni_dir) == NULL)
                return 1;
        cleanup_free char *cfg =
                xasprintf("{\"cgroup_driver\": \"cgroupfs\", \"cni\": {\"conf_dir\": \"%s\"}}", cni_dir);
        daemon_init(&D, cfg);
        char *extra[] = {"--debug-delay", "Status=4000", NULL};
        if (daemon_start(&D, extra, NULL) < 0) {
                daemon_dump_log(&D);
                return 1;
        }
        cleanup_err struct err e = ERR_INIT;
        if (cri_client_new(D.endpoint, &C, &e) < 0) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
        }
        struct stat sb;
        CHECK(stat(D.socket, &sb) == 0 && (sb.st_mode & 0777) == 0600);
        test_version();
        test_status();
        test_runtime_config();
        test_unimplemented();
        test_malformed();
        test_concurrency();
        test_slow_in_parallel();
        test_stream();
        test_second_daemon_refused();
        test_stale_listener_replaced();
        test_config_typo();
        cri_client_free(C);
        int st = daemon_stop(&D);
        CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK(stat(D.socket, &sb) < 0); /* the socket is removed on SIGTERM */
        if (check_failures)
                daemon_dump_log(&D);
        daemon_cleanup(&D);
        rmdir(cni_dir);
        return check_report("spine");
}
