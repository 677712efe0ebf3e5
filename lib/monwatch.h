/* monwatch.h: after a DOWN cutoff shut a pool's driver monitors, that pool's new connections wait until each monitor has reported (internal). */
#ifndef MONGOSUP_MONWATCH_H
#define MONGOSUP_MONWATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Why: the cutoff shuts every socket of the worker to a DOWN cluster, the
 * pools' monitors' included.  A monitor that was healthy at the cut only
 * notices at its next heartbeat, and the driver then drops every socket of
 * that pool to the server (a new generation), including those opened under
 * the handshake slots after an UP that came sooner.  A client checked out
 * before that and used after would reconnect inside the driver, outside
 * max_connecting.  So a client's first connection after such a cut waits
 * until its pool's monitors have reported: a failure, whose pool clear the
 * driver makes before the monitor's next check starts, or a success of a
 * check that began after the cut; for one heartbeat plus one connect
 * timeout at most.  A monitor that had already failed before the cut (a
 * real outage) is not waited for: recovery stays as fast as the driver's.
 *
 * One watch per pool (the pool is the APM context): a rebuild's old and
 * new pools, each with its own monitors, are told apart.
 */

/* Hosts watched per pool: the cluster's discovered members (failfast.h). */
#define MSUP_MONWATCH_HOSTS 16

/* A failure seen this long ago counts as handled even without the next
 * check's start (a monitor that had already lost the server re-checks only
 * after a heartbeat): the driver clears the pool right after the event. */
#define MSUP_MONWATCH_FAIL_GRACE_MS 100u

/* The driver's events of one host's monitor. */
enum msup_monitor_event {
    MSUP_MONITOR_STARTED,   /* a heartbeat started */
    MSUP_MONITOR_SUCCEEDED, /* ... succeeded */
    MSUP_MONITOR_FAILED,    /* ... failed (the pool clear follows) */
    MSUP_MONITOR_CLOSED,    /* the server left the topology: no monitor any more */
};

/* One host's monitor, as its APM events tell (monitor threads). */
typedef struct msup_monwatch_host {
    _Atomic uint64_t started;    /* heartbeats started */
    _Atomic uint64_t completed;  /* heartbeats ended (success or failure) */
    _Atomic uint64_t failures;   /* heartbeats failed */
    _Atomic uint64_t handled;    /* `failures` when the latest heartbeat started */
    _Atomic uint64_t ok_started; /* `started` when the latest heartbeat succeeded */
    _Atomic uint64_t failed_ns;  /* CLOCK_MONOTONIC of the latest failure */
    _Atomic uint32_t ok;         /* the latest completed heartbeat succeeded */
    /* Set at a cut that found the monitor healthy or in a check (upkeep
     * thread), read by connecting threads. */
    _Atomic uint32_t pending;        /* 0, or the number of the cut that found it so */
    _Atomic uint64_t await_failures; /* reported once failures reach this... */
    _Atomic uint64_t await_ok;       /* ...or a heartbeat started at or after this succeeded */
} msup_monwatch_host_t;

/* A pool's monitors (zeroed with the pool). */
typedef struct msup_monwatch {
    msup_monwatch_host_t host[MSUP_MONWATCH_HOSTS];
    _Atomic uint32_t pending;     /* 0, or the cut that left some monitor to report */
    _Atomic uint64_t deadline_ns; /* the longest a connection waits for them */
    uint32_t cuts;                /* upkeep thread only */
} msup_monwatch_t;

/* APM (monitor threads): an event of host index `i` (failfast.c's list). */
void msup_monwatch_event(msup_monwatch_t *w, uint32_t i, enum msup_monitor_event what, uint64_t now_mono_ns);

/* Upkeep thread, right after a cut shut sockets to the first `hosts`
 * hosts: which monitors must report before new connections are made.
 * Returns true when one must (the wait lasts until deadline at most). */
bool msup_monwatch_cut(msup_monwatch_t *w, uint32_t hosts, uint64_t deadline_mono_ns);

enum msup_monwatch_state { MSUP_MONWATCH_REPORTED, MSUP_MONWATCH_WAITING, MSUP_MONWATCH_RAN_OUT };

/* Whether a connection may be made now: every monitor the last cut left
 * pending has reported (REPORTED), or the wait is over (RAN_OUT, returned
 * once per cut: counted by the caller), or not yet (WAITING).  One atomic
 * load while nothing is pending. */
enum msup_monwatch_state msup_monwatch_state(msup_monwatch_t *w, uint32_t hosts, uint64_t now_mono_ns);

#endif
