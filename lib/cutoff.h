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

/* Socket inodes: the sockets a process inherited.  shutdown(2) acts on
 * the socket, which a fork shares between parent and child: a worker must
 * never shut a socket it inherited (its master's, for one), only those it
 * opened itself. */
typedef struct msup_inodeset {
    size_t count;
    uint64_t *ino; /* sorted */
} msup_inodeset_t;

/* Every socket open in this process now (at attach, before any pool
 * exists).  False when /proc/self/fd cannot be read or memory runs out. */
bool msup_inodeset_snapshot(msup_inodeset_t *out);
bool msup_inodeset_contains(const msup_inodeset_t *set, uint64_t ino);
void msup_inodeset_free(msup_inodeset_t *set);

/* What one cutoff did. */
typedef struct msup_cutoff_result {
    uint32_t scanned; /* descriptors looked at */
    uint32_t shut;    /* sockets shut down */
    uint32_t kept;    /* sockets to a cut peer kept because `keep` holds the peer too */
    uint32_t inherited; /* sockets to a cut peer left alone because they were inherited */
} msup_cutoff_result_t;

/*
 * Scans /proc/self/fd and shuts down (SHUT_RDWR, never close: the
 * descriptor stays the owner's, who sees EOF or EPIPE and closes it) every
 * connected TCP socket of this process whose peer is in `cut` and not in
 * `keep` (may be NULL) and not in `inherited` (may be NULL).  The socket
 * is checked again right before shutdown(2) (same inode, same peer): a
 * descriptor closed and reused for something else since the scan is left
 * alone.  Touches nothing outside this process.  Returns false when
 * /proc/self/fd cannot be read.
 */
bool msup_cutoff_sockets(const msup_addrset_t *cut, const msup_addrset_t *keep, const msup_inodeset_t *inherited,
                         msup_cutoff_result_t *result);

#endif
