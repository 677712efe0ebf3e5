/* export.h: render a segment snapshot as a table model, plain text, JSON or Prometheus text (no curses). */
#ifndef MONGOSUP_TOOLS_EXPORT_H
#define MONGOSUP_TOOLS_EXPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "snapshot.h"

/*
 * The live view, --once and the benchmark share one model: a snapshot turned
 * into rows of display cells, with the numbers kept beside them for sorting.
 * Rates (ops/s, errors/s, waits/s) come from the difference between the
 * current snapshot and the previous one; without a previous snapshot a rate
 * is unknown and shows as "-".
 */

#define MSUP_CELL_MAX 64  /* a cluster name (63 bytes) fits */
#define MSUP_VIEW_COLS 20 /* >= both column counts, with room for the live view's own (top_state.h) */

enum msup_cluster_col {
    MSUP_CCOL_NAME,
    MSUP_CCOL_STATE,
    MSUP_CCOL_SINCE,
    MSUP_CCOL_RTT,
    MSUP_CCOL_OPS_RATE,
    MSUP_CCOL_ERR_RATE,
    MSUP_CCOL_P50,
    MSUP_CCOL_P99,
    MSUP_CCOL_POOL,
    MSUP_CCOL_WAIT_RATE,
    MSUP_CCOL_TIMEOUTS,
    MSUP_CCOL_RECONNECT,
    MSUP_CCOL_CONNS,
    MSUP_CCOL_CONNECTING,
    MSUP_CCOL_BUDGET_WAITS,
    MSUP_CCOL__COUNT
};

enum msup_worker_col {
    MSUP_WCOL_SLOT,
    MSUP_WCOL_PID,
    MSUP_WCOL_STATE,
    MSUP_WCOL_OPS_RATE,
    MSUP_WCOL_OPS,
    MSUP_WCOL_ERRORS,
    MSUP_WCOL_IN_USE,
    MSUP_WCOL_AGE,
    MSUP_WCOL_APPNAME,
    MSUP_WCOL__COUNT
};

_Static_assert((int)MSUP_CCOL__COUNT <= MSUP_VIEW_COLS && (int)MSUP_WCOL__COUNT <= MSUP_VIEW_COLS, "view columns");

typedef struct msup_view_row {
    char cell[MSUP_VIEW_COLS][MSUP_CELL_MAX];
    double key[MSUP_VIEW_COLS]; /* sort keys */
    uint32_t health;   /* clusters: for colouring */
    uint32_t src;      /* position of the row's cluster / worker in the snapshot (drill-down) */
    bool moved;        /* some counter (ops, failures, checkouts) is not zero */
} msup_view_row_t;

typedef struct msup_view {
    char header[4][400];           /* summary lines */
    uint32_t header_lines;
    uint32_t cluster_rows, worker_rows;
    msup_view_row_t *clusters;     /* cluster_rows */
    msup_view_row_t *workers;      /* worker_rows */
    size_t cluster_cap, worker_cap;
} msup_view_t;

extern const char *const msup_cluster_col_title[MSUP_CCOL__COUNT];
extern const char *const msup_worker_col_title[MSUP_WCOL__COUNT];

/* Builds (or rebuilds, reusing its memory) the view of `now`; prev may be
 * NULL (rates unknown).  Returns false only when out of memory. */
bool msup_view_build(msup_view_t *view, const msup_snapshot_t *now, const msup_snapshot_t *prev);
void msup_view_free(msup_view_t *view);

/* Stable sort of the rows by column `col`, descending when `desc`. */
void msup_view_sort_clusters(msup_view_t *view, int col, bool desc);
void msup_view_sort_workers(msup_view_t *view, int col, bool desc);
/* The same for any rows: by key[col], or by cell[col] as text when `text`. */
void msup_view_sort_rows(msup_view_row_t *rows, uint32_t n, int col, bool desc, bool text);

/* Formatting helpers shared with the curses view. */
void msup_fmt_duration_s(char *out, size_t n, uint64_t seconds); /* 3d04h, 1h02m, 5m12s, 42s */
void msup_fmt_latency_us(char *out, size_t n, uint64_t us);      /* 850us, 1.2ms, 3.40s */

/* Maps the segments `name` read-only (owner and mode checked: `owner` is
 * segment.owner, or (uid_t)-1), takes one snapshot and unmaps them: for
 * readers that keep no mapping between requests (mod_mongosup's status
 * handler).  Free the snapshot with msup_snapshot_free. */
bool msup_snapshot_read(const char *name, uid_t owner, msup_snapshot_t *snap, mongosup_error_t *error);

/* --once: header, cluster table and worker table as aligned plain text. */
bool msup_export_text(const msup_view_t *view, FILE *out);
/* Only the worker table (mongosupctl workers). */
bool msup_export_text_workers(const msup_view_t *view, FILE *out);

/* --json: one JSON document (schema "mongosup/1", see docs/monitoring.md).
 * Counters are totals; no rates.  Written with json-c. */
bool msup_export_json(const msup_snapshot_t *snap, FILE *out, bool pretty);

/* Prometheus text exposition (version 0.0.4) of a snapshot. */
bool msup_export_prometheus(const msup_snapshot_t *snap, FILE *out);

/* The cumulative `le` bounds (seconds) of the exported latency histogram. */
extern const double msup_prom_le_seconds[];
extern const unsigned msup_prom_le_count;

/* Content type of the exposition, for HTTP. */
#define MSUP_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
