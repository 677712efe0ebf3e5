/* health.h: a checker thread per cluster (ping, hello, RTT) and the watchdog that bounds each check. */
#ifndef MONGOSUPD_HEALTH_H
#define MONGOSUPD_HEALTH_H

#include "supervisor.h"

/* Extra time a check may take beyond check_timeout_ms before the watchdog
 * counts it as failed (the driver's own timeouts normally fire first). */
#define MSUP_WATCHDOG_MARGIN_MS 500u

void msup_check_params_from_config(const msup_cluster_cfg_t *cc, msup_check_params_t *p);

/* Starts a checker for the cluster in `row` (initial health from the row). */
msup_checker_t *msup_checker_start(msup_segment_t *seg, uint32_t row, const msup_cluster_cfg_t *cc,
                                   mongosup_error_t *error);

/* New timing parameters, taken at the next check. */
void msup_checker_update(msup_checker_t *ck, const msup_check_params_t *p);

/* Stops a checker and clears *ck.  An idle thread is joined and freed at
 * once.  A thread in the middle of a check is waited for up to wait_ms
 * (0: not at all, so that a reload never blocks the main loop); past that
 * it is detached: its result is dropped (the row may already belong to a
 * new checker) and it frees itself when its call returns. */
void msup_checker_stop(msup_checker_t **ck, uint32_t wait_ms);

/* Checker threads still running, detached ones included: mongoc_cleanup()
 * must wait until none is left inside the driver. */
unsigned msup_checkers_running(void);

/* Main loop: fails checks that run past timeout + margin, once per
 * interval while the checker stays stuck. */
void msup_checker_watchdog(msup_checker_t *ck, uint64_t now_mono_ns);

/* Returns and clears the "came up from DOWN" flag. */
bool msup_checker_take_came_up(msup_checker_t *ck);

/* Current health as the hysteresis sees it. */
uint32_t msup_checker_health(msup_checker_t *ck);

#endif
