/* probe.h: the worker's own reachability probe of a DOWN cluster, on a thread of its own (internal). */
#ifndef MONGOSUP_PROBE_H
#define MONGOSUP_PROBE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct msup_wcluster;

/*
 * Every MSUP_PROBE_INTERVAL_MS while its cluster is DOWN, the probe asks the
 * cluster once, the way mongosupd's checks do: a new single-threaded client,
 * one scan bounded by check_timeout_ms.  Why not the pool's own monitor:
 * while checkouts are refused no operation waits in server selection, so
 * nothing asks that monitor to scan, and it checks only every
 * heartbeat_frequency_ms (10 s by default); a plain pool whose operations
 * wait in selection makes its monitor scan every 500 ms (the driver's
 * minimum).  Half that interval keeps mongosup's first success after a
 * restart ahead of a plain pool's, at two refused or answered connections a
 * second per worker and DOWN cluster.
 */
#define MSUP_PROBE_INTERVAL_MS 250u

typedef struct msup_probe {
    /* Upkeep thread only. */
    bool started;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *uri;           /* a copy: a reload may free the settings meanwhile */
    uint32_t timeout_ms;
    /* Shared with the probe thread. */
    bool stop;             /* under mu */
    _Atomic bool finished; /* the thread is about to return */
    /* Diagnostics (read by tests): probes run, probes that reached it. */
    _Atomic uint64_t runs, reached;
} msup_probe_t;

/* Upkeep thread: starts c's probe if it is wanted and not running, joins
 * one that ended. */
void msup_probe_tend(struct msup_wcluster *c);

/* Stops and joins c's probe (at most one scan, check_timeout_ms, away). */
void msup_probe_stop(struct msup_wcluster *c);

#endif
