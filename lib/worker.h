/* worker.h: the worker-side handle, its per-cluster state and pools (internal). */
#ifndef MONGOSUP_WORKER_H
#define MONGOSUP_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "budget.h"
#include "clientmap.h"
#include "config.h"
#include "failfast.h"
#include "mongosup.h"
#include "segment.h"

typedef struct msup_wcluster msup_wcluster_t;

/*
 * One mongoc_client_pool_t and the mirror of its idle queue.
 *
 * Every pop and push of the driver pool happens under the owning cluster's
 * mutex, so `idle` mirrors the driver's queue exactly: the driver pops and
 * pushes at the head and trims at the tail (mongoc-client-pool.c 1.23), and
 * so do we.  That is how we know which client the driver destroys on a
 * trim, and whether a try_pop created a client or reused one.
 */
typedef struct msup_pool {
    mongoc_client_pool_t *driver;
    msup_wcluster_t *cluster;
    uint64_t generation;          /* row reconnect_generation it was built for */
    uint64_t settings_epoch;      /* the cluster's settings_epoch it was built with */
    msup_budget_account_t budget; /* its share of the cluster-wide connection budget */
    mongoc_client_t **idle;       /* idle[0] = oldest (driver tail), idle[n-1] = newest (head) */
    uint64_t *idle_epoch;         /* idle_epoch[i]: outage epoch idle[i] was verified at (clientmap.h) */
    uint32_t idle_count;
    uint32_t idle_cap;            /* max_pool_size */
    uint32_t out;                 /* checked out from this pool */
    uint32_t created;             /* clients that exist (out + idle) */
    uint32_t idle_low;            /* low-water mark of idle_count in the trim window */
    bool retired;                 /* replaced by a rebuild: destroyed when out drops to 0 */
    bool warm_pending;            /* min_pool_size clients still to warm */
    uint32_t driver_lost;         /* clients we destroyed ourselves: the driver's size counter keeps them */
    msup_monwatch_t monitors;     /* its driver monitors after a DOWN cutoff (monwatch.h) */
    struct msup_pool *next_retired;
} msup_pool_t;

/* A configured cluster as a worker sees it. */
struct msup_wcluster {
    /* Replaced by a configuration reload (worker_reload.c); the configurations it
     * points into live until detach, so a reader may use a stale one. */
    _Atomic(const msup_cluster_cfg_t *) cfg;
    struct mongosup *handle;
    char name[MSUP_NAME_MAX];
    uint32_t max_pool_size;                    /* changed by a reload under mu */
    uint32_t min_pool_size;
    _Atomic bool removed;                      /* gone from the reloaded configuration */

    _Atomic int row;                           /* registry index, -1 when none could be mapped */
    /* The control row this worker believes for `row` (same index, same
     * name, in a control segment of an accepted owner), NULL when there is
     * none: then health, generation and limits are its own. */
    _Atomic(msup_cluster_row_t *) ctl_row;
    /* The budget limits it enforces: the trusted control row's while the
     * supervisor is alive, its own configuration's otherwise (never the
     * worker-writable registry line's).  Refreshed at remap and upkeep. */
    msup_budget_limits_t limits;
    _Atomic(msup_stats_t *) stats;             /* our slot's stats for that row (or private_stats) */
    msup_stats_t *private_stats;               /* used when no row is available: nothing is lost in-process */

    pthread_mutex_t mu;                        /* guards everything below */
    pthread_cond_t freed;                      /* a client came back (CLOCK_MONOTONIC) */
    uint32_t waiters;
    uint32_t in_use;                           /* all pools of this cluster */
    msup_pool_t *pool;                         /* current pool, NULL until the first checkout */
    msup_pool_t *retired;                      /* older pools with clients still out */
    uint64_t rebuild_due_ns;                   /* 0: no rebuild pending (CLOCK_MONOTONIC) */
    uint64_t settings_epoch;                   /* bumped when a reload or a new segment needs a new pool */
    uint64_t trim_window_start_ns;
    /* Set by the upkeep while the budget may ask for shedding: only then
     * does a checkin read the cluster's budget line (the hot path touches
     * nothing shared otherwise). */
    bool shed_watch;
    /* Bumped (any thread) whenever this worker's connections to the
     * cluster may have died: a network failure of an operation, a failed
     * heartbeat of the driver's monitor, the row's health leaving UP.  A
     * client verified at an older epoch handshakes again, under
     * max_connecting, before the application gets it (pool.c). */
    _Atomic uint64_t outage_epoch;
    msup_failfast_t failfast;                  /* DOWN cutoff and half-open gate (failfast.c) */
    /* From cfg (apm.c: msup_apm_configure): the slow-operation threshold,
     * UINT64_MAX when slow_op_ms is 0, so the record path compares once. */
    _Atomic uint64_t slow_us;
    _Atomic bool log_failed_ops;
    /* Another driver's pool, as its events report it (neutral.c), under
     * mu: added to this cluster's gauges by msup_pool_publish_gauges. */
    int64_t foreign_in_use, foreign_idle, foreign_created;
};

/* A configuration or segment mapping replaced while the handle lives:
 * kept until detach, because other threads may still hold pointers into it. */
typedef struct msup_kept {
    mongosup_config_t *cfg;
    msup_segment_t *seg;
    struct msup_kept *next;
} msup_kept_t;

struct mongosup {
    uint64_t fork_epoch;          /* msup_fork_epoch() at attach: tells an inherited handle */
    pid_t pid;
    const mongosup_config_t *cfg; /* the application's (attach); never freed by us */
    mongosup_config_t *own_cfg;   /* the last reloaded copy, NULL before the first reload */
    char *config_path;            /* where cfg was loaded from, for reloads (NULL: none) */
    char config_env[MSUP_NAME_MAX];
    _Atomic(msup_segment_t *) seg; /* replaced when the segment is recreated (worker_reattach.c) */
    _Atomic uint32_t slot;
    _Atomic(msup_slot_t *) slot_ptr;
    _Atomic uint64_t config_generation; /* of the row map */
    uint64_t settings_generation;       /* header generation the settings were loaded for */
    _Atomic bool segment_stale;         /* upkeep saw the segment replaced: re-attach */
    uint64_t segment_checked_ns;        /* last msup_segment_replaced check (upkeep) */
    mongosup_error_t reload_error;      /* last reload failure (code 0: none) */
    msup_kept_t *kept;                  /* replaced configurations and mappings */
    _Atomic bool closing;               /* detach has begun */
    _Atomic bool control_refusal_said;  /* a refused control segment was reported */
    _Atomic bool draining_acked;
    char appname[129];

    _Atomic size_t cluster_count; /* grows when a reload adds a cluster (release after init) */
    size_t cluster_cap;           /* clusters[] never moves: the pools (APM contexts) point into it */
    msup_wcluster_t *clusters;
    msup_clientmap_t clients;     /* client -> pool, for checkin */
    size_t clients_capacity;      /* clients the map was sized for */
    pthread_mutex_t map_mu;       /* row remapping, reloads, segment re-attach */

    /* Maintenance thread: warm-up and idle trim. */
    pthread_t upkeep;
    bool upkeep_running;
    pthread_mutex_t upkeep_mu;
    pthread_cond_t upkeep_cv;
    bool upkeep_stop;
    bool upkeep_kick;
    mongoc_apm_callbacks_t *apm;
    msup_inodeset_t inherited_sockets; /* open at attach: a DOWN cutoff never shuts them (failfast.c) */
    bool cutoff_disabled;               /* that list could not be taken: no cutoff at all */

    struct mongosup *next_abandoned;
};

/* worker_fork.c: process-wide state. */
void msup_process_init(void); /* once per process: fork handler, driver log */
uint64_t msup_fork_epoch(void);
bool msup_handle_inherited(const mongosup_t *h);
void msup_handle_abandon(mongosup_t *h); /* kept reachable, never freed */

/* worker.c: the handle's life. */
bool msup_wcluster_init(mongosup_t *h, msup_wcluster_t *c, const msup_cluster_cfg_t *cfg, mongosup_error_t *error);
bool msup_handle_segment_draining(mongosup_t *h); /* acknowledges the drain in the slot */

/* worker_reload.c: rows and reloads. */
void msup_wcluster_bind_row(mongosup_t *h, msup_segment_t *seg, msup_wcluster_t *c, int row); /* c->mu held */
bool msup_handle_keep(mongosup_t *h, mongosup_config_t *cfg, msup_segment_t *seg); /* freed at detach */
msup_wcluster_t *msup_find_wcluster(mongosup_t *h, const char *name);
void msup_handle_remap_rows(mongosup_t *h);

/* worker_reattach.c: the segment under the handle. */
bool msup_handle_open_segment(mongosup_t *h, const mongosup_config_t *cfg, msup_segment_t *seg, uint32_t *slot,
                              mongosup_error_t *error);
bool msup_handle_reattach_segment(mongosup_t *h);
bool msup_handle_stopped_reattach(mongosup_t *h); /* at most one check a second */

/* worker_trust.c: what the worker believes from the control segment. */
/* The control row it trusts for c (same index and name in an accepted
 * control segment, else NULL) and the limits it enforces: that row's while
 * the supervisor is alive, its own configuration's otherwise.  c->mu held. */
void msup_wcluster_refresh_trust(msup_segment_t *seg, msup_wcluster_t *c);
/* A worker whose environment lacks a MONGOSUP_<CLUSTER>_URI override that
 * the supervisor has resolves the file's URI: the monitor would show the
 * supervisor's URI as UP while this worker's operations fail.  Compares the
 * redacted forms (never secrets) with the trusted row's, flags the slot
 * (layout.h: uri_mismatch) and warns once each time it starts to differ.
 * c->mu held. */
void msup_wcluster_check_uri(const mongosup_t *h, msup_wcluster_t *c);
/* Maps the control segment when there is an acceptable one; a refused one
 * is reported once on stderr.  False when none is bound. */
bool msup_handle_bind_control(mongosup_t *h, msup_segment_t *seg);
/* Upkeep, at most once a second, never on the checkout path: has the stats
 * segment been unlinked or recreated, has a control segment appeared or
 * been replaced, which limits apply now. */
void msup_handle_check_segment(mongosup_t *h, uint64_t now_mono_ns);
/* The gate of every operation on a cluster (checkout and neutral.c): the
 * cluster, or NULL and error (forked, unknown, shutting down, circuit open). */
msup_wcluster_t *msup_handle_gate(mongosup_t *h, const char *cluster, uint64_t *generation, mongosup_error_t *error);
/* The worker serves the cluster's reconnect generation: acknowledged in the slot. */
void msup_handle_acknowledge(msup_wcluster_t *c, uint64_t generation);

/* pool.c: every function here but pool_destroy runs with c->mu held. */
msup_pool_t *msup_pool_create(msup_wcluster_t *c, uint64_t generation, mongosup_error_t *error);
bool msup_pool_try_grow(msup_wcluster_t *c, msup_pool_t *p);
/* *unverified: the client was just created, or its connection was not
 * verified at the current outage epoch: msup_pool_verify it before use. */
mongoc_client_t *msup_pool_take(msup_wcluster_t *c, msup_pool_t *p, bool *unverified);
/* True when the last take was refused by the connection budget alone. */
bool msup_pool_budget_refused(const msup_wcluster_t *c, const msup_pool_t *p);
bool msup_pool_give(msup_wcluster_t *c, msup_pool_t *p, mongoc_client_t *client, uint64_t verified_epoch);
/* Destroys a checked-out client instead of giving it back (shedding, a
 * failed handshake, a retired pool); its tokens go back.  Returns what
 * msup_pool_give returns. */
bool msup_pool_discard(msup_wcluster_t *c, msup_pool_t *p, mongoc_client_t *client);
/* Opens or re-checks a checked-out client's connection under
 * max_connecting (mutex NOT held) and records the epoch it passed at.
 * True when the connection is up (a server error counts: it answered). */
bool msup_pool_verify(msup_wcluster_t *c, msup_pool_t *p, mongoc_client_t *client, uint64_t deadline_mono_ns,
                      bson_error_t *error);
void msup_pool_trim(msup_wcluster_t *c, msup_pool_t *p, uint32_t count);
uint32_t msup_pool_drop_idle(msup_wcluster_t *c, msup_pool_t *p); /* every idle client: at a DOWN verdict */
void msup_wcluster_drop_idle(msup_wcluster_t *c); /* every pool's; takes c->mu */
void msup_pool_publish_gauges(msup_wcluster_t *c);
void msup_pool_destroy(msup_pool_t *p);  /* c->mu NOT held: the driver talks to the server */
uint64_t msup_reconnect_delay_ns(uint32_t slot, uint32_t window_ms);

/* pool.c: the upkeep thread (warm-up of min_pool_size, idle trim). */
bool msup_upkeep_start(mongosup_t *h, mongosup_error_t *error);
void msup_upkeep_stop(mongosup_t *h);
void msup_upkeep_kick(mongosup_t *h);

/* apm.c */
/* with_started: also the command-started event, which the slow-operation
 * log needs for the database and collection (msup_apm_wants_started). */
mongoc_apm_callbacks_t *msup_apm_callbacks_new(bool with_started);
bool msup_apm_wants_started(const mongosup_config_t *cfg);
void msup_apm_configure(msup_wcluster_t *c); /* after c->cfg is set or replaced */
void msup_apm_forget(void);                       /* at checkout: a new operation begins */
bool msup_apm_counted(const bson_error_t *error); /* a failed event on this thread counted it */
void msup_apm_internal(bool on); /* our own commands (handshake pings) on this thread: not counted */

/* registry.c: cluster rows in the segment. */
int msup_registry_map(msup_segment_t *seg, const msup_cluster_cfg_t *cfg, uint32_t preferred_row);

static inline msup_segment_t *msup_handle_seg(const mongosup_t *h)
{
    return atomic_load_explicit(&h->seg, memory_order_acquire);
}

static inline size_t msup_handle_cluster_count(const mongosup_t *h)
{
    return atomic_load_explicit(&h->cluster_count, memory_order_acquire);
}

/* Every pool of c, current first, then the retired ones (c->mu held):
 * for (p = msup_wcluster_first_pool(c); p != NULL; p = msup_wcluster_next_pool(c, p)). */
static inline msup_pool_t *msup_wcluster_first_pool(const msup_wcluster_t *c)
{
    return c->pool != NULL ? c->pool : c->retired;
}

static inline msup_pool_t *msup_wcluster_next_pool(const msup_wcluster_t *c, const msup_pool_t *p)
{
    return p == c->pool ? c->retired : p->next_retired;
}

/* This worker's connections to the cluster may have died (see outage_epoch). */
static inline void msup_outage_bump(msup_wcluster_t *c)
{
    atomic_fetch_add_explicit(&c->outage_epoch, 1, memory_order_release);
}

static inline msup_stats_t *msup_wcluster_stats(msup_wcluster_t *c)
{
    return atomic_load_explicit(&c->stats, memory_order_acquire);
}

#endif
