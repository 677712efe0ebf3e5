/* health_state.h: the HAProxy-style hysteresis of one cluster's health (pure, no I/O). */
#ifndef MONGOSUPD_HEALTH_STATE_H
#define MONGOSUPD_HEALTH_STATE_H

#include <stdbool.h>
#include <stdint.h>

/* What one check found. */
typedef enum msup_check_outcome {
    MSUP_CHECK_OK,        /* reachable, a primary (replica sets), RTT under degraded_rtt_ms */
    MSUP_CHECK_DEGRADED,  /* reachable, but no primary or the RTT is above degraded_rtt_ms */
    MSUP_CHECK_FAILED,    /* unreachable, error, timeout or watchdog */
} msup_check_outcome_t;

typedef struct msup_hysteresis {
    uint32_t rise;          /* consecutive good checks to come up */
    uint32_t fall;          /* consecutive bad checks to go down (or degraded) */
    uint32_t inter_ms;      /* steady state */
    uint32_t fastinter_ms;  /* while in transition (and while DEGRADED or UNKNOWN) */
    uint32_t downinter_ms;  /* while fully DOWN */
} msup_hysteresis_t;

/*
 * Rules (each check updates the streaks, then the state):
 *  - UNKNOWN, DOWN, RECOVERING: `rise` consecutive reachable checks -> UP,
 *    or DEGRADED when the last one was degraded.  UNKNOWN: `fall` failures
 *    -> DOWN.  DOWN: a reachable check short of `rise` -> RECOVERING
 *    (half-open: workers let trial checkouts through).  RECOVERING: one
 *    failed check -> DOWN (which then checks at downinter: a flaky server
 *    cycles DOWN/RECOVERING no faster than downinter + fastinter, and
 *    reaches UP only with `rise` good checks in a row).
 *  - UP: `fall` consecutive failures -> DOWN; else `fall` consecutive
 *    not-OK checks (degraded or failed) -> DEGRADED.
 *  - DEGRADED: `fall` consecutive failures -> DOWN; `rise` consecutive OK
 *    checks -> UP.
 */
typedef struct msup_hstate {
    uint32_t state;         /* enum msup_health */
    uint32_t reach_streak;  /* consecutive checks that reached the cluster (OK or DEGRADED) */
    uint32_t ok_streak;     /* consecutive OK checks */
    uint32_t fail_streak;   /* consecutive FAILED checks */
    uint32_t bad_streak;    /* consecutive not-OK checks */
    uint64_t transitions;
} msup_hstate_t;

/* Starts in `state` (UNKNOWN normally; an adopting supervisor starts from
 * the state the segment shows, so workers keep their circuit as it was). */
void msup_hstate_init(msup_hstate_t *hs, uint32_t state);

/* Feeds one outcome; returns true when the state changed (*previous then
 * holds the old state). */
bool msup_hstate_feed(msup_hstate_t *hs, const msup_hysteresis_t *hy, msup_check_outcome_t outcome,
                      uint32_t *previous);

/* After a feed that changed the state from `previous` to hs->state: the
 * length of the streak that caused the change (what the log should count:
 * e.g. DEGRADED -> UP is caused by the OK streak, not by every reachable
 * check since the cluster went DEGRADED), and in *what its kind: "good"
 * (OK, or reachable when coming up), "reachable" (coming up DEGRADED),
 * "degraded or failed", or "failed". */
uint32_t msup_hstate_cause(const msup_hstate_t *hs, uint32_t previous, const char **what);

/* True while streaks are counting toward a change of state. */
bool msup_hstate_in_transition(const msup_hstate_t *hs);

/* Delay before the next check: inter, fastinter or downinter. */
uint32_t msup_hstate_next_interval_ms(const msup_hstate_t *hs, const msup_hysteresis_t *hy);

#endif
