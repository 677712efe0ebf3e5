/* budget_test.c: the connection budget: CAS caps across processes, reaping a killed holder, limits, fairness, cost. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "budget.h"
#include "peer/peer.h"
#include "slots.h"
#include "segment_fixture.h"
#include "testmain.h"

#define NS_PER_MS 1000000ull

static msup_segment_t seg;
static msup_reg_row_t *row;
/* The effective limits a worker enforces (its own, or its supervisor's):
 * never read from the worker-writable line. */
static msup_budget_limits_t limits;

static void setup(const char *tag, uint32_t workers)
{
    static const char *const names[] = {"users", NULL};
    CU_ASSERT_FATAL(msup_test_segment_setup(tag, workers, 2, names, &seg));
    row = msup_segment_reg(&seg, 0);
    msup_budget_apply_limits(&limits, 0, 0);
}

static void teardown(void)
{
    msup_test_segment_teardown(&seg);
}

static msup_stats_t *claim(void)
{
    mongosup_error_t err;
    int idx = msup_slot_claim(&seg, getpid(), "budget", &err);
    return idx >= 0 ? msup_slot_stats(&seg, (uint32_t)idx, 0) : NULL;
}

static int64_t in_use(void)
{
    return atomic_load(&row->budget_in_use);
}

static int64_t connecting(void)
{
    return atomic_load(&row->budget_connecting);
}

/* ---- races across processes ---- */

/* What every racer reports, in a MAP_SHARED page. */
typedef struct race_board {
    _Atomic int64_t held;      /* tokens held right now, by the racers' own count */
    _Atomic int64_t max_held;  /* the most ever observed */
    _Atomic uint64_t refused;  /* attempts the cap turned away */
    _Atomic uint64_t granted;
} race_board_t;

typedef struct racer {
    race_board_t *board;
    msup_stats_t *mine;
    bool handshakes;   /* race on begin/end_connect instead of tokens */
    int iterations;
    unsigned seed;
} racer_t;

static void note_max(race_board_t *b, int64_t now)
{
    int64_t max = atomic_load(&b->max_held);
    while (now > max && !atomic_compare_exchange_weak(&b->max_held, &max, now))
        ;
}

static void *race_thread(void *arg)
{
    racer_t *r = arg;
    for (int i = 0; i < r->iterations; i++) {
        uint32_t n = r->handshakes ? 1 : 1 + (uint32_t)(rand_r(&r->seed) % 3); /* several tokens at once too */
        bool got = r->handshakes ? msup_budget_try_begin_connect(row, &limits, r->mine)
                                 : msup_budget_try_acquire(row, &limits, r->mine, n);
        if (!got) {
            atomic_fetch_add(&r->board->refused, 1);
            sched_yield();
            continue;
        }
        atomic_fetch_add(&r->board->granted, 1);
        /* Counted only once granted and uncounted before the release: the
         * racers' own count can exceed the cap only if the CAS let it. */
        note_max(r->board, atomic_fetch_add(&r->board->held, n) + (int64_t)n);
        for (int spin = rand_r(&r->seed) % 4; spin > 0; spin--)
            sched_yield();
        atomic_fetch_sub(&r->board->held, n);
        if (r->handshakes)
            msup_budget_end_connect(row, r->mine);
        else
            msup_budget_release(row, r->mine, n);
    }
    return NULL;
}

/* A racer process: claims its own slot, runs `threads` threads, checks that
 * its slot holds nothing at the end.  Exit codes tell the parent why. */
static int race_child(race_board_t *board, bool handshakes, int threads, int iterations)
{
    msup_stats_t *mine = claim();
    if (mine == NULL)
        return 2;
    racer_t r[8];
    pthread_t t[8];
    for (int i = 0; i < threads; i++) {
        r[i] = (racer_t){board, mine, handshakes, iterations, (unsigned)getpid() * 31u + (unsigned)i};
        if (pthread_create(&t[i], NULL, race_thread, &r[i]) != 0)
            return 3;
    }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    if (atomic_load(&mine->budget_tokens) != 0 || atomic_load(&mine->budget_connecting) != 0)
        return 4;
    return 0;
}

static void race(const char *tag, bool handshakes, uint32_t limit_full)
{
    bool vg = msup_test_under_valgrind();
    int procs = vg ? 4 : 16, threads = vg ? 2 : 4, iterations = vg ? 200 : 20000;
    uint32_t limit = vg ? limit_full / 5 + 1 : limit_full; /* still below procs x threads x 3 */
    setup(tag, (uint32_t)procs + 1);
    if (handshakes)
        msup_budget_apply_limits(&limits, 0, limit);
    else
        msup_budget_apply_limits(&limits, limit, 0);
    race_board_t *board = mmap(NULL, sizeof *board, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(board != MAP_FAILED);
    memset(board, 0, sizeof *board);
    pid_t kids[16];
    for (int i = 0; i < procs; i++) {
        kids[i] = fork();
        CU_ASSERT_FATAL(kids[i] >= 0);
        if (kids[i] == 0)
            _exit(race_child(board, handshakes, threads, iterations));
    }
    for (int i = 0; i < procs; i++) {
        int status;
        CU_ASSERT_FATAL(waitpid(kids[i], &status, 0) == kids[i]);
        CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CU_ASSERT(atomic_load(&board->max_held) <= (int64_t)limit);
    CU_ASSERT(atomic_load(&board->max_held) >= 1);
    CU_ASSERT(atomic_load(&board->refused) > 0); /* the cap was really reached */
    CU_ASSERT(atomic_load(&board->granted) > 0);
    CU_ASSERT_EQUAL(in_use(), 0);
    CU_ASSERT_EQUAL(connecting(), 0);
    munmap(board, sizeof *board);
    teardown();
}

static void test_tokens_race(void)
{
    race("tokrace", false, 20);
}

static void test_handshakes_race(void)
{
    race("conrace", true, 3);
}

/* ---- reaping ---- */

static void test_sigkill_holder_reaped_once(void)
{
    setup("reap", 4);
    msup_budget_apply_limits(&limits, 20, 4);
    msup_stats_t *mine = claim();
    CU_ASSERT_FATAL(mine != NULL);
    CU_ASSERT_FATAL(msup_budget_try_acquire(row, &limits, mine, 2)); /* a live worker's tokens must survive the reap */
    int ready[2];
    CU_ASSERT_FATAL(pipe(ready) == 0);
    pid_t kid = fork();
    CU_ASSERT_FATAL(kid >= 0);
    if (kid == 0) {
        mongosup_error_t err;
        int idx = msup_slot_claim(&seg, getpid(), "doomed", &err);
        msup_stats_t *s = idx >= 0 ? msup_slot_stats(&seg, (uint32_t)idx, 0) : NULL;
        bool ok = s != NULL && msup_budget_try_acquire(row, &limits, s, 5) && msup_budget_try_acquire(row, &limits, s, 1) &&
                  msup_budget_try_begin_connect(row, &limits, s);
        char byte = ok ? (char)idx : (char)-1;
        if (write(ready[1], &byte, 1) != 1)
            _exit(2);
        pause();
        _exit(0);
    }
    char idx = -1;
    CU_ASSERT_FATAL(read(ready[0], &idx, 1) == 1);
    close(ready[0]);
    close(ready[1]);
    CU_ASSERT_FATAL(idx >= 0);
    CU_ASSERT_EQUAL(in_use(), 8);
    CU_ASSERT_EQUAL(connecting(), 1);
    kill(kid, SIGKILL);
    int status;
    waitpid(kid, &status, 0);
    CU_ASSERT(WIFSIGNALED(status));
    CU_ASSERT_EQUAL(msup_slot_reap(&seg, (uint32_t)idx, NULL), MSUP_REAP_DEAD);
    CU_ASSERT_EQUAL(in_use(), 2);
    CU_ASSERT_EQUAL(connecting(), 0);
    CU_ASSERT_EQUAL(msup_slot_reap(&seg, (uint32_t)idx, NULL), MSUP_REAP_NONE);
    CU_ASSERT_EQUAL(msup_budget_reclaim(row, msup_slot_stats(&seg, (uint32_t)idx, 0)), 0); /* exchanged to 0 */
    CU_ASSERT_EQUAL(in_use(), 2);
    CU_ASSERT_EQUAL(atomic_load(&mine->budget_tokens), 2);
    /* The freed tokens are usable again: 18 more fit, the 19th does not. */
    CU_ASSERT(msup_budget_try_acquire(row, &limits, mine, 18));
    CU_ASSERT_FALSE(msup_budget_try_acquire(row, &limits, mine, 1));
    msup_budget_release(row, mine, 20);
    CU_ASSERT_EQUAL(in_use(), 0);
    teardown();
}

/* ---- limits ---- */

static void test_limit_lowered_at_run_time(void)
{
    setup("lower", 2);
    msup_budget_apply_limits(&limits, 10, 0);
    msup_stats_t *mine = claim();
    CU_ASSERT_FATAL(mine != NULL);
    for (int i = 0; i < 10; i++)
        CU_ASSERT(msup_budget_try_acquire(row, &limits, mine, 1));
    CU_ASSERT_FALSE(msup_budget_try_acquire(row, &limits, mine, 1));
    msup_budget_apply_limits(&limits, 5, 0);
    CU_ASSERT_EQUAL(in_use(), 10); /* nothing is taken away by force */
    msup_budget_release(row, mine, 3);
    CU_ASSERT_FALSE(msup_budget_try_acquire(row, &limits, mine, 1)); /* 7 held: still above 5 */
    msup_budget_release(row, mine, 3);
    CU_ASSERT(msup_budget_try_acquire(row, &limits, mine, 1)); /* 4 -> 5 */
    CU_ASSERT_FALSE(msup_budget_try_acquire(row, &limits, mine, 1));
    CU_ASSERT(msup_budget_try_acquire(row, &limits, mine, 0)); /* zero tokens always fit */
    CU_ASSERT_EQUAL(atomic_load(&mine->budget_tokens), 5);
    msup_budget_apply_limits(&limits, 8, 0); /* raised: room again */
    CU_ASSERT(msup_budget_try_acquire(row, &limits, mine, 3));
    CU_ASSERT_FALSE(msup_budget_try_acquire(row, &limits, mine, 1));
    msup_budget_release(row, mine, 8);
    CU_ASSERT_EQUAL(in_use(), 0);
    teardown();
}

static void test_unlimited_still_counts(void)
{
    setup("unlim", 2);
    msup_budget_apply_limits(&limits, 0, 0);
    msup_stats_t *mine = claim();
    CU_ASSERT_FATAL(mine != NULL);
    int n = msup_test_under_valgrind() ? 100 : 5000;
    for (int i = 0; i < n; i++)
        CU_ASSERT_FATAL(msup_budget_try_acquire(row, &limits, mine, 1) && msup_budget_try_begin_connect(row, &limits, mine));
    CU_ASSERT_EQUAL(in_use(), n);
    CU_ASSERT_EQUAL(connecting(), n);
    CU_ASSERT_EQUAL(atomic_load(&mine->budget_tokens), n);
    CU_ASSERT_EQUAL(atomic_load(&mine->budget_connecting), n);
    for (int i = 0; i < n; i++)
        msup_budget_end_connect(row, mine);
    msup_budget_release(row, mine, (uint32_t)n);
    CU_ASSERT_EQUAL(in_use(), 0);
    CU_ASSERT_EQUAL(connecting(), 0);
    teardown();
}

typedef struct later {
    msup_stats_t *mine;
    unsigned delay_ms;
} later_t;

static void *end_connect_later(void *arg)
{
    later_t *l = arg;
    usleep(l->delay_ms * 1000u);
    msup_budget_end_connect(row, l->mine);
    return NULL;
}

static void test_begin_connect_waits_until_deadline(void)
{
    setup("conwait", 2);
    msup_budget_apply_limits(&limits, 0, 1);
    msup_stats_t *mine = claim();
    CU_ASSERT_FATAL(mine != NULL);
    CU_ASSERT_FATAL(msup_budget_try_begin_connect(row, &limits, mine));
    uint64_t t0 = msup_mono_ns();
    CU_ASSERT_FALSE(msup_budget_begin_connect(row, &limits, mine, t0 + 60 * NS_PER_MS));
    uint64_t waited = msup_mono_ns() - t0;
    CU_ASSERT(waited >= 60 * NS_PER_MS);
    CU_ASSERT(waited < 2000 * NS_PER_MS);
    CU_ASSERT_EQUAL(connecting(), 1);
    /* Another thread ends its handshake after 40 ms: the waiter gets the slot. */
    later_t l = {mine, 40};
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, end_connect_later, &l) == 0);
    t0 = msup_mono_ns();
    CU_ASSERT(msup_budget_begin_connect(row, &limits, mine, t0 + 5000 * NS_PER_MS));
    waited = msup_mono_ns() - t0;
    CU_ASSERT(waited >= 30 * NS_PER_MS && waited < 1000 * NS_PER_MS);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(connecting(), 1);
    msup_budget_end_connect(row, mine);
    CU_ASSERT_EQUAL(connecting(), 0);
    teardown();
}

/* ---- pool accounts ---- */

static void test_account_pays_monitors_once(void)
{
    setup("acct", 2);
    msup_budget_apply_limits(&limits, 5, 0);
    msup_stats_t *mine = claim();
    CU_ASSERT_FATAL(mine != NULL);
    msup_budget_account_t a;
    msup_budget_cost_t cost = {.per_client = 1, .per_pool = 2};
    msup_budget_account_init(&a, &seg, 0, mine, cost, 0, &limits);
    uint64_t now = msup_mono_ns();
    CU_ASSERT(msup_budget_account_grow(&a, now)); /* 2 monitors + 1 client */
    CU_ASSERT_EQUAL(in_use(), 3);
    msup_budget_account_ungrow(&a); /* that pop created nothing: monitors unpaid again */
    CU_ASSERT_EQUAL(in_use(), 0);
    CU_ASSERT(msup_budget_account_grow(&a, now));
    CU_ASSERT(msup_budget_account_grow(&a, now));
    CU_ASSERT(msup_budget_account_grow(&a, now));
    CU_ASSERT_EQUAL(in_use(), 5);
    CU_ASSERT_FALSE(msup_budget_account_grow(&a, now)); /* budget exhausted */
    CU_ASSERT_EQUAL(a.clients, 3);
    msup_budget_account_ungrow(&a); /* a plain client: the monitors stay paid */
    CU_ASSERT_EQUAL(in_use(), 4);
    msup_budget_account_shrink(&a, 1);
    CU_ASSERT_EQUAL(in_use(), 3);
    CU_ASSERT_EQUAL(atomic_load(&mine->budget_tokens), 3);
    msup_budget_account_close(&a);
    CU_ASSERT_EQUAL(in_use(), 0);
    CU_ASSERT_EQUAL(atomic_load(&mine->budget_tokens), 0);
    msup_budget_account_close(&a); /* twice: nothing more */
    CU_ASSERT_EQUAL(in_use(), 0);

    /* The first growth of a pool takes a handshake slot for its monitors
     * before the pop that starts them; without one it is refused. */
    msup_budget_apply_limits(&limits, 5, 1);
    msup_budget_account_t p1, p2;
    msup_budget_account_init(&p1, &seg, 0, mine, cost, 0, &limits);
    msup_budget_account_init(&p2, &seg, 0, mine, cost, 0, &limits);
    CU_ASSERT(msup_budget_account_grow(&p1, now));
    CU_ASSERT_EQUAL(connecting(), 1);
    CU_ASSERT_FALSE(msup_budget_account_grow(&p2, now)); /* tokens left, no handshake slot */
    CU_ASSERT_EQUAL(in_use(), 3);
    msup_budget_account_ungrow(&p1); /* the first growth undone: its slot too */
    CU_ASSERT_EQUAL(connecting(), 0);
    CU_ASSERT_EQUAL(in_use(), 0);
    CU_ASSERT(msup_budget_account_grow(&p2, now));
    CU_ASSERT(msup_budget_account_grow(&p2, now)); /* later clients take their slot at the handshake */
    CU_ASSERT_EQUAL(connecting(), 1);
    CU_ASSERT_EQUAL(in_use(), 4);
    msup_budget_account_close(&p2); /* closed before any handshake: the slot comes back */
    CU_ASSERT_EQUAL(connecting(), 0);
    CU_ASSERT_EQUAL(in_use(), 0);

    /* Without a row the budget is off: everything grows, nothing counts. */
    msup_budget_account_t off;
    msup_budget_account_init(&off, &seg, -1, mine, cost, 0, &limits);
    for (int i = 0; i < 10; i++)
        CU_ASSERT(msup_budget_account_grow(&off, now));
    CU_ASSERT_FALSE(msup_budget_account_should_shed(&off, 5, now));
    msup_budget_account_close(&off);
    CU_ASSERT_EQUAL(in_use(), 0);
    teardown();
}

static void test_fairness_share_and_shedding(void)
{
    setup("fair", 4);
    msup_budget_apply_limits(&limits, 10, 0);
    msup_stats_t *sa = claim(), *sb = claim(); /* two "workers": two slots */
    CU_ASSERT_FATAL(sa != NULL && sb != NULL && sa != sb);
    msup_budget_cost_t cost = {.per_client = 1, .per_pool = 1};
    msup_budget_account_t a, b;
    msup_budget_account_init(&a, &seg, 0, sa, cost, 2, &limits);
    msup_budget_account_init(&b, &seg, 0, sb, cost, 0, &limits);
    uint64_t now = msup_mono_ns();

    /* A takes the whole budget while nobody waits; no reason to shed. */
    for (int i = 0; i < 9; i++)
        CU_ASSERT(msup_budget_account_grow(&a, now));
    CU_ASSERT_EQUAL(in_use(), 10);
    CU_ASSERT_FALSE(msup_budget_contended(row, now));
    CU_ASSERT_FALSE(msup_budget_account_should_shed(&a, 3, now));

    /* B cannot start; its wait counts and, B being below its floor, makes
     * the cluster contended. */
    CU_ASSERT_FALSE(msup_budget_account_grow(&b, now));
    msup_budget_account_note_wait(&b, now);
    CU_ASSERT_EQUAL(atomic_load(&sb->budget_waits), 1);
    CU_ASSERT(msup_budget_contended(row, now + 1));
    CU_ASSERT_EQUAL(msup_budget_fair_share(&seg, 0, 10, now + 2), 5); /* 10 / (A holds, B waited) */
    CU_ASSERT_EQUAL(atomic_load(&row->budget_interested), 2);

    /* A sheds idle clients as they come back, down to its share, and may
     * not grow above it while contended, even when the budget has room. */
    int shed = 0;
    while (msup_budget_account_should_shed(&a, 1, now + 3)) {
        msup_budget_account_shrink(&a, 1);
        shed++;
    }
    CU_ASSERT_EQUAL(shed, 5);
    CU_ASSERT_EQUAL(atomic_load(&sa->budget_tokens), 5);
    CU_ASSERT_FALSE(msup_budget_account_grow(&a, now + 4));
    CU_ASSERT(msup_budget_account_grow(&b, now + 4)); /* monitor + client */
    CU_ASSERT(msup_budget_account_grow(&b, now + 4));
    CU_ASSERT_EQUAL(atomic_load(&sb->budget_tokens), 3);
    CU_ASSERT_EQUAL(in_use(), 8);
    CU_ASSERT_FALSE(msup_budget_account_grow(&a, now + 5)); /* room for two, but A is at its share */

    /* A worker above its share that waits does not prolong the contention. */
    msup_budget_account_note_wait(&a, now + 2 * MSUP_BUDGET_CONTENTION_NS);
    CU_ASSERT_FALSE(msup_budget_contended(row, now + 2 * MSUP_BUDGET_CONTENTION_NS + 1));
    CU_ASSERT(msup_budget_account_grow(&a, now + 2 * MSUP_BUDGET_CONTENTION_NS + 2));
    CU_ASSERT_EQUAL(in_use(), 9);

    /* The floor (min_pool_size) holds whatever happens: a budget lowered to
     * 4 sheds A down to 2 clients, B down to 1. */
    msup_budget_apply_limits(&limits, 4, 0);
    uint64_t later = now + 3 * MSUP_BUDGET_CONTENTION_NS;
    while (msup_budget_account_should_shed(&a, 1, later))
        msup_budget_account_shrink(&a, 1);
    while (msup_budget_account_should_shed(&b, 1, later))
        msup_budget_account_shrink(&b, 1);
    CU_ASSERT_EQUAL(a.clients, 2);
    CU_ASSERT_EQUAL(b.clients, 1);
    CU_ASSERT_EQUAL(in_use(), 5); /* 2 pools' monitors + 3 clients: above 4, held by the floors */
    CU_ASSERT_FALSE(msup_budget_account_should_shed(&a, 0, later)); /* nothing idle: nothing to shed */
    msup_budget_account_close(&a);
    CU_ASSERT_FALSE(msup_budget_account_should_shed(&b, 1, later)); /* 2 <= 4 and at the floor */
    msup_budget_account_close(&b);
    CU_ASSERT_EQUAL(in_use(), 0);
    teardown();
}

/* B/N not whole: floor(B/N) while someone starves, ceil(B/N) while someone
 * below it waits, and nobody sheds what the other rule lets it take. */
static void test_fairness_two_levels(void)
{
    setup("fair2", 4);
    msup_budget_apply_limits(&limits, 10, 0);
    msup_stats_t *sa = claim(), *sb = claim(), *sc = claim();
    CU_ASSERT_FATAL(sa != NULL && sb != NULL && sc != NULL);
    msup_budget_cost_t cost = {.per_client = 1, .per_pool = 1};
    msup_budget_account_t a, b, c;
    msup_budget_account_init(&a, &seg, 0, sa, cost, 0, &limits);
    msup_budget_account_init(&b, &seg, 0, sb, cost, 0, &limits);
    msup_budget_account_init(&c, &seg, 0, sc, cost, 0, &limits);
    uint64_t now = msup_mono_ns();
    for (int i = 0; i < 7; i++)
        CU_ASSERT(msup_budget_account_grow(&a, now)); /* 8 tokens */
    CU_ASSERT(msup_budget_account_grow(&b, now));     /* 2 */
    CU_ASSERT_EQUAL(in_use(), 10);

    /* C has nothing: it starves; the others go down to floor(10/3) = 3. */
    CU_ASSERT_FALSE(msup_budget_account_grow(&c, now));
    msup_budget_account_note_wait(&c, now);
    CU_ASSERT(msup_budget_starving(row, now + 1));
    CU_ASSERT_EQUAL(msup_budget_fair_share(&seg, 0, 10, now + 2), 3);
    while (msup_budget_account_should_shed(&a, 1, now + 3))
        msup_budget_account_shrink(&a, 1);
    CU_ASSERT_EQUAL(atomic_load(&sa->budget_tokens), 3);
    CU_ASSERT_FALSE(msup_budget_account_should_shed(&b, 1, now + 3));
    CU_ASSERT_FALSE(msup_budget_account_grow(&a, now + 4)); /* 4 > 3 while C starves */
    CU_ASSERT(msup_budget_account_grow(&c, now + 4));       /* monitor + client */
    CU_ASSERT(msup_budget_account_grow(&c, now + 4));       /* 3 */
    CU_ASSERT(msup_budget_account_grow(&b, now + 4));       /* 3 */
    CU_ASSERT_EQUAL(in_use(), 9);

    /* C is served; A, at 3, waits for more: only contended (ceil(10/3) = 4).
     * A starving stamp is not hidden by it while fresh. */
    msup_budget_account_note_wait(&a, now + 5);
    CU_ASSERT(msup_budget_starving(row, now + 6));
    uint64_t later = now + MSUP_BUDGET_CONTENTION_NS + 10;
    msup_budget_account_note_wait(&a, later);
    CU_ASSERT(msup_budget_contended(row, later + 1));
    CU_ASSERT_FALSE(msup_budget_starving(row, later + 1));
    CU_ASSERT(msup_budget_account_grow(&a, later + 2)); /* 4 = ceil */
    CU_ASSERT_EQUAL(in_use(), 10);
    CU_ASSERT_FALSE(msup_budget_account_grow(&a, later + 2)); /* 5 > 4 */
    /* B waits too: the budget is full, but A at ceil(B/N) keeps its 4
     * (shedding it would only let it grow back). */
    msup_budget_account_note_wait(&b, later + 3);
    CU_ASSERT_FALSE(msup_budget_account_should_shed(&a, 1, later + 4));
    /* Room again: still no more than ceil(B/N) for A while contended. */
    msup_budget_account_shrink(&b, 1); /* 9 in use */
    CU_ASSERT_FALSE(msup_budget_account_grow(&a, later + 5));
    msup_budget_account_close(&a);
    msup_budget_account_close(&b);
    msup_budget_account_close(&c);
    CU_ASSERT_EQUAL(in_use(), 0);
    teardown();
}

/* ---- cost rule ---- */

static msup_budget_cost_t cost_of(const char *uri_text)
{
    mongoc_uri_t *uri = mongoc_uri_new(uri_text);
    CU_ASSERT_FATAL(uri != NULL);
    msup_budget_cost_t c = msup_budget_cost_for_uri(uri);
    mongoc_uri_destroy(uri);
    return c;
}

static void test_cost_rule(void)
{
    msup_budget_cost_t c = cost_of("mongodb://127.0.0.1:27017/");
    CU_ASSERT(c.per_client == 1 && c.per_pool == 2);
    c = cost_of("mongodb://a:1,b:2,c:3/?replicaSet=rs0");
    CU_ASSERT(c.per_client == 3 && c.per_pool == 6);
    c = cost_of("mongodb://a:1,b:2/");
    CU_ASSERT(c.per_client == 2 && c.per_pool == 4);
    c = cost_of("mongodb://a:1/?directConnection=true");
    CU_ASSERT(c.per_client == 1 && c.per_pool == 2);
    c = cost_of("mongodb://a:1/?loadBalanced=true");
    CU_ASSERT(c.per_client == 1 && c.per_pool == 0);
    c = msup_budget_cost(1, false);
    CU_ASSERT(c.per_client == 1 && c.per_pool == 1);
    c = msup_budget_cost(0, false); /* no host listed: still one */
    CU_ASSERT(c.per_client == 1 && c.per_pool == 1);
}

/* ---- against the test peer: the rule covers the sockets really opened ---- */

static void test_handshake_against_peer(void)
{
    test_peer_t *peer = test_peer_start("standalone", 1, NULL);
    CU_ASSERT_FATAL(peer != NULL);
    setup("peer", 2);
    msup_budget_apply_limits(&limits, 10, 1);
    msup_stats_t *mine = claim();
    CU_ASSERT_FATAL(mine != NULL);
    mongoc_uri_t *uri = mongoc_uri_new(test_peer_uri(peer));
    CU_ASSERT_FATAL(uri != NULL);
    msup_budget_account_t a;
    msup_budget_account_init(&a, &seg, 0, mine, msup_budget_cost_for_uri(uri), 0, &limits);
    mongoc_client_pool_t *pool = mongoc_client_pool_new(uri);
    mongoc_uri_destroy(uri);
    CU_ASSERT_FATAL(pool != NULL);

    enum { CLIENTS = 3 };
    mongoc_client_t *clients[CLIENTS];
    uint64_t now = msup_mono_ns();
    for (int i = 0; i < CLIENTS; i++) {
        CU_ASSERT_FATAL(msup_budget_account_grow(&a, now));
        clients[i] = mongoc_client_pool_try_pop(pool);
        CU_ASSERT_FATAL(clients[i] != NULL);
    }
    CU_ASSERT_EQUAL(in_use(), 2 + CLIENTS); /* streaming assumed until a hello says otherwise */
    CU_ASSERT_EQUAL(connecting(), 1);          /* the first growth holds the slot for the monitors */
    bson_error_t err;
    for (int i = 0; i < CLIENTS; i++) {
        CU_ASSERT(msup_budget_handshake(&a, clients[i], msup_mono_ns() + 5000 * NS_PER_MS, &err));
        CU_ASSERT_EQUAL(connecting(), 0);
    }
    /* The peer does not stream: one monitor socket, the surplus is back. */
    CU_ASSERT_EQUAL(atomic_load(&a.monitor_tokens), 1);
    CU_ASSERT_EQUAL(in_use(), 1 + CLIENTS);
    long open = test_peer_stat(peer, "conn.current");
    CU_ASSERT(open >= CLIENTS && open <= in_use());

    /* With the only handshake slot taken, a handshake gives up at its deadline. */
    CU_ASSERT_FATAL(msup_budget_try_begin_connect(row, &limits, mine));
    CU_ASSERT_FALSE(msup_budget_handshake(&a, clients[0], msup_mono_ns() + 30 * NS_PER_MS, &err));
    CU_ASSERT_EQUAL(err.code, MONGOSUP_E_POOL_TIMEOUT);
    msup_budget_end_connect(row, mine);

    for (int i = 0; i < CLIENTS; i++)
        mongoc_client_pool_push(pool, clients[i]);
    mongoc_client_pool_destroy(pool);
    msup_budget_account_close(&a);
    CU_ASSERT_EQUAL(in_use(), 0);
    teardown();
    test_peer_stop(&peer);
}

int main(int argc, char **argv)
{
    mongoc_init();
    static const msup_test_t tests[] = {
        {"/budget/tokens/cap-holds-across-processes", test_tokens_race},
        {"/budget/handshakes/cap-holds-across-processes", test_handshakes_race},
        {"/budget/reap/sigkill-holder-returned-once", test_sigkill_holder_reaped_once},
        {"/budget/limit/lowered-at-run-time", test_limit_lowered_at_run_time},
        {"/budget/limit/unlimited-still-counts", test_unlimited_still_counts},
        {"/budget/handshakes/wait-until-deadline", test_begin_connect_waits_until_deadline},
        {"/budget/account/pays-monitors-once", test_account_pays_monitors_once},
        {"/budget/fairness/share-and-shedding", test_fairness_share_and_shedding},
        {"/budget/fairness/two-levels", test_fairness_two_levels},
        {"/budget/cost/uri-rule", test_cost_rule},
        {"/budget/peer/handshake-and-settle", test_handshake_against_peer},
        {NULL, NULL},
    };
    int rc = msup_test_main("budget", tests, argc, argv);
    mongoc_cleanup();
    return rc;
}
