/* snapshot.c: a consistent aggregate of the segment (retired + live slots) for readers. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "snapshot.h"

static const char *const health_names[] = {"UNKNOWN", "UP", "DEGRADED", "DOWN", "RECOVERING"};
static const char *const phase_names[] = {"STARTING", "RUNNING", "DRAINING", "STOPPING", "STOPPED"};
static const char *const slot_names[] = {"FREE", "CLAIMING", "ACTIVE", "EXITED", "REAPING"};
static const char *const op_names[] = {"read", "write", "command"};
static const char *const fail_names[] = {"network",      "timeout",       "server_selection", "auth",
                                         "server_error", "circuit_open", "shutting_down",    "other"};

const char *msup_health_name(uint32_t h)
{
    return h < sizeof health_names / sizeof health_names[0] ? health_names[h] : "INVALID";
}

const char *msup_phase_name(uint32_t p)
{
    return p < 5 ? phase_names[p] : "INVALID";
}

const char *msup_slot_state_name(uint32_t s)
{
    return s < 5 ? slot_names[s] : "INVALID";
}

const char *msup_op_class_name(enum msup_op_class c)
{
    return (unsigned)c < MSUP_OP__COUNT ? op_names[c] : "invalid";
}

const char *msup_fail_class_name(enum msup_fail_class c)
{
    return (unsigned)c < MSUP_FAIL__COUNT ? fail_names[c] : "invalid";
}

#define ALOAD(p) atomic_load_explicit((__typeof__(p) *)&(p), memory_order_acquire)

/* Copies a registry row and, when one is trusted, its control row. */
static void copy_row(const msup_segment_t *seg, uint32_t i, msup_cluster_snap_t *cs)
{
    msup_reg_row_t *reg = msup_segment_reg(seg, i);
    cs->index = i;
    cs->row_state = ALOAD(reg->row_state);
    memcpy(cs->name, reg->name, sizeof cs->name);
    cs->name[sizeof cs->name - 1] = '\0';
    cs->budget_in_use = ALOAD(reg->budget_in_use);
    cs->budget_connecting = ALOAD(reg->budget_connecting);
    msup_cluster_row_t *row = msup_segment_trusted_row(seg, i);
    cs->supervised = row != NULL;
    if (row == NULL) {
        /* No supervisor describes it: what its registrant said, health unknown. */
        cs->health = MSUP_HEALTH_UNKNOWN;
        cs->max_connections = ALOAD(reg->limits.max_connections);
        cs->max_connecting = ALOAD(reg->limits.max_connecting);
        return;
    }
    cs->health = ALOAD(row->health);
    memcpy(cs->uri_display, row->uri_display, sizeof cs->uri_display);
    cs->uri_display[sizeof cs->uri_display - 1] = '\0';
    cs->health_since_ns = ALOAD(row->health_since_ns);
    cs->last_check_ns = ALOAD(row->last_check_ns);
    cs->last_rtt_us = ALOAD(row->last_rtt_us);
    cs->consecutive_ok = ALOAD(row->consecutive_ok);
    cs->consecutive_fail = ALOAD(row->consecutive_fail);
    cs->has_primary = ALOAD(row->has_primary);
    cs->is_replica_set = row->is_replica_set;
    cs->circuit_breaker = ALOAD(row->circuit_breaker);
    cs->transitions = ALOAD(row->transitions);
    cs->checks_passed = ALOAD(row->checks_passed);
    cs->checks_failed = ALOAD(row->checks_failed);
    cs->reconnect_generation = ALOAD(row->reconnect_generation);
    cs->max_pool_size = ALOAD(row->max_pool_size);
    cs->max_connections = ALOAD(row->limits.max_connections);
    cs->max_connecting = ALOAD(row->limits.max_connecting);
    cs->fleet_max_connections = ALOAD(row->fleet_max_connections);
    cs->fleet_hosts = ALOAD(row->fleet_hosts);
    cs->fleet_share = ALOAD(row->fleet_share);
    msup_last_error_read(&row->last_check_error, &cs->last_check_error);
}

/* One pass over retired totals and slots; false when a fold was published
 * meanwhile (the caller retries). */
static bool aggregate_once(const msup_segment_t *seg, msup_snapshot_t *snap, const uint32_t *row_of)
{
    msup_retired_hdr_t *r = seg->retired;
    uint64_t seq = atomic_load_explicit(&r->seq, memory_order_acquire);
    if (seq & 1u)
        return false;
    uint32_t active = atomic_load_explicit(&r->active, memory_order_acquire) & 1u;
    uint64_t folded_slot = atomic_load_explicit(&r->folded_slot[active], memory_order_relaxed);
    uint64_t folded_epoch = atomic_load_explicit(&r->folded_epoch[active], memory_order_relaxed);
    snap->slots_reaped = atomic_load_explicit(&r->slots_reaped[active], memory_order_relaxed);

    for (uint32_t k = 0; k < snap->cluster_count; k++) {
        msup_cluster_snap_t *cs = &snap->clusters[k];
        memset(&cs->totals, 0, sizeof cs->totals);
        cs->workers_live = cs->workers_acked = 0;
        msup_totals_add(&cs->totals, msup_retired_stats(seg, active, row_of[k]), false);
        msup_last_error_read(&msup_retired_stats(seg, active, row_of[k])->last_error, &cs->last_error);
    }
    snap->worker_count = 0;
    for (uint32_t i = 0; i < seg->max_workers; i++) {
        msup_slot_t *slot = msup_segment_slot(seg, i);
        uint32_t state = atomic_load_explicit(&slot->state, memory_order_acquire);
        if (state == MSUP_SLOT_FREE || state == MSUP_SLOT_CLAIMING || state > MSUP_SLOT_REAPING)
            continue;
        if (state == MSUP_SLOT_REAPING && folded_slot == i && folded_epoch == slot->epoch)
            continue; /* already in the retired copy we read */
        msup_worker_snap_t *w = &snap->workers[snap->worker_count++];
        memset(w, 0, sizeof *w);
        w->slot = i;
        w->state = state;
        w->pid = slot->pid;
        w->attached_ns = slot->attached_ns;
        w->exited_ns = atomic_load_explicit(&slot->exited_ns, memory_order_relaxed);
        memcpy(w->appname, slot->appname, sizeof w->appname);
        w->appname[sizeof w->appname - 1] = '\0';
        for (uint32_t k = 0; k < snap->cluster_count; k++) {
            msup_cluster_snap_t *cs = &snap->clusters[k];
            msup_stats_t *s = msup_slot_stats(seg, i, row_of[k]);
            uint64_t ops_before = msup_totals_ops(&cs->totals), fail_before = msup_totals_failures(&cs->totals);
            uint64_t co_before = cs->totals.checkouts;
            int64_t in_use_before = cs->totals.pool_in_use;
            msup_totals_add(&cs->totals, s, true);
            w->ops += msup_totals_ops(&cs->totals) - ops_before;
            w->failures += msup_totals_failures(&cs->totals) - fail_before;
            w->checkouts += cs->totals.checkouts - co_before;
            w->in_use += cs->totals.pool_in_use - in_use_before;
            if (state == MSUP_SLOT_ACTIVE) {
                cs->workers_live++;
                if (atomic_load_explicit(&s->reconnect_ack, memory_order_relaxed) >= cs->reconnect_generation)
                    cs->workers_acked++;
                if (atomic_load_explicit(&s->uri_mismatch, memory_order_relaxed) != 0) {
                    cs->workers_uri_mismatch++;
                    w->uri_mismatch = true;
                }
            }
            msup_last_error_t e;
            if (msup_last_error_read(&s->last_error, &e) && e.time_ns > cs->last_error.time_ns)
                cs->last_error = e;
        }
    }
    return atomic_load_explicit(&r->seq, memory_order_acquire) == seq;
}

static int by_time(const void *a, const void *b)
{
    const msup_slowop_snap_t *x = a, *y = b;
    return (x->op.time_ns > y->op.time_ns) - (x->op.time_ns < y->op.time_ns);
}

/* The slow-operation rings of the slots in the snapshot: no consistency
 * with the counters is needed, so no retry.  An empty ring costs a load. */
static bool collect_slow_ops(const msup_segment_t *seg, msup_snapshot_t *snap, const uint32_t *row_of)
{
    size_t cap = 0, n = 0;
    msup_slowop_snap_t *all = NULL;
    msup_slowop_t ring[MSUP_SLOWLOG_ENTRIES];
    for (uint32_t i = 0; i < snap->worker_count; i++) {
        const msup_worker_snap_t *w = &snap->workers[i];
        for (uint32_t k = 0; k < snap->cluster_count; k++) {
            msup_slowlog_t *log = &msup_slot_stats(seg, w->slot, row_of[k])->slowlog;
            if (atomic_load_explicit(&log->head, memory_order_relaxed) == 0)
                continue;
            uint32_t got = msup_slowlog_read(log, 0, ring, MSUP_SLOWLOG_ENTRIES);
            if (n + got > cap) {
                size_t c = cap ? cap * 2 : 64;
                while (c < n + got)
                    c *= 2;
                msup_slowop_snap_t *p = realloc(all, c * sizeof *p);
                if (p == NULL) {
                    free(all);
                    return false;
                }
                all = p;
                cap = c;
            }
            for (uint32_t e = 0; e < got; e++)
                all[n++] = (msup_slowop_snap_t){.cluster = k, .slot = w->slot, .pid = w->pid, .op = ring[e]};
        }
    }
    if (n > 1)
        qsort(all, n, sizeof *all, by_time);
    if (n > MSUP_SNAPSHOT_SLOW_MAX) {
        memmove(all, all + (n - MSUP_SNAPSHOT_SLOW_MAX), MSUP_SNAPSHOT_SLOW_MAX * sizeof *all);
        n = MSUP_SNAPSHOT_SLOW_MAX;
    }
    snap->slow_ops = all;
    snap->slow_count = (uint32_t)n;
    return true;
}

bool msup_snapshot_take(const msup_segment_t *seg, msup_snapshot_t *snap, mongosup_error_t *error)
{
    memset(snap, 0, sizeof *snap);
    /* A map can be corrupted after it was validated (a foreign writer, a
     * truncation): validate again, cheaply, before every read. */
    if (!msup_layout_validate(seg->base, seg->size, error))
        return false;
    const msup_ctlseg_t *ctl = msup_segment_control(seg);
    if (ctl != NULL && !msup_layout_validate(ctl->base, ctl->size, error))
        return false;
    snap->taken_ns = msup_now_ns();
    memcpy(snap->segment_name, seg->name, sizeof snap->segment_name);
    memcpy(snap->environment, seg->shdr->environment, sizeof snap->environment);
    snap->environment[sizeof snap->environment - 1] = '\0';
    snap->max_workers = seg->max_workers;
    snap->max_clusters = seg->max_clusters;
    snap->liveness = msup_supervisor_liveness(seg);
    snap->supervisor_alive = snap->liveness == MSUP_SUPERVISOR_ALIVE;
    snap->has_control = ctl != NULL;
    snap->phase = MSUP_PHASE_STARTING; /* no supervisor has run */
    if (ctl != NULL) {
        msup_header_t *hm = ctl->hdr;
        memcpy(snap->environment, hm->environment, sizeof snap->environment);
        snap->environment[sizeof snap->environment - 1] = '\0';
        snap->supervisor_pid = ALOAD(hm->supervisor_pid);
        snap->supervisor_started_ns = ALOAD(hm->supervisor_started_ns);
        snap->heartbeat_ns = ALOAD(hm->heartbeat_ns);
        uint64_t hb_mono = ALOAD(hm->heartbeat_mono_ns), now_mono = msup_mono_ns();
        snap->heartbeat_age_ms = hb_mono && now_mono > hb_mono ? (now_mono - hb_mono) / 1000000ull : 0;
        snap->supervisor_restarts = ALOAD(hm->supervisor_restarts);
        snap->config_generation = ALOAD(hm->config_generation);
        snap->phase = ALOAD(hm->phase);
        snap->drain_deadline_mono_ns = ALOAD(hm->drain_deadline_mono_ns);
    }

    snap->clusters = calloc(seg->max_clusters, sizeof *snap->clusters);
    snap->workers = calloc(seg->max_workers, sizeof *snap->workers);
    uint32_t *row_of = calloc(seg->max_clusters, sizeof *row_of);
    if (snap->clusters == NULL || snap->workers == NULL || row_of == NULL) {
        free(row_of);
        msup_snapshot_free(snap);
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory taking a snapshot");
    }
    for (uint32_t i = 0; i < seg->max_clusters; i++) {
        if (ALOAD(seg->reg[i].row_state) != MSUP_ROW_ACTIVE)
            continue;
        row_of[snap->cluster_count] = i;
        copy_row(seg, i, &snap->clusters[snap->cluster_count++]);
    }
    bool consistent = false;
    for (int attempt = 0; attempt < 1000 && !consistent; attempt++)
        consistent = aggregate_once(seg, snap, row_of);
    bool slow_ok = !consistent || collect_slow_ops(seg, snap, row_of);
    free(row_of);
    if (!slow_ok) {
        msup_snapshot_free(snap);
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory taking a snapshot");
    }
    if (!consistent) {
        msup_snapshot_free(snap);
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment %s: retired totals kept changing while reading",
                         seg->name);
    }
    for (uint32_t k = 0; k < snap->cluster_count; k++) {
        msup_cluster_snap_t *cs = &snap->clusters[k];
        const msup_totals_t *t = &cs->totals;
        cs->p50_us = msup_hist_quantile(t->hist, t->hist_count, t->hist_max_us, 0.50);
        cs->p90_us = msup_hist_quantile(t->hist, t->hist_count, t->hist_max_us, 0.90);
        cs->p99_us = msup_hist_quantile(t->hist, t->hist_count, t->hist_max_us, 0.99);
        cs->p999_us = msup_hist_quantile(t->hist, t->hist_count, t->hist_max_us, 0.999);
    }
    return true;
}

void msup_snapshot_free(msup_snapshot_t *snap)
{
    free(snap->clusters);
    free(snap->workers);
    free(snap->slow_ops);
    snap->clusters = NULL;
    snap->workers = NULL;
    snap->slow_ops = NULL;
    snap->slow_count = 0;
    snap->cluster_count = snap->worker_count = 0;
}
