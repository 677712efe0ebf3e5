/* tools_fixture.c: fills a segment with known values for the tools' tests and benchmark. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools_fixture.h"

#define STORE(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)

/* A cluster in both tables: the registry row (stats) and the control row. */
static msup_cluster_row_t *add_row(msup_segment_t *seg, uint32_t i, const char *name, uint32_t state,
                                   uint32_t health)
{
    msup_reg_row_t *reg = msup_segment_reg(seg, i);
    snprintf(reg->name, sizeof reg->name, "%s", name);
    STORE(reg->row_state, state);
    msup_cluster_row_t *row = msup_segment_row(seg, i);
    snprintf(row->name, sizeof row->name, "%s", name);
    snprintf(row->uri_display, sizeof row->uri_display, "mongodb://%s.example:27017/", name);
    STORE(row->health, health);
    STORE(row->row_state, state);
    return row;
}

static msup_slot_t *add_slot(msup_segment_t *seg, uint32_t i, pid_t pid, uint32_t state, uint64_t attached_ns,
                             const char *app)
{
    msup_slot_t *slot = msup_segment_slot(seg, i);
    slot->pid = pid;
    slot->start_time = msup_proc_start_time(pid);
    slot->epoch = 1;
    slot->attached_ns = attached_ns;
    snprintf(slot->appname, sizeof slot->appname, "%s", app);
    STORE(slot->state, state);
    return slot;
}

static void ops(msup_stats_t *s, enum msup_op_class cls, unsigned n, uint64_t us)
{
    for (unsigned i = 0; i < n; i++)
        msup_stats_record_op(s, cls, us);
}

void fx_heartbeat(msup_segment_t *seg)
{
    STORE(msup_segment_hdr(seg)->heartbeat_ns, msup_now_ns());
    atomic_store_explicit(&msup_segment_hdr(seg)->heartbeat_mono_ns, msup_mono_ns(), memory_order_release);
}

/* The stats segment and its control segment, claimed by this process (it
 * holds the lock, as mongosupd would: the tools see a held lock). */
static bool create_pair(const char *name, const msup_geometry_t *geo, msup_segment_t *seg)
{
    mongosup_error_t err;
    msup_segment_unlink(name, NULL);
    if (!msup_segment_create(name, geo, seg, &err)) {
        fprintf(stderr, "fixture: %s\n", err.message);
        return false;
    }
    bool created;
    msup_ctlseg_t *ctl = msup_ctlseg_claim(name, geo, &created, &err);
    if (ctl == NULL) {
        fprintf(stderr, "fixture: %s\n", err.message);
        msup_segment_close(seg);
        return false;
    }
    msup_segment_set_control(seg, ctl);
    return true;
}

void fx_set_supervisor(msup_segment_t *seg, pid_t pid)
{
    msup_header_t *h = msup_segment_hdr(seg);
    STORE(h->supervisor_start_time, pid ? msup_proc_start_time(pid) : 0);
    STORE(h->supervisor_started_ns, msup_now_ns() - (uint64_t)FX_UPTIME_S * 1000000000ull);
    STORE(h->heartbeat_timeout_ms, 3000);
    fx_heartbeat(seg);
    atomic_store_explicit(&h->supervisor_pid, pid, memory_order_release);
}

bool fx_create(const char *name, pid_t sup_pid, pid_t worker_pid, msup_segment_t *seg)
{
    msup_geometry_t geo = {.max_workers = 8, .max_clusters = 4, .mode = 0600, .group = (gid_t)-1,
                           .owner = (uid_t)-1, .environment = FX_ENV};
    if (!create_pair(name, &geo, seg))
        return false;
    uint64_t now = msup_now_ns();
    msup_header_t *h = msup_segment_hdr(seg);
    STORE(h->config_generation, 5);
    STORE(h->supervisor_restarts, 1);
    STORE(h->phase, MSUP_PHASE_RUNNING);

    msup_cluster_row_t *users = add_row(seg, 0, "users", MSUP_ROW_ACTIVE, MSUP_HEALTH_UP);
    snprintf(users->uri_display, sizeof users->uri_display, "mongodb://app:***@db1.example:27017/?replicaSet=rs0");
    users->is_replica_set = 1;
    STORE(users->has_primary, 1);
    STORE(users->circuit_breaker, 1);
    STORE(users->health_since_ns, now - (uint64_t)FX_USERS_SINCE_S * 1000000000ull);
    STORE(users->last_check_ns, now);
    STORE(users->last_rtt_us, FX_USERS_RTT_US);
    STORE(users->consecutive_ok, 12);
    STORE(users->transitions, 3);
    STORE(users->checks_passed, 100);
    STORE(users->checks_failed, 2);
    STORE(users->reconnect_generation, 4);
    STORE(users->max_pool_size, 10);
    STORE(seg->reg[0].budget_in_use, 7);
    STORE(seg->reg[0].budget_connecting, 1);
    STORE(users->limits.max_connections, 50);
    STORE(users->limits.max_connecting, 4);
    /* users' budget is shared by a fleet (mongosupd's mirror of etcd). */
    STORE(users->fleet_max_connections, 200);
    STORE(users->fleet_hosts, 4);
    STORE(users->fleet_share, 50);

    msup_cluster_row_t *orders = add_row(seg, 1, "orders", MSUP_ROW_ACTIVE, MSUP_HEALTH_DEGRADED);
    STORE(orders->health_since_ns, now - 10 * 1000000000ull);
    STORE(orders->last_check_ns, now);
    STORE(orders->last_rtt_us, FX_ORDERS_RTT_US);
    STORE(orders->checks_passed, 50);
    STORE(orders->transitions, 1);
    STORE(seg->reg[1].budget_in_use, 2);

    msup_cluster_row_t *billing = add_row(seg, 2, "billing", MSUP_ROW_ACTIVE, MSUP_HEALTH_DOWN);
    STORE(billing->health_since_ns, now - 5 * 1000000000ull);
    STORE(billing->last_check_ns, now);
    STORE(billing->checks_failed, 7);
    STORE(billing->consecutive_fail, 7);
    STORE(billing->transitions, 2);
    msup_last_error_write(&billing->last_check_error, MSUP_FAIL_NETWORK, 2, 13053, FX_BILLING_CHECK_ERROR);

    add_row(seg, 3, "legacy", MSUP_ROW_REMOVED, MSUP_HEALTH_UP);
    STORE(h->cluster_count, 4);
    STORE(seg->shdr->cluster_count, 4);

    /* Worker slot 0: most of the traffic. */
    add_slot(seg, 0, worker_pid, MSUP_SLOT_ACTIVE, now - 600 * 1000000000ull, "web-0");
    msup_stats_t *s = msup_slot_stats(seg, 0, 0);
    STORE(s->pool_in_use, 2);
    STORE(s->pool_idle, 3);
    STORE(s->pool_created, 5);
    STORE(s->pool_max, 10);
    STORE(s->budget_tokens, 5);
    STORE(s->reconnect_ack, 4);
    STORE(s->checkouts, 1000);
    STORE(s->checkout_waits, 10);
    STORE(s->checkout_wait_us, 250000);
    STORE(s->checkout_timeouts, 1);
    STORE(s->max_reached, 2);
    STORE(s->budget_waits, 3);
    STORE(s->clients_created, 6);
    STORE(s->clients_destroyed, 1);
    STORE(s->failures[MSUP_FAIL_NETWORK], 5);
    STORE(s->failures[MSUP_FAIL_TIMEOUT], 2);
    STORE(s->retries, 4);
    STORE(s->reconnects, 1);
    ops(s, MSUP_OP_READ, 600, 80);
    ops(s, MSUP_OP_WRITE, 300, 3000);
    ops(s, MSUP_OP_COMMAND, 100, 200000);
    msup_slowop_in_t slow = {.command = "find", .database = "app", .collection = "orders",
                             .server = "db1.example:27017", .duration_us = FX_SLOW_US, .slow = true};
    msup_slowlog_record(&s->slowlog, &slow);
    msup_stats_t *so = msup_slot_stats(seg, 0, 1);
    STORE(so->checkouts, 10);
    ops(so, MSUP_OP_READ, 10, 5);

    /* Worker slot 1: a little traffic, an old reconnect generation, billing's error. */
    add_slot(seg, 1, worker_pid, MSUP_SLOT_ACTIVE, now - 30 * 1000000000ull, "web-1");
    s = msup_slot_stats(seg, 1, 0);
    STORE(s->pool_in_use, 1);
    STORE(s->pool_created, 1);
    STORE(s->pool_max, 10);
    STORE(s->reconnect_ack, 3);
    ops(s, MSUP_OP_READ, 100, 80);
    msup_stats_t *sb = msup_slot_stats(seg, 1, 2);
    STORE(sb->pool_max, 10);
    msup_stats_record_failure(sb, MSUP_FAIL_NETWORK, 2, 13053, FX_BILLING_ERROR);
    msup_slowop_in_t failed = {.command = "insert", .database = "app", .collection = "invoices",
                               .server = "db3.example:27017", .duration_us = 1200, .outcome = 1 + MSUP_FAIL_NETWORK};
    msup_slowlog_record(&sb->slowlog, &failed);
    for (int i = 0; i < 8; i++)
        msup_stats_count(&sb->failures[MSUP_FAIL_NETWORK], 1);

    /* Slot 2: a worker that detached and waits for the reaper. */
    msup_slot_t *ex = add_slot(seg, 2, FX_EXITED_PID, MSUP_SLOT_EXITED, now - 100 * 1000000000ull, "web-old");
    STORE(ex->exited_ns, now - 1000000000ull);

    /* Retired totals (copy 0 is active): counters of reaped workers. */
    msup_stats_t *r = msup_retired_stats(seg, 0, 0);
    STORE(r->checkouts, 500);
    STORE(r->failures[MSUP_FAIL_SERVER], 7);
    STORE(r->clients_created, 4);
    STORE(r->clients_destroyed, 4);
    STORE(r->slowlog.slow_ops, FX_USERS_SLOW_OPS - 1);
    STORE(seg->retired->slots_reaped[0], 2);

    fx_set_supervisor(seg, sup_pid);
    return true;
}

bool fx_create_big(const char *name, uint32_t workers, uint32_t clusters, msup_segment_t *seg)
{
    msup_geometry_t geo = {.max_workers = workers, .max_clusters = clusters, .mode = 0600, .group = (gid_t)-1,
                           .owner = (uid_t)-1, .environment = FX_ENV};
    if (!create_pair(name, &geo, seg))
        return false;
    uint64_t now = msup_now_ns();
    for (uint32_t c = 0; c < clusters; c++) {
        char cname[32];
        snprintf(cname, sizeof cname, "cluster-%u", c);
        msup_cluster_row_t *row = add_row(seg, c, cname, MSUP_ROW_ACTIVE, MSUP_HEALTH_UP);
        STORE(row->last_check_ns, now);
        STORE(row->last_rtt_us, 900 + c);
        STORE(row->limits.max_connections, 4096);
    }
    STORE(msup_segment_hdr(seg)->cluster_count, clusters);
    STORE(seg->shdr->cluster_count, clusters);
    STORE(msup_segment_hdr(seg)->phase, MSUP_PHASE_RUNNING);
    for (uint32_t w = 0; w < workers; w++) {
        char app[32];
        snprintf(app, sizeof app, "bench-%u", w);
        add_slot(seg, w, getpid(), MSUP_SLOT_ACTIVE, now, app);
        for (uint32_t c = 0; c < clusters; c++) {
            msup_stats_t *s = msup_slot_stats(seg, w, c);
            STORE(s->pool_in_use, 1);
            STORE(s->pool_max, 4);
            /* A spread of latencies so that many buckets are non-zero. */
            for (uint32_t k = 0; k < 16; k++)
                msup_stats_record_op(s, (enum msup_op_class)(k % 3), 50 + (uint64_t)k * k * 997 + w + c);
        }
    }
    fx_set_supervisor(seg, getpid());
    return true;
}

const char *fx_tool(const char *tool)
{
    static char path[2][1024];
    static int turn;
    const char *dir = getenv("MONGOSUP_TEST_BUILDDIR");
    char *p = path[turn++ & 1];
    snprintf(p, sizeof path[0], "%s/tools/%s", dir ? dir : MSUP_BUILDDIR, tool);
    return p;
}

char *fx_run(const char *cmd, bool with_stderr, int *status)
{
    char full[4096];
    snprintf(full, sizeof full, "%s%s", cmd, with_stderr ? " 2>&1" : " 2>/dev/null");
    FILE *p = popen(full, "r");
    *status = -1;
    if (p == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf != NULL && (n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 1024) {
            char *b = realloc(buf, cap * 2);
            if (b == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    int st = pclose(p);
    if (buf == NULL)
        return NULL;
    buf[len] = '\0';
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return buf;
}
