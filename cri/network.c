/* The network side of Status: NetworkReady comes from the CNI config as it
 * is now (configs may appear after corrald started). */
#include "config/config.h"
#include "cri/cri-internal.h"
#include "net/net.h"

int cri_network_init(struct cri_daemon *d, struct err *e)
{
        const struct cfg *cfg = d->cfg;
        struct net_cni_opts o = {
                .conf_dir = cfg->cni.conf_dir,
                .bin_dirs = cfg->cni.bin_dirs,
                .cache_dir = cfg->cni.cache_dir,
                .native = cfg->cni.native,
        };
        d->cni = net_cni_new(&o, e);
        return d->cni ? 0 : err_wrap(e, "CNI");
}

void cri_network_fini(struct cri_daemon *d)
{
        net_cni_free(d->cni);
        d->cni = NULL;
}

bool cri_network_ready(struct cri_daemon *d, char **reason, char **message)
{
        struct net_cni_status st = {0};
        net_cni_status(d->cni, &st);
        bool ready = st.ready;
        *reason = xstrdup(st.reason ? st.reason : "");
        *message = xstrdup(st.message ? st.message : "");
        net_cni_status_free(&st);
        return ready;
}
