/* slowlog_drain.c: reads every live slot's slow-operation rings and logs the new entries (slowlog_drain.h). */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "slowlog.h"
#include "slowlog_drain.h"
#include "snapshot.h"
#include "textsafe.h"

/* What was logged already: per slot, its claim epoch and, per row, the
 * newest ordinal seen.  One supervisor per process: file scope. */
static struct {
    const void *base;               /* the mapping the arrays were sized for */
    uint32_t workers, clusters;
    uint64_t *epoch;                /* [workers] */
    uint64_t *seen;                 /* [workers * clusters] */
    uint64_t next_mono_ns;
    uint64_t window_start_ns;       /* the current second of the rate limit (0: none) */
    uint32_t lines;                 /* logged in that second */
    uint64_t rate_limited, overwritten;
} drain;

static bool fit(const msup_segment_t *seg)
{
    if (drain.base == seg->base && drain.workers == seg->max_workers && drain.clusters == seg->max_clusters)
        return true;
    free(drain.epoch);
    free(drain.seen);
    drain.epoch = calloc(seg->max_workers, sizeof *drain.epoch);
    drain.seen = calloc((size_t)seg->max_workers * seg->max_clusters, sizeof *drain.seen);
    if (drain.epoch == NULL || drain.seen == NULL) {
        free(drain.epoch);
        free(drain.seen);
        drain.epoch = drain.seen = NULL;
        drain.base = NULL;
        return false;
    }
    drain.base = seg->base;
    drain.workers = seg->max_workers;
    drain.clusters = seg->max_clusters;
    return true;
}

/* Reports what the last second skipped, once it is over. */
static void close_window(uint64_t now_mono_ns)
{
    if (drain.window_start_ns == 0 || now_mono_ns - drain.window_start_ns < 1000000000ull)
        return;
    if (drain.rate_limited || drain.overwritten)
        msup_log(LOG_NOTICE,
                 "slow operations: %llu not logged in the last %.1f s (at most %d lines a second), "
                 "%llu overwritten in their ring before mongosupd read them",
                 (unsigned long long)drain.rate_limited, (double)(now_mono_ns - drain.window_start_ns) / 1e9,
                 MSUP_SLOWLOG_LINES_PER_S, (unsigned long long)drain.overwritten);
    drain.window_start_ns = 0;
    drain.lines = 0;
    drain.rate_limited = drain.overwritten = 0;
}

static void log_entry(const msup_cluster_row_t *row, uint32_t slot, int32_t pid, const msup_slowop_t *e,
                      uint64_t now_mono_ns)
{
    if (drain.window_start_ns == 0)
        drain.window_start_ns = now_mono_ns;
    if (drain.lines >= MSUP_SLOWLOG_LINES_PER_S) {
        drain.rate_limited++;
        return;
    }
    drain.lines++;
    /* Names come from the segment: escaped so that a line stays one line. */
    char cluster[MSUP_NAME_MAX * 4], cmd[MSUP_SLOWLOG_COMMAND_MAX * 4], db[MSUP_SLOWLOG_DB_MAX * 4],
        coll[MSUP_SLOWLOG_COLL_MAX * 4], server[MSUP_SLOWLOG_SERVER_MAX * 4];
    msup_text_escape(cluster, sizeof cluster, row->name, sizeof row->name);
    msup_text_escape(cmd, sizeof cmd, e->command, sizeof e->command);
    msup_text_escape(db, sizeof db, e->database, sizeof e->database);
    msup_text_escape(coll, sizeof coll, e->collection, sizeof e->collection);
    msup_text_escape(server, sizeof server, e->server, sizeof e->server);
    msup_log(LOG_NOTICE,
             "%s operation: cluster %s slot %u pid %d command %s database %s collection %s server %s "
             "duration %.1f ms outcome %s",
             e->slow ? "slow" : "failed", cluster, slot, (int)pid, cmd[0] ? cmd : "-", db[0] ? db : "-",
             coll[0] ? coll : "-", server[0] ? server : "-", (double)e->duration_us / 1e3,
             msup_slowop_outcome_name(e->outcome));
}

static void drain_ring(const msup_cluster_row_t *row, msup_slowlog_t *ring, uint64_t *seen, uint32_t slot,
                       int32_t pid, uint64_t now_mono_ns)
{
    if (atomic_load_explicit(&ring->head, memory_order_relaxed) <= *seen)
        return;
    msup_slowop_t e[MSUP_SLOWLOG_ENTRIES];
    uint32_t n = msup_slowlog_read(ring, *seen, e, MSUP_SLOWLOG_ENTRIES);
    for (uint32_t i = 0; i < n; i++) {
        /* A gap below an entry: records the ring overwrote (or a writer gave up). */
        drain.overwritten += e[i].ordinal - *seen - 1;
        *seen = e[i].ordinal;
        log_entry(row, slot, pid, &e[i], now_mono_ns);
    }
}

void msup_slowlog_drain(msup_sup_t *sup, uint64_t now_mono_ns)
{
    if (now_mono_ns < drain.next_mono_ns || sup->segment_invalid || sup->segment_gone)
        return;
    drain.next_mono_ns = now_mono_ns + MSUP_SLOWLOG_DRAIN_MS * 1000000ull;
    const msup_segment_t *seg = &sup->seg;
    if (!fit(seg))
        return;
    for (uint32_t i = 0; i < seg->max_workers; i++) {
        msup_slot_t *slot = msup_segment_slot(seg, i);
        uint32_t state = atomic_load_explicit(&slot->state, memory_order_acquire);
        if (state != MSUP_SLOT_ACTIVE && state != MSUP_SLOT_EXITED)
            continue;
        uint64_t *seen = &drain.seen[(size_t)i * seg->max_clusters];
        if (drain.epoch[i] != slot->epoch) {
            /* A new claim of the slot: its rings start again. */
            drain.epoch[i] = slot->epoch;
            memset(seen, 0, seg->max_clusters * sizeof *seen);
        }
        for (uint32_t k = 0; k < seg->max_clusters; k++) {
            const msup_cluster_row_t *row = msup_segment_row(seg, k);
            if (atomic_load_explicit(&((msup_cluster_row_t *)row)->row_state, memory_order_acquire) != MSUP_ROW_ACTIVE)
                continue;
            drain_ring(row, &msup_slot_stats(seg, i, k)->slowlog, &seen[k], i, slot->pid, now_mono_ns);
        }
    }
    close_window(now_mono_ns);
}
