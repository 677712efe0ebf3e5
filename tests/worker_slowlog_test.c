/* worker_slowlog_test.c: the slow-operation log against the test peer: exactly the delayed and the failed operations reach the ring, and never a value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "slowlog.h"
#include "stats.h"
#include "testmain.h"
#include "worker_fixture.h"

#define SECRET_FILTER "filter-value-7f3a9c"
#define SECRET_DOC    "document-value-51be02"

static bool find_orders(mongoc_client_t *client, bson_error_t *error)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(client, "wtest", "orders");
    bson_t *filter = BCON_NEW("customer", BCON_UTF8(SECRET_FILTER));
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cursor, &doc))
        ;
    bool ok = !mongoc_cursor_error(cursor, error);
    mongoc_cursor_destroy(cursor);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
    return ok;
}

static bool insert_order(mongoc_client_t *client, bson_error_t *error)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(client, "wtest", "orders");
    bson_t *doc = BCON_NEW("customer", BCON_UTF8(SECRET_DOC));
    bool ok = mongoc_collection_insert_one(coll, doc, NULL, NULL, error);
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
    return ok;
}

/* One checkout, op, checkin with the outcome; returns the op's verdict. */
static bool run_op(mongosup_t *h, bool (*op)(mongoc_client_t *, bson_error_t *))
{
    mongosup_error_t error;
    mongoc_client_t *client = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    bson_error_t berr;
    bool ok = op(client, &berr);
    mongosup_checkin(h, client, ok ? NULL : &berr);
    return ok;
}

static bool ping(mongoc_client_t *client, bson_error_t *error)
{
    return wfix_ping(client, error);
}

/* This process's slot and the row "main" in the segment. */
static msup_slowlog_t *my_ring(const msup_segment_t *seg)
{
    int row = msup_segment_find_cluster(seg, "main");
    CU_ASSERT_FATAL(row >= 0);
    for (uint32_t i = 0; i < seg->max_workers; i++) {
        msup_slot_t *s = msup_segment_slot(seg, i);
        if (atomic_load(&s->state) == MSUP_SLOT_ACTIVE && s->pid == getpid())
            return &msup_slot_stats(seg, i, (uint32_t)row)->slowlog;
    }
    CU_FAIL_FATAL("no slot of this process");
    return NULL;
}

static void test_delayed_and_failed(void)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start(&f, "slowlog", "slow_op_ms = 150; log_failed_ops = true;", NULL));
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);

    /* Fast operations: none is logged. */
    CU_ASSERT(run_op(h, ping));
    CU_ASSERT(run_op(h, insert_order));
    CU_ASSERT(run_op(h, find_orders));
    /* One find delayed past slow_op_ms, then a failed insert. */
    CU_ASSERT(test_peer_command(f.peer, "{\"cmd\":\"delay\",\"ms\":300,\"command\":\"find\",\"times\":1}", NULL, 0));
    CU_ASSERT(run_op(h, find_orders));
    CU_ASSERT(run_op(h, find_orders)); /* the delay was for one */
    CU_ASSERT(test_peer_command(f.peer, "{\"cmd\":\"fail\",\"command\":\"insert\",\"times\":1,\"code\":2,"
                                        "\"errmsg\":\"bad value\"}", NULL, 0));
    CU_ASSERT_FALSE(run_op(h, insert_order));

    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_slowlog_t *ring = my_ring(&seg);
    msup_slowop_t e[MSUP_SLOWLOG_ENTRIES];
    uint32_t n = msup_slowlog_read(ring, 0, e, MSUP_SLOWLOG_ENTRIES);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    char server[64];
    snprintf(server, sizeof server, "127.0.0.1:%d", test_peer_port(f.peer, 0));
    CU_ASSERT_STRING_EQUAL(e[0].command, "find");
    CU_ASSERT_STRING_EQUAL(e[0].database, "wtest");
    CU_ASSERT_STRING_EQUAL(e[0].collection, "orders");
    CU_ASSERT_STRING_EQUAL(e[0].server, server);
    CU_ASSERT(e[0].duration_us >= 300000);
    CU_ASSERT_EQUAL(e[0].outcome, MSUP_SLOWOP_OK);
    CU_ASSERT_EQUAL(e[0].slow, 1);
    CU_ASSERT_STRING_EQUAL(e[1].command, "insert");
    CU_ASSERT_STRING_EQUAL(e[1].collection, "orders");
    CU_ASSERT_STRING_EQUAL(msup_slowop_outcome_name(e[1].outcome), "server_error");
    CU_ASSERT_EQUAL(e[1].slow, 0);
    CU_ASSERT(e[1].duration_us < 150000);
    CU_ASSERT_EQUAL(atomic_load(&ring->slow_ops), 1);

    /* Names only: neither the filter's value nor the document's is anywhere in the segment. */
    CU_ASSERT_PTR_NULL(memmem(seg.base, seg.size, SECRET_FILTER, strlen(SECRET_FILTER)));
    CU_ASSERT_PTR_NULL(memmem(seg.base, seg.size, SECRET_DOC, strlen(SECRET_DOC)));
    CU_ASSERT_PTR_NOT_NULL(memmem(seg.base, seg.size, "orders", 6)); /* the search itself works */

    /* The snapshot carries them to the tools, the count too: --json shows
     * the delayed find and the failed insert, and no value. */
    msup_totals_t t;
    CU_ASSERT(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.slow_ops, 1);
    msup_snapshot_t snap;
    CU_ASSERT_FATAL(msup_snapshot_take(&seg, &snap, &error));
    char *json = NULL;
    size_t json_len = 0;
    FILE *out = open_memstream(&json, &json_len);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT(msup_export_json(&snap, out, false));
    fclose(out);
    char want[256];
    snprintf(want, sizeof want,
             "\"cluster\":\"main\",\"slot\":%u,\"pid\":%d,\"time_ns\":", snap.slow_ops[0].slot, (int)getpid());
    CU_ASSERT_PTR_NOT_NULL(strstr(json, want));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"command\":\"find\",\"database\":\"wtest\",\"collection\":\"orders\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"outcome\":\"server_error\",\"slow\":false"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"slow_operations\":1,"));
    CU_ASSERT_PTR_NULL(strstr(json, SECRET_FILTER));
    CU_ASSERT_EQUAL(snap.slow_count, 2);
    free(json);
    msup_snapshot_free(&snap);
    msup_segment_close(&seg);
    CU_ASSERT(mongosup_detach(&h, 1000));
    wfix_stop(&f);
}

/* slow_op_ms = 0: the log is off, a slow operation leaves the ring empty. */
static void test_off(void)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start(&f, "slowoff", "", NULL));
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT(test_peer_command(f.peer, "{\"cmd\":\"delay\",\"ms\":200,\"command\":\"find\",\"times\":1}", NULL, 0));
    CU_ASSERT(run_op(h, find_orders));
    CU_ASSERT(test_peer_command(f.peer, "{\"cmd\":\"fail\",\"command\":\"insert\",\"times\":1,\"code\":2}", NULL, 0));
    CU_ASSERT_FALSE(run_op(h, insert_order));
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_slowlog_t *ring = my_ring(&seg);
    CU_ASSERT_EQUAL(atomic_load(&ring->head), 0);
    CU_ASSERT_EQUAL(atomic_load(&ring->slow_ops), 0);
    msup_totals_t t;
    CU_ASSERT(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.failures[MSUP_FAIL_SERVER], 1); /* counted as ever */
    msup_segment_close(&seg);
    CU_ASSERT(mongosup_detach(&h, 1000));
    wfix_stop(&f);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/worker/slowlog/delayed-and-failed", test_delayed_and_failed},
        {"/worker/slowlog/off", test_off},
        {NULL, NULL},
    };
    return msup_test_main("worker_slowlog", tests, argc, argv);
}
