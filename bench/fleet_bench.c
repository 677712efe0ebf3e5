/* fleet_bench.c: the fleet budget's figures against baselines of the same run: rebalance after a host dies (vs etcd's own lease expiry) and after one joins, etcd requests per host, and checkout+checkin with and without a fleet (ns and callgrind instructions). */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <CUnit/TestRun.h>
#include <valgrind/callgrind.h>

#include "fleet_fixture.h"
#include "mongosup.h"
#include "testmain.h"

/*
 * The world is tests/fleet_fixture.c's (the fleet tests use the same): a
 * real etcd on free loopback ports, mongosupd "hosts" with their own
 * segments, and the test peer.  With 4 idle hosts (total 40, floor 4,
 * max_hosts 4) every host gets 10; with 3 (one floor stays reserved for
 * the unseen host) 12 each.
 */

#define REPEATS 3
#define PAIRS 200000L

static bool all_at(int n, uint32_t cap)
{
    for (int i = 0; i < n; i++)
        if (host_cap(&hosts[i]) != cap)
            return false;
    return true;
}

static bool four_at_10(void)
{
    return all_at(4, 10);
}

static bool three_at_12(void)
{
    return all_at(3, 12);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* etcd alone: a key on a lease of TTL_S whose keepalives stop, read every
 * 10 ms until it is gone (the floor under any rebalance after a death). */
static long bare_expiry_ms(const char *endpoint)
{
    msup_etcd_t *e = test_client(endpoint);
    int64_t lease = 0;
    bool applied = false;
    long took = -1;
    if (msup_etcd_lease_grant(e, TTL_S, &lease) == MSUP_ETCD_OK &&
        msup_etcd_put(e, "/bench-expiry/k", "v", lease, NULL, 0, &applied) == MSUP_ETCD_OK) {
        uint64_t t0 = msup_test_now_ms();
        while (msup_test_now_ms() - t0 < 4u * TTL_S * 1000) {
            msup_etcd_range_t r;
            if (msup_etcd_range_prefix(e, "/bench-expiry", &r) == MSUP_ETCD_OK) {
                size_t n = r.count;
                msup_etcd_range_free(&r);
                if (n == 0) {
                    took = (long)(msup_test_now_ms() - t0);
                    break;
                }
            }
            msup_test_sleep_ms(10);
        }
    }
    msup_etcd_free(e);
    return took;
}

static double thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Child: attach with conf, warm, then n checkout+checkin pairs (an idle
 * client at hand: the budget's token path each time).  Prints the CPU ns
 * per pair; under callgrind it counts only the loop (one dump). */
static int pairs_main(const char *conf, long n)
{
    mongosup_error_t err;
    mongosup_config_t *cfg = mongosup_config_load(conf, NULL, &err);
    mongosup_t *m = cfg != NULL ? mongosup_attach(cfg, &err) : NULL;
    if (m == NULL) {
        fprintf(stderr, "fleet_bench: %s\n", err.message);
        return 2;
    }
    for (int i = 0; i < 1000; i++) {
        mongoc_client_t *c = mongosup_checkout(m, "main", &err);
        if (c == NULL) {
            fprintf(stderr, "fleet_bench: checkout: %s\n", err.message);
            return 2;
        }
        mongosup_checkin(m, c, NULL);
    }
    CALLGRIND_ZERO_STATS;
    CALLGRIND_TOGGLE_COLLECT;
    double t0 = thread_cpu_ns();
    for (long i = 0; i < n; i++)
        mongosup_checkin(m, mongosup_checkout(m, "main", &err), NULL);
    double ns = (thread_cpu_ns() - t0) / (double)n;
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_DUMP_STATS_AT("fleet pairs");
    printf("%.2f\n", ns);
    mongosup_detach(&m, 5000);
    mongosup_config_destroy(&cfg);
    return 0;
}

/* Runs this program's --pairs mode on conf; callgrind: instructions per
 * pair instead of ns (-1 on failure). */
static double run_pairs(const char *conf, long n, bool callgrind)
{
    char self[PATH_MAX], count[32], out_opt[PATH_MAX + 32], cg[PATH_MAX], res[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return -1;
    self[len] = '\0';
    snprintf(count, sizeof count, "%ld", n);
    snprintf(cg, sizeof cg, "%s/cg.out", tmpdir);
    snprintf(out_opt, sizeof out_opt, "--callgrind-out-file=%s", cg);
    snprintf(res, sizeof res, "%s/pairs.out", tmpdir);
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen(res, "w", stdout) == NULL)
            _exit(126);
        if (callgrind)
            execlp("valgrind", "valgrind", "--tool=callgrind", "--collect-atstart=no", "-q", out_opt, self, "--pairs",
                   conf, count, (char *)NULL);
        else
            execl(self, self, "--pairs", conf, count, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -1;
    double v = -1;
    char dump[PATH_MAX + 8];
    snprintf(dump, sizeof dump, "%s.1", cg); /* CALLGRIND_DUMP_STATS_AT's: only the loop */
    FILE *f = fopen(callgrind ? dump : res, "r");
    char line[512];
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        unsigned long long total = 0;
        if (!callgrind)
            v = atof(line);
        else if (sscanf(line, "summary: %llu", &total) == 1 || sscanf(line, "totals: %llu", &total) == 1)
            v = (double)total / (double)n;
    }
    if (f != NULL)
        fclose(f);
    unlink(dump);
    unlink(cg);
    unlink(res);
    return v;
}

static void fail(const char *what)
{
    fprintf(stderr, "fleet_bench: %s\n", what);
    exit(1);
}

static bool quick;

/* /proc/loadavg's 1-minute figure: the machine's load, printed with the
 * figures it shaped (-1: unknown). */
static double load_1min(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double l = -1;
    if (f != NULL && fscanf(f, "%lf", &l) != 1)
        l = -1;
    if (f != NULL)
        fclose(f);
    return l;
}

/* The run (inside a silent CUnit test: the fixture checks with CUnit's
 * assertions). */
static void bench(void)
{
    setup_dir();
    etcd_proc_t etcd = {0};
    if (!etcd_start(&etcd))
        fail("etcd did not start");
    if ((peer = test_peer_start("standalone", 1, NULL)) == NULL)
        fail("the test peer did not start");

    double load_before = load_1min();
    long expiry[REPEATS], died[REPEATS], joined[REPEATS];
    for (int i = 0; i < HOSTS; i++)
        if (!host_start(&hosts[i], i, etcd.endpoint, false))
            fail("a host did not start");
    if (wait_ms(four_at_10, 30000) < 0)
        fail("4 hosts did not reach 10 each");
    for (int r = 0; r < REPEATS; r++) {
        expiry[r] = bare_expiry_ms(etcd.endpoint);
        uint64_t t0 = msup_test_now_ms();
        host_kill(&hosts[3]);
        died[r] = wait_ms(three_at_12, 30000) >= 0 ? (long)(msup_test_now_ms() - t0) : -1;
        msup_segment_close(&hosts[3].seg);
        t0 = msup_test_now_ms();
        if (!host_start(&hosts[3], 3, etcd.endpoint, false))
            fail("host 3 did not start again");
        joined[r] = wait_ms(four_at_10, 30000) >= 0 ? (long)(msup_test_now_ms() - t0) : -1;
        if (died[r] < 0 || joined[r] < 0 || expiry[r] < 0)
            fail("no rebalance within 30 s");
    }
    /* etcd requests of an idle host in the steady state. */
    uint64_t q0 = ctl_fleet_counter(&hosts[2], "etcd-requests"), t0 = msup_test_now_ms();
    msup_test_sleep_ms(3000);
    double per_s = (double)(ctl_fleet_counter(&hosts[2], "etcd-requests") - q0) * 1000.0 / (double)(msup_test_now_ms() - t0);

    /* Checkout: host 1 in the fleet against a host outside it with the same
     * cap (max_connections = host 1's share), both under their mongosupd. */
    uint32_t cap = host_cap(&hosts[1]);
    for (int i = 2; i < HOSTS; i++)
        host_stop(&hosts[i]);
    conf_fleet_max = 0;
    conf_floor = 0;
    snprintf(extra_cluster_keys, sizeof extra_cluster_keys, "max_connections = %u;", cap);
    if (!host_start(&hosts[2], 2, etcd.endpoint, false))
        fail("the host without a fleet did not start");
    long n = quick ? PAIRS / 10 : PAIRS;
    double ns_fleet[5], ns_plain[5];
    for (int r = 0; r < 5; r++) { /* interleaved: load changes hit both alike */
        ns_plain[r] = run_pairs(hosts[2].conf, n, false);
        ns_fleet[r] = run_pairs(hosts[1].conf, n, false);
        if (ns_plain[r] < 0 || ns_fleet[r] < 0)
            fail("a checkout run failed");
    }
    bool have_cg = system("command -v valgrind >/dev/null 2>&1") == 0;
    double in_plain = have_cg ? run_pairs(hosts[2].conf, n / 20, true) : -1;
    double in_fleet = have_cg ? run_pairs(hosts[1].conf, n / 20, true) : -1;

    qsort(expiry, REPEATS, sizeof expiry[0], cmp_long);
    qsort(died, REPEATS, sizeof died[0], cmp_long);
    qsort(joined, REPEATS, sizeof joined[0], cmp_long);
    double sorted_plain[5], sorted_fleet[5];
    memcpy(sorted_plain, ns_plain, sizeof ns_plain);
    memcpy(sorted_fleet, ns_fleet, sizeof ns_fleet);
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++) {
            if (sorted_plain[j] < sorted_plain[i]) {
                double t = sorted_plain[i];
                sorted_plain[i] = sorted_plain[j];
                sorted_plain[j] = t;
            }
            if (sorted_fleet[j] < sorted_fleet[i]) {
                double t = sorted_fleet[i];
                sorted_fleet[i] = sorted_fleet[j];
                sorted_fleet[j] = t;
            }
        }
    printf("## Rebalance (4 mongosupd hosts, one etcd, lease TTL %d s, poll 100 ms; min / median / max of %d)\n\n",
           TTL_S, REPEATS);
    printf("| event | measured | baseline (same run) | ratio (median) | target |\n|---|---:|---:|---:|---:|\n");
    printf("| a host SIGKILLed: the 3 others at 12 each | %ld / %ld / %ld ms | etcd's own expiry of a %d s lease: "
           "%ld / %ld / %ld ms | %.2f | TTL + 1 s = %d ms |\n",
           died[0], died[1], died[2], TTL_S, expiry[0], expiry[1], expiry[2], (double)died[1] / (double)expiry[1],
           TTL_S * 1000 + 1000);
    printf("| the host starts again: all 4 at 10 each (from its spawn) | %ld / %ld / %ld ms | one poll: 100 ms | %.1f | "
           "1 s |\n",
           joined[0], joined[1], joined[2], (double)joined[1] / 100.0);
    printf("\netcd requests of an idle host in the steady state: %.1f/s (poll 100 ms, TTL %d s; the defaults, 250 ms "
           "and 10 s, make it about 4.4/s).\n",
           per_s, TTL_S);
    printf("\n## Checkout + checkin with and without a fleet (cap %u either way; %ld pairs per run, median of 5 "
           "interleaved runs; instructions: callgrind, %ld pairs)\n\n",
           cap, n, n / 20);
    printf("| measure | no fleet (max_connections %u) | fleet (share %u) | ratio |\n|---|---:|---:|---:|\n", cap, cap);
    printf("| CPU ns per pair | %.1f | %.1f | %.3f |\n", sorted_plain[2], sorted_fleet[2], sorted_fleet[2] / sorted_plain[2]);
    if (in_plain > 0 && in_fleet > 0)
        printf("| instructions per pair | %.1f | %.1f | %.4f |\n", in_plain, in_fleet, in_fleet / in_plain);
    else
        printf("| instructions per pair | (no callgrind) | | |\n");
    /* What the tables cannot say: part of the generated document (make
     * bench rewrites docs/benchmarks.md from what the programs print). */
    printf("\nThe death row is timed from the SIGKILL, the baseline from a put right\n"
           "after its lease was granted: a host's last keepalive came up to a quarter\n"
           "TTL before it was killed, so its room returns a little *before* a fresh\n"
           "lease of the same TTL expires. The join row includes starting mongosupd.\n"
           "Load average (1 min) %.1f at the start of the run and %.1f at its end, %ld cores.\n",
           load_before, load_1min(), sysconf(_SC_NPROCESSORS_ONLN));

    for (int i = 0; i < 3; i++)
        host_stop(&hosts[i]);
    test_peer_stop(&peer);
    etcd_remove(&etcd);
    remove_dir();
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--pairs") == 0)
        return pairs_main(argv[2], atol(argv[3]));
    quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    if (access(ETCD_BIN, X_OK) != 0) {
        printf("SKIP: %s is not installed (Debian: etcd-server)\n", ETCD_BIN);
        return 0;
    }
    setenv("MONGOC_DISABLE_SHM", "1", 1);
    atexit(cleanup_at_exit);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite suite = CU_add_suite("fleet_bench", NULL, NULL);
    CU_add_test(suite, "bench", bench);
    CU_run_all_tests(); /* the core runner: no output of its own */
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed == 0 ? 0 : 1;
}
