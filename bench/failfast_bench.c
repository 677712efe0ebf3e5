/* failfast_bench.c: a killed and a hung cluster under load, through mongosup and through a plain mongoc pool in the same run: in-flight operations, first refusal, first success after the return. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "failfast.h"
#include "mongosup.h"
#include "peer/peer.h"
#include "segment.h"

#define THREADS 8
#define THINK_MS 5     /* between two operations of one thread */
#define OP_MS 200      /* every find takes this long on the peer: most threads are in flight at the fault */
#define OUTAGE_MS 20000
#define REPEATS 3
#define NS_PER_MS 1000000ull

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Shared with the two load processes (MAP_SHARED before fork). */
typedef struct side_stats {
    _Atomic uint64_t inflight_end_ms[THREADS]; /* fault -> end of the op running at the fault, +1 (0: none) */
    _Atomic uint64_t first_refusal_ms;         /* fault -> first refused checkout, +1 */
    _Atomic uint64_t first_ok_ms;              /* return -> first successful op, +1 */
    _Atomic uint64_t ops;
    _Atomic uint64_t failures_after_return;
} side_stats_t;

#define MAX_CYCLES 64

typedef struct shared {
    _Atomic uint64_t fault_ns, return_ns, down_ns;
    _Atomic bool stop;
    side_stats_t side[2]; /* 0: mongosup, 1: plain mongoc */
    /* Recovery cycles: the current one, when its server came back, and each
     * side's first success after that, in us (+1). */
    _Atomic uint32_t cycle;
    _Atomic uint64_t cycle_return_ns[MAX_CYCLES];
    _Atomic uint64_t cycle_first_ok_us[2][MAX_CYCLES];
} shared_t;

static shared_t *sh;

typedef struct loader {
    int side, index;
    mongosup_t *h;
    mongoc_client_pool_t *pool;
} loader_t;

/* Even threads run a plain command (the driver never retries it), odd
 * threads a find (a retryable read: after a network error the driver
 * selects a server once more). */
static bool run_op(mongoc_client_t *client, bool retryable, bson_error_t *err)
{
    if (!retryable) {
        bson_t *cmd = BCON_NEW("find", BCON_UTF8("c"));
        bool ok = mongoc_client_command_simple(client, "bench", cmd, NULL, NULL, err);
        bson_destroy(cmd);
        return ok;
    }
    mongoc_collection_t *coll = mongoc_client_get_collection(client, "bench", "c");
    bson_t filter = BSON_INITIALIZER;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, NULL, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc))
        ;
    bool ok = !mongoc_cursor_error(cur, err);
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    mongoc_collection_destroy(coll);
    return ok;
}

static void set_once(_Atomic uint64_t *slot, uint64_t ms)
{
    uint64_t zero = 0;
    atomic_compare_exchange_strong(slot, &zero, ms + 1);
}

static void *load_main(void *arg)
{
    loader_t *l = arg;
    side_stats_t *st = &sh->side[l->side];
    while (!atomic_load(&sh->stop)) {
        uint64_t start = msup_mono_ns();
        mongosup_error_t error;
        bson_error_t berr;
        mongoc_client_t *client = l->h != NULL ? mongosup_checkout(l->h, "main", &error)
                                               : mongoc_client_pool_pop(l->pool);
        bool ok = false, refused = client == NULL;
        if (client != NULL) {
            ok = run_op(client, l->index % 2 == 1, &berr);
            if (l->h != NULL)
                mongosup_checkin(l->h, client, ok ? NULL : &berr);
            else
                mongoc_client_pool_push(l->pool, client);
        }
        uint64_t end = msup_mono_ns(), fault = atomic_load(&sh->fault_ns), back = atomic_load(&sh->return_ns);
        atomic_fetch_add(&st->ops, 1);
        if (fault != 0 && start < fault && end >= fault)
            set_once(&st->inflight_end_ms[l->index], (end - fault) / NS_PER_MS);
        if (fault != 0 && refused && end >= fault)
            set_once(&st->first_refusal_ms, (end - fault) / NS_PER_MS);
        if (back != 0 && ok && end >= back)
            set_once(&st->first_ok_ms, (end - back) / NS_PER_MS);
        /* What delayed a recovery, on stderr (stdout is the table). */
        if (back != 0 && !ok && !refused && start >= back && atomic_load(&st->first_ok_ms) == 0 &&
            atomic_fetch_add(&st->failures_after_return, 1) == 0)
            fprintf(stderr, "side %d: failure %llu ms after the return: %s\n", l->side,
                    (unsigned long long)((end - back) / NS_PER_MS), berr.message);
        uint32_t cyc = atomic_load(&sh->cycle);
        uint64_t cback = cyc < MAX_CYCLES ? atomic_load(&sh->cycle_return_ns[cyc]) : 0;
        if (cback != 0 && ok && end >= cback)
            set_once(&sh->cycle_first_ok_us[l->side][cyc], (end - cback) / 1000u);
        sleep_ms(refused ? 1 : THINK_MS);
    }
    return NULL;
}

/* The driver alone logs its monitor's errors at DEBUG on stdout: keep
 * warnings and worse, on stderr (stdout is the results table). */
static void quiet_log(mongoc_log_level_t level, const char *domain, const char *message, void *data)
{
    (void)data;
    if (level <= MONGOC_LOG_LEVEL_WARNING)
        fprintf(stderr, "plain mongoc: %s: %s\n", domain, message);
}

/* A load process: THREADS threads on mongosup (side 0) or on a plain
 * pool (side 1) until told to stop. */
static int load_process(int side, const char *conf, const char *plain_uri)
{
    mongosup_error_t error;
    mongosup_config_t *cfg = NULL;
    mongosup_t *h = NULL;
    mongoc_client_pool_t *pool = NULL;
    if (side == 0) {
        cfg = mongosup_config_load(conf, NULL, &error);
        h = cfg != NULL ? mongosup_attach(cfg, &error) : NULL;
        if (h == NULL) {
            fprintf(stderr, "failfast_bench: %s\n", error.message);
            return 2;
        }
    } else {
        mongoc_init();
        mongoc_log_set_handler(quiet_log, NULL);
        mongoc_uri_t *uri = mongoc_uri_new(plain_uri);
        pool = mongoc_client_pool_new(uri);
        mongoc_uri_destroy(uri);
        mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    }
    loader_t l[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        l[i] = (loader_t){.side = side, .index = i, .h = h, .pool = pool};
        pthread_create(&t[i], NULL, load_main, &l[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    if (h != NULL)
        mongosup_detach(&h, 5000);
    mongosup_config_destroy(&cfg);
    if (pool != NULL)
        mongoc_client_pool_destroy(pool);
    return 0;
}

static const char *daemon_path(void)
{
    static char path[4096];
    const char *b = getenv("MONGOSUP_TEST_BUILDDIR");
    snprintf(path, sizeof path, "%s/supervisor/mongosupd", b && b[0] ? b : MONGOSUP_BUILDDIR);
    return path;
}

static uint32_t main_health(const msup_segment_t *seg)
{
    int row = msup_segment_find_cluster(seg, "main");
    const msup_cluster_row_t *r = row < 0 ? NULL : msup_segment_trusted_row(seg, (uint32_t)row);
    return r == NULL ? MSUP_HEALTH_UNKNOWN : atomic_load(&r->health);
}

typedef struct figures {
    long down, all_max, all_p50, cmd_max, cmd_p50, read_max, read_p50, refusal, first_ok;
} figures_t;

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* Max and median of the in-flight ends of the threads i = first, first +
 * step, ... */
static void inflight_of(const side_stats_t *st, int first, int step, long *max, long *p50)
{
    long v[THREADS];
    int n = 0;
    for (int i = first; i < THREADS; i += step)
        if (atomic_load(&st->inflight_end_ms[i]) != 0)
            v[n++] = (long)atomic_load(&st->inflight_end_ms[i]) - 1;
    qsort(v, (size_t)n, sizeof v[0], cmp_long);
    *max = n ? v[n - 1] : -1;
    *p50 = n ? v[(n - 1) / 2] : -1;
}

static figures_t figures_of(const side_stats_t *st)
{
    figures_t f = {0};
    inflight_of(st, 0, 1, &f.all_max, &f.all_p50);
    inflight_of(st, 0, 2, &f.cmd_max, &f.cmd_p50);
    inflight_of(st, 1, 2, &f.read_max, &f.read_p50);
    f.refusal = (long)atomic_load(&st->first_refusal_ms) - 1;
    f.first_ok = (long)atomic_load(&st->first_ok_ms) - 1;
    return f;
}

/* A peer, mongosupd with the built-in check defaults and the segment,
 * both load processes started on the same URI. */
typedef struct bench_env {
    test_peer_t *peer;
    char segment[64], conf[64], log[64], plain[160];
    pid_t sup, side[2];
    msup_segment_t seg;
    bool mapped;
} bench_env_t;

static void env_stop(bench_env_t *e)
{
    atomic_store(&sh->stop, true);
    for (int s = 0; s < 2; s++) {
        int st;
        if (e->side[s] > 0)
            waitpid(e->side[s], &st, 0); /* our children */
    }
    if (e->mapped)
        msup_segment_close(&e->seg);
    if (e->sup > 0) {
        kill(e->sup, SIGTERM); /* our child, not reaped yet */
        int st;
        waitpid(e->sup, &st, 0);
    }
    test_peer_stop(&e->peer);
    msup_segment_unlink(e->segment, NULL);
    unlink(e->conf);
    unlink(e->log);
}

/* uri_options: appended to both sides' URI ("" for the driver's defaults). */
static bool env_start(bench_env_t *e, const char *uri_options)
{
    memset(e, 0, sizeof *e);
    e->side[0] = e->side[1] = -1;
    memset(sh, 0, sizeof *sh);
    e->peer = test_peer_start("standalone", 1, NULL);
    if (e->peer == NULL)
        return false;
    snprintf(e->segment, sizeof e->segment, "/msup-ffbench-%d", (int)getpid());
    snprintf(e->conf, sizeof e->conf, "/tmp/msup-ffbench-%d.conf", (int)getpid());
    snprintf(e->log, sizeof e->log, "/tmp/msup-ffbench-%d.log", (int)getpid());
    snprintf(e->plain, sizeof e->plain, "mongodb://127.0.0.1:%d/%s", test_peer_port(e->peer, 0), uri_options);
    msup_segment_unlink(e->segment, NULL);
    FILE *fp = fopen(e->conf, "w");
    if (fp == NULL)
        return false;
    /* The built-in health-check defaults; the driver's heartbeat as in the
     * plain URI; server_selection_timeout_ms left to its default. */
    fprintf(fp,
            "segment = { name = \"%s\"; max_workers = 8; max_clusters = 2; };\n"
            "supervisor = { log_level = \"notice\"; };\ndefault_environment = \"bench\";\n"
            "environments = { bench = { clusters = {\n"
            "  main = { mongo_uri = \"%s\"; };\n}; }; };\n",
            e->segment, e->plain);
    fclose(fp);
    fflush(NULL);
    e->sup = fork();
    if (e->sup == 0) {
        int fd = open(e->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execl(daemon_path(), "mongosupd", "-c", e->conf, (char *)NULL);
        _exit(127);
    }
    mongosup_error_t err;
    for (int i = 0; i < 500 && !e->mapped; i++) {
        e->mapped = msup_segment_open_readonly(e->segment, (uid_t)-1, &e->seg, &err);
        if (e->mapped && main_health(&e->seg) != MSUP_HEALTH_UP) {
            msup_segment_close(&e->seg);
            e->mapped = false;
        }
        if (!e->mapped)
            sleep_ms(10);
    }
    if (!e->mapped)
        return false;
    for (int s = 0; s < 2; s++) {
        fflush(NULL);
        e->side[s] = fork();
        if (e->side[s] == 0)
            _exit(load_process(s, e->conf, e->plain));
    }
    sleep_ms(2000); /* warm: pools connected, steady load */
    return true;
}

static bool wait_health(const bench_env_t *e, uint32_t want, unsigned timeout_ms)
{
    for (unsigned i = 0; i < timeout_ms; i++) {
        if (main_health(&e->seg) == want)
            return true;
        sleep_ms(1);
    }
    return false;
}

/* One run of a fault: both sides under load, the fault, OUTAGE_MS, the
 * server back; returns false when the set-up failed. */
static bool run_once(const char *fault, figures_t out[2])
{
    bench_env_t e;
    if (!env_start(&e, "?heartbeatFrequencyMS=500")) {
        env_stop(&e);
        return false;
    }
    char delay[96];
    snprintf(delay, sizeof delay, "{\"cmd\":\"delay\",\"ms\":%d,\"command\":\"find\"}", OP_MS);
    test_peer_command(e.peer, delay, NULL, 0);
    sleep_ms(1000);
    atomic_store(&sh->fault_ns, msup_mono_ns());
    bool kill_it = strcmp(fault, "kill") == 0;
    test_peer_kill(e.peer, kill_it ? SIGKILL : SIGSTOP);
    uint64_t fault_ns = atomic_load(&sh->fault_ns);
    while (msup_mono_ns() - fault_ns < OUTAGE_MS * NS_PER_MS) {
        if (atomic_load(&sh->down_ns) == 0 && main_health(&e.seg) == MSUP_HEALTH_DOWN)
            atomic_store(&sh->down_ns, msup_mono_ns());
        sleep_ms(1);
    }
    bool back = kill_it ? test_peer_restart(e.peer) : (test_peer_kill(e.peer, SIGCONT), true);
    atomic_store(&sh->return_ns, msup_mono_ns());
    /* Back at full speed: the first success measures the recovery,
     * not the synthetic delay (a restarted peer has none). */
    test_peer_command(e.peer, "{\"cmd\":\"clear\"}", NULL, 0);
    for (int i = 0; back && i < 1500 && (atomic_load(&sh->side[0].first_ok_ms) == 0 ||
                                          atomic_load(&sh->side[1].first_ok_ms) == 0);
         i++)
        sleep_ms(10);
    env_stop(&e);
    for (int s = 0; s < 2; s++) {
        out[s] = figures_of(&sh->side[s]);
        out[s].down = atomic_load(&sh->down_ns) ? (long)((atomic_load(&sh->down_ns) - fault_ns) / NS_PER_MS) : -1;
    }
    return true;
}

/* mongosup's server_selection_timeout_ms with the built-in check defaults
 * (the configuration this program writes). */
static uint32_t default_selection_ms(void)
{
    msup_cluster_cfg_t checks = {
        .check_interval_ms = 2000, .check_fastinter_ms = 500, .check_timeout_ms = 1000, .fall = 3};
    return msup_failfast_selection_timeout_ms(&checks);
}

/* Kill/restart cycles on one set-up: the server comes back 0.5-1 s after
 * the last selection from before DOWN gave up (random, so that the
 * monitors' phases vary); the time
 * from its return (the peer listening again) to each side's first
 * successful operation, in us; -1 where none came within 10 s. */
static int recovery_cycles(const char *uri_options, int cycles, long out[2][MAX_CYCLES], long *up_ms)
{
    bench_env_t e;
    if (!env_start(&e, uri_options)) {
        env_stop(&e);
        return -1;
    }
    int done = 0;
    srand((unsigned)getpid());
    for (int c = 0; c < cycles && c < MAX_CYCLES; c++) {
        atomic_store(&sh->cycle, (uint32_t)c);
        test_peer_kill(e.peer, SIGKILL);
        uint64_t fault = msup_mono_ns();
        if (!wait_health(&e, MSUP_HEALTH_DOWN, 15000))
            break;
        /* Back after mongosup's selections from before DOWN gave up (an
         * outage longer than server_selection_timeout_ms): from then on
         * nothing of mongosup's waits in selection, only its probe and its
         * gate can bring the first success; the plain pool's operations
         * still wait (30 s). */
        uint64_t back_at = fault + (default_selection_ms() + 500u + (unsigned)(rand() % 500)) * NS_PER_MS;
        while (msup_mono_ns() < back_at)
            sleep_ms(5);
        if (!test_peer_restart(e.peer))
            break;
        uint64_t back = msup_mono_ns();
        atomic_store(&sh->cycle_return_ns[c], back);
        for (int i = 0; i < 1000 && (atomic_load(&sh->cycle_first_ok_us[0][c]) == 0 ||
                                     atomic_load(&sh->cycle_first_ok_us[1][c]) == 0);
             i++)
            sleep_ms(10);
        bool up = wait_health(&e, MSUP_HEALTH_UP, 15000);
        up_ms[c] = up ? (long)((msup_mono_ns() - back) / NS_PER_MS) : -1;
        for (int s = 0; s < 2; s++)
            out[s][c] = (long)atomic_load(&sh->cycle_first_ok_us[s][c]) - 1;
        done++;
        if (!up)
            break;
        sleep_ms(200);
    }
    env_stop(&e);
    return done;
}

/* Median and 90th percentile (nearest rank) of the v[i] >= 0. */
static int quantiles(const long *v, int n, long *p50, long *p90)
{
    long sorted[MAX_CYCLES];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (v[i] >= 0)
            sorted[k++] = v[i];
    if (k == 0)
        return 0;
    qsort(sorted, (size_t)k, sizeof sorted[0], cmp_long);
    *p50 = k % 2 ? sorted[k / 2] : (sorted[k / 2 - 1] + sorted[k / 2]) / 2;
    int r = (9 * k + 9) / 10; /* ceil(0.9 k) */
    *p90 = sorted[r - 1];
    return k;
}

static void recovery_table(int cycles, bool fast_heartbeat, bool default_heartbeat)
{
    printf("\n## Recovery: server restarted after DOWN, %d kill/restart cycles per row, both sides at once\n\n"
           "Time from the restarted peer's READY (listening, answering) to the first successful operation of each "
           "side (%d threads each, retrying every 1 ms while refused, as in the table above). Each outage lasts "
           "until 0.5-1 s after mongosup's selections from before DOWN gave up (%u ms after the kill), as any "
           "outage longer than that does: the plain pool's operations are then still waiting in selection, "
           "mongosup's are not. mongosupd runs the built-in check defaults (UP needs rise = 2 checks). Median and "
           "p90 of the cycles, in ms.\n\n"
           "| driver heartbeat (both sides) | cycles | mongosup p50 | p90 | plain mongoc p50 | p90 | ratio p50 | ratio p90 "
           "| paired: cycles mongosup <= 1.1 x plain | restart -> UP p50 |\n|---|---|---|---|---|---|---|---|---|---|\n",
           cycles, THREADS, default_selection_ms());
    const char *opts[] = {"?heartbeatFrequencyMS=500", ""};
    const char *names[] = {"heartbeatFrequencyMS=500", "the driver's default (10000)"};
    for (int k = 0; k < 2; k++) {
        if ((k == 0 && !fast_heartbeat) || (k == 1 && !default_heartbeat))
            continue;
        long v[2][MAX_CYCLES], up[MAX_CYCLES];
        int n = recovery_cycles(opts[k], cycles, v, up);
        if (n <= 0) /* a test peer slow to start on a loaded machine: once more */
            n = recovery_cycles(opts[k], cycles, v, up);
        if (n <= 0) {
            printf("| %s | set-up failed | | | | | | | | |\n", names[k]);
            continue;
        }
        long m50 = -1, m90 = -1, p50 = -1, p90 = -1, u50 = -1, u90 = -1;
        quantiles(v[0], n, &m50, &m90);
        quantiles(v[1], n, &p50, &p90);
        quantiles(up, n, &u50, &u90);
        int within = 0, paired = 0;
        for (int c = 0; c < n; c++) {
            if (v[0][c] < 0 || v[1][c] < 0)
                continue;
            paired++;
            within += v[0][c] * 10 <= v[1][c] * 11 ? 1 : 0;
        }
        printf("| %s | %d | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %d of %d | %ld |\n", names[k], n, m50 / 1e3,
               m90 / 1e3, p50 / 1e3, p90 / 1e3, p50 > 0 ? (double)m50 / (double)p50 : 0.0,
               p90 > 0 ? (double)m90 / (double)p90 : 0.0, within, paired, u50);
        fprintf(stderr, "recovery %s: mongosup/plain us per cycle:", names[k]);
        for (int c = 0; c < n; c++)
            fprintf(stderr, " %ld/%ld", v[0][c], v[1][c]);
        fprintf(stderr, "\n");
    }
}

#define IDLE_S 10

static uint64_t cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

/* An idle worker: one operation, then IDLE_S seconds of nothing; its CPU
 * time (every thread: the driver's monitors, mongosup's maintenance thread
 * and its 5 ms look at the rows) in microseconds per second. */
static int idle_process(int side, const char *conf, const char *plain_uri, int out_fd)
{
    mongosup_error_t error;
    mongosup_config_t *cfg = NULL;
    mongosup_t *h = NULL;
    mongoc_client_pool_t *pool = NULL;
    mongoc_client_t *client;
    if (side == 0) {
        cfg = mongosup_config_load(conf, NULL, &error);
        h = cfg != NULL ? mongosup_attach(cfg, &error) : NULL;
        client = h != NULL ? mongosup_checkout(h, "main", &error) : NULL;
    } else {
        mongoc_init();
        mongoc_log_set_handler(quiet_log, NULL);
        mongoc_uri_t *uri = mongoc_uri_new(plain_uri);
        pool = mongoc_client_pool_new(uri);
        mongoc_uri_destroy(uri);
        client = mongoc_client_pool_pop(pool);
    }
    if (client == NULL)
        return 2;
    bson_error_t berr;
    run_op(client, false, &berr);
    if (h != NULL)
        mongosup_checkin(h, client, NULL);
    else
        mongoc_client_pool_push(pool, client);
    sleep_ms(1000);
    uint64_t t0 = cpu_us();
    sleep_ms(IDLE_S * 1000);
    uint64_t per_s = (cpu_us() - t0) / IDLE_S;
    if (write(out_fd, &per_s, sizeof per_s) != (ssize_t)sizeof per_s)
        return 3;
    if (h != NULL)
        mongosup_detach(&h, 5000);
    mongosup_config_destroy(&cfg);
    if (pool != NULL)
        mongoc_client_pool_destroy(pool);
    return 0;
}

static void idle_cost(void)
{
    test_peer_t *peer = test_peer_start("standalone", 1, NULL);
    if (peer == NULL)
        return;
    char conf[64], plain[128];
    snprintf(conf, sizeof conf, "/tmp/msup-ffidle-%d.conf", (int)getpid());
    snprintf(plain, sizeof plain, "mongodb://127.0.0.1:%d/?heartbeatFrequencyMS=500", test_peer_port(peer, 0));
    FILE *fp = fopen(conf, "w");
    if (fp == NULL)
        return;
    fprintf(fp,
            "segment = { name = \"/msup-ffidle-%d\"; max_workers = 8; max_clusters = 2; };\n"
            "default_environment = \"bench\";\nenvironments = { bench = { clusters = {\n"
            "  main = { mongo_uri = \"%s\"; };\n}; }; };\n",
            (int)getpid(), plain);
    fclose(fp);
    uint64_t per_s[2] = {0, 0};
    int fds[2][2];
    pid_t pid[2];
    for (int s = 0; s < 2; s++) {
        if (pipe(fds[s]) != 0)
            return;
        fflush(NULL);
        pid[s] = fork();
        if (pid[s] == 0)
            _exit(idle_process(s, conf, plain, fds[s][1]));
        close(fds[s][1]);
    }
    for (int s = 0; s < 2; s++) {
        if (read(fds[s][0], &per_s[s], sizeof per_s[s]) != (ssize_t)sizeof per_s[s])
            per_s[s] = 0;
        close(fds[s][0]);
        int st;
        waitpid(pid[s], &st, 0);
    }
    char seg[64];
    snprintf(seg, sizeof seg, "/msup-ffidle-%d", (int)getpid());
    msup_segment_unlink(seg, NULL);
    unlink(conf);
    test_peer_stop(&peer);
    printf("\nIdle worker, CPU of the whole process over %d s after one operation (both at once, no supervisor: the "
           "rows are read all the same): mongosup %llu us/s (its maintenance thread looks at the rows every %u ms while "
           "calm, every %u ms when a DOWN verdict may be near), plain mongoc pool %llu us/s.\n",
           IDLE_S, (unsigned long long)per_s[0], MSUP_FAILFAST_CALM_TICK_MS, MSUP_FAILFAST_TICK_MS,
           (unsigned long long)per_s[1]);
}

static void cell(char *buf, size_t n, const long *v, int runs)
{
    long sorted[REPEATS];
    int k = 0;
    for (int i = 0; i < runs; i++)
        if (v[i] >= 0)
            sorted[k++] = v[i];
    if (k == 0) {
        snprintf(buf, n, "-");
        return;
    }
    qsort(sorted, (size_t)k, sizeof sorted[0], cmp_long);
    snprintf(buf, n, "%ld (%ld-%ld)", sorted[k / 2], sorted[0], sorted[k - 1]);
}

static bool wanted(int argc, char **argv, const char *section)
{
    if (argc < 2)
        return true;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], section) == 0)
            return true;
    return false;
}

static void faults_table(bool do_kill, bool do_hang)
{
    printf("## Fail fast: operations in flight, first refusal, recovery (%d threads per side, %d ms pause between ops, "
           "outage %d s, %d runs)\n\n",
           THREADS, THINK_MS, OUTAGE_MS / 1000, REPEATS);
    printf("Both sides run at once against the same peer and fault, each in its own process: mongosup (built-in "
           "check defaults, its server_selection_timeout_ms default %u ms) and a plain mongoc pool (the driver's "
           "defaults: 30 s selection, 300 s socket timeout). Both use heartbeatFrequencyMS=500. Half the threads run "
           "a plain command (never retried), half a find (a retryable read); the peer takes %d ms to answer each, "
           "so most threads are in the middle of one when the fault comes. In flight: started before the fault, "
           "ended after it. Median of the runs, (min-max) after it, in ms; '-' means it never happened.\n\n",
           default_selection_ms(),
           OP_MS);
    printf("| fault | side | fault -> DOWN | every in-flight op: fault -> end, max | p50 | plain commands: max | p50 "
           "| retried reads: max | p50 | fault -> first refused checkout | return -> first successful op |\n"
           "|---|---|---|---|---|---|---|---|---|---|---|\n");
    const char *faults[] = {"kill", "hang"};
    enum { K = 9 };
    for (int fi = 0; fi < 2; fi++) {
        if ((fi == 0 && !do_kill) || (fi == 1 && !do_hang))
            continue;
        long v[2][K][REPEATS];
        int runs = 0;
        for (int r = 0; r < REPEATS; r++) {
            figures_t f[2] = {{0}};
            if (!run_once(faults[fi], f)) {
                fprintf(stderr, "failfast_bench: set-up failed\n");
                exit(1);
            }
            for (int s = 0; s < 2; s++) {
                long each[K] = {f[s].down,     f[s].all_max,  f[s].all_p50, f[s].cmd_max, f[s].cmd_p50,
                                f[s].read_max, f[s].read_p50, f[s].refusal, f[s].first_ok};
                for (int k = 0; k < K; k++)
                    v[s][k][runs] = each[k];
            }
            runs++;
        }
        for (int s = 0; s < 2; s++) {
            char c[K][64];
            for (int k = 0; k < K; k++)
                cell(c[k], sizeof c[k], v[s][k], runs);
            printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", faults[fi],
                   s == 0 ? "mongosup" : "plain mongoc", s == 1 ? "-" : c[0], c[1], c[2], c[3], c[4], c[5], c[6],
                   s == 1 ? "never (no breaker)" : c[7], c[8]);
        }
    }
    printf("\nThe plain pool's in-flight operations end only when the server returns (after the %d s outage here; "
           "otherwise socketTimeoutMS, 300 s, for a hung server, and serverSelectionTimeoutMS, 30 s, for a dead one). "
           "mongosup's retried reads end one server_selection_timeout_ms after their retry began waiting for a "
           "server (at the fault for a dead server, at DOWN for a hung one): mongo-c-driver 1.23 offers no way to "
           "end a pooled selection early (docs/concepts.md).\n",
           OUTAGE_MS / 1000);
}

/* Instructions per operation: bench/opcost_bench, next to this program. */
static void opcost_table(const char *self)
{
    char path[4096];
    const char *slash = strrchr(self, '/');
    snprintf(path, sizeof path, "%.*s/opcost_bench", slash != NULL ? (int)(slash - self) : 1,
             slash != NULL ? self : ".");
    printf("\n## Instructions per operation (callgrind; bench/opcost_bench, run from here)\n\n");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        printf("(%s failed: see its message above)\n", path);
}

int main(int argc, char **argv)
{
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return 2;
    setenv("MONGOC_DISABLE_SHM", "1", 0);
    const char *env_cycles = getenv("FAILFAST_BENCH_CYCLES");
    int cycles = env_cycles != NULL ? atoi(env_cycles) : 16;
    if (cycles < 1 || cycles > MAX_CYCLES) {
        fprintf(stderr, "failfast_bench: FAILFAST_BENCH_CYCLES must be 1..%d\n", MAX_CYCLES);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "kill") != 0 && strcmp(argv[i], "hang") != 0 && strcmp(argv[i], "recovery") != 0 &&
            strcmp(argv[i], "recovery-500") != 0 && strcmp(argv[i], "recovery-default") != 0 &&
            strcmp(argv[i], "idle") != 0 && strcmp(argv[i], "opcost") != 0) {
            fprintf(stderr, "usage: failfast_bench [kill] [hang] [recovery | recovery-500 | recovery-default] [idle] "
                            "[opcost] (default: all)\n");
            return 2;
        }
    }
    if (wanted(argc, argv, "kill") || wanted(argc, argv, "hang"))
        faults_table(wanted(argc, argv, "kill"), wanted(argc, argv, "hang"));
    bool all_recovery = wanted(argc, argv, "recovery");
    if (all_recovery || wanted(argc, argv, "recovery-500") || wanted(argc, argv, "recovery-default"))
        recovery_table(cycles, all_recovery || wanted(argc, argv, "recovery-500"),
                       all_recovery || wanted(argc, argv, "recovery-default"));
    if (wanted(argc, argv, "idle"))
        idle_cost();
    if (wanted(argc, argv, "opcost"))
        opcost_table(argv[0]);
    munmap(sh, sizeof *sh);
    return 0;
}
