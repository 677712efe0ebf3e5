/* slowlog_test.c: the slow-operation ring: order and wraparound, 8 writers against a reader without a torn entry, forged entries read safely. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "slowlog.h"
#include "testmain.h"

static msup_slowlog_t *new_ring(void)
{
    msup_slowlog_t *r = aligned_alloc(64, sizeof *r);
    memset(r, 0, sizeof *r);
    return r;
}

static void record(msup_slowlog_t *r, const char *cmd, uint64_t us, uint32_t outcome, bool slow)
{
    msup_slowop_in_t op = {.command = cmd, .database = "app", .collection = "orders", .server = "db1:27017",
                           .duration_us = us, .outcome = outcome, .slow = slow};
    msup_slowlog_record(r, &op);
}

static void test_order_and_wrap(void)
{
    msup_slowlog_t *r = new_ring();
    msup_slowop_t out[MSUP_SLOWLOG_ENTRIES];
    CU_ASSERT_EQUAL(msup_slowlog_read(r, 0, out, MSUP_SLOWLOG_ENTRIES), 0); /* never written */
    record(r, "find", 150000, MSUP_SLOWOP_OK, true);
    record(r, "insert", 20, 1 + MSUP_FAIL_SERVER, false);
    CU_ASSERT_EQUAL_FATAL(msup_slowlog_read(r, 0, out, MSUP_SLOWLOG_ENTRIES), 2);
    CU_ASSERT_STRING_EQUAL(out[0].command, "find");
    CU_ASSERT_STRING_EQUAL(out[0].database, "app");
    CU_ASSERT_STRING_EQUAL(out[0].collection, "orders");
    CU_ASSERT_STRING_EQUAL(out[0].server, "db1:27017");
    CU_ASSERT_EQUAL(out[0].duration_us, 150000);
    CU_ASSERT_EQUAL(out[0].slow, 1);
    CU_ASSERT(out[0].time_ns > 0);
    CU_ASSERT_STRING_EQUAL(msup_slowop_outcome_name(out[1].outcome), "server_error");
    CU_ASSERT_EQUAL(out[1].slow, 0);
    CU_ASSERT_EQUAL(atomic_load(&r->slow_ops), 1); /* the failed one is logged, not counted slow */

    /* 20 more: the ring keeps the newest MSUP_SLOWLOG_ENTRIES, oldest first. */
    for (int i = 0; i < 20; i++) {
        char cmd[16];
        snprintf(cmd, sizeof cmd, "cmd%d", i);
        record(r, cmd, (uint64_t)i, MSUP_SLOWOP_OK, true);
    }
    CU_ASSERT_EQUAL_FATAL(msup_slowlog_read(r, 0, out, MSUP_SLOWLOG_ENTRIES), MSUP_SLOWLOG_ENTRIES);
    for (uint32_t i = 0; i < MSUP_SLOWLOG_ENTRIES; i++) {
        CU_ASSERT_EQUAL(out[i].ordinal, 22 - MSUP_SLOWLOG_ENTRIES + 1 + i);
        CU_ASSERT_EQUAL(out[i].duration_us, 20 - MSUP_SLOWLOG_ENTRIES + i);
    }
    /* Only what is newer than an ordinal already seen. */
    CU_ASSERT_EQUAL(msup_slowlog_read(r, 20, out, MSUP_SLOWLOG_ENTRIES), 2);
    CU_ASSERT_EQUAL(out[0].ordinal, 21);
    CU_ASSERT_EQUAL(msup_slowlog_read(r, 0, out, 3), 3); /* cap respected */
    CU_ASSERT_EQUAL(atomic_load(&r->head), 22);
    CU_ASSERT_EQUAL(atomic_load(&r->slow_ops), 21);
    CU_ASSERT_EQUAL(atomic_load(&r->dropped), 0);
    free(r);
}

/* Long names are cut on a character boundary, inside the entry. */
static void test_long_names(void)
{
    msup_slowlog_t *r = new_ring();
    char longname[200];
    memset(longname, 'x', sizeof longname);
    memcpy(longname + 46, "\xc3\xa9", 2); /* an e-acute across the 47-byte cut */
    longname[sizeof longname - 1] = '\0';
    msup_slowop_in_t op = {.command = longname, .collection = longname, .duration_us = 1, .slow = true};
    msup_slowlog_record(r, &op);
    msup_slowop_t out[1];
    CU_ASSERT_EQUAL_FATAL(msup_slowlog_read(r, 0, out, 1), 1);
    CU_ASSERT_EQUAL(strlen(out[0].command), MSUP_SLOWLOG_COMMAND_MAX - 1);
    CU_ASSERT_EQUAL(strlen(out[0].collection), 46); /* the cut drops the half character */
    CU_ASSERT_STRING_EQUAL(out[0].database, "");    /* NULL stored as "" */
    free(r);
}

/* Every field of a record derives from one number: a reader that mixed two
 * records would find them disagree. */
#define WRITERS 8
static msup_slowlog_t *shared;
static _Atomic bool writers_done;
static long per_writer = 100000;

static void *writer(void *arg)
{
    long t = (long)(intptr_t)arg;
    for (long i = 0; i < per_writer; i++) {
        uint64_t v = (uint64_t)t * 10000000ull + (uint64_t)i;
        char cmd[24], db[32], coll[48], server[48];
        snprintf(cmd, sizeof cmd, "c%llu", (unsigned long long)v);
        snprintf(db, sizeof db, "d%llu", (unsigned long long)v);
        snprintf(coll, sizeof coll, "collection-%llu", (unsigned long long)v);
        snprintf(server, sizeof server, "host%llu:27017", (unsigned long long)v);
        msup_slowop_in_t op = {.command = cmd, .database = db, .collection = coll, .server = server,
                               .duration_us = v, .outcome = (uint32_t)(v % 9), .slow = (v & 1) != 0};
        msup_slowlog_record(shared, &op);
    }
    return NULL;
}

static bool consistent(const msup_slowop_t *e)
{
    char want[64];
    unsigned long long v = (unsigned long long)e->duration_us;
    snprintf(want, sizeof want, "c%llu", v);
    if (strcmp(e->command, want) != 0)
        return false;
    snprintf(want, sizeof want, "d%llu", v);
    if (strcmp(e->database, want) != 0)
        return false;
    snprintf(want, sizeof want, "collection-%llu", v);
    if (strcmp(e->collection, want) != 0)
        return false;
    snprintf(want, sizeof want, "host%llu:27017", v);
    return strcmp(e->server, want) == 0 && e->outcome == v % 9 && e->slow == (v & 1) && e->ordinal > 0;
}

static void test_concurrent_no_torn_entry(void)
{
    if (msup_test_under_valgrind())
        per_writer = 5000;
    shared = new_ring();
    atomic_store(&writers_done, false);
    pthread_t tid[WRITERS];
    for (long t = 0; t < WRITERS; t++)
        CU_ASSERT_FATAL(pthread_create(&tid[t], NULL, writer, (void *)(intptr_t)t) == 0);
    long reads = 0, entries = 0, torn = 0;
    msup_slowop_t out[MSUP_SLOWLOG_ENTRIES];
    bool done = false;
    while (!done) {
        done = atomic_load(&writers_done);
        uint32_t n = msup_slowlog_read(shared, 0, out, MSUP_SLOWLOG_ENTRIES);
        reads++;
        for (uint32_t i = 0; i < n; i++) {
            entries++;
            if (!consistent(&out[i])) {
                if (torn++ == 0)
                    fprintf(stderr, "\ntorn entry: %s %s %s %s %llu\n", out[i].command, out[i].database,
                            out[i].collection, out[i].server, (unsigned long long)out[i].duration_us);
            }
            if (i > 0 && out[i].ordinal <= out[i - 1].ordinal)
                torn++;
        }
        if (!done && atomic_load(&shared->head) >= (uint64_t)WRITERS * per_writer)
            atomic_store(&writers_done, true);
    }
    for (int t = 0; t < WRITERS; t++)
        pthread_join(tid[t], NULL);
    CU_ASSERT_EQUAL(torn, 0);
    CU_ASSERT(entries > 0);
    CU_ASSERT_EQUAL(atomic_load(&shared->head), (uint64_t)WRITERS * per_writer);
    /* Every record was either written or counted as given up. */
    uint64_t dropped = atomic_load(&shared->dropped);
    CU_ASSERT(dropped < (uint64_t)WRITERS * per_writer);
    CU_ASSERT_EQUAL_FATAL(msup_slowlog_read(shared, 0, out, MSUP_SLOWLOG_ENTRIES), MSUP_SLOWLOG_ENTRIES);
    for (int i = 0; i < MSUP_SLOWLOG_ENTRIES; i++)
        CU_ASSERT(consistent(&out[i]));
    printf("(%ld reads, %ld entries, %llu dropped) ", reads, entries, (unsigned long long)dropped);
    free(shared);
}

/* A forged ring (anyone who can write the segment): strings without NUL or
 * with invalid UTF-8, an outcome out of range, an odd sequence forever. */
static void test_forged_entries(void)
{
    msup_slowlog_t *r = new_ring();
    for (int i = 0; i < MSUP_SLOWLOG_ENTRIES; i++) {
        msup_slowop_t *e = &r->entry[i];
        memset(e, 0xff, sizeof *e);
        atomic_store(&e->seq, i == 3 ? 7u : 2u); /* entry 3: a writer that never finishes */
        e->ordinal = (uint64_t)i + 1;
    }
    atomic_store(&r->head, 8);
    msup_slowop_t out[MSUP_SLOWLOG_ENTRIES];
    uint32_t n = msup_slowlog_read(r, 0, out, MSUP_SLOWLOG_ENTRIES);
    CU_ASSERT_EQUAL(n, MSUP_SLOWLOG_ENTRIES - 1);
    for (uint32_t i = 0; i < n; i++) {
        CU_ASSERT(strlen(out[i].command) < sizeof out[i].command);
        CU_ASSERT(strlen(out[i].server) < sizeof out[i].server);
        CU_ASSERT(strchr(out[i].collection, '\xff') == NULL); /* invalid bytes replaced */
        CU_ASSERT_STRING_EQUAL(msup_slowop_outcome_name(out[i].outcome), "other");
        CU_ASSERT(out[i].slow <= 1);
    }
    free(r);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/slowlog/order-and-wrap", test_order_and_wrap},
        {"/slowlog/long-names", test_long_names},
        {"/slowlog/concurrent-no-torn-entry", test_concurrent_no_torn_entry},
        {"/slowlog/forged-entries", test_forged_entries},
        {NULL, NULL},
    };
    return msup_test_main("slowlog", tests, argc, argv);
}
