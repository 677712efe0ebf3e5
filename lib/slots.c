/* slots.c: claiming, releasing and reaping worker slots (fold into retired totals exactly once). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "budget.h"
#include "error.h"
#include "slots.h"
#include "stats.h"

int msup_slot_claim(msup_segment_t *seg, pid_t pid, const char *appname, mongosup_error_t *error)
{
    uint64_t start_time = msup_proc_start_time(pid);
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
        msup_budget_reclaim(&seg->rows[c], msup_slot_stats(seg, idx, c)); /* tokens and handshakes */
    }
}

msup_reap_result_t msup_slot_reap(msup_segment_t *seg, uint32_t idx, pid_t *pid_out)
{
    msup_slot_t *slot = msup_segment_slot(seg, idx);
    uint32_t state = atomic_load_explicit(&slot->state, memory_order_acquire);
    msup_reap_result_t result;
    if (state == MSUP_SLOT_EXITED)
        result = MSUP_REAP_EXITED;
    else if (state == MSUP_SLOT_ACTIVE && msup_slot_owner_dead(slot))
        result = MSUP_REAP_DEAD;
    else if (state == MSUP_SLOT_REAPING)
        result = atomic_load_explicit(&slot->exited_ns, memory_order_relaxed) ? MSUP_REAP_EXITED : MSUP_REAP_DEAD;
    else
        return MSUP_REAP_NONE;
    if (state != MSUP_SLOT_REAPING &&
        !atomic_compare_exchange_strong_explicit(&slot->state, &state, MSUP_SLOT_REAPING, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return MSUP_REAP_NONE;
    if (pid_out != NULL)
        *pid_out = slot->pid;
    return_budget_tokens(seg, idx);
    fold_into_retired(seg, idx, slot->epoch);
    /* Zero the stats for the next owner; readers skip a REAPING slot whose
     * fold is published, so they never see the zeroes as a decrease. */
    memset(msup_slot_stats(seg, idx, 0), 0, (size_t)seg->max_clusters * sizeof(msup_stats_t));
    slot->pid = 0;
    slot->start_time = 0;
    atomic_store_explicit(&slot->state, MSUP_SLOT_FREE, memory_order_release);
    return result;
}

unsigned msup_slots_reap_all(msup_segment_t *seg)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < seg->max_workers; i++)
        if (msup_slot_reap(seg, i, NULL) != MSUP_REAP_NONE)
            n++;
    return n;
}
