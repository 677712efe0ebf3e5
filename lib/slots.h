/* slots.h: claiming, releasing and reaping worker slots. */
#ifndef MONGOSUP_SLOTS_H
#define MONGOSUP_SLOTS_H

#include <stdbool.h>
#include <sys/types.h>

#include "segment.h"

/* Claims a FREE slot for process pid (CAS FREE->CLAIMING, stamp, ACTIVE).
 * Returns its index, or -1 with MONGOSUP_E_NO_SLOT when all are taken. */
int msup_slot_claim(msup_segment_t *seg, pid_t pid, const char *appname, mongosup_error_t *error);

/* The worker is done with its slot: ACTIVE -> EXITED (a reaper folds it). */
void msup_slot_release(msup_segment_t *seg, uint32_t idx);

/* A worker that detaches frees its own slot: folds it into the retired
 * totals (under the fold lock), returns its budget tokens, frees it, so
 * that it is reusable at once with or without a supervisor.  When the fold
 * lock stays busy for timeout_ms it only stores EXITED (a reaper folds it
 * later).  Returns true when the slot was freed. */
bool msup_slot_free_own(msup_segment_t *seg, uint32_t idx, uint32_t timeout_ms);

/* The fold lock of the retired totals (layout.h): a CAS word naming the
 * holder's pid and start time, stolen only from a holder that is gone.
 * Returns false after timeout_ms. */
bool msup_fold_lock(msup_segment_t *seg, uint32_t timeout_ms);
void msup_fold_unlock(msup_segment_t *seg);

/* True when an ACTIVE slot's process is gone, or the pid was reused. */
bool msup_slot_owner_dead(const msup_slot_t *slot);

typedef enum msup_reap_result {
    MSUP_REAP_NONE = 0,     /* slot live or free: nothing to do */
    MSUP_REAP_EXITED = 1,   /* a clean exit was folded */
    MSUP_REAP_DEAD = 2,     /* a dead process's slot was folded */
} msup_reap_result_t;

/* Folds an EXITED (or dead ACTIVE) slot into the retired totals exactly
 * once, returns its connection-budget tokens, frees it, under the fold
 * lock (NONE when it stays busy for 200 ms).  Also finishes a fold that a
 * dead folder left half done. */
msup_reap_result_t msup_slot_reap(msup_segment_t *seg, uint32_t idx, pid_t *pid_out);

/* Reaps every slot that needs it; returns how many.  A worker that finds
 * no free slot calls it too (no supervisor may be there to do it). */
unsigned msup_slots_reap_all(msup_segment_t *seg);

#endif
