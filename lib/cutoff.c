/* cutoff.c: find this process's TCP sockets to given peers (/proc/self/fd + getpeername) and shut them down. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cutoff.h"

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool msup_peer_from_sockaddr(const struct sockaddr *sa, socklen_t len, msup_peer_addr_t *out)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        out->family = AF_INET;
        out->port = ntohs(in->sin_port);
        memcpy(out->addr, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        out->port = ntohs(in6->sin6_port);
        if (memcmp(in6->sin6_addr.s6_addr, v4_mapped_prefix, sizeof v4_mapped_prefix) == 0) {
            out->family = AF_INET;
            memcpy(out->addr, in6->sin6_addr.s6_addr + 12, 4);
        } else {
            out->family = AF_INET6;
            memcpy(out->addr, in6->sin6_addr.s6_addr, 16);
        }
        return true;
    }
    return false;
}

static bool same_peer(const msup_peer_addr_t *a, const msup_peer_addr_t *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) == 0;
}

bool msup_addrset_contains(const msup_addrset_t *set, const msup_peer_addr_t *a)
{
    if (set == NULL)
        return false;
    for (uint32_t i = 0; i < set->count; i++)
        if (same_peer(&set->addr[i], a))
            return true;
    return false;
}

bool msup_addrset_add(msup_addrset_t *set, const msup_peer_addr_t *a)
{
    if (msup_addrset_contains(set, a))
        return true;
    if (set->count >= MSUP_ADDRSET_MAX)
        return false;
    set->addr[set->count++] = *a;
    return true;
}

int msup_addrset_add_host(msup_addrset_t *set, const char *host, uint16_t port)
{
    /* The driver writes IPv6 hosts in brackets ("[::1]"). */
    char name[256];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof name)
        return 0;
    memcpy(name, host, n);
    name[n] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    struct addrinfo *res = NULL;
    if (getaddrinfo(name, NULL, &hints, &res) != 0)
        return 0;
    int added = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        msup_peer_addr_t a;
        if (!msup_peer_from_sockaddr(ai->ai_addr, ai->ai_addrlen, &a))
            continue;
        a.port = port;
        uint32_t before = set->count;
        if (msup_addrset_add(set, &a) && set->count > before)
            added++;
    }
    freeaddrinfo(res);
    return added;
}

/* The TCP peer of descriptor fd, if it is a connected TCP socket. */
static bool tcp_peer_of(int fd, msup_peer_addr_t *peer)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return false; /* not a socket, or not connected */
    if (!msup_peer_from_sockaddr((struct sockaddr *)&ss, len, peer))
        return false;
    int type = 0;
    socklen_t tlen = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type == SOCK_STREAM;
}

bool msup_cutoff_sockets(const msup_addrset_t *cut, const msup_addrset_t *keep, msup_cutoff_result_t *result)
{
    msup_cutoff_result_t r = {0};
    DIR *dir = cut != NULL && cut->count > 0 ? opendir("/proc/self/fd") : NULL;
    if (dir == NULL) {
        if (result != NULL)
            *result = r;
        return cut == NULL || cut->count == 0;
    }
    int self = dirfd(dir);
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end != '\0' || fd < 0 || fd == self)
            continue;
        r.scanned++;
        msup_peer_addr_t peer;
        if (!tcp_peer_of((int)fd, &peer) || !msup_addrset_contains(cut, &peer))
            continue;
        if (msup_addrset_contains(keep, &peer)) {
            r.kept++;
            continue;
        }
        /* Read again right before: the owner may have closed it and the
         * number may now be another socket (or a file). */
        msup_peer_addr_t again;
        if (!tcp_peer_of((int)fd, &again) || !same_peer(&again, &peer))
            continue;
        if (shutdown((int)fd, SHUT_RDWR) == 0)
            r.shut++;
    }
    closedir(dir);
    if (result != NULL)
        *result = r;
    return true;
}
