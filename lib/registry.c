/* registry.c: maps a configured cluster to its registry row in the stats segment, registering it when missing. */
#include <string.h>
#include <time.h>

#include "worker.h"

static void fill_row(msup_segment_t *seg, msup_reg_row_t *row, const msup_cluster_cfg_t *cfg)
{
    memset(row->name, 0, sizeof row->name);
    memcpy(row->name, cfg->name, strnlen(cfg->name, sizeof row->name - 1));
    /* For display only: nobody enforces a limit read from this line. */
    msup_budget_apply_limits(&row->limits, cfg->max_connections, cfg->max_connecting);
    atomic_store_explicit(&row->row_state, MSUP_ROW_ACTIVE, memory_order_release);
    atomic_fetch_add_explicit(&seg->shdr->cluster_count, 1, memory_order_release);
}

/*
 * Returns the row of the cluster, registering it when it is missing (the
 * supervisor has not started yet): the rule is in layout.h next to
 * msup_row_state.  Waits at most 200 ms for a CLAIMING row that blocks the
 * way (its writer died half-way otherwise); returns -1 when the table is
 * full or blocked, and the worker then keeps its counts in-process.
 */
int msup_registry_map(msup_segment_t *seg, const msup_cluster_cfg_t *cfg, uint32_t preferred_row)
{
    uint64_t deadline = msup_mono_ns() + 200ull * 1000 * 1000;
    for (;;) {
        int found = msup_segment_find_cluster(seg, cfg->name);
        if (found >= 0)
            return found;
        bool blocked = false;
        for (uint32_t k = 0; k < seg->max_clusters && !blocked; k++) {
            uint32_t i = (preferred_row + k) % seg->max_clusters;
            msup_reg_row_t *row = msup_segment_reg(seg, i);
            uint32_t state = atomic_load_explicit(&row->row_state, memory_order_acquire);
            if (state == MSUP_ROW_CLAIMING) {
                blocked = true;
            } else if (state == MSUP_ROW_UNUSED &&
                       atomic_compare_exchange_strong_explicit(&row->row_state, &state, MSUP_ROW_CLAIMING,
                                                               memory_order_acq_rel, memory_order_acquire)) {
                fill_row(seg, row, cfg);
                return (int)i;
            } else if (state == MSUP_ROW_CLAIMING) {
                blocked = true; /* lost the CAS to another registrant */
            }
        }
        if (!blocked || msup_mono_ns() > deadline)
            return -1;
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
