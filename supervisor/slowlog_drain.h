/* slowlog_drain.h: mongosupd logs the workers' slow-operation rings, rate-limited, with a count of what it skipped. */
#ifndef MONGOSUPD_SLOWLOG_DRAIN_H
#define MONGOSUPD_SLOWLOG_DRAIN_H

#include <stdint.h>

#include "supervisor.h"

/* At most this many operation lines a second; the rest are counted and
 * reported in one line when the second is over. */
#define MSUP_SLOWLOG_LINES_PER_S 10
/* How often the rings are read (a ring holds MSUP_SLOWLOG_ENTRIES). */
#define MSUP_SLOWLOG_DRAIN_MS 100

/* One pass of the periodic work (main loop): logs the entries written
 * since the last pass.  Reads the segment only. */
void msup_slowlog_drain(msup_sup_t *sup, uint64_t now_mono_ns);

#endif
