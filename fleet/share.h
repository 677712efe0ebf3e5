/* share.h: the fleet share computation: every host's cap from the same records, deterministically (pure). */
#ifndef MONGOSUP_FLEET_SHARE_H
#define MONGOSUP_FLEET_SHARE_H

#include <stddef.h>
#include <stdint.h>

/* One host as its record under the prefix says. */
typedef struct msup_share_host {
    const char *id;   /* unique; the order of ties and remainders */
    uint32_t floor;   /* reserved for it whatever the others want */
    uint32_t demand;  /* what it would use: recent peak, more when saturated */
} msup_share_host_t;

typedef struct msup_share_params {
    uint32_t fleet_max;  /* the total of every host's cap */
    uint32_t max_hosts;  /* hosts whose floors are reserved */
    uint32_t floor;      /* reserved for each of the max_hosts hosts not seen (yet) */
} msup_share_params_t;

/* Room kept for hosts not seen yet: (max_hosts - seen) x floor, so that a
 * host joining always finds its floor free. */
uint64_t msup_share_unseen_reserve(const msup_share_params_t *p, size_t seen);

/* Fills targets[i] for hosts[i]: its floor, plus a max-min fair part of the
 * room above every floor (and above the unseen hosts' reservation) by
 * demand above the floor, plus an equal part of what no demand takes (the
 * remainder to the first hosts by id).  The result depends on the set of
 * hosts only, not on their order in the array.  The sum never exceeds
 * fleet_max - unseen reservation unless the floors alone do (more hosts
 * than max_hosts): then every host gets its floor.  n <= 4096. */
void msup_share_compute(const msup_share_params_t *p, const msup_share_host_t *hosts, size_t n, uint32_t *targets);

/* The highest cap a host may take now: fleet_max minus the unseen
 * hosts' reservation minus the caps the other hosts published (0 when
 * that is negative). */
uint32_t msup_share_room(const msup_share_params_t *p, size_t seen, uint64_t others_caps);

#endif
