/* snapshot.h: a consistent read of both segments for monitors and the supervisor. */
#ifndef MONGOSUP_SNAPSHOT_H
#define MONGOSUP_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "segment.h"
#include "stats.h"

typedef struct msup_cluster_snap {
    uint32_t index;              /* registry index in the stats segment */
    bool supervised;             /* a trusted control row (same index, same name) describes it */
    uint32_t row_state;
    uint32_t health;
    char name[MSUP_NAME_MAX];
    char uri_display[MSUP_URI_DISPLAY_MAX];
    uint64_t health_since_ns, last_check_ns, last_rtt_us;
    uint32_t consecutive_ok, consecutive_fail, has_primary, is_replica_set, circuit_breaker;
    uint64_t transitions, checks_passed, checks_failed;
    uint64_t reconnect_generation;
    uint32_t workers_live, workers_acked; /* live slots; those that acknowledged the generation */
    uint32_t workers_uri_mismatch;       /* live slots whose URI differs from the row's (layout.h) */
    uint32_t max_pool_size, max_connections, max_connecting;
    /* The fleet-wide budget as mongosupd mirrors it (0: not shared). */
    uint32_t fleet_max_connections, fleet_hosts, fleet_share;
    int64_t budget_in_use, budget_connecting;
    msup_last_error_t last_check_error;
    msup_last_error_t last_error;        /* newest worker error for this cluster */
    msup_totals_t totals;                /* retired + live slots */
    uint64_t p50_us, p90_us, p99_us, p999_us;
} msup_cluster_snap_t;

typedef struct msup_worker_snap {
    uint32_t slot;
    uint32_t state;
    int32_t pid;
    uint64_t attached_ns, exited_ns;
    uint64_t ops, failures, checkouts;
    int64_t in_use;
    char appname[48];
    bool uri_mismatch;           /* for some cluster (layout.h: msup_stats_t.uri_mismatch) */
} msup_worker_snap_t;

/* One entry of a live slot's slow-operation ring (slowlog.h). */
typedef struct msup_slowop_snap {
    uint32_t cluster;            /* index in msup_snapshot_t.clusters */
    uint32_t slot;
    int32_t pid;
    msup_slowop_t op;            /* copied tear-free, strings sanitized */
} msup_slowop_snap_t;

/* The newest entries a snapshot keeps, over all slots and clusters. */
#define MSUP_SNAPSHOT_SLOW_MAX 256

typedef struct msup_snapshot {
    uint64_t taken_ns;
    char segment_name[MSUP_NAME_MAX];
    char environment[MSUP_NAME_MAX];
    uint32_t max_workers, max_clusters;
    int32_t supervisor_pid;
    bool supervisor_alive;           /* liveness == MSUP_SUPERVISOR_ALIVE */
    msup_liveness_t liveness;        /* the one verdict (segment.h) */
    bool has_control;                /* a valid control segment is mapped */
    uint64_t supervisor_started_ns, heartbeat_ns, heartbeat_age_ms, supervisor_restarts;
    uint64_t config_generation;
    uint32_t phase;
    uint64_t drain_deadline_mono_ns;
    uint64_t slots_reaped;
    uint32_t cluster_count;
    msup_cluster_snap_t *clusters;   /* cluster_count entries (ACTIVE rows only) */
    uint32_t worker_count;
    msup_worker_snap_t *workers;     /* non-FREE slots */
    uint32_t slow_count;
    msup_slowop_snap_t *slow_ops;    /* the newest slow_count ring entries, oldest first */
} msup_snapshot_t;

/* Takes a snapshot; totals are retired + live, never counting a slot twice
 * (retries while a fold is published).  Allocates; free with _free. */
bool msup_snapshot_take(const msup_segment_t *seg, msup_snapshot_t *snap, mongosup_error_t *error);
void msup_snapshot_free(msup_snapshot_t *snap);

const char *msup_health_name(uint32_t health);  /* "UP", "DOWN", ... */
const char *msup_phase_name(uint32_t phase);
const char *msup_slot_state_name(uint32_t state);
const char *msup_op_class_name(enum msup_op_class c);   /* "read", "write", "command" */
const char *msup_fail_class_name(enum msup_fail_class c); /* "network", ... */

#endif
