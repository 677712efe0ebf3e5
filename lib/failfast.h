/* failfast.h: a DOWN verdict ends the operations in flight; half-open trials; the selection-timeout default (internal). */
#ifndef MONGOSUP_FAILFAST_H
#define MONGOSUP_FAILFAST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#include "config.h"
#include "cutoff.h"
#include "layout.h"
#include "monwatch.h"
#include "probe.h"

struct mongosup;
struct msup_wcluster;
struct msup_segment;
struct msup_pool;

/* How often the upkeep thread looks at the cluster rows' health: every
 * 5 ms while a DOWN verdict may be near (a cluster's last check failed, or
 * it is half-open), every 100 ms otherwise.  A DOWN needs `fall` failed
 * checks, and the first is published before the verdict, so with fall >= 2
 * the fast look is on before DOWN comes; each wake-up costs tens of
 * microseconds of CPU on a busy virtual machine, which 200 of them a
 * second in every worker would make felt. */
#define MSUP_FAILFAST_TICK_MS 5u
#define MSUP_FAILFAST_CALM_TICK_MS 100u
/* After a DOWN verdict, sockets are looked for again this long: an
 * operation that passed the gate just before DOWN may still be connecting. */
#define MSUP_CUTOFF_FOLLOW_MS 100u
/* Half-open: at most one trial checkout per this many ms per worker and
 * cluster until a trial succeeds. */
#define MSUP_HALF_OPEN_TRIAL_SPACING_MS 100u
/* Hosts the driver discovered (APM server-opening events) kept per cluster. */
#define MSUP_FAILFAST_HOSTS MSUP_MONWATCH_HOSTS

/* A worker's half-open verdict of its own, on top of the row's health. */
enum msup_local_circuit {
    MSUP_LOCAL_NONE = 0,    /* the row's verdict alone */
    MSUP_LOCAL_PROBING = 1, /* evidence the server is back: trial checkouts go through */
    MSUP_LOCAL_PROVEN = 2,  /* a trial succeeded: every checkout goes through until the next DOWN */
};

/* Per-cluster state, embedded (zeroed) in the worker's cluster. */
typedef struct msup_failfast {
    /* Discovered members: written by APM threads under a spin flag, read by
     * the upkeep thread. */
    _Atomic uint32_t hosts_lock;
    _Atomic uint32_t hosts_version;
    uint32_t host_count;
    struct {
        char host[BSON_HOST_NAME_MAX + 1];
        uint16_t port;
    } hosts[MSUP_FAILFAST_HOSTS];

    /* Half-open gate (any thread). */
    _Atomic uint32_t local;         /* enum msup_local_circuit */
    _Atomic uint64_t next_trial_ns; /* CLOCK_MONOTONIC */
    /* The upkeep thread acted on the current DOWN verdict (cutoff, follow-up
     * window set): only then does the driver's own monitor count as
     * evidence, a reply read before the cutoff may predate the fault. */
    _Atomic uint32_t verdict_acted;

    /* Upkeep thread only. */
    uint32_t seen_health;
    uint32_t resolved_version;
    const msup_cluster_cfg_t *resolved_cfg;
    msup_addrset_t addrs;           /* every TCP peer of the cluster's hosts */
    uint64_t follow_until_ns;
    /* Diagnostics (read by tests): DOWN verdicts acted on, sockets shut. */
    _Atomic uint64_t cutoffs;
    _Atomic uint64_t sockets_shut;
    /* Connections that waited for a monitor to report, and waits that ran
     * out (monwatch.h). */
    _Atomic uint64_t monitor_waits;
    _Atomic uint64_t monitor_wait_timeouts;

    msup_probe_t probe; /* the worker's own probe while DOWN (probe.c) */
} msup_failfast_t;

/*
 * The default server_selection_timeout_ms: the longest a dead server can
 * still look UP to the supervisor (one check_interval_ms, then `fall`
 * failed checks of up to check_timeout_ms each, check_fastinter_ms apart),
 * plus one check_fastinter_ms of margin for the verdict to reach the
 * workers; never above the driver's own 30000.  Selection that outlives the
 * verdict only delays a failure the breaker has already decided.
 */
uint32_t msup_failfast_selection_timeout_ms(const msup_cluster_cfg_t *c);

/* Checkout gate for a row that reads DOWN or RECOVERING: true to refuse. */
bool msup_failfast_refuse(struct msup_wcluster *c, const struct msup_segment *seg, const msup_cluster_row_t *r,
                          uint32_t health);

/* The breaker refuses c's checkouts right now: the row reads DOWN behind a
 * live supervisor and this worker has no half-open evidence of its own.  A
 * retry would be refused, so mongosup_run does not wait its backoff first
 * (and ends a backoff that is under way). */
bool msup_failfast_circuit_open(struct msup_wcluster *c);

/* A failure seen by APM or at checkin: the class it is counted as (network,
 * timeout and selection failures while the cluster is DOWN are the circuit
 * opening: circuit_open), and a failed half-open trial closes the trial. */
enum msup_fail_class msup_failfast_reclass(struct msup_wcluster *c, enum msup_fail_class cls);

/* APM: a command succeeded (a half-open trial proves the server). */
static inline void msup_failfast_note_success(msup_failfast_t *ff)
{
    if (atomic_load_explicit(&ff->local, memory_order_relaxed) == MSUP_LOCAL_PROBING) {
        uint32_t probing = MSUP_LOCAL_PROBING;
        atomic_compare_exchange_strong_explicit(&ff->local, &probing, MSUP_LOCAL_PROVEN, memory_order_relaxed,
                                                memory_order_relaxed);
    }
}

/* APM (monitor threads): the driver opened a server / a heartbeat succeeded;
 * also the worker's own probe reaching the cluster (probe.c).  Evidence that
 * opens half-open while the row still reads DOWN. */
void msup_failfast_note_host(struct msup_wcluster *c, const mongoc_host_list_t *host);
void msup_failfast_note_reached(struct msup_wcluster *c);

/* APM (monitor threads): an event of pool p's monitor of one of its hosts. */
void msup_failfast_note_monitor(struct msup_pool *p, const mongoc_host_list_t *host, enum msup_monitor_event what);

/* Every monitor of p that a cutoff shut has reported (monwatch.h), or the
 * wait for them ran out: a connection made now survives the driver's
 * reaction to their failure. */
bool msup_failfast_monitors_reported(struct msup_wcluster *c, struct msup_pool *p, uint64_t now_mono_ns);

/* Before a client of p makes its first connection (checkout): waits until
 * msup_failfast_monitors_reported, or deadline_mono_ns.  One atomic load
 * and no clock read while no monitor is pending. */
void msup_failfast_await_monitors(struct msup_wcluster *c, struct msup_pool *p, uint64_t deadline_mono_ns);

/* The cluster reads DOWN, this worker acted on the verdict and its
 * follow-up window is over, and nothing has opened half-open yet: what the
 * worker's own probe is for. */
bool msup_failfast_probe_wanted(struct msup_wcluster *c);

/* Stops and joins the probes (the upkeep thread is stopped already). */
void msup_failfast_stop(struct mongosup *h);

/* Upkeep thread: learns the hosts, sees DOWN verdicts and shuts this
 * process's sockets to the DOWN clusters.  Returns the delay before the
 * next look (MSUP_FAILFAST_TICK_MS or MSUP_FAILFAST_CALM_TICK_MS). */
uint32_t msup_failfast_tick(struct mongosup *h, uint64_t now_mono_ns);

#endif
