/* CNI results of every version we accept, and the pod IPs picked from them. */
#include <sys/socket.h>

#include "nettest.h"

static void test_cleanup(void) {}

int main(void)
{
        const char *v1 =
                "{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"cni0\",\"mac\":\"aa:bb:cc:dd:ee:01\"},"
                "{\"name\":\"veth1\",\"mac\":\"aa:bb:cc:dd:ee:02\"},"
                "{\"name\":\"eth0\",\"mac\":\"aa:bb:cc:dd:ee:03\",\"sandbox\":\"/run/corral/ns/p/net\"}],"
                "\"ips\":[{\"address\":\"fd00:10::5/64\",\"gateway\":\"fd00:10::1\",\"interface\":2},"
                "{\"address\":\"10.88.0.5/16\",\"gateway\":\"10.88.0.1\",\"interface\":2},"
                "{\"address\":\"10.88.0.1/16\",\"interface\":0}],"
                "\"routes\":[{\"dst\":\"0.0.0.0/0\"},{\"dst\":\"10.0.0.0/8\",\"gw\":\"10.88.0.1\"}],"
                "\"dns\":{\"nameservers\":[\"10.96.0.10\"],\"domain\":\"cluster.local\",\"search\":[\"a\","
                "\"b\"]}}";
        struct net_cni_result r;
        CHECK_OK(net_cni_result_parse(v1, strlen(v1), &r, e));
        CHECK(r.n_ifaces == 3 && r.n_ips == 3 && r.n_routes == 2);
        CHECK(!strcmp(r.cni_version, "1.0.0"));
        CHECK(r.ips[1].family == AF_INET && !strcmp(r.ips[1].ip, "10.88.0.5") && r.ips[1].interface == 2);
        CHECK(r.ips[0].family == AF_INET6 && !strcmp(r.ips[0].gateway, "fd00:10::1"));
        CHECK(!r.ifaces[0].sandbox && !strcmp(r.ifaces[2].sandbox, "/run/corral/ns/p/net"));
        CHECK(!strcmp(r.routes[1].gw, "10.88.0.1") && !r.routes[0].gw);
        CHECK(!strcmp(r.dns.servers[0], "10.96.0.10") && !strcmp(r.dns_domain, "cluster.local"));
        char **ips = net_cni_result_pod_ips(&r, NULL);
        /* eth0's addresses only, IPv4 first; the bridge's own is left out. */
        CHECK(strv_len(ips) == 2 && !strcmp(ips[0], "10.88.0.5") && !strcmp(ips[1], "fd00:10::5"));
        strv_free(ips);
        net_cni_result_free(&r);

        const char *v02 =
                "{\"cniVersion\":\"0.2.0\",\"ip4\":{\"ip\":\"10.1.2.3/24\",\"gateway\":\"10.1.2.1\","
                "\"routes\":[{\"dst\":\"0.0.0.0/0\"}]}}";
        CHECK_OK(net_cni_result_parse(v02, strlen(v02), &r, e));
        CHECK(r.n_ips == 1 && !strcmp(r.ips[0].ip, "10.1.2.3") && r.n_routes == 1);
        ips = net_cni_result_pod_ips(&r, NULL);
        CHECK(strv_len(ips) == 1 && !strcmp(ips[0], "10.1.2.3"));
        strv_free(ips);
        net_cni_result_free(&r);

        const char *bad[] = {"{", "[]", "{\"ips\":[{\"address\":\"300.1.1.1/8\"}]}", "{\"ips\":[{}]}"};
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                struct err e = ERR_INIT;
                CHECK(net_cni_result_parse(bad[i], strlen(bad[i]), &r, &e) < 0 && e.kind == ERR_INVALID);
                err_clear(&e);
        }
        printf("ok\n");
        return 0;
}
