/* view.c: turns snapshots into the table model shared by the live view, --once and the benchmark. */
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "textsafe.h"

const char *const msup_cluster_col_title[MSUP_CCOL__COUNT] = {
    "CLUSTER", "STATE", "SINCE", "RTT", "OPS/S", "ERR/S", "P50", "P99", "POOL",
    "WAITS/S", "TIMEOUTS", "RECONNECT", "CONNS", "CONNECTING", "BUDGET-WAITS",
};

const char *const msup_worker_col_title[MSUP_WCOL__COUNT] = {
    "SLOT", "PID", "STATE", "OPS/S", "OPS", "ERRORS", "IN-USE", "AGE", "APPNAME",
};

void msup_fmt_duration_s(char *out, size_t n, uint64_t s)
{
    if (s >= 86400)
        snprintf(out, n, "%llud%02lluh", (unsigned long long)(s / 86400), (unsigned long long)(s % 86400 / 3600));
    else if (s >= 3600)
        snprintf(out, n, "%lluh%02llum", (unsigned long long)(s / 3600), (unsigned long long)(s % 3600 / 60));
    else if (s >= 60)
        snprintf(out, n, "%llum%02llus", (unsigned long long)(s / 60), (unsigned long long)(s % 60));
    else
        snprintf(out, n, "%llus", (unsigned long long)s);
}

void msup_fmt_latency_us(char *out, size_t n, uint64_t us)
{
    if (us < 1000)
        snprintf(out, n, "%lluus", (unsigned long long)us);
    else if (us < 1000000)
        snprintf(out, n, "%.1fms", (double)us / 1e3);
    else
        snprintf(out, n, "%.2fs", (double)us / 1e6);
}

static void fmt_age(char *out, size_t n, uint64_t now_ns, uint64_t then_ns)
{
    if (then_ns == 0 || then_ns > now_ns)
        snprintf(out, n, "-");
    else
        msup_fmt_duration_s(out, n, (now_ns - then_ns) / 1000000000ull);
}

/* Per-second rate of a counter between two snapshots, or a negative number
 * when unknown (no previous snapshot, or the counter went back: the segment
 * was recreated). */
static double rate(uint64_t now, uint64_t before, double dt_s)
{
    if (dt_s <= 0 || now < before)
        return -1;
    return (double)(now - before) / dt_s;
}

static void fmt_rate(char *out, size_t n, double r)
{
    if (r < 0)
        snprintf(out, n, "-");
    else
        snprintf(out, n, "%.1f", r);
}

static const msup_cluster_snap_t *find_prev_cluster(const msup_snapshot_t *prev, const msup_cluster_snap_t *c)
{
    if (prev == NULL)
        return NULL;
    /* Same row index first (the usual case), then by name (rows moved after a reload). */
    for (uint32_t i = 0; i < prev->cluster_count; i++) {
        const msup_cluster_snap_t *p = &prev->clusters[i];
        if (p->index == c->index && strcmp(p->name, c->name) == 0)
            return p;
    }
    for (uint32_t i = 0; i < prev->cluster_count; i++) {
        if (strcmp(prev->clusters[i].name, c->name) == 0)
            return &prev->clusters[i];
    }
    return NULL;
}

static const msup_worker_snap_t *find_prev_worker(const msup_snapshot_t *prev, const msup_worker_snap_t *w,
                                                  uint32_t *hint)
{
    if (prev == NULL)
        return NULL;
    /* Both lists are in slot order: walk them together. */
    while (*hint < prev->worker_count && prev->workers[*hint].slot < w->slot)
        (*hint)++;
    if (*hint < prev->worker_count) {
        const msup_worker_snap_t *p = &prev->workers[*hint];
        if (p->slot == w->slot && p->pid == w->pid && p->attached_ns == w->attached_ns)
            return p;
    }
    return NULL;
}

static bool reserve(msup_view_row_t **rows, size_t *cap, size_t want)
{
    if (want <= *cap)
        return true;
    size_t n = *cap ? *cap : 16;
    while (n < want)
        n *= 2;
    msup_view_row_t *r = realloc(*rows, n * sizeof *r);
    if (r == NULL)
        return false;
    *rows = r;
    *cap = n;
    return true;
}

static void build_header(msup_view_t *view, const msup_snapshot_t *s)
{
    char uptime[32], hb[32];
    fmt_age(uptime, sizeof uptime, s->taken_ns, s->supervisor_started_ns);
    if (s->heartbeat_ns == 0)
        snprintf(hb, sizeof hb, "never");
    else
        snprintf(hb, sizeof hb, "%llums ago", (unsigned long long)s->heartbeat_age_ms);
    /* Names from the segment reach a terminal: escaped (textsafe.h), and
     * cut so that the line keeps room for the rest. */
    char seg[100], env[100];
    msup_text_escape(seg, sizeof seg, s->segment_name, sizeof s->segment_name);
    msup_text_escape(env, sizeof env, s->environment[0] ? s->environment : "-", sizeof s->environment);
    if (s->supervisor_pid == 0)
        snprintf(view->header[0], sizeof view->header[0], "segment %s  environment %s  supervisor none  phase %s",
                 seg, env, msup_phase_name(s->phase));
    else
        snprintf(view->header[0], sizeof view->header[0],
                 "segment %s  environment %s  supervisor pid %d (%s)  uptime %s  heartbeat %s  phase %s",
                 seg, env, (int)s->supervisor_pid,
                 s->supervisor_alive ? "alive" : "NOT RESPONDING", uptime, hb, msup_phase_name(s->phase));
    uint32_t active = 0;
    for (uint32_t i = 0; i < s->worker_count; i++)
        active += s->workers[i].state == MSUP_SLOT_ACTIVE;
    snprintf(view->header[1], sizeof view->header[1],
             "clusters %u  workers %u active / %u slots  config generation %llu  supervisor restarts %llu  "
             "slots reaped %llu",
             s->cluster_count, active, s->max_workers, (unsigned long long)s->config_generation,
             (unsigned long long)s->supervisor_restarts, (unsigned long long)s->slots_reaped);
    view->header_lines = 2;
    /* Workers that connect elsewhere than the supervisor checks: the health
     * shown is not theirs (layout.h: uri_mismatch). */
    size_t len = 0;
    for (uint32_t i = 0; i < s->cluster_count && len + 1 < sizeof view->header[2]; i++) {
        const msup_cluster_snap_t *c = &s->clusters[i];
        if (c->workers_uri_mismatch == 0)
            continue;
        char name[MSUP_CELL_MAX];
        msup_text_escape(name, sizeof name, c->name, sizeof c->name);
        int n = snprintf(view->header[2] + len, sizeof view->header[2] - len, "%s%s %u worker(s)",
                         len == 0 ? "uri_mismatch: " : ", ", name, c->workers_uri_mismatch);
        len += n > 0 ? (size_t)n : 0;
    }
    if (len > 0) {
        msup_text_cut_tail(view->header[2]);
        view->header_lines = 3;
    }
}

static void build_cluster(msup_view_row_t *row, uint32_t src, const msup_cluster_snap_t *c,
                          const msup_cluster_snap_t *p, uint64_t taken_ns, double dt)
{
    const msup_totals_t *t = &c->totals;
    uint64_t ops = msup_totals_ops(t), fails = msup_totals_failures(t);
    double ops_rate = p ? rate(ops, msup_totals_ops(&p->totals), dt) : -1;
    double err_rate = p ? rate(fails, msup_totals_failures(&p->totals), dt) : -1;
    double wait_rate = p ? rate(t->checkout_waits, p->totals.checkout_waits, dt) : -1;
    char (*cell)[MSUP_CELL_MAX] = row->cell;
    double *key = row->key;

    memset(key, 0, sizeof row->key);
    row->health = c->health;
    row->src = src;
    row->moved = ops + fails + t->checkouts > 0;
    msup_text_escape(cell[MSUP_CCOL_NAME], MSUP_CELL_MAX, c->name, sizeof c->name);
    snprintf(cell[MSUP_CCOL_STATE], MSUP_CELL_MAX, "%s", msup_health_name(c->health));
    key[MSUP_CCOL_STATE] = c->health;
    fmt_age(cell[MSUP_CCOL_SINCE], MSUP_CELL_MAX, taken_ns, c->health_since_ns);
    key[MSUP_CCOL_SINCE] = c->health_since_ns ? (double)(taken_ns - c->health_since_ns) : 0;
    if (c->last_check_ns == 0)
        snprintf(cell[MSUP_CCOL_RTT], MSUP_CELL_MAX, "-");
    else
        msup_fmt_latency_us(cell[MSUP_CCOL_RTT], MSUP_CELL_MAX, c->last_rtt_us);
    key[MSUP_CCOL_RTT] = (double)c->last_rtt_us;
    fmt_rate(cell[MSUP_CCOL_OPS_RATE], MSUP_CELL_MAX, ops_rate);
    key[MSUP_CCOL_OPS_RATE] = ops_rate;
    fmt_rate(cell[MSUP_CCOL_ERR_RATE], MSUP_CELL_MAX, err_rate);
    key[MSUP_CCOL_ERR_RATE] = err_rate;
    if (t->hist_count == 0) {
        snprintf(cell[MSUP_CCOL_P50], MSUP_CELL_MAX, "-");
        snprintf(cell[MSUP_CCOL_P99], MSUP_CELL_MAX, "-");
    } else {
        msup_fmt_latency_us(cell[MSUP_CCOL_P50], MSUP_CELL_MAX, c->p50_us);
        msup_fmt_latency_us(cell[MSUP_CCOL_P99], MSUP_CELL_MAX, c->p99_us);
    }
    key[MSUP_CCOL_P50] = (double)c->p50_us;
    key[MSUP_CCOL_P99] = (double)c->p99_us;
    snprintf(cell[MSUP_CCOL_POOL], MSUP_CELL_MAX, "%lld/%lld", (long long)t->pool_in_use, (long long)t->pool_max);
    key[MSUP_CCOL_POOL] = (double)t->pool_in_use;
    fmt_rate(cell[MSUP_CCOL_WAIT_RATE], MSUP_CELL_MAX, wait_rate);
    key[MSUP_CCOL_WAIT_RATE] = wait_rate;
    snprintf(cell[MSUP_CCOL_TIMEOUTS], MSUP_CELL_MAX, "%llu", (unsigned long long)t->checkout_timeouts);
    key[MSUP_CCOL_TIMEOUTS] = (double)t->checkout_timeouts;
    snprintf(cell[MSUP_CCOL_RECONNECT], MSUP_CELL_MAX, "%llu(%u/%u)", (unsigned long long)c->reconnect_generation,
             c->workers_acked, c->workers_live);
    key[MSUP_CCOL_RECONNECT] = (double)c->reconnect_generation;
    if (c->max_connections == 0)
        snprintf(cell[MSUP_CCOL_CONNS], MSUP_CELL_MAX, "%lld/-", (long long)c->budget_in_use);
    else
        snprintf(cell[MSUP_CCOL_CONNS], MSUP_CELL_MAX, "%lld/%u", (long long)c->budget_in_use, c->max_connections);
    key[MSUP_CCOL_CONNS] = (double)c->budget_in_use;
    snprintf(cell[MSUP_CCOL_CONNECTING], MSUP_CELL_MAX, "%lld", (long long)c->budget_connecting);
    key[MSUP_CCOL_CONNECTING] = (double)c->budget_connecting;
    snprintf(cell[MSUP_CCOL_BUDGET_WAITS], MSUP_CELL_MAX, "%llu", (unsigned long long)t->budget_waits);
    key[MSUP_CCOL_BUDGET_WAITS] = (double)t->budget_waits;
}

static void build_worker(msup_view_row_t *row, uint32_t src, const msup_worker_snap_t *w,
                         const msup_worker_snap_t *p, uint64_t taken_ns, double dt)
{
    double ops_rate = p ? rate(w->ops, p->ops, dt) : -1;
    char (*cell)[MSUP_CELL_MAX] = row->cell;
    double *key = row->key;

    memset(key, 0, sizeof row->key);
    row->health = 0;
    row->src = src;
    row->moved = w->ops + w->failures + w->checkouts > 0;
    snprintf(cell[MSUP_WCOL_SLOT], MSUP_CELL_MAX, "%u", w->slot);
    key[MSUP_WCOL_SLOT] = w->slot;
    snprintf(cell[MSUP_WCOL_PID], MSUP_CELL_MAX, "%d", (int)w->pid);
    key[MSUP_WCOL_PID] = w->pid;
    snprintf(cell[MSUP_WCOL_STATE], MSUP_CELL_MAX, "%s", msup_slot_state_name(w->state));
    key[MSUP_WCOL_STATE] = w->state;
    fmt_rate(cell[MSUP_WCOL_OPS_RATE], MSUP_CELL_MAX, ops_rate);
    key[MSUP_WCOL_OPS_RATE] = ops_rate;
    snprintf(cell[MSUP_WCOL_OPS], MSUP_CELL_MAX, "%llu", (unsigned long long)w->ops);
    key[MSUP_WCOL_OPS] = (double)w->ops;
    snprintf(cell[MSUP_WCOL_ERRORS], MSUP_CELL_MAX, "%llu", (unsigned long long)w->failures);
    key[MSUP_WCOL_ERRORS] = (double)w->failures;
    snprintf(cell[MSUP_WCOL_IN_USE], MSUP_CELL_MAX, "%lld", (long long)w->in_use);
    key[MSUP_WCOL_IN_USE] = (double)w->in_use;
    fmt_age(cell[MSUP_WCOL_AGE], MSUP_CELL_MAX, taken_ns, w->attached_ns);
    key[MSUP_WCOL_AGE] = w->attached_ns ? (double)(taken_ns - w->attached_ns) : 0;
    msup_text_escape(cell[MSUP_WCOL_APPNAME], MSUP_CELL_MAX, w->appname[0] ? w->appname : "-", sizeof w->appname);
}

bool msup_view_build(msup_view_t *view, const msup_snapshot_t *now, const msup_snapshot_t *prev)
{
    if (!reserve(&view->clusters, &view->cluster_cap, now->cluster_count) ||
        !reserve(&view->workers, &view->worker_cap, now->worker_count))
        return false;
    double dt = prev && now->taken_ns > prev->taken_ns ? (double)(now->taken_ns - prev->taken_ns) / 1e9 : 0;
    build_header(view, now);
    for (uint32_t i = 0; i < now->cluster_count; i++)
        build_cluster(&view->clusters[i], i, &now->clusters[i], find_prev_cluster(prev, &now->clusters[i]),
                      now->taken_ns, dt);
    view->cluster_rows = now->cluster_count;
    uint32_t hint = 0;
    for (uint32_t i = 0; i < now->worker_count; i++)
        build_worker(&view->workers[i], i, &now->workers[i], find_prev_worker(prev, &now->workers[i], &hint),
                     now->taken_ns, dt);
    view->worker_rows = now->worker_count;
    return true;
}

void msup_view_free(msup_view_t *view)
{
    free(view->clusters);
    free(view->workers);
    memset(view, 0, sizeof *view);
}

/* qsort is not stable: ties keep their order through the original position. */
typedef struct {
    const msup_view_row_t *row;
    size_t pos;
} sort_item_t;

typedef struct {
    int col;
    bool desc, text;
} sort_spec_t;

static int cmp_rows(const void *a, const void *b, void *arg)
{
    const sort_item_t *x = a, *y = b;
    const sort_spec_t *spec = arg;
    int c;
    if (spec->text)
        c = strcmp(x->row->cell[spec->col], y->row->cell[spec->col]);
    else
        c = (x->row->key[spec->col] > y->row->key[spec->col]) - (x->row->key[spec->col] < y->row->key[spec->col]);
    if (spec->desc)
        c = -c;
    return c != 0 ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

static void sort_rows(msup_view_row_t *rows, uint32_t n, sort_spec_t spec)
{
    if (n < 2)
        return;
    sort_item_t *items = malloc(n * sizeof *items);
    msup_view_row_t *copy = malloc(n * sizeof *copy);
    if (items == NULL || copy == NULL) {
        free(items);
        free(copy);
        return; /* unsorted is acceptable when memory is short */
    }
    memcpy(copy, rows, n * sizeof *copy);
    for (uint32_t i = 0; i < n; i++)
        items[i] = (sort_item_t){&copy[i], i};
    qsort_r(items, n, sizeof *items, cmp_rows, &spec);
    for (uint32_t i = 0; i < n; i++)
        rows[i] = *items[i].row;
    free(items);
    free(copy);
}

void msup_view_sort_rows(msup_view_row_t *rows, uint32_t n, int col, bool desc, bool text)
{
    if (col >= 0 && col < MSUP_VIEW_COLS)
        sort_rows(rows, n, (sort_spec_t){col, desc, text});
}

void msup_view_sort_clusters(msup_view_t *view, int col, bool desc)
{
    if (col >= 0 && col < MSUP_CCOL__COUNT)
        sort_rows(view->clusters, view->cluster_rows, (sort_spec_t){col, desc, col == MSUP_CCOL_NAME});
}

void msup_view_sort_workers(msup_view_t *view, int col, bool desc)
{
    if (col >= 0 && col < MSUP_WCOL__COUNT)
        sort_rows(view->workers, view->worker_rows, (sort_spec_t){col, desc, col == MSUP_WCOL_APPNAME});
}
