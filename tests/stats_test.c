/* stats_test.c: histogram maths, the record path, last-error records, and exact totals across processes. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "segment.h"
#include "slots.h"
#include "snapshot.h"
#include "stats.h"
#include "segment_fixture.h"
#include "testmain.h"

static void test_hist_index_bounds(void)
{
    /* Every bucket's bounds map back to it, and buckets tile the line. */
    for (uint32_t i = 0; i + 1 < MSUP_HIST_BUCKETS; i++) {
        uint64_t lo = msup_hist_lower(i), hi = msup_hist_upper(i);
        CU_ASSERT_TRUE_FATAL(lo < hi);
        CU_ASSERT_EQUAL_FATAL(msup_hist_index(lo), i);
        CU_ASSERT_EQUAL_FATAL(msup_hist_index(hi - 1), i);
        CU_ASSERT_EQUAL_FATAL(msup_hist_lower(i + 1), hi);
    }
    CU_ASSERT_EQUAL(msup_hist_index(0), 0);
    CU_ASSERT_EQUAL(msup_hist_index(31), 31);
    CU_ASSERT_EQUAL(msup_hist_index(32), 32);
    /* 60 s is inside the range; anything larger lands in the last bucket. */
    CU_ASSERT_TRUE(msup_hist_index(60ull * 1000000) < MSUP_HIST_BUCKETS - 1);
    CU_ASSERT_EQUAL(msup_hist_index(UINT64_MAX), MSUP_HIST_BUCKETS - 1);
}

static void test_hist_relative_error(void)
{
    /* Bucket width over its lower bound is at most 1/32 (3.125%) everywhere. */
    double worst = 0;
    for (uint32_t i = MSUP_HIST_SUB; i + 1 < MSUP_HIST_BUCKETS; i++) {
        double lo = (double)msup_hist_lower(i), hi = (double)msup_hist_upper(i);
        double rel = (hi - lo) / lo;
        if (rel > worst)
            worst = rel;
    }
    CU_ASSERT_TRUE(worst <= 1.0 / 32 + 1e-12);
    CU_ASSERT_TRUE(msup_hist_lower(MSUP_HIST_BUCKETS - 1) >= 60ull * 1000000);
}

static void test_quantiles(void)
{
    static uint64_t hist[MSUP_HIST_BUCKETS];
    memset(hist, 0, sizeof hist);
    uint64_t max = 0;
    /* 1..10000 us uniformly: p50 ~ 5000, p99 ~ 9900 within a bucket. */
    for (uint64_t v = 1; v <= 10000; v++) {
        hist[msup_hist_index(v)]++;
        max = v;
    }
    uint64_t p50 = msup_hist_quantile(hist, 10000, max, 0.5);
    uint64_t p99 = msup_hist_quantile(hist, 10000, max, 0.99);
    CU_ASSERT_TRUE(p50 >= 5000 && p50 <= 5000 * 1.04);
    CU_ASSERT_TRUE(p99 >= 9900 && p99 <= 10000);
    CU_ASSERT_EQUAL(msup_hist_quantile(hist, 10000, max, 1.0), 10000);
    CU_ASSERT_EQUAL(msup_hist_quantile(hist, 0, 0, 0.5), 0);
}

static msup_segment_t seg;

static void setup_segment(const char *tag, uint32_t workers)
{
    static const char *const names[] = {"users", "analytics", NULL};
    CU_ASSERT_FATAL(msup_test_segment_setup(tag, workers, 2, names, &seg));
}

static void teardown_segment(void)
{
    msup_test_segment_teardown(&seg);
}

static void test_record_op(void)
{
    setup_segment("record", 2);
    msup_stats_t *s = msup_slot_stats(&seg, 0, 1);
    msup_stats_record_op(s, MSUP_OP_WRITE, 100);
    msup_stats_record_op(s, MSUP_OP_WRITE, 5);
    msup_stats_record_op(s, MSUP_OP_READ, 70000000); /* 70 s: beyond the top octave */
    CU_ASSERT_EQUAL(s->ops[MSUP_OP_WRITE], 2);
    CU_ASSERT_EQUAL(s->ops[MSUP_OP_READ], 1);
    CU_ASSERT_EQUAL(s->ops[0] + s->ops[1] + s->ops[2], 3);
    CU_ASSERT_EQUAL(s->hist_sum_us, 70000105);
    CU_ASSERT_EQUAL(s->hist_max_us, 70000000);
    CU_ASSERT_EQUAL(s->hist[msup_hist_index(100)], 1);
    CU_ASSERT_EQUAL(s->hist[MSUP_HIST_BUCKETS - 1], 1);
    CU_ASSERT_TRUE(s->hist_octaves & (1u << (msup_hist_index(100) / MSUP_HIST_SUB)));
    teardown_segment();
}

static void test_last_error_roundtrip(void)
{
    msup_last_error_t rec, out;
    memset(&rec, 0, sizeof rec);
    CU_ASSERT_TRUE(msup_last_error_read(&rec, &out));
    CU_ASSERT_EQUAL(out.time_ns, 0);
    char longmsg[300];
    memset(longmsg, 'a', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    msup_last_error_write(&rec, MSUP_FAIL_AUTH, 1, 11, longmsg);
    CU_ASSERT_TRUE(msup_last_error_read(&rec, &out));
    CU_ASSERT_EQUAL(out.code, 11);
    CU_ASSERT_EQUAL(out.fail_class, MSUP_FAIL_AUTH);
    CU_ASSERT_EQUAL(strlen(out.message), MSUP_ERRMSG_MAX - 1);
    CU_ASSERT_EQUAL(rec.seq % 2, 0);
    /* A writer holding the lock makes others skip, never wait. */
    atomic_fetch_add(&rec.seq, 1);
    msup_last_error_write(&rec, MSUP_FAIL_OTHER, 0, 99, "skipped");
    CU_ASSERT_FALSE(msup_last_error_read(&rec, &out));
    atomic_fetch_add(&rec.seq, 1);
    CU_ASSERT_TRUE(msup_last_error_read(&rec, &out));
    CU_ASSERT_EQUAL(out.code, 11);
}

/* Threads write distinct messages; a reader must never see a torn record. */
/* A message cut to the record's size never ends inside a UTF-8 character,
 * and invalid bytes are stored as U+FFFD (so every reader gets valid text). */
static void test_last_error_utf8(void)
{
    msup_last_error_t rec, out;
    memset(&rec, 0, sizeof rec);
    char msg[200];
    /* 108 ASCII + a 3-byte character = 111 bytes: fits exactly. */
    memset(msg, 'a', 108);
    snprintf(msg + 108, sizeof msg - 108, "\xe2\x82\xac");
    msup_last_error_write(&rec, MSUP_FAIL_SERVER, 17, 2, msg);
    CU_ASSERT_TRUE(msup_last_error_read(&rec, &out));
    CU_ASSERT_EQUAL(strlen(out.message), 111);
    CU_ASSERT_STRING_EQUAL(out.message, msg);
    /* 109 ASCII + the character: it would straddle the end, so it goes. */
    memset(msg, 'b', 109);
    snprintf(msg + 109, sizeof msg - 109, "\xe2\x82\xac and more");
    msup_last_error_write(&rec, MSUP_FAIL_SERVER, 17, 2, msg);
    CU_ASSERT_TRUE(msup_last_error_read(&rec, &out));
    CU_ASSERT_EQUAL(strlen(out.message), 109);
    CU_ASSERT_EQUAL(strspn(out.message, "b"), 109);
    msup_last_error_write(&rec, MSUP_FAIL_SERVER, 17, 2, "bad \xc3( and \x9b");
    CU_ASSERT_TRUE(msup_last_error_read(&rec, &out));
    CU_ASSERT_STRING_EQUAL(out.message, "bad \xef\xbf\xbd( and \xef\xbf\xbd");
}

static msup_last_error_t shared_rec;
static _Atomic int stop_writers;

static void *error_writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char msg[MSUP_ERRMSG_MAX];
    memset(msg, 'A' + id, sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    while (!atomic_load(&stop_writers)) {
        msup_last_error_write(&shared_rec, MSUP_FAIL_NETWORK, 2, (uint32_t)id, msg);
        sched_yield(); /* errors are bursts, not a saturated loop */
    }
    return NULL;
}

static void test_last_error_no_tearing(void)
{
    memset(&shared_rec, 0, sizeof shared_rec);
    atomic_store(&stop_writers, 0);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, error_writer, (void *)(intptr_t)i);
    /* Start reading once a writer has written (threads start slowly under valgrind). */
    while (atomic_load(&shared_rec.seq) < 2)
        sched_yield();
    int reads = msup_test_under_valgrind() ? 2000 : 200000, torn = 0, ok = 0;
    for (int i = 0; i < reads; i++) {
        msup_last_error_t out;
        if (!msup_last_error_read(&shared_rec, &out) || out.time_ns == 0)
            continue;
        ok++;
        char want = (char)('A' + out.code);
        for (size_t k = 0; k + 1 < MSUP_ERRMSG_MAX; k++)
            if (out.message[k] != want) {
                torn++;
                break;
            }
    }
    atomic_store(&stop_writers, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    CU_ASSERT_EQUAL(torn, 0);
    CU_ASSERT_TRUE(ok > 0);
}

/* 16+ processes x 2 threads each record into their own slot; the aggregate
 * is exact, by class and in the histogram. */
enum { PROCS = 16, THREADS = 2 };
static long ops_per_thread;

typedef struct rec_arg {
    msup_stats_t *stats[2];
    int thread;
} rec_arg_t;

static void *recorder(void *p)
{
    rec_arg_t *a = p;
    for (long i = 0; i < ops_per_thread; i++) {
        msup_stats_t *s = a->stats[i & 1];
        msup_stats_record_op(s, (enum msup_op_class)(i % 3), (uint64_t)(i % 5000) + 1);
        msup_stats_count(&s->checkouts, 1);
        if (i % 1000 == 0)
            msup_stats_record_failure(s, MSUP_FAIL_TIMEOUT, 2, 4, "timeout");
    }
    return NULL;
}

static void test_multiprocess_exact(void)
{
    ops_per_thread = msup_test_under_valgrind() ? 2000 : 200000;
    setup_segment("multi", PROCS + 2);
    pid_t kids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        kids[p] = fork();
        if (kids[p] == 0) {
            mongosup_error_t err;
            int idx = msup_slot_claim(&seg, getpid(), "rec", &err);
            if (idx < 0)
                _exit(2);
            rec_arg_t args[THREADS];
            pthread_t t[THREADS];
            for (int k = 0; k < THREADS; k++) {
                args[k].stats[0] = msup_slot_stats(&seg, (uint32_t)idx, 0);
                args[k].stats[1] = msup_slot_stats(&seg, (uint32_t)idx, 1);
                args[k].thread = k;
                pthread_create(&t[k], NULL, recorder, &args[k]);
            }
            for (int k = 0; k < THREADS; k++)
                pthread_join(t[k], NULL);
            /* Half the workers exit cleanly, half just vanish: both must count. */
            if (p % 2 == 0)
                msup_slot_release(&seg, (uint32_t)idx);
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int status;
        waitpid(kids[p], &status, 0);
        CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    long per_cluster = (long)PROCS * THREADS * ops_per_thread / 2;
    msup_snapshot_t snap;
    mongosup_error_t err;
    for (int round = 0; round < 2; round++) {
        /* Round 0: live slots; round 1: after the reaper folded them all. */
        CU_ASSERT_FATAL(msup_snapshot_take(&seg, &snap, &err));
        CU_ASSERT_EQUAL_FATAL(snap.cluster_count, 2);
        for (uint32_t c = 0; c < 2; c++) {
            const msup_totals_t *t = &snap.clusters[c].totals;
            CU_ASSERT_EQUAL((long)(t->ops[0] + t->ops[1] + t->ops[2]), per_cluster);
            CU_ASSERT_EQUAL((long)t->hist_count, per_cluster);
            CU_ASSERT_EQUAL((long)t->checkouts, per_cluster);
            uint64_t sum = 0;
            for (uint32_t b = 0; b < MSUP_HIST_BUCKETS; b++)
                sum += t->hist[b];
            CU_ASSERT_EQUAL((long)sum, per_cluster);
            /* Cluster 0 records the even i, cluster 1 the odd ones. */
            uint64_t want_max = 0;
            for (long i = (long)c; i < ops_per_thread; i += 2)
                if ((uint64_t)(i % 5000) + 1 > want_max)
                    want_max = (uint64_t)(i % 5000) + 1;
            CU_ASSERT_EQUAL(t->hist_max_us, want_max);
            /* Failures are recorded on even i: all on cluster 0. */
            CU_ASSERT_EQUAL((long)t->failures[MSUP_FAIL_TIMEOUT],
                            c == 0 ? (long)PROCS * THREADS * ((ops_per_thread + 999) / 1000) : 0);
        }
        CU_ASSERT_EQUAL(snap.worker_count, round == 0 ? PROCS : 0);
        msup_snapshot_free(&snap);
        if (round == 0)
            CU_ASSERT_EQUAL(msup_slots_reap_all(&seg), PROCS);
    }
    teardown_segment();
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/stats/hist/index-and-bounds", test_hist_index_bounds},
        {"/stats/hist/relative-error", test_hist_relative_error},
        {"/stats/hist/quantiles", test_quantiles},
        {"/stats/record/op", test_record_op},
        {"/stats/last-error/roundtrip", test_last_error_roundtrip},
        {"/stats/last-error/no-tearing", test_last_error_no_tearing},
        {"/stats/last-error/utf8", test_last_error_utf8},
        {"/stats/multiprocess/16x2-exact-totals", test_multiprocess_exact},
        {NULL, NULL},
    };
    return msup_test_main("stats", tests, argc, argv);
}
