/* fleet_share_test.c: the fleet share computation: fixed cases and random properties (bounded sum, floors, determinism, max-min fairness). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fleet/share.h"
#include "testmain.h"

static uint64_t sum(const uint32_t *t, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += t[i];
    return s;
}

static void test_fair_split_by_demand(void)
{
    /* 100 over 4 hosts with floors of 10: 60 above the floors; a wants 5,
     * b 15, c and d 100: a and b get theirs, c and d split the 40 left. */
    msup_share_params_t p = {.fleet_max = 100, .max_hosts = 4, .floor = 10};
    msup_share_host_t h[] = {{"a", 10, 15}, {"b", 10, 25}, {"c", 10, 110}, {"d", 10, 110}};
    uint32_t t[4];
    msup_share_compute(&p, h, 4, t);
    CU_ASSERT_EQUAL(t[0], 15);
    CU_ASSERT_EQUAL(t[1], 25);
    CU_ASSERT_EQUAL(t[2], 30);
    CU_ASSERT_EQUAL(t[3], 30);
}

static void test_idle_room_split_evenly(void)
{
    /* Nobody wants more than its floor: the 60 above the floors go in equal
     * parts, the remainder to the first ids. */
    msup_share_params_t p = {.fleet_max = 101, .max_hosts = 4, .floor = 10};
    msup_share_host_t h[] = {{"d", 10, 0}, {"c", 10, 0}, {"b", 10, 0}, {"a", 10, 0}};
    uint32_t t[4];
    msup_share_compute(&p, h, 4, t);
    CU_ASSERT_EQUAL(t[3], 26); /* a: 10 + 15 + 1 */
    CU_ASSERT_EQUAL(t[2], 25);
    CU_ASSERT_EQUAL(t[1], 25);
    CU_ASSERT_EQUAL(t[0], 25);
    CU_ASSERT_EQUAL(sum(t, 4), 101);
}

static void test_unseen_hosts_keep_their_floors(void)
{
    /* max_hosts 4, 2 seen: 2 x 10 stay reserved for hosts that may join. */
    msup_share_params_t p = {.fleet_max = 100, .max_hosts = 4, .floor = 10};
    msup_share_host_t h[] = {{"a", 10, 1000}, {"b", 10, 1000}};
    uint32_t t[2];
    msup_share_compute(&p, h, 2, t);
    CU_ASSERT_EQUAL(t[0], 40);
    CU_ASSERT_EQUAL(t[1], 40);
    CU_ASSERT_EQUAL(msup_share_room(&p, 2, 40), 40);
    CU_ASSERT_EQUAL(msup_share_room(&p, 2, 90), 0);
    CU_ASSERT_EQUAL(msup_share_unseen_reserve(&p, 2), 20);
    CU_ASSERT_EQUAL(msup_share_unseen_reserve(&p, 5), 0);
}

static void test_too_many_hosts_get_floors(void)
{
    /* More hosts than max_hosts: the floors alone are over the total; no
     * host gets more than its floor (and no room is ever granted). */
    msup_share_params_t p = {.fleet_max = 20, .max_hosts = 2, .floor = 10};
    msup_share_host_t h[] = {{"a", 10, 50}, {"b", 10, 50}, {"c", 10, 50}};
    uint32_t t[3];
    msup_share_compute(&p, h, 3, t);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(t[i], 10);
    CU_ASSERT_EQUAL(msup_share_room(&p, 3, 20), 0);
}

static uint32_t rnd(uint32_t n)
{
    return n == 0 ? 0 : (uint32_t)(random() % n);
}

/* Random fleets: the properties every host relies on. */
static void test_random_properties(void)
{
    srandom(13);
    int rounds = msup_test_under_valgrind() ? 300 : 5000;
    for (int r = 0; r < rounds; r++) {
        msup_share_params_t p = {.max_hosts = 1 + rnd(12), .floor = 1 + rnd(20)};
        p.fleet_max = p.max_hosts * p.floor + rnd(500);
        size_t n = 1 + rnd(p.max_hosts + 2); /* sometimes more hosts than max_hosts */
        msup_share_host_t h[16], shuffled[16];
        char ids[16][8];
        for (size_t i = 0; i < n; i++) {
            snprintf(ids[i], sizeof ids[i], "h%02u", (unsigned)rnd(100) * 16 + (unsigned)i);
            h[i] = (msup_share_host_t){ids[i], p.floor, rnd(4) == 0 ? 0 : rnd(300)};
        }
        uint32_t t[16], t2[16];
        msup_share_compute(&p, h, n, t);
        uint64_t floors = (uint64_t)n * p.floor;
        uint64_t bound = p.fleet_max - (n < p.max_hosts ? msup_share_unseen_reserve(&p, n) : 0);
        if (floors <= bound) {
            CU_ASSERT_FATAL(sum(t, n) <= bound);
        } else {
            CU_ASSERT_FATAL(sum(t, n) == floors);
        }
        uint64_t wants = 0;
        for (size_t i = 0; i < n; i++) {
            CU_ASSERT_FATAL(t[i] >= h[i].floor);
            wants += h[i].demand > h[i].floor ? h[i].demand - h[i].floor : 0;
        }
        /* Enough room for every want: every demand is met. */
        if (floors + wants <= bound)
            for (size_t i = 0; i < n; i++)
                CU_ASSERT_FATAL(t[i] >= h[i].demand);
        /* Max-min fairness: a host that got less than it wants has at least
         * as much above its floor as any other host has for its demand
         * (integer division: one token apart at most). */
        for (size_t i = 0; i < n; i++) {
            if (t[i] >= h[i].demand || floors > bound)
                continue;
            for (size_t j = 0; j < n; j++) {
                uint32_t used_j = t[j] < h[j].demand ? t[j] : h[j].demand;
                uint32_t above_j = used_j > h[j].floor ? used_j - h[j].floor : 0;
                CU_ASSERT_FATAL(t[i] - h[i].floor + 1 >= above_j);
            }
        }
        /* Deterministic: the same records in another order give each host
         * the same cap. */
        size_t perm[16];
        for (size_t i = 0; i < n; i++)
            perm[i] = i;
        for (size_t i = n; i > 1; i--) {
            size_t j = rnd((uint32_t)i), tmp = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = tmp;
        }
        for (size_t i = 0; i < n; i++)
            shuffled[i] = h[perm[i]];
        msup_share_compute(&p, shuffled, n, t2);
        for (size_t i = 0; i < n; i++)
            CU_ASSERT_FATAL(t2[i] == t[perm[i]]);
    }
}

/* Hosts joining one by one within max_hosts: each join finds its floor
 * free under the caps the others hold (the unseen reservation). */
static void test_join_finds_floor(void)
{
    srandom(7);
    for (int r = 0; r < 500; r++) {
        msup_share_params_t p = {.max_hosts = 1 + rnd(10), .floor = 1 + rnd(10)};
        p.fleet_max = p.max_hosts * p.floor + rnd(200);
        msup_share_host_t h[16];
        char ids[16][8];
        uint32_t t[16];
        for (size_t n = 1; n <= p.max_hosts; n++) {
            snprintf(ids[n - 1], sizeof ids[n - 1], "j%zu", n);
            h[n - 1] = (msup_share_host_t){ids[n - 1], p.floor, rnd(100)};
            /* the n-1 hosts hold their targets; host n joins at its floor */
            if (n > 1) {
                msup_share_compute(&p, h, n - 1, t);
                CU_ASSERT_FATAL(sum(t, n - 1) + p.floor + msup_share_unseen_reserve(&p, n) <= p.fleet_max);
            }
        }
    }
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/fleet/share/fair-split-by-demand", test_fair_split_by_demand},
        {"/fleet/share/idle-room-split-evenly", test_idle_room_split_evenly},
        {"/fleet/share/unseen-hosts-keep-floors", test_unseen_hosts_keep_their_floors},
        {"/fleet/share/too-many-hosts-get-floors", test_too_many_hosts_get_floors},
        {"/fleet/share/random-properties", test_random_properties},
        {"/fleet/share/join-finds-floor", test_join_finds_floor},
        {NULL, NULL},
    };
    return msup_test_main("fleet_share", tests, argc, argv);
}
