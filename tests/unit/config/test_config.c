/* config: defaults with no file; a full file applies every key and its
 * cfg_to_json round-trips; each kind of error names the key path and the
 * file; root-derived paths follow root; lookups. */
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "config/config.h"
#include "tests/unit/check.h"

static char *dir;

static char *write_file(const char *name, const char *text)
{
        char *path = path_join(dir, name);
        struct err e = ERR_INIT;
        if (file_write_atomic(path, text, strlen(text), 0644, &e) < 0) {
                fprintf(stderr, "%s\n", e.msg);
                abort();
        }
        return path;
}

/* The default OCI handlers: "runc" and "crun" where the binaries are
 * (the host's /usr/sbin/runc and /usr/bin/crun here), type oci with their path. */
static size_t oci_defaults(const struct cfg *c)
{
        size_t n = 0;
        const char *names[] = {"runc", "crun"};
        for (size_t i = 0; i < 2; i++) {
                const struct cfg_runtime *rt = cfg_runtime_find(c, names[i]);
                if (rt == NULL || rt->type != CFG_RUNTIME_OCI)
                        continue;
                CHECK(rt->runtime_path && rt->runtime_path[0] == '/' && access(rt->runtime_path, X_OK) == 0);
                n++;
        }
        if (access("/usr/sbin/runc", X_OK) == 0)
                CHECK(cfg_runtime_find(c, "runc") != NULL);
        if (access("/usr/bin/crun", X_OK) == 0)
                CHECK(cfg_runtime_find(c, "crun") != NULL);
        return n;
}

static void check_defaults(const struct cfg *c)
{
        CHECK_STR(c->root, "/var/lib/corral");
        CHECK_STR(c->state, "/run/corral");
        CHECK_STR(c->listen, "unix:///run/corral/corral.sock");
        CHECK_STR(cfg_listen_path(c), "/run/corral/corral.sock");
        CHECK(c->log_level == LOG_LVL_INFO);
        CHECK(c->log_format == CFG_LOG_LOGFMT);
        CHECK(c->cgroup_driver == CFG_CGROUP_AUTO);
        CHECK(c->max_message_bytes == 16777216);
        CHECK_STR(c->cni.conf_dir, "/etc/cni/net.d");
        CHECK(strv_len(c->cni.bin_dirs) == 2);
        CHECK_STR(c->cni.bin_dirs[0], "/opt/cni/bin");
        CHECK_STR(c->cni.bin_dirs[1], "/usr/lib/cni");
        CHECK_STR(c->cni.cache_dir, "/var/lib/corral/cni");
        CHECK_STR(c->streaming.address, "127.0.0.1");
        CHECK(c->streaming.port == 0);
        CHECK_STR(c->streaming.tls_cert, "");
        CHECK_STR(c->streaming.tls_key, "");
        CHECK(c->streaming.token_ttl_seconds == 60);
        CHECK(c->n_registries == 0);
        CHECK(c->image.max_concurrent_downloads == 3);
        CHECK(c->image.pull_progress_timeout_seconds == 300);
        CHECK(c->image.gc_on_remove);
        CHECK(c->n_runtimes == 2 + oci_defaults(c));
        CHECK_STR(c->default_runtime, "");
        CHECK_STR(c->metrics.address, "");
        const struct cfg_runtime *d = cfg_runtime_find(c, NULL);
        CHECK(d && d->name[0] == '\0' && d->type == CFG_RUNTIME_NAMESPACE);
        CHECK(cfg_runtime_find(c, "") == d);
        const struct cfg_runtime *vm = cfg_runtime_find(c, "vm");
        CHECK(vm && vm->type == CFG_RUNTIME_VM && vm->vmm == CFG_VMM_QEMU);
        if (vm) {
                CHECK_STR(vm->kernel, "/var/lib/corral/vm/vmlinux");
                CHECK_STR(vm->initrd, "/var/lib/corral/vm/initramfs.img");
                CHECK_STR(vm->vmm_path, "");
                CHECK(vm->cpus == 1 && vm->memory_mib == 256 && vm->agent_timeout_seconds == 30);
        }
        CHECK(cfg_runtime_find(c, "nope") == NULL);
        CHECK(cfg_registry_find(c, "docker.io") == NULL);
}

static void test_defaults(void)
{
        cleanup_err struct err e = ERR_INIT;
        struct cfg c;
        cfg_init_defaults(&c);
        check_defaults(&c);
        cleanup_free char *missing = path_join(dir, "absent.json");
        CHECK(cfg_load(&c, missing, false, &e) == 0);
        CHECK(c.path == NULL);
        check_defaults(&c);
        CHECK(cfg_load(&c, missing, true, &e) < 0 && e.kind == ERR_NOT_FOUND);
        CHECK(e.msg && strstr(e.msg, missing));
        check_defaults(&c);
        /* an empty file, and one with only comments, set nothing */
        cleanup_free char *empty = write_file("empty.json", "\n");
        CHECK(cfg_load(&c, empty, true, &e) == 0);
        CHECK_STR(c.path, empty);
        check_defaults(&c);
        err_clear(&e);
        cleanup_free char *comments = write_file("comments.json", "/* corral */ { // nothing yet\n }\n");
        CHECK(cfg_load(&c, comments, true, &e) == 0);
        if (e.msg)
                fprintf(stderr, "%s\n", e.msg);
        check_defaults(&c);
        cfg_clear(&c);
        cfg_clear(&c); /* twice is fine */
}

static const char full[] =
        "{\n"
        "  \"root\": \"/data/corral\",\n"
        "  \"state\": \"/run/corral2\",\n"
        "  \"listen\": \"/run/corral2/c.sock\",\n"
        "  \"log_level\": \"trace\",\n"
        "  \"log_format\": \"json\",\n"
        "  \"cgroup_driver\": \"systemd\",\n"
        "  \"max_message_bytes\": 4194304,\n"
        "  \"cni\": {\"conf_dir\": \"/etc/cni/alt\", \"bin_dirs\": [\"/cni/bin\"], \"cache_dir\": "
        "\"/var/cache/cni\"},\n"
        "  \"streaming\": {\"address\": \"0.0.0.0\", \"port\": 10010, \"tls_cert\": \"/tls/c.pem\",\n"
        "                \"tls_key\": \"/tls/k.pem\", \"token_ttl_seconds\": 30},\n"
        "  \"registries\": {\n"
        "    \"docker.io\": {\"mirrors\": [\"https://mirror.gcr.io\", \"http://10.0.0.5:5000\"]},\n"
        "    \"myreg:5000\": {\"insecure\": true, \"ca_file\": \"/etc/ssl/myreg.pem\"}\n"
        "  },\n"
        "  \"image\": {\"max_concurrent_downloads\": 8, \"pull_progress_timeout_seconds\": 0, "
        "\"gc_on_remove\": false},\n"
        "  \"runtimes\": {\n"
        "    \"vm\": {\"vmm\": \"cloud-hypervisor\", \"vmm_path\": \"/usr/bin/cloud-hypervisor\", \"cpus\": "
        "2,\n"
        "           \"memory_mib\": 512, \"agent_timeout_seconds\": 10},\n"
        "    \"kata-like\": {\"type\": \"vm\", \"kernel\": \"/boot/guest\", \"initrd\": "
        "\"/boot/guest.img\", \"share\": \"9p\",\n"
        "                  \"virtiofsd_path\": \"/usr/lib/qemu/virtiofsd\"},\n"
        "    \"runc-like\": {\"type\": \"namespace\"},\n"
        "    \"youki-like\": {\"type\": \"oci\", \"runtime_path\": \"/bin/true\"}\n"
        "  },\n"
        "  \"default_runtime\": \"vm\",\n"
        "  \"metrics\": {\"address\": \"127.0.0.1:9090\"}\n"
        "}\n";

static void check_full(const struct cfg *c)
{
        CHECK_STR(c->root, "/data/corral");
        CHECK_STR(c->state, "/run/corral2");
        CHECK_STR(cfg_listen_path(c), "/run/corral2/c.sock");
        CHECK(c->log_level == LOG_LVL_TRACE);
        CHECK(c->log_format == CFG_LOG_JSON);
        CHECK(c->cgroup_driver == CFG_CGROUP_SYSTEMD);
        CHECK(c->max_message_bytes == 4194304);
        CHECK_STR(c->cni.conf_dir, "/etc/cni/alt");
        CHECK(strv_len(c->cni.bin_dirs) == 1);
        CHECK_STR(c->cni.bin_dirs[0], "/cni/bin");
        CHECK_STR(c->cni.cache_dir, "/var/cache/cni");
        CHECK_STR(c->streaming.address, "0.0.0.0");
        CHECK(c->streaming.port == 10010);
        CHECK_STR(c->streaming.tls_cert, "/tls/c.pem");
        CHECK_STR(c->streaming.tls_key, "/tls/k.pem");
        CHECK(c->streaming.token_ttl_seconds == 30);
        CHECK(c->n_registries == 2);
        const struct cfg_registry *hub = cfg_registry_find(c, "registry-1.docker.io");
        CHECK(hub && strcmp(hub->host, "docker.io") == 0);
        if (hub) {
                CHECK(strv_len(hub->mirrors) == 2);
                CHECK_STR(hub->mirrors[0], "https://mirror.gcr.io");
                CHECK_STR(hub->mirrors[1], "http://10.0.0.5:5000");
                CHECK(!hub->insecure);
                CHECK_STR(hub->ca_file, "");
        }
        const struct cfg_registry *my = cfg_registry_find(c, "myreg:5000");
        CHECK(my && my->insecure && my->mirrors && my->mirrors[0] == NULL);
        if (my)
                CHECK_STR(my->ca_file, "/etc/ssl/myreg.pem");
        CHECK(cfg_registry_find(c, "myreg") == NULL);
        CHECK(c->image.max_concurrent_downloads == 8);
        CHECK(c->image.pull_progress_timeout_seconds == 0);
        CHECK(!c->image.gc_on_remove);
        CHECK(c->n_runtimes == 5 + oci_defaults(c));
        const struct cfg_runtime *oci = cfg_runtime_find(c, "youki-like");
        CHECK(oci && oci->type == CFG_RUNTIME_OCI);
        if (oci)
                CHECK_STR(oci->runtime_path, "/bin/true");
        const struct cfg_runtime *vm = cfg_runtime_find(c, NULL); /* default_runtime = vm */
        CHECK(vm && strcmp(vm->name, "vm") == 0);
        if (vm) {
                CHECK(vm->type == CFG_RUNTIME_VM && vm->vmm == CFG_VMM_CLOUD_HYPERVISOR);
                CHECK_STR(vm->vmm_path, "/usr/bin/cloud-hypervisor");
                CHECK(vm->cpus == 2 && vm->memory_mib == 512 && vm->agent_timeout_seconds == 10);
                CHECK(vm->share == CFG_SHARE_AUTO && vm->virtiofsd_path && !*vm->virtiofsd_path);
                const struct cfg_runtime *k = cfg_runtime_find(c, "kata-like");
                CHECK(k && k->share == CFG_SHARE_9P);
                CHECK(k && k->virtiofsd_path && strcmp(k->virtiofsd_path, "/usr/lib/qemu/virtiofsd") == 0);
                /* not set in the file: follows the new root */
                CHECK_STR(vm->kernel, "/data/corral/vm/vmlinux");
                CHECK_STR(vm->initrd, "/data/corral/vm/initramfs.img");
        }
        const struct cfg_runtime *k = cfg_runtime_find(c, "kata-like");
        CHECK(k && k->type == CFG_RUNTIME_VM && k->vmm == CFG_VMM_QEMU && k->cpus == 1 &&
              k->memory_mib == 256);
        if (k) {
                CHECK_STR(k->kernel, "/boot/guest");
                CHECK_STR(k->initrd, "/boot/guest.img");
        }
        const struct cfg_runtime *r = cfg_runtime_find(c, "runc-like");
        CHECK(r && r->type == CFG_RUNTIME_NAMESPACE);
        CHECK(c->runtimes[0].name[0] == '\0' && c->runtimes[0].type == CFG_RUNTIME_NAMESPACE);
        CHECK_STR(c->default_runtime, "vm");
        CHECK_STR(c->metrics.address, "127.0.0.1:9090");
}

static void test_full_roundtrip(void)
{
        cleanup_err struct err e = ERR_INIT;
        cleanup_free char *path = write_file("full.json", full);
        struct cfg c;
        cfg_init_defaults(&c);
        CHECK(cfg_load(&c, path, true, &e) == 0);
        if (e.msg)
                fprintf(stderr, "%s\n", e.msg);
        CHECK_STR(c.path, path);
        check_full(&c);

        /* cfg_to_json re-parses, and loading it over defaults gives the same */
        struct sbuf j1 = {0};
        cfg_to_json(&c, &j1);
        char ebuf[256];
        yajl_val v = yajl_tree_parse(j1.buf, ebuf, sizeof(ebuf));
        CHECK(v && YAJL_IS_OBJECT(v));
        const char *rp[] = {"registries", "myreg:5000", "insecure", NULL};
        CHECK(v && YAJL_IS_TRUE(yajl_tree_get(v, rp, yajl_t_true)));
        yajl_tree_free(v);
        cleanup_free char *again = write_file("again.json", j1.buf);
        struct cfg d;
        cfg_init_defaults(&d);
        CHECK(cfg_load(&d, again, true, &e) == 0);
        if (e.msg)
                fprintf(stderr, "%s\n", e.msg);
        check_full(&d);
        struct sbuf j2 = {0};
        cfg_to_json(&d, &j2);
        CHECK_STR(j1.buf, j2.buf);

        /* the defaults round-trip too */
        struct cfg f, g;
        cfg_init_defaults(&f);
        struct sbuf j3 = {0}, j4 = {0};
        cfg_to_json(&f, &j3);
        cfg_init_defaults(&g);
        CHECK(cfg_load_buffer(&g, j3.buf, j3.len, "defaults.json", &e) == 0);
        check_defaults(&g);
        cfg_to_json(&g, &j4);
        CHECK_STR(j3.buf, j4.buf);

        /* copy is deep */
        struct cfg h;
        cfg_copy(&h, &c);
        cfg_clear(&c);
        check_full(&h);
        cfg_clear(&h);
        cfg_clear(&d);
        cfg_clear(&f);
        cfg_clear(&g);
        sbuf_free(&j1);
        sbuf_free(&j2);
        sbuf_free(&j3);
        sbuf_free(&j4);
}

/* Loads `text` over defaults; expects ERR_INVALID whose message holds
 * every one of the NULL-terminated fragments (and the file name). */
static void expect_error(const char *text, const char *const *frags)
{
        cleanup_err struct err e = ERR_INIT;
        cleanup_free char *path = write_file("bad.json", text);
        struct cfg c;
        cfg_init_defaults(&c);
        int r = cfg_load(&c, path, true, &e);
        CHECK(r < 0 && e.kind == ERR_INVALID);
        CHECK(e.msg && strstr(e.msg, path));
        for (size_t i = 0; frags[i]; i++) {
                bool ok = e.msg && strstr(e.msg, frags[i]);
                CHECK(ok);
                if (!ok)
                        fprintf(stderr, "  wanted \"%s\" in: %s\n", frags[i], e.msg ? e.msg : "(no error)");
        }
        if (e.msg)
                fprintf(stderr, "ok: %s\n", e.msg);
        check_defaults(&c); /* a failed load changes nothing */
        cfg_clear(&c);
}

#define EXPECT(text, ...) expect_error(text, (const char *const[]){__VA_ARGS__, NULL})

static void test_errors(void)
{
        /* unknown keys, with and without a near miss */
        EXPECT("{\"roots\": \"/x\"}", "unknown key roots", "did you mean \"root\"");
        EXPECT("{\"frobnicate\": 1}", "unknown key frobnicate");
        EXPECT("{\"streaming\": {\"prot\": 1}}", "unknown key streaming.prot", "did you mean \"port\"");
        EXPECT("{\"registries\": {\"myreg:5000\": {\"insecrue\": true}}}",
               "unknown key registries.\"myreg:5000\".insecrue", "did you mean \"insecure\"");
        EXPECT("{\"runtimes\": {\"vm\": {\"memory_mb\": 1}}}", "unknown key runtimes.vm.memory_mb");
        EXPECT("{\"runtimes\": {\"vm\": {\"share\": \"nfs\"}}}", "runtimes.vm.share");
        EXPECT("{\"runtimes\": {\"vm\": {\"vmm\": \"cloud-hypervisor\", \"share\": \"9p\"}}}",
               "runtimes.vm.share: cloud-hypervisor has no 9p");
        EXPECT("{\"runtimes\": {\"vm\": {\"virtiofsd_path\": \"virtiofsd\"}}}", "runtimes.vm.virtiofsd_path");
        EXPECT("{\"runtimes\": {\"x\": {\"share\": \"9p\"}}}", "runtimes.x.share is set");
        /* oci handlers: the binary is required, must exist, and is theirs alone */
        EXPECT("{\"runtimes\": {\"o\": {\"type\": \"oci\"}}}", "runtimes.o.runtime_path",
               "needs the OCI runtime binary");
        EXPECT("{\"runtimes\": {\"o\": {\"type\": \"oci\", \"runtime_path\": \"/nonexistent/crun\"}}}",
               "runtimes.o.runtime_path", "/nonexistent/crun");
        EXPECT("{\"runtimes\": {\"o\": {\"type\": \"oci\", \"runtime_path\": \"crun\"}}}",
               "runtimes.o.runtime_path");
        EXPECT("{\"runtimes\": {\"vm\": {\"runtime_path\": \"/bin/true\"}}}",
               "runtimes.vm.runtime_path is set", "(oci only)");
        EXPECT("{\"runtimes\": {\"o\": {\"type\": \"oci\", \"runtime_path\": \"/bin/true\", \"cpus\": 2}}}",
               "runtimes.o.cpus is set", "(vm only)");
        EXPECT("{\"image\": {\"gc_on_remvoe\": true}}", "image.gc_on_remvoe",
               "did you mean \"gc_on_remove\"");
        /* wrong types */
        EXPECT("{\"registries\": {\"myreg:5000\": {\"insecure\": \"yes\"}}}",
               "registries.\"myreg:5000\".insecure: expected a boolean, got a string");
        EXPECT("{\"streaming\": {\"port\": \"80\"}}", "streaming.port: expected an integer, got a string");
        EXPECT("{\"streaming\": {\"port\": 1.5}}", "streaming.port: expected an integer, got 1.5");
        EXPECT("{\"cni\": {\"bin_dirs\": \"/opt/cni/bin\"}}", "cni.bin_dirs: expected an array of strings");
        EXPECT("{\"cni\": {\"bin_dirs\": [\"/a\", 3]}}", "cni.bin_dirs: element 1: expected a string");
        EXPECT("{\"cni\": []}", "cni: expected an object, got an array");
        EXPECT("{\"root\": null}", "root: expected a string, got null");
        EXPECT("[1, 2]", "top level must be a JSON object");
        /* enums and ranges */
        EXPECT("{\"log_level\": \"verbose\"}",
               "log_level: \"verbose\" is not one of error|warn|info|debug|trace");
        EXPECT("{\"runtimes\": {\"vm\": {\"vmm\": \"qemuu\"}}}", "runtimes.vm.vmm", "did you mean \"qemu\"");
        EXPECT("{\"cgroup_driver\": \"systemd2\"}", "cgroup_driver", "auto|cgroupfs|systemd");
        EXPECT("{\"streaming\": {\"port\": 70000}}", "streaming.port: 70000 is out of range [0, 65535]");
        EXPECT("{\"image\": {\"max_concurrent_downloads\": 0}}",
               "image.max_concurrent_downloads: 0 is out of range");
        EXPECT("{\"max_message_bytes\": -1}", "max_message_bytes: -1 is out of range");
        /* bad JSON: file:line:column */
        EXPECT("{\n  \"root\": \"/x\",\n  oops\n}\n", "bad.json:3:3: invalid JSON");
        EXPECT("{\"root\": \"/x\"", "invalid JSON");
        EXPECT("{\"root\": \"/x\"} trailing", "invalid JSON");
        EXPECT("{\"root\": \"/a\", \"root\": \"/b\"}", "root: duplicate key");
        /* values and conflicts */
        EXPECT("{\"listen\": \"tcp://0.0.0.0:1234\"}", "listen", "must be unix:///path or an absolute path");
        EXPECT("{\"root\": \"relative/dir\"}", "root", "absolute path");
        EXPECT("{\"root\": \"/run/corral\"}", "root and state");
        EXPECT("{\"streaming\": {\"tls_cert\": \"/c.pem\"}}",
               "streaming.tls_cert is set but streaming.tls_key is not");
        EXPECT("{\"registries\": {\"r\": {\"mirrors\": [\"mirror.example\"]}}}", "registries.r.mirrors[0]",
               "http:// or https://");
        EXPECT("{\"registries\": {\"https://r\": {}}}", "registries.\"https://r\"", "without scheme");
        EXPECT("{\"runtimes\": {\"fast\": {\"vmm\": \"qemu\"}}}",
               "runtimes.fast.vmm is set but runtimes.fast.type is \"namespace\"");
        EXPECT("{\"runtimes\": {\"\": {\"type\": \"vm\"}}}", "runtimes.\"\".type",
               "must be of type \"namespace\"");
        EXPECT("{\"default_runtime\": \"kata\"}", "default_runtime: \"kata\" names no handler", "\"vm\"");
        EXPECT("{\"metrics\": {\"address\": \"localhost\"}}", "metrics.address", "host:port");
        EXPECT("{\"streaming\": {\"port\": 9090}, \"metrics\": {\"address\": \"127.0.0.1:9090\"}}",
               "metrics.address and streaming.address/port");
}

static void test_root_follow(void)
{
        cleanup_err struct err e = ERR_INIT;
        struct cfg c;
        cfg_init_defaults(&c);
        const char *t1 = "{\"root\": \"/srv/corral\"}";
        CHECK(cfg_load_buffer(&c, t1, strlen(t1), "t1.json", &e) == 0);
        CHECK_STR(c.cni.cache_dir, "/srv/corral/cni");
        CHECK_STR(cfg_runtime_find(&c, "vm")->kernel, "/srv/corral/vm/vmlinux");
        /* explicit values stay; "" means derived */
        const char *t2 = "{\"root\": \"/other\", \"cni\": {\"cache_dir\": \"/srv/corral/cni\"},"
                         " \"runtimes\": {\"vm\": {\"initrd\": \"\"}}}";
        CHECK(cfg_load_buffer(&c, t2, strlen(t2), "t2.json", &e) == 0);
        CHECK_STR(c.cni.cache_dir, "/srv/corral/cni");
        CHECK_STR(cfg_runtime_find(&c, "vm")->kernel, "/other/vm/vmlinux");
        CHECK_STR(cfg_runtime_find(&c, "vm")->initrd, "/other/vm/initramfs.img");
        cfg_clear(&c);
}

int main(void)
{
        char tmpl[] = "/tmp/corral-config-XXXXXX";
        dir = mkdtemp(tmpl);
        if (!dir)
                return 1;
        test_defaults();
        test_full_roundtrip();
        test_errors();
        test_root_follow();
        (void)rm_rf(dir, NULL);
        return check_report("test_config");
}
