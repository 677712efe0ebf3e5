/* health_state.c: rise/fall hysteresis and check intervals (HAProxy's model, plus DEGRADED and a half-open RECOVERING). */
#include "health_state.h"
#include "layout.h"

void msup_hstate_init(msup_hstate_t *hs, uint32_t state)
{
    *hs = (msup_hstate_t){.state = state <= MSUP_HEALTH_RECOVERING ? state : MSUP_HEALTH_UNKNOWN};
}

static uint32_t next_state(const msup_hstate_t *hs, const msup_hysteresis_t *hy, msup_check_outcome_t outcome)
{
    uint32_t rise = hy->rise ? hy->rise : 1, fall = hy->fall ? hy->fall : 1;
    switch (hs->state) {
    case MSUP_HEALTH_UNKNOWN:
        if (hs->fail_streak >= fall)
            return MSUP_HEALTH_DOWN;
        if (hs->reach_streak >= rise)
            return outcome == MSUP_CHECK_OK ? MSUP_HEALTH_UP : MSUP_HEALTH_DEGRADED;
        return MSUP_HEALTH_UNKNOWN;
    case MSUP_HEALTH_DOWN:
    case MSUP_HEALTH_RECOVERING:
        /* Half-open, as circuit breakers do: the first check that reaches
         * the cluster lets trial traffic through (RECOVERING) until `rise`
         * checks say UP; one failure there is DOWN again. */
        if (hs->reach_streak >= rise)
            return outcome == MSUP_CHECK_OK ? MSUP_HEALTH_UP : MSUP_HEALTH_DEGRADED;
        if (outcome == MSUP_CHECK_FAILED)
            return MSUP_HEALTH_DOWN;
        return MSUP_HEALTH_RECOVERING;
    case MSUP_HEALTH_UP:
        if (hs->fail_streak >= fall)
            return MSUP_HEALTH_DOWN;
        if (hs->bad_streak >= fall)
            return MSUP_HEALTH_DEGRADED;
        return MSUP_HEALTH_UP;
    case MSUP_HEALTH_DEGRADED:
        if (hs->fail_streak >= fall)
            return MSUP_HEALTH_DOWN;
        if (hs->ok_streak >= rise)
            return MSUP_HEALTH_UP;
        return MSUP_HEALTH_DEGRADED;
    default:
        return MSUP_HEALTH_UNKNOWN;
    }
}

bool msup_hstate_feed(msup_hstate_t *hs, const msup_hysteresis_t *hy, msup_check_outcome_t outcome,
                      uint32_t *previous)
{
    switch (outcome) {
    case MSUP_CHECK_OK:
        hs->reach_streak++;
        hs->ok_streak++;
        hs->fail_streak = 0;
        hs->bad_streak = 0;
        break;
    case MSUP_CHECK_DEGRADED:
        hs->reach_streak++;
        hs->ok_streak = 0;
        hs->fail_streak = 0;
        hs->bad_streak++;
        break;
    case MSUP_CHECK_FAILED:
    default:
        hs->reach_streak = 0;
        hs->ok_streak = 0;
        hs->fail_streak++;
        hs->bad_streak++;
        break;
    }
    uint32_t old = hs->state, now = next_state(hs, hy, outcome);
    if (previous != NULL)
        *previous = old;
    if (now == old)
        return false;
    hs->state = now;
    hs->transitions++;
    return true;
}

uint32_t msup_hstate_cause(const msup_hstate_t *hs, uint32_t previous, const char **what)
{
    /* The rules of next_state, read backwards. */
    if (hs->state == MSUP_HEALTH_DOWN) {
        *what = "failed";
        return hs->fail_streak;
    }
    if (previous == MSUP_HEALTH_UP) { /* UP -> DEGRADED */
        *what = "degraded or failed";
        return hs->bad_streak;
    }
    if (previous == MSUP_HEALTH_DEGRADED) { /* DEGRADED -> UP */
        *what = "good";
        return hs->ok_streak;
    }
    /* UNKNOWN or DOWN -> UP or DEGRADED: `rise` checks that reached it. */
    *what = hs->state == MSUP_HEALTH_UP ? "good" : "reachable";
    return hs->reach_streak;
}

bool msup_hstate_in_transition(const msup_hstate_t *hs)
{
    switch (hs->state) {
    case MSUP_HEALTH_UP: return hs->bad_streak > 0;
    case MSUP_HEALTH_DOWN: return hs->reach_streak > 0;
    default: return true; /* UNKNOWN, DEGRADED and RECOVERING are waiting to settle */
    }
}

uint32_t msup_hstate_next_interval_ms(const msup_hstate_t *hs, const msup_hysteresis_t *hy)
{
    if (hs->state == MSUP_HEALTH_DOWN && hs->reach_streak == 0)
        return hy->downinter_ms;
    return msup_hstate_in_transition(hs) ? hy->fastinter_ms : hy->inter_ms;
}
