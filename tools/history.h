/* history.h: the monitor's own history of rates (not the segment's): rings of samples, windowed averages, sparklines. */
#ifndef MONGOSUP_TOOLS_HISTORY_H
#define MONGOSUP_TOOLS_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"

/*
 * A series is a ring of samples, one per refresh: the value measured over
 * the interval (dt_s) that ended at end_ms (monotonic milliseconds).  A
 * windowed average weighs each sample by the part of its interval inside
 * the window, so averages over 10 s and 100 s are exact time averages
 * whatever the refresh interval (varnishstat's Avg_10 / Avg_100 are the
 * same idea).  An unknown value (a rate without a previous snapshot) is
 * kept as a gap: it counts in no average and draws as a blank.
 */
#define MSUP_SERIES_LEN 512 /* 8.5 minutes at the default 1 s refresh */

typedef struct msup_series {
    uint64_t end_ms[MSUP_SERIES_LEN];
    double dt_s[MSUP_SERIES_LEN];
    double value[MSUP_SERIES_LEN]; /* < 0: unknown */
    uint32_t next, count;
} msup_series_t;

void msup_series_push(msup_series_t *s, uint64_t end_ms, double dt_s, double value);
/* Time-weighted mean of the known samples over (now_ms - window_s, now_ms];
 * false when no known sample overlaps the window. */
bool msup_series_avg(const msup_series_t *s, uint64_t now_ms, double window_s, double *out);
/* The newest min(n, count) values, oldest first; returns how many. */
uint32_t msup_series_last(const msup_series_t *s, double *out, uint32_t n);

/* Draws values (oldest first) scaled from 0 to their maximum: one Unicode
 * block (U+2581..U+2588) per value, or one of " .:-=+*#" in ASCII; an
 * unknown value is a space, zero the lowest mark.  Returns the length. */
size_t msup_sparkline(char *out, size_t cap, const double *values, uint32_t n, bool utf8);

/* ops/s, errors/s and the p99 of each interval, per cluster (by name: rows
 * move after a reload).  A cluster that disappears keeps its history until
 * the history is reset (the segment was recreated). */
typedef struct msup_cluster_history {
    char name[MSUP_NAME_MAX];
    msup_series_t ops, errors, p99_us;
} msup_cluster_history_t;

typedef struct msup_history {
    msup_cluster_history_t *clusters;
    uint32_t count, cap;
} msup_history_t;

/* Adds one sample per cluster of `now` (rates against `prev`, which may be
 * NULL: unknown).  False only when out of memory. */
bool msup_history_update(msup_history_t *h, const msup_snapshot_t *now, const msup_snapshot_t *prev,
                         uint64_t now_ms);
const msup_cluster_history_t *msup_history_find(const msup_history_t *h, const char *cluster);
void msup_history_free(msup_history_t *h);

/* The histogram of one interval: now - prev bucket by bucket (0 where a
 * bucket went back); returns the count. */
uint64_t msup_hist_interval(uint64_t *out, const msup_totals_t *now, const msup_totals_t *prev);

#endif
