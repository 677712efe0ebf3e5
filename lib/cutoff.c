/* cutoff.c: find this process's TCP sockets to given peers (/proc/self/fd + getpeername) and shut them down. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

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

/* The TCP peer and socket inode of descriptor fd, if it is a connected
 * TCP socket. */
static bool tcp_peer_of(int fd, msup_peer_addr_t *peer, uint64_t *ino)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return false; /* not a socket, or not connected */
    if (!msup_peer_from_sockaddr((struct sockaddr *)&ss, len, peer))
        return false;
    int type = 0;
    socklen_t tlen = sizeof type;
    struct stat st;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_STREAM || fstat(fd, &st) != 0)
        return false;
    *ino = (uint64_t)st.st_ino;
    return true;
}

/* Calls fn for every descriptor number of this process but the
 * directory's own; false when /proc/self/fd cannot be read. */
static bool each_fd(void (*fn)(int fd, void *arg), void *arg)
{
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return false;
    int self = dirfd(dir);
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (end != de->d_name && *end == '\0' && fd >= 0 && fd != self)
            fn((int)fd, arg);
    }
    closedir(dir);
    return true;
}

typedef struct snapshot_ctx {
    msup_inodeset_t *set;
    size_t cap;
    bool oom;
} snapshot_ctx_t;

static void note_socket(int fd, void *arg)
{
    snapshot_ctx_t *x = arg;
    struct stat st;
    if (x->oom || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
        return;
    if (x->set->count == x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 16;
        uint64_t *grown = realloc(x->set->ino, cap * sizeof *grown);
        if (grown == NULL) {
            x->oom = true;
            return;
        }
        x->set->ino = grown;
        x->cap = cap;
    }
    x->set->ino[x->set->count++] = (uint64_t)st.st_ino;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

bool msup_inodeset_snapshot(msup_inodeset_t *out)
{
    *out = (msup_inodeset_t){0};
    snapshot_ctx_t x = {.set = out};
    if (!each_fd(note_socket, &x) || x.oom) {
        msup_inodeset_free(out);
        return false;
    }
    if (out->count > 1)
        qsort(out->ino, out->count, sizeof *out->ino, cmp_u64);
    return true;
}

bool msup_inodeset_contains(const msup_inodeset_t *set, uint64_t ino)
{
    return set != NULL && set->count > 0 && bsearch(&ino, set->ino, set->count, sizeof ino, cmp_u64) != NULL;
}

void msup_inodeset_free(msup_inodeset_t *set)
{
    free(set->ino);
    *set = (msup_inodeset_t){0};
}

typedef struct cut_ctx {
    const msup_addrset_t *cut, *keep;
    const msup_inodeset_t *inherited;
    msup_cutoff_result_t r;
} cut_ctx_t;

static void cut_one(int fd, void *arg)
{
    cut_ctx_t *x = arg;
    x->r.scanned++;
    msup_peer_addr_t peer;
    uint64_t ino;
    if (!tcp_peer_of(fd, &peer, &ino) || !msup_addrset_contains(x->cut, &peer))
        return;
    if (msup_addrset_contains(x->keep, &peer)) {
        x->r.kept++;
        return;
    }
    if (msup_inodeset_contains(x->inherited, ino)) {
        x->r.inherited++;
        return;
    }
    /* Checked again right before: the owner may have closed it and the
     * number may now be another socket (or a file). */
    msup_peer_addr_t again;
    uint64_t ino_again;
    if (!tcp_peer_of(fd, &again, &ino_again) || ino_again != ino || !same_peer(&again, &peer))
        return;
    if (shutdown(fd, SHUT_RDWR) == 0)
        x->r.shut++;
}

bool msup_cutoff_sockets(const msup_addrset_t *cut, const msup_addrset_t *keep, const msup_inodeset_t *inherited,
                         msup_cutoff_result_t *result)
{
    cut_ctx_t x = {.cut = cut, .keep = keep, .inherited = inherited};
    bool ok = cut == NULL || cut->count == 0 || each_fd(cut_one, &x);
    if (result != NULL)
        *result = x.r;
    return ok;
}
