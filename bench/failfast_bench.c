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
} side_stats_t;

typedef struct shared {
    _Atomic uint64_t fault_ns, return_ns, down_ns;
    _Atomic bool stop;
    side_stats_t side[2]; /* 0: mongosup, 1: plain mongoc */
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
    long down, cmd_max, cmd_p50, read_max, read_p50, refusal, first_ok;
} figures_t;

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* Max and median of the in-flight ends of the threads of one kind. */
static void inflight_of(const side_stats_t *st, int kind, long *max, long *p50)
{
    long v[THREADS];
    int n = 0;
    for (int i = kind; i < THREADS; i += 2)
        if (atomic_load(&st->inflight_end_ms[i]) != 0)
            v[n++] = (long)atomic_load(&st->inflight_end_ms[i]) - 1;
    qsort(v, (size_t)n, sizeof v[0], cmp_long);
    *max = n ? v[n - 1] : -1;
    *p50 = n ? v[(n - 1) / 2] : -1;
}

static figures_t figures_of(const side_stats_t *st)
{
    figures_t f;
    inflight_of(st, 0, &f.cmd_max, &f.cmd_p50);
    inflight_of(st, 1, &f.read_max, &f.read_p50);
    f.refusal = (long)atomic_load(&st->first_refusal_ms) - 1;
    f.first_ok = (long)atomic_load(&st->first_ok_ms) - 1;
    return f;
}

/* One run of a fault: both sides under load, the fault, OUTAGE_MS, the
 * server back; returns false when the set-up failed. */
static bool run_once(const char *fault, figures_t out[2])
{
    test_peer_t *peer = test_peer_start("standalone", 1, NULL);
    if (peer == NULL)
        return false;
    char segment[64], conf[64], log[64], plain[128];
    snprintf(segment, sizeof segment, "/msup-ffbench-%d", (int)getpid());
    snprintf(conf, sizeof conf, "/tmp/msup-ffbench-%d.conf", (int)getpid());
    snprintf(log, sizeof log, "/tmp/msup-ffbench-%d.log", (int)getpid());
    snprintf(plain, sizeof plain, "mongodb://127.0.0.1:%d/?heartbeatFrequencyMS=500", test_peer_port(peer, 0));
    msup_segment_unlink(segment, NULL);
    FILE *fp = fopen(conf, "w");
    if (fp == NULL)
        return false;
    /* The built-in health-check defaults; the driver's heartbeat as in the
     * plain URI; server_selection_timeout_ms left to its default. */
    fprintf(fp,
            "segment = { name = \"%s\"; max_workers = 8; max_clusters = 2; };\n"
            "supervisor = { log_level = \"notice\"; };\ndefault_environment = \"bench\";\n"
            "environments = { bench = { clusters = {\n"
            "  main = { mongo_uri = \"%s\"; };\n}; }; };\n",
            segment, plain);
    fclose(fp);
    pid_t sup = fork();
    if (sup == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execl(daemon_path(), "mongosupd", "-c", conf, (char *)NULL);
        _exit(127);
    }
    msup_segment_t seg;
    mongosup_error_t err;
    bool mapped = false;
    for (int i = 0; i < 500 && !mapped; i++) {
        mapped = msup_segment_open_readonly(segment, (uid_t)-1, &seg, &err);
        if (mapped && main_health(&seg) != MSUP_HEALTH_UP) {
            msup_segment_close(&seg);
            mapped = false;
        }
        if (!mapped)
            sleep_ms(10);
    }
    memset(sh, 0, sizeof *sh);
    pid_t side[2] = {-1, -1};
    if (mapped) {
        for (int s = 0; s < 2; s++) {
            fflush(NULL);
            side[s] = fork();
            if (side[s] == 0)
                _exit(load_process(s, conf, plain));
        }
        sleep_ms(2000); /* warm: pools connected, steady load */
        char delay[96];
        snprintf(delay, sizeof delay, "{\"cmd\":\"delay\",\"ms\":%d,\"command\":\"find\"}", OP_MS);
        test_peer_command(peer, delay, NULL, 0);
        sleep_ms(1000);
        atomic_store(&sh->fault_ns, msup_mono_ns());
        if (strcmp(fault, "kill") == 0)
            test_peer_kill(peer, SIGKILL);
        else
            test_peer_kill(peer, SIGSTOP);
        uint64_t fault_ns = atomic_load(&sh->fault_ns);
        while (msup_mono_ns() - fault_ns < OUTAGE_MS * NS_PER_MS) {
            if (atomic_load(&sh->down_ns) == 0 && main_health(&seg) == MSUP_HEALTH_DOWN)
                atomic_store(&sh->down_ns, msup_mono_ns());
            sleep_ms(1);
        }
        bool back = strcmp(fault, "kill") == 0 ? test_peer_restart(peer) : (test_peer_kill(peer, SIGCONT), true);
        atomic_store(&sh->return_ns, msup_mono_ns());
        /* Back at full speed: the first success measures the recovery,
         * not the synthetic delay (a restarted peer has none). */
        test_peer_command(peer, "{\"cmd\":\"clear\"}", NULL, 0);
        for (int i = 0; back && i < 1500 && (atomic_load(&sh->side[0].first_ok_ms) == 0 ||
                                              atomic_load(&sh->side[1].first_ok_ms) == 0);
             i++)
            sleep_ms(10);
        atomic_store(&sh->stop, true);
        for (int s = 0; s < 2; s++) {
            int st;
            waitpid(side[s], &st, 0);
        }
        for (int s = 0; s < 2; s++) {
            out[s] = figures_of(&sh->side[s]);
            out[s].down = atomic_load(&sh->down_ns) ? (long)((atomic_load(&sh->down_ns) - fault_ns) / NS_PER_MS) : -1;
        }
        msup_segment_close(&seg);
    }
    kill(sup, SIGTERM); /* our child, not reaped yet */
    int st;
    waitpid(sup, &st, 0);
    test_peer_stop(&peer);
    msup_segment_unlink(segment, NULL);
    unlink(conf);
    unlink(log);
    return mapped;
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

int main(void)
{
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return 2;
    setenv("MONGOC_DISABLE_SHM", "1", 0);
    printf("## Fail fast: operations in flight, first refusal, recovery (%d threads per side, %d ms pause between ops, "
           "outage %d s, %d runs)\n\n",
           THREADS, THINK_MS, OUTAGE_MS / 1000, REPEATS);
    printf("Both sides run at once against the same peer and fault, each in its own process: mongosup (built-in "
           "check defaults, its server_selection_timeout_ms default 6500 ms) and a plain mongoc pool (the driver's "
           "defaults: 30 s selection, 300 s socket timeout). Both use heartbeatFrequencyMS=500. Half the threads run "
           "a plain command (never retried), half a find (a retryable read); the peer takes %d ms to answer each, "
           "so most threads are in the middle of one when the fault comes. In flight: started before the fault, "
           "ended after it. Median of the runs, (min-max) after it, in ms; '-' means it never happened.\n\n",
           OP_MS);
    printf("| fault | side | fault -> DOWN | in-flight commands: fault -> end, max | p50 | in-flight retried reads: max | "
           "p50 | fault -> first refused checkout | return -> first successful op |\n"
           "|---|---|---|---|---|---|---|---|---|\n");
    const char *faults[] = {"kill", "hang"};
    for (int fi = 0; fi < 2; fi++) {
        long v[2][7][REPEATS];
        int runs = 0;
        for (int r = 0; r < REPEATS; r++) {
            figures_t f[2];
            if (!run_once(faults[fi], f)) {
                fprintf(stderr, "failfast_bench: set-up failed\n");
                return 1;
            }
            for (int s = 0; s < 2; s++) {
                long each[7] = {f[s].down,     f[s].cmd_max, f[s].cmd_p50, f[s].read_max,
                                f[s].read_p50, f[s].refusal, f[s].first_ok};
                for (int k = 0; k < 7; k++)
                    v[s][k][runs] = each[k];
            }
            runs++;
        }
        for (int s = 0; s < 2; s++) {
            char c[7][64];
            for (int k = 0; k < 7; k++)
                cell(c[k], sizeof c[k], v[s][k], runs);
            printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", faults[fi], s == 0 ? "mongosup" : "plain mongoc",
                   s == 1 ? "-" : c[0], c[1], c[2], c[3], c[4], s == 1 ? "never (no breaker)" : c[5], c[6]);
        }
    }
    printf("\nThe plain pool's in-flight operations end only when the server returns (after the %d s outage here; "
           "otherwise socketTimeoutMS, 300 s, for a hung server, and serverSelectionTimeoutMS, 30 s, for a dead one). "
           "mongosup's retried reads end one server_selection_timeout_ms after the first attempt failed (at the fault "
           "for a dead server, at DOWN for a hung one): 1.23 cannot end a selection early.\n",
           OUTAGE_MS / 1000);
    idle_cost();
    munmap(sh, sizeof *sh);
    return 0;
}
