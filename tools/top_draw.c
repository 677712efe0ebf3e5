/* top_draw.c: draws the live view: header, tables with trends, drill-downs, latency and slow-operation panes, help. */
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drill.h"
#include "history.h"
#include "latency.h"
#include "textsafe.h"
#include "top_state.h"

/* The bytes of `text` that fill at most `columns` columns: curses counts
 * bytes, a sparkline block is three of them and one column. */
static int bytes_for_columns(const char *text, int columns)
{
    int n = 0;
    for (int used = 0; text[n] != '\0'; n++) {
        if (((unsigned char)text[n] & 0xC0) != 0x80 && used++ == columns)
            break;
    }
    return n;
}

static void put_line(int y, int x, const char *text)
{
    if (y >= 0 && y < LINES && x < COLS)
        mvaddnstr(y, x, text, bytes_for_columns(text, COLS - x));
}

/* How a state stands out: its colour, or without colour an attribute that
 * reads on any terminal (the state's name is always written as well). */
static attr_t health_attr(const top_state_t *st, uint32_t health)
{
    if (st->colour && health >= MSUP_HEALTH_UP && health <= MSUP_HEALTH_RECOVERING)
        return COLOR_PAIR((short)health) | A_BOLD;
    switch (health) {
    case MSUP_HEALTH_DEGRADED: return A_BOLD;
    case MSUP_HEALTH_DOWN: return A_REVERSE | A_BOLD;
    case MSUP_HEALTH_RECOVERING: return A_UNDERLINE;
    default: return A_NORMAL;
    }
}

/* Draws one table with a selection marker; `first` is adjusted so that the
 * selected row is visible.  Returns the screen line after the table. */
static int draw_table(top_state_t *st, int y, int table, const msup_view_row_t *rows, uint32_t n, int max_rows,
                      int state_col)
{
    const int *cols;
    const char *const *titles;
    int ncols = top_columns(table, &cols, &titles);
    int width[MSUP_VIEW_COLS];
    for (int i = 0; i < ncols; i++) {
        width[i] = (int)strlen(titles[cols[i]]) + 1; /* room for the sort arrow */
        for (uint32_t r = 0; r < n; r++) {
            int w = (int)strlen(rows[r].cell[cols[i]]);
            if (w > width[i])
                width[i] = w;
        }
    }
    if (y >= LINES - 1)
        return y;
    int sort = st->sort_pos[table] % ncols, sel = st->sel[table];
    attron(A_REVERSE);
    move(y, 0);
    clrtoeol();
    int x = 2;
    for (int i = 0; i < ncols && x < COLS; i++) {
        char t[64];
        snprintf(t, sizeof t, "%s%s", titles[cols[i]], i == sort ? (st->desc[table] ? "v" : "^") : "");
        mvaddnstr(y, x, t, COLS - x);
        x += width[i] + 2;
    }
    attroff(A_REVERSE);
    y++;
    if (max_rows < 1)
        max_rows = 1;
    int first = sel >= max_rows ? sel - max_rows + 1 : 0;
    for (uint32_t r = (uint32_t)first; r < n && (int)(r - (uint32_t)first) < max_rows && y < LINES - 1; r++, y++) {
        bool selected = (int)r == sel;
        put_line(y, 0, selected ? ">" : " ");
        x = 2;
        for (int i = 0; i < ncols && x < COLS; i++) {
            attr_t a = cols[i] == state_col ? health_attr(st, rows[r].health) : A_NORMAL;
            if (selected)
                a |= A_BOLD;
            attron(a);
            mvaddnstr(y, x, rows[r].cell[cols[i]], bytes_for_columns(rows[r].cell[cols[i]], COLS - x));
            attroff(a);
            x += width[i] + 2;
        }
    }
    return y;
}

/* Sparklines of ops/s, errors/s and p99 per shown cluster. */
static int draw_trends(top_state_t *st, int y)
{
    if (y + 2 >= LINES - 1 || st->view.cluster_rows == 0)
        return y;
    int w = (COLS - 2 - 16 - 3 * 10) / 3; /* name, then three labelled sparklines */
    w = w < 8 ? 8 : w > 120 ? 120 : w;
    char title[160];
    snprintf(title, sizeof title, "Trends, up to the last %d refreshes (%.0f s): ops/s, errors/s, p99", w,
             w * st->interval_s);
    put_line(++y, 0, title);
    y++;
    for (uint32_t r = 0; r < st->view.cluster_rows && y < LINES - 2; r++, y++) {
        const msup_view_row_t *row = &st->view.clusters[r];
        const msup_cluster_history_t *h = msup_history_find(&st->history, st->now.clusters[row->src].name);
        if (h == NULL)
            continue;
        double v[120];
        char line[1200];
        char name[MSUP_CELL_MAX + 1];
        snprintf(name, sizeof name, "%s:", row->cell[MSUP_CCOL_NAME]);
        int len = snprintf(line, sizeof line, "  %-15.15s", name);
        const msup_series_t *series[3] = {&h->ops, &h->errors, &h->p99_us};
        static const char *const label[3] = {"ops/s", "errors/s", "p99"};
        for (int k = 0; k < 3; k++) {
            char spark[120 * 3 + 1];
            size_t bytes = msup_sparkline(spark, sizeof spark, v, msup_series_last(series[k], v, (uint32_t)w), st->utf8);
            /* A UTF-8 block is 3 bytes and one column: pad by columns. */
            int columns = (int)(st->utf8 ? bytes / 3 : bytes);
            len += snprintf(line + len, sizeof line - (size_t)len, " %s %s%*s ", label[k], spark, w - columns, "");
        }
        put_line(y, 0, line);
    }
    return y;
}

static int draw_main(top_state_t *st, int y)
{
    int room = LINES - y - 3;
    if (st->table == TABLE_CLUSTERS) {
        put_line(y++, 0, "Clusters (TAB: workers, ENTER: drill down, l: latency, o: slow operations)");
        if (st->view.cluster_rows == 0)
            put_line(y + 1, 2, st->have_now && st->now.cluster_count ? "no cluster matches the filter"
                                                                      : "no cluster configured yet");
        int trends = (int)st->view.cluster_rows + 2;
        int rows = room - 1 - trends;
        if (rows < (int)st->view.cluster_rows)
            rows = room - 1; /* a long table: the trends give way */
        y = draw_table(st, y, TABLE_CLUSTERS, st->view.clusters, st->view.cluster_rows, rows, MSUP_CCOL_STATE);
        y = draw_trends(st, y);
    } else {
        char line[128];
        snprintf(line, sizeof line, "Workers: %u (TAB: clusters, ENTER: drill down)", st->view.worker_rows);
        put_line(y++, 0, line);
        if (st->view.worker_rows == 0)
            put_line(y + 1, 2, "no worker attached");
        y = draw_table(st, y, TABLE_WORKERS, st->view.workers, st->view.worker_rows, room - 1, -1);
    }
    return y;
}

static void draw_cluster_pane(top_state_t *st, int y)
{
    const msup_cluster_snap_t *c = top_sel_cluster(st);
    char name[MSUP_CELL_MAX], line[600];
    msup_text_escape(name, sizeof name, st->sel_cluster, sizeof st->sel_cluster);
    if (c == NULL) {
        snprintf(line, sizeof line, "Cluster %s is no longer in the segment (ESC: back)", name);
        put_line(y, 0, line);
        return;
    }
    const msup_totals_t *t = &c->totals;
    snprintf(line, sizeof line, "Cluster %s  ", name);
    put_line(y, 0, line);
    attron(health_attr(st, c->health));
    addstr(msup_health_name(c->health));
    attroff(health_attr(st, c->health));
    char p50[16], p99[16];
    msup_fmt_latency_us(p50, sizeof p50, c->p50_us);
    msup_fmt_latency_us(p99, sizeof p99, c->p99_us);
    snprintf(line, sizeof line, "  ops %llu  errors %llu  p50 %s  p99 %s  (ESC: back, ENTER: worker, l: latency)",
             (unsigned long long)msup_totals_ops(t), (unsigned long long)msup_totals_failures(t),
             t->hist_count ? p50 : "-", t->hist_count ? p99 : "-");
    addnstr(line, COLS - getcurx(stdscr) > 0 ? COLS - getcurx(stdscr) : 0);
    y++;
    size_t len = (size_t)snprintf(line, sizeof line, "failures by class:");
    for (int f = 0; f < MSUP_FAIL__COUNT && len < sizeof line; f++)
        len += (size_t)snprintf(line + len, sizeof line - len, " %s %llu", msup_fail_class_name((enum msup_fail_class)f),
                                (unsigned long long)t->failures[f]);
    put_line(y++, 0, line);
    char conns[32];
    if (c->max_connections)
        snprintf(conns, sizeof conns, "%lld/%u", (long long)c->budget_in_use, c->max_connections);
    else
        snprintf(conns, sizeof conns, "%lld/unlimited", (long long)c->budget_in_use);
    snprintf(line, sizeof line,
             "pool: in use %lld  idle %lld  created %lld  max %lld  checkouts %llu  waits %llu  timeouts %llu   "
             "budget: connections %s  connecting %lld  tokens held %lld  budget waits %llu",
             (long long)t->pool_in_use, (long long)t->pool_idle, (long long)t->pool_created, (long long)t->pool_max,
             (unsigned long long)t->checkouts, (unsigned long long)t->checkout_waits,
             (unsigned long long)t->checkout_timeouts, conns, (long long)c->budget_connecting,
             (long long)t->budget_tokens, (unsigned long long)t->budget_waits);
    put_line(y++, 0, line);
    if (c->fleet_max_connections != 0) {
        /* mongosupd's fleet thread mirrors what etcd said (docs/fleet.md). */
        snprintf(line, sizeof line, "fleet: %u connections across %u hosts; this host's share %u, cap %u",
                 c->fleet_max_connections, c->fleet_hosts, c->fleet_share, c->max_connections);
        put_line(y++, 0, line);
    }
    char err[MSUP_ERRMSG_MAX * 4 + 64], age[32] = "";
    bool has = c->last_error.time_ns != 0;
    if (has)
        msup_fmt_duration_s(age, sizeof age,
                            st->now.taken_ns > c->last_error.time_ns
                                ? (st->now.taken_ns - c->last_error.time_ns) / 1000000000ull
                                : 0);
    size_t n = (size_t)snprintf(err, sizeof err, has ? "last error (%s ago): " : "last error: none", age);
    if (has)
        top_fmt_error(err + n, sizeof err - n, &c->last_error, true);
    put_line(y++, 0, err);
    y++;
    char title[160];
    snprintf(title, sizeof title, "Workers on %s: %u (each from its own slot and histogram)", name, st->drill[0].n);
    put_line(y++, 0, title);
    draw_table(st, y, TABLE_CLUSTER_DRILL, st->drill[0].rows, st->drill[0].n, LINES - y - 3, -1);
}

static void draw_worker_pane(top_state_t *st, int y)
{
    const msup_worker_snap_t *w = top_sel_worker(st);
    char line[600], app[MSUP_CELL_MAX];
    if (w == NULL) {
        snprintf(line, sizeof line, "Worker slot %u pid %d has left the segment (ESC: back)", st->sel_slot,
                 (int)st->sel_pid);
        put_line(y, 0, line);
        return;
    }
    char age[32];
    msup_fmt_duration_s(age, sizeof age,
                        w->attached_ns && st->now.taken_ns > w->attached_ns
                            ? (st->now.taken_ns - w->attached_ns) / 1000000000ull
                            : 0);
    msup_text_escape(app, sizeof app, w->appname[0] ? w->appname : "-", sizeof w->appname);
    snprintf(line, sizeof line, "Worker slot %u  pid %d  %s  state %s  age %s  (ESC: back, ENTER: cluster)", w->slot,
             (int)w->pid, app, msup_slot_state_name(w->state), age);
    put_line(y++, 0, line);
    snprintf(line, sizeof line, "counters: ops %llu  errors %llu  checkouts %llu  clients in use %lld%s",
             (unsigned long long)w->ops, (unsigned long long)w->failures, (unsigned long long)w->checkouts,
             (long long)w->in_use, w->uri_mismatch ? "  uri_mismatch" : "");
    put_line(y++, 0, line);
    y++;
    put_line(y++, 0, "Its clusters");
    y = draw_table(st, y, TABLE_WORKER_DRILL, st->drill[1].rows, st->drill[1].n, LINES - y - 6, DC_STATE);
    put_line(++y, 0, "Last errors");
    y++;
    bool any = false;
    for (uint32_t i = 0; st->attached && i < st->now.cluster_count && y < LINES - 1; i++) {
        const msup_cluster_snap_t *c = &st->now.clusters[i];
        msup_drill_entry_t e;
        msup_drill_read(&st->seg, w, c, &e);
        if (!e.has_error)
            continue;
        char name[MSUP_CELL_MAX], when[32], text[MSUP_ERRMSG_MAX * 4 + 32];
        msup_text_escape(name, sizeof name, c->name, sizeof c->name);
        msup_fmt_duration_s(when, sizeof when,
                            st->now.taken_ns > e.last_error.time_ns ? (st->now.taken_ns - e.last_error.time_ns) / 1000000000ull : 0);
        top_fmt_error(text, sizeof text, &e.last_error, true);
        snprintf(line, sizeof line, "  %s: %s (%s ago)", name, text, when);
        put_line(y++, 0, line);
        any = true;
    }
    if (!any)
        put_line(y, 2, "none");
}

static void draw_latency_pane(top_state_t *st, int y)
{
    const msup_cluster_snap_t *c = top_sel_cluster(st);
    char name[MSUP_CELL_MAX], line[MSUP_LAT_LINE];
    msup_text_escape(name, sizeof name, st->sel_cluster, sizeof st->sel_cluster);
    if (c == NULL) {
        snprintf(line, sizeof line, "Cluster %s is no longer in the segment (ESC: back)", name);
        put_line(y, 0, line);
        return;
    }
    static uint64_t interval[MSUP_HIST_BUCKETS];
    const msup_cluster_snap_t *p = NULL;
    for (uint32_t i = 0; st->have_prev && i < st->prev.cluster_count; i++)
        if (strcmp(st->prev.clusters[i].name, c->name) == 0)
            p = &st->prev.clusters[i];
    uint64_t n = 0;
    if (p != NULL)
        n = msup_hist_interval(interval, &c->totals, &p->totals);
    else
        memset(interval, 0, sizeof interval);
    const msup_totals_t *t = &c->totals;
    char q[3][2][16];
    static const double qs[3] = {0.50, 0.99, 0.999};
    for (int i = 0; i < 3; i++) {
        msup_fmt_latency_us(q[i][0], sizeof q[i][0], msup_hist_quantile(interval, n, UINT64_MAX, qs[i]));
        msup_fmt_latency_us(q[i][1], sizeof q[i][1], msup_hist_quantile(t->hist, t->hist_count, t->hist_max_us, qs[i]));
    }
    snprintf(line, sizeof line, "Latency of %s (log scale: a bar grows with the log of the count; ESC: back)", name);
    put_line(y++, 0, line);
    snprintf(line, sizeof line, "last interval: %llu ops  p50 %s  p99 %s  p99.9 %s   since start: %llu ops  p50 %s  "
                                "p99 %s  p99.9 %s",
             (unsigned long long)n, n ? q[0][0] : "-", n ? q[1][0] : "-", n ? q[2][0] : "-",
             (unsigned long long)t->hist_count, t->hist_count ? q[0][1] : "-", t->hist_count ? q[1][1] : "-",
             t->hist_count ? q[2][1] : "-");
    put_line(y++, 0, line);
    y++;
    int bar = (COLS - 60) / 2;
    bar = bar < 5 ? 5 : bar > 100 ? 100 : bar;
    msup_latency_title(line, sizeof line, bar);
    attron(A_REVERSE);
    put_line(y++, 0, line);
    attroff(A_REVERSE);
    char lines[MSUP_HIST_OCTAVES][MSUP_LAT_LINE];
    uint32_t k = msup_latency_render(lines, MSUP_HIST_OCTAVES, interval, n, t->hist, t->hist_count, t->hist_max_us,
                                     bar);
    if (k == 0)
        put_line(y, 2, "no operation yet");
    for (uint32_t i = 0; i < k && y < LINES - 1; i++)
        put_line(y++, 0, lines[i]);
}

static void draw_slow_pane(top_state_t *st, int y)
{
    char line[600];
    size_t len = (size_t)snprintf(line, sizeof line, "Slow operations since start:");
    for (uint32_t i = 0; i < st->now.cluster_count && len < sizeof line; i++) {
        char name[MSUP_CELL_MAX];
        msup_text_escape(name, sizeof name, st->now.clusters[i].name, sizeof st->now.clusters[i].name);
        len += (size_t)snprintf(line + len, sizeof line - len, " %s %llu", name,
                                (unsigned long long)st->now.clusters[i].totals.slow_ops);
    }
    msup_text_cut_tail(line);
    put_line(y++, 0, line);
    snprintf(line, sizeof line, "The newest %u entries of the workers' rings (slow_op_ms, log_failed_ops; ESC: back)",
             st->slow.n);
    put_line(y++, 0, line);
    if (st->slow.n == 0)
        put_line(y + 2, 2, "no slow operation recorded (slow_op_ms = 0 turns the log off)");
    draw_table(st, y + 1, TABLE_SLOW, st->slow.rows, st->slow.n, LINES - y - 4, -1);
}

static void draw_help(void)
{
    static const char *const lines[] = {
        "mongosup-top keys",
        "",
        "  q            quit",
        "  TAB          switch between the cluster and worker tables",
        "  c / w        the cluster / worker table (from any pane)",
        "  UP / DOWN    select a row (PgUp / PgDn: a page; HOME / END)",
        "  ENTER / ->   drill down: a cluster's workers, a worker's clusters",
        "  ESC / b / <- back to the previous pane",
        "  l            latency view of the selected cluster",
        "  o            slow operations (newest first; / filters by cluster)",
                "  /            filter rows by name or pid: type, ENTER keeps,",
        "               ESC clears",
        "  d            hide / show rows that never moved",
        "  > or s       sort by the next column",
        "  <            sort by the previous column",
        "  r            reverse the sort order",
        "  p / SPACE    pause / resume refreshing",
        "  h / ?        show / hide this help",
        "",
        "Rates are the difference between two refreshes; AVG10 and",
        "AVG100 are their time averages over 10 s and 100 s.",
        "press any key",
    };
    int n = (int)(sizeof lines / sizeof lines[0]);
    int w = 70, h = n + 2;
    int y0 = LINES > h ? (LINES - h) / 2 : 0, x0 = COLS > w ? (COLS - w) / 2 : 0;
    for (int i = 0; i < h && y0 + i < LINES; i++) {
        move(y0 + i, x0);
        for (int k = 0; k < w && x0 + k < COLS; k++)
            addch(' ' | A_REVERSE);
    }
    attron(A_REVERSE);
    for (int i = 0; i < n; i++)
        put_line(y0 + 1 + i, x0 + 2, lines[i]);
    attroff(A_REVERSE);
}

static void draw_footer(const top_state_t *st)
{
    char line[256];
    if (st->typing)
        snprintf(line, sizeof line, "filter: %s_   (ENTER keeps it, ESC clears it)", st->filter.text);
    else
        snprintf(line, sizeof line, "q quit  ENTER drill  ESC back  l latency  o slow  / filter%s%s%s  d %s  s/< sort  "
                 "r reverse  p pause  h help",
                 st->filter.text[0] ? " [" : "", st->filter.text, st->filter.text[0] ? "]" : "",
                 st->filter.hide_idle ? "[idle hidden]" : "hide idle");
    attron(A_REVERSE);
    move(LINES - 1, 0);
    clrtoeol();
    put_line(LINES - 1, 0, line);
    attroff(A_REVERSE);
}

void top_draw(top_state_t *st)
{
    erase();
    char title[256], clock[16];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    snprintf(title, sizeof title, "mongosup-top %s  every %.1fs  %s%s%s", st->name, st->interval_s, clock,
             st->paused ? "  [PAUSED]" : "", st->colour ? "" : "  [no colour]");
    attron(A_BOLD);
    put_line(0, 0, title);
    attroff(A_BOLD);
    int y = 1;
    if (!st->have_now) {
        put_line(2, 0, st->status[0] ? st->status : "reading the segment...");
    } else {
        for (uint32_t i = 0; i < st->view.header_lines; i++)
            put_line(y++, 0, st->view.header[i]);
        y++;
        switch (top_pane(st)) {
        case PANE_CLUSTER: draw_cluster_pane(st, y); break;
        case PANE_WORKER: draw_worker_pane(st, y); break;
        case PANE_LATENCY: draw_latency_pane(st, y); break;
        case PANE_SLOW: draw_slow_pane(st, y); break;
        default: draw_main(st, y); break;
        }
        if (st->status[0]) /* a stale view with the reason it is stale */
            put_line(LINES - 2, 0, st->status);
    }
    draw_footer(st);
    if (st->help)
        draw_help();
    refresh();
}
