/* monwatch.h: after a DOWN cutoff shut the driver's own monitor sockets, new connections wait until each monitor has reported (internal). */
#ifndef MONGOSUP_MONWATCH_H
#define MONGOSUP_MONWATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Why: the cutoff shuts every socket of the worker to a DOWN cluster, the
 * pool's monitor's included.  A monitor that was healthy at the cut only
 * notices at its next heartbeat, and the driver then drops every pooled
 * socket to the server (a new generation), including those opened under
 * the handshake slots after an UP that came sooner.  A client checked out
 * before that and used after would reconnect inside the driver, outside
 * max_connecting.  So a client's first connection after such a cut waits
 * until the monitor has reported (a failure, whose pool clear the driver
 * makes before the monitor's next check starts; or a success of a check
 * that began after the cut), for one heartbeat plus one connect timeout at
 * most.  A monitor that had already failed before the cut (a real outage)
 * is not waited for: recovery stays as fast as the driver's own.
 *
 * The driver's events carry the host, not the pool: during a rebuild the
 * old and the new pool's monitors of one host count together.
 */

/* A failure seen this long ago counts as handled even without the next
 * check's start (a monitor that had already lost the server re-checks only
 * after a heartbeat): the driver clears the pool right after the event. */
#define MSUP_MONWATCH_FAIL_GRACE_MS 100u

/* One host's monitor, as its APM heartbeat events tell (monitor threads). */
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
    _Atomic uint32_t pending;        /* 0, or the cut (its number) that found it so */
    uint32_t cuts;                   /* upkeep thread only */
    _Atomic uint64_t await_failures; /* reported once failures reach this... */
    _Atomic uint64_t await_ok;       /* ...or a heartbeat started at or after this succeeded */
} msup_monwatch_host_t;

/* APM heartbeat events of one host. */
void msup_monwatch_started(msup_monwatch_host_t *m);
void msup_monwatch_succeeded(msup_monwatch_host_t *m);
void msup_monwatch_failed(msup_monwatch_host_t *m, uint64_t now_mono_ns);

/* Right after a cut shut the host's sockets: whether its monitor must now
 * report before new connections are made (and if so, what counts). */
bool msup_monwatch_cut(msup_monwatch_host_t *m);

/* The host's monitor has reported since the cut that made it pending (or
 * none did); clears `pending` when it has. */
bool msup_monwatch_reported(msup_monwatch_host_t *m, uint64_t now_mono_ns);

#endif
