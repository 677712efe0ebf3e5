/* storm_bench.c: the connection budget under storms, refereed by the counting proxy: time to fairness, handshakes at once, time to shrink. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "mongosup.h"
#include "peer/peer.h"
#include "segment.h"
#include "segment_fixture.h"
#include "worker.h"

/*
 * The three scenarios of issue 17, against the test peer (tests/peer) behind
 * the counting proxy (tests/peer/countproxy.py), which sees every socket:
 *   fairness  8 workers x 16 threads, no think time, max_connections 20
 *   storm     8 workers x 4 threads, max_connecting 3, a 100 ms first reply,
 *             wait_queue_timeout_ms 250: cold start, then the server killed
 *             and restarted under load
 *   shrink    2 workers x 16 threads, max_connections 40 lowered to 8
 * The figures are the proxy's.  Build it against another libmsup_core (the
 * same source, linked with an older lib/) to get that version's figures:
 * it uses only what both have (docs/budget.md, "Measured").
 */

#define NS_PER_MS 1000000ull

typedef struct shared {
    _Atomic int stop;
    _Atomic long ok, failed;
} shared_t;

static shared_t *sh;
static test_peer_t *peer, *proxy;
static char conf_path[128], segment_name[64];

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long stat_of(const char *key)
{
    return test_peer_stat(proxy, key);
}

static void proxy_say(const char *json)
{
    if (!test_peer_command(proxy, json, NULL, 0))
        fprintf(stderr, "storm_bench: the proxy refused %s\n", json);
}

static mongosup_config_t *write_config(const char *keys)
{
    snprintf(conf_path, sizeof conf_path, "/tmp/storm-bench-%d.conf", (int)getpid());
    snprintf(segment_name, sizeof segment_name, "/msup-storm-bench-%d", (int)getpid());
    msup_segment_unlink(segment_name, NULL);
    FILE *fp = fopen(conf_path, "w");
    if (fp == NULL)
        return NULL;
    fprintf(fp,
            "segment = { name = \"%s\"; max_workers = 16; max_clusters = 1; };\n"
            "default_environment = \"bench\";\n"
            "environments = { bench = { clusters = { main = {\n"
            "  mongo_uri = \"%s\"; database_name = \"wtest\"; heartbeat_frequency_ms = 500;\n"
            "  connect_timeout_ms = 2000; server_selection_timeout_ms = 3000; %s };\n"
            "}; }; };\n",
            segment_name, test_peer_uri(proxy), keys);
    fclose(fp);
    mongosup_error_t error;
    mongosup_config_t *cfg = mongosup_config_load(conf_path, NULL, &error);
    if (cfg == NULL)
        fprintf(stderr, "storm_bench: %s\n", error.message);
    return cfg;
}

typedef struct thread_arg {
    mongosup_t *h;
    bool counting;
} thread_arg_t;

static void *op_loop(void *arg)
{
    thread_arg_t *t = arg;
    while (!atomic_load(&sh->stop)) {
        mongosup_error_t error;
        mongoc_client_t *client = mongosup_checkout(t->h, "main", &error);
        if (client == NULL) {
            atomic_fetch_add(&sh->failed, 1);
            continue;
        }
        /* A count, not a ping: the proxy tells it from mongosup's handshake ping. */
        bson_t cmd = BSON_INITIALIZER;
        if (t->counting)
            BSON_APPEND_UTF8(&cmd, "count", "c");
        else
            BSON_APPEND_INT32(&cmd, "ping", 1);
        bson_error_t berr;
        bool ok = mongoc_client_command_simple(client, t->counting ? "wtest" : "admin", &cmd, NULL, NULL, &berr);
        bson_destroy(&cmd);
        mongosup_checkin(t->h, client, ok ? NULL : &berr);
        atomic_fetch_add(ok ? &sh->ok : &sh->failed, 1);
    }
    return NULL;
}

static pid_t spawn_worker(const mongosup_config_t *cfg, int threads, bool counting)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(cfg, &error);
    if (h == NULL)
        _exit(2);
    pthread_t th[16];
    thread_arg_t arg = {.h = h, .counting = counting};
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, op_loop, &arg);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    _exit(mongosup_detach(&h, 10000) ? 0 : 3);
}

static void stop_workers(const pid_t *pids, int n)
{
    atomic_store(&sh->stop, 1);
    for (int i = 0; i < n; i++)
        waitpid(pids[i], NULL, 0);
    atomic_store(&sh->stop, 0);
}

static void scenario_fairness(void)
{
    enum { WORKERS = 8, THREADS = 16, BUDGET = 20 };
    mongosup_config_t *cfg = write_config("max_pool_size = 10; max_connections = 20; wait_queue_timeout_ms = 60000;");
    if (cfg == NULL)
        return;
    test_peer_command(peer, "{\"cmd\":\"delay\",\"ms\":5,\"command\":\"ping\"}", NULL, 0);
    proxy_say("{\"cmd\":\"reset_stats\"}");
    pid_t pids[WORKERS];
    uint64_t start = mono_ms();
    for (int i = 0; i < WORKERS; i++)
        pids[i] = spawn_worker(cfg, THREADS, false);
    long first_all = -1, fair_at = -1;
    double fair = (double)BUDGET / WORKERS;
    while (mono_ms() - start < 10000 && (first_all < 0 || fair_at < 0)) {
        if (first_all < 0 && stat_of("workers.count") == WORKERS && stat_of("workers.first_app_missing") == 0)
            first_all = stat_of("workers.first_app_max_ms");
        long lo = stat_of("workers.open_min"), hi = stat_of("workers.open_max");
        if (fair_at < 0 && stat_of("workers.count") == WORKERS && lo >= fair - 1 && hi <= fair + 1)
            fair_at = (long)(mono_ms() - start);
        nap_ms(5);
    }
    nap_ms(1000);
    long lo = stat_of("workers.open_min"), hi = stat_of("workers.open_max"), high = stat_of("conn.max");
    stop_workers(pids, WORKERS);
    test_peer_command(peer, "{\"cmd\":\"clear\"}", NULL, 0);
    printf("| fairness: every worker's first application connection | %s%ld ms |\n", first_all < 0 ? "> 10000: " : "",
           first_all);
    printf("| fairness: every worker within one token of B/N = %.1f | %s%ld ms |\n", fair, fair_at < 0 ? "never: " : "",
           fair_at);
    printf("| fairness: per-worker sockets 1 s later (min..max) | %ld..%ld |\n", lo, hi);
    printf("| fairness: sockets at most (budget %d) | %ld |\n", BUDGET, high);
    mongosup_config_destroy(&cfg);
}

static void scenario_storm(void)
{
    enum { WORKERS = 8, THREADS = 4 };
    mongosup_config_t *cfg = write_config("max_pool_size = 4; max_connections = 40; max_connecting = 3; "
                                          "wait_queue_timeout_ms = 250;");
    if (cfg == NULL)
        return;
    proxy_say("{\"cmd\":\"delay_first_reply\",\"ms\":100}");
    proxy_say("{\"cmd\":\"reset_stats\"}");
    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        pids[i] = spawn_worker(cfg, THREADS, true);
    nap_ms(2000);
    long cold_max = stat_of("handshakes.app_max"), cold_bypass = stat_of("bypass.count");
    proxy_say("{\"cmd\":\"reset_stats\"}");
    test_peer_kill(peer, SIGKILL);
    nap_ms(300);
    test_peer_restart(peer);
    nap_ms(3000);
    long restart_max = stat_of("handshakes.app_max"), restart_all = stat_of("handshakes.all_max");
    long restart_bypass = stat_of("bypass.count");
    stop_workers(pids, WORKERS);
    proxy_say("{\"cmd\":\"delay_first_reply\",\"ms\":0}");
    printf("| storm: application handshakes at once, cold start (max_connecting 3) | %ld (%ld bypassing) |\n",
           cold_max, cold_bypass);
    printf("| storm: application handshakes at once, server restarted | %ld (%ld with monitors; %ld bypassing) |\n",
           restart_max, restart_all, restart_bypass);
    mongosup_config_destroy(&cfg);
}

/* A reload lowers the budget in the supervisor's control row, which the
 * workers believe only from a live supervisor: the bench plays one (the
 * segment with its control object, the cluster's row, a pid and a
 * heartbeat that stays fresh for the scenario) before they attach. */
static bool play_supervisor(const mongosup_config_t *cfg, msup_segment_t *seg, int *row, mongosup_error_t *error)
{
    msup_geometry_t geo = msup_geometry_of(cfg);
    bool created;
    if (!msup_segment_open_or_create(cfg->segment_name, &geo, seg, &created, error))
        return false;
    if (!msup_test_control_attach(seg) || (*row = msup_registry_map(seg, &cfg->clusters[0], 0)) < 0) {
        snprintf(error->message, sizeof error->message, "cannot claim the control segment or map the cluster");
        msup_segment_close(seg);
        return false;
    }
    msup_test_publish_cluster(seg, &cfg->clusters[0], (uint32_t)*row);
    msup_header_t *hdr = msup_segment_hdr(seg);
    atomic_store(&hdr->heartbeat_timeout_ms, 600000);
    atomic_store(&hdr->heartbeat_mono_ns, msup_mono_ns());
    atomic_store(&hdr->supervisor_pid, (int32_t)getpid());
    return true;
}

static void scenario_shrink(void)
{
    enum { WORKERS = 2, THREADS = 16, HIGH = 40, LOW = 8 };
    mongosup_config_t *cfg = write_config("max_pool_size = 20; max_connections = 40; wait_queue_timeout_ms = 60000;");
    if (cfg == NULL)
        return;
    msup_segment_t seg;
    mongosup_error_t error;
    int row = -1;
    if (!play_supervisor(cfg, &seg, &row, &error)) {
        fprintf(stderr, "storm_bench: shrink: %s\n", error.message);
        mongosup_config_destroy(&cfg);
        return;
    }
    test_peer_command(peer, "{\"cmd\":\"delay\",\"ms\":5,\"command\":\"ping\"}", NULL, 0);
    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        pids[i] = spawn_worker(cfg, THREADS, false);
    for (int i = 0; i < 500 && stat_of("conn.current") < WORKERS * (THREADS + 1) - 2; i++)
        nap_ms(10);
    long before = stat_of("conn.current");
    long within = -1, settled = -1;
    long failed_before = atomic_load(&sh->failed);
    uint64_t t0 = mono_ms();
    msup_budget_apply_limits(&msup_segment_row(&seg, (uint32_t)row)->limits, LOW, 0); /* what a reload does */
    while (mono_ms() - t0 < 15000) {
        if (stat_of("conn.current") <= LOW) {
            within = (long)(mono_ms() - t0);
            break;
        }
        nap_ms(2);
    }
    proxy_say("{\"cmd\":\"reset_stats\"}");
    nap_ms(1000);
    settled = stat_of("conn.max");
    stop_workers(pids, WORKERS);
    printf("| shrink: sockets within a lowered budget (%ld sockets, %d -> %d) | %s%ld ms |\n", before, HIGH, LOW,
           within < 0 ? "> 15000: " : "", within);
    printf("| shrink: sockets at most in the next second | %ld |\n", settled);
    printf("| shrink: operations failed meanwhile | %ld |\n", atomic_load(&sh->failed) - failed_before);
    atomic_store(&msup_segment_hdr(&seg)->supervisor_pid, 0);
    msup_segment_close(&seg);
    test_peer_command(peer, "{\"cmd\":\"clear\"}", NULL, 0);
    mongosup_config_destroy(&cfg);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return 1;
    memset(sh, 0, sizeof *sh);
    mongoc_init();
    peer = test_peer_start("standalone", 1, NULL);
    proxy = peer ? test_peer_start_proxy(peer) : NULL;
    if (proxy == NULL) {
        fprintf(stderr, "storm_bench: needs the test peer and its counting proxy (python3-mockupdb)\n");
        test_peer_stop(&peer);
        return 1;
    }
    printf("The connection budget under storms, as the counting proxy in front of the test peer sees it\n"
           "(tests/peer/countproxy.py; docs/budget.md tells the scenarios):\n\n");
    printf("| measure | figure |\n|---|---:|\n");
    scenario_fairness();
    scenario_storm();
    scenario_shrink();
    test_peer_stop(&proxy);
    test_peer_stop(&peer);
    unlink(conf_path);
    msup_segment_unlink(segment_name, NULL);
    mongoc_cleanup();
    return 0;
}
