/* tools_topview_test.c: the live view's models: windowed averages, sparklines, the row filter, the latency lines, the drill-down read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drill.h"
#include "filter.h"
#include "history.h"
#include "latency.h"
#include "testmain.h"
#include "tools_fixture.h"

static msup_series_t series;

/* 1 s samples: 10 of value 5 then 10 of value 1 (t = 1..20 s). */
static void fill_steps(void)
{
    memset(&series, 0, sizeof series);
    for (int t = 1; t <= 20; t++)
        msup_series_push(&series, (uint64_t)t * 1000, 1.0, t <= 10 ? 5.0 : 1.0);
}

static void test_avg_exact(void)
{
    double a;
    fill_steps();
    CU_ASSERT_TRUE(msup_series_avg(&series, 20000, 10, &a));
    CU_ASSERT_DOUBLE_EQUAL(a, 1.0, 1e-12);             /* only the last ten */
    CU_ASSERT_TRUE(msup_series_avg(&series, 20000, 100, &a));
    CU_ASSERT_DOUBLE_EQUAL(a, 3.0, 1e-12);             /* (10*5 + 10*1) / 20 */
    CU_ASSERT_TRUE(msup_series_avg(&series, 20000, 15, &a));
    CU_ASSERT_DOUBLE_EQUAL(a, (5 * 5.0 + 10 * 1.0) / 15, 1e-12);
    /* A window edge inside a sample weighs only its overlap: 10.5 s = half of the sample ending at 10 s. */
    CU_ASSERT_TRUE(msup_series_avg(&series, 20000, 10.5, &a));
    CU_ASSERT_DOUBLE_EQUAL(a, (0.5 * 5.0 + 10 * 1.0) / 10.5, 1e-12);
}

static void test_avg_unequal_intervals_and_gaps(void)
{
    double a;
    memset(&series, 0, sizeof series);
    msup_series_push(&series, 1000, 0, 99);     /* first refresh: no rate (gap) */
    msup_series_push(&series, 3000, 2.0, 10);   /* 2 s at 10 */
    msup_series_push(&series, 3500, 0.5, 40);   /* 0.5 s at 40 */
    CU_ASSERT_TRUE(msup_series_avg(&series, 3500, 10, &a));
    CU_ASSERT_DOUBLE_EQUAL(a, (2.0 * 10 + 0.5 * 40) / 2.5, 1e-12);
    double v[4];
    CU_ASSERT_EQUAL(msup_series_last(&series, v, 4), 3);
    CU_ASSERT(v[0] < 0); /* the gap stays a gap */
    CU_ASSERT_DOUBLE_EQUAL(v[2], 40, 1e-12);
    memset(&series, 0, sizeof series);
    CU_ASSERT_FALSE(msup_series_avg(&series, 3500, 10, &a));
}

static void test_ring_wraps(void)
{
    memset(&series, 0, sizeof series);
    for (int t = 1; t <= MSUP_SERIES_LEN + 50; t++)
        msup_series_push(&series, (uint64_t)t * 1000, 1.0, t);
    CU_ASSERT_EQUAL(series.count, MSUP_SERIES_LEN);
    double v[3], a;
    CU_ASSERT_EQUAL(msup_series_last(&series, v, 3), 3);
    CU_ASSERT_DOUBLE_EQUAL(v[2], MSUP_SERIES_LEN + 50, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(v[0], MSUP_SERIES_LEN + 48, 1e-12);
    /* The whole ring: mean of 51 .. LEN+50. */
    CU_ASSERT_TRUE(msup_series_avg(&series, (MSUP_SERIES_LEN + 50) * 1000ull, 1e6, &a));
    CU_ASSERT_DOUBLE_EQUAL(a, (51.0 + MSUP_SERIES_LEN + 50) / 2, 1e-9);
}

static void test_sparkline(void)
{
    char out[64];
    const double v[] = {0, 1, 3.5, 7, -1};
    CU_ASSERT_EQUAL(msup_sparkline(out, sizeof out, v, 5, false), 5);
    CU_ASSERT_STRING_EQUAL(out, "..=# ");
    CU_ASSERT_EQUAL(msup_sparkline(out, sizeof out, v, 5, true), 13);
    CU_ASSERT_STRING_EQUAL(out, "\xe2\x96\x81\xe2\x96\x82\xe2\x96\x85\xe2\x96\x88 ");
    /* A cut never leaves half a block. */
    CU_ASSERT_EQUAL(msup_sparkline(out, 5, v, 5, true), 3);
    CU_ASSERT_STRING_EQUAL(out, "\xe2\x96\x81");
    const double idle[] = {0, 0};
    msup_sparkline(out, sizeof out, idle, 2, false);
    CU_ASSERT_STRING_EQUAL(out, "..");
}

static void row(msup_view_row_t *r, const char *name, const char *pid, const char *app, bool moved)
{
    memset(r, 0, sizeof *r);
    snprintf(r->cell[MSUP_CCOL_NAME], MSUP_CELL_MAX, "%s", name);
    snprintf(r->cell[MSUP_WCOL_PID], MSUP_CELL_MAX, "%s", pid);
    snprintf(r->cell[MSUP_WCOL_APPNAME], MSUP_CELL_MAX, "%s", app);
    r->moved = moved;
}

static void test_filter(void)
{
    msup_view_row_t rows[4];
    msup_row_filter_t f = {.text = "ORD"};
    row(&rows[0], "users", "", "", true);
    row(&rows[1], "orders", "", "", true);
    row(&rows[2], "billing", "", "", false);
    row(&rows[3], "reorder", "", "", false);
    CU_ASSERT_EQUAL(msup_filter_rows(&f, rows, 4, false), 2);
    CU_ASSERT_STRING_EQUAL(rows[0].cell[MSUP_CCOL_NAME], "orders");
    CU_ASSERT_STRING_EQUAL(rows[1].cell[MSUP_CCOL_NAME], "reorder");
    f.hide_idle = true;
    CU_ASSERT_EQUAL(msup_filter_rows(&f, rows, 2, false), 1);

    msup_view_row_t w[3];
    row(&w[0], "", "4242", "web-old", false);
    row(&w[1], "", "100", "web-0", true);
    row(&w[2], "", "101", "batch", true);
    msup_row_filter_t byname = {.text = "web"}, bypid = {.text = "4242"}, idle = {.hide_idle = true};
    CU_ASSERT_TRUE(msup_filter_match(&byname, &w[0], true));
    CU_ASSERT_FALSE(msup_filter_match(&byname, &w[2], true));
    CU_ASSERT_TRUE(msup_filter_match(&bypid, &w[0], true));
    CU_ASSERT_FALSE(msup_filter_match(&bypid, &w[1], true));
    CU_ASSERT_EQUAL(msup_filter_rows(&idle, w, 3, true), 2);
    CU_ASSERT_STRING_EQUAL(w[0].cell[MSUP_WCOL_APPNAME], "web-0");
}

static void test_latency_lines(void)
{
    static uint64_t total[MSUP_HIST_BUCKETS], interval[MSUP_HIST_BUCKETS];
    memset(total, 0, sizeof total);
    memset(interval, 0, sizeof interval);
    total[msup_hist_index(80)] = 990;     /* octave [64,128) */
    total[msup_hist_index(3000)] = 10;    /* octave [2048,4096) */
    interval[msup_hist_index(3000)] = 10;
    char lines[32][MSUP_LAT_LINE];
    uint32_t n = msup_latency_render(lines, 32, interval, 10, total, 1000, 3000, 10);
    /* From the 64-128us octave to the 2-4ms one: 6 lines. */
    CU_ASSERT_EQUAL_FATAL(n, 6);
    CU_ASSERT(strncmp(lines[0], "<128us", 6) == 0);
    CU_ASSERT(strstr(lines[0], "990 ##########") != NULL); /* the largest count: a full bar */
    CU_ASSERT(strstr(lines[0], "<p50 p99") != NULL);         /* since start: rank 990 of 1000 is at 80us */
    CU_ASSERT(strstr(lines[1], "#") == NULL);               /* empty octaves: no bar */
    CU_ASSERT(strncmp(lines[5], "<4.1ms", 6) == 0);
    CU_ASSERT(strstr(lines[5], "<p50 p99 p99.9") != NULL);  /* the interval's marks */
    CU_ASSERT(strstr(lines[5], "<p99.9") != NULL);           /* since start: only p99.9 is at 3ms */
    /* Log scale: 10 of 990 is 1 + 9*ln10/ln990 = 4 marks. */
    CU_ASSERT(strstr(lines[5], " 10 #### ") != NULL);
    CU_ASSERT_EQUAL(msup_latency_render(lines, 32, interval, 0, interval, 0, 0, 10), 6 - 5); /* interval alone */
}

static void test_drill_read(void)
{
    msup_segment_t seg;
    char name[64];
    snprintf(name, sizeof name, "%s", msup_test_segment_name("topview"));
    CU_ASSERT_FATAL(fx_create(name, 0, getpid(), &seg));
    mongosup_error_t err;
    msup_snapshot_t snap;
    CU_ASSERT_FATAL(msup_snapshot_take(&seg, &snap, &err));
    msup_drill_entry_t e;
    /* Slot 0 on users: 600 reads at 80us, 300 writes at 3ms, 100 commands at 200ms. */
    msup_drill_read(&seg, &snap.workers[0], &snap.clusters[0], &e);
    CU_ASSERT_EQUAL(e.ops, 1000);
    CU_ASSERT_EQUAL(e.failures, 7);
    CU_ASSERT_EQUAL(msup_hist_index(e.p50_us), msup_hist_index(80));
    CU_ASSERT_EQUAL(e.p99_us, 200000);
    CU_ASSERT_FALSE(e.has_error);
    /* Slot 1 on users: 100 reads at 80us only; on billing: its error. */
    msup_drill_read(&seg, &snap.workers[1], &snap.clusters[0], &e);
    CU_ASSERT_EQUAL(e.ops, 100);
    CU_ASSERT_EQUAL(e.p99_us, 80);
    msup_drill_read(&seg, &snap.workers[1], &snap.clusters[2], &e);
    CU_ASSERT_TRUE(e.has_error);
    CU_ASSERT_STRING_EQUAL(e.last_error.message, FX_BILLING_ERROR);
    CU_ASSERT_EQUAL(e.failures, 9);
    msup_snapshot_free(&snap);
    msup_segment_close(&seg);
    msup_segment_unlink(name, NULL);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/topview/history/avg-exact", test_avg_exact},
        {"/topview/history/unequal-intervals-gaps", test_avg_unequal_intervals_and_gaps},
        {"/topview/history/ring-wraps", test_ring_wraps},
        {"/topview/sparkline", test_sparkline},
        {"/topview/filter", test_filter},
        {"/topview/latency/lines", test_latency_lines},
        {"/topview/drill/read", test_drill_read},
        {NULL, NULL},
    };
    return msup_test_main("tools_topview", tests, argc, argv);
}
