/* top.c: the live curses view of mongosup-top: refresh loop, re-attach, keys, and the rows of every table. */
#include <curses.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drill.h"
#include "top.h"
#include "textsafe.h"
#include "top_state.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* ---- Columns on screen ---------------------------------------------- */

/* The cluster table shows the 10 s and 100 s averages beside each rate. */
static const int cluster_cols[] = {
    MSUP_CCOL_NAME,         MSUP_CCOL_STATE,      MSUP_CCOL_SINCE,       MSUP_CCOL_RTT,
    MSUP_CCOL_OPS_RATE,     TOP_CCOL_OPS_AVG10,   TOP_CCOL_OPS_AVG100,   MSUP_CCOL_ERR_RATE,
    TOP_CCOL_ERR_AVG10,     TOP_CCOL_ERR_AVG100,  MSUP_CCOL_P50,         MSUP_CCOL_P99,
    MSUP_CCOL_POOL,         MSUP_CCOL_WAIT_RATE,  MSUP_CCOL_TIMEOUTS,    MSUP_CCOL_RECONNECT,
    MSUP_CCOL_CONNS,        MSUP_CCOL_CONNECTING, MSUP_CCOL_BUDGET_WAITS,
};
static const int worker_cols[] = {
    MSUP_WCOL_SLOT, MSUP_WCOL_PID, MSUP_WCOL_STATE,  MSUP_WCOL_OPS_RATE, MSUP_WCOL_OPS,
    MSUP_WCOL_ERRORS, MSUP_WCOL_IN_USE, MSUP_WCOL_AGE, MSUP_WCOL_APPNAME,
};

static const int drill_worker_cols[] = {DW_SLOT, DW_PID, DW_APPNAME, DW_OPS, DW_ERRORS, DW_P50, DW_P99,
                                        DW_POOL, DW_BUDGET, DW_LAST_ERROR};
static const int drill_cluster_cols[] = {DC_CLUSTER, DC_STATE, DC_OPS, DC_ERRORS, DC_P50, DC_P99,
                                         DC_POOL, DC_CHECKOUTS, DC_WAITS, DC_LAST_ERROR};

/* Titles indexed by cell, like msup_cluster_col_title. */
static const char *const *cluster_titles(void)
{
    static const char *t[TOP_CCOL__END];
    for (int c = 0; c < MSUP_CCOL__COUNT; c++)
        t[c] = msup_cluster_col_title[c];
    t[TOP_CCOL_OPS_AVG10] = "OPS-AVG10";
    t[TOP_CCOL_OPS_AVG100] = "OPS-AVG100";
    t[TOP_CCOL_ERR_AVG10] = "ERR-AVG10";
    t[TOP_CCOL_ERR_AVG100] = "ERR-AVG100";
    return t;
}
static const int slow_cols[] = {SL_TIME, SL_CLUSTER, SL_SLOT, SL_PID, SL_COMMAND, SL_DATABASE,
                                SL_COLLECTION, SL_DURATION, SL_SERVER, SL_OUTCOME};
static const char *const slow_titles[SL__COUNT] = {"CLUSTER", "TIME", "SLOT", "PID", "COMMAND", "DATABASE",
                                                   "COLLECTION", "DURATION", "SERVER", "OUTCOME"};
static const char *const drill_worker_titles[DW__COUNT] = {"SLOT", "PID", "APPNAME", "OPS", "ERRORS", "P50",
                                                           "P99", "POOL", "BUDGET", "LAST-ERROR"};
static const char *const drill_cluster_titles[DC__COUNT] = {"CLUSTER", "STATE", "OPS", "ERRORS", "P50",
                                                            "P99", "POOL", "CHECKOUTS", "WAITS", "LAST-ERROR"};

#define NCOLS(a) ((int)(sizeof(a) / sizeof((a)[0])))

int top_columns(int table, const int **cols, const char *const **titles)
{
    switch (table) {
    case TABLE_CLUSTERS: *cols = cluster_cols; *titles = cluster_titles(); return NCOLS(cluster_cols);
    case TABLE_WORKERS: *cols = worker_cols; *titles = msup_worker_col_title; return NCOLS(worker_cols);
    case TABLE_CLUSTER_DRILL: *cols = drill_worker_cols; *titles = drill_worker_titles; return NCOLS(drill_worker_cols);
    case TABLE_WORKER_DRILL: *cols = drill_cluster_cols; *titles = drill_cluster_titles; return NCOLS(drill_cluster_cols);
    default: *cols = slow_cols; *titles = slow_titles; return NCOLS(slow_cols);
    }
}

/* Columns sorted as text rather than by their key. */
static bool text_column(int table, int col)
{
    switch (table) {
    case TABLE_CLUSTERS: return col == MSUP_CCOL_NAME;
    case TABLE_WORKERS: return col == MSUP_WCOL_APPNAME;
    case TABLE_CLUSTER_DRILL: return col == DW_APPNAME || col == DW_LAST_ERROR;
    case TABLE_WORKER_DRILL: return col == DC_CLUSTER || col == DC_LAST_ERROR;
    default: return col != SL_TIME && col != SL_SLOT && col != SL_PID && col != SL_DURATION;
    }
}

int top_current_table(const top_state_t *st)
{
    switch (top_pane(st)) {
    case PANE_MAIN: return st->table;
    case PANE_CLUSTER: return TABLE_CLUSTER_DRILL;
    case PANE_WORKER: return TABLE_WORKER_DRILL;
    case PANE_SLOW: return TABLE_SLOW;
    default: return -1;
    }
}

const msup_cluster_snap_t *top_sel_cluster(const top_state_t *st)
{
    for (uint32_t i = 0; st->have_now && i < st->now.cluster_count; i++)
        if (strcmp(st->now.clusters[i].name, st->sel_cluster) == 0)
            return &st->now.clusters[i];
    return NULL;
}

const msup_worker_snap_t *top_sel_worker(const top_state_t *st)
{
    for (uint32_t i = 0; st->have_now && i < st->now.worker_count; i++) {
        const msup_worker_snap_t *w = &st->now.workers[i];
        if (w->slot == st->sel_slot && w->pid == st->sel_pid && w->attached_ns == st->sel_attached_ns)
            return w;
    }
    return NULL;
}

/* ---- Rows ------------------------------------------------------------- */

static void fmt_avg(char *cell, double *key, const msup_series_t *s, uint64_t now_ms, double window_s)
{
    double a;
    if (s != NULL && msup_series_avg(s, now_ms, window_s, &a)) {
        snprintf(cell, MSUP_CELL_MAX, "%.1f", a);
        *key = a;
    } else {
        snprintf(cell, MSUP_CELL_MAX, "-");
        *key = -1;
    }
}

static void add_averages(top_state_t *st)
{
    for (uint32_t r = 0; r < st->view.cluster_rows; r++) {
        msup_view_row_t *row = &st->view.clusters[r];
        const msup_cluster_history_t *h = msup_history_find(&st->history, st->now.clusters[row->src].name);
        fmt_avg(row->cell[TOP_CCOL_OPS_AVG10], &row->key[TOP_CCOL_OPS_AVG10], h ? &h->ops : NULL, st->refreshed_ms, 10);
        fmt_avg(row->cell[TOP_CCOL_OPS_AVG100], &row->key[TOP_CCOL_OPS_AVG100], h ? &h->ops : NULL, st->refreshed_ms,
                100);
        fmt_avg(row->cell[TOP_CCOL_ERR_AVG10], &row->key[TOP_CCOL_ERR_AVG10], h ? &h->errors : NULL, st->refreshed_ms,
                10);
        fmt_avg(row->cell[TOP_CCOL_ERR_AVG100], &row->key[TOP_CCOL_ERR_AVG100], h ? &h->errors : NULL,
                st->refreshed_ms, 100);
    }
}

bool top_reserve_rows(top_table_rows_t *t, size_t want)
{
    if (want <= t->cap)
        return true;
    size_t n = t->cap ? t->cap * 2 : 16;
    while (n < want)
        n *= 2;
    msup_view_row_t *r = realloc(t->rows, n * sizeof *r);
    if (r == NULL)
        return false;
    t->rows = r;
    t->cap = n;
    return true;
}

static void fmt_quantile(char *cell, uint64_t count, uint64_t us)
{
    if (count == 0)
        snprintf(cell, MSUP_CELL_MAX, "-");
    else
        msup_fmt_latency_us(cell, MSUP_CELL_MAX, us);
}

void top_fmt_error(char *cell, size_t cap, const msup_last_error_t *e, bool has)
{
    if (!has) {
        snprintf(cell, cap, "-");
        return;
    }
    uint32_t cls = e->fail_class < MSUP_FAIL__COUNT ? e->fail_class : MSUP_FAIL_OTHER;
    size_t len = (size_t)snprintf(cell, cap, "[%s] ", msup_fail_class_name((enum msup_fail_class)cls));
    if (len < cap)
        msup_text_escape(cell + len, cap - len, e->message, sizeof e->message);
}

/* A drill-down row for (worker, cluster): both tables share the figures. */
static void drill_row(top_state_t *st, msup_view_row_t *row, const msup_worker_snap_t *w,
                      const msup_cluster_snap_t *c, bool per_worker)
{
    msup_drill_entry_t e;
    msup_drill_read(&st->seg, w, c, &e);
    char (*cell)[MSUP_CELL_MAX] = row->cell;
    double *key = row->key;
    memset(row, 0, sizeof *row);
    row->moved = e.ops + e.failures + e.totals.checkouts > 0;
    int ops = per_worker ? DW_OPS : DC_OPS, errs = per_worker ? DW_ERRORS : DC_ERRORS;
    int p50 = per_worker ? DW_P50 : DC_P50, p99 = per_worker ? DW_P99 : DC_P99;
    int pool = per_worker ? DW_POOL : DC_POOL, last = per_worker ? DW_LAST_ERROR : DC_LAST_ERROR;
    snprintf(cell[ops], MSUP_CELL_MAX, "%llu", (unsigned long long)e.ops);
    key[ops] = (double)e.ops;
    snprintf(cell[errs], MSUP_CELL_MAX, "%llu", (unsigned long long)e.failures);
    key[errs] = (double)e.failures;
    fmt_quantile(cell[p50], e.totals.hist_count, e.p50_us);
    key[p50] = (double)e.p50_us;
    fmt_quantile(cell[p99], e.totals.hist_count, e.p99_us);
    key[p99] = (double)e.p99_us;
    snprintf(cell[pool], MSUP_CELL_MAX, "%lld/%lld", (long long)e.totals.pool_in_use, (long long)e.totals.pool_max);
    key[pool] = (double)e.totals.pool_in_use;
    top_fmt_error(cell[last], MSUP_CELL_MAX, &e.last_error, e.has_error);
    key[last] = e.has_error ? (double)e.last_error.time_ns : 0;
    if (per_worker) {
        snprintf(cell[DW_SLOT], MSUP_CELL_MAX, "%u", w->slot);
        key[DW_SLOT] = w->slot;
        snprintf(cell[DW_PID], MSUP_CELL_MAX, "%d", (int)w->pid);
        key[DW_PID] = w->pid;
        msup_text_escape(cell[DW_APPNAME], MSUP_CELL_MAX, w->appname[0] ? w->appname : "-", sizeof w->appname);
        snprintf(cell[DW_BUDGET], MSUP_CELL_MAX, "%lld", (long long)e.totals.budget_tokens);
        key[DW_BUDGET] = (double)e.totals.budget_tokens;
    } else {
        msup_text_escape(cell[DC_CLUSTER], MSUP_CELL_MAX, c->name, sizeof c->name);
        snprintf(cell[DC_STATE], MSUP_CELL_MAX, "%s", msup_health_name(c->health));
        key[DC_STATE] = c->health;
        row->health = c->health;
        snprintf(cell[DC_CHECKOUTS], MSUP_CELL_MAX, "%llu", (unsigned long long)e.totals.checkouts);
        key[DC_CHECKOUTS] = (double)e.totals.checkouts;
        snprintf(cell[DC_WAITS], MSUP_CELL_MAX, "%llu", (unsigned long long)e.totals.checkout_waits);
        key[DC_WAITS] = (double)e.totals.checkout_waits;
    }
}

static void build_drill(top_state_t *st)
{
    top_table_rows_t *t = &st->drill[0];
    t->n = 0;
    const msup_cluster_snap_t *c = top_sel_cluster(st);
    if (c != NULL && st->attached && top_reserve_rows(t, st->now.worker_count)) {
        for (uint32_t i = 0; i < st->now.worker_count; i++) {
            drill_row(st, &t->rows[t->n], &st->now.workers[i], c, true);
            t->rows[t->n++].src = i;
        }
    }
    t = &st->drill[1];
    t->n = 0;
    const msup_worker_snap_t *w = top_sel_worker(st);
    if (w != NULL && st->attached && top_reserve_rows(t, st->now.cluster_count)) {
        for (uint32_t i = 0; i < st->now.cluster_count; i++) {
            drill_row(st, &t->rows[t->n], w, &st->now.clusters[i], false);
            t->rows[t->n++].src = i;
        }
    }
}

static void sort_table(top_state_t *st, int table, msup_view_row_t *rows, uint32_t n)
{
    const int *cols;
    const char *const *titles;
    int ncols = top_columns(table, &cols, &titles);
    int col = cols[st->sort_pos[table] % ncols];
    msup_view_sort_rows(rows, n, col, st->desc[table], text_column(table, col));
}

static void clamp_selection(top_state_t *st, int table, uint32_t n)
{
    if (st->sel[table] >= (int)n)
        st->sel[table] = n > 0 ? (int)n - 1 : 0;
    if (st->sel[table] < 0)
        st->sel[table] = 0;
}

/* The model of every table from the current snapshot: the view, the live
 * averages, the filter (main tables), the sort, the drill-downs. */
static void rebuild_rows(top_state_t *st)
{
    if (!st->have_now)
        return;
    if (!msup_view_build(&st->view, &st->now, st->have_prev ? &st->prev : NULL)) {
        snprintf(st->status, sizeof st->status, "out of memory");
        return;
    }
    add_averages(st);
    st->view.cluster_rows = msup_filter_rows(&st->filter, st->view.clusters, st->view.cluster_rows, false);
    st->view.worker_rows = msup_filter_rows(&st->filter, st->view.workers, st->view.worker_rows, true);
    sort_table(st, TABLE_CLUSTERS, st->view.clusters, st->view.cluster_rows);
    sort_table(st, TABLE_WORKERS, st->view.workers, st->view.worker_rows);
    build_drill(st);
    sort_table(st, TABLE_CLUSTER_DRILL, st->drill[0].rows, st->drill[0].n);
    sort_table(st, TABLE_WORKER_DRILL, st->drill[1].rows, st->drill[1].n);
    if (!top_slow_rows(&st->slow, &st->now))
        snprintf(st->status, sizeof st->status, "out of memory: slow operations not shown");
    st->slow.n = msup_filter_rows(&st->filter, st->slow.rows, st->slow.n, false);
    sort_table(st, TABLE_SLOW, st->slow.rows, st->slow.n);
    clamp_selection(st, TABLE_SLOW, st->slow.n);
    clamp_selection(st, TABLE_CLUSTERS, st->view.cluster_rows);
    clamp_selection(st, TABLE_WORKERS, st->view.worker_rows);
    clamp_selection(st, TABLE_CLUSTER_DRILL, st->drill[0].n);
    clamp_selection(st, TABLE_WORKER_DRILL, st->drill[1].n);
}

/* ---- Segment ------------------------------------------------------------ */

static void forget_snapshots(top_state_t *st)
{
    if (st->have_now)
        msup_snapshot_free(&st->now);
    if (st->have_prev)
        msup_snapshot_free(&st->prev);
    st->have_now = st->have_prev = false;
}

static void detach(top_state_t *st)
{
    forget_snapshots(st);
    if (st->attached)
        msup_segment_close(&st->seg);
    st->attached = false;
    /* A new segment's counters start again: the old history is no base. */
    msup_history_free(&st->history);
}

/* A segment object shrunk under the map would fault (SIGBUS) on the next
 * read: check its size before reading, since validation sees only the map. */
static bool segment_shrunk(const msup_segment_t *seg)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm%s", seg->stats_name);
    if (stat(path, &st) == 0 && (uint64_t)st.st_size < (uint64_t)seg->size)
        return true;
    const msup_ctlseg_t *ctl = msup_segment_control(seg);
    snprintf(path, sizeof path, "/dev/shm%s", seg->name);
    return ctl != NULL && stat(path, &st) == 0 && (uint64_t)st.st_size < (uint64_t)ctl->size;
}

/* A supervisor created its control segment after we attached without one. */
static bool control_appeared(const msup_segment_t *seg)
{
    char path[128];
    snprintf(path, sizeof path, "/dev/shm%s", seg->name);
    return msup_segment_control(seg) == NULL && access(path, F_OK) == 0;
}

static uint64_t mono_ms(void)
{
    return msup_mono_ns() / 1000000ull;
}

/* One refresh: (re)attach when needed, take a snapshot, rates against the previous one. */
static void refresh_data(top_state_t *st)
{
    mongosup_error_t err;
    if (st->attached && (msup_segment_replaced(&st->seg) || msup_ctlseg_replaced(&st->seg) ||
                         control_appeared(&st->seg))) {
        /* The supervisor restarted and recreated the segment (or removed
         * it): counters start again, so the previous snapshot is no base for rates. */
        detach(st);
    }
    if (!st->attached) {
        if (!msup_segment_open_readonly(st->name, st->owner, &st->seg, &err)) {
            snprintf(st->status, sizeof st->status, "%s; waiting for it", err.message);
            return;
        }
        st->attached = true;
        st->attaches++;
    }
    if (segment_shrunk(&st->seg)) {
        snprintf(st->status, sizeof st->status, "segment %s is truncated; waiting for a valid segment", st->name);
        detach(st);
        return;
    }
    msup_snapshot_t snap;
    if (!msup_snapshot_take(&st->seg, &snap, &err)) {
        snprintf(st->status, sizeof st->status, "%s; waiting for a valid segment", err.message);
        detach(st);
        return;
    }
    if (st->have_prev)
        msup_snapshot_free(&st->prev);
    st->prev = st->now;
    st->have_prev = st->have_now;
    st->now = snap;
    st->have_now = true;
    st->refreshed_ms = mono_ms();
    st->status[0] = '\0';
    if (!msup_history_update(&st->history, &st->now, st->have_prev ? &st->prev : NULL, st->refreshed_ms))
        snprintf(st->status, sizeof st->status, "out of memory: the history is incomplete");
    rebuild_rows(st);
}

/* ---- Keys --------------------------------------------------------------- */

static void push_pane(top_state_t *st, int pane)
{
    if (st->depth + 1 < TOP_PANE_DEPTH)
        st->pane[++st->depth] = pane;
    else
        st->pane[st->depth] = pane;
}

static void pop_pane(top_state_t *st)
{
    if (st->depth > 0)
        st->depth--;
}

static bool select_cluster_row(top_state_t *st, const msup_view_row_t *rows, uint32_t n, int table)
{
    if (n == 0)
        return false;
    const msup_view_row_t *row = &rows[st->sel[table]];
    snprintf(st->sel_cluster, sizeof st->sel_cluster, "%s", st->now.clusters[row->src].name);
    return true;
}

static bool select_worker_row(top_state_t *st, const msup_view_row_t *rows, uint32_t n, int table)
{
    if (n == 0)
        return false;
    const msup_worker_snap_t *w = &st->now.workers[rows[st->sel[table]].src];
    st->sel_slot = w->slot;
    st->sel_pid = w->pid;
    st->sel_attached_ns = w->attached_ns;
    return true;
}

/* The cluster the latency and slow-operation panes open on: the selected one. */
static bool pick_cluster(top_state_t *st)
{
    switch (top_pane(st)) {
    case PANE_MAIN:
        return st->table == TABLE_CLUSTERS &&
               select_cluster_row(st, st->view.clusters, st->view.cluster_rows, TABLE_CLUSTERS);
    case PANE_WORKER:
        return select_cluster_row(st, st->drill[1].rows, st->drill[1].n, TABLE_WORKER_DRILL);
    default:
        return top_sel_cluster(st) != NULL;
    }
}

static void enter(top_state_t *st)
{
    if (!st->have_now)
        return;
    switch (top_pane(st)) {
    case PANE_MAIN:
        if (st->table == TABLE_CLUSTERS && select_cluster_row(st, st->view.clusters, st->view.cluster_rows,
                                                              TABLE_CLUSTERS))
            push_pane(st, PANE_CLUSTER);
        else if (st->table == TABLE_WORKERS && select_worker_row(st, st->view.workers, st->view.worker_rows,
                                                                 TABLE_WORKERS))
            push_pane(st, PANE_WORKER);
        break;
    case PANE_CLUSTER:
        if (select_worker_row(st, st->drill[0].rows, st->drill[0].n, TABLE_CLUSTER_DRILL))
            push_pane(st, PANE_WORKER);
        break;
    case PANE_WORKER:
        if (select_cluster_row(st, st->drill[1].rows, st->drill[1].n, TABLE_WORKER_DRILL))
            push_pane(st, PANE_CLUSTER);
        break;
    default:
        break;
    }
}

static uint32_t table_rows(const top_state_t *st, int table)
{
    switch (table) {
    case TABLE_CLUSTERS: return st->view.cluster_rows;
    case TABLE_WORKERS: return st->view.worker_rows;
    case TABLE_CLUSTER_DRILL: return st->drill[0].n;
    case TABLE_WORKER_DRILL: return st->drill[1].n;
    case TABLE_SLOW: return st->slow.n;
    default: return 0;
    }
}

/* While typing a filter: printable keys add to it, BACKSPACE removes, ENTER keeps it, ESC clears it. */
static void filter_key(top_state_t *st, int ch)
{
    size_t len = strlen(st->filter.text);
    if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
        st->typing = false;
    } else if (ch == 27) {
        st->typing = false;
        st->filter.text[0] = '\0';
    } else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
        if (len > 0)
            st->filter.text[len - 1] = '\0';
    } else if (ch >= 0x20 && ch < 0x7f && len + 1 < sizeof st->filter.text) {
        st->filter.text[len] = (char)ch;
        st->filter.text[len + 1] = '\0';
    }
    st->sel[TABLE_CLUSTERS] = st->sel[TABLE_WORKERS] = 0;
}

/* Returns false when the user asked to quit. */
static bool handle_key(top_state_t *st, int ch)
{
    if (ch == KEY_RESIZE) {
        clearok(curscr, TRUE); /* ncurses updated LINES/COLS */
        return true;
    }
    if (st->help) {
        st->help = false;
        return true;
    }
    if (st->typing) {
        filter_key(st, ch);
        rebuild_rows(st);
        return true;
    }
    int table = top_current_table(st);
    const int *cols;
    const char *const *titles;
    int ncols = table >= 0 ? top_columns(table, &cols, &titles) : 1;
    int nrows = table >= 0 ? (int)table_rows(st, table) : 0;
    int page = LINES > 10 ? LINES - 8 : 1;
    int *sel = table >= 0 ? &st->sel[table] : NULL;
    switch (ch) {
    case 'q': case 'Q': return false;
    case '\t': if (top_pane(st) == PANE_MAIN) st->table = !st->table; break;
    case 'c': st->depth = 0; st->table = TABLE_CLUSTERS; break;
    case 'w': st->depth = 0; st->table = TABLE_WORKERS; break;
    case 's': case '>': if (table >= 0) st->sort_pos[table] = (st->sort_pos[table] + 1) % ncols; break;
    case '<': if (table >= 0) st->sort_pos[table] = (st->sort_pos[table] + ncols - 1) % ncols; break;
    case 'r': if (table >= 0) st->desc[table] = !st->desc[table]; break;
    case 'p': case ' ': st->paused = !st->paused; break;
    case 'h': case '?': st->help = true; break;
    case '/': st->typing = true; break;
    case 'd': st->filter.hide_idle = !st->filter.hide_idle; break;
    case '\n': case '\r': case KEY_ENTER: case KEY_RIGHT: enter(st); break;
    case 'l': if (pick_cluster(st)) push_pane(st, PANE_LATENCY); break;
    case 'o': if (top_pane(st) != PANE_SLOW) push_pane(st, PANE_SLOW); break;
    case 27: case 'b': case KEY_LEFT: case KEY_BACKSPACE: case 127: pop_pane(st); break;
    case KEY_UP: if (sel && *sel > 0) (*sel)--; break;
    case KEY_DOWN: if (sel && *sel + 1 < nrows) (*sel)++; break;
    case KEY_PPAGE: if (sel) *sel = *sel > page ? *sel - page : 0; break;
    case KEY_NPAGE: if (sel) *sel = *sel + page < nrows ? *sel + page : (nrows > 0 ? nrows - 1 : 0); break;
    case KEY_HOME: if (sel) *sel = 0; break;
    case KEY_END: if (sel) *sel = nrows > 0 ? nrows - 1 : 0; break;
    default: return true;
    }
    rebuild_rows(st); /* sorting or filtering changed, or nothing: cheap either way */
    return true;
}

/* ---- Loop --------------------------------------------------------------- */

static void free_state(top_state_t *st)
{
    detach(st);
    msup_view_free(&st->view);
    free(st->drill[0].rows);
    free(st->drill[1].rows);
    free(st->slow.rows);
}

int msup_top_live(const char *segment_name, uid_t owner, double interval_s)
{
    top_state_t st;
    memset(&st, 0, sizeof st);
    st.name = segment_name;
    st.owner = owner;
    st.interval_s = interval_s;
    st.desc[TABLE_SLOW] = true; /* newest first */

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    /* The locale decides between Unicode blocks and ASCII in the sparklines. */
    setlocale(LC_ALL, "");
    st.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
    if (initscr() == NULL) {
        fprintf(stderr, "mongosup-top: cannot initialise the terminal (TERM=%s)\n", getenv("TERM"));
        return 1;
    }
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    /* https://no-color.org: a NO_COLOR that is set and not empty turns colour off. */
    const char *no_color = getenv("NO_COLOR");
    st.colour = has_colors() && !(no_color != NULL && no_color[0] != '\0');
    if (st.colour) {
        start_color();
        use_default_colors();
        init_pair(MSUP_HEALTH_UP, COLOR_GREEN, -1);
        init_pair(MSUP_HEALTH_DEGRADED, COLOR_YELLOW, -1);
        init_pair(MSUP_HEALTH_DOWN, COLOR_RED, -1);
        init_pair(MSUP_HEALTH_RECOVERING, COLOR_CYAN, -1);
    }

    uint64_t interval_ms = (uint64_t)(interval_s * 1000.0);
    uint64_t next = 0;
    while (!stop_requested) {
        uint64_t now = mono_ms();
        if (!st.paused && now >= next) {
            refresh_data(&st);
            next = now + interval_ms;
            top_draw(&st);
        }
        uint64_t wait = st.paused ? 1000 : (next > mono_ms() ? next - mono_ms() : 0);
        timeout((int)(wait > 1000 ? 1000 : wait));
        int ch = getch();
        if (ch == ERR)
            continue;
        if (!handle_key(&st, ch))
            break;
        top_draw(&st);
    }
    endwin();
    free_state(&st);
    return 0;
}
