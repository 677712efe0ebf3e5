/* drill.h: one worker's own figures for one cluster, read from its slot, for the drill-down views. */
#ifndef MONGOSUP_TOOLS_DRILL_H
#define MONGOSUP_TOOLS_DRILL_H

#include <stdbool.h>
#include <stdint.h>

#include "snapshot.h"

/* The snapshot merges the slots; the drill-down shows them apart: a
 * worker's p50/p99 come from that worker's own histogram. */
typedef struct msup_drill_entry {
    uint32_t slot, cluster_index; /* cluster_index: the segment row */
    msup_totals_t totals;
    uint64_t ops, failures, p50_us, p99_us;
    bool has_error;
    msup_last_error_t last_error; /* redacted by the worker; escape before showing */
} msup_drill_entry_t;

/* Reads the stats of (worker w of `snap`, cluster c of `snap`) from the
 * segment.  Counters are read one by one (relaxed), as the worker writes
 * them: a display figure, not a consistent cut. */
void msup_drill_read(const msup_segment_t *seg, const msup_worker_snap_t *w, const msup_cluster_snap_t *c,
                     msup_drill_entry_t *out);

#endif
