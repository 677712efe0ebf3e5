/* slots.h: claiming, releasing and reaping worker slots. */
#ifndef MONGOSUP_SLOTS_H
#define MONGOSUP_SLOTS_H

#include <stdbool.h>
#include <sys/types.h>

#include "segment.h"

/* Claims a FREE slot for process pid (CAS FREE->CLAIMING, stamp, ACTIVE).
 * Returns its index, or -1 with MONGOSUP_E_NO_SLOT when all are taken. */
int msup_slot_claim(msup_segment_t *seg, pid_t pid, const char *appname, mongosup_error_t *error);

/* The worker is done with its slot: ACTIVE -> EXITED (the reaper folds it). */
void msup_slot_release(msup_segment_t *seg, uint32_t idx);

/* True when an ACTIVE slot's process is gone, or the pid was reused. */
bool msup_slot_owner_dead(const msup_slot_t *slot);

typedef enum msup_reap_result {
    MSUP_REAP_NONE = 0,     /* slot live or free: nothing to do */
    MSUP_REAP_EXITED = 1,   /* a clean exit was folded */
    MSUP_REAP_DEAD = 2,     /* a dead process's slot was folded */
} msup_reap_result_t;

/* Supervisor only: folds an EXITED (or dead ACTIVE) slot into the retired
 * totals exactly once, returns its connection-budget tokens, frees it.
 * Also finishes a fold that a crashed supervisor left half done. */
msup_reap_result_t msup_slot_reap(msup_segment_t *seg, uint32_t idx, pid_t *pid_out);

/* Reaps every slot that needs it; returns how many. */
unsigned msup_slots_reap_all(msup_segment_t *seg);

#endif
