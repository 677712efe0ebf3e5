/* slots_test.c: slot claims under contention, reaping exactly once, dead and reused pids, interrupted folds. */
#include <signal.h>
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

static msup_segment_t seg;

static void setup(const char *tag, uint32_t workers)
{
    static const char *const names[] = {"users", NULL};
    CU_ASSERT_FATAL(msup_test_segment_setup(tag, workers, 2, names, &seg));
}

static void teardown(void)
{
    msup_test_segment_teardown(&seg);
}

static uint64_t total_ops(void)
{
    msup_snapshot_t snap;
    mongosup_error_t err;
    if (!msup_snapshot_take(&seg, &snap, &err))
        return UINT64_MAX;
    uint64_t n = snap.cluster_count ? msup_totals_ops(&snap.clusters[0].totals) : 0;
    msup_snapshot_free(&snap);
    return n;
}

static void test_claim_race(void)
{
    enum { SLOTS = 8, PROCS = 24 };
    setup("claim", SLOTS);
    int pipefd[2];
    CU_ASSERT_FATAL(pipe(pipefd) == 0);
    pid_t kids[PROCS];
    for (int i = 0; i < PROCS; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            char go;
            close(pipefd[1]);
            if (read(pipefd[0], &go, 1) < 0)
                _exit(3);
            mongosup_error_t err;
            int idx = msup_slot_claim(&seg, getpid(), "race", &err);
            if (idx < 0)
                _exit(err.code == MONGOSUP_E_NO_SLOT ? 100 : 2);
            sleep(1); /* hold the slot until every claimant has tried */
            _exit(idx);
        }
    }
    close(pipefd[0]);
    close(pipefd[1]); /* everyone starts at once */
    int owners[SLOTS] = {0}, refused = 0;
    for (int i = 0; i < PROCS; i++) {
        int status;
        waitpid(kids[i], &status, 0);
        CU_ASSERT_FATAL(WIFEXITED(status));
        int code = WEXITSTATUS(status);
        if (code == 100)
            refused++;
        else if (code < SLOTS)
            owners[code]++;
        else
            CU_FAIL("claimant failed unexpectedly");
    }
    for (int s = 0; s < SLOTS; s++)
        CU_ASSERT_EQUAL(owners[s], 1);
    CU_ASSERT_EQUAL(refused, PROCS - SLOTS);
    /* All claimants are dead now: the reaper frees every slot. */
    CU_ASSERT_EQUAL(msup_slots_reap_all(&seg), SLOTS);
    for (int s = 0; s < SLOTS; s++)
        CU_ASSERT_EQUAL(msup_segment_slot(&seg, (uint32_t)s)->state, MSUP_SLOT_FREE);
    teardown();
}

static void test_reap_exactly_once(void)
{
    setup("reap", 4);
    mongosup_error_t err;
    int a = msup_slot_claim(&seg, getpid(), "a", &err);
    int b = msup_slot_claim(&seg, getpid(), "b", &err);
    CU_ASSERT_FATAL(a >= 0 && b >= 0 && a != b);
    for (int i = 0; i < 10; i++)
        msup_stats_record_op(msup_slot_stats(&seg, (uint32_t)a, 0), MSUP_OP_READ, 10);
    for (int i = 0; i < 5; i++)
        msup_stats_record_op(msup_slot_stats(&seg, (uint32_t)b, 0), MSUP_OP_WRITE, 10);
    CU_ASSERT_EQUAL(total_ops(), 15);
    /* A live slot of a live process is left alone. */
    CU_ASSERT_EQUAL(msup_slot_reap(&seg, (uint32_t)a, NULL), MSUP_REAP_NONE);
    msup_slot_release(&seg, (uint32_t)a);
    CU_ASSERT_EQUAL(total_ops(), 15);
    pid_t pid = 0;
    CU_ASSERT_EQUAL(msup_slot_reap(&seg, (uint32_t)a, &pid), MSUP_REAP_EXITED);
    CU_ASSERT_EQUAL(pid, getpid());
    CU_ASSERT_EQUAL(total_ops(), 15);
    CU_ASSERT_EQUAL(msup_slot_reap(&seg, (uint32_t)a, NULL), MSUP_REAP_NONE);
    CU_ASSERT_EQUAL(total_ops(), 15);
    CU_ASSERT_EQUAL(atomic_load(&seg.retired->slots_reaped[atomic_load(&seg.retired->active)]), 1);
    /* The freed slot is claimed again: counting starts at zero there. */
    int c = msup_slot_claim(&seg, getpid(), "c", &err);
    CU_ASSERT_EQUAL(c, a);
    CU_ASSERT_EQUAL(msup_slot_stats(&seg, (uint32_t)c, 0)->ops[MSUP_OP_READ], 0);
    msup_stats_record_op(msup_slot_stats(&seg, (uint32_t)c, 0), MSUP_OP_READ, 10);
    CU_ASSERT_EQUAL(total_ops(), 16);
    msup_slot_release(&seg, (uint32_t)b);
    msup_slot_release(&seg, (uint32_t)c);
    CU_ASSERT_EQUAL(msup_slots_reap_all(&seg), 2);
    CU_ASSERT_EQUAL(total_ops(), 16);
    teardown();
}

static void test_reap_dead_and_pid_reuse(void)
{
    setup("dead", 4);
    pid_t kid = fork();
    if (kid == 0) {
        mongosup_error_t err;
        int idx = msup_slot_claim(&seg, getpid(), "doomed", &err);
        msup_stats_record_op(msup_slot_stats(&seg, (uint32_t)idx, 0), MSUP_OP_COMMAND, 7);
        msup_stats_gauge(&msup_slot_stats(&seg, (uint32_t)idx, 0)->pool_in_use, 3);
        raise(SIGKILL);
    }
    int status;
    waitpid(kid, &status, 0);
    CU_ASSERT_TRUE(WIFSIGNALED(status));
    CU_ASSERT_EQUAL(total_ops(), 1);
    CU_ASSERT_EQUAL(msup_slots_reap_all(&seg), 1);
    CU_ASSERT_EQUAL(total_ops(), 1);

    /* A live pid whose start time differs is a reused pid: dead slot. */
    mongosup_error_t err;
    int idx = msup_slot_claim(&seg, getpid(), "reused", &err);
    CU_ASSERT_FALSE(msup_slot_owner_dead(msup_segment_slot(&seg, (uint32_t)idx)));
    msup_segment_slot(&seg, (uint32_t)idx)->start_time += 1;
    CU_ASSERT_TRUE(msup_slot_owner_dead(msup_segment_slot(&seg, (uint32_t)idx)));
    CU_ASSERT_EQUAL(msup_slot_reap(&seg, (uint32_t)idx, NULL), MSUP_REAP_DEAD);
    teardown();
}

static void test_budget_tokens_returned_once(void)
{
    setup("tokens", 4);
    mongosup_error_t err;
    int idx = msup_slot_claim(&seg, getpid(), "t", &err);
    msup_reg_row_t *row = msup_segment_reg(&seg, 0);
    atomic_store(&row->budget_in_use, 7);
    atomic_store(&msup_slot_stats(&seg, (uint32_t)idx, 0)->budget_tokens, 5);
    msup_slot_release(&seg, (uint32_t)idx);
    CU_ASSERT_EQUAL(msup_slot_reap(&seg, (uint32_t)idx, NULL), MSUP_REAP_EXITED);
    CU_ASSERT_EQUAL(atomic_load(&row->budget_in_use), 2);
    CU_ASSERT_EQUAL(msup_slot_reap(&seg, (uint32_t)idx, NULL), MSUP_REAP_NONE);
    CU_ASSERT_EQUAL(atomic_load(&row->budget_in_use), 2);
    teardown();
}

/* A supervisor that died after publishing a fold but before freeing the
 * slot: the next one must not count the slot twice, nor lose it if the
 * fold was not published yet. */
static void test_interrupted_fold(void)
{
    setup("interrupted", 4);
    mongosup_error_t err;
    int idx = msup_slot_claim(&seg, getpid(), "x", &err);
    for (int i = 0; i < 4; i++)
        msup_stats_record_op(msup_slot_stats(&seg, (uint32_t)idx, 0), MSUP_OP_READ, 10);
    msup_slot_t *slot = msup_segment_slot(&seg, (uint32_t)idx);
    /* Crash before the fold was published: state REAPING, nothing folded. */
    atomic_store(&slot->state, MSUP_SLOT_REAPING);
    atomic_store(&slot->exited_ns, 1);
    CU_ASSERT_EQUAL(total_ops(), 4);
    CU_ASSERT_EQUAL(msup_slot_reap(&seg, (uint32_t)idx, NULL), MSUP_REAP_EXITED);
    CU_ASSERT_EQUAL(total_ops(), 4);

    /* Crash after the fold was published: reap it once, then put the slot
     * back in REAPING with its stats as they were, as a crash would leave it. */
    idx = msup_slot_claim(&seg, getpid(), "y", &err);
    slot = msup_segment_slot(&seg, (uint32_t)idx);
    for (int i = 0; i < 3; i++)
        msup_stats_record_op(msup_slot_stats(&seg, (uint32_t)idx, 0), MSUP_OP_READ, 10);
    msup_stats_t saved;
    memcpy(&saved, msup_slot_stats(&seg, (uint32_t)idx, 0), sizeof saved);
    uint64_t epoch = slot->epoch;
    msup_slot_release(&seg, (uint32_t)idx);
    CU_ASSERT_EQUAL(msup_slot_reap(&seg, (uint32_t)idx, NULL), MSUP_REAP_EXITED);
    CU_ASSERT_EQUAL(total_ops(), 7);
    memcpy(msup_slot_stats(&seg, (uint32_t)idx, 0), &saved, sizeof saved);
    slot->epoch = epoch;
    slot->pid = getpid();
    atomic_store(&slot->state, MSUP_SLOT_REAPING);
    CU_ASSERT_EQUAL(total_ops(), 7); /* the reader skips a published fold */
    CU_ASSERT_NOT_EQUAL(msup_slot_reap(&seg, (uint32_t)idx, NULL), MSUP_REAP_NONE);
    CU_ASSERT_EQUAL(total_ops(), 7);
    CU_ASSERT_EQUAL(slot->state, MSUP_SLOT_FREE);
    teardown();
}

/* Readers watching while workers come and go: totals never decrease. */
static void test_totals_monotonic_across_reaps(void)
{
    setup("monotonic", 8);
    int rounds = msup_test_under_valgrind() ? 10 : 200;
    uint64_t last = 0;
    bool monotonic = true;
    for (int r = 0; r < rounds; r++) {
        pid_t kid = fork();
        if (kid == 0) {
            mongosup_error_t err;
            int idx = msup_slot_claim(&seg, getpid(), "m", &err);
            for (int i = 0; i < 100; i++)
                msup_stats_record_op(msup_slot_stats(&seg, (uint32_t)idx, 0), MSUP_OP_READ, 10);
            if (r % 3)
                msup_slot_release(&seg, (uint32_t)idx);
            _exit(0);
        }
        int status;
        /* Read while the child runs and while the reaper folds it. */
        for (int k = 0; k < 5; k++) {
            uint64_t now = total_ops();
            monotonic &= now >= last;
            last = now;
        }
        waitpid(kid, &status, 0);
        msup_slots_reap_all(&seg);
        uint64_t now = total_ops();
        monotonic &= now >= last;
        last = now;
    }
    CU_ASSERT_TRUE(monotonic);
    CU_ASSERT_EQUAL(last, (uint64_t)rounds * 100);
    teardown();
}

/* The fold lock: taken and given back; a live holder makes others wait
 * (and give up at their timeout, leaving the slot EXITED for later); a
 * holder that died folding is stolen from, and its half-done fold finished. */
static void test_fold_lock(void)
{
    setup("foldlock", 4);
    CU_ASSERT_TRUE(msup_fold_lock(&seg, 10));
    msup_fold_unlock(&seg);
    CU_ASSERT_EQUAL(atomic_load(&seg.retired->fold_owner), 0);

    /* A live holder (a child that sleeps holding it). */
    int ready[2];
    CU_ASSERT_FATAL(pipe(ready) == 0);
    pid_t holder = fork();
    CU_ASSERT_FATAL(holder >= 0);
    if (holder == 0) {
        if (!msup_fold_lock(&seg, 100) || write(ready[1], "h", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char byte;
    CU_ASSERT_EQUAL_FATAL(read(ready[0], &byte, 1), 1);
    CU_ASSERT_FALSE(msup_fold_lock(&seg, 50));
    mongosup_error_t err;
    int idx = msup_slot_claim(&seg, getpid(), "w", &err);
    for (int i = 0; i < 5; i++)
        msup_stats_record_op(msup_slot_stats(&seg, (uint32_t)idx, 0), MSUP_OP_READ, 10);
    CU_ASSERT_FALSE(msup_slot_free_own(&seg, (uint32_t)idx, 50)); /* busy: left EXITED */
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_slot(&seg, (uint32_t)idx)->state), MSUP_SLOT_EXITED);
    CU_ASSERT_EQUAL(total_ops(), 5);
    /* The holder dies (as if in the middle of a fold): its lock is stolen. */
    kill(holder, SIGKILL);
    waitpid(holder, NULL, 0);
    CU_ASSERT_NOT_EQUAL(atomic_load(&seg.retired->fold_owner), 0);
    CU_ASSERT_EQUAL(msup_slot_reap(&seg, (uint32_t)idx, NULL), MSUP_REAP_EXITED);
    CU_ASSERT_EQUAL(atomic_load(&seg.retired->fold_owner), 0);
    CU_ASSERT_EQUAL(total_ops(), 5);
    /* free_own: folded once, free at once. */
    idx = msup_slot_claim(&seg, getpid(), "w2", &err);
    msup_stats_record_op(msup_slot_stats(&seg, (uint32_t)idx, 0), MSUP_OP_READ, 10);
    CU_ASSERT_TRUE(msup_slot_free_own(&seg, (uint32_t)idx, 50));
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_slot(&seg, (uint32_t)idx)->state), MSUP_SLOT_FREE);
    CU_ASSERT_EQUAL(total_ops(), 6);
    CU_ASSERT_EQUAL(msup_slots_reap_all(&seg), 0);
    close(ready[0]);
    close(ready[1]);
    teardown();
}

/* A full table whose slots belong to workers that died (nobody reaped
 * them: no supervisor): a new worker folds them and gets a slot. */
static void test_full_of_dead_reaped_by_claimer(void)
{
    setup("fulldead", 4);
    for (int i = 0; i < 4; i++) {
        pid_t kid = fork();
        if (kid == 0) {
            mongosup_error_t err;
            int idx = msup_slot_claim(&seg, getpid(), "dead", &err);
            if (idx >= 0)
                msup_stats_record_op(msup_slot_stats(&seg, (uint32_t)idx, 0), MSUP_OP_READ, 10);
            _exit(idx >= 0 ? 0 : 1); /* dies without detaching */
        }
        int status;
        waitpid(kid, &status, 0);
        CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    mongosup_error_t err;
    int idx = msup_slot_claim(&seg, getpid(), "new", &err);
    CU_ASSERT(idx >= 0);
    CU_ASSERT_EQUAL(total_ops(), 4);
    teardown();
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/slots/claim/race-more-processes-than-slots", test_claim_race},
        {"/slots/reap/exactly-once", test_reap_exactly_once},
        {"/slots/reap/dead-and-pid-reuse", test_reap_dead_and_pid_reuse},
        {"/slots/reap/budget-tokens-once", test_budget_tokens_returned_once},
        {"/slots/reap/interrupted-fold", test_interrupted_fold},
        {"/slots/reap/totals-never-decrease", test_totals_monotonic_across_reaps},
        {"/slots/fold-lock/wait-give-up-steal-from-dead", test_fold_lock},
        {"/slots/claim/full-of-dead-reaped-by-claimer", test_full_of_dead_reaped_by_claimer},
        {NULL, NULL},
    };
    return msup_test_main("slots", tests, argc, argv);
}
