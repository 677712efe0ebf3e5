/* history.c: rings of per-refresh samples, their windowed averages and sparklines (history.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "stats.h"

void msup_series_push(msup_series_t *s, uint64_t end_ms, double dt_s, double value)
{
    s->end_ms[s->next] = end_ms;
    s->dt_s[s->next] = dt_s > 0 ? dt_s : 0;
    s->value[s->next] = dt_s > 0 ? value : -1;
    s->next = (s->next + 1) % MSUP_SERIES_LEN;
    if (s->count < MSUP_SERIES_LEN)
        s->count++;
}

/* Index of the k-th newest sample (k = 0: the newest). */
static uint32_t newest(const msup_series_t *s, uint32_t k)
{
    return (s->next + MSUP_SERIES_LEN - 1 - k) % MSUP_SERIES_LEN;
}

bool msup_series_avg(const msup_series_t *s, uint64_t now_ms, double window_s, double *out)
{
    double start_ms = (double)now_ms - window_s * 1000.0;
    double weight = 0, sum = 0;
    for (uint32_t k = 0; k < s->count; k++) {
        uint32_t i = newest(s, k);
        double end = (double)s->end_ms[i], begin = end - s->dt_s[i] * 1000.0;
        if (end <= start_ms)
            break; /* older samples lie wholly before the window */
        if (s->value[i] < 0)
            continue;
        if (end > (double)now_ms)
            end = (double)now_ms;
        double w = end - (begin > start_ms ? begin : start_ms);
        if (w <= 0)
            continue;
        weight += w;
        sum += s->value[i] * w;
    }
    if (weight <= 0)
        return false;
    *out = sum / weight;
    return true;
}

uint32_t msup_series_last(const msup_series_t *s, double *out, uint32_t n)
{
    uint32_t m = n < s->count ? n : s->count;
    for (uint32_t k = 0; k < m; k++)
        out[m - 1 - k] = s->value[newest(s, k)];
    return m;
}

size_t msup_sparkline(char *out, size_t cap, const double *values, uint32_t n, bool utf8)
{
    static const char ascii[] = " .:-=+*#";
    double max = 0;
    for (uint32_t i = 0; i < n; i++)
        if (values[i] > max)
            max = values[i];
    size_t len = 0, each = utf8 ? 3 : 1;
    if (cap == 0)
        return 0;
    for (uint32_t i = 0; i < n && len + each < cap; i++) {
        if (values[i] < 0) {
            out[len++] = ' ';
            continue;
        }
        /* Eight levels; zero is the lowest mark (a flat line reads as "idle", a blank as "unknown"). */
        int level = max > 0 ? (int)(values[i] / max * 7.0 + 0.5) : 0;
        if (level > 7)
            level = 7;
        if (utf8) {
            /* U+2581 + level: E2 96 81..88 */
            out[len++] = (char)0xE2;
            out[len++] = (char)0x96;
            out[len++] = (char)(0x81 + level);
        } else {
            out[len++] = ascii[level == 0 ? 1 : level];
        }
    }
    out[len] = '\0';
    return len;
}

static msup_cluster_history_t *find_or_add(msup_history_t *h, const char *name)
{
    for (uint32_t i = 0; i < h->count; i++)
        if (strcmp(h->clusters[i].name, name) == 0)
            return &h->clusters[i];
    if (h->count == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 8;
        msup_cluster_history_t *c = realloc(h->clusters, cap * sizeof *c);
        if (c == NULL)
            return NULL;
        h->clusters = c;
        h->cap = cap;
    }
    msup_cluster_history_t *c = &h->clusters[h->count++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

const msup_cluster_history_t *msup_history_find(const msup_history_t *h, const char *cluster)
{
    for (uint32_t i = 0; i < h->count; i++)
        if (strcmp(h->clusters[i].name, cluster) == 0)
            return &h->clusters[i];
    return NULL;
}

uint64_t msup_hist_interval(uint64_t *out, const msup_totals_t *now, const msup_totals_t *prev)
{
    uint64_t n = 0;
    for (uint32_t b = 0; b < MSUP_HIST_BUCKETS; b++) {
        out[b] = now->hist[b] >= prev->hist[b] ? now->hist[b] - prev->hist[b] : 0;
        n += out[b];
    }
    return n;
}

static const msup_cluster_snap_t *prev_cluster(const msup_snapshot_t *prev, const char *name)
{
    for (uint32_t i = 0; prev != NULL && i < prev->cluster_count; i++)
        if (strcmp(prev->clusters[i].name, name) == 0)
            return &prev->clusters[i];
    return NULL;
}

bool msup_history_update(msup_history_t *h, const msup_snapshot_t *now, const msup_snapshot_t *prev,
                         uint64_t now_ms)
{
    double dt = prev && now->taken_ns > prev->taken_ns ? (double)(now->taken_ns - prev->taken_ns) / 1e9 : 0;
    uint64_t *interval = malloc(MSUP_HIST_BUCKETS * sizeof *interval);
    if (interval == NULL)
        return false;
    bool ok = true;
    for (uint32_t i = 0; i < now->cluster_count; i++) {
        const msup_cluster_snap_t *c = &now->clusters[i], *p = prev_cluster(prev, c->name);
        msup_cluster_history_t *ch = find_or_add(h, c->name);
        if (ch == NULL) {
            ok = false;
            break;
        }
        double ops = -1, errs = -1, p99 = -1;
        uint64_t o = msup_totals_ops(&c->totals), f = msup_totals_failures(&c->totals);
        if (p && dt > 0 && o >= msup_totals_ops(&p->totals) && f >= msup_totals_failures(&p->totals)) {
            ops = (double)(o - msup_totals_ops(&p->totals)) / dt;
            errs = (double)(f - msup_totals_failures(&p->totals)) / dt;
            uint64_t n = msup_hist_interval(interval, &c->totals, &p->totals);
            /* An idle interval has no latency: 0 keeps the line continuous. */
            p99 = n ? (double)msup_hist_quantile(interval, n, c->totals.hist_max_us, 0.99) : 0;
        }
        msup_series_push(&ch->ops, now_ms, dt, ops);
        msup_series_push(&ch->errors, now_ms, dt, errs);
        msup_series_push(&ch->p99_us, now_ms, dt, p99);
    }
    free(interval);
    return ok;
}

void msup_history_free(msup_history_t *h)
{
    free(h->clusters);
    memset(h, 0, sizeof *h);
}
