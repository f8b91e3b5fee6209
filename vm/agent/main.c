/* corral-agent: init and agent of a corral microVM (see agent-internal.h).
 *
 *   corral-agent            as pid 1 in the guest: set up, serve the port
 *   corral-agent --fd N     serve the protocol on fd N (tests, debugging)
 *   /sbin/modprobe -q -- M  (a symlink to it) the guest kernel's module
 *                           loader: loads M from /lib/modules/M.deps
 */
#include <errno.h>
#include <string.h>
#include <sys/reboot.h>
#include <time.h>

#include "vm/agent/agent-internal.h"
#include "vm/agent/transport-internal.h"

/* pid 1 must never exit (the kernel panics): power off instead, so the
 * host sees the VMM end and reports it. */
static void __attribute__((noreturn)) poweroff(void)
{
        sync();
        reboot(RB_POWER_OFF);
        /* microvm without ACPI power off: a reset ends QEMU (-no-reboot). */
        reboot(RB_AUTOBOOT);
        for (;;)
                pause();
}

/* The kernel runs /sbin/modprobe for a module it wants (request_module:
 * `brctl addbr` wants "bridge"). Only modules the image ships on demand
 * are there; anything else is "not found", as for a module not built. */
static int modprobe(int argc, char **argv)
{
        const char *name = NULL;
        bool opts = true;
        for (int i = 1; i < argc && !name; i++) {
                if (opts && strcmp(argv[i], "--") == 0)
                        opts = false;
                else if (!opts || argv[i][0] != '-')
                        name = argv[i];
        }
        if (!name || !*name || strchr(name, '/') || strlen(name) > 64)
                return 1;
        char mod[80];
        size_t k = 0;
        for (const char *c = name; *c; c++)
                mod[k++] = *c == '-' ? '_' : *c;
        mod[k] = '\0';
        char deps[128];
        snprintf(deps, sizeof(deps), "/lib/modules/%s.deps", mod);
        if (access(deps, R_OK) != 0)
                return 1;
        struct err e = ERR_INIT;
        if (agent_load_modules(deps, &e) < 0) {
                fprintf(stderr, "modprobe %s: %s\n", mod, e.msg);
                err_clear(&e);
                return 1;
        }
        return 0;
}

int main(int argc, char **argv)
{
        log_set_level(LOG_LVL_INFO);
        const char *base = strrchr(argv[0], '/');
        if (strcmp(base ? base + 1 : argv[0], "modprobe") == 0)
                return modprobe(argc, argv);
        if (argc == 3 && strcmp(argv[1], "--fd") == 0)
                return agent_serve(atoi(argv[2]), false, false) < 0 ? 1 : 0;
        if (getpid() != 1) {
                fprintf(stderr, "corral-agent: run as pid 1 in a corral VM, or with --fd N\n");
                return 2;
        }
        struct err e = ERR_INIT;
        int64_t t0 = time_mono_ns();
        if (agent_init_system(&e) < 0) {
                log_error("agent", "init failed: %s", e.msg);
                poweroff();
        }
        struct agent_transport t = {.listen_fd = -1};
        int fd = agent_transport_open(&t, 10000, &e);
        if (fd < 0) {
                log_error("agent", "%s", e.msg);
                poweroff();
        }
        log_info("agent", "ready transport=%s setup_ms=%lld", t.kind,
                 (long long)((time_mono_ns() - t0) / 1000000));
        int r = agent_serve(fd, t.reconnect, true);
        /* vsock: a host that went away may come back (a handshake given up
         * early); each connection is a fresh session. */
        while (r == 0 && !t.reconnect) {
                close(fd);
                fd = agent_transport_accept(&t, &e);
                if (fd < 0)
                        break;
                r = agent_serve(fd, false, true);
        }
        agent_transport_close(&t);
        log_info("agent", "shutting down (serve returned %d)", r);
        poweroff();
}
