/* drill.c: reads one slot's stats for one cluster (drill.h). */
#include <string.h>

#include "drill.h"
#include "segment.h"
#include "stats.h"

void msup_drill_read(const msup_segment_t *seg, const msup_worker_snap_t *w, const msup_cluster_snap_t *c,
                     msup_drill_entry_t *out)
{
    memset(out, 0, sizeof *out);
    out->slot = w->slot;
    out->cluster_index = c->index;
    if (w->slot >= seg->max_workers || c->index >= seg->max_clusters)
        return; /* the snapshot came from another map */
    const msup_stats_t *s = msup_slot_stats(seg, w->slot, c->index);
    msup_totals_add(&out->totals, s, true);
    out->ops = msup_totals_ops(&out->totals);
    out->failures = msup_totals_failures(&out->totals);
    const msup_totals_t *t = &out->totals;
    out->p50_us = msup_hist_quantile(t->hist, t->hist_count, t->hist_max_us, 0.50);
    out->p99_us = msup_hist_quantile(t->hist, t->hist_count, t->hist_max_us, 0.99);
    out->has_error = msup_last_error_read(&s->last_error, &out->last_error) && out->last_error.time_ns != 0;
}
