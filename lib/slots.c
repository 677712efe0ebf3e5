/* slots.c: claiming, releasing and reaping worker slots (fold into retired totals exactly once). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "error.h"
#include "slots.h"
#include "stats.h"

/* One pass over the table for a FREE slot; -1 when there is none. */
static int claim_free(msup_segment_t *seg, pid_t pid, uint64_t start_time, const char *appname)
{
    for (uint32_t i = 0; i < seg->max_workers; i++) {
        msup_slot_t *slot = msup_segment_slot(seg, i);
        uint32_t expected = MSUP_SLOT_FREE;
        if (atomic_load_explicit(&slot->state, memory_order_relaxed) != MSUP_SLOT_FREE ||
            !atomic_compare_exchange_strong_explicit(&slot->state, &expected, MSUP_SLOT_CLAIMING,
                                                     memory_order_acq_rel, memory_order_relaxed))
            continue;
        /* The slot is ours: its stats were zeroed by the reaper (or by
         * ftruncate); stamp who we are, then publish ACTIVE. */
        slot->pid = (int32_t)pid;
        slot->start_time = start_time;
        slot->epoch++;
        slot->attached_ns = msup_now_ns();
        atomic_store_explicit(&slot->exited_ns, 0, memory_order_relaxed);
        atomic_store_explicit(&slot->draining_ack, 0, memory_order_relaxed);
        slot->flags = 0;
        snprintf(slot->appname, sizeof slot->appname, "%s", appname ? appname : "");
        atomic_store_explicit(&slot->state, MSUP_SLOT_ACTIVE, memory_order_release);
        return (int)i;
    }
    return -1;
}

int msup_slot_claim(msup_segment_t *seg, pid_t pid, const char *appname, mongosup_error_t *error)
{
    uint64_t start_time = msup_proc_start_time(pid);
    int idx = claim_free(seg, pid, start_time, appname);
    /* Full: slots of exited or dead workers may wait for a reaper that is
     * not there (no supervisor): fold them ourselves and look again. */
    if (idx < 0 && msup_slots_reap_all(seg) > 0)
        idx = claim_free(seg, pid, start_time, appname);
    if (idx >= 0)
        return idx;
    msup_fail(error, MONGOSUP_E_NO_SLOT, "segment %s: all %u worker slots are taken (raise segment.max_workers)",
              seg->name, seg->max_workers);
    return -1;
}

void msup_slot_release(msup_segment_t *seg, uint32_t idx)
{
    msup_slot_t *slot = msup_segment_slot(seg, idx);
    atomic_store_explicit(&slot->exited_ns, msup_now_ns(), memory_order_relaxed);
    uint32_t expected = MSUP_SLOT_ACTIVE;
    atomic_compare_exchange_strong_explicit(&slot->state, &expected, MSUP_SLOT_EXITED, memory_order_release,
                                            memory_order_relaxed);
}

/* ---- the fold lock ---- */

static uint64_t fold_token(pid_t pid, uint64_t start_time)
{
    return ((uint64_t)(uint32_t)pid << 32) | (start_time & 0xffffffffull);
}

static bool token_holder_gone(uint64_t token)
{
    pid_t pid = (pid_t)(token >> 32);
    uint64_t start = msup_proc_start_time(pid);
    return start == 0 || (start & 0xffffffffull) != (token & 0xffffffffull);
}

/* This process's token (its start time read once per pid). */
static uint64_t my_fold_token(void)
{
    static _Atomic uint64_t cached; /* pid << 32 | start: recomputed after a fork */
    pid_t pid = getpid();
    uint64_t c = atomic_load_explicit(&cached, memory_order_relaxed);
    if (c == 0 || (pid_t)(c >> 32) != pid) {
        c = fold_token(pid, msup_proc_start_time(pid));
        atomic_store_explicit(&cached, c, memory_order_relaxed);
    }
    return c;
}

bool msup_fold_lock(msup_segment_t *seg, uint32_t timeout_ms)
{
    _Atomic uint64_t *word = &seg->retired->fold_owner;
    uint64_t me = my_fold_token();
    uint64_t deadline = msup_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        uint64_t cur = atomic_load_explicit(word, memory_order_acquire);
        /* Free, or held by a process that is gone (it died folding): take it. */
        if ((cur == 0 || (cur != me && token_holder_gone(cur))) &&
            atomic_compare_exchange_strong_explicit(word, &cur, me, memory_order_acq_rel, memory_order_acquire))
            return true;
        if (msup_mono_ns() >= deadline)
            return false;
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

void msup_fold_unlock(msup_segment_t *seg)
{
    uint64_t me = my_fold_token();
    atomic_compare_exchange_strong_explicit(&seg->retired->fold_owner, &me, 0, memory_order_release,
                                            memory_order_relaxed);
}

bool msup_slot_owner_dead(const msup_slot_t *slot)
{
    if (slot->pid <= 0)
        return true;
    uint64_t start = msup_proc_start_time(slot->pid);
    return start == 0 || (slot->start_time != 0 && start != slot->start_time);
}

/* Publishes retired totals that include this slot, unless the active copy
 * already records that very fold (an adopting supervisor finishing a reap
 * that a crashed one had published but not freed). */
static void fold_into_retired(msup_segment_t *seg, uint32_t idx, uint64_t epoch)
{
    msup_retired_hdr_t *r = seg->retired;
    uint32_t active = atomic_load_explicit(&r->active, memory_order_acquire) & 1u;
    if (atomic_load_explicit(&r->folded_slot[active], memory_order_relaxed) == idx &&
        atomic_load_explicit(&r->folded_epoch[active], memory_order_relaxed) == epoch &&
        atomic_load_explicit(&r->slots_reaped[active], memory_order_relaxed) != 0)
        return;
    uint32_t next = active ^ 1u;
    for (uint32_t c = 0; c < seg->max_clusters; c++)
        msup_stats_fold(msup_retired_stats(seg, next, c), msup_retired_stats(seg, active, c),
                        msup_slot_stats(seg, idx, c));
    atomic_store_explicit(&r->folded_slot[next], idx, memory_order_relaxed);
    atomic_store_explicit(&r->folded_epoch[next], epoch, memory_order_relaxed);
    atomic_store_explicit(&r->slots_reaped[next], atomic_load_explicit(&r->slots_reaped[active], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    /* Readers retry while seq is odd or moved (layout.h). */
    atomic_fetch_add_explicit(&r->seq, 1, memory_order_acq_rel);
    atomic_store_explicit(&r->active, next, memory_order_release);
    atomic_fetch_add_explicit(&r->seq, 1, memory_order_release);
}

/* Gives the cluster-wide connection-budget tokens of a dead or exited
 * worker back.  The exchange makes a second reap of the same slot a no-op. */
static void return_budget_tokens(msup_segment_t *seg, uint32_t idx)
{
    for (uint32_t c = 0; c < seg->max_clusters; c++) {
        msup_budget_reclaim(&seg->reg[c], msup_slot_stats(seg, idx, c)); /* tokens and handshakes */
    }
}

/* Folds a slot whose state is REAPING (fold lock held), and frees it. */
static void fold_and_free(msup_segment_t *seg, uint32_t idx)
{
    msup_slot_t *slot = msup_segment_slot(seg, idx);
    return_budget_tokens(seg, idx);
    fold_into_retired(seg, idx, slot->epoch);
    /* Zero the stats for the next owner; readers skip a REAPING slot whose
     * fold is published, so they never see the zeroes as a decrease. */
    memset(msup_slot_stats(seg, idx, 0), 0, (size_t)seg->max_clusters * sizeof(msup_stats_t));
    slot->pid = 0;
    slot->start_time = 0;
    atomic_store_explicit(&slot->state, MSUP_SLOT_FREE, memory_order_release);
}

/* What a reap of the slot would do now (fold lock held). */
static msup_reap_result_t reap_kind(const msup_slot_t *slot, uint32_t state)
{
    if (state == MSUP_SLOT_EXITED)
        return MSUP_REAP_EXITED;
    if (state == MSUP_SLOT_ACTIVE && msup_slot_owner_dead(slot))
        return MSUP_REAP_DEAD;
    if (state == MSUP_SLOT_REAPING) /* its folder died: the lock was stolen from it */
        return atomic_load_explicit(&((msup_slot_t *)slot)->exited_ns, memory_order_relaxed) ? MSUP_REAP_EXITED
                                                                                             : MSUP_REAP_DEAD;
    return MSUP_REAP_NONE;
}

msup_reap_result_t msup_slot_reap(msup_segment_t *seg, uint32_t idx, pid_t *pid_out)
{
    msup_slot_t *slot = msup_segment_slot(seg, idx);
    uint32_t state = atomic_load_explicit(&slot->state, memory_order_acquire);
    if (reap_kind(slot, state) == MSUP_REAP_NONE || !msup_fold_lock(seg, 200))
        return MSUP_REAP_NONE;
    /* Again under the lock: another folder may have freed it meanwhile. */
    state = atomic_load_explicit(&slot->state, memory_order_acquire);
    msup_reap_result_t result = reap_kind(slot, state);
    if (result == MSUP_REAP_NONE ||
        (state != MSUP_SLOT_REAPING &&
         !atomic_compare_exchange_strong_explicit(&slot->state, &state, MSUP_SLOT_REAPING, memory_order_acq_rel,
                                                  memory_order_relaxed))) {
        msup_fold_unlock(seg);
        return MSUP_REAP_NONE;
    }
    if (pid_out != NULL)
        *pid_out = slot->pid;
    fold_and_free(seg, idx);
    msup_fold_unlock(seg);
    return result;
}

bool msup_slot_free_own(msup_segment_t *seg, uint32_t idx, uint32_t timeout_ms)
{
    msup_slot_t *slot = msup_segment_slot(seg, idx);
    atomic_store_explicit(&slot->exited_ns, msup_now_ns(), memory_order_relaxed);
    if (!msup_fold_lock(seg, timeout_ms)) {
        msup_slot_release(seg, idx);
        return false;
    }
    uint32_t expected = MSUP_SLOT_ACTIVE;
    bool mine = atomic_compare_exchange_strong_explicit(&slot->state, &expected, MSUP_SLOT_REAPING,
                                                        memory_order_acq_rel, memory_order_relaxed);
    if (mine)
        fold_and_free(seg, idx);
    msup_fold_unlock(seg);
    return mine;
}

unsigned msup_slots_reap_all(msup_segment_t *seg)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < seg->max_workers; i++)
        if (msup_slot_reap(seg, i, NULL) != MSUP_REAP_NONE)
            n++;
    return n;
}
