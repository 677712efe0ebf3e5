/* supervisor.h: the state of one mongosupd, shared by its modules (main loop, checks, reload, shutdown). */
#ifndef MONGOSUPD_SUPERVISOR_H
#define MONGOSUPD_SUPERVISOR_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "../lib/config.h" /* not autoconf's config.h, which -I. finds first */
#include "health_state.h"
#include "segment.h"

/* What a checker needs from the configuration: copied, so that a reload
 * never pulls memory from under a running check. */
typedef struct msup_check_params {
    msup_hysteresis_t hy;
    uint32_t timeout_ms;
    uint32_t degraded_rtt_ms;
    bool is_replica_set;
} msup_check_params_t;

/* One cluster's checker thread, its hysteresis and its watchdog.  Every
 * field below `mu` is guarded by it. */
typedef struct msup_checker {
    char name[MSUP_NAME_MAX];
    char uri_display[MSUP_URI_DISPLAY_MAX];
    uint32_t row;
    msup_segment_t *seg;
    char *uri;                    /* secret: never logged; owned */
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    msup_check_params_t params;
    msup_hstate_t hs;
    bool in_progress;
    uint64_t check_started_mono_ns;
    uint32_t check_timeout_ms;    /* of the running check: a reload may change params meanwhile */
    bool abandoned;               /* the watchdog failed the running check */
    uint64_t watchdog_next_mono_ns;
    uint64_t watchdog_fired;
    bool came_up;                 /* DOWN -> UP/DEGRADED: reconnect.c bumps the generation */
    bool detached;                /* stopped mid-check: the thread frees the checker when it returns */
    bool exited;                  /* the thread has left its loop */
} msup_checker_t;

/* Per-cluster reconnect bookkeeping (main thread only). */
typedef struct msup_reconnect_state {
    uint64_t last_bump_mono_ns;
    uint64_t net_failures_prev;
    uint64_t net_sample_mono_ns;
    const char *pending_cause;    /* a bump waiting for the rate limit */
} msup_reconnect_state_t;

struct msup_control; /* control.h */
struct msup_fleet;   /* fleet/fleet.h */

typedef struct msup_sup {
    mongosup_config_t *cfg;
    const char *config_path;
    const char *environment;      /* -e, or NULL */
    bool verbose;                 /* -v: debug level whatever the file says */
    msup_segment_t seg;
    bool segment_created;
    /* Indexed by row: NULL for rows without a running checker. */
    msup_checker_t *checkers[MSUP_MAX_CLUSTERS];
    msup_reconnect_state_t reconnect[MSUP_MAX_CLUSTERS];
    struct msup_control *control; /* the control socket, NULL before it is open */
    struct msup_fleet *fleet;     /* the fleet thread (fleet/), NULL without a fleet */
    const char *shutdown_request; /* set by the control socket's `shutdown`: the main loop's reason */
    uint64_t next_heartbeat_mono_ns;
    uint64_t next_reap_mono_ns;
    uint64_t slots_reaped;
    uint64_t next_integrity_mono_ns;
    bool segment_invalid;         /* the last look found the layout corrupted */
    bool segment_gone;            /* the name now refers to another object, or none */
    sigset_t signals;             /* blocked everywhere; the main loop waits on them */
    int signal_fd;                /* signalfd of `signals` */
} msup_sup_t;

/* main.c: one pass of the periodic work (heartbeat, watchdogs, reconnects
 * while RUNNING, reaper when due or when reap_now). */
void msup_sup_tick(msup_sup_t *sup, bool reap_now);

/* main.c: waits up to timeout_ms for one of sup->signals, serving the
 * control socket meanwhile (a request may end the wait early); returns the
 * signal, or 0 when none came. */
int msup_sup_wait_signal(msup_sup_t *sup, uint32_t timeout_ms);

#endif
