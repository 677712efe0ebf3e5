/* tools_export_test.c: mongosup-top --once, --json and --prometheus against a segment filled with known values. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "testmain.h"
#include "tools_fixture.h"
#include "tools_promcheck.h"

static char seg_name[64];
static msup_segment_t seg;

static void setup(void)
{
    snprintf(seg_name, sizeof seg_name, "%s", msup_test_segment_name("export"));
    CU_ASSERT_FATAL(fx_create(seg_name, getpid(), getpid(), &seg));
}

static void teardown(void)
{
    msup_segment_close(&seg);
    msup_segment_unlink(seg_name, NULL);
}

static char *top(const char *args, int *status)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s -n %s %s", fx_tool("mongosup-top"), seg_name, args);
    return fx_run(cmd, false, status);
}

/* Splits the line that starts with `first` (a whole token) into tokens. */
static int row_tokens(const char *text, const char *first, char tok[][64], int max)
{
    size_t fl = strlen(first);
    for (const char *p = text; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, first, fl) == 0 && p[fl] == ' ') {
            int n = 0;
            const char *q = p;
            while (*q && *q != '\n' && n < max) {
                while (*q == ' ')
                    q++;
                size_t l = strcspn(q, " \n");
                if (l == 0)
                    break;
                snprintf(tok[n++], 64, "%.*s", (int)l, q);
                q += l;
            }
            return n;
        }
    }
    return 0;
}

static void expect_row(const char *text, const char *const *want, int n)
{
    char tok[20][64];
    int got = row_tokens(text, want[0], tok, 20);
    CU_ASSERT_EQUAL(got, n);
    for (int i = 0; i < n && i < got; i++) {
        if (want[i] == NULL)
            continue; /* time-dependent cell checked elsewhere */
        if (strcmp(tok[i], want[i]) != 0)
            fprintf(stderr, "\nrow %s cell %d: got '%s', want '%s'\n", want[0], i, tok[i], want[i]);
        CU_ASSERT_STRING_EQUAL(tok[i], want[i]);
    }
}

static void test_once_values(void)
{
    setup();
    int st;
    char *out = top("--once", &st);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_EQUAL(st, 0);
    char want[160];
    snprintf(want, sizeof want, "supervisor pid %d (alive)  uptime 1h02m", (int)getpid());
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "environment production"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "phase RUNNING"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "clusters 3  workers 2 active / 8 slots  config generation 5  "
                                       "supervisor restarts 1  slots reaped 2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "CLUSTER  STATE"));
    CU_ASSERT_PTR_NULL(strstr(out, "legacy")); /* REMOVED rows are not shown */
    /* CLUSTER STATE SINCE RTT OPS/S ERR/S P50 P99 POOL WAITS/S TIMEOUTS RECONNECT CONNS CONNECTING BUDGET-WAITS */
    const char *users[] = {"users", "UP", "1m05s", "1.5ms", "-", "-", "81us", "200.0ms", "3/20", "-", "1",
                           "4(1/2)", "7/50", "1", "3"};
    expect_row(out, users, 15);
    const char *orders[] = {"orders", "DEGRADED", "10s", "250.0ms", "-", "-", "5us", "5us", "0/0", "-", "0",
                            "0(2/2)", "2/-", "0", "0"};
    expect_row(out, orders, 15);
    const char *billing[] = {"billing", "DOWN", "5s", "0us", "-", "-", "-", "-", "0/10", "-", "0",
                             "0(2/2)", "0/-", "0", "0"};
    expect_row(out, billing, 15);
    /* SLOT PID STATE OPS/S OPS ERRORS IN-USE AGE APPNAME */
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    const char *w0[] = {"0", pid, "ACTIVE", "-", "1010", "7", "2", NULL, "web-0"};
    expect_row(out, w0, 9);
    const char *w1[] = {"1", pid, "ACTIVE", "-", "100", "9", "1", "30s", "web-1"};
    expect_row(out, w1, 9);
    const char *w2[] = {"2", "4242", "EXITED", "-", "0", "0", "0", "1m40s", "web-old"};
    expect_row(out, w2, 9);
    char tok[12][64];
    CU_ASSERT_EQUAL(row_tokens(out, "0", tok, 12), 9);
    CU_ASSERT(strcmp(tok[7], "10m00s") == 0 || strcmp(tok[7], "10m01s") == 0);
    free(out);
    teardown();
}

/* Rates are differences between two snapshots over their time apart. */
static void test_view_rates(void)
{
    setup();
    msup_snapshot_t a, b;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_snapshot_take(&seg, &a, &err));
    msup_stats_t *s = msup_slot_stats(&seg, 0, 0);
    for (int i = 0; i < 500; i++)
        msup_stats_record_op(s, MSUP_OP_READ, 100);
    msup_stats_count(&s->failures[MSUP_FAIL_OTHER], 20);
    msup_stats_count(&s->checkout_waits, 6);
    CU_ASSERT_FATAL(msup_snapshot_take(&seg, &b, &err));
    b.taken_ns = a.taken_ns + 2000000000ull; /* exactly 2 s apart */
    msup_view_t view;
    memset(&view, 0, sizeof view);
    CU_ASSERT_FATAL(msup_view_build(&view, &b, &a));
    CU_ASSERT_STRING_EQUAL(view.clusters[0].cell[MSUP_CCOL_NAME], "users");
    CU_ASSERT_STRING_EQUAL(view.clusters[0].cell[MSUP_CCOL_OPS_RATE], "250.0");
    CU_ASSERT_STRING_EQUAL(view.clusters[0].cell[MSUP_CCOL_ERR_RATE], "10.0");
    CU_ASSERT_STRING_EQUAL(view.clusters[0].cell[MSUP_CCOL_WAIT_RATE], "3.0");
    CU_ASSERT_STRING_EQUAL(view.clusters[1].cell[MSUP_CCOL_OPS_RATE], "0.0");
    CU_ASSERT_STRING_EQUAL(view.workers[0].cell[MSUP_WCOL_OPS_RATE], "250.0");
    CU_ASSERT_STRING_EQUAL(view.workers[1].cell[MSUP_WCOL_OPS_RATE], "0.0");
    /* A counter that went back (segment recreated) is an unknown rate, not a negative one. */
    a.clusters[0].totals.ops[MSUP_OP_READ] += 100000;
    CU_ASSERT_FATAL(msup_view_build(&view, &b, &a));
    CU_ASSERT_STRING_EQUAL(view.clusters[0].cell[MSUP_CCOL_OPS_RATE], "-");
    /* Sorting: by state descending puts DOWN first; by name ascending. */
    msup_view_sort_clusters(&view, MSUP_CCOL_STATE, true);
    CU_ASSERT_STRING_EQUAL(view.clusters[0].cell[MSUP_CCOL_NAME], "billing");
    CU_ASSERT_STRING_EQUAL(view.clusters[2].cell[MSUP_CCOL_NAME], "users");
    msup_view_sort_clusters(&view, MSUP_CCOL_NAME, false);
    CU_ASSERT_STRING_EQUAL(view.clusters[0].cell[MSUP_CCOL_NAME], "billing");
    CU_ASSERT_STRING_EQUAL(view.clusters[1].cell[MSUP_CCOL_NAME], "orders");
    msup_view_sort_workers(&view, MSUP_WCOL_OPS, true);
    CU_ASSERT_STRING_EQUAL(view.workers[0].cell[MSUP_WCOL_SLOT], "0");
    CU_ASSERT_STRING_EQUAL(view.workers[2].cell[MSUP_WCOL_SLOT], "2");
    msup_view_free(&view);
    msup_snapshot_free(&a);
    msup_snapshot_free(&b);
    teardown();
}

static json_object *get(json_object *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save)) {
        json_object *next = NULL;
        if (json_object_is_type(o, json_type_array))
            next = json_object_array_get_idx(o, (size_t)atoi(k));
        else if (!json_object_object_get_ex(o, k, &next))
            next = NULL;
        o = next;
    }
    if (o == NULL)
        fprintf(stderr, "\nmissing JSON member %s\n", path);
    return o;
}

static void expect_u64(json_object *root, const char *path, uint64_t want)
{
    json_object *o = get(root, path);
    CU_ASSERT_PTR_NOT_NULL(o);
    if (o == NULL)
        return;
    uint64_t got = json_object_get_uint64(o);
    if (got != want || !json_object_is_type(o, json_type_int))
        fprintf(stderr, "\n%s: got %llu, want %llu\n", path, (unsigned long long)got, (unsigned long long)want);
    CU_ASSERT(json_object_is_type(o, json_type_int));
    CU_ASSERT_EQUAL(got, want);
}

static void expect_str(json_object *root, const char *path, const char *want)
{
    json_object *o = get(root, path);
    CU_ASSERT_PTR_NOT_NULL(o);
    if (o == NULL)
        return;
    CU_ASSERT(json_object_is_type(o, json_type_string));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(o), want);
}

static void expect_bool(json_object *root, const char *path, bool want)
{
    json_object *o = get(root, path);
    CU_ASSERT_PTR_NOT_NULL(o);
    if (o != NULL) {
        CU_ASSERT(json_object_is_type(o, json_type_boolean));
        CU_ASSERT_EQUAL(json_object_get_boolean(o) != 0, want);
    }
}

static void test_json_values(void)
{
    setup();
    int st;
    char *out = top("--json", &st);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_EQUAL(st, 0);
    json_tokener *tok = json_tokener_new();
    json_object *root = json_tokener_parse_ex(tok, out, (int)strlen(out));
    CU_ASSERT_EQUAL(json_tokener_get_error(tok), json_tokener_success);
    json_tokener_free(tok);
    CU_ASSERT_FATAL(root != NULL);
    expect_str(root, "schema", "mongosup/1");
    expect_str(root, "segment.name", seg_name);
    expect_str(root, "segment.environment", "production");
    expect_u64(root, "segment.max_workers", 8);
    expect_u64(root, "segment.max_clusters", 4);
    expect_u64(root, "supervisor.pid", (uint64_t)getpid());
    expect_bool(root, "supervisor.alive", true);
    expect_str(root, "supervisor.phase", "RUNNING");
    expect_u64(root, "supervisor.config_generation", 5);
    expect_u64(root, "supervisor.restarts", 1);
    expect_u64(root, "supervisor.slots_reaped", 2);
    CU_ASSERT_EQUAL(json_object_array_length(get(root, "clusters")), 3);

    /* users: every counter is retired + live totals. */
    expect_str(root, "clusters.0.name", "users");
    expect_str(root, "clusters.0.uri", "mongodb://app:***@db1.example:27017/?replicaSet=rs0");
    expect_str(root, "clusters.0.state", "UP");
    expect_u64(root, "clusters.0.transitions", 3);
    expect_bool(root, "clusters.0.replica_set", true);
    expect_bool(root, "clusters.0.has_primary", true);
    expect_bool(root, "clusters.0.circuit_breaker", true);
    expect_u64(root, "clusters.0.checks.rtt_us", FX_USERS_RTT_US);
    expect_u64(root, "clusters.0.checks.consecutive_ok", 12);
    expect_u64(root, "clusters.0.checks.consecutive_fail", 0);
    expect_u64(root, "clusters.0.checks.passed", 100);
    expect_u64(root, "clusters.0.checks.failed", 2);
    CU_ASSERT(json_object_is_type(get(root, "clusters.0.checks"), json_type_object));
    expect_u64(root, "clusters.0.reconnect.generation", 4);
    expect_u64(root, "clusters.0.reconnect.workers_live", 2);
    expect_u64(root, "clusters.0.reconnect.workers_acked", 1);
    expect_u64(root, "clusters.0.reconnect.pool_rebuilds", 1);
    expect_u64(root, "clusters.0.pool.in_use", 3);
    expect_u64(root, "clusters.0.pool.idle", 3);
    expect_u64(root, "clusters.0.pool.clients", 6);
    expect_u64(root, "clusters.0.pool.max", 20);
    expect_u64(root, "clusters.0.pool.max_pool_size", 10);
    expect_u64(root, "clusters.0.pool.checkouts", 1500);
    expect_u64(root, "clusters.0.pool.waits", 10);
    expect_u64(root, "clusters.0.pool.wait_us", 250000);
    expect_u64(root, "clusters.0.pool.timeouts", 1);
    expect_u64(root, "clusters.0.pool.max_reached", 2);
    expect_u64(root, "clusters.0.pool.clients_created", 10);
    expect_u64(root, "clusters.0.pool.clients_destroyed", 5);
    expect_u64(root, "clusters.0.budget.in_use", 7);
    expect_u64(root, "clusters.0.budget.max_connections", 50);
    expect_u64(root, "clusters.0.budget.connecting", 1);
    expect_u64(root, "clusters.0.budget.max_connecting", 4);
    expect_u64(root, "clusters.0.budget.waits", 3);
    expect_u64(root, "clusters.0.budget.fleet.max_connections", 200);
    expect_u64(root, "clusters.0.budget.fleet.share", 50);
    expect_u64(root, "clusters.0.budget.fleet.hosts", 4);
    expect_u64(root, "clusters.0.ops.read", 700);
    expect_u64(root, "clusters.0.ops.write", 300);
    expect_u64(root, "clusters.0.ops.command", 100);
    expect_u64(root, "clusters.0.ops.total", 1100);
    expect_u64(root, "clusters.0.failures.network", 5);
    expect_u64(root, "clusters.0.failures.timeout", 2);
    expect_u64(root, "clusters.0.failures.server_selection", 0);
    expect_u64(root, "clusters.0.failures.auth", 0);
    expect_u64(root, "clusters.0.failures.server_error", 7);
    expect_u64(root, "clusters.0.failures.circuit_open", 0);
    expect_u64(root, "clusters.0.failures.shutting_down", 0);
    expect_u64(root, "clusters.0.failures.other", 0);
    expect_u64(root, "clusters.0.failures.total", 14);
    expect_u64(root, "clusters.0.retries", 4);
    expect_u64(root, "clusters.0.latency_us.count", 1100);
    expect_u64(root, "clusters.0.latency_us.sum", 700 * 80 + 300 * 3000 + 100 * 200000);
    expect_u64(root, "clusters.0.latency_us.max", 200000);
    expect_u64(root, "clusters.0.latency_us.p50", 81);
    expect_u64(root, "clusters.0.latency_us.p99", 200000);
    CU_ASSERT(json_object_is_type(get(root, "clusters.0.latency_us.p90"), json_type_int));
    CU_ASSERT(json_object_is_type(get(root, "clusters.0.latency_us.p999"), json_type_int));
    CU_ASSERT_PTR_NULL(json_object_object_get(get(root, "clusters.0"), "last_error"));

    expect_str(root, "clusters.1.name", "orders");
    expect_str(root, "clusters.1.state", "DEGRADED");
    expect_u64(root, "clusters.1.checks.rtt_us", FX_ORDERS_RTT_US);
    expect_u64(root, "clusters.1.ops.read", 10);
    expect_u64(root, "clusters.1.pool.checkouts", 10);
    expect_u64(root, "clusters.1.latency_us.count", 10);
    expect_u64(root, "clusters.1.latency_us.sum", 50);
    expect_u64(root, "clusters.1.budget.in_use", 2);
    expect_u64(root, "clusters.1.budget.max_connections", 0);
    json_object *unshared = NULL;
    json_object *bud1 = get(root, "clusters.1.budget");
    CU_ASSERT(bud1 != NULL && !json_object_object_get_ex(bud1, "fleet", &unshared)); /* not shared: no fleet member */

    expect_str(root, "clusters.2.name", "billing");
    expect_str(root, "clusters.2.state", "DOWN");
    expect_u64(root, "clusters.2.checks.failed", 7);
    expect_u64(root, "clusters.2.failures.network", 9);
    expect_str(root, "clusters.2.last_error.class", "network");
    expect_u64(root, "clusters.2.last_error.code", 13053);
    expect_u64(root, "clusters.2.last_error.domain", 2);
    expect_str(root, "clusters.2.last_error.message", FX_BILLING_ERROR);
    expect_str(root, "clusters.2.checks.last_error.message", FX_BILLING_CHECK_ERROR);

    CU_ASSERT_EQUAL(json_object_array_length(get(root, "workers")), 3);
    expect_u64(root, "workers.0.slot", 0);
    expect_u64(root, "workers.0.pid", (uint64_t)getpid());
    expect_str(root, "workers.0.state", "ACTIVE");
    expect_str(root, "workers.0.appname", "web-0");
    expect_u64(root, "workers.0.ops", 1010);
    expect_u64(root, "workers.0.failures", 7);
    expect_u64(root, "workers.0.checkouts", 1010);
    expect_u64(root, "workers.0.in_use", 2);
    expect_u64(root, "workers.1.ops", 100);
    expect_u64(root, "workers.1.failures", 9);
    expect_u64(root, "workers.2.pid", FX_EXITED_PID);
    expect_str(root, "workers.2.state", "EXITED");

    /* The slow operations (schema revision 2): the recent ring entries, oldest first, and the totals. */
    expect_u64(root, "schema_revision", 2);
    expect_u64(root, "clusters.0.slow_operations", FX_USERS_SLOW_OPS);
    expect_u64(root, "clusters.2.slow_operations", 0); /* a failed operation is logged, not counted slow */
    CU_ASSERT_EQUAL(json_object_array_length(get(root, "slow_operations")), 2);
    expect_str(root, "slow_operations.0.cluster", "users");
    expect_u64(root, "slow_operations.0.slot", 0);
    expect_u64(root, "slow_operations.0.pid", (uint64_t)getpid());
    expect_str(root, "slow_operations.0.command", "find");
    expect_str(root, "slow_operations.0.database", "app");
    expect_str(root, "slow_operations.0.collection", "orders");
    expect_str(root, "slow_operations.0.server", "db1.example:27017");
    expect_u64(root, "slow_operations.0.duration_us", FX_SLOW_US);
    expect_str(root, "slow_operations.0.outcome", "ok");
    expect_bool(root, "slow_operations.0.slow", true);
    CU_ASSERT(json_object_get_uint64(get(root, "slow_operations.0.time_ns")) > 0);
    expect_str(root, "slow_operations.1.cluster", "billing");
    expect_str(root, "slow_operations.1.command", "insert");
    expect_str(root, "slow_operations.1.outcome", "network");
    expect_bool(root, "slow_operations.1.slow", false);
    json_object_put(root);
    free(out);
    teardown();
}

static void test_json_python(void)
{
    if (access("/usr/bin/python3", X_OK) != 0) {
        fprintf(stderr, "\n/usr/bin/python3 missing: json.tool check skipped\n");
        return;
    }
    setup();
    char cmd[1024];
    int st;
    snprintf(cmd, sizeof cmd, "%s -n %s --json --pretty > /tmp/msup-test-%d.json && /usr/bin/python3 -m json.tool "
             "/tmp/msup-test-%d.json > /dev/null", fx_tool("mongosup-top"), seg_name, (int)getpid(), (int)getpid());
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 0);
    snprintf(cmd, sizeof cmd, "/tmp/msup-test-%d.json", (int)getpid());
    unlink(cmd);
    teardown();
}

static void expect_prom(const char *text, const char *series, const char *want)
{
    const char *got = prom_value(text, series);
    if (got == NULL || strcmp(got, want) != 0)
        fprintf(stderr, "\n%s: got %s, want %s\n", series, got ? got : "(missing)", want);
    CU_ASSERT_PTR_NOT_NULL(got);
    if (got != NULL)
        CU_ASSERT_STRING_EQUAL(got, want);
}

static void test_prometheus_values(void)
{
    setup();
    int st;
    char *out = top("--prometheus", &st);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_EQUAL(st, 0);
    char why[512] = "";
    bool ok = prom_check(out, why, sizeof why);
    if (!ok)
        fprintf(stderr, "\nprometheus check: %s\n", why);
    CU_ASSERT(ok);
    expect_prom(out, "mongosup_up", "1");
    expect_prom(out, "mongosup_slow_operations_total{cluster=\"users\"}", "5");
    expect_prom(out, "mongosup_slow_operations_total{cluster=\"billing\"}", "0");
    expect_prom(out, "mongosup_supervisor_restarts_total", "1");
    expect_prom(out, "mongosup_phase{phase=\"running\"}", "1");
    expect_prom(out, "mongosup_phase{phase=\"draining\"}", "0");
    expect_prom(out, "mongosup_config_generation", "5");
    expect_prom(out, "mongosup_worker_slots", "8");
    expect_prom(out, "mongosup_workers{state=\"active\"}", "2");
    expect_prom(out, "mongosup_workers{state=\"exited\"}", "1");
    expect_prom(out, "mongosup_worker_slots_reaped_total", "2");
    expect_prom(out, "mongosup_cluster_state{cluster=\"users\",state=\"up\"}", "1");
    expect_prom(out, "mongosup_cluster_state{cluster=\"users\",state=\"down\"}", "0");
    expect_prom(out, "mongosup_cluster_state{cluster=\"orders\",state=\"degraded\"}", "1");
    expect_prom(out, "mongosup_cluster_state{cluster=\"billing\",state=\"down\"}", "1");
    expect_prom(out, "mongosup_cluster_state{cluster=\"billing\",state=\"up\"}", "0");
    CU_ASSERT_PTR_NULL(strstr(out, "legacy"));
    expect_prom(out, "mongosup_cluster_state_transitions_total{cluster=\"users\"}", "3");
    expect_prom(out, "mongosup_cluster_check_rtt_seconds{cluster=\"users\"}", "0.001500");
    expect_prom(out, "mongosup_cluster_check_rtt_seconds{cluster=\"orders\"}", "0.250000");
    expect_prom(out, "mongosup_cluster_checks_total{cluster=\"users\",result=\"passed\"}", "100");
    expect_prom(out, "mongosup_cluster_checks_total{cluster=\"users\",result=\"failed\"}", "2");
    expect_prom(out, "mongosup_cluster_has_primary{cluster=\"users\"}", "1");
    CU_ASSERT_PTR_NULL(prom_value(out, "mongosup_cluster_has_primary{cluster=\"orders\"}"));
    expect_prom(out, "mongosup_cluster_reconnect_generation{cluster=\"users\"}", "4");
    expect_prom(out, "mongosup_cluster_workers{cluster=\"users\"}", "2");
    expect_prom(out, "mongosup_cluster_workers_acked{cluster=\"users\"}", "1");
    expect_prom(out, "mongosup_pool_clients_in_use{cluster=\"users\"}", "3");
    expect_prom(out, "mongosup_pool_clients_idle{cluster=\"users\"}", "3");
    expect_prom(out, "mongosup_pool_clients{cluster=\"users\"}", "6");
    expect_prom(out, "mongosup_pool_max_clients{cluster=\"users\"}", "20");
    expect_prom(out, "mongosup_pool_checkouts_total{cluster=\"users\"}", "1500");
    expect_prom(out, "mongosup_pool_checkout_waits_total{cluster=\"users\"}", "10");
    expect_prom(out, "mongosup_pool_checkout_wait_seconds_total{cluster=\"users\"}", "0.250000");
    expect_prom(out, "mongosup_pool_checkout_timeouts_total{cluster=\"users\"}", "1");
    expect_prom(out, "mongosup_pool_max_reached_total{cluster=\"users\"}", "2");
    expect_prom(out, "mongosup_pool_clients_created_total{cluster=\"users\"}", "10");
    expect_prom(out, "mongosup_pool_clients_destroyed_total{cluster=\"users\"}", "5");
    expect_prom(out, "mongosup_pool_rebuilds_total{cluster=\"users\"}", "1");
    expect_prom(out, "mongosup_budget_connections{cluster=\"users\"}", "7");
    expect_prom(out, "mongosup_budget_max_connections{cluster=\"users\"}", "50");
    expect_prom(out, "mongosup_budget_fleet_max_connections{cluster=\"users\"}", "200");
    expect_prom(out, "mongosup_budget_fleet_share_connections{cluster=\"users\"}", "50");
    expect_prom(out, "mongosup_budget_fleet_hosts{cluster=\"users\"}", "4");
    CU_ASSERT_PTR_NULL(strstr(out, "mongosup_budget_fleet_hosts{cluster=\"orders\"}"));
    expect_prom(out, "mongosup_budget_connecting{cluster=\"users\"}", "1");
    expect_prom(out, "mongosup_budget_max_connecting{cluster=\"users\"}", "4");
    expect_prom(out, "mongosup_budget_waits_total{cluster=\"users\"}", "3");
    expect_prom(out, "mongosup_budget_connections{cluster=\"orders\"}", "2");
    expect_prom(out, "mongosup_operation_retries_total{cluster=\"users\"}", "4");
    expect_prom(out, "mongosup_operations_total{cluster=\"users\",class=\"read\"}", "700");
    expect_prom(out, "mongosup_operations_total{cluster=\"users\",class=\"write\"}", "300");
    expect_prom(out, "mongosup_operations_total{cluster=\"users\",class=\"command\"}", "100");
    expect_prom(out, "mongosup_operation_failures_total{cluster=\"users\",class=\"network\"}", "5");
    expect_prom(out, "mongosup_operation_failures_total{cluster=\"users\",class=\"timeout\"}", "2");
    expect_prom(out, "mongosup_operation_failures_total{cluster=\"users\",class=\"server_error\"}", "7");
    expect_prom(out, "mongosup_operation_failures_total{cluster=\"users\",class=\"auth\"}", "0");
    expect_prom(out, "mongosup_operation_failures_total{cluster=\"billing\",class=\"network\"}", "9");
    /* Histogram: 700 at 80 us, 300 at 3 ms, 100 at 200 ms; cumulative, +Inf = count. */
    static const struct { const char *le, *count; } users_buckets[] = {
        {"0.0001", "700"}, {"0.00025", "700"}, {"0.0005", "700"}, {"0.001", "700"}, {"0.0025", "700"},
        {"0.005", "1000"}, {"0.01", "1000"}, {"0.025", "1000"}, {"0.05", "1000"}, {"0.1", "1000"},
        {"0.25", "1100"}, {"0.5", "1100"}, {"1", "1100"}, {"2.5", "1100"}, {"5", "1100"}, {"10", "1100"},
        {"30", "1100"}, {"60", "1100"}, {"+Inf", "1100"},
    };
    for (size_t i = 0; i < sizeof users_buckets / sizeof users_buckets[0]; i++) {
        char series[160];
        snprintf(series, sizeof series, "mongosup_operation_duration_seconds_bucket{cluster=\"users\",le=\"%s\"}",
                 users_buckets[i].le);
        expect_prom(out, series, users_buckets[i].count);
    }
    expect_prom(out, "mongosup_operation_duration_seconds_count{cluster=\"users\"}", "1100");
    expect_prom(out, "mongosup_operation_duration_seconds_sum{cluster=\"users\"}", "20.956000");
    expect_prom(out, "mongosup_operation_duration_seconds_bucket{cluster=\"orders\",le=\"0.0001\"}", "10");
    expect_prom(out, "mongosup_operation_duration_seconds_count{cluster=\"orders\"}", "10");
    expect_prom(out, "mongosup_operation_duration_seconds_sum{cluster=\"orders\"}", "0.000050");
    expect_prom(out, "mongosup_operation_duration_seconds_bucket{cluster=\"billing\",le=\"+Inf\"}", "0");
    /* No per-pid labels by default. */
    CU_ASSERT_PTR_NULL(strstr(out, "pid="));
    free(out);
    teardown();
}

static const char *find_promtool(void)
{
    const char *env = getenv("PROMTOOL");
    if (env != NULL && access(env, X_OK) == 0)
        return env;
    return access("/usr/bin/promtool", X_OK) == 0 ? "/usr/bin/promtool" : NULL;
}

static void test_prometheus_promtool(void)
{
    const char *promtool = find_promtool();
    if (promtool == NULL) {
        fprintf(stderr, "\npromtool missing (Debian: prometheus): only the built-in strict checker ran\n");
        return;
    }
    setup();
    char cmd[1024];
    int st;
    /* Through a file: a pipe would hide the exporter's own exit status. */
    char file[128];
    snprintf(file, sizeof file, "/tmp/msup-test-%d.prom", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s -n %s --prometheus > %s && %s check metrics < %s", fx_tool("mongosup-top"),
             seg_name, file, promtool, file);
    char *out = fx_run(cmd, true, &st);
    if (st != 0)
        fprintf(stderr, "\npromtool: %s\n", out ? out : "");
    CU_ASSERT_EQUAL(st, 0);
    unlink(file);
    free(out);
    teardown();
}

/* The checker itself must refuse what Prometheus refuses. */
static void test_promcheck_rejects(void)
{
    char why[256];
    CU_ASSERT(prom_check("# HELP a_total x\n# TYPE a_total counter\na_total 1\n", why, sizeof why));
    CU_ASSERT_FALSE(prom_check("a 1\n", why, sizeof why));                                    /* no TYPE */
    CU_ASSERT_FALSE(prom_check("# HELP a x\n# TYPE a counter\na 1\n", why, sizeof why));       /* no _total */
    CU_ASSERT_FALSE(prom_check("# HELP a x\n# TYPE a gauge\na{l=\"\\q\"} 1\n", why, sizeof why)); /* escape */
    CU_ASSERT_FALSE(prom_check("# HELP a x\n# TYPE a gauge\na 1\na 2\n", why, sizeof why));    /* duplicate */
    CU_ASSERT_FALSE(prom_check("# HELP a x\n# TYPE a gauge\na one\n", why, sizeof why));       /* value */
    CU_ASSERT_FALSE(prom_check("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"2\"} 4\n"
                               "h_bucket{le=\"+Inf\"} 5\nh_sum 1\nh_count 5\n", why, sizeof why)); /* not cumulative */
    CU_ASSERT_FALSE(prom_check("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 5\n"
                               "h_bucket{le=\"+Inf\"} 6\nh_sum 1\nh_count 5\n", why, sizeof why)); /* +Inf != count */
    CU_ASSERT_FALSE(prom_check("# HELP a x\n# TYPE a gauge\n# HELP b x\n# TYPE b gauge\nb 1\na 1\n", why,
                               sizeof why)); /* not contiguous */
}

static void test_missing_segment(void)
{
    static const char *const modes[] = {"--once", "--json", "--prometheus"};
    for (int i = 0; i < 3; i++) {
        char cmd[512];
        int st;
        snprintf(cmd, sizeof cmd, "%s -n /msup-test-%d-nothere %s", fx_tool("mongosup-top"), (int)getpid(),
                 modes[i]);
        char *out = fx_run(cmd, true, &st);
        CU_ASSERT_EQUAL(st, 1);
        CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "does not exist"));
        free(out);
    }
}

static void test_corrupted_segment(void)
{
    setup();
    char cmd[512];
    int st;
    snprintf(cmd, sizeof cmd, "%s -n %s --json", fx_tool("mongosup-top"), seg_name);
    /* A cluster count beyond the table, then a foreign layout version. */
    atomic_store(&msup_segment_hdr(&seg)->cluster_count, 1000);
    char *out = fx_run(cmd, true, &st);
    CU_ASSERT_EQUAL(st, 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "corrupted"));
    free(out);
    atomic_store(&msup_segment_hdr(&seg)->cluster_count, 4);
    msup_segment_hdr(&seg)->layout_version = 77;
    out = fx_run(cmd, true, &st);
    CU_ASSERT_EQUAL(st, 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "layout version 77"));
    free(out);
    msup_segment_hdr(&seg)->layout_version = MSUP_LAYOUT_VERSION;
    teardown();
}

static void test_usage_and_target(void)
{
    char cmd[512];
    int st;
    snprintf(cmd, sizeof cmd, "%s --bogus", fx_tool("mongosup-top"));
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 64);
    snprintf(cmd, sizeof cmd, "%s -n /x --once --json", fx_tool("mongosup-top"));
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 64);
    snprintf(cmd, sizeof cmd, "%s -n /x -i 0 --once", fx_tool("mongosup-top"));
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 64);
    snprintf(cmd, sizeof cmd, "env -u MONGOSUP_SEGMENT %s --once", fx_tool("mongosup-top"));
    char *out = fx_run(cmd, true, &st);
    CU_ASSERT_EQUAL(st, 64);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "no segment given"));
    free(out);
    /* MONGOSUP_SEGMENT names the segment when -n is absent. */
    setup();
    snprintf(cmd, sizeof cmd, "MONGOSUP_SEGMENT=%s %s --once", seg_name, fx_tool("mongosup-top"));
    out = fx_run(cmd, false, &st);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "users"));
    free(out);
    /* -c FILE -e ENV: the configuration names the segment; a bad environment is one clear line. */
    char cfg[128];
    snprintf(cfg, sizeof cfg, "/tmp/msup-test-%d.cfg", (int)getpid());
    FILE *f = fopen(cfg, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f, "segment = { name = \"%s\"; max_workers = 8; };\n"
               "default_environment = \"staging\";\n"
               "environments = { staging = { clusters = { users = { mongo_uri = \"mongodb://127.0.0.1:1/\"; }; }; }; };\n",
            seg_name);
    fclose(f);
    snprintf(cmd, sizeof cmd, "MONGOSUP_SEGMENT=/elsewhere %s -c %s -e staging --json", fx_tool("mongosup-top"), cfg);
    out = fx_run(cmd, false, &st);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\"schema\":\"mongosup/1\""));
    free(out);
    snprintf(cmd, sizeof cmd, "%s -c %s -e nosuch --json", fx_tool("mongosup-top"), cfg);
    out = fx_run(cmd, true, &st);
    CU_ASSERT_EQUAL(st, 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "unknown environment"));
    CU_ASSERT_PTR_NOT_NULL(out && strchr(out, '\n') == out + strlen(out) - 1); /* one line */
    free(out);
    unlink(cfg);
    teardown();
}

/* ------------------------------------------------------------------ */
/* Hostile text: names and messages with terminal escapes, CR, a bare 0x9b,
 * invalid UTF-8 and a character cut at the record's size (a forged
 * segment, or one written before textsafe existed).                    */

#define HOSTILE_CLUSTER "ord\x1b[2J\r\x9b"
#define HOSTILE_CLUSTER_SHOWN "ord\\x1b[2J\\x0d\\x9b"
#define HOSTILE_APP "web\x1b]0;owned\x07\xff"
#define HOSTILE_APP_SHOWN "web\\x1b]0;owned\\x07\\xff"
#define FFFD "\xef\xbf\xbd"

static void hostile_setup(void)
{
    setup();
    /* The name in both tables: the registry's is shown, the control row's
     * must match it for the row to be believed (layout.h). */
    msup_cluster_row_t *orders = msup_segment_row(&seg, 1);
    memset(orders->name, 0, sizeof orders->name);
    memcpy(orders->name, HOSTILE_CLUSTER, strlen(HOSTILE_CLUSTER));
    msup_reg_row_t *orders_reg = msup_segment_reg(&seg, 1);
    memset(orders_reg->name, 0, sizeof orders_reg->name);
    memcpy(orders_reg->name, HOSTILE_CLUSTER, strlen(HOSTILE_CLUSTER));
    msup_slot_t *slot = msup_segment_slot(&seg, 0);
    memset(slot->appname, 0, sizeof slot->appname);
    memcpy(slot->appname, HOSTILE_APP, strlen(HOSTILE_APP));
    /* Written raw, as a forger (or an older writer) would: readers cope. */
    msup_cluster_row_t *billing = msup_segment_row(&seg, 2);
    snprintf(billing->last_check_error.message, sizeof billing->last_check_error.message, "%s",
             "\xc3( refused \x1b[2J\x9b");
    /* A server message whose 3-byte character straddles the record's end. */
    char msg[200];
    memset(msg, 'm', 109);
    snprintf(msg + 109, sizeof msg - 109, "\xe2\x82\xac tail");
    msup_stats_record_failure(msup_slot_stats(&seg, 0, 0), MSUP_FAIL_SERVER, 17, 2, msg);
}

/* Nothing but printable ASCII and newlines: no escape sequence, no CR, no
 * C1 or invalid byte reaches the terminal (the fixture is ASCII otherwise). */
static bool terminal_safe(const char *out)
{
    for (const unsigned char *p = (const unsigned char *)out; *p; p++)
        if (*p != '\n' && (*p < 0x20 || *p >= 0x7f)) {
            fprintf(stderr, "\nbyte 0x%02x at %zu in: %.300s\n", *p, (size_t)(p - (const unsigned char *)out), out);
            return false;
        }
    return true;
}

static void test_hostile_text_terminal(void)
{
    hostile_setup();
    int st;
    char *out = top("--once", &st);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT(terminal_safe(out));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, HOSTILE_CLUSTER_SHOWN));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, HOSTILE_APP_SHOWN));
    free(out);
    static const char *const ctl_cmds[] = {"status", "workers"};
    static const char *const shown[] = {HOSTILE_CLUSTER_SHOWN, HOSTILE_APP_SHOWN};
    for (int i = 0; i < 2; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s -n %s %s", fx_tool("mongosupctl"), seg_name, ctl_cmds[i]);
        out = fx_run(cmd, true, &st);
        CU_ASSERT_FATAL(out != NULL);
        CU_ASSERT(terminal_safe(out));
        if (strstr(out, shown[i]) == NULL)
            fprintf(stderr, "\nmongosupctl %s: %s\n", ctl_cmds[i], out);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, shown[i]));
        free(out);
    }
    teardown();
}

static void test_hostile_text_json(void)
{
    hostile_setup();
    int st;
    char *out = top("--json", &st);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_EQUAL(st, 0);
    /* No raw control character (C0, DEL, C1 as UTF-8): all are \u00HH. */
    bool raw_control = false;
    for (const unsigned char *p = (const unsigned char *)out; *p; p++)
        raw_control |= (*p < 0x20 && *p != '\n') || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f);
    CU_ASSERT_FALSE(raw_control);
    /* A strict parser that validates UTF-8. */
    json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *root = json_tokener_parse_ex(tok, out, (int)strlen(out));
    CU_ASSERT_EQUAL(json_tokener_get_error(tok), json_tokener_success);
    json_tokener_free(tok);
    CU_ASSERT_FATAL(root != NULL);
    /* Control characters keep their code point; invalid bytes are U+FFFD. */
    expect_str(root, "clusters.1.name", "ord\x1b[2J\r" FFFD);
    expect_str(root, "workers.0.appname", "web\x1b]0;owned\x07" FFFD);
    expect_str(root, "clusters.2.checks.last_error.message", FFFD "( refused \x1b[2J" FFFD);
    char want[120];
    memset(want, 'm', 109);
    want[109] = '\0';
    expect_str(root, "clusters.0.last_error.message", want); /* the cut character is gone */
    json_object_put(root);
    /* And Python's parser, which decodes UTF-8 strictly. */
    if (access("/usr/bin/python3", X_OK) == 0) {
        char file[128], cmd[1024];
        snprintf(file, sizeof file, "/tmp/msup-test-%d-hostile.json", (int)getpid());
        FILE *f = fopen(file, "w");
        CU_ASSERT_FATAL(f != NULL);
        fputs(out, f);
        fclose(f);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c 'import json,sys; json.loads(open(sys.argv[1],\"rb\").read())' %s",
                 file);
        char *py = fx_run(cmd, true, &st);
        if (st != 0)
            fprintf(stderr, "\npython3: %s\n", py ? py : "");
        CU_ASSERT_EQUAL(st, 0);
        free(py);
        unlink(file);
    }
    free(out);
    teardown();
}

static void test_hostile_text_prometheus(void)
{
    hostile_setup();
    int st;
    char *out = top("--prometheus", &st);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT(terminal_safe(out));
    char why[512] = "";
    bool ok = prom_check(out, why, sizeof why);
    if (!ok)
        fprintf(stderr, "\nprom_check: %s\n", why);
    CU_ASSERT(ok);
    /* The label reads as --once shows the name (its backslashes escaped). */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "{cluster=\"ord\\\\x1b[2J\\\\x0d\\\\x9b\"}"));
    free(out);
    const char *promtool = find_promtool();
    if (promtool != NULL) {
        char file[128], cmd[1024];
        snprintf(file, sizeof file, "/tmp/msup-test-%d-hostile.prom", (int)getpid());
        snprintf(cmd, sizeof cmd, "%s -n %s --prometheus > %s && %s check metrics < %s", fx_tool("mongosup-top"),
                 seg_name, file, promtool, file);
        char *pt = fx_run(cmd, true, &st);
        if (st != 0)
            fprintf(stderr, "\npromtool: %s\n", pt ? pt : "");
        CU_ASSERT_EQUAL(st, 0);
        free(pt);
        unlink(file);
    }
    teardown();
}

/* A worker flagged uri_mismatch (its URI differs from the supervisor's
 * row): every output says so. */
static void test_uri_mismatch_shown(void)
{
    setup();
    atomic_store(&msup_slot_stats(&seg, 1, 0)->uri_mismatch, 1);
    int st;
    char *out = top("--once", &st);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\nuri_mismatch: users 1 worker(s)\n"));
    free(out);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s -n %s status", fx_tool("mongosupctl"), seg_name);
    out = fx_run(cmd, true, &st);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "uri_mismatch 1 worker(s)"));
    free(out);
    out = top("--json", &st);
    CU_ASSERT_FATAL(out != NULL);
    json_object *root = json_tokener_parse(out);
    CU_ASSERT_FATAL(root != NULL);
    expect_u64(root, "clusters.0.workers_uri_mismatch", 1);
    expect_u64(root, "clusters.1.workers_uri_mismatch", 0);
    expect_bool(root, "workers.0.uri_mismatch", false);
    expect_bool(root, "workers.1.uri_mismatch", true);
    json_object_put(root);
    free(out);
    out = top("--prometheus", &st);
    CU_ASSERT_FATAL(out != NULL);
    expect_prom(out, "mongosup_cluster_workers_uri_mismatch{cluster=\"users\"}", "1");
    expect_prom(out, "mongosup_cluster_workers_uri_mismatch{cluster=\"orders\"}", "0");
    free(out);
    teardown();
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/tools/once/values", test_once_values},
        {"/tools/view/rates-and-sort", test_view_rates},
        {"/tools/json/values", test_json_values},
        {"/tools/json/python-json-tool", test_json_python},
        {"/tools/prometheus/values", test_prometheus_values},
        {"/tools/prometheus/promtool", test_prometheus_promtool},
        {"/tools/prometheus/checker-rejects", test_promcheck_rejects},
        {"/tools/segment/missing", test_missing_segment},
        {"/tools/segment/corrupted", test_corrupted_segment},
        {"/tools/usage-and-target", test_usage_and_target},
        {"/tools/uri-mismatch-shown", test_uri_mismatch_shown},
        {"/tools/hostile-text/terminal", test_hostile_text_terminal},
        {"/tools/hostile-text/json", test_hostile_text_json},
        {"/tools/hostile-text/prometheus", test_hostile_text_prometheus},
        {NULL, NULL},
    };
    return msup_test_main("tools_export", tests, argc, argv);
}
