/* latency.c: the per-octave histogram text of the latency view (latency.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "export.h"
#include "latency.h"
#include "stats.h"

static void octave_counts(const uint64_t *hist, uint64_t *oct)
{
    for (uint32_t o = 0; o < MSUP_HIST_OCTAVES; o++) {
        oct[o] = 0;
        for (uint32_t k = 0; k < MSUP_HIST_SUB; k++)
            oct[o] += hist[o * MSUP_HIST_SUB + k];
    }
}

/* Log-scale bar length: 1 for one operation, bar_width for the largest count. */
static int bar_len(uint64_t count, uint64_t max, int width)
{
    if (count == 0 || width <= 0)
        return 0;
    if (max <= 1)
        return width;
    int len = 1 + (int)((double)(width - 1) * log((double)count) / log((double)max) + 0.5);
    return len > width ? width : len;
}

static void marks(char *out, size_t cap, const uint64_t *hist, uint64_t n, uint64_t max, uint32_t octave)
{
    static const double q[] = {0.50, 0.99, 0.999};
    static const char *const name[] = {"p50", "p99", "p99.9"};
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; n > 0 && i < 3; i++) {
        uint64_t v = msup_hist_quantile(hist, n, max, q[i]);
        if (msup_hist_index(v) / MSUP_HIST_SUB == octave && len + 8 < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? " " : "<", name[i]);
    }
}

void msup_latency_title(char *out, size_t cap, int bar_width)
{
    snprintf(out, cap, "%-8s %9s %-*s %-16s %10s %-*s %s", "BELOW", "INTERVAL", bar_width, "", "", "SINCE-START",
             bar_width, "", "");
}

uint32_t msup_latency_render(char (*lines)[MSUP_LAT_LINE], uint32_t max_lines, const uint64_t *interval,
                             uint64_t interval_n, const uint64_t *total, uint64_t total_n, uint64_t total_max_us,
                             int bar_width)
{
    uint64_t oi[MSUP_HIST_OCTAVES], ot[MSUP_HIST_OCTAVES], max_i = 0, max_t = 0;
    octave_counts(interval, oi);
    octave_counts(total, ot);
    int lo = -1, hi = -1;
    for (int o = 0; o < (int)MSUP_HIST_OCTAVES; o++) {
        if (oi[o] || ot[o]) {
            if (lo < 0)
                lo = o;
            hi = o;
        }
        max_i = oi[o] > max_i ? oi[o] : max_i;
        max_t = ot[o] > max_t ? ot[o] : max_t;
    }
    bar_width = bar_width < 0 ? 0 : bar_width > 100 ? 100 : bar_width; /* the bars' buffers hold 127 */
    uint32_t n = 0;
    for (int o = lo; lo >= 0 && o <= hi && n < max_lines; o++) {
        char label[16], bi[128], bt[128], mi[32], mt[32];
        /* The octave's upper bound: 32us, then doubling. */
        msup_fmt_latency_us(label, sizeof label, (uint64_t)MSUP_HIST_SUB << o);
        int li = bar_len(oi[o], max_i, bar_width), lt = bar_len(ot[o], max_t, bar_width);
        memset(bi, '#', (size_t)li);
        bi[li] = '\0';
        memset(bt, '#', (size_t)lt);
        bt[lt] = '\0';
        /* The interval's max is unknown: its percentiles are bucket edges. */
        marks(mi, sizeof mi, interval, interval_n, UINT64_MAX, (uint32_t)o);
        marks(mt, sizeof mt, total, total_n, total_max_us, (uint32_t)o);
        snprintf(lines[n++], MSUP_LAT_LINE, "<%-7s %9llu %-*s %-16s %10llu %-*s %s", label,
                 (unsigned long long)oi[o], bar_width, bi, mi, (unsigned long long)ot[o], bar_width, bt, mt);
    }
    return n;
}
