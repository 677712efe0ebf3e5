/* top_state.h: the live view's state, shared by its loop and keys (top.c) and its drawing (top_draw.c). */
#ifndef MONGOSUP_TOOLS_TOP_STATE_H
#define MONGOSUP_TOOLS_TOP_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "filter.h"
#include "history.h"

/* The tables the view can show; each keeps its own sort order and selection. */
enum top_table {
    TABLE_CLUSTERS,      /* main: one row per cluster */
    TABLE_WORKERS,       /* main: one row per worker slot */
    TABLE_CLUSTER_DRILL, /* one cluster: a row per worker, from each worker's own slot */
    TABLE_WORKER_DRILL,  /* one worker: a row per cluster */
    TABLE_SLOW,          /* the recent slow (and failed) operations of every cluster */
    TABLE__COUNT
};

/* What fills the screen below the header. */
enum top_pane { PANE_MAIN, PANE_CLUSTER, PANE_WORKER, PANE_LATENCY, PANE_SLOW, PANE__COUNT };

/* Live-only columns of the cluster table, after the shared ones (export.h). */
enum {
    TOP_CCOL_OPS_AVG10 = MSUP_CCOL__COUNT,
    TOP_CCOL_OPS_AVG100,
    TOP_CCOL_ERR_AVG10,
    TOP_CCOL_ERR_AVG100,
    TOP_CCOL__END
};
_Static_assert(TOP_CCOL__END <= MSUP_VIEW_COLS, "the live columns fit a view row");

/* The drill-down tables' cells are indexed by these. */
enum { DW_SLOT, DW_PID, DW_APPNAME, DW_OPS, DW_ERRORS, DW_P50, DW_P99, DW_POOL, DW_BUDGET, DW_LAST_ERROR, DW__COUNT };
enum { DC_CLUSTER, DC_STATE, DC_OPS, DC_ERRORS, DC_P50, DC_P99, DC_POOL, DC_CHECKOUTS, DC_WAITS, DC_LAST_ERROR, DC__COUNT };

/* The slow-operation table's cells; the cluster is cell 0 so that the
 * filter matches it like a cluster row's name. */
enum { SL_CLUSTER, SL_TIME, SL_SLOT, SL_PID, SL_COMMAND, SL_DATABASE, SL_COLLECTION, SL_DURATION, SL_SERVER,
       SL_OUTCOME, SL__COUNT };

#define TOP_PANE_DEPTH 6

/* The rows of a table the view builds itself (drill-downs, slow operations). */
typedef struct top_table_rows {
    msup_view_row_t *rows;
    uint32_t n;
    size_t cap;
} top_table_rows_t;

typedef struct top_state {
    const char *name;
    uid_t owner;        /* the segment owner the view accepts */
    double interval_s;
    msup_segment_t seg;
    bool attached;
    msup_snapshot_t now, prev;
    bool have_now, have_prev;
    msup_view_t view;                  /* main tables (rows filtered and sorted in place) */
    top_table_rows_t drill[2];         /* TABLE_CLUSTER_DRILL, TABLE_WORKER_DRILL */
    top_table_rows_t slow;             /* TABLE_SLOW */
    msup_history_t history;            /* the tool's own history of rates */
    uint64_t refreshed_ms;             /* monotonic time of the last snapshot */
    char status[sizeof(((mongosup_error_t *)0)->message) + 64]; /* why there is nothing to show */
    int table;                         /* TABLE_CLUSTERS or TABLE_WORKERS on the main pane */
    int pane[TOP_PANE_DEPTH];          /* pane stack: [0] is PANE_MAIN */
    int depth;
    bool paused, help, typing;         /* typing: the keys go to the filter */
    msup_row_filter_t filter;
    int sort_pos[TABLE__COUNT];        /* position of the sort column on screen */
    bool desc[TABLE__COUNT];
    int sel[TABLE__COUNT];             /* selected row */
    char sel_cluster[MSUP_NAME_MAX];   /* the cluster of PANE_CLUSTER / PANE_LATENCY / PANE_SLOW (raw name) */
    uint32_t sel_slot;                 /* the worker of PANE_WORKER: slot, pid and attach time */
    int32_t sel_pid;
    uint64_t sel_attached_ns;
    bool colour, utf8;
    unsigned attaches;
} top_state_t;

static inline int top_pane(const top_state_t *st)
{
    return st->pane[st->depth];
}

/* The table the keys (sort, selection) act on, or -1 for a pane without one. */
int top_current_table(const top_state_t *st);
/* Columns on screen of a table, in order, and their titles. */
int top_columns(int table, const int **cols, const char *const **titles);
/* The selected snapshot cluster / worker of the drilled panes (NULL: gone). */
const msup_cluster_snap_t *top_sel_cluster(const top_state_t *st);
const msup_worker_snap_t *top_sel_worker(const top_state_t *st);

/* "[network] message", or "-" when !has: the record was redacted by its
 * worker; it is escaped here for the terminal. */
void top_fmt_error(char *out, size_t cap, const msup_last_error_t *e, bool has);

/* top.c: room for `want` rows (false: out of memory). */
bool top_reserve_rows(top_table_rows_t *t, size_t want);

/* top_slow.c: the rows of the slow-operation table from the snapshot. */
bool top_slow_rows(top_table_rows_t *t, const msup_snapshot_t *snap);

/* top_draw.c: the whole screen. */
void top_draw(top_state_t *st);

#endif
