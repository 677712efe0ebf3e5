/* latency.h: the latency view's text (like varnishhist): one line per octave, log-scale bars, percentiles marked. */
#ifndef MONGOSUP_TOOLS_LATENCY_H
#define MONGOSUP_TOOLS_LATENCY_H

#include <stdint.h>

#include "layout.h"

#define MSUP_LAT_LINE 400 /* two 100-column bars, counts and marks */

/* Renders the distribution of the last interval beside the one since the
 * start, one line per octave of the segment's histogram (below 32us, then
 * 32-64us, 64-128us, ...) from the lowest non-empty octave of either to the
 * highest.  Bars are `bar_width` '#' at most, their length on a log scale of
 * the count (an octave with one operation still shows one '#').  The
 * octave that holds each side's p50, p99 and p99.9 carries those marks.
 * Returns the number of lines written (at most max_lines, the lowest kept). */
uint32_t msup_latency_render(char (*lines)[MSUP_LAT_LINE], uint32_t max_lines, const uint64_t *interval,
                             uint64_t interval_n, const uint64_t *total, uint64_t total_n, uint64_t total_max_us,
                             int bar_width);

/* The title line that goes with those lines. */
void msup_latency_title(char *out, size_t cap, int bar_width);

#endif
