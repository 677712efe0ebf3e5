/* worker_classify_test.c: unit tests of error and command classification, the transient predicate, the client map, the reconnect stagger. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "clientmap.h"
#include "testmain.h"
#include "worker.h"

static bson_error_t err(uint32_t domain, uint32_t code, const char *msg)
{
    bson_error_t e;
    bson_set_error(&e, domain, code, "%s", msg);
    return e;
}

static void test_error_classes(void)
{
    bson_error_t e = err(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, "Failed to read 4 bytes: socket error or timeout");
    CU_ASSERT_EQUAL(msup_classify_error(&e), MSUP_FAIL_NETWORK);
    /* The same error after socketTimeoutMS is a timeout; early, a network error. */
    CU_ASSERT_EQUAL(msup_classify_failed_command(&e, 299000, 300), MSUP_FAIL_TIMEOUT);
    CU_ASSERT_EQUAL(msup_classify_failed_command(&e, 2000, 300), MSUP_FAIL_NETWORK);
    e = err(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_CONNECT, "connect");
    CU_ASSERT_EQUAL(msup_classify_failed_command(&e, 999000, 300), MSUP_FAIL_NETWORK);
    e = err(MONGOC_ERROR_PROTOCOL, MONGOC_ERROR_PROTOCOL_INVALID_REPLY, "bad reply");
    CU_ASSERT_EQUAL(msup_classify_error(&e), MSUP_FAIL_NETWORK);
    e = err(MONGOC_ERROR_PROTOCOL, MONGOC_ERROR_PROTOCOL_BAD_WIRE_VERSION, "old server");
    CU_ASSERT_EQUAL(msup_classify_error(&e), MSUP_FAIL_OTHER);
    e = err(MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_FAILURE, "No suitable servers");
    CU_ASSERT_EQUAL(msup_classify_error(&e), MSUP_FAIL_SERVER_SELECTION);
    e = err(MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_AUTHENTICATE, "auth");
    CU_ASSERT_EQUAL(msup_classify_error(&e), MSUP_FAIL_AUTH);
    e = err(MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_TOO_BIG, "big");
    CU_ASSERT_EQUAL(msup_classify_error(&e), MSUP_FAIL_OTHER);
    e = err(MONGOC_ERROR_SERVER, 11000, "dup");
    CU_ASSERT_EQUAL(msup_classify_error(&e), MSUP_FAIL_SERVER);
    e = err(MONGOC_ERROR_WRITE_CONCERN, 64, "wc");
    CU_ASSERT_EQUAL(msup_classify_error(&e), MSUP_FAIL_SERVER);
    e = err(MONGOC_ERROR_BSON, 1, "bson");
    CU_ASSERT_EQUAL(msup_classify_error(&e), MSUP_FAIL_OTHER);
}

static void test_command_classes(void)
{
    CU_ASSERT_EQUAL(msup_classify_command("find"), MSUP_OP_READ);
    CU_ASSERT_EQUAL(msup_classify_command("getMore"), MSUP_OP_READ);
    CU_ASSERT_EQUAL(msup_classify_command("aggregate"), MSUP_OP_READ);
    CU_ASSERT_EQUAL(msup_classify_command("count"), MSUP_OP_READ);
    CU_ASSERT_EQUAL(msup_classify_command("insert"), MSUP_OP_WRITE);
    CU_ASSERT_EQUAL(msup_classify_command("update"), MSUP_OP_WRITE);
    CU_ASSERT_EQUAL(msup_classify_command("delete"), MSUP_OP_WRITE);
    CU_ASSERT_EQUAL(msup_classify_command("findAndModify"), MSUP_OP_WRITE);
    CU_ASSERT_EQUAL(msup_classify_command("ping"), MSUP_OP_COMMAND);
    CU_ASSERT_EQUAL(msup_classify_command("endSessions"), MSUP_OP_COMMAND);
    CU_ASSERT_EQUAL(msup_classify_command("createIndexes"), MSUP_OP_COMMAND);
    CU_ASSERT_EQUAL(msup_classify_command(NULL), MSUP_OP_COMMAND);
}

static void test_transient(void)
{
    bson_error_t e = err(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, "closed");
    CU_ASSERT(msup_error_is_transient(&e, NULL));
    e = err(MONGOC_ERROR_SERVER, 10107, "not primary");
    CU_ASSERT(msup_error_is_transient(&e, NULL));
    e = err(MONGOC_ERROR_SERVER, 91, "shutdown");
    CU_ASSERT(msup_error_is_transient(&e, NULL));
    e = err(MONGOC_ERROR_WRITE_CONCERN, 11602, "interrupted");
    CU_ASSERT(msup_error_is_transient(&e, NULL));
    e = err(MONGOC_ERROR_SERVER, 11000, "dup");
    CU_ASSERT_FALSE(msup_error_is_transient(&e, NULL));
    bson_t *labelled = BCON_NEW("ok", BCON_INT32(0), "errorLabels", "[", "TransientTransactionError", "]");
    CU_ASSERT(msup_error_is_transient(&e, labelled));
    bson_destroy(labelled);
    labelled = BCON_NEW("ok", BCON_INT32(0), "errorLabels", "[", "RetryableWriteError", "]");
    CU_ASSERT(msup_error_is_transient(&e, labelled));
    bson_destroy(labelled);
    bson_t *other = BCON_NEW("ok", BCON_INT32(0), "errorLabels", "[", "NoWritesPerformed", "]");
    CU_ASSERT_FALSE(msup_error_is_transient(&e, other));
    bson_destroy(other);
    e = err(MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_FAILURE, "none");
    CU_ASSERT_FALSE(msup_error_is_transient(&e, NULL));
    e = err(MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_AUTHENTICATE, "auth");
    CU_ASSERT_FALSE(msup_error_is_transient(&e, NULL));
}

static void test_clientmap(void)
{
    msup_clientmap_t map;
    CU_ASSERT_FATAL(msup_clientmap_init(&map, 16));
    struct msup_pool *pa = (struct msup_pool *)(uintptr_t)0x1000, *pb = (struct msup_pool *)(uintptr_t)0x2000;
    char clients[40];
    for (int i = 0; i < 32; i++)
        CU_ASSERT(msup_clientmap_put(&map, &clients[i], i % 2 ? pa : pb));
    for (int i = 0; i < 32; i++)
        CU_ASSERT_PTR_EQUAL(msup_clientmap_get(&map, &clients[i]), i % 2 ? pa : pb);
    CU_ASSERT_PTR_NULL(msup_clientmap_get(&map, &clients[35]));
    msup_clientmap_remove(&map, &clients[3]);
    CU_ASSERT_PTR_NULL(msup_clientmap_get(&map, &clients[3]));
    CU_ASSERT_PTR_EQUAL(msup_clientmap_get(&map, &clients[5]), pa);
    msup_clientmap_remove_pool(&map, pa);
    for (int i = 0; i < 32; i++)
        CU_ASSERT_PTR_EQUAL(msup_clientmap_get(&map, &clients[i]), i % 2 ? NULL : pb);
    /* Tombstones are reused: churn never fills the map. */
    for (int round = 0; round < 1000; round++) {
        CU_ASSERT_FATAL(msup_clientmap_put(&map, &clients[33], pa));
        msup_clientmap_remove(&map, &clients[33]);
    }
    CU_ASSERT_PTR_EQUAL(msup_clientmap_get(&map, &clients[0]), pb);
    msup_clientmap_free(&map);
}

/* A client destroyed and a new one created at the same address: whatever
 * stale entry is left, the map must give the new pool and forget it once. */
static void test_clientmap_address_reused(void)
{
    msup_clientmap_t map;
    CU_ASSERT_FATAL(msup_clientmap_init(&map, 4));
    struct msup_pool *pa = (struct msup_pool *)(uintptr_t)0x1000, *pb = (struct msup_pool *)(uintptr_t)0x2000;
    char client;
    CU_ASSERT(msup_clientmap_put(&map, &client, pa));
    CU_ASSERT(msup_clientmap_put(&map, &client, pb)); /* the same address, another pool */
    CU_ASSERT_PTR_EQUAL(msup_clientmap_get(&map, &client), pb);
    msup_clientmap_remove_pool(&map, pa); /* the old pool goes: the new client stays */
    CU_ASSERT_PTR_EQUAL(msup_clientmap_get(&map, &client), pb);
    msup_clientmap_remove(&map, &client);
    CU_ASSERT_PTR_NULL(msup_clientmap_get(&map, &client));
    msup_clientmap_free(&map);
}

/* Clusters insert and remove at the same time (each under its own mutex):
 * every lookup of a live client finds its own pool. */
typedef struct map_thread {
    msup_clientmap_t *map;
    char *clients; /* 32 each */
    struct msup_pool *pool;
    int bad;
} map_thread_t;

static void *map_churn(void *arg)
{
    map_thread_t *t = arg;
    int rounds = msup_test_under_valgrind() ? 200 : 5000;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 32; i++)
            if (!msup_clientmap_put(t->map, &t->clients[i], t->pool))
                t->bad++;
        for (int i = 0; i < 32; i++)
            if (msup_clientmap_get(t->map, &t->clients[i]) != t->pool)
                t->bad++;
        if (r % 2 == 0) {
            for (int i = 0; i < 32; i++)
                msup_clientmap_remove(t->map, &t->clients[i]);
        } else {
            msup_clientmap_remove_pool(t->map, t->pool);
        }
        for (int i = 0; i < 32; i++)
            if (msup_clientmap_get(t->map, &t->clients[i]) != NULL)
                t->bad++;
    }
    return NULL;
}

static void test_clientmap_threads(void)
{
    enum { THREADS = 8 };
    msup_clientmap_t map;
    CU_ASSERT_FATAL(msup_clientmap_init(&map, THREADS * 32));
    static char clients[THREADS][32];
    map_thread_t t[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        t[i] = (map_thread_t){.map = &map, .clients = clients[i], .pool = (struct msup_pool *)(uintptr_t)(0x1000 * (i + 1))};
        pthread_create(&th[i], NULL, map_churn, &t[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(t[i].bad, 0);
    }
    msup_clientmap_free(&map);
}

static void test_reconnect_delay(void)
{
    CU_ASSERT_EQUAL(msup_reconnect_delay_ns(0, 2000), 0);
    CU_ASSERT_EQUAL(msup_reconnect_delay_ns(5, 0), 0);
    /* Any 8 consecutive slots: within the window, no two closer than 5% of it. */
    uint64_t d[8];
    for (uint32_t s = 0; s < 8; s++) {
        d[s] = msup_reconnect_delay_ns(s + 100, 1000);
        CU_ASSERT(d[s] < 1000ull * 1000000);
    }
    for (int a = 0; a < 8; a++)
        for (int b = a + 1; b < 8; b++) {
            uint64_t gap = d[a] > d[b] ? d[a] - d[b] : d[b] - d[a];
            CU_ASSERT(gap >= 50ull * 1000000);
        }
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/worker/classify/errors", test_error_classes},
        {"/worker/classify/commands", test_command_classes},
        {"/worker/classify/transient", test_transient},
        {"/worker/clientmap/put-get-remove", test_clientmap},
        {"/worker/clientmap/address-reused", test_clientmap_address_reused},
        {"/worker/clientmap/8-threads", test_clientmap_threads},
        {"/worker/reconnect/delay-spread", test_reconnect_delay},
        {NULL, NULL},
    };
    return msup_test_main("worker_classify", tests, argc, argv);
}
