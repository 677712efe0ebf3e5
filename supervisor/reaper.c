/* reaper.c: dead and exited worker slots -> retired totals (exactly once), each reap logged. */
#include "log.h"
#include "reaper.h"
#include "slots.h"

unsigned msup_reaper_run(msup_sup_t *sup)
{
    unsigned reaped = 0;
    for (uint32_t i = 0; i < sup->seg.max_workers; i++) {
        msup_slot_t *slot = msup_segment_slot(&sup->seg, i);
        uint32_t st = atomic_load_explicit(&slot->state, memory_order_acquire);
        /* REAPING: a fold our predecessor left half done; slot_reap finishes it. */
        if (st != MSUP_SLOT_ACTIVE && st != MSUP_SLOT_EXITED && st != MSUP_SLOT_REAPING)
            continue;
        pid_t pid = 0;
        msup_reap_result_t r = msup_slot_reap(&sup->seg, i, &pid);
        if (r == MSUP_REAP_NONE)
            continue;
        reaped++;
        sup->slots_reaped++;
        msup_log(r == MSUP_REAP_DEAD ? LOG_WARNING : LOG_INFO, "reaped slot %u of worker pid %d (%s); counters folded",
                 i, (int)pid, r == MSUP_REAP_DEAD ? "process died without detaching" : "detached cleanly");
    }
    return reaped;
}

unsigned msup_reaper_live_slots(const msup_segment_t *seg, unsigned *exited)
{
    unsigned live = 0, ex = 0;
    for (uint32_t i = 0; i < seg->max_workers; i++) {
        uint32_t st = atomic_load_explicit(&msup_segment_slot(seg, i)->state, memory_order_acquire);
        if (st == MSUP_SLOT_ACTIVE || st == MSUP_SLOT_CLAIMING)
            live++;
        else if (st == MSUP_SLOT_EXITED || st == MSUP_SLOT_REAPING)
            ex++;
    }
    if (exited != NULL)
        *exited = ex;
    return live;
}
