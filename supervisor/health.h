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

/* Stops and frees a checker.  A thread stuck in an unbounded call (DNS) is
 * detached and its memory left to the exit: it may still touch it. */
void msup_checker_stop(msup_checker_t **ck);

/* Main loop: fails checks that run past timeout + margin, once per
 * interval while the checker stays stuck. */
void msup_checker_watchdog(msup_checker_t *ck, uint64_t now_mono_ns);

/* Returns and clears the "came up from DOWN" flag. */
bool msup_checker_take_came_up(msup_checker_t *ck);

/* Current health as the hysteresis sees it. */
uint32_t msup_checker_health(msup_checker_t *ck);

#endif
