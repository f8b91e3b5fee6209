/* A pod's hostname, hosts and resolv.conf, written atomically into its dir
 * for the runtime to bind-mount into every container. */
#include <errno.h>
#include <string.h>

#include "net/net-internal.h"

static bool dns_empty(const struct net_dns *d)
{
        return !d || ((!d->servers || !d->servers[0]) && (!d->searches || !d->searches[0]) &&
                      (!d->options || !d->options[0]));
}

char *net_podfiles_hosts(const struct net_podfiles *p, struct err *e)
{
        if (p->host_network) {
                char *buf = NULL;
                size_t len;
                const char *src = p->host_hosts ? p->host_hosts : "/etc/hosts";
                if (file_read_all(src, &buf, &len, 1 << 20, e) < 0)
                        return NULL;
                return buf;
        }
        /* The same lines kubelet writes for a pod's managed hosts file. */
        struct sbuf b = {0};
        sbuf_puts(&b, "# Kubernetes-managed hosts file (corral).\n"
                      "127.0.0.1\tlocalhost\n"
                      "::1\tlocalhost ip6-localhost ip6-loopback\n"
                      "fe00::0\tip6-localnet\n"
                      "fe00::0\tip6-mcastprefix\n"
                      "fe00::1\tip6-allnodes\n"
                      "fe00::2\tip6-allrouters\n");
        if (p->hostname && p->hostname[0])
                for (size_t i = 0; p->pod_ips && p->pod_ips[i]; i++)
                        sbuf_printf(&b, "%s\t%s\n", p->pod_ips[i], p->hostname);
        return sbuf_steal(&b);
}

static int check_word(const char *what, const char *s, struct err *e)
{
        if (!s[0] || strpbrk(s, " \t\r\n"))
                return err_set(e, ERR_INVALID, "DNS %s \"%s\" is empty or has whitespace", what, s);
        return 0;
}

char *net_podfiles_resolv(const struct net_podfiles *p, struct err *e)
{
        if (dns_empty(p->dns)) {
                char *buf = NULL;
                size_t len;
                const char *src = p->host_resolv ? p->host_resolv : "/etc/resolv.conf";
                struct err ie = ERR_INIT;
                if (file_read_all(src, &buf, &len, 1 << 20, &ie) < 0) {
                        if (ie.errnum == ENOENT) { /* a host without resolv.conf: an empty one */
                                err_clear(&ie);
                                return xstrdup("");
                        }
                        err_move(e, &ie);
                        return NULL;
                }
                return buf;
        }
        struct sbuf b = {0};
        const struct net_dns *d = p->dns;
        for (size_t i = 0; d->servers && d->servers[i]; i++) {
                if (check_word("server", d->servers[i], e) < 0)
                        goto bad;
                sbuf_printf(&b, "nameserver %s\n", d->servers[i]);
        }
        if (d->searches && d->searches[0]) {
                sbuf_puts(&b, "search");
                for (size_t i = 0; d->searches[i]; i++) {
                        if (check_word("search domain", d->searches[i], e) < 0)
                                goto bad;
                        sbuf_printf(&b, " %s", d->searches[i]);
                }
                sbuf_putc(&b, '\n');
        }
        if (d->options && d->options[0]) {
                sbuf_puts(&b, "options");
                for (size_t i = 0; d->options[i]; i++) {
                        if (check_word("option", d->options[i], e) < 0)
                                goto bad;
                        sbuf_printf(&b, " %s", d->options[i]);
                }
                sbuf_putc(&b, '\n');
        }
        return sbuf_steal(&b);
bad:
        sbuf_free(&b);
        return NULL;
}

int net_podfiles_write(const char *dir, const struct net_podfiles *p, struct err *e)
{
        if (p->hostname && (strlen(p->hostname) > 64 || strpbrk(p->hostname, " \t\r\n/")))
                return err_set(e, ERR_INVALID, "invalid hostname \"%s\"", p->hostname);
        cleanup_free char *hosts = net_podfiles_hosts(p, e);
        if (!hosts)
                return err_wrap(e, "pod hosts file");
        cleanup_free char *resolv = net_podfiles_resolv(p, e);
        if (!resolv)
                return err_wrap(e, "pod resolv.conf");
        cleanup_free char *hostname = xasprintf("%s\n", p->hostname ? p->hostname : "");
        if (mkdir_p(dir, 0755, e) < 0)
                return -1;
        const struct {
                const char *name;
                const char *text;
        } files[] = {{"hostname", hostname}, {"hosts", hosts}, {"resolv.conf", resolv}};
        for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
                cleanup_free char *path = path_join(dir, files[i].name);
                if (file_replace(path, files[i].text, strlen(files[i].text), 0644, e) < 0)
                        return err_wrap(e, "write %s", path);
        }
        return 0;
}
