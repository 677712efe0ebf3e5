/* fleet.h: mongosupd's side of the fleet-wide budget: a thread that keeps an etcd lease, publishes this host's demand and cap, and moves the host's cap (docs/fleet.md). */
#ifndef MONGOSUP_FLEET_FLEET_H
#define MONGOSUP_FLEET_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../lib/config.h"
#include "segment.h"

typedef struct msup_fleet msup_fleet_t;

/* How the fleet thread sets a row's limits: the supervisor's one place
 * (supervisor/hostcap.c) that writes a host's caps into the segment. */
typedef void (*msup_fleet_apply_fn)(msup_cluster_row_t *row, uint32_t max_connections, uint32_t max_connecting);

/* Starts the fleet thread for the clusters of cfg that have a
 * fleet_max_connections (their rows must be published: call after the
 * first msup_config_apply).  Every such cluster starts at its floor.
 * Returns NULL without an error when cfg has no fleet group or no such
 * cluster; NULL with an error when the thread or libcurl cannot start.
 * etcd need not answer: the host keeps its floors until it does. */
msup_fleet_t *msup_fleet_start(msup_segment_t *seg, const mongosup_config_t *cfg, msup_fleet_apply_fn apply,
                               mongosup_error_t *error);

/* Stops the thread.  release_room (the workers are gone: a completed
 * shutdown) also revokes the lease (best effort, one request timeout) so
 * that the other hosts get this host's room at once rather than after the
 * TTL; otherwise the record stays until the lease expires, covering the
 * connections that workers still hold.  The caps in the rows stay. */
void msup_fleet_stop(msup_fleet_t **fleet, bool release_room);

/* A reload published the row of cluster cc: writes the limits the fleet
 * enforces for it (never the configuration's max_connections).  False when
 * the fleet does not manage that cluster (added by the reload: the caller
 * applies its floor until the next start). */
bool msup_fleet_reapply(msup_fleet_t *fleet, const msup_cluster_cfg_t *cc, msup_cluster_row_t *row);

/* A reload from old to cfg (both validated; call before old is freed).
 * Live, from the thread's next round: per fleet cluster its
 * fleet_max_connections, fleet_floor and max_connections (a host re-plans
 * with them: a lower cap goes into the row before the record, a higher
 * one through the transaction; a raised floor becomes the cap kept
 * without a lease only once every host's record shows it), and the
 * group's endpoints, username/password, TLS files, request_timeout_ms,
 * poll_interval_ms and lower_wait_ms.  Kept until the next start, and
 * logged: host_id, prefix, lease_ttl_s, max_hosts, the group removed,
 * a cluster leaving the fleet (and one joining: msup_fleet_reapply). */
void msup_fleet_reconfigure(msup_fleet_t *fleet, const mongosup_config_t *old, const mongosup_config_t *cfg);

/* The fleet's state for `mongosupctl fleet`, one line per call of emit:
 * the host and its lease, then per cluster its cap and share and the
 * hosts seen in the last read with their demand and cap.  At most
 * max_lines lines (the last one says how many were left out). */
void msup_fleet_describe(msup_fleet_t *fleet, void (*emit)(void *arg, const char *line), void *arg,
                         size_t max_lines);

/* The mongosup_fleet_* Prometheus families (fleet is an msup_fleet_t *:
 * the signature of supervisor/metrics.h's extra renderer). */
bool msup_fleet_prometheus(FILE *out, void *fleet);

#endif
