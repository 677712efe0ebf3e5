/* fleet_plan_test.c: the fleet protocol's rules (fleet/plan.c) simulated against a model of etcd with random joins, deaths, partitions, demand and stale reads: the invariant at every step, convergence when quiet. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fleet/plan.h"
#include "testmain.h"

#define H 6                 /* host ids; max_hosts = H */
#define MS 1000000ull

typedef struct record {
    bool present;
    uint32_t cap, demand;
    int64_t mod_rev;
    int lease;              /* the lease (epoch) it is attached to */
} record_t;

typedef struct host {
    bool exists, alive, partitioned;
    int lease;              /* 0: none */
    uint32_t published, published_demand, enforced, demand;
    uint64_t in_use, lowering_since_ns;
    bool pending;           /* a read done, its write not yet */
    msup_plan_t plan;
    int64_t read_rev;
    uint64_t drop_at, expire_at; /* partition: local deadline, then the server's expiry */
    int expire_lease;
} host_t;

typedef struct sim {
    msup_share_params_t p;
    uint32_t ceiling;
    record_t rec[H];
    int64_t rev;
    int next_lease;
    host_t h[H];
    uint64_t now;
    char ids[H][8];
    long checks;
} sim_t;

static uint32_t rnd(uint32_t n)
{
    return n == 0 ? 0 : (uint32_t)(random() % n);
}

static void check(sim_t *s)
{
    uint64_t enforced = 0, published = 0;
    size_t records = 0;
    for (int i = 0; i < H; i++) {
        if (s->rec[i].present) {
            published += s->rec[i].cap;
            records++;
        }
        const host_t *h = &s->h[i];
        if (!h->exists || !h->alive)
            continue;
        enforced += h->enforced;
        /* A host never enforces more than its record grants, or than its
         * floor without one. */
        bool own = s->rec[i].present && s->rec[i].lease == h->lease && h->lease != 0;
        if (!(h->enforced <= (own ? s->rec[i].cap : s->p.floor) || h->enforced == s->p.floor))
            fprintf(stderr, "\n  host %d: enforced %u published %u lease %d; record present %d cap %u lease %d; "
                    "floor %u plan %d target %u pending %d\n", i, h->enforced, h->published, h->lease,
                    s->rec[i].present, s->rec[i].cap, s->rec[i].lease, s->p.floor, h->plan.kind, h->plan.target,
                    h->pending);
        CU_ASSERT_FATAL(h->enforced <= (own ? s->rec[i].cap : s->p.floor) || h->enforced == s->p.floor);
    }
    CU_ASSERT_FATAL(enforced <= s->p.fleet_max);
    CU_ASSERT_FATAL(published + msup_share_unseen_reserve(&s->p, records) <= s->p.fleet_max);
    s->checks++;
}

static void lose_lease(host_t *h, uint32_t floor)
{
    h->lease = 0;
    h->published = 0;
    h->enforced = floor;
    h->pending = false;
    h->lowering_since_ns = 0;
}

/* One read: the records as they are now, the plan, the row lowered at once. */
static void do_read(sim_t *s, int i)
{
    host_t *h = &s->h[i];
    if (h->lease == 0)
        h->lease = ++s->next_lease; /* a grant */
    msup_share_host_t hosts[H];
    size_t n = 0;
    int mine = -1;
    uint64_t others = 0;
    for (int j = 0; j < H; j++) {
        if (!s->rec[j].present)
            continue;
        if (j == i)
            mine = (int)n;
        else
            others += s->rec[j].cap;
        hosts[n++] = (msup_share_host_t){s->ids[j], s->p.floor, j == i ? h->demand : s->rec[j].demand};
    }
    msup_plan_input_t in = {.share = s->p, .ceiling = s->ceiling, .published = h->published,
                            .published_demand = h->published_demand, .enforced = h->enforced, .in_use = h->in_use,
                            .demand = h->demand, .now_ns = s->now, .lower_wait_ns = 1000 * MS,
                            .lowering_since_ns = h->lowering_since_ns, .hosts = hosts, .n = n, .mine = mine,
                            .others_caps = others};
    msup_plan_round(&in, &h->plan);
    h->lowering_since_ns = h->plan.lowering_since_ns;
    if (h->plan.kind == MSUP_PLAN_LOST) {
        lose_lease(h, s->p.floor);
        return;
    }
    h->enforced = h->plan.enforce_now;
    h->pending = h->plan.kind == MSUP_PLAN_JOIN || h->plan.kind == MSUP_PLAN_PUBLISH || h->plan.kind == MSUP_PLAN_RAISE;
    h->read_rev = s->rev;
}

/* The write of a read done earlier (others may have written since). */
static void do_write(sim_t *s, int i)
{
    host_t *h = &s->h[i];
    h->pending = false;
    if (h->partitioned)
        return; /* the request fails */
    if (h->plan.guarded)
        for (int j = 0; j < H; j++)
            if (s->rec[j].present && s->rec[j].mod_rev > h->read_rev)
                return; /* the transaction's compare fails */
    s->rec[i] = (record_t){true, h->plan.publish_cap, h->demand, ++s->rev, h->lease};
    h->published = h->plan.publish_cap;
    h->published_demand = h->demand;
    if (h->plan.kind == MSUP_PLAN_RAISE)
        h->enforced = h->plan.publish_cap;
    if (h->plan.kind == MSUP_PLAN_PUBLISH && h->plan.lowering_done)
        h->lowering_since_ns = 0;
}

static void expire(sim_t *s, int i, int lease)
{
    if (s->rec[i].present && s->rec[i].lease == lease)
        s->rec[i].present = false;
}

static void tick(sim_t *s, uint64_t ms)
{
    s->now += ms * MS;
    for (int i = 0; i < H; i++) {
        host_t *h = &s->h[i];
        if (!h->exists)
            continue;
        if (h->drop_at != 0 && s->now >= h->drop_at) {
            h->drop_at = 0;
            if (h->alive)
                lose_lease(h, s->p.floor); /* the local deadline passes first */
        }
        if (h->expire_at != 0 && s->now >= h->expire_at) {
            h->expire_at = 0;
            expire(s, i, h->expire_lease);
        }
    }
}

static void workers_move(sim_t *s, host_t *h)
{
    if (h->in_use > h->enforced)
        h->in_use -= rnd((uint32_t)(h->in_use - h->enforced) + 1); /* clients in use come back */
    else
        h->in_use = rnd(h->enforced + 1);
    (void)s;
}

static void random_event(sim_t *s)
{
    int i = (int)rnd(H);
    host_t *h = &s->h[i];
    tick(s, rnd(60));
    switch (rnd(20)) {
    case 0: /* a host starts (again) */
        if (!h->alive && h->expire_at == 0) {
            *h = (host_t){.exists = true, .alive = true, .enforced = s->p.floor, .demand = rnd(60)};
        }
        break;
    case 1: /* SIGKILL: the record expires a TTL later */
        if (h->alive && rnd(3) == 0 && h->expire_at == 0) {
            h->alive = false;
            h->in_use = 0;
            if (h->lease != 0 && h->expire_at == 0) {
                h->expire_at = s->now + (1 + rnd(2000)) * MS;
                h->expire_lease = h->lease;
            }
            h->lease = 0;
            h->pending = false;
        }
        break;
    case 2: /* partitioned from etcd: the local deadline, then the server's expiry */
        if (h->alive && !h->partitioned && h->lease != 0 && h->expire_at == 0) {
            h->partitioned = true;
            h->drop_at = s->now + (1 + rnd(500)) * MS;
            h->expire_at = h->drop_at + (1 + rnd(300)) * MS;
            h->expire_lease = h->lease;
        }
        break;
    case 3: /* the partition heals (after the host gave its lease up) */
        if (h->partitioned && h->drop_at == 0)
            h->partitioned = false;
        break;
    case 4:
    case 5:
        h->demand = rnd(4) == 0 ? 0 : rnd(80);
        break;
    case 6:
    case 7:
        if (h->alive)
            workers_move(s, h);
        break;
    default:
        if (!h->alive || h->partitioned || h->drop_at != 0)
            break;
        if (h->pending && rnd(3) != 0)
            do_write(s, i);
        else if (!h->pending)
            do_read(s, i);
        break;
    }
    check(s);
}

/* Quiet: no faults, demand and use fixed; rounds one after another. */
static bool converges(sim_t *s)
{
    tick(s, 3000); /* pending deadlines and expiries pass first */
    check(s);
    for (int i = 0; i < H; i++) {
        s->h[i].partitioned = false;
        if (s->h[i].in_use > s->h[i].enforced)
            s->h[i].in_use = s->h[i].enforced;
    }
    for (int round = 0; round < 300; round++) {
        tick(s, 100);
        bool stable = true;
        for (int i = 0; i < H; i++) {
            host_t *h = &s->h[i];
            if (!h->alive)
                continue;
            if (h->in_use > h->enforced)
                h->in_use = h->enforced; /* clients come back and are shed under a lowered cap */
            do_read(s, i);
            check(s);
            if (h->pending) {
                do_write(s, i);
                check(s);
                stable = false;
            }
            if (h->enforced != h->plan.target)
                stable = false;
        }
        if (stable && round > 0) {
            /* Every live host holds its share; together all the room that
             * the dead hosts' records and the unseen floors leave. */
            uint64_t sum = 0;
            size_t records = 0;
            for (int i = 0; i < H; i++) {
                records += s->rec[i].present;
                sum += s->rec[i].present ? s->rec[i].cap : 0;
            }
            /* (less when a ceiling keeps hosts below their share) */
            CU_ASSERT(sum + msup_share_unseen_reserve(&s->p, records) == s->p.fleet_max || s->ceiling != 0);
            return true;
        }
    }
    fprintf(stderr, "\n  no convergence: fleet_max %u floor %u ceiling %u\n", s->p.fleet_max, s->p.floor, s->ceiling);
    for (int i = 0; i < H; i++)
        fprintf(stderr, "  h%d alive %d lease %d enforced %u published %u demand %u in_use %llu plan %d target %u "
                "record %d cap %u lease %d\n", i, s->h[i].alive, s->h[i].lease, s->h[i].enforced, s->h[i].published,
                s->h[i].demand, (unsigned long long)s->h[i].in_use, s->h[i].plan.kind, s->h[i].plan.target,
                s->rec[i].present, s->rec[i].cap, s->rec[i].lease);
    return false;
}

static void test_random_schedules(void)
{
    srandom(1313);
    int scenarios = msup_test_under_valgrind() ? 20 : 300;
    long converged = 0, checks = 0;
    for (int sc = 0; sc < scenarios; sc++) {
        sim_t *s = calloc(1, sizeof *s);
        s->p = (msup_share_params_t){.max_hosts = H, .floor = 1 + rnd(8)};
        s->p.fleet_max = H * s->p.floor + rnd(200);
        s->ceiling = rnd(3) == 0 ? s->p.floor + rnd(50) : 0;
        for (int i = 0; i < H; i++)
            snprintf(s->ids[i], sizeof s->ids[i], "h%d", i);
        for (int step = 0; step < 2000; step++)
            random_event(s);
        bool ok = converges(s);
        CU_ASSERT(ok);
        converged += ok;
        checks += s->checks;
        free(s);
    }
    printf("\n    %d schedules, %ld invariant checks, %ld converged ", scenarios, checks, converged);
}

/* The fixed cases of the rules. */
static void test_rules(void)
{
    msup_share_params_t p = {.fleet_max = 40, .max_hosts = 4, .floor = 4};
    msup_share_host_t hosts[4] = {{"a", 4, 100}, {"b", 4, 0}, {"c", 4, 0}, {"d", 4, 0}};
    msup_plan_t out;
    /* Not joined, 4 other records: full. */
    msup_plan_input_t in = {.share = p, .hosts = hosts, .n = 4, .mine = -1, .enforced = 9};
    msup_plan_round(&in, &out);
    CU_ASSERT_EQUAL(out.kind, MSUP_PLAN_FULL);
    CU_ASSERT_EQUAL(out.enforce_now, 4);
    /* Our own stale record among them is not another host: join. */
    in.mine = 0;
    msup_plan_round(&in, &out);
    CU_ASSERT_EQUAL(out.kind, MSUP_PLAN_JOIN);
    CU_ASSERT(out.guarded);
    CU_ASSERT_EQUAL(out.publish_cap, 4);
    /* Our record vanished while we held it. */
    in.published = 10;
    in.mine = -1;
    msup_plan_round(&in, &out);
    CU_ASSERT_EQUAL(out.kind, MSUP_PLAN_LOST);
    /* b must lower from 20 to 4 with 10 clients in use: the row first,
     * the record after lower_wait, with what is in use. */
    in = (msup_plan_input_t){.share = p, .hosts = hosts, .n = 4, .mine = 1, .published = 20, .enforced = 20,
                             .in_use = 10, .now_ns = 1000, .lower_wait_ns = 500};
    msup_plan_round(&in, &out);
    CU_ASSERT_EQUAL(out.kind, MSUP_PLAN_WAIT);
    CU_ASSERT_EQUAL(out.enforce_now, 4);
    CU_ASSERT_EQUAL(out.lowering_since_ns, 1000);
    in.enforced = 4;
    in.lowering_since_ns = 1000;
    in.now_ns = 1600;
    msup_plan_round(&in, &out);
    CU_ASSERT_EQUAL(out.kind, MSUP_PLAN_PUBLISH);
    CU_ASSERT_EQUAL(out.publish_cap, 10);
    CU_ASSERT_FALSE(out.lowering_done);
    in.in_use = 3;
    msup_plan_round(&in, &out);
    CU_ASSERT_EQUAL(out.publish_cap, 4);
    CU_ASSERT(out.lowering_done);
    /* a raises only into the room the others' caps leave. */
    in = (msup_plan_input_t){.share = p, .hosts = hosts, .n = 4, .mine = 0, .published = 4, .enforced = 4,
                             .demand = 100, .others_caps = 30};
    msup_plan_round(&in, &out);
    CU_ASSERT_EQUAL(out.kind, MSUP_PLAN_RAISE);
    CU_ASSERT(out.guarded);
    CU_ASSERT_EQUAL(out.publish_cap, 10);
    CU_ASSERT_EQUAL(out.enforce_now, 4); /* the row only after the transaction */
    in.others_caps = 36;
    in.published_demand = 100;
    msup_plan_round(&in, &out);
    CU_ASSERT_EQUAL(out.kind, MSUP_PLAN_NOTHING);
    CU_ASSERT_EQUAL(out.target, 28);
    /* A ceiling (max_connections) bounds the share. */
    in.ceiling = 12;
    in.others_caps = 12;
    msup_plan_round(&in, &out);
    CU_ASSERT_EQUAL(out.target, 12);
    CU_ASSERT_EQUAL(out.publish_cap, 12);
}

/* A reload raised the floor from 4 to 6: without a record the host keeps
 * and publishes the old one (the others reserve 4 for it), and reaches 6
 * only through the guarded raise; lowered totals lower the row first. */
static void test_reload_rules(void)
{
    msup_share_params_t p = {.fleet_max = 40, .max_hosts = 4, .floor = 6};
    msup_share_host_t hosts[4] = {{"a", 6, 0}, {"b", 6, 0}, {"c", 6, 0}, {"d", 6, 0}};
    msup_plan_t out;
    msup_plan_input_t in = {.share = p, .fallback_floor = 4, .hosts = hosts, .n = 3, .mine = -1, .enforced = 9};
    msup_plan_round(&in, &out);
    CU_ASSERT_EQUAL(out.kind, MSUP_PLAN_JOIN);
    CU_ASSERT_EQUAL(out.enforce_now, 4);
    CU_ASSERT_EQUAL(out.publish_cap, 4);
    in.published = 10;
    msup_plan_round(&in, &out);
    CU_ASSERT_EQUAL(out.kind, MSUP_PLAN_LOST);
    CU_ASSERT_EQUAL(out.enforce_now, 4);
    /* Joined at 4: the share with floor 6 is reached by transaction. */
    in = (msup_plan_input_t){.share = p, .fallback_floor = 4, .hosts = hosts, .n = 4, .mine = 0, .published = 4,
                             .enforced = 4, .others_caps = 30};
    msup_plan_round(&in, &out);
    CU_ASSERT_EQUAL(out.kind, MSUP_PLAN_RAISE);
    CU_ASSERT(out.guarded);
    CU_ASSERT_EQUAL(out.enforce_now, 4);
    CU_ASSERT_EQUAL(out.publish_cap, 10);
    /* fallback_floor 0 or above the floor: the floor. */
    in = (msup_plan_input_t){.share = p, .fallback_floor = 8, .hosts = hosts, .n = 3, .mine = -1};
    msup_plan_round(&in, &out);
    CU_ASSERT_EQUAL(out.publish_cap, 6);
    /* fleet_max lowered from 40 to 24 with 4 idle hosts at 10: the row goes
     * to the new share at once, the record once the host is under it. */
    p = (msup_share_params_t){.fleet_max = 24, .max_hosts = 4, .floor = 4};
    in = (msup_plan_input_t){.share = p, .hosts = hosts, .n = 4, .mine = 2, .published = 10, .enforced = 10,
                             .in_use = 8, .now_ns = 1000, .lower_wait_ns = 5000};
    msup_plan_round(&in, &out);
    CU_ASSERT_EQUAL(out.kind, MSUP_PLAN_WAIT);
    CU_ASSERT_EQUAL(out.enforce_now, 6);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/fleet/plan/rules", test_rules},
        {"/fleet/plan/reload-rules", test_reload_rules},
        {"/fleet/plan/random-schedules", test_random_schedules},
        {NULL, NULL},
    };
    return msup_test_main("fleet_plan", tests, argc, argv);
}
