/* top.c: the live curses view of mongosup-top: header, cluster and worker tables, keys, resize, re-attach. */
#include <curses.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "export.h"
#include "top.h"

enum { TABLE_CLUSTERS = 0, TABLE_WORKERS = 1 };
enum { PAIR_UP = 1, PAIR_DEGRADED, PAIR_DOWN, PAIR_TITLE };

typedef struct top_state {
    const char *name;
    uid_t owner;
    double interval_s;
    msup_segment_t seg;
    bool attached;
    msup_snapshot_t now, prev;
    bool have_now, have_prev;
    msup_view_t view;
    char status[sizeof(((mongosup_error_t *)0)->message) + 64]; /* why there is nothing to show */
    int table;
    bool paused, help, desc[2];
    int sort_col[2];
    int top_row;      /* first row shown in the current table (scrolling) */
    unsigned attaches;
} top_state_t;

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

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
}

static void rebuild_view(top_state_t *st)
{
    if (!st->have_now)
        return;
    if (!msup_view_build(&st->view, &st->now, st->have_prev ? &st->prev : NULL)) {
        snprintf(st->status, sizeof st->status, "out of memory");
        return;
    }
    msup_view_sort_clusters(&st->view, st->sort_col[TABLE_CLUSTERS], st->desc[TABLE_CLUSTERS]);
    msup_view_sort_workers(&st->view, st->sort_col[TABLE_WORKERS], st->desc[TABLE_WORKERS]);
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
    st->status[0] = '\0';
    rebuild_view(st);
}

static void put_line(int y, int x, const char *text)
{
    if (y < LINES && x < COLS)
        mvaddnstr(y, x, text, COLS - x);
}

/* Draws one table from row `first`; returns the number of rows that fit. */
static int draw_table(int y, const char *const *titles, int ncols, const msup_view_row_t *rows, uint32_t n,
                      int first, int sort_col, bool desc, bool colour_state)
{
    int width[MSUP_VIEW_COLS];
    for (int c = 0; c < ncols; c++) {
        width[c] = (int)strlen(titles[c]) + 1; /* room for the sort arrow */
        for (uint32_t r = 0; r < n; r++) {
            int w = (int)strlen(rows[r].cell[c]);
            if (w > width[c])
                width[c] = w;
        }
    }
    if (y >= LINES)
        return 0;
    attron(COLOR_PAIR(PAIR_TITLE) | A_REVERSE);
    move(y, 0);
    clrtoeol();
    int x = 0;
    for (int c = 0; c < ncols && x < COLS; c++) {
        char t[64];
        snprintf(t, sizeof t, "%s%s", titles[c], c == sort_col ? (desc ? "v" : "^") : "");
        mvaddnstr(y, x, t, COLS - x);
        x += width[c] + 2;
    }
    attroff(COLOR_PAIR(PAIR_TITLE) | A_REVERSE);
    int shown = 0;
    for (uint32_t r = (uint32_t)first; r < n && y + 1 + shown < LINES - 1; r++, shown++) {
        x = 0;
        for (int c = 0; c < ncols && x < COLS; c++) {
            int pair = 0;
            if (colour_state && c == MSUP_CCOL_STATE)
                pair = rows[r].health == MSUP_HEALTH_UP         ? PAIR_UP
                       : rows[r].health == MSUP_HEALTH_DEGRADED ? PAIR_DEGRADED
                                                                : PAIR_DOWN;
            if (pair && has_colors())
                attron(COLOR_PAIR(pair) | A_BOLD);
            mvaddnstr(y + 1 + shown, x, rows[r].cell[c], COLS - x);
            if (pair && has_colors())
                attroff(COLOR_PAIR(pair) | A_BOLD);
            x += width[c] + 2;
        }
    }
    return shown;
}

static void draw_help(void)
{
    static const char *const lines[] = {
        "mongosup-top keys",
        "",
        "  q          quit",
        "  TAB        switch between the cluster and worker tables",
        "  c / w      show the cluster / worker table",
        "  > or s     sort by the next column",
        "  <          sort by the previous column",
        "  r          reverse the sort order",
        "  p / SPACE  pause / resume refreshing",
        "  UP / DOWN  scroll the table (PgUp / PgDn: a page)",
        "  h / ?      show / hide this help",
        "",
        "Rates are the difference between two refreshes.",
        "press any key",
    };
    int n = (int)(sizeof lines / sizeof lines[0]);
    int w = 60, h = n + 2;
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

static void draw(top_state_t *st)
{
    erase();
    char title[256];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    char clock[16];
    strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    snprintf(title, sizeof title, "mongosup-top %s  every %.1fs  %s%s", st->name, st->interval_s, clock,
             st->paused ? "  [PAUSED]" : "");
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
        if (st->table == TABLE_CLUSTERS) {
            put_line(y++, 0, "Clusters (TAB: workers)");
            if (st->view.cluster_rows == 0)
                put_line(y + 1, 0, "no cluster configured yet");
            draw_table(y, msup_cluster_col_title, MSUP_CCOL__COUNT, st->view.clusters, st->view.cluster_rows,
                       st->top_row, st->sort_col[0], st->desc[0], true);
        } else {
            char line[96];
            snprintf(line, sizeof line, "Workers: %u (TAB: clusters)", st->view.worker_rows);
            put_line(y++, 0, line);
            if (st->view.worker_rows == 0)
                put_line(y + 1, 0, "no worker attached");
            draw_table(y, msup_worker_col_title, MSUP_WCOL__COUNT, st->view.workers, st->view.worker_rows,
                       st->top_row, st->sort_col[1], st->desc[1], false);
        }
        if (st->status[0]) /* a stale view with the reason it is stale */
            put_line(LINES - 2, 0, st->status);
    }
    attron(A_REVERSE);
    move(LINES - 1, 0);
    clrtoeol();
    put_line(LINES - 1, 0, "q quit  TAB tables  s/< sort  r reverse  p pause  h help");
    attroff(A_REVERSE);
    if (st->help)
        draw_help();
    refresh();
}

static uint64_t mono_ms(void)
{
    return msup_mono_ns() / 1000000ull;
}

/* Returns false when the user asked to quit. */
static bool handle_key(top_state_t *st, int ch)
{
    if (st->help && ch != KEY_RESIZE) {
        st->help = false;
        return true;
    }
    int ncols = st->table == TABLE_CLUSTERS ? MSUP_CCOL__COUNT : MSUP_WCOL__COUNT;
    uint32_t nrows = st->table == TABLE_CLUSTERS ? st->view.cluster_rows : st->view.worker_rows;
    int page = LINES > 10 ? LINES - 8 : 1;
    switch (ch) {
    case 'q': case 'Q': return false;
    case '\t': st->table = !st->table; st->top_row = 0; break;
    case 'c': st->table = TABLE_CLUSTERS; st->top_row = 0; break;
    case 'w': st->table = TABLE_WORKERS; st->top_row = 0; break;
    case 's': case '>': st->sort_col[st->table] = (st->sort_col[st->table] + 1) % ncols; break;
    case '<': st->sort_col[st->table] = (st->sort_col[st->table] + ncols - 1) % ncols; break;
    case 'r': st->desc[st->table] = !st->desc[st->table]; break;
    case 'p': case ' ': st->paused = !st->paused; break;
    case 'h': case '?': st->help = true; break;
    case KEY_UP: if (st->top_row > 0) st->top_row--; break;
    case KEY_DOWN: if ((uint32_t)st->top_row + 1 < nrows) st->top_row++; break;
    case KEY_PPAGE: st->top_row = st->top_row > page ? st->top_row - page : 0; break;
    case KEY_NPAGE: if ((uint32_t)(st->top_row + page) < nrows) st->top_row += page; break;
    case KEY_RESIZE: clearok(curscr, TRUE); break; /* ncurses updated LINES/COLS */
    default: return true;
    }
    rebuild_view(st); /* sorting changed, or nothing: cheap either way */
    return true;
}

int msup_top_live(const char *segment_name, uid_t owner, double interval_s)
{
    top_state_t st;
    memset(&st, 0, sizeof st);
    st.name = segment_name;
    st.owner = owner;
    st.interval_s = interval_s;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    if (initscr() == NULL) {
        fprintf(stderr, "mongosup-top: cannot initialise the terminal (TERM=%s)\n", getenv("TERM"));
        return 1;
    }
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    if (has_colors()) {
        start_color();
        use_default_colors();
        init_pair(PAIR_UP, COLOR_GREEN, -1);
        init_pair(PAIR_DEGRADED, COLOR_YELLOW, -1);
        init_pair(PAIR_DOWN, COLOR_RED, -1);
        init_pair(PAIR_TITLE, -1, -1);
    }

    uint64_t interval_ms = (uint64_t)(interval_s * 1000.0);
    uint64_t next = 0;
    while (!stop_requested) {
        uint64_t now = mono_ms();
        if (!st.paused && now >= next) {
            refresh_data(&st);
            next = now + interval_ms;
            draw(&st);
        }
        uint64_t wait = st.paused ? 1000 : (next > mono_ms() ? next - mono_ms() : 0);
        timeout((int)(wait > 1000 ? 1000 : wait));
        int ch = getch();
        if (ch == ERR)
            continue;
        if (!handle_key(&st, ch))
            break;
        draw(&st);
    }
    endwin();
    detach(&st);
    msup_view_free(&st.view);
    return 0;
}
