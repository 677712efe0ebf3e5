/* export_prom.c: the Prometheus text exposition (0.0.4) of a snapshot, for --prometheus and /metrics. */
#include <stddef.h>
#include <string.h>

#include "export.h"
#include "textsafe.h"

/* Coarse cumulative view of the log-linear latency histogram.  A bucket of
 * the segment's histogram counts toward the first bound that its largest
 * value (upper - 1 us) does not exceed, so `le` never claims an observation
 * that might be larger than the bound. */
const double msup_prom_le_seconds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                       0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
const unsigned msup_prom_le_count = sizeof msup_prom_le_seconds / sizeof msup_prom_le_seconds[0];

/* Label values: first shown as on a terminal (textsafe.h: valid UTF-8,
 * control characters and invalid bytes as the text \xHH, so a label reads
 * as --once shows the name), then backslash, double quote and newline
 * escaped as the exposition format requires. */
static void put_label_value(FILE *out, const char *raw, size_t max)
{
    char shown[MSUP_TEXT_ESCAPE_CAP(MSUP_NAME_MAX)];
    msup_text_escape(shown, sizeof shown, raw, max);
    for (const char *v = shown; *v; v++) {
        if (*v == '\\')
            fputs("\\\\", out);
        else if (*v == '"')
            fputs("\\\"", out);
        else if (*v == '\n')
            fputs("\\n", out);
        else
            fputc(*v, out);
    }
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_start(FILE *out, const char *name, const msup_cluster_snap_t *c)
{
    fputs(name, out);
    fputs("{cluster=\"", out);
    put_label_value(out, c->name, sizeof c->name);
    fputc('"', out);
}

static void sample_u64(FILE *out, const char *name, const msup_cluster_snap_t *c, uint64_t v)
{
    sample_start(out, name, c);
    fprintf(out, "} %llu\n", (unsigned long long)v);
}

static void sample_i64(FILE *out, const char *name, const msup_cluster_snap_t *c, int64_t v)
{
    sample_start(out, name, c);
    fprintf(out, "} %lld\n", (long long)v);
}

/* Seconds from integral microseconds, printed exactly. */
static void print_us_as_seconds(FILE *out, uint64_t us)
{
    fprintf(out, "%llu.%06llu", (unsigned long long)(us / 1000000), (unsigned long long)(us % 1000000));
}

static void print_ns_as_seconds(FILE *out, uint64_t ns)
{
    fprintf(out, "%llu.%03llu", (unsigned long long)(ns / 1000000000ull),
            (unsigned long long)(ns % 1000000000ull / 1000000ull));
}

static const char *lower_health(uint32_t h)
{
    switch (h) {
    case MSUP_HEALTH_UP: return "up";
    case MSUP_HEALTH_DEGRADED: return "degraded";
    case MSUP_HEALTH_DOWN: return "down";
    case MSUP_HEALTH_RECOVERING: return "recovering";
    default: return "unknown";
    }
}

static const char *lower_phase(uint32_t p)
{
    switch (p) {
    case MSUP_PHASE_STARTING: return "starting";
    case MSUP_PHASE_RUNNING: return "running";
    case MSUP_PHASE_DRAINING: return "draining";
    case MSUP_PHASE_STOPPING: return "stopping";
    default: return "stopped";
    }
}

static void supervisor_metrics(const msup_snapshot_t *s, FILE *out)
{
    family(out, "mongosup_up", "gauge", "1 when a mongosupd heartbeat is fresh, else 0.");
    fprintf(out, "mongosup_up %d\n", s->supervisor_alive ? 1 : 0);
    family(out, "mongosup_supervisor_start_time_seconds", "gauge",
           "Unix time the running mongosupd started (0: none yet).");
    fputs("mongosup_supervisor_start_time_seconds ", out);
    print_ns_as_seconds(out, s->supervisor_started_ns);
    fputc('\n', out);
    family(out, "mongosup_supervisor_heartbeat_age_seconds", "gauge", "Age of the supervisor's last heartbeat.");
    fprintf(out, "mongosup_supervisor_heartbeat_age_seconds %llu.%03llu\n",
            (unsigned long long)(s->heartbeat_age_ms / 1000), (unsigned long long)(s->heartbeat_age_ms % 1000));
    family(out, "mongosup_supervisor_restarts_total", "counter",
           "Times a mongosupd adopted this segment after another one.");
    fprintf(out, "mongosup_supervisor_restarts_total %llu\n", (unsigned long long)s->supervisor_restarts);
    family(out, "mongosup_phase", "gauge", "Shutdown phase of the segment: 1 for the current phase.");
    for (uint32_t p = MSUP_PHASE_STARTING; p <= MSUP_PHASE_STOPPED; p++)
        fprintf(out, "mongosup_phase{phase=\"%s\"} %d\n", lower_phase(p), s->phase == p);
    family(out, "mongosup_config_generation", "gauge", "Configuration generation (bumped by each reload).");
    fprintf(out, "mongosup_config_generation %llu\n", (unsigned long long)s->config_generation);
    family(out, "mongosup_worker_slots", "gauge", "Worker slots in the segment (max_workers).");
    fprintf(out, "mongosup_worker_slots %u\n", s->max_workers);
    uint32_t by_state[MSUP_SLOT_REAPING + 1] = {0};
    for (uint32_t i = 0; i < s->worker_count; i++)
        if (s->workers[i].state <= MSUP_SLOT_REAPING)
            by_state[s->workers[i].state]++;
    family(out, "mongosup_workers", "gauge", "Worker slots in use, by state.");
    for (uint32_t st = MSUP_SLOT_CLAIMING; st <= MSUP_SLOT_REAPING; st++) {
        static const char *const names[] = {"free", "claiming", "active", "exited", "reaping"};
        fprintf(out, "mongosup_workers{state=\"%s\"} %u\n", names[st], by_state[st]);
    }
    family(out, "mongosup_worker_slots_reaped_total", "counter",
           "Worker slots folded into the retired totals by the reaper.");
    fprintf(out, "mongosup_worker_slots_reaped_total %llu\n", (unsigned long long)s->slots_reaped);
}

static void health_metrics(const msup_snapshot_t *s, FILE *out)
{
    family(out, "mongosup_cluster_state", "gauge", "Health of a cluster as the supervisor sees it: 1 for the current state.");
    for (uint32_t i = 0; i < s->cluster_count; i++)
        for (uint32_t h = MSUP_HEALTH_UNKNOWN; h <= MSUP_HEALTH_RECOVERING; h++) {
            sample_start(out, "mongosup_cluster_state", &s->clusters[i]);
            fprintf(out, ",state=\"%s\"} %d\n", lower_health(h), s->clusters[i].health == h);
        }
    family(out, "mongosup_cluster_state_since_timestamp_seconds", "gauge", "Unix time the cluster entered its state.");
    for (uint32_t i = 0; i < s->cluster_count; i++) {
        sample_start(out, "mongosup_cluster_state_since_timestamp_seconds", &s->clusters[i]);
        fputs("} ", out);
        print_ns_as_seconds(out, s->clusters[i].health_since_ns);
        fputc('\n', out);
    }
    family(out, "mongosup_cluster_state_transitions_total", "counter", "Health state changes of the cluster.");
    for (uint32_t i = 0; i < s->cluster_count; i++)
        sample_u64(out, "mongosup_cluster_state_transitions_total", &s->clusters[i], s->clusters[i].transitions);
    family(out, "mongosup_cluster_check_rtt_seconds", "gauge", "Round trip of the last health check.");
    for (uint32_t i = 0; i < s->cluster_count; i++) {
        sample_start(out, "mongosup_cluster_check_rtt_seconds", &s->clusters[i]);
        fputs("} ", out);
        print_us_as_seconds(out, s->clusters[i].last_rtt_us);
        fputc('\n', out);
    }
    family(out, "mongosup_cluster_checks_total", "counter", "Health checks of the cluster, by result.");
    for (uint32_t i = 0; i < s->cluster_count; i++) {
        sample_start(out, "mongosup_cluster_checks_total", &s->clusters[i]);
        fprintf(out, ",result=\"passed\"} %llu\n", (unsigned long long)s->clusters[i].checks_passed);
        sample_start(out, "mongosup_cluster_checks_total", &s->clusters[i]);
        fprintf(out, ",result=\"failed\"} %llu\n", (unsigned long long)s->clusters[i].checks_failed);
    }
    family(out, "mongosup_cluster_has_primary", "gauge", "Replica sets: 1 when the last check saw a primary.");
    for (uint32_t i = 0; i < s->cluster_count; i++)
        if (s->clusters[i].is_replica_set)
            sample_u64(out, "mongosup_cluster_has_primary", &s->clusters[i], s->clusters[i].has_primary != 0);
    family(out, "mongosup_cluster_reconnect_generation", "gauge",
           "Reconnect generation: workers rebuild their pool when it moves.");
    for (uint32_t i = 0; i < s->cluster_count; i++)
        sample_u64(out, "mongosup_cluster_reconnect_generation", &s->clusters[i], s->clusters[i].reconnect_generation);
    family(out, "mongosup_cluster_workers", "gauge", "Live workers using the cluster.");
    for (uint32_t i = 0; i < s->cluster_count; i++)
        sample_u64(out, "mongosup_cluster_workers", &s->clusters[i], s->clusters[i].workers_live);
    family(out, "mongosup_cluster_workers_acked", "gauge",
           "Live workers that acknowledged the current reconnect generation.");
    for (uint32_t i = 0; i < s->cluster_count; i++)
        sample_u64(out, "mongosup_cluster_workers_acked", &s->clusters[i], s->clusters[i].workers_acked);
    family(out, "mongosup_cluster_workers_uri_mismatch", "gauge",
           "Live workers whose URI for the cluster differs from the one the supervisor checks.");
    for (uint32_t i = 0; i < s->cluster_count; i++)
        sample_u64(out, "mongosup_cluster_workers_uri_mismatch", &s->clusters[i],
                   s->clusters[i].workers_uri_mismatch);
}

/* Gauges and counters read from the per-cluster totals. */
enum tot_field {
    T_IN_USE, T_IDLE, T_CLIENTS, T_MAX, T_CHECKOUTS, T_WAITS, T_TIMEOUTS, T_MAX_REACHED, T_CREATED,
    T_DESTROYED, T_REBUILDS, T_BUDGET_WAITS, T_RETRIES, T_SLOW_OPS
};

static const struct {
    const char *name, *type, *help;
    enum tot_field field;
} total_families[] = {
    {"mongosup_pool_clients_in_use", "gauge", "Pooled clients checked out now, all workers.", T_IN_USE},
    {"mongosup_pool_clients_idle", "gauge", "Pooled clients idle now, all workers.", T_IDLE},
    {"mongosup_pool_clients", "gauge", "Pooled clients that exist now, all workers.", T_CLIENTS},
    {"mongosup_pool_max_clients", "gauge", "Sum of the workers' max pool sizes.", T_MAX},
    {"mongosup_pool_checkouts_total", "counter", "Client checkouts.", T_CHECKOUTS},
    {"mongosup_pool_checkout_waits_total", "counter", "Checkouts that had to wait for a client.", T_WAITS},
    {"mongosup_pool_checkout_timeouts_total", "counter", "Checkouts that timed out.", T_TIMEOUTS},
    {"mongosup_pool_max_reached_total", "counter", "Checkouts that found the pool at its maximum.", T_MAX_REACHED},
    {"mongosup_pool_clients_created_total", "counter", "Pooled clients created.", T_CREATED},
    {"mongosup_pool_clients_destroyed_total", "counter", "Pooled clients destroyed.", T_DESTROYED},
    {"mongosup_pool_rebuilds_total", "counter", "Pool rebuilds after a reconnect request.", T_REBUILDS},
    {"mongosup_budget_waits_total", "counter", "Checkouts that waited on the cluster-wide connection budget.",
     T_BUDGET_WAITS},
    {"mongosup_operation_retries_total", "counter", "Operations retried.", T_RETRIES},
    {"mongosup_slow_operations_total", "counter", "Operations that took at least the cluster's slow_op_ms.",
     T_SLOW_OPS},
};

static int64_t total_value(const msup_totals_t *t, enum tot_field f)
{
    switch (f) {
    case T_IN_USE: return t->pool_in_use;
    case T_IDLE: return t->pool_idle;
    case T_CLIENTS: return t->pool_created;
    case T_MAX: return t->pool_max;
    case T_CHECKOUTS: return (int64_t)t->checkouts;
    case T_WAITS: return (int64_t)t->checkout_waits;
    case T_TIMEOUTS: return (int64_t)t->checkout_timeouts;
    case T_MAX_REACHED: return (int64_t)t->max_reached;
    case T_CREATED: return (int64_t)t->clients_created;
    case T_DESTROYED: return (int64_t)t->clients_destroyed;
    case T_REBUILDS: return (int64_t)t->reconnects;
    case T_BUDGET_WAITS: return (int64_t)t->budget_waits;
    case T_RETRIES: return (int64_t)t->retries;
    case T_SLOW_OPS: return (int64_t)t->slow_ops;
    }
    return 0;
}

/* A budget shared across hosts, as mongosupd mirrors it into the segment
 * (its own /metrics adds the etcd side: mongosup_fleet_*). */
static void fleet_metrics(const msup_snapshot_t *s, FILE *out)
{
    static const struct {
        const char *name, *help;
        size_t field;
    } fams[] = {
        {"mongosup_budget_fleet_max_connections", "fleet_max_connections: the total of every host's cap.",
         offsetof(msup_cluster_snap_t, fleet_max_connections)},
        {"mongosup_budget_fleet_share_connections", "This host's share from mongosupd's last read of etcd.",
         offsetof(msup_cluster_snap_t, fleet_share)},
        {"mongosup_budget_fleet_hosts", "Hosts with a record in mongosupd's last read of etcd.",
         offsetof(msup_cluster_snap_t, fleet_hosts)},
    };
    bool any = false;
    for (uint32_t i = 0; i < s->cluster_count; i++)
        any = any || s->clusters[i].fleet_max_connections != 0;
    if (!any)
        return;
    for (size_t k = 0; k < sizeof fams / sizeof fams[0]; k++) {
        family(out, fams[k].name, "gauge", fams[k].help);
        for (uint32_t i = 0; i < s->cluster_count; i++) {
            const msup_cluster_snap_t *c = &s->clusters[i];
            if (c->fleet_max_connections != 0)
                sample_u64(out, fams[k].name, c, *(const uint32_t *)((const char *)c + fams[k].field));
        }
    }
}

static void pool_metrics(const msup_snapshot_t *s, FILE *out)
{
    for (size_t f = 0; f < sizeof total_families / sizeof total_families[0]; f++) {
        family(out, total_families[f].name, total_families[f].type, total_families[f].help);
        for (uint32_t i = 0; i < s->cluster_count; i++)
            sample_i64(out, total_families[f].name, &s->clusters[i],
                       total_value(&s->clusters[i].totals, total_families[f].field));
    }
    family(out, "mongosup_pool_checkout_wait_seconds_total", "counter", "Time checkouts spent waiting for a client.");
    for (uint32_t i = 0; i < s->cluster_count; i++) {
        sample_start(out, "mongosup_pool_checkout_wait_seconds_total", &s->clusters[i]);
        fputs("} ", out);
        print_us_as_seconds(out, s->clusters[i].totals.checkout_wait_us);
        fputc('\n', out);
    }
    family(out, "mongosup_budget_connections", "gauge", "Connections open to the cluster by all workers (budget tokens).");
    for (uint32_t i = 0; i < s->cluster_count; i++)
        sample_i64(out, "mongosup_budget_connections", &s->clusters[i], s->clusters[i].budget_in_use);
    family(out, "mongosup_budget_max_connections", "gauge", "Connection budget of the cluster (0: unlimited).");
    for (uint32_t i = 0; i < s->cluster_count; i++)
        sample_u64(out, "mongosup_budget_max_connections", &s->clusters[i], s->clusters[i].max_connections);
    family(out, "mongosup_budget_connecting", "gauge", "Connection handshakes in progress, all workers.");
    for (uint32_t i = 0; i < s->cluster_count; i++)
        sample_i64(out, "mongosup_budget_connecting", &s->clusters[i], s->clusters[i].budget_connecting);
    family(out, "mongosup_budget_max_connecting", "gauge", "Cap on concurrent handshakes (0: unlimited).");
    for (uint32_t i = 0; i < s->cluster_count; i++)
        sample_u64(out, "mongosup_budget_max_connecting", &s->clusters[i], s->clusters[i].max_connecting);
    fleet_metrics(s, out);
}

static void operation_metrics(const msup_snapshot_t *s, FILE *out)
{
    family(out, "mongosup_operations_total", "counter", "Operations, by class (read, write, command).");
    for (uint32_t i = 0; i < s->cluster_count; i++)
        for (int k = 0; k < MSUP_OP__COUNT; k++) {
            sample_start(out, "mongosup_operations_total", &s->clusters[i]);
            fprintf(out, ",class=\"%s\"} %llu\n", msup_op_class_name((enum msup_op_class)k),
                    (unsigned long long)s->clusters[i].totals.ops[k]);
        }
    family(out, "mongosup_operation_failures_total", "counter", "Failed operations, and checkouts refused by the circuit breaker or a drain, by failure class (checkout timeouts are in mongosup_pool_checkout_timeouts_total).");
    for (uint32_t i = 0; i < s->cluster_count; i++)
        for (int k = 0; k < MSUP_FAIL__COUNT; k++) {
            sample_start(out, "mongosup_operation_failures_total", &s->clusters[i]);
            fprintf(out, ",class=\"%s\"} %llu\n", msup_fail_class_name((enum msup_fail_class)k),
                    (unsigned long long)s->clusters[i].totals.failures[k]);
        }
    family(out, "mongosup_operation_duration_seconds", "histogram", "Duration of operations.");
    for (uint32_t i = 0; i < s->cluster_count; i++) {
        const msup_cluster_snap_t *c = &s->clusters[i];
        uint64_t cumulative = 0;
        uint32_t b = 0;
        for (unsigned le = 0; le < msup_prom_le_count; le++) {
            /* Integral microseconds: an observation of v us is <= X s when v <= X * 1e6. */
            uint64_t bound_us = (uint64_t)(msup_prom_le_seconds[le] * 1e6 + 0.5);
            while (b < MSUP_HIST_BUCKETS - 1 && msup_hist_upper(b) - 1 <= bound_us)
                cumulative += c->totals.hist[b++];
            sample_start(out, "mongosup_operation_duration_seconds_bucket", c);
            fprintf(out, ",le=\"%g\"} %llu\n", msup_prom_le_seconds[le], (unsigned long long)cumulative);
        }
        for (; b < MSUP_HIST_BUCKETS; b++)
            cumulative += c->totals.hist[b];
        /* _count is the +Inf bucket by definition: both come from the bucket
         * array, so a scrape that races a worker stays self-consistent. */
        sample_start(out, "mongosup_operation_duration_seconds_bucket", c);
        fprintf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
        sample_start(out, "mongosup_operation_duration_seconds_sum", c);
        fputs("} ", out);
        print_us_as_seconds(out, c->totals.hist_sum_us);
        fputc('\n', out);
        sample_u64(out, "mongosup_operation_duration_seconds_count", c, cumulative);
    }
}

bool msup_export_prometheus(const msup_snapshot_t *snap, FILE *out)
{
    supervisor_metrics(snap, out);
    health_metrics(snap, out);
    pool_metrics(snap, out);
    operation_metrics(snap, out);
    return !ferror(out);
}
