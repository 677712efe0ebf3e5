/* reconnect.h: when to bump a cluster's reconnect generation (workers rebuild their pools). */
#ifndef MONGOSUPD_RECONNECT_H
#define MONGOSUPD_RECONNECT_H

#include "supervisor.h"

/* Once per main-loop tick: DOWN -> UP and bursts of worker network
 * failures while the checks pass.  Bumps are rate limited by
 * reconnect_min_interval_ms (a deferred bump is kept and made when
 * allowed); each is logged with its cause. */
void msup_reconnect_tick(msup_sup_t *sup, uint64_t now_mono_ns);

/* A manual request (the control socket's `reconnect CLUSTER`): bumps now,
 * or keeps the bump for the tick when the rate limit defers it
 * (*deferred).  *generation: the cluster's generation afterwards.  Fails
 * for a cluster that the running configuration does not supervise. */
bool msup_reconnect_request(msup_sup_t *sup, const char *cluster, uint64_t *generation, bool *deferred,
                            mongosup_error_t *error);

/* Sum of the workers' network failures for a cluster: retired + live slots.
 * Only the supervisor folds, so from its own thread the sum is consistent. */
uint64_t msup_reconnect_network_failures(const msup_segment_t *seg, uint32_t cluster);

/* Resets the bookkeeping of a row (new cluster, or adoption). */
void msup_reconnect_reset(msup_sup_t *sup, uint32_t row);

#endif
