/* share.c: max-min fair shares above reserved floors, deterministic from the same host records on every host. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "share.h"

#define SHARE_MAX_HOSTS 4096

uint64_t msup_share_unseen_reserve(const msup_share_params_t *p, size_t seen)
{
    return seen >= p->max_hosts ? 0 : (uint64_t)(p->max_hosts - seen) * p->floor;
}

uint32_t msup_share_room(const msup_share_params_t *p, size_t seen, uint64_t others_caps)
{
    uint64_t taken = msup_share_unseen_reserve(p, seen) + others_caps;
    return taken >= p->fleet_max ? 0 : (uint32_t)(p->fleet_max - taken);
}

static uint32_t want_of(const msup_share_host_t *h)
{
    return h->demand > h->floor ? h->demand - h->floor : 0;
}

/* Order of the water-filling: smallest want first, ties by id. */
static bool before(const msup_share_host_t *x, const msup_share_host_t *y)
{
    uint32_t wx = want_of(x), wy = want_of(y);
    return wx != wy ? wx < wy : strcmp(x->id, y->id) < 0;
}

/* Insertion sort of indexes: the host count is small, and it needs no
 * global comparator context (qsort has none). */
static void sort_indexes(const msup_share_host_t *hosts, size_t *idx, size_t n, bool by_want)
{
    for (size_t i = 1; i < n; i++) {
        size_t v = idx[i], j = i;
        while (j > 0 && (by_want ? before(&hosts[v], &hosts[idx[j - 1]])
                                 : strcmp(hosts[v].id, hosts[idx[j - 1]].id) < 0)) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}

void msup_share_compute(const msup_share_params_t *p, const msup_share_host_t *hosts, size_t n, uint32_t *targets)
{
    if (n == 0 || n > SHARE_MAX_HOSTS)
        return;
    uint64_t floors = 0;
    for (size_t i = 0; i < n; i++) {
        targets[i] = hosts[i].floor;
        floors += hosts[i].floor;
    }
    uint64_t reserved = floors + msup_share_unseen_reserve(p, n);
    if (reserved >= p->fleet_max)
        return; /* nothing above the floors (or more hosts than max_hosts) */
    uint64_t room = p->fleet_max - reserved;

    size_t idx[SHARE_MAX_HOSTS];
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    /* Max-min fair by want: the smallest wants are met in full, the rest
     * split what remains equally. */
    sort_indexes(hosts, idx, n, true);
    for (size_t k = 0; k < n; k++) {
        uint64_t level = room / (n - k);
        uint32_t want = want_of(&hosts[idx[k]]);
        uint64_t give = want < level ? want : level;
        targets[idx[k]] += (uint32_t)give;
        room -= give;
    }
    /* What no demand took: equal parts (headroom for a burst), the
     * remainder one each to the first hosts by id. */
    sort_indexes(hosts, idx, n, false);
    uint64_t each = room / n, extra = room % n;
    for (size_t k = 0; k < n; k++)
        targets[idx[k]] += (uint32_t)(each + (k < extra ? 1 : 0));
}
