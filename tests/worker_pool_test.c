/* worker_pool_test.c: checkout/checkin against the test peer (and a real deployment): counts, limits, waits, timeouts, warm-up, idle trim, detach. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"
#include "testmain.h"
#include "worker_fixture.h"

static uint64_t now_ms(void)
{
    return msup_mono_ns() / 1000000ull;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A checkout gives a working client; the stats of our slot say so. */
static void basic(bool real)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start_on(&f, "basic", "max_pool_size = 4;", NULL, real));
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);

    mongoc_client_t *client = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    CU_ASSERT_STRING_EQUAL(mongosup_client_database(h, client), f.database);
    CU_ASSERT_STRING_EQUAL(mongosup_cluster_database(h, "main"), f.database);
    bson_error_t berr;
    CU_ASSERT(wfix_ping(client, &berr));
    mongosup_checkin(h, client, NULL);

    CU_ASSERT_PTR_NULL(mongosup_checkout(h, "nope", &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_UNKNOWN_CLUSTER);
    CU_ASSERT_FALSE(mongosup_draining(h));

    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.checkouts, 1);
    CU_ASSERT_EQUAL(t.ops[MSUP_OP_COMMAND], 1);
    CU_ASSERT_EQUAL(t.hist_count, 1);
    CU_ASSERT_EQUAL(t.pool_in_use, 0);
    CU_ASSERT_EQUAL(t.pool_idle, 1);
    CU_ASSERT_EQUAL(t.pool_created, 1);
    CU_ASSERT_EQUAL(t.clients_created, 1);
    CU_ASSERT_EQUAL(t.pool_max, 4);

    CU_ASSERT(mongosup_detach(&h, 1000));
    CU_ASSERT_PTR_NULL(h);
    wfix_stop(&f);
}

/* ---- max_pool_size under 16 threads ---- */

typedef struct limit_ctx {
    mongosup_t *h;
    atomic_int inside;
    atomic_int peak;
    atomic_int failures;
    int rounds;
} limit_ctx_t;

static void *limit_thread(void *arg)
{
    limit_ctx_t *x = arg;
    for (int i = 0; i < x->rounds; i++) {
        mongosup_error_t error;
        mongoc_client_t *client = mongosup_checkout(x->h, "main", &error);
        if (client == NULL) {
            atomic_fetch_add(&x->failures, 1);
            continue;
        }
        int n = atomic_fetch_add(&x->inside, 1) + 1;
        int peak = atomic_load(&x->peak);
        while (n > peak && !atomic_compare_exchange_weak(&x->peak, &peak, n))
            ;
        bson_error_t berr;
        if (!wfix_ping(client, &berr))
            atomic_fetch_add(&x->failures, 1);
        atomic_fetch_sub(&x->inside, 1);
        mongosup_checkin(x->h, client, NULL);
    }
    return NULL;
}

static void max_pool_size_holds(bool real)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start_on(&f, "limit", "max_pool_size = 3; wait_queue_timeout_ms = 20000;", NULL, real));
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    limit_ctx_t x = {.h = h, .rounds = msup_test_under_valgrind() ? 3 : 20};
    pthread_t th[16];
    for (int i = 0; i < 16; i++)
        pthread_create(&th[i], NULL, limit_thread, &x);
    for (int i = 0; i < 16; i++)
        pthread_join(th[i], NULL);
    CU_ASSERT_EQUAL(atomic_load(&x.failures), 0);
    CU_ASSERT(atomic_load(&x.peak) <= 3);
    CU_ASSERT(atomic_load(&x.peak) >= 2); /* 16 threads did overlap */

    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.checkouts, (uint64_t)(16 * x.rounds));
    CU_ASSERT(t.checkout_waits > 0);
    CU_ASSERT(t.max_reached > 0);
    CU_ASSERT(t.checkout_wait_us > 0);
    CU_ASSERT_EQUAL(t.checkout_timeouts, 0);
    CU_ASSERT_EQUAL(t.clients_created, 3);
    CU_ASSERT_EQUAL(t.pool_created, 3);
    CU_ASSERT_EQUAL(t.pool_in_use, 0);
    /* The peer saw at most 3 application connections (+ monitoring). */
    if (real)
        wfix_skip_needs_peer("/real/worker/pool/max-pool-size-16-threads: the server's connection high-water mark");
    else
        CU_ASSERT(wfix_peer_stat(&f, "conn.max") <= 3 + 2);
    CU_ASSERT(mongosup_detach(&h, 1000));
    wfix_stop(&f);
}

/* A checkout that finds the pool at its max fails after wait_queue_timeout_ms. */
static void wait_queue_timeout(bool real)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start_on(&f, "timeout", "max_pool_size = 1; wait_queue_timeout_ms = 200;", NULL, real));
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    mongoc_client_t *held = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(held);
    uint64_t t0 = now_ms();
    CU_ASSERT_PTR_NULL(mongosup_checkout(h, "main", &error));
    uint64_t waited = now_ms() - t0;
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_POOL_TIMEOUT);
    CU_ASSERT(waited >= 195 && waited < msup_test_slack_ms(1000)); /* under valgrind, too: scaled */
    mongosup_checkin(h, held, NULL);
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.checkout_timeouts, 1);
    CU_ASSERT_EQUAL(t.checkout_waits, 1);
    CU_ASSERT_EQUAL(t.max_reached, 1);
    CU_ASSERT(t.checkout_wait_us >= 195000);
    CU_ASSERT(mongosup_detach(&h, 1000));
    wfix_stop(&f);
}

/* ---- warm-up and idle trim, seen through the peer's connection count ---- */

/* The peer's connections are the pool's clients plus its monitoring: one
 * connection per server, two when the driver streams heartbeats. */
typedef struct conn_wait {
    wfix_t *f;
    long clients;
} conn_wait_t;

static bool conns_are(void *arg)
{
    conn_wait_t *w = arg;
    long n = wfix_peer_stat(w->f, "conn.current");
    return n >= w->clients + 1 && n <= w->clients + 2;
}

/* ... and every one of them idle again in the pool. */
static bool conns_are_idle(void *arg)
{
    conn_wait_t *w = arg;
    msup_totals_t t;
    return conns_are(arg) && wfix_totals(w->f, "main", &t) && t.pool_idle == w->clients;
}

static void test_warm_up(void)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start(&f, "warm", "max_pool_size = 8; min_pool_size = 3;", NULL));
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL(wfix_peer_stat(&f, "conn.current"), 0); /* attach does no network I/O */
    mongoc_client_t *client = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    /* The pool grows to min_pool_size connected clients whether the
     * warm-up runs while this client is out or after it came back. */
    bson_t ping = BSON_INITIALIZER;
    BSON_APPEND_INT32(&ping, "ping", 1);
    CU_ASSERT(mongoc_client_command_simple(client, "admin", &ping, NULL, NULL, NULL));
    bson_destroy(&ping);
    mongosup_checkin(h, client, NULL);
    conn_wait_t w = {&f, 3};
    bool warmed = wfix_wait_for(conns_are_idle, &w, 5000);
    if (!warmed)
        fprintf(stderr, "warm-up: the peer has %ld connections\n", wfix_peer_stat(&f, "conn.current"));
    CU_ASSERT(warmed);
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.pool_created, 3);
    CU_ASSERT_EQUAL(t.pool_idle, 3);
    CU_ASSERT(mongosup_detach(&h, 1000));
    wfix_stop(&f);
}

typedef struct burst_ctx {
    mongosup_t *h;
    pthread_barrier_t *barrier;
} burst_ctx_t;

static void *burst_thread(void *arg)
{
    burst_ctx_t *b = arg;
    mongosup_error_t error;
    mongoc_client_t *client = mongosup_checkout(b->h, "main", &error);
    pthread_barrier_wait(b->barrier); /* all 6 out at once: 6 clients */
    bson_error_t berr;
    if (client != NULL) {
        wfix_ping(client, &berr);
        mongosup_checkin(b->h, client, NULL);
    }
    return NULL;
}

static void test_idle_trim(void)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start(&f, "trim", "max_pool_size = 8; min_pool_size = 2; max_idle_time_ms = 300;", NULL));
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 6);
    burst_ctx_t b = {h, &barrier};
    pthread_t th[6];
    for (int i = 0; i < 6; i++)
        pthread_create(&th[i], NULL, burst_thread, &b);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    /* 6 out at once; the warm-up of min_pool_size may have added its own. */
    CU_ASSERT(t.clients_created >= 6 && t.clients_created <= 8);
    CU_ASSERT(wfix_peer_stat(&f, "conn.max") >= 6);
    /* Idle for a window or two: trimmed to min_pool_size, never below. */
    conn_wait_t w = {&f, 2};
    CU_ASSERT(wfix_wait_for(conns_are, &w, (int)msup_test_slack_ms(3000)));
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.pool_created, 2);
    CU_ASSERT_EQUAL(t.clients_destroyed, t.clients_created - 2);
    sleep_ms(700);
    CU_ASSERT(conns_are(&w));
    /* The trimmed pool still serves. */
    mongoc_client_t *client = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    bson_error_t berr;
    CU_ASSERT(wfix_ping(client, &berr));
    mongosup_checkin(h, client, NULL);
    CU_ASSERT(mongosup_detach(&h, 1000));
    wfix_stop(&f);
}

/* ---- detach while operations are in flight ---- */

typedef struct flight_ctx {
    mongosup_t *h;
    atomic_int started;
    atomic_int ok;
} flight_ctx_t;

static void *slow_op_thread(void *arg)
{
    flight_ctx_t *x = arg;
    mongosup_error_t error;
    mongoc_client_t *client = mongosup_checkout(x->h, "main", &error);
    if (client == NULL)
        return NULL;
    atomic_fetch_add(&x->started, 1);
    bson_error_t berr;
    if (wfix_ping(client, &berr))
        atomic_fetch_add(&x->ok, 1);
    mongosup_checkin(x->h, client, NULL);
    return NULL;
}

static bool all_started(void *arg)
{
    return atomic_load(&((flight_ctx_t *)arg)->started) == 4;
}

static void test_detach_in_flight(void)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start(&f, "flight", "max_pool_size = 4;", NULL));
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT(test_peer_command(f.peer, "{\"cmd\":\"delay\",\"ms\":300,\"command\":\"ping\"}", NULL, 0));
    flight_ctx_t x = {.h = h};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, slow_op_thread, &x);
    CU_ASSERT(wfix_wait_for(all_started, &x, 3000));
    mongosup_t *keep = h;
    uint64_t t0 = now_ms();
    CU_ASSERT(mongosup_detach(&h, 5000));
    uint64_t took = now_ms() - t0;
    CU_ASSERT(took >= 100);  /* it waited for the pings */
    CU_ASSERT(took < 5000);
    CU_ASSERT_EQUAL(atomic_load(&x.ok), 4);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    (void)keep;
    /* The slot is EXITED and its counts are all there. */
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.checkouts, 4);
    CU_ASSERT_EQUAL(t.pool_in_use, 0);
    wfix_stop(&f);
}

/* Checkouts refused once detach began, and a client out past the deadline
 * makes detach report false rather than destroy a pool under it. */
static void detach_deadline(bool real)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start_on(&f, "deadline", "max_pool_size = 2;", NULL, real));
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    mongoc_client_t *client = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    mongosup_t *still = h;
    CU_ASSERT_FALSE(mongosup_detach(&h, 50));
    CU_ASSERT_PTR_NULL(h);
    /* The abandoned handle still takes its client back, and refuses new ones. */
    CU_ASSERT_PTR_NULL(mongosup_checkout(still, "main", &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_SHUTTING_DOWN);
    mongosup_checkin(still, client, NULL);
    wfix_stop(&f);
}

static void test_basic(void)
{
    basic(false);
}

static void test_real_basic(void)
{
    if (wfix_real_wanted("/real/worker/pool/basic"))
        basic(true);
}

static void test_max_pool_size_holds(void)
{
    max_pool_size_holds(false);
}

static void test_real_max_pool_size_holds(void)
{
    if (wfix_real_wanted("/real/worker/pool/max-pool-size-16-threads"))
        max_pool_size_holds(true);
}

static void test_wait_queue_timeout(void)
{
    wait_queue_timeout(false);
}

static void test_real_wait_queue_timeout(void)
{
    if (wfix_real_wanted("/real/worker/pool/wait-queue-timeout"))
        wait_queue_timeout(true);
}

static void test_detach_deadline(void)
{
    detach_deadline(false);
}

static void test_real_detach_deadline(void)
{
    if (wfix_real_wanted("/real/worker/pool/detach-deadline"))
        detach_deadline(true);
}

static void test_real_peer_only(void)
{
    static const char *const peer_only[] = {
        "/real/worker/pool/warm-up", "/real/worker/pool/idle-trim", "/real/worker/pool/detach-in-flight", NULL,
    };
    wfix_real_peer_only("/real/worker/pool/needs-peer", peer_only);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/worker/pool/basic", test_basic},
        {"/worker/pool/max-pool-size-16-threads", test_max_pool_size_holds},
        {"/worker/pool/wait-queue-timeout", test_wait_queue_timeout},
        {"/worker/pool/warm-up", test_warm_up},
        {"/worker/pool/idle-trim", test_idle_trim},
        {"/worker/pool/detach-in-flight", test_detach_in_flight},
        {"/worker/pool/detach-deadline", test_detach_deadline},
        /* The same against $MONGOSUP_TEST_URI, when it names a real deployment. */
        {"/real/worker/pool/basic", test_real_basic},
        {"/real/worker/pool/max-pool-size-16-threads", test_real_max_pool_size_holds},
        {"/real/worker/pool/wait-queue-timeout", test_real_wait_queue_timeout},
        {"/real/worker/pool/detach-deadline", test_real_detach_deadline},
        {"/real/worker/pool/needs-peer", test_real_peer_only},
        {NULL, NULL},
    };
    int rc = msup_test_main("worker_pool", tests, argc, argv);
    mongoc_cleanup();
    return rc;
}
