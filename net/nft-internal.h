/* net: nftables batches over netlink, shared by hostport.c and
 * native_nft.c only. */
#ifndef CORRAL_NET_NFT_INTERNAL_H
#define CORRAL_NET_NFT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "net/net-internal.h"

struct mnl_nlmsg_batch;
struct nftnl_rule;

/* One transaction: messages between BEGIN and END, all or none. */
struct nft_batch {
        char *buf;
        struct mnl_nlmsg_batch *b;
        uint32_t seq;
        int nmsg;
        struct mnl_socket *sock; /* NULL: a socket of its own for the send */
};

void nft_batch_init(struct nft_batch *bt, size_t size);
void nft_batch_free(struct nft_batch *bt);
/* A message header of `type` for family inet in the batch (NLM_F_ACK added). */
struct nlmsghdr *nft_batch_hdr(struct nft_batch *bt, uint16_t type, uint16_t flags);
struct nlmsghdr *nft_batch_hdr_family(struct nft_batch *bt, uint16_t family, uint16_t type, uint16_t flags);
bool nft_batch_next(struct nft_batch *bt);
/* Adds the rule message and frees `r`. */
void nft_batch_rule(struct nft_batch *bt, uint16_t type, uint16_t flags, struct nftnl_rule *r);
/* Send, collect the acks; the first error fails the whole batch. */
int nft_batch_send(struct nft_batch *bt, const char *what, struct err *e);

/* The bridge plugin's ipMasq as one rule in table inet NET_HOSTPORT_TABLE,
 * chain postrouting, with the pod's hostPort tag (net_hostport_del
 * removes it with the rest):
 *   meta nfproto ipv4 ip saddr POD ip daddr != NET/PREFIX
 *   ip daddr != 224.0.0.0/4 masquerade
 * Addresses in network byte order. `ipt_chain` (may be NULL): a chain of
 * that name is made, empty, in table ip nat, in the same batch. */
int nft_masq_add(const char *pod_id, uint32_t pod_be, uint32_t net_be, int prefix, const char *ipt_chain,
                 struct err *e);
/* net_hostport_list over `sock` (NULL: a socket of its own). */
int nft_rules_of_pod(struct mnl_socket *sock, const char *table, const char *pod_id,
                     struct net_hostport_rule **out, size_t *n, struct err *e);

#endif
