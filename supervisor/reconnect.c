/* reconnect.c: generation bumps (DOWN->UP, manual, worker network-failure bursts), rate limited, logged. */
#include <stdio.h>

#include "error.h"

#include "../lib/config.h" /* not autoconf's config.h, which -I. finds first */
#include "health.h"
#include "log.h"
#include "reconnect.h"

uint64_t msup_reconnect_network_failures(const msup_segment_t *seg, uint32_t cluster)
{
    uint32_t active = atomic_load_explicit(&seg->retired->active, memory_order_acquire) & 1u;
    uint64_t sum = atomic_load_explicit(&msup_retired_stats(seg, active, cluster)->failures[MSUP_FAIL_NETWORK],
                                        memory_order_relaxed);
    for (uint32_t i = 0; i < seg->max_workers; i++) {
        const msup_slot_t *slot = msup_segment_slot(seg, i);
        uint32_t st = atomic_load_explicit(&slot->state, memory_order_acquire);
        if (st == MSUP_SLOT_ACTIVE || st == MSUP_SLOT_EXITED)
            sum += atomic_load_explicit(&msup_slot_stats(seg, i, cluster)->failures[MSUP_FAIL_NETWORK],
                                        memory_order_relaxed);
    }
    return sum;
}

void msup_reconnect_reset(msup_sup_t *sup, uint32_t row)
{
    msup_reconnect_state_t *rs = &sup->reconnect[row];
    *rs = (msup_reconnect_state_t){0};
    rs->net_failures_prev = msup_reconnect_network_failures(&sup->seg, row);
    rs->net_sample_mono_ns = msup_mono_ns();
}

static void bump(msup_sup_t *sup, uint32_t row_idx, const char *cause, uint64_t now_mono)
{
    msup_cluster_row_t *row = msup_segment_row(&sup->seg, row_idx);
    atomic_store_explicit(&row->reconnect_at_ns, msup_now_ns(), memory_order_relaxed);
    uint64_t gen = atomic_fetch_add_explicit(&row->reconnect_generation, 1, memory_order_release) + 1;
    sup->reconnect[row_idx].last_bump_mono_ns = now_mono;
    sup->reconnect[row_idx].pending_cause = NULL;
    msup_log(LOG_NOTICE, "cluster %.*s: reconnect generation %llu (cause: %s)", (int)sizeof row->name, row->name,
             (unsigned long long)gen, cause);
}

/* Makes the pending bump of a row unless reconnect_min_interval_ms forbids
 * it yet (logged when `fresh`: a new cause, not a retry).  True if made. */
static bool bump_when_allowed(msup_sup_t *sup, uint32_t idx, const msup_cluster_cfg_t *cc, bool fresh,
                              uint64_t now)
{
    msup_reconnect_state_t *rs = &sup->reconnect[idx];
    if (rs->pending_cause == NULL)
        return false;
    uint64_t min_ns = (uint64_t)cc->reconnect_min_interval_ms * 1000000u;
    if (rs->last_bump_mono_ns != 0 && now - rs->last_bump_mono_ns < min_ns) {
        if (fresh)
            msup_log(LOG_INFO, "cluster %s: reconnect (%s) deferred by reconnect_min_interval_ms %u", cc->name,
                     rs->pending_cause, cc->reconnect_min_interval_ms);
        return false;
    }
    bump(sup, idx, rs->pending_cause, now);
    return true;
}

void msup_reconnect_tick(msup_sup_t *sup, uint64_t now)
{
    for (size_t c = 0; c < sup->cfg->cluster_count; c++) {
        const msup_cluster_cfg_t *cc = &sup->cfg->clusters[c];
        int idx = msup_segment_find_cluster(&sup->seg, cc->name);
        if (idx < 0 || sup->checkers[idx] == NULL)
            continue;
        msup_reconnect_state_t *rs = &sup->reconnect[idx];
        const char *cause = NULL;

        if (msup_checker_take_came_up(sup->checkers[idx]))
            cause = "cluster came back up (DOWN -> UP)";

        /* Workers failing on the network while our checks pass: their pools
         * hold dead connections the checks do not see. */
        uint64_t elapsed = now - rs->net_sample_mono_ns;
        if (elapsed >= 1000000000u) {
            uint64_t failures = msup_reconnect_network_failures(&sup->seg, (uint32_t)idx);
            uint64_t delta = failures >= rs->net_failures_prev ? failures - rs->net_failures_prev : 0;
            double per_s = (double)delta * 1e9 / (double)elapsed;
            rs->net_failures_prev = failures;
            rs->net_sample_mono_ns = now;
            uint32_t health = msup_checker_health(sup->checkers[idx]);
            bool checks_pass = health == MSUP_HEALTH_UP || health == MSUP_HEALTH_DEGRADED;
            if (cc->reconnect_network_errors_per_s > 0 && per_s > cc->reconnect_network_errors_per_s && checks_pass) {
                msup_log(LOG_INFO, "cluster %s: workers report %.1f network failures/s (limit %u) while checks pass",
                         cc->name, per_s, cc->reconnect_network_errors_per_s);
                if (cause == NULL)
                    cause = "worker network failures above reconnect_network_errors_per_s while checks pass";
            }
        }

        if (cause != NULL)
            rs->pending_cause = cause;
        bump_when_allowed(sup, (uint32_t)idx, cc, cause != NULL, now);
    }
}

bool msup_reconnect_request(msup_sup_t *sup, const char *cluster, uint64_t *generation, bool *deferred,
                            mongosup_error_t *error)
{
    int c = msup_config_find_cluster(sup->cfg, cluster);
    int idx = c >= 0 ? msup_segment_find_cluster(&sup->seg, cluster) : -1;
    if (idx < 0)
        return msup_fail(error, MONGOSUP_E_UNKNOWN_CLUSTER, "no cluster '%s' in the running configuration", cluster);
    if (sup->checkers[idx] == NULL)
        return msup_fail(error, MONGOSUP_E_UNKNOWN_CLUSTER, "cluster '%s' has no running checker", cluster);
    sup->reconnect[idx].pending_cause = "manual request (mongosupctl reconnect)";
    *deferred = !bump_when_allowed(sup, (uint32_t)idx, &sup->cfg->clusters[c], true, msup_mono_ns());
    *generation = atomic_load_explicit(&msup_segment_row(&sup->seg, (uint32_t)idx)->reconnect_generation,
                                       memory_order_acquire);
    return true;
}
