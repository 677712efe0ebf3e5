/* worker_reattach.c: opening the segment and claiming a slot; moving to a segment recreated under a long-lived worker. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "classify.h"
#include "error.h"
#include "record.h"
#include "redact.h"
#include "slots.h"
#include "snapshot.h"
#include "stats.h"
#include "textsafe.h"
#include "worker.h"

#define NS_PER_MS 1000000ull

static const mongosup_config_t *current_cfg(const mongosup_t *h)
{
    return h->own_cfg != NULL ? h->own_cfg : h->cfg;
}

bool msup_handle_open_segment(mongosup_t *h, const mongosup_config_t *cfg, msup_segment_t *seg, uint32_t *slot,
                         mongosup_error_t *error)
{
    msup_geometry_t geo = msup_geometry_of(cfg);
    bool created;
    if (!msup_segment_open_or_create(cfg->segment_name, &geo, seg, &created, error))
        return false;
    msup_handle_bind_control(h, seg);
    const char *slot_name = cfg->cluster_count > 0 && cfg->clusters[0].appname ? cfg->clusters[0].appname : h->appname;
    int claimed = msup_slot_claim(seg, h->pid, slot_name, error);
    if (claimed < 0) {
        msup_segment_close(seg);
        return false;
    }
    *slot = (uint32_t)claimed;
    return true;
}

/*
 * The segment we map was unlinked (a graceful stop without keep_segment)
 * or recreated (a new supervisor): open or create the one the name refers
 * to now, claim a slot there, rebind every cluster and rebuild every pool
 * (their budget tokens belong to the old segment's rows).  Counters start
 * from zero in the new segment.  The old mapping stays until detach (other
 * threads may hold pointers into it).  Returns true when it moved.
 */
bool msup_handle_reattach_segment(mongosup_t *h)
{
    pthread_mutex_lock(&h->map_mu);
    atomic_store_explicit(&h->segment_stale, false, memory_order_relaxed);
    msup_segment_t *old = msup_handle_seg(h);
    if (!msup_segment_replaced(old)) {
        pthread_mutex_unlock(&h->map_mu);
        return false;
    }
    msup_segment_t *seg = calloc(1, sizeof *seg);
    mongosup_error_t why;
    uint32_t slot;
    if (seg == NULL || !msup_handle_keep(h, NULL, old)) {
        free(seg);
        pthread_mutex_unlock(&h->map_mu);
        return false;
    }
    if (!msup_handle_open_segment(h, current_cfg(h), seg, &slot, &why)) {
        h->kept->seg = NULL; /* still ours */
        free(seg);
        pthread_mutex_unlock(&h->map_mu);
        char text[MSUP_ERRMSG_MAX];
        msup_redact_text(why.message, text, sizeof text);
        fprintf(stderr, "mongosup[%d]: the segment was replaced and cannot be re-attached: %s\n", (int)h->pid, text);
        return false;
    }
    msup_slot_release(old, h->slot);
    atomic_store_explicit(&h->slot, slot, memory_order_relaxed);
    atomic_store_explicit(&h->slot_ptr, msup_segment_slot(seg, slot), memory_order_relaxed);
    atomic_store_explicit(&h->draining_acked, false, memory_order_relaxed);
    atomic_store_explicit(&h->seg, seg, memory_order_release);
    for (size_t i = 0; i < msup_handle_cluster_count(h); i++) {
        msup_wcluster_t *c = &h->clusters[i];
        pthread_mutex_lock(&c->mu);
        c->settings_epoch++; /* new pools, accounted in the new segment's budget */
        c->rebuild_due_ns = 0;
        pthread_mutex_unlock(&c->mu);
    }
    /* Map the rows again, and read the file again: a new supervisor may
     * run with a new configuration. */
    atomic_store_explicit(&h->config_generation, UINT64_MAX, memory_order_relaxed);
    h->settings_generation = UINT64_MAX;
    pthread_mutex_unlock(&h->map_mu);
    msup_handle_remap_rows(h);
    return true;
}

/* Phase STOPPED: the supervisor is gone; if its segment was replaced
 * since, move to the new one.  At most one check a second. */
bool msup_handle_stopped_reattach(mongosup_t *h)
{
    static _Atomic uint64_t last_check_ns;
    uint64_t now = msup_mono_ns(), last = atomic_load_explicit(&last_check_ns, memory_order_relaxed);
    if (now - last < 1000 * NS_PER_MS && last != 0)
        return false;
    if (!atomic_compare_exchange_strong_explicit(&last_check_ns, &last, now, memory_order_relaxed,
                                                 memory_order_relaxed))
        return false;
    return msup_handle_reattach_segment(h);
}
