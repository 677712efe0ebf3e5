/* cutoff.h: shut down (never close) this process's own TCP sockets to a set of peer addresses (internal). */
#ifndef MONGOSUP_CUTOFF_H
#define MONGOSUP_CUTOFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* One TCP peer: an IPv4 address is kept as IPv4 even when a socket shows
 * it IPv4-mapped (::ffff:a.b.c.d), so both spellings compare equal. */
typedef struct msup_peer_addr {
    uint16_t family; /* AF_INET or AF_INET6 */
    uint16_t port;   /* host byte order */
    uint8_t addr[16];
} msup_peer_addr_t;

#define MSUP_ADDRSET_MAX 64

/* A small fixed set of peers (no allocation: it lives in the worker's
 * per-cluster state). Adding beyond MSUP_ADDRSET_MAX is refused. */
typedef struct msup_addrset {
    uint32_t count;
    msup_peer_addr_t addr[MSUP_ADDRSET_MAX];
} msup_addrset_t;

/* Normalises a socket address; false for anything but AF_INET/AF_INET6. */
bool msup_peer_from_sockaddr(const struct sockaddr *sa, socklen_t len, msup_peer_addr_t *out);

bool msup_addrset_add(msup_addrset_t *set, const msup_peer_addr_t *a);
bool msup_addrset_contains(const msup_addrset_t *set, const msup_peer_addr_t *a);

/* Adds every TCP address `host` resolves to with `port`: a numeric
 * address without any lookup, a name through getaddrinfo (which may block
 * on DNS: call it only off the hot path).  Returns the number added. */
int msup_addrset_add_host(msup_addrset_t *set, const char *host, uint16_t port);

/* What one cutoff did. */
typedef struct msup_cutoff_result {
    uint32_t scanned; /* descriptors looked at */
    uint32_t shut;    /* sockets shut down */
    uint32_t kept;    /* sockets to a cut peer kept because `keep` holds the peer too */
} msup_cutoff_result_t;

/*
 * Scans /proc/self/fd and shuts down (SHUT_RDWR, never close: the
 * descriptor stays the owner's, who sees EOF or EPIPE and closes it) every
 * connected TCP socket of this process whose peer is in `cut` and not in
 * `keep` (may be NULL).  The peer is read again right before shutdown(2):
 * a descriptor closed and reused for something else since the scan is left
 * alone.  Touches nothing outside this process.  Returns false when
 * /proc/self/fd cannot be read.
 */
bool msup_cutoff_sockets(const msup_addrset_t *cut, const msup_addrset_t *keep, msup_cutoff_result_t *result);

#endif
