/* worker_faults_test.c: failure classes from real peer faults, circuit breaker, draining, mongosup_run retries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <signal.h>
#include <sys/wait.h>

#include "budget.h"
#include "failfast.h" /* MSUP_CUTOFF_FOLLOW_MS */
#include "slots.h"
#include "stats.h"
#include "testmain.h"
#include "worker.h"
#include "worker_fixture.h"

static bool insert_one(mongoc_client_t *client, bson_t *reply, bson_error_t *error)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(client, "wtest", "c");
    bson_t *doc = BCON_NEW("a", BCON_INT32(1));
    bool ok = mongoc_collection_insert_one(coll, doc, NULL, reply, error);
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
    return ok;
}

/* One checkout, one ping (or insert), checkin with the outcome. */
static bool op_with_outcome(mongosup_t *h, bool insert, bson_error_t *berr)
{
    mongosup_error_t error;
    mongoc_client_t *client = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    bson_t reply;
    bool ok = insert ? insert_one(client, &reply, berr) : wfix_ping(client, berr);
    if (insert)
        bson_destroy(&reply);
    mongosup_checkin(h, client, ok ? NULL : berr);
    return ok;
}

static uint64_t failures(const wfix_t *f, enum msup_fail_class cls)
{
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(f, "main", &t));
    return t.failures[cls];
}

/* Replaces the fixture's configuration with one for `uri` and attaches a worker to it. */
static mongosup_t *attach_to_uri(wfix_t *f, const char *uri, const char *keys)
{
    mongosup_config_destroy(&f->cfg);
    f->cfg = wfix_load(f, uri, keys);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->cfg);
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f->cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    return h;
}

/* Detaches the worker (asserting it succeeds) and stops the fixture. */
static void detach_and_stop(wfix_t *f, mongosup_t **h)
{
    CU_ASSERT(mongosup_detach(h, 1000));
    wfix_stop(f);
}

/* Sends one fault command to the peer, asserting the peer took it. */
static void peer_fault(const wfix_t *f, const char *json)
{
    CU_ASSERT(test_peer_command(f->peer, json, NULL, 0));
}

/* Asserts a checkout from "main" fails with a driver error of `domain` (in *error). */
static void expect_checkout_driver_error(mongosup_t *h, uint32_t domain, mongosup_error_t *error)
{
    CU_ASSERT_PTR_NULL(mongosup_checkout(h, "main", error));
    CU_ASSERT_EQUAL(error->code, MONGOSUP_E_DRIVER);
    CU_ASSERT_EQUAL(error->driver_domain, domain);
}

/* Opens the segment writable and finds the row "main" the worker registered (the test stops without one). */
static int open_main_row(const wfix_t *f, msup_segment_t *seg)
{
    CU_ASSERT_FATAL(wfix_segment(f, seg));
    int row = msup_segment_find_cluster(seg, "main");
    CU_ASSERT_FATAL(row >= 0);
    return row;
}

/* Asserts a checkout from "main" succeeds (fails open), and checks the client back in. */
static void expect_checkout_ok(mongosup_t *h)
{
    mongosup_error_t error;
    mongoc_client_t *client = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL(client);
    if (client == NULL)
        printf("(checkout failed: %s) ", error.message);
    mongosup_checkin(h, client, NULL);
}

static void test_network_and_timeout(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "netfail", "socket_timeout_ms = 300;");
    bson_error_t berr;
    CU_ASSERT(op_with_outcome(h, false, &berr));
    peer_fault(&f, "{\"cmd\":\"hangup\",\"mode\":\"before\",\"command\":\"ping\",\"times\":1}");
    CU_ASSERT_FALSE(op_with_outcome(h, false, &berr));
    CU_ASSERT_EQUAL(berr.domain, MONGOC_ERROR_STREAM);
    CU_ASSERT_EQUAL(failures(&f, MSUP_FAIL_NETWORK), 1); /* the outcome was not counted twice */
    CU_ASSERT_EQUAL(failures(&f, MSUP_FAIL_TIMEOUT), 0);
    /* After a network failure the client reconnects through a handshake
     * slot at its next checkout (that ping is ours, not counted): the
     * delay below must hit the application's ping, so reconnect first. */
    long pings = test_peer_stat(f.peer, "cmd.ping");
    CU_ASSERT(op_with_outcome(h, false, &berr));
    CU_ASSERT_EQUAL(test_peer_stat(f.peer, "cmd.ping"), pings + 2);

    peer_fault(&f, "{\"cmd\":\"delay\",\"ms\":1500,\"command\":\"ping\",\"times\":1}");
    CU_ASSERT_FALSE(op_with_outcome(h, false, &berr));
    CU_ASSERT_EQUAL(failures(&f, MSUP_FAIL_TIMEOUT), 1);
    CU_ASSERT_EQUAL(failures(&f, MSUP_FAIL_NETWORK), 1);

    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.ops[MSUP_OP_COMMAND], 4); /* failed commands are timed too */
    CU_ASSERT_EQUAL(t.hist_count, 4);
    detach_and_stop(&f, &h);
}

static void test_server_errors(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "srvfail", "");
    bson_error_t berr;
    CU_ASSERT(op_with_outcome(h, false, &berr)); /* connected: the faults below hit our operations */
    peer_fault(&f, "{\"cmd\":\"fail\",\"command\":\"ping\",\"times\":1,\"code\":2}");
    CU_ASSERT_FALSE(op_with_outcome(h, false, &berr));
    CU_ASSERT_EQUAL(berr.domain, MONGOC_ERROR_SERVER);
    CU_ASSERT_EQUAL(failures(&f, MSUP_FAIL_SERVER), 1);
    /* A write-concern error comes in an ok:1 reply (a succeeded event):
     * only the checkin outcome can count it. */
    peer_fault(&f, "{\"cmd\":\"fail\",\"command\":\"insert\",\"times\":1,\"code\":64,\"write_concern_error\":true}");
    CU_ASSERT_FALSE(op_with_outcome(h, true, &berr));
    CU_ASSERT_EQUAL(berr.domain, MONGOC_ERROR_WRITE_CONCERN);
    CU_ASSERT_EQUAL(failures(&f, MSUP_FAIL_SERVER), 2);
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(msup_totals_failures(&t), 2);
    detach_and_stop(&f, &h);
}

/* Server selection fails before any command: a new client connects at
 * checkout, so the checkout fails with the driver's error, counted once. */
static void test_server_selection(void)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start(&f, "selfail", "", NULL));
    mongosup_t *h = attach_to_uri(&f, "mongodb://127.0.0.1:1/", "server_selection_timeout_ms = 300;");
    mongosup_error_t error;
    expect_checkout_driver_error(h, MONGOC_ERROR_SERVER_SELECTION, &error);
    CU_ASSERT_EQUAL(failures(&f, MSUP_FAIL_SERVER_SELECTION), 1);
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(msup_totals_failures(&t), 1);
    CU_ASSERT_EQUAL(t.checkouts, 0);
    CU_ASSERT_EQUAL(t.ops[MSUP_OP_COMMAND], 0); /* the handshake ping is ours, not an operation */
    detach_and_stop(&f, &h);
}

/* The peer has no saslStart: authentication fails during the handshake
 * of the new client, at checkout. */
static void test_auth(void)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start(&f, "authfail", "", NULL));
    char uri[128];
    snprintf(uri, sizeof uri, "mongodb://bob:s3cret@127.0.0.1:%d/", test_peer_port(f.peer, 0));
    mongosup_t *h = attach_to_uri(&f, uri, "server_selection_timeout_ms = 1000;");
    mongosup_error_t error;
    expect_checkout_driver_error(h, MONGOC_ERROR_CLIENT, &error);
    CU_ASSERT_EQUAL(error.driver_code, MONGOC_ERROR_CLIENT_AUTHENTICATE);
    CU_ASSERT_PTR_NULL(strstr(error.message, "s3cret"));
    CU_ASSERT_EQUAL(failures(&f, MSUP_FAIL_AUTH), 1);
    /* The last error in the segment never carries the password. */
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_snapshot_t snap;
    CU_ASSERT_FATAL(msup_snapshot_take(&seg, &snap, &error));
    CU_ASSERT_EQUAL(snap.clusters[0].last_error.fail_class, MSUP_FAIL_AUTH);
    CU_ASSERT_PTR_NULL(strstr(snap.clusters[0].uri_display, "s3cret"));
    CU_ASSERT_PTR_NULL(strstr(snap.clusters[0].last_error.message, "s3cret"));
    msup_snapshot_free(&snap);
    msup_segment_close(&seg);
    detach_and_stop(&f, &h);
}

/* ---- circuit breaker: the test plays the supervisor ---- */

static void test_circuit_breaker(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "circuit", "");
    msup_segment_t seg;
    int row = open_main_row(&f, &seg); /* registered by the worker */
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_row(&seg, row)->circuit_breaker), 1);
    atomic_store(&msup_segment_row(&seg, row)->health, MSUP_HEALTH_DOWN);

    wfix_play_supervisor(&seg, true);
    /* Eleven refusals, each timed; the median must be far below 1 ms
     * (the median: one preemption on a loaded CI machine is not what is
     * measured).  Under valgrind only "did not wait for server selection"
     * (2 s in this fixture) is meaningful. */
    uint64_t took[11];
    mongosup_error_t error;
    for (int i = 0; i < 11; i++) {
        uint64_t t0 = msup_mono_ns();
        mongoc_client_t *client = mongosup_checkout(h, "main", &error);
        took[i] = (msup_mono_ns() - t0) / 1000;
        CU_ASSERT_PTR_NULL(client);
        CU_ASSERT_EQUAL(error.code, MONGOSUP_E_CIRCUIT_OPEN);
    }
    for (int i = 1; i < 11; i++) /* insertion sort: eleven values */
        for (int k = i; k > 0 && took[k - 1] > took[k]; k--) {
            uint64_t t = took[k];
            took[k] = took[k - 1];
            took[k - 1] = t;
        }
    printf("(median refusal %llu us) ", (unsigned long long)took[5]);
    CU_ASSERT(took[5] < (msup_test_under_valgrind() ? 1000000u : 1000u));
    CU_ASSERT_EQUAL(failures(&f, MSUP_FAIL_CIRCUIT_OPEN), 11);

    /* A stale heartbeat: the supervisor may be dead, fail open.  Past the
     * cutoff's follow-up window of the DOWN above (failfast.c): this test is
     * about the gate, not about a cutoff racing the new connection. */
    wfix_play_supervisor(&seg, false);
    struct timespec follow = {0, (long)(MSUP_CUTOFF_FOLLOW_MS + 50) * 1000000L};
    nanosleep(&follow, NULL);
    expect_checkout_ok(h);
    /* Breaker off for the cluster: fail open too. */
    wfix_play_supervisor(&seg, true);
    atomic_store(&msup_segment_row(&seg, row)->circuit_breaker, 0);
    expect_checkout_ok(h);
    atomic_store(&msup_segment_row(&seg, row)->circuit_breaker, 1);
    atomic_store(&msup_segment_row(&seg, row)->health, MSUP_HEALTH_UP);
    expect_checkout_ok(h);
    CU_ASSERT_EQUAL(failures(&f, MSUP_FAIL_CIRCUIT_OPEN), 11); /* unchanged: fail-open checkouts are not refusals */
    msup_segment_close(&seg);
    detach_and_stop(&f, &h);
}

/* A row registered by the worker carries the configured circuit_breaker. */
static void test_circuit_breaker_config_off(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "circuitoff", "circuit_breaker = false;");
    msup_segment_t seg;
    int row = open_main_row(&f, &seg);
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_row(&seg, row)->circuit_breaker), 0);
    atomic_store(&msup_segment_row(&seg, row)->health, MSUP_HEALTH_DOWN);
    wfix_play_supervisor(&seg, true);
    expect_checkout_ok(h);
    msup_segment_close(&seg);
    detach_and_stop(&f, &h);
}

/* ---- draining ---- */

static void test_draining(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "drain", "");
    mongosup_error_t error;
    mongoc_client_t *held = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(held);
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_slot_t *slot = msup_segment_slot(&seg, (uint32_t)mongosup_worker_slot(h));
    CU_ASSERT_EQUAL(atomic_load(&slot->draining_ack), 0);
    CU_ASSERT_FALSE(mongosup_draining(h));
    atomic_store(&msup_segment_hdr(&seg)->phase, MSUP_PHASE_DRAINING);
    CU_ASSERT(mongosup_draining(h));
    CU_ASSERT_EQUAL(atomic_load(&slot->draining_ack), 1);
    CU_ASSERT_PTR_NULL(mongosup_checkout(h, "main", &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_SHUTTING_DOWN);
    bson_error_t berr;
    CU_ASSERT(wfix_ping(held, &berr)); /* a client already out keeps working */
    mongosup_checkin(h, held, NULL);
    CU_ASSERT_EQUAL(failures(&f, MSUP_FAIL_SHUTTING_DOWN), 1);
    uint32_t active = atomic_load(&seg.retired->active) & 1u;
    uint64_t reaped = atomic_load(&seg.retired->slots_reaped[active]);
    CU_ASSERT(mongosup_detach(&h, 1000));
    /* It folded and freed its own slot: reusable at once, counted once. */
    CU_ASSERT_EQUAL(atomic_load(&slot->state), MSUP_SLOT_FREE);
    active = atomic_load(&seg.retired->active) & 1u;
    CU_ASSERT_EQUAL(atomic_load(&seg.retired->slots_reaped[active]), reaped + 1);
    CU_ASSERT_EQUAL(msup_slots_reap_all(&seg), 0);
    msup_segment_close(&seg);
    wfix_stop(&f);
}

/* ---- mongosup_run ---- */

typedef struct run_ctx {
    int calls;
} run_ctx_t;

static bool run_insert(mongoc_client_t *client, void *ctx, bson_t *reply, bson_error_t *error)
{
    ((run_ctx_t *)ctx)->calls++;
    return insert_one(client, reply, error);
}

static bool run_ping(mongoc_client_t *client, void *ctx, bson_t *reply, bson_error_t *error)
{
    ((run_ctx_t *)ctx)->calls++;
    return wfix_ping(client, error);
}

static uint64_t retries(const wfix_t *f)
{
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(f, "main", &t));
    return t.retries;
}

static void test_run_retries_transient(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "runretry", "retry_max_attempts = 4; retry_backoff_ms = 5;");
    mongosup_error_t error;
    /* A labelled error with a code outside the NotWritablePrimary family:
     * the label alone makes it transient. */
    peer_fault(&f, "{\"cmd\":\"fail\",\"command\":\"insert\",\"times\":2,\"code\":2,"
                   "\"labels\":[\"RetryableWriteError\"]}");
    run_ctx_t x = {0};
    CU_ASSERT(mongosup_run(h, "main", run_insert, &x, &error));
    CU_ASSERT_EQUAL(x.calls, 3);
    CU_ASSERT_EQUAL(retries(&f), 2);
    CU_ASSERT_EQUAL(test_peer_count(f.peer, "wtest", "c"), 1);

    /* ShutdownInProgress (91) without a label, then a dropped connection. */
    peer_fault(&f, "{\"cmd\":\"fail\",\"command\":\"ping\",\"times\":1,\"code\":91}");
    x.calls = 0;
    CU_ASSERT(mongosup_run(h, "main", run_ping, &x, &error));
    CU_ASSERT_EQUAL(x.calls, 2);
    peer_fault(&f, "{\"cmd\":\"hangup\",\"mode\":\"before\",\"command\":\"ping\",\"times\":1}");
    x.calls = 0;
    CU_ASSERT(mongosup_run(h, "main", run_ping, &x, &error));
    CU_ASSERT_EQUAL(x.calls, 2);
    CU_ASSERT_EQUAL(retries(&f), 4);

    /* Attempts are bounded. */
    peer_fault(&f, "{\"cmd\":\"fail\",\"command\":\"ping\",\"times\":10,\"code\":10107}");
    x.calls = 0;
    CU_ASSERT_FALSE(mongosup_run(h, "main", run_ping, &x, &error));
    CU_ASSERT_EQUAL(x.calls, 4);
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_DRIVER);
    CU_ASSERT_EQUAL(error.driver_domain, MONGOC_ERROR_SERVER);
    CU_ASSERT_EQUAL(error.driver_code, 10107);
    CU_ASSERT_EQUAL(retries(&f), 7);
    test_peer_command(f.peer, "{\"cmd\":\"clear\"}", NULL, 0);
    detach_and_stop(&f, &h);
}

static void test_run_not_transient(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "runnot", "retry_backoff_ms = 5;");
    mongosup_error_t error;
    peer_fault(&f, "{\"cmd\":\"fail\",\"command\":\"insert\",\"times\":1,\"code\":2}");
    run_ctx_t x = {0};
    CU_ASSERT_FALSE(mongosup_run(h, "main", run_insert, &x, &error));
    CU_ASSERT_EQUAL(x.calls, 1);
    CU_ASSERT_EQUAL(error.domain, MONGOSUP_ERROR_DRIVER);
    CU_ASSERT_EQUAL(error.driver_code, 2);
    CU_ASSERT_EQUAL(retries(&f), 0);
    CU_ASSERT_EQUAL(wfix_peer_stat(&f, "cmd.insert"), 1);
    detach_and_stop(&f, &h);
}

/* ---- rows: a reload that moves the cluster to another row ---- */

static void test_remap_on_config_generation(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "remap", "max_pool_size = 5;");
    mongosup_error_t error;
    mongoc_client_t *client = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    mongosup_checkin(h, client, NULL);
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    uint32_t slot = (uint32_t)mongosup_worker_slot(h);
    int old_row = msup_segment_find_cluster(&seg, "main");
    CU_ASSERT_EQUAL_FATAL(old_row, 0); /* registered at its index in the configuration */
    /* The supervisor reloads: "main" moves to row 2 (registry and control). */
    msup_reg_row_t *moved_reg = msup_segment_reg(&seg, 2);
    snprintf(moved_reg->name, sizeof moved_reg->name, "main");
    atomic_store(&moved_reg->row_state, MSUP_ROW_ACTIVE);
    atomic_store(&msup_segment_reg(&seg, (uint32_t)old_row)->row_state, MSUP_ROW_REMOVED);
    msup_cluster_row_t *moved = msup_segment_row(&seg, 2);
    snprintf(moved->name, sizeof moved->name, "main");
    atomic_store(&moved->circuit_breaker, 1);
    atomic_store(&moved->row_state, MSUP_ROW_ACTIVE);
    atomic_store(&msup_segment_row(&seg, old_row)->row_state, MSUP_ROW_REMOVED);
    atomic_store(&msup_segment_hdr(&seg)->config_generation, 9);
    client = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    msup_stats_t *now = msup_slot_stats(&seg, slot, 2), *before = msup_slot_stats(&seg, slot, (uint32_t)old_row);
    CU_ASSERT_EQUAL(atomic_load(&now->config_generation_seen), 9);
    CU_ASSERT_EQUAL(atomic_load(&now->uri_mismatch), 0); /* no supervisor published a URI to differ from */
    CU_ASSERT_EQUAL(atomic_load(&now->checkouts), 1);
    CU_ASSERT_EQUAL(atomic_load(&now->pool_in_use), 1);
    CU_ASSERT_EQUAL(atomic_load(&now->pool_max), 5);
    CU_ASSERT_EQUAL(atomic_load(&before->checkouts), 1); /* history stays where it was counted */
    CU_ASSERT_EQUAL(atomic_load(&before->pool_in_use), 0); /* gauges moved */
    CU_ASSERT_EQUAL(atomic_load(&before->pool_max), 0);
    mongosup_checkin(h, client, NULL);
    CU_ASSERT_EQUAL(atomic_load(&now->pool_idle), 1);
    msup_segment_close(&seg);
    detach_and_stop(&f, &h);
}

/* ---- forgery through the stats segment (any member of its group can write it) ---- */

/* Whatever is written to the stats segment, a worker's belief about health,
 * phase, reconnect generation and budget limits stays what the control
 * segment (the supervisor's, mapped read-only) says. */
static void test_forged_stats_change_no_belief(void)
{
    wfix_t f;
    mongosup_t *h = wfix_start_attached(&f, "forge", "max_pool_size = 4;");
    msup_segment_t seg;
    int row = open_main_row(&f, &seg);
    wfix_play_supervisor(&seg, true);
    atomic_store(&msup_segment_hdr(&seg)->heartbeat_timeout_ms, 600000);
    /* The forger: budget limits of 1 on the line, a registry and slot scribbled over. */
    msup_reg_row_t *line = msup_segment_reg(&seg, (uint32_t)row);
    msup_budget_apply_limits(&line->limits, 1, 1);
    atomic_store(&line->budget_share, 1);
    atomic_store(&line->budget_interested, 1000);
    atomic_store(&line->budget_share_mono_ns, msup_mono_ns() + 60ull * 1000000000ull);
    atomic_store(&line->budget_wait_mono_ns, msup_mono_ns());
    msup_slot_t *mine = msup_segment_slot(&seg, (uint32_t)mongosup_worker_slot(h));
    atomic_store(&mine->draining_ack, 1);
    for (uint32_t i = 0; i < seg.max_clusters; i++)
        if ((int)i != row)
            snprintf(msup_segment_reg(&seg, i)->name, MSUP_NAME_MAX, "main"); /* decoy rows */
    /* Four clients at once: the forged cap of 1 binds nobody. */
    mongosup_error_t error;
    mongoc_client_t *c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = mongosup_checkout(h, "main", &error);
        CU_ASSERT_PTR_NOT_NULL(c[i]);
    }
    for (int i = 0; i < 4; i++)
        if (c[i] != NULL)
            mongosup_checkin(h, c[i], NULL);
    CU_ASSERT_FALSE(mongosup_draining(h)); /* the phase lives in the control segment only */
    /* The control row is still the one believed: DOWN there opens the circuit. */
    atomic_store(&msup_segment_row(&seg, (uint32_t)row)->health, MSUP_HEALTH_DOWN);
    CU_ASSERT_PTR_NULL(mongosup_checkout(h, "main", &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_CIRCUIT_OPEN);
    atomic_store(&msup_segment_row(&seg, (uint32_t)row)->health, MSUP_HEALTH_UP);

    /* And a worker cannot write the control segment at all: its map is
     * read-only (a child attached like any worker dies trying). */
    pid_t child = fork();
    CU_ASSERT_FATAL(child >= 0);
    if (child == 0) {
        mongosup_t *w = mongosup_attach(f.cfg, &error);
        if (w == NULL)
            _exit(2);
        msup_ctlseg_t *ctl = msup_segment_control(msup_handle_seg(w));
        if (ctl == NULL)
            _exit(3);
        atomic_store(&ctl->rows[row].health, MSUP_HEALTH_DOWN); /* SIGSEGV */
        _exit(4);
    }
    int status;
    waitpid(child, &status, 0);
    CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_row(&seg, (uint32_t)row)->health), MSUP_HEALTH_UP);
    msup_slots_reap_all(&seg); /* the child's slot */
    msup_segment_close(&seg);
    detach_and_stop(&f, &h);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/worker/faults/network-and-timeout", test_network_and_timeout},
        {"/worker/faults/server-and-write-concern", test_server_errors},
        {"/worker/faults/server-selection-at-connect", test_server_selection},
        {"/worker/faults/auth", test_auth},
        {"/worker/circuit/open-live-heartbeat-fail-open-stale", test_circuit_breaker},
        {"/worker/circuit/config-off", test_circuit_breaker_config_off},
        {"/worker/drain/refuse-new-checkouts", test_draining},
        {"/worker/run/retries-transient", test_run_retries_transient},
        {"/worker/run/not-transient", test_run_not_transient},
        {"/worker/rows/remap-on-config-generation", test_remap_on_config_generation},
        {"/worker/trust/forged-stats-change-no-belief", test_forged_stats_change_no_belief},
        {NULL, NULL},
    };
    int rc = msup_test_main("worker_faults", tests, argc, argv);
    mongoc_cleanup();
    return rc;
}
