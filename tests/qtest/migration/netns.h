/*
 * Two hosts on one machine: a network namespace each, joined by a veth
 * pair, addressed from 198.18.0.0/15 (set aside for network benchmarks;
 * the addresses exist only inside the namespaces made here, so nothing
 * leaves them).  The link can be shaped with a TBF qdisc (rate only: no
 * delay, loss or reordering, which would need netem), cut and restored.
 * Processes join a host with qtest_set_netns(netpair_ns(p, side)).
 */
#ifndef MIGRATION_TEST_NETNS_H
#define MIGRATION_TEST_NETNS_H

#include "qemu/osdep.h"

enum { NET_A, NET_B };

typedef struct NetPair NetPair;

/*
 * Make the two hosts, with a link of @rate ("1gbit", "10gbit"; NULL for
 * the veth's own speed).  Returns NULL after g_test_skip() with the
 * reason when this machine cannot (not root, no `ip` or `tc`, no netns,
 * veth or TBF).
 */
NetPair *netpair_new(const char *rate);
void netpair_free(NetPair *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NetPair, netpair_free)

/* The namespace's name, for qtest_set_netns(). */
const char *netpair_ns(NetPair *p, int side);
/* "198.18.0.1" (NET_A) or "198.18.0.2" (NET_B). */
const char *netpair_addr(NetPair *p, int side);
/* "tcp:ADDR:PORT" of @side. */
char *netpair_uri(NetPair *p, int side, unsigned port);
/* The link's rate in bytes/s, or 0 when unshaped. */
uint64_t netpair_rate(NetPair *p);
/*
 * Cut the link (NET_B's end goes down: both sides' packets are dropped,
 * NET_A keeps its route), or restore it.
 */
void netpair_link(NetPair *p, bool up);

#endif
