/* neutral_api_test.c: the driver-neutral worker API: records land in the slot as the mongoc path's do, the gate follows health and drain, budget tokens, settings. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "budget.h"
#include "stats.h"
#include "testmain.h"
#include "worker.h"
#include "worker_fixture.h"

/* The stats of a handle's slot for cluster "main" (the test's own mapping). */
static msup_stats_t *slot_stats(msup_segment_t *seg, mongosup_t *h)
{
    int row = msup_segment_find_cluster(seg, "main");
    CU_ASSERT_FATAL(row >= 0);
    return msup_slot_stats(seg, (uint32_t)mongosup_worker_slot(h), (uint32_t)row);
}

static msup_cluster_row_t *main_row(msup_segment_t *seg)
{
    int row = msup_segment_find_cluster(seg, "main");
    CU_ASSERT_FATAL(row >= 0);
    return msup_segment_row(seg, (uint32_t)row);
}

static msup_totals_t plain(const msup_stats_t *s)
{
    msup_totals_t t;
    memset(&t, 0, sizeof t);
    msup_totals_add(&t, s, true);
    return t;
}

static bool mongoc_insert(mongosup_t *h, bson_error_t *berr)
{
    mongosup_error_t error;
    mongoc_client_t *client = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, "wtest", "c");
    bson_t *doc = BCON_NEW("a", BCON_INT32(1));
    bool ok = mongoc_collection_insert_one(coll, doc, NULL, NULL, berr);
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
    mongosup_checkin(h, client, ok ? NULL : berr);
    return ok;
}

static bool mongoc_find(mongosup_t *h, bson_error_t *berr)
{
    mongosup_error_t error;
    mongoc_client_t *client = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, "wtest", "c");
    bson_t filter = BSON_INITIALIZER;
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts(coll, &filter, NULL, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cursor, &doc))
        ;
    bool ok = !mongoc_cursor_error(cursor, berr);
    mongoc_cursor_destroy(cursor);
    mongoc_collection_destroy(coll);
    mongosup_checkin(h, client, ok ? NULL : berr);
    return ok;
}

/*
 * The same work through both paths, in two slots of one segment: handle A
 * runs an insert and a failing find through mongo-c-driver; handle B
 * reports what another driver's events would say about the same work (a
 * new connection, two checkouts, the same classes, the same server error).
 * Every counter and gauge but the latency sum must be equal.
 */
static void test_same_as_mongoc(void)
{
    wfix_t f;
    mongosup_t *a = wfix_start_attached(&f, "nsame", "");
    mongosup_error_t error;
    mongosup_t *b = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_NOT_EQUAL(mongosup_worker_slot(a), mongosup_worker_slot(b));

    bson_error_t berr;
    CU_ASSERT(mongoc_insert(a, &berr));
    CU_ASSERT_FATAL(test_peer_command(f.peer, "{\"cmd\":\"fail\",\"command\":\"find\",\"times\":1,\"code\":2,"
                                              "\"errmsg\":\"bad value\"}",
                                      NULL, 0));
    CU_ASSERT(!mongoc_find(a, &berr));

    mongosup_record_pool(b, "main", MONGOSUP_POOL_CONNECTION_CREATED, 0);
    mongosup_record_pool(b, "main", MONGOSUP_POOL_CHECKOUT_SUCCEEDED, 0);
    mongosup_record_op(b, "main", mongosup_command_class("insert"), 700, MONGOSUP_FAIL_NONE, 0, NULL);
    mongosup_record_pool(b, "main", MONGOSUP_POOL_CHECKED_IN, 0);
    mongosup_record_pool(b, "main", MONGOSUP_POOL_CHECKOUT_SUCCEEDED, 0);
    mongosup_record_op(b, "main", mongosup_command_class("find"), 400, MONGOSUP_FAIL_SERVER, 2, "bad value");
    mongosup_record_pool(b, "main", MONGOSUP_POOL_CHECKED_IN, 0);

    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_totals_t ta = plain(slot_stats(&seg, a)), tb = plain(slot_stats(&seg, b));
    for (int i = 0; i < MSUP_OP__COUNT; i++)
        CU_ASSERT_EQUAL(ta.ops[i], tb.ops[i]);
    for (int i = 0; i < MSUP_FAIL__COUNT; i++)
        CU_ASSERT_EQUAL(ta.failures[i], tb.failures[i]);
    CU_ASSERT_EQUAL(ta.ops[MSUP_OP_WRITE], 1);
    CU_ASSERT_EQUAL(ta.ops[MSUP_OP_READ], 1);
    CU_ASSERT_EQUAL(ta.failures[MSUP_FAIL_SERVER], 1);
    CU_ASSERT_EQUAL(ta.hist_count, tb.hist_count);
    CU_ASSERT_EQUAL(ta.checkouts, tb.checkouts);
    CU_ASSERT_EQUAL(tb.checkouts, 2);
    CU_ASSERT_EQUAL(ta.clients_created, tb.clients_created);
    CU_ASSERT_EQUAL(ta.pool_in_use, tb.pool_in_use);
    CU_ASSERT_EQUAL(ta.pool_idle, tb.pool_idle);
    CU_ASSERT_EQUAL(ta.pool_created, tb.pool_created);
    CU_ASSERT_EQUAL(tb.pool_created, 1);
    CU_ASSERT_EQUAL(ta.pool_max, tb.pool_max);
    msup_last_error_t la, lb;
    CU_ASSERT(msup_last_error_read(&slot_stats(&seg, a)->last_error, &la));
    CU_ASSERT(msup_last_error_read(&slot_stats(&seg, b)->last_error, &lb));
    CU_ASSERT_EQUAL(la.fail_class, lb.fail_class);
    CU_ASSERT_EQUAL(la.code, lb.code);
    CU_ASSERT_EQUAL(lb.domain, MONGOSUP_ERROR_DRIVER);
    CU_ASSERT_PTR_NOT_NULL(strstr(lb.message, "bad value"));
    msup_segment_close(&seg);
    CU_ASSERT(mongosup_detach(&b, 1000));
    CU_ASSERT(mongosup_detach(&a, 1000));
    wfix_stop(&f);
}

/* Each latency lands in the bucket, sum and max the mongoc path uses. */
static void test_latency_and_classes(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "nlat", "");
    static const uint64_t us[] = {3, 150, 2500, 70000};
    for (size_t i = 0; i < 4; i++)
        mongosup_record_op(h, "main", (mongosup_op_class_t)(i % 3), us[i], MONGOSUP_FAIL_NONE, 0, NULL);
    mongosup_record_op(h, "nosuch", MONGOSUP_OP_READ, 10, MONGOSUP_FAIL_NONE, 0, NULL); /* ignored */
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_stats_t *s = slot_stats(&seg, h);
    CU_ASSERT_EQUAL(atomic_load(&s->ops[MSUP_OP_READ]), 2);
    CU_ASSERT_EQUAL(atomic_load(&s->ops[MSUP_OP_WRITE]), 1);
    CU_ASSERT_EQUAL(atomic_load(&s->ops[MSUP_OP_COMMAND]), 1);
    CU_ASSERT_EQUAL(atomic_load(&s->hist_sum_us), 3 + 150 + 2500 + 70000);
    CU_ASSERT_EQUAL(atomic_load(&s->hist_max_us), 70000);
    for (size_t i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(atomic_load(&s->hist[msup_hist_index(us[i])]), 1);
    CU_ASSERT_EQUAL(mongosup_command_class("find"), MONGOSUP_OP_READ);
    CU_ASSERT_EQUAL(mongosup_command_class("findAndModify"), MONGOSUP_OP_WRITE);
    CU_ASSERT_EQUAL(mongosup_command_class("hello"), MONGOSUP_OP_COMMAND);
    msup_segment_close(&seg);
    CU_ASSERT(mongosup_detach(&h, 1000));
    wfix_stop(&f);
}

/* Failure classes, a redacted message, and a network failure while DOWN
 * counted as circuit open (the reclassification the mongoc path uses). */
static void test_failures_redacted_and_reclassed(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "nfail", "");
    mongosup_record_op(h, "main", MONGOSUP_OP_READ, 10, MONGOSUP_FAIL_AUTH, 18,
                       "auth failed for mongodb://alice:s3cret@db.example:27017/x");
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_stats_t *s = slot_stats(&seg, h);
    CU_ASSERT_EQUAL(atomic_load(&s->failures[MSUP_FAIL_AUTH]), 1);
    msup_last_error_t le;
    CU_ASSERT(msup_last_error_read(&s->last_error, &le));
    CU_ASSERT_EQUAL(le.code, 18);
    CU_ASSERT_PTR_NULL(strstr(le.message, "s3cret"));
    CU_ASSERT_PTR_NOT_NULL(strstr(le.message, "db.example"));

    mongosup_record_op(h, "main", MONGOSUP_OP_READ, 10, MONGOSUP_FAIL_NETWORK, 0, "connection reset");
    CU_ASSERT_EQUAL(atomic_load(&s->failures[MSUP_FAIL_NETWORK]), 1);
    wfix_play_supervisor(&seg, true);
    atomic_store(&main_row(&seg)->health, MSUP_HEALTH_DOWN);
    mongosup_record_op(h, "main", MONGOSUP_OP_READ, 10, MONGOSUP_FAIL_NETWORK, 0, "connection reset");
    CU_ASSERT_EQUAL(atomic_load(&s->failures[MSUP_FAIL_NETWORK]), 1);
    CU_ASSERT_EQUAL(atomic_load(&s->failures[MSUP_FAIL_CIRCUIT_OPEN]), 1);
    mongosup_record_op(h, "main", MONGOSUP_OP_READ, 10, (mongosup_fail_class_t)99, 0, "out of range"); /* other */
    CU_ASSERT_EQUAL(atomic_load(&s->failures[MSUP_FAIL_OTHER]), 1);
    /* A failure without an operation: selection while DOWN is the circuit opening too. */
    uint64_t ops = atomic_load(&s->ops[MSUP_OP_READ]);
    mongosup_record_failure(h, "main", MONGOSUP_FAIL_SERVER_SELECTION, 0, "no server");
    CU_ASSERT_EQUAL(atomic_load(&s->failures[MSUP_FAIL_CIRCUIT_OPEN]), 2);
    CU_ASSERT_EQUAL(atomic_load(&s->ops[MSUP_OP_READ]), ops);
    atomic_store(&main_row(&seg)->health, MSUP_HEALTH_UP);
    mongosup_record_failure(h, "main", MONGOSUP_FAIL_SERVER_SELECTION, 0, "no server");
    CU_ASSERT_EQUAL(atomic_load(&s->failures[MSUP_FAIL_SERVER_SELECTION]), 1);
    mongosup_record_failure(h, "main", MONGOSUP_FAIL_NONE, 0, "nothing failed");
    CU_ASSERT_EQUAL(atomic_load(&s->failures[MSUP_FAIL_OTHER]), 1);
    atomic_store(&main_row(&seg)->health, MSUP_HEALTH_UP);
    msup_segment_close(&seg);
    CU_ASSERT(mongosup_detach(&h, 1000));
    wfix_stop(&f);
}

/* Pool events: waits, timeouts, wait time and the gauges. */
static void test_pool_events(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "npool", "max_pool_size = 2;");
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CONNECTION_CREATED, 0);
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CHECKOUT_SUCCEEDED, 0);
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CONNECTION_CREATED, 0);
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CHECKOUT_SUCCEEDED, 0);
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CHECKOUT_WAIT, 1);
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CHECKOUT_FAILED, 2000);
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CHECKOUT_WAIT, 1);
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CHECKED_IN, 0);
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CHECKOUT_SUCCEEDED, 1500);
    mongosup_record_pool(h, "main", MONGOSUP_POOL_RETRY, 0);
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_stats_t *s = slot_stats(&seg, h);
    CU_ASSERT_EQUAL(atomic_load(&s->checkouts), 3);
    CU_ASSERT_EQUAL(atomic_load(&s->checkout_waits), 2);
    CU_ASSERT_EQUAL(atomic_load(&s->max_reached), 2);
    CU_ASSERT_EQUAL(atomic_load(&s->checkout_wait_us), 3500);
    CU_ASSERT_EQUAL(atomic_load(&s->checkout_timeouts), 1);
    CU_ASSERT_EQUAL(atomic_load(&s->retries), 1);
    CU_ASSERT_EQUAL(atomic_load(&s->clients_created), 2);
    CU_ASSERT_EQUAL(atomic_load(&s->pool_in_use), 2);
    CU_ASSERT_EQUAL(atomic_load(&s->pool_idle), 0);
    CU_ASSERT_EQUAL(atomic_load(&s->pool_created), 2);
    CU_ASSERT_EQUAL(atomic_load(&s->pool_max), 2);
    msup_last_error_t le;
    CU_ASSERT(msup_last_error_read(&s->last_error, &le));
    CU_ASSERT_EQUAL(le.fail_class, MSUP_FAIL_TIMEOUT);
    CU_ASSERT_EQUAL(le.code, MONGOSUP_E_POOL_TIMEOUT);
    /* A connection that broke while in use: closed, then checked in. */
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CONNECTION_CLOSED, 0);
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CHECKED_IN, 0);
    /* An idle one closed by the driver. */
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CHECKED_IN, 0);
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CONNECTION_CLOSED, 0);
    CU_ASSERT_EQUAL(atomic_load(&s->pool_in_use), 0);
    CU_ASSERT_EQUAL(atomic_load(&s->pool_idle), 0);
    CU_ASSERT_EQUAL(atomic_load(&s->pool_created), 0);
    CU_ASSERT_EQUAL(atomic_load(&s->clients_destroyed), 2);
    /* A remap (the supervisor bumped the generation) keeps the gauges. */
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CONNECTION_CREATED, 0);
    atomic_fetch_add(&msup_segment_hdr(&seg)->config_generation, 1);
    CU_ASSERT(mongosup_gate(h, "main", NULL, NULL));
    CU_ASSERT_EQUAL(atomic_load(&s->pool_idle), 1);
    CU_ASSERT_EQUAL(atomic_load(&s->pool_created), 1);
    mongosup_record_pool(h, "main", MONGOSUP_POOL_CONNECTION_CLOSED, 0);
    msup_segment_close(&seg);
    CU_ASSERT(mongosup_detach(&h, 1000));
    wfix_stop(&f);
}

/* The gate: the row's health with a live supervisor, fail open without
 * one, the drain, an unknown cluster; refusals counted as checkouts'. */
static void test_gate_health_and_drain(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "ngate", "");
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_stats_t *s = slot_stats(&seg, h);
    mongosup_error_t error;
    uint64_t gen = 99;
    CU_ASSERT(mongosup_gate(h, "main", &gen, &error));
    CU_ASSERT_EQUAL(gen, 0);
    atomic_store(&main_row(&seg)->reconnect_generation, 4);
    CU_ASSERT(mongosup_gate(h, "main", &gen, &error));
    CU_ASSERT_EQUAL(gen, 4);

    wfix_play_supervisor(&seg, true);
    atomic_store(&main_row(&seg)->health, MSUP_HEALTH_DOWN);
    bool alive = false;
    CU_ASSERT_EQUAL(mongosup_cluster_health(h, "main", &alive), MONGOSUP_HEALTH_DOWN);
    CU_ASSERT(alive);
    CU_ASSERT(!mongosup_gate(h, "main", &gen, &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_CIRCUIT_OPEN);
    CU_ASSERT(!mongosup_gate(h, "main", &gen, &error));
    CU_ASSERT_EQUAL(atomic_load(&s->failures[MSUP_FAIL_CIRCUIT_OPEN]), 2);
    /* The driver's own monitor reached the server: half-open, one trial
     * per spacing goes through and the next is refused.  First past the
     * window in which the upkeep thread takes a new DOWN verdict in
     * (failfast.c: it voids half-open evidence for MSUP_CUTOFF_FOLLOW_MS). */
    msup_test_sleep_ms(msup_test_under_valgrind() ? 3000 : MSUP_FAILFAST_CALM_TICK_MS + MSUP_CUTOFF_FOLLOW_MS + 200);
    wfix_play_supervisor(&seg, true); /* the sleep must not make the heartbeat stale (3 s) */
    mongosup_record_heartbeat_ok(h, "main");
    uint64_t t0 = msup_mono_ns();
    CU_ASSERT(mongosup_gate(h, "main", &gen, &error));
    bool second = mongosup_gate(h, "main", &gen, &error);
    /* Refused when it came within the spacing (it does, but under valgrind a
     * preemption may take longer: then it is the next trial). */
    if (msup_mono_ns() - t0 < MSUP_HALF_OPEN_TRIAL_SPACING_MS * 1000000ull)
        CU_ASSERT(!second);
    uint64_t refusals = second ? 2 : 3;
    CU_ASSERT_EQUAL(atomic_load(&s->failures[MSUP_FAIL_CIRCUIT_OPEN]), refusals);
    wfix_play_supervisor(&seg, false); /* stale: fail open */
    CU_ASSERT(mongosup_gate(h, "main", &gen, &error));
    CU_ASSERT_EQUAL(mongosup_cluster_health(h, "main", &alive), MONGOSUP_HEALTH_DOWN);
    CU_ASSERT(!alive);
    wfix_play_supervisor(&seg, true);
    atomic_store(&main_row(&seg)->health, MSUP_HEALTH_UP);
    CU_ASSERT(mongosup_gate(h, "main", &gen, &error));
    CU_ASSERT_EQUAL(atomic_load(&s->failures[MSUP_FAIL_CIRCUIT_OPEN]), refusals);

    CU_ASSERT(!mongosup_gate(h, "nosuch", &gen, &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_UNKNOWN_CLUSTER);
    CU_ASSERT(!mongosup_gate(NULL, "main", &gen, &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_INVALID_ARG);

    atomic_store(&msup_segment_hdr(&seg)->phase, MSUP_PHASE_DRAINING);
    CU_ASSERT(!mongosup_gate(h, "main", &gen, &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_SHUTTING_DOWN);
    CU_ASSERT_EQUAL(atomic_load(&s->failures[MSUP_FAIL_SHUTTING_DOWN]), 1);
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_slot(&seg, (uint32_t)mongosup_worker_slot(h))->draining_ack), 1);
    CU_ASSERT(mongosup_draining(h));
    atomic_store(&msup_segment_hdr(&seg)->phase, MSUP_PHASE_RUNNING);
    msup_segment_close(&seg);
    CU_ASSERT(mongosup_detach(&h, 1000));
    wfix_stop(&f);
}

/* A handle inherited across fork: the gate refuses, records are dropped
 * (the slot is the parent's). */
static void test_gate_forked(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "nfork", "");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        mongosup_error_t error;
        bool refused = !mongosup_gate(h, "main", NULL, &error) && error.code == MONGOSUP_E_FORKED;
        mongosup_record_op(h, "main", MONGOSUP_OP_READ, 5, MONGOSUP_FAIL_NONE, 0, NULL);
        _exit(refused ? 0 : 1);
    }
    int status = 0;
    CU_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    CU_ASSERT_EQUAL(atomic_load(&slot_stats(&seg, h)->ops[MSUP_OP_READ]), 0);
    msup_segment_close(&seg);
    CU_ASSERT(mongosup_detach(&h, 1000));
    wfix_stop(&f);
}

/* Budget tokens come from the row's line under max_connections and go back. */
static void test_budget_tokens(void)
{
    wfix_t f;
    /* The worker's own limit (and the control row's, as the fixture
     * publishes the configuration like a supervisor). */
    mongosup_t *h = wfix_start_attached(&f, "nbudget", "max_connections = 2;");
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    mongosup_error_t error;
    CU_ASSERT(mongosup_connection_acquire(h, "main", &error));
    CU_ASSERT(mongosup_connection_acquire(h, "main", &error));
    CU_ASSERT(!mongosup_connection_acquire(h, "main", &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_POOL_TIMEOUT);
    CU_ASSERT_EQUAL(atomic_load(&slot_stats(&seg, h)->budget_tokens), 2);
    mongosup_connection_release(h, "main");
    CU_ASSERT_EQUAL(atomic_load(&slot_stats(&seg, h)->budget_tokens), 1);
    CU_ASSERT(mongosup_connection_acquire(h, "main", &error));
    CU_ASSERT(!mongosup_connection_acquire(h, "nosuch", &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_UNKNOWN_CLUSTER);
    mongosup_connection_release(h, "main");
    mongosup_connection_release(h, "main");
    CU_ASSERT_EQUAL(atomic_load(&slot_stats(&seg, h)->budget_tokens), 0);
    msup_segment_close(&seg);
    CU_ASSERT(mongosup_detach(&h, 1000));
    wfix_stop(&f);
}

/* Settings: the driver's URI (with its secret) and the display form without. */
static void test_settings(void)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start(&f, "nset", "max_pool_size = 7; wait_queue_timeout_ms = 1234; retry_writes = false;",
                               NULL));
    mongosup_config_destroy(&f.cfg);
    f.cfg = wfix_load(&f, "mongodb://bob:pa55word@127.0.0.1:1/?socketTimeoutMS=7777",
                      "max_pool_size = 7; wait_queue_timeout_ms = 1234; retry_writes = false;");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f.cfg);
    CU_ASSERT_EQUAL(mongosup_cluster_settings_size(), sizeof(mongosup_cluster_settings_t));
    mongosup_cluster_settings_t st;
    mongosup_error_t error;
    CU_ASSERT_FATAL(mongosup_cluster_settings(f.cfg, "main", &st, &error));
    CU_ASSERT_PTR_NOT_NULL(strstr(st.uri, "pa55word"));
    CU_ASSERT_PTR_NULL(strstr(st.uri_display, "pa55word"));
    CU_ASSERT_STRING_EQUAL(st.database_name, "wtest");
    CU_ASSERT_EQUAL(st.max_pool_size, 7);
    CU_ASSERT_EQUAL(st.wait_queue_timeout_ms, 1234);
    CU_ASSERT_EQUAL(st.socket_timeout_ms, 7777); /* from the URI */
    CU_ASSERT_EQUAL(st.connect_timeout_ms, 2000);
    CU_ASSERT_EQUAL(st.server_selection_timeout_ms, 2000);
    CU_ASSERT_EQUAL(st.heartbeat_frequency_ms, 500);
    CU_ASSERT(!st.retry_writes);
    CU_ASSERT(st.retry_reads);
    CU_ASSERT(st.circuit_breaker);
    CU_ASSERT(!mongosup_cluster_settings(f.cfg, "nosuch", &st, &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_UNKNOWN_CLUSTER);
    wfix_stop(&f);
}

/* The settings a handle follows: its attach configuration's until the
 * supervisor's bump, then, from the gate on, the file reloaded (the
 * application's configuration untouched); a file that does not load keeps
 * them; the generation moves at each reload the handle followed. */
static void test_current_settings_follow_reload(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "nreload", "max_pool_size = 7; retry_max_attempts = 2;");
    mongosup_error_t error;
    mongosup_cluster_settings_t st;
    CU_ASSERT(mongosup_gate(h, "main", NULL, &error));
    uint64_t g0 = mongosup_config_generation(h);
    CU_ASSERT_FATAL(mongosup_current_settings(h, "main", &st, &error));
    CU_ASSERT_EQUAL(st.max_pool_size, 7);
    CU_ASSERT_PTR_NULL(strstr(st.uri, "socketTimeoutMS=4321"));

    /* The test plays a reload: a new file, then the supervisor's bump. */
    char *uri = wfix_uri_with(&f, "socketTimeoutMS=4321");
    mongosup_config_t *edited = wfix_load(&f, uri, "max_pool_size = 9; retry_max_attempts = 5;");
    CU_ASSERT_PTR_NOT_NULL_FATAL(edited);
    mongosup_config_destroy(&edited);
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    atomic_fetch_add(&msup_segment_hdr(&seg)->config_generation, 1);
    /* Followed at the gate, not before. */
    CU_ASSERT_EQUAL(mongosup_config_generation(h), g0);
    CU_ASSERT(mongosup_current_settings(h, "main", &st, &error) && st.max_pool_size == 7);
    CU_ASSERT(mongosup_gate(h, "main", NULL, &error));
    uint64_t g1 = mongosup_config_generation(h);
    CU_ASSERT(g1 != g0);
    CU_ASSERT_FATAL(mongosup_current_settings(h, "main", &st, &error));
    CU_ASSERT_EQUAL(st.max_pool_size, 9);
    CU_ASSERT_EQUAL(st.retry_max_attempts, 5);
    CU_ASSERT_EQUAL(st.socket_timeout_ms, 4321);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.uri, "socketTimeoutMS=4321"));
    mongosup_cluster_settings_t app;
    CU_ASSERT(mongosup_cluster_settings(f.cfg, "main", &app, &error));
    CU_ASSERT_EQUAL(app.max_pool_size, 7);

    /* A file that does not load: the settings stay, the generation moves. */
    FILE *fp = fopen(f.conf_path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs("segment = { name = 5; };\n", fp);
    fclose(fp);
    atomic_fetch_add(&msup_segment_hdr(&seg)->config_generation, 1);
    fflush(stderr);
    CU_ASSERT(mongosup_gate(h, "main", NULL, &error));
    CU_ASSERT(mongosup_config_generation(h) != g1);
    CU_ASSERT(mongosup_current_settings(h, "main", &st, &error) && st.max_pool_size == 9);

    CU_ASSERT(!mongosup_current_settings(h, "nosuch", &st, &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_UNKNOWN_CLUSTER);
    CU_ASSERT(!mongosup_current_settings(NULL, "main", &st, &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_INVALID_ARG);
    CU_ASSERT_EQUAL(mongosup_config_generation(NULL), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(!mongosup_current_settings(h, "main", &st, &error) && error.code == MONGOSUP_E_FORKED ? 0 : 1);
    int status = 0;
    CU_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    free(uri);
    msup_segment_close(&seg);
    CU_ASSERT(mongosup_detach(&h, 1000));
    wfix_stop(&f);
}

/* The reconnect generation a rebuilt client serves is acknowledged. */
static void test_serving_generation(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "ngen", "reconnect_window_ms = 1000;");
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_stats_t *s = slot_stats(&seg, h);
    mongosup_serving_generation(h, "main", 0, false);
    CU_ASSERT_EQUAL(atomic_load(&s->reconnects), 0);
    mongosup_serving_generation(h, "main", 3, true);
    CU_ASSERT_EQUAL(atomic_load(&s->reconnects), 1);
    CU_ASSERT_EQUAL(atomic_load(&s->reconnect_ack), 3);
    CU_ASSERT(atomic_load(&s->reconnect_ack_ns) > 0);
    uint32_t slot = (uint32_t)mongosup_worker_slot(h);
    CU_ASSERT_EQUAL(mongosup_reconnect_delay_ms(h, "main"), msup_reconnect_delay_ns(slot, 1000) / 1000000u);
    CU_ASSERT(mongosup_reconnect_delay_ms(h, "main") < 1000);
    msup_segment_close(&seg);
    CU_ASSERT(mongosup_detach(&h, 1000));
    wfix_stop(&f);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/neutral/record/same-as-mongoc-path", test_same_as_mongoc},
        {"/neutral/record/latency-and-classes", test_latency_and_classes},
        {"/neutral/record/failures-redacted-and-reclassed", test_failures_redacted_and_reclassed},
        {"/neutral/record/pool-events-and-gauges", test_pool_events},
        {"/neutral/gate/health-and-drain", test_gate_health_and_drain},
        {"/neutral/gate/forked", test_gate_forked},
        {"/neutral/budget/tokens", test_budget_tokens},
        {"/neutral/settings/uri-and-options", test_settings},
        {"/neutral/settings/follow-reload", test_current_settings_follow_reload},
        {"/neutral/reconnect/serving-generation", test_serving_generation},
        {NULL, NULL},
    };
    int rc = msup_test_main("neutral_api", tests, argc, argv);
    mongoc_cleanup();
    return rc;
}
