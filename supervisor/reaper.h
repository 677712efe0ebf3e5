/* reaper.h: folds the slots of exited and dead workers into the retired totals. */
#ifndef MONGOSUPD_REAPER_H
#define MONGOSUPD_REAPER_H

#include "supervisor.h"

/* Reaps every EXITED slot and every ACTIVE slot whose process is gone (or
 * whose pid was reused); logs each.  Returns how many were reaped. */
unsigned msup_reaper_run(msup_sup_t *sup);

/* Slots still held by a worker (ACTIVE, CLAIMING) and not yet reaped (EXITED). */
unsigned msup_reaper_live_slots(const msup_segment_t *seg, unsigned *exited);

#endif
