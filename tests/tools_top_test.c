/* tools_top_test.c: the live view of mongosup-top driven in tmux (send-keys, capture-pane), across a supervisor restart. */
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testmain.h"
#include "tools_fixture.h"

static char seg_name[64];
static char tmux[128]; /* "tmux -L <socket>" */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The screen of tmux session `session`; with `escapes`, with its attributes and colours as SGR sequences. */
static char *capture_of(const char *session, bool escapes)
{
    char cmd[256];
    int st;
    snprintf(cmd, sizeof cmd, "%s capture-pane -p %s -t %s", tmux, escapes ? "-e" : "", session);
    return fx_run(cmd, false, &st);
}

/* How long a wait for the screen may last, from the key, resize or segment
 * change it follows: mongosup-top redraws every 0.2 s, but under a
 * `make -j2 check` each capture (a tmux client) and each redraw can take
 * a second.  A deadline on the clock, not a number of rounds. */
static uint64_t screen_deadline(void)
{
    return msup_test_now_ms() + msup_test_slack_ms(20000);
}

/* Waits until the screen of `session` (with its SGR sequences when
 * `escapes`) shows `text`, or no longer shows it; returns the last capture
 * (the caller frees it) through *last when last is not NULL. */
static bool screen_wait(const char *session, bool escapes, const char *text, bool want, char **last)
{
    uint64_t deadline = screen_deadline();
    for (;;) {
        char *screen = capture_of(session, escapes);
        bool has = screen != NULL && strstr(screen, text) != NULL;
        bool late = msup_test_now_ms() >= deadline;
        if (has == want || late) {
            if (has != want)
                fprintf(stderr, "\nscreen %s '%s':\n%s\n", want ? "lacks" : "still shows", text, screen ? screen : "");
            if (last != NULL)
                *last = screen;
            else
                free(screen);
            return has == want;
        }
        free(screen);
        sleep_ms(50);
    }
}

static bool screen_of_has(const char *session, const char *text, bool want)
{
    return screen_wait(session, false, text, want, NULL);
}

static bool screen_has(const char *text, bool want)
{
    return screen_of_has("top", text, want);
}

static void keys_to(const char *session, const char *k)
{
    char cmd[256];
    int st;
    snprintf(cmd, sizeof cmd, "%s send-keys -t %s %s", tmux, session, k);
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 0);
}

static void keys(const char *k)
{
    keys_to("top", k);
}

static void test_live_view(void)
{
    if (access("/usr/bin/tmux", X_OK) != 0) {
        fprintf(stderr, "\ntmux missing: the live view test is skipped\n");
        return;
    }
    snprintf(seg_name, sizeof seg_name, "%s", msup_test_segment_name("top"));
    snprintf(tmux, sizeof tmux, "tmux -L msup-test-%d -f /dev/null", (int)getpid());
    msup_segment_t seg;
    CU_ASSERT_FATAL(fx_create(seg_name, getpid(), getpid(), &seg));

    char cmd[1024];
    int st;
    snprintf(cmd, sizeof cmd, "TERM=xterm-256color %s new-session -d -s top -x 200 -y 40 '%s -n %s -i 0.2'", tmux,
             fx_tool("mongosup-top"), seg_name);
    free(fx_run(cmd, true, &st));
    CU_ASSERT_FATAL(st == 0);

    /* The cluster rows. */
    CU_ASSERT(screen_has("CLUSTER^", true));
    CU_ASSERT(screen_has("users", true));
    CU_ASSERT(screen_has("DEGRADED", true));
    CU_ASSERT(screen_has("7/50", true));
    CU_ASSERT(screen_has("environment production", true));

    /* Keys: sort, reverse, worker table, pause, help. */
    keys("s");
    CU_ASSERT(screen_has("STATE^", true));
    keys("r");
    CU_ASSERT(screen_has("STATEv", true));
    keys("Tab");
    CU_ASSERT(screen_has("Workers: 3", true));
    CU_ASSERT(screen_has("web-old", true));
    keys("c");
    CU_ASSERT(screen_has("Clusters (TAB", true));
    keys("p");
    CU_ASSERT(screen_has("[PAUSED]", true));
    keys("p");
    CU_ASSERT(screen_has("[PAUSED]", false));
    keys("h");
    CU_ASSERT(screen_has("mongosup-top keys", true));
    keys("x");
    CU_ASSERT(screen_has("mongosup-top keys", false));

    /* Terminal resize. */
    snprintf(cmd, sizeof cmd, "%s resize-window -t top -x 90 -y 20", tmux);
    free(fx_run(cmd, true, &st));
    CU_ASSERT(screen_has("billing", true));

    /* Supervisor restart: the segment disappears, then comes back recreated. */
    msup_segment_close(&seg);
    msup_segment_unlink(seg_name, NULL);
    CU_ASSERT(screen_has("waiting", true));
    CU_ASSERT(screen_has("does not exist", true));
    CU_ASSERT_FATAL(fx_create(seg_name, getpid(), getpid(), &seg));
    strcpy(msup_segment_row(&seg, 1)->name, "reborn");
    strcpy(msup_segment_reg(&seg, 1)->name, "reborn");
    CU_ASSERT(screen_has("reborn", true));
    CU_ASSERT(screen_has("waiting", false));

    /* Corruption in place: a clear message, the view keeps running. */
    msup_segment_hdr(&seg)->layout_version = 42;
    CU_ASSERT(screen_has("layout version 42", true));
    msup_segment_hdr(&seg)->layout_version = MSUP_LAYOUT_VERSION;
    CU_ASSERT(screen_has("reborn", true));

    /* Truncated under the map: a clear message instead of a fault. */
    msup_segment_close(&seg);
    char stats_name[MSUP_NAME_MAX + 8];
    snprintf(stats_name, sizeof stats_name, "%s.stats", seg_name);
    int fd = shm_open(stats_name, O_RDWR, 0);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(ftruncate(fd, 4096) == 0);
    close(fd);
    CU_ASSERT(screen_has("truncated", true));
    msup_segment_unlink(seg_name, NULL);
    CU_ASSERT_FATAL(fx_create(seg_name, getpid(), getpid(), &seg));
    CU_ASSERT(screen_has("orders", true));

    /* q quits: the session ends with its only program. */
    keys("q");
    bool gone = false;
    for (uint64_t deadline = screen_deadline(); !gone && msup_test_now_ms() < deadline;) {
        snprintf(cmd, sizeof cmd, "%s has-session -t top", tmux);
        free(fx_run(cmd, true, &st));
        gone = st != 0;
        if (!gone)
            sleep_ms(50);
    }
    CU_ASSERT(gone);
    snprintf(cmd, sizeof cmd, "%s kill-server", tmux);
    free(fx_run(cmd, true, &st));
    msup_segment_close(&seg);
    msup_segment_unlink(seg_name, NULL);
}

/* ---- The panes of issue 15: averages, trends, drill-down, latency, filter, sort, help, no colour ---- */

/* Records TRAFFIC_PER_S reads of 80 us on (slot 1, orders) in batches
 * paced to absolute deadlines: the rate stays known whatever the load. */
#define TRAFFIC_PER_S 500
static _Atomic bool traffic_stop;

static void *traffic(void *arg)
{
    msup_stats_t *s = arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!atomic_load(&traffic_stop)) {
        for (int i = 0; i < TRAFFIC_PER_S / 20; i++)
            msup_stats_record_op(s, MSUP_OP_READ, 80);
        next.tv_nsec += 50 * 1000000L;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    return NULL;
}

static bool start_session(const char *session, const char *env, int cols, int lines)
{
    char cmd[1024];
    int st;
    /* The pane's environment is the tmux server's, plus what the command sets. */
    snprintf(cmd, sizeof cmd, "%s new-session -d -s %s -x %d -y %d 'env %s %s -n %s -i 0.2'", tmux, session, cols,
             lines, env, fx_tool("mongosup-top"), seg_name);
    free(fx_run(cmd, true, &st));
    return st == 0;
}

static void end_session(const char *session)
{
    char cmd[256];
    int st;
    snprintf(cmd, sizeof cmd, "%s kill-session -t %s", tmux, session);
    free(fx_run(cmd, true, &st));
}

static void resize(int cols, int lines)
{
    char cmd[256];
    int st;
    snprintf(cmd, sizeof cmd, "%s resize-window -t top -x %d -y %d", tmux, cols, lines);
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 0);
}

/* The screen line that holds `needle` (a copy), or NULL. */
static char *line_with(const char *session, const char *needle)
{
    char *screen = capture_of(session, false), *found = NULL;
    for (char *line = screen ? strtok(screen, "\n") : NULL; line != NULL && found == NULL; line = strtok(NULL, "\n"))
        if (strstr(line, needle) != NULL)
            found = strdup(line);
    free(screen);
    return found;
}

/* The n-th whitespace-separated field (0 = first) of the line holding
 * `needle`, the selection marker '>' not counted; NAN when absent. */
static double field_of(const char *needle, int n)
{
    char *line = line_with("top", needle);
    double v = NAN;
    int k = 0;
    for (char *f = line ? strtok(line, " ") : NULL; f != NULL; f = strtok(NULL, " ")) {
        if (strcmp(f, ">") == 0)
            continue;
        if (k++ == n) {
            char *end;
            v = strtod(f, &end);
            if (end == f)
                v = NAN;
            break;
        }
    }
    free(line);
    return v;
}

/* Waits until field n of the line holding `needle` lies in [lo, hi]. */
static bool field_within(const char *needle, int n, double lo, double hi)
{
    double v = NAN;
    for (uint64_t deadline = screen_deadline(); msup_test_now_ms() < deadline;) {
        v = field_of(needle, n);
        if (v >= lo && v <= hi)
            return true;
        sleep_ms(50);
    }
    fprintf(stderr, "\nfield %d of the '%s' line: %g, not in [%g, %g]\n", n, needle, v, lo, hi);
    return false;
}

/* Waits until the line holding `needle` holds `text`. */
static bool line_has(const char *needle, const char *text)
{
    uint64_t deadline = screen_deadline();
    for (;;) {
        char *line = line_with("top", needle);
        bool ok = line != NULL && strstr(line, text) != NULL;
        if (ok || msup_test_now_ms() >= deadline) {
            if (!ok)
                fprintf(stderr, "\nthe '%s' line lacks '%s': %s\n", needle, text, line ? line : "(no such line)");
            free(line);
            return ok;
        }
        free(line);
        sleep_ms(50);
    }
}

static void test_panes(void)
{
    if (access("/usr/bin/tmux", X_OK) != 0) {
        fprintf(stderr, "\ntmux missing: the live view test is skipped\n");
        return;
    }
    snprintf(seg_name, sizeof seg_name, "%s", msup_test_segment_name("panes"));
    snprintf(tmux, sizeof tmux, "tmux -L msup-test-%d -f /dev/null", (int)getpid());
    msup_segment_t seg;
    CU_ASSERT_FATAL(fx_create(seg_name, getpid(), getpid(), &seg));
    pthread_t tid;
    atomic_store(&traffic_stop, false);
    CU_ASSERT_FATAL(pthread_create(&tid, NULL, traffic, msup_slot_stats(&seg, 1, 1)) == 0);
    CU_ASSERT_FATAL(start_session("top", "TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8", 220, 50));

    /* Averages beside the rates: orders runs at TRAFFIC_PER_S, users is idle.
     * Fields: NAME STATE SINCE RTT OPS/S OPS-AVG10 OPS-AVG100 ERR/S ... */
    CU_ASSERT(screen_has("OPS-AVG10", true));
    CU_ASSERT(screen_has("ERR-AVG100", true));
    CU_ASSERT(field_within("orders ", 5, TRAFFIC_PER_S * 0.6, TRAFFIC_PER_S * 1.4));
    CU_ASSERT(field_within("orders ", 6, TRAFFIC_PER_S * 0.6, TRAFFIC_PER_S * 1.4));
    CU_ASSERT(field_within("users ", 5, 0, 0));
    CU_ASSERT(field_within("users ", 8, 0, 0)); /* ERR-AVG10 */
    /* Sparklines: orders' ops climb to the full block, users stays on the lowest one. */
    CU_ASSERT(screen_has("Trends, up to the last", true));
    CU_ASSERT(line_has("orders: ", "\xe2\x96\x88"));
    CU_ASSERT(line_has("users: ", "\xe2\x96\x81\xe2\x96\x81\xe2\x96\x81\xe2\x96\x81\xe2\x96\x81"));
    char *idle = line_with("top", "users: ");
    CU_ASSERT(idle != NULL && strstr(idle, "\xe2\x96\x88") == NULL); /* no full block: idle all along */
    free(idle);

    /* Sort by OPS/S, descending: orders comes first. */
    keys("s s s s");
    CU_ASSERT(screen_has("OPS/S^", true));
    keys("r");
    CU_ASSERT(screen_has("OPS/Sv", true));
    CU_ASSERT(line_has("> ", "orders"));
    keys("s s s s s s s s s s s s s s s"); /* 19 columns: back to CLUSTER */
    CU_ASSERT(screen_has("CLUSTERv", true));
    keys("r");
    CU_ASSERT(screen_has("CLUSTER^", true));

    /* Filter by typing: only users stays. */
    keys("/ u s e r");
    CU_ASSERT(screen_has("filter: user_", true));
    CU_ASSERT(screen_has("  orders ", false));
    CU_ASSERT(screen_has("billing", false));
    CU_ASSERT(screen_has("> users", true));
    keys("Enter");
    CU_ASSERT(screen_has("[user]", true));

    /* Drill into users: each worker's own percentiles (slot 0: 600 reads
     * at 80us, 300 writes at 3ms, 100 commands at 200ms; slot 1: 100 reads at 80us). */
    keys("Enter");
    CU_ASSERT(screen_has("Workers on users: 3", true));
    CU_ASSERT(screen_has("failures by class: network 5 timeout 2 ", true));
    CU_ASSERT(screen_has("server_error 7", true));
    CU_ASSERT(screen_has("budget: connections 7/50  connecting 1", true));
    CU_ASSERT(screen_has("fleet: 200 connections across 4 hosts; this host's share 50, cap 50", true));
    CU_ASSERT(line_has("web-0", " 1000 "));
    CU_ASSERT(line_has("web-0", "200.0ms"));
    CU_ASSERT(line_has("web-1", " 100 "));
    CU_ASSERT(line_has("web-1", "80us  80us"));
    resize(100, 30);
    CU_ASSERT(screen_has("Workers on users", true));
    resize(220, 50);

    /* Into a worker: the selected row, slot 0. */
    keys("Enter");
    CU_ASSERT(screen_has("Worker slot 0", true));
    CU_ASSERT(screen_has("web-0", true));
    CU_ASSERT(screen_has("Its clusters", true));
    CU_ASSERT(line_has("  orders", " 10 "));
    CU_ASSERT(screen_has("counters: ops 1010", true));
    resize(90, 25);
    CU_ASSERT(screen_has("Worker slot 0", true));
    resize(220, 50);
    /* Its cluster billing, from the table: slot 1 has billing's error, not slot 0. */
    CU_ASSERT(screen_of_has("top", "Last errors", true));
    keys("Escape");
    CU_ASSERT(screen_has("Workers on users", true));
    keys("Down Enter");
    CU_ASSERT(screen_has("Worker slot 1", true));
    CU_ASSERT(screen_has("billing: [network] " FX_BILLING_ERROR, true));
    keys("Escape Escape");
    CU_ASSERT(screen_has("Clusters (TAB", true));

    /* Latency of users: 700 at 80us, 300 at 3ms, 100 at 200ms since start. */
    keys("l");
    CU_ASSERT(screen_has("Latency of users", true));
    CU_ASSERT(screen_has("since start: 1100 ops", true));
    CU_ASSERT(line_has("<128us", " 700 "));
    CU_ASSERT(line_has("<128us", "<p50"));
    CU_ASSERT(line_has("<4.1ms", " 300 "));
    CU_ASSERT(line_has("<262.1ms", " 100 "));
    CU_ASSERT(line_has("<262.1ms", "<p99 p99.9"));
    resize(80, 24);
    CU_ASSERT(screen_has("Latency of users", true));
    resize(220, 50);
    keys("Escape");

    /* The filter cleared; d hides the worker that never moved (web-old). */
    keys("/ Escape");
    CU_ASSERT(screen_has("billing", true));
    keys("Tab");
    CU_ASSERT(screen_has("web-old", true));
    keys("d");
    CU_ASSERT(screen_has("web-old", false));
    CU_ASSERT(screen_has("web-1", true));
    keys("d");
    CU_ASSERT(screen_has("web-old", true));
    /* A filter by pid. */
    char k[64];
    snprintf(k, sizeof k, "/ %s Enter", "4 2 4 2");
    keys(k);
    CU_ASSERT(screen_has("web-old", true));
    CU_ASSERT(screen_has("web-0", false));
    keys("/ Escape");

    /* The help lists every key. */
    keys("h");
    static const char *const help[] = {"quit", "drill down", "back to the previous pane", "latency view",
                                       "slow operations", "filter rows",
                                       "never moved", "sort by the next column", "reverse the sort", "pause",
                                       "this help"};
    for (size_t i = 0; i < sizeof help / sizeof help[0]; i++)
        CU_ASSERT(screen_has(help[i], true));
    keys("x");
    CU_ASSERT(screen_has("mongosup-top keys", false));

    /* The slow operations: the fixture's rings, newest first. */
    keys("o");
    CU_ASSERT(screen_has("Slow operations since start: users 5 orders 0 billing 0", true));
    CU_ASSERT(line_has(" find ", "app"));
    CU_ASSERT(line_has(" find ", "orders"));
    CU_ASSERT(line_has(" find ", "532.0ms"));
    CU_ASSERT(line_has(" find ", "db1.example:27017"));
    CU_ASSERT(line_has(" insert ", "network (failed)"));
    CU_ASSERT(line_has("> ", " insert ")); /* newest first: the insert came last */
    keys("/ b i l l Enter");
    CU_ASSERT(screen_has(" find ", false));
    CU_ASSERT(line_has(" insert ", "invoices"));
    resize(100, 30);
    CU_ASSERT(screen_has("Slow operations since start", true));
    resize(220, 50);
    keys("/ Escape");
    CU_ASSERT(screen_has(" find ", true));
    keys("b");
    CU_ASSERT(screen_has("Workers: 3 (TAB", true)); /* back where 'o' was pressed */

    /* Colour: DOWN is red. */
    keys("c");
    CU_ASSERT(screen_wait("top", true, "31mDOWN", true, NULL));

    /* Without colour (NO_COLOR, then a terminal without colours): the
     * states stand out by attribute, DOWN in reverse video, and no colour is sent. */
    static const char *const plain_env[] = {"TERM=xterm-256color NO_COLOR=1", "TERM=vt100"};
    for (int e = 0; e < 2; e++) {
        CU_ASSERT_FATAL(start_session("plain", plain_env[e], 200, 40));
        CU_ASSERT(screen_of_has("plain", "[no colour]", true));
        CU_ASSERT(screen_of_has("plain", "DEGRADED", true));
        /* The colour check reads the capture that shows DOWN drawn (a
         * capture taken right after DEGRADED appeared could hold a frame
         * the pane had not finished drawing, without the billing row). */
        char *screen = NULL;
        CU_ASSERT(screen_wait("plain", true, "7mDOWN", true, &screen));
        CU_ASSERT(screen != NULL && strstr(screen, "31m") == NULL && strstr(screen, "38;5") == NULL);
        if (screen && (strstr(screen, "7mDOWN") == NULL || strstr(screen, "31m") != NULL))
            fprintf(stderr, "\nplain screen (%s):\n%s\n", plain_env[e], screen);
        free(screen);
        end_session("plain");
    }

    end_session("top");
    atomic_store(&traffic_stop, true);
    pthread_join(tid, NULL);
    char cmd[256];
    int st;
    snprintf(cmd, sizeof cmd, "%s kill-server", tmux);
    free(fx_run(cmd, true, &st));
    msup_segment_close(&seg);
    msup_segment_unlink(seg_name, NULL);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/top/live/tmux", test_live_view},
        {"/top/live/panes", test_panes},
        {NULL, NULL},
    };
    return msup_test_main("tools_top", tests, argc, argv);
}
