/* supervisor_health_state_test.c: every transition and interval of the hysteresis state machine. */
#include <CUnit/CUnit.h>

#include "../supervisor/health_state.h"
#include "layout.h"
#include "testmain.h"

static const msup_hysteresis_t HY = {.rise = 2, .fall = 3, .inter_ms = 2000, .fastinter_ms = 500, .downinter_ms = 1000};

/* Feeds a string of outcomes ('o' ok, 'd' degraded, 'f' failed); returns the
 * number of state changes it caused. */
static int feed(msup_hstate_t *hs, const msup_hysteresis_t *hy, const char *outcomes)
{
    int changes = 0;
    for (const char *p = outcomes; *p; p++) {
        msup_check_outcome_t o = *p == 'o' ? MSUP_CHECK_OK : *p == 'd' ? MSUP_CHECK_DEGRADED : MSUP_CHECK_FAILED;
        changes += msup_hstate_feed(hs, hy, o, NULL) ? 1 : 0;
    }
    return changes;
}

static msup_hstate_t at(uint32_t state)
{
    msup_hstate_t hs;
    msup_hstate_init(&hs, state);
    return hs;
}

static void test_init(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_DOWN);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DOWN);
    CU_ASSERT_EQUAL(hs.transitions, 0);
    hs = at(MSUP_HEALTH_RECOVERING); /* an adopting supervisor keeps a half-open row */
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_RECOVERING);
    hs = at(42); /* garbage from a corrupted row */
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UNKNOWN);
}

static void test_unknown_rise(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_UNKNOWN);
    uint32_t prev = 99;
    CU_ASSERT_FALSE(msup_hstate_feed(&hs, &HY, MSUP_CHECK_OK, &prev));
    CU_ASSERT_EQUAL(prev, MSUP_HEALTH_UNKNOWN);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UNKNOWN);
    CU_ASSERT_TRUE(msup_hstate_feed(&hs, &HY, MSUP_CHECK_OK, &prev));
    CU_ASSERT_EQUAL(prev, MSUP_HEALTH_UNKNOWN);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(hs.transitions, 1);
}

static void test_unknown_fall(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_UNKNOWN);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "ff"), 0);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UNKNOWN);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "f"), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DOWN);
}

static void test_unknown_degraded(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_UNKNOWN);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "od"), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DEGRADED);
}

static void test_unknown_mixed_resets(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_UNKNOWN);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "ofoffo"), 0); /* never 2 good or 3 bad in a row */
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UNKNOWN);
    CU_ASSERT_EQUAL(hs.reach_streak, 1);
    CU_ASSERT_EQUAL(hs.fail_streak, 0);
}

static void test_up_fall_to_down(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "ff"), 0);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(hs.fail_streak, 2);
    uint32_t prev;
    CU_ASSERT_TRUE(msup_hstate_feed(&hs, &HY, MSUP_CHECK_FAILED, &prev));
    CU_ASSERT_EQUAL(prev, MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DOWN);
}

static void test_up_success_resets_fall(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "ffoff"), 0);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "f"), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DOWN);
}

static void test_up_to_degraded(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "dd"), 0);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "d"), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DEGRADED);
}

static void test_up_mixed_bad_is_degraded(void)
{
    /* Degraded and failed checks mixed: not `fall` failures in a row, but
     * `fall` bad checks: the cluster answers sometimes, so DEGRADED. */
    msup_hstate_t hs = at(MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "fdf"), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DEGRADED);
}

static void test_degraded_rise_to_up(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_DEGRADED);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "odo"), 0); /* a degraded check breaks the OK streak */
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DEGRADED);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "o"), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UP);
}

static void test_degraded_fall_to_down(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_DEGRADED);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "ffdff"), 0);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DEGRADED);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "f"), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DOWN);
}

static void test_down_rise(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_DOWN);
    /* RECOVERING, DOWN again (a failure restarts the rise), RECOVERING */
    CU_ASSERT_EQUAL(feed(&hs, &HY, "ofo"), 3);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_RECOVERING);
    uint32_t prev;
    CU_ASSERT_TRUE(msup_hstate_feed(&hs, &HY, MSUP_CHECK_OK, &prev));
    CU_ASSERT_EQUAL(prev, MSUP_HEALTH_RECOVERING);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UP);
}

static void test_down_rise_degraded(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_DOWN);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "od"), 2); /* RECOVERING, DEGRADED */
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DEGRADED);
    hs = at(MSUP_HEALTH_DOWN);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "do"), 2); /* reachable twice, last one fine */
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UP);
}

static void test_down_stays_down(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_DOWN);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "ffffffffff"), 0);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DOWN);
    CU_ASSERT_EQUAL(hs.fail_streak, 10);
    CU_ASSERT_EQUAL(hs.transitions, 0);
}

/* Half-open: one failure goes back to DOWN, which then checks at
 * downinter; a server that fails every other check never comes UP. */
static void test_recovering_failure_is_down(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_DOWN);
    CU_ASSERT_EQUAL(feed(&hs, &HY, "o"), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_RECOVERING);
    uint32_t prev;
    CU_ASSERT_TRUE(msup_hstate_feed(&hs, &HY, MSUP_CHECK_FAILED, &prev));
    CU_ASSERT_EQUAL(prev, MSUP_HEALTH_RECOVERING);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DOWN);
    CU_ASSERT_EQUAL(msup_hstate_next_interval_ms(&hs, &HY), HY.downinter_ms);
    /* A degraded check is reachable too: half-open, not UP. */
    CU_ASSERT_EQUAL(feed(&hs, &HY, "d"), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_RECOVERING);
}

static void test_recovering_flaky_never_up(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_DOWN);
    for (int i = 0; i < 50; i++) {
        feed(&hs, &HY, "o");
        CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_RECOVERING);
        CU_ASSERT_EQUAL(msup_hstate_next_interval_ms(&hs, &HY), HY.fastinter_ms);
        feed(&hs, &HY, "f");
        CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DOWN);
        /* the next probe waits downinter: one DOWN/RECOVERING cycle takes
         * at least downinter + fastinter */
        CU_ASSERT_EQUAL(msup_hstate_next_interval_ms(&hs, &HY), HY.downinter_ms);
    }
    CU_ASSERT_EQUAL(hs.transitions, 100);
}

static void test_rise_fall_one(void)
{
    const msup_hysteresis_t one = {.rise = 1, .fall = 1, .inter_ms = 100, .fastinter_ms = 50, .downinter_ms = 70};
    msup_hstate_t hs = at(MSUP_HEALTH_UNKNOWN);
    CU_ASSERT_EQUAL(feed(&hs, &one, "o"), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(feed(&hs, &one, "f"), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DOWN);
    CU_ASSERT_EQUAL(feed(&hs, &one, "d"), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DEGRADED);
    CU_ASSERT_EQUAL(feed(&hs, &one, "o"), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(hs.transitions, 4);
}

static void test_zero_counts_act_as_one(void)
{
    const msup_hysteresis_t zero = {.rise = 0, .fall = 0, .inter_ms = 100, .fastinter_ms = 50, .downinter_ms = 70};
    msup_hstate_t hs = at(MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(feed(&hs, &zero, "f"), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DOWN);
}

static void test_full_cycle_transitions(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_UNKNOWN);
    /* UP, DOWN, RECOVERING, UP, DEGRADED, UP */
    CU_ASSERT_EQUAL(feed(&hs, &HY, "oo" "fff" "oo" "ddd" "oo"), 6);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(hs.transitions, 6);
}

/* Feeds outcomes until the state changes; returns what the log would count. */
static uint32_t cause_of_change(msup_hstate_t *hs, const msup_hysteresis_t *hy, const char *outcomes,
                                const char **what)
{
    for (const char *p = outcomes; *p; p++) {
        msup_check_outcome_t o = *p == 'o' ? MSUP_CHECK_OK : *p == 'd' ? MSUP_CHECK_DEGRADED : MSUP_CHECK_FAILED;
        uint32_t previous;
        if (msup_hstate_feed(hs, hy, o, &previous))
            return msup_hstate_cause(hs, previous, what);
    }
    *what = "no change";
    return 0;
}

/* The log counts the streak that caused the transition: "DEGRADED -> UP
 * after 291 good checks" with rise = 1 counted every reachable check since
 * the cluster went DEGRADED. */
static void test_cause_counts(void)
{
    const msup_hysteresis_t one = {.rise = 1, .fall = 3, .inter_ms = 2000, .fastinter_ms = 500, .downinter_ms = 1000};
    const char *what;
    msup_hstate_t hs = at(MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(cause_of_change(&hs, &one, "ddd", &what), 3);
    CU_ASSERT_STRING_EQUAL(what, "degraded or failed");
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DEGRADED);
    for (int i = 0; i < 287; i++)
        CU_ASSERT_FALSE(msup_hstate_feed(&hs, &one, MSUP_CHECK_DEGRADED, NULL));
    CU_ASSERT_EQUAL(cause_of_change(&hs, &one, "o", &what), 1);
    CU_ASSERT_STRING_EQUAL(what, "good");
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(hs.reach_streak, 291); /* what the old log printed */

    /* UP -> DEGRADED by a mix of degraded and failed checks. */
    hs = at(MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(cause_of_change(&hs, &HY, "odfd", &what), 3);
    CU_ASSERT_STRING_EQUAL(what, "degraded or failed");
    /* -> DOWN: the failures only, not the degraded checks before them. */
    CU_ASSERT_EQUAL(cause_of_change(&hs, &HY, "dddfff", &what), 3);
    CU_ASSERT_STRING_EQUAL(what, "failed");
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DOWN);
    /* DOWN -> RECOVERING (half-open) on the first reachable check (the
     * failures before it are not counted, as bad_streak would)... */
    CU_ASSERT_EQUAL(cause_of_change(&hs, &HY, "fffo", &what), 1);
    CU_ASSERT_STRING_EQUAL(what, "reachable");
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_RECOVERING);
    /* ... then RECOVERING -> DEGRADED after `rise` reachable checks in all. */
    CU_ASSERT_EQUAL(cause_of_change(&hs, &HY, "d", &what), 2);
    CU_ASSERT_STRING_EQUAL(what, "reachable");
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DEGRADED);
    hs = at(MSUP_HEALTH_DOWN);
    CU_ASSERT_EQUAL(cause_of_change(&hs, &HY, "fo", &what), 1);
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_RECOVERING);
    CU_ASSERT_EQUAL(cause_of_change(&hs, &HY, "o", &what), 2);
    CU_ASSERT_STRING_EQUAL(what, "good");
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UP);
    /* RECOVERING -> DOWN on one failure: counted as one failed check. */
    hs = at(MSUP_HEALTH_DOWN);
    CU_ASSERT_EQUAL(cause_of_change(&hs, &HY, "o", &what), 1);
    CU_ASSERT_EQUAL(cause_of_change(&hs, &HY, "f", &what), 1);
    CU_ASSERT_STRING_EQUAL(what, "failed");
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DOWN);
    hs = at(MSUP_HEALTH_UNKNOWN);
    CU_ASSERT_EQUAL(cause_of_change(&hs, &HY, "offf", &what), 3);
    CU_ASSERT_STRING_EQUAL(what, "failed");
}

static void test_intervals(void)
{
    msup_hstate_t hs = at(MSUP_HEALTH_UNKNOWN);
    CU_ASSERT_EQUAL(msup_hstate_next_interval_ms(&hs, &HY), HY.fastinter_ms);
    feed(&hs, &HY, "oo");
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_UP);
    CU_ASSERT_FALSE(msup_hstate_in_transition(&hs));
    CU_ASSERT_EQUAL(msup_hstate_next_interval_ms(&hs, &HY), HY.inter_ms);
    feed(&hs, &HY, "f"); /* UP, going down */
    CU_ASSERT_TRUE(msup_hstate_in_transition(&hs));
    CU_ASSERT_EQUAL(msup_hstate_next_interval_ms(&hs, &HY), HY.fastinter_ms);
    feed(&hs, &HY, "d"); /* UP, degraded check: still in transition */
    CU_ASSERT_EQUAL(msup_hstate_next_interval_ms(&hs, &HY), HY.fastinter_ms);
    feed(&hs, &HY, "offf");
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DOWN);
    CU_ASSERT_EQUAL(msup_hstate_next_interval_ms(&hs, &HY), HY.downinter_ms);
    feed(&hs, &HY, "o"); /* DOWN, coming up: half-open */
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_RECOVERING);
    CU_ASSERT_TRUE(msup_hstate_in_transition(&hs));
    CU_ASSERT_EQUAL(msup_hstate_next_interval_ms(&hs, &HY), HY.fastinter_ms);
    feed(&hs, &HY, "d");
    CU_ASSERT_EQUAL(hs.state, MSUP_HEALTH_DEGRADED);
    CU_ASSERT_EQUAL(msup_hstate_next_interval_ms(&hs, &HY), HY.fastinter_ms);
}

static const msup_test_t tests[] = {
    {"/health_state/init", test_init},
    {"/health_state/log-counts-the-cause", test_cause_counts},
    {"/health_state/unknown/rise-to-up", test_unknown_rise},
    {"/health_state/unknown/fall-to-down", test_unknown_fall},
    {"/health_state/unknown/rise-to-degraded", test_unknown_degraded},
    {"/health_state/unknown/mixed-resets-streaks", test_unknown_mixed_resets},
    {"/health_state/up/fall-to-down", test_up_fall_to_down},
    {"/health_state/up/success-resets-fall", test_up_success_resets_fall},
    {"/health_state/up/degraded-after-fall", test_up_to_degraded},
    {"/health_state/up/mixed-bad-is-degraded", test_up_mixed_bad_is_degraded},
    {"/health_state/degraded/rise-to-up", test_degraded_rise_to_up},
    {"/health_state/degraded/fall-to-down", test_degraded_fall_to_down},
    {"/health_state/down/rise-to-up", test_down_rise},
    {"/health_state/down/rise-to-degraded", test_down_rise_degraded},
    {"/health_state/down/stays-down", test_down_stays_down},
    {"/health_state/recovering/failure-is-down", test_recovering_failure_is_down},
    {"/health_state/recovering/flaky-never-up", test_recovering_flaky_never_up},
    {"/health_state/rise-fall-one", test_rise_fall_one},
    {"/health_state/zero-counts-act-as-one", test_zero_counts_act_as_one},
    {"/health_state/full-cycle", test_full_cycle_transitions},
    {"/health_state/intervals", test_intervals},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return msup_test_main("supervisor_health_state", tests, argc, argv);
}
