/* detect_bench.c: how fast mongosupd detects a dead and a hung cluster and sees it recover, next to the driver alone; its CPU and RSS. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "layout.h"
#include "peer/peer.h"
#include "segment.h"

static uint64_t now_ms(void)
{
    return msup_mono_ns() / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static const char *daemon_path(void)
{
    static char path[4096];
    const char *b = getenv("MONGOSUP_TEST_BUILDDIR");
    snprintf(path, sizeof path, "%s/supervisor/mongosupd", b && b[0] ? b : MONGOSUP_BUILDDIR);
    return path;
}

static char conf_path[64], log_path[64];

/* A configuration with the built-in check defaults (inter 2000, fastinter
 * 500, downinter 1000, timeout 1000, rise 2, fall 3) unless overridden. */
static void write_config(const char *segment, const char *uri, int clusters, const char *checks)
{
    FILE *f = fopen(conf_path, "w");
    if (f == NULL)
        exit(2);
    fprintf(f, "segment = { name = \"%s\"; max_workers = 8; max_clusters = 8; };\n"
               "supervisor = { log_level = \"notice\"; };\ndefault_environment = \"bench\";\n"
               "defaults = { %s };\nenvironments = { bench = { clusters = {\n",
            segment, checks);
    for (int i = 0; i < clusters; i++)
        fprintf(f, "  c%d = { mongo_uri = \"%s\"; };\n", i, uri);
    fprintf(f, "}; }; };\n");
    fclose(f);
}

static pid_t start_daemon(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execl(daemon_path(), "mongosupd", "-c", conf_path, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop_daemon(pid_t pid)
{
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
}

static bool open_segment(const char *name, msup_segment_t *seg)
{
    mongosup_error_t err;
    for (int i = 0; i < 300; i++) {
        if (msup_segment_open_readonly(name, (uid_t)-1, seg, &err)) {
            if (msup_segment_control(seg) != NULL && msup_segment_phase(seg) == MSUP_PHASE_RUNNING)
                return true;
            msup_segment_close(seg);
        }
        sleep_ms(10);
    }
    fprintf(stderr, "segment %s never came up (see %s)\n", name, log_path);
    return false;
}

static long wait_health(const msup_segment_t *seg, uint32_t want, unsigned timeout_ms)
{
    uint64_t start = now_ms();
    while (now_ms() - start < timeout_ms) {
        if (atomic_load(&msup_segment_row(seg, 0)->health) == want)
            return (long)(now_ms() - start);
        sleep_ms(2);
    }
    return -1;
}

/* The driver alone, with its defaults: a pool, pop + ping + push; returns
 * how long the ping took and whether it worked. */
static long pooled_ping_ms(mongoc_client_pool_t *pool, bool *ok)
{
    uint64_t t0 = now_ms();
    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_error_t err;
    *ok = mongoc_client_command_simple(c, "admin", cmd, NULL, NULL, &err);
    bson_destroy(cmd);
    mongoc_client_pool_push(pool, c);
    return (long)(now_ms() - t0);
}

/* Runs the pool's ping on a thread so that a hung server can be capped. */
typedef struct ping_job {
    mongoc_client_pool_t *pool;
    volatile bool done;
    bool ok;
    long ms;
} ping_job_t;

static void *ping_thread(void *arg)
{
    ping_job_t *j = arg;
    j->ms = pooled_ping_ms(j->pool, &j->ok);
    j->done = true;
    return NULL;
}

static void fmt_ms(char *out, size_t n, long ms, bool capped)
{
    if (ms < 0)
        snprintf(out, n, "not within the bound");
    else
        snprintf(out, n, "%s%ld ms", capped ? "> " : "", ms);
}

int main(void)
{
    snprintf(conf_path, sizeof conf_path, "/tmp/detect-bench-%d.conf", (int)getpid());
    snprintf(log_path, sizeof log_path, "/tmp/detect-bench-%d.log", (int)getpid());
    const char *quick = getenv("MONGOSUP_BENCH_QUICK");
    unsigned hung_cap_ms = quick && quick[0] ? 5000 : 35000;
    mongoc_init();
    mongoc_log_set_handler(NULL, NULL);

    test_peer_t *peer = test_peer_start("standalone", 1, NULL);
    if (peer == NULL)
        return 2;
    char segname[64];
    snprintf(segname, sizeof segname, "/detect-bench-%d", (int)getpid());

    /* ---- mongosupd with its default check settings ---- */
    write_config(segname, test_peer_uri(peer), 1, "");
    pid_t sup = start_daemon();
    msup_segment_t seg;
    if (!open_segment(segname, &seg))
        return 2;
    wait_health(&seg, MSUP_HEALTH_UP, 10000);
    sleep_ms(500);
    test_peer_kill(peer, SIGKILL);
    long sup_dead = wait_health(&seg, MSUP_HEALTH_DOWN, 20000);
    test_peer_restart(peer);
    long sup_back = wait_health(&seg, MSUP_HEALTH_UP, 20000);
    sleep_ms(500);
    test_peer_kill(peer, SIGSTOP);
    long sup_hung = wait_health(&seg, MSUP_HEALTH_DOWN, 20000);
    test_peer_kill(peer, SIGCONT);
    long sup_hung_back = wait_health(&seg, MSUP_HEALTH_UP, 20000);
    stop_daemon(sup);
    msup_segment_close(&seg);

    /* ---- the driver alone, defaults (heartbeat 10 s, selection 30 s, socket 300 s) ---- */
    mongoc_uri_t *uri = mongoc_uri_new(test_peer_uri(peer));
    mongoc_client_pool_t *pool = mongoc_client_pool_new(uri);
    mongoc_client_pool_set_error_api(pool, 2);
    bool ok;
    pooled_ping_ms(pool, &ok); /* connected and warm */
    test_peer_kill(peer, SIGKILL);
    long drv_dead = pooled_ping_ms(pool, &ok);
    bool drv_dead_failed = !ok;
    test_peer_restart(peer);
    uint64_t t0 = now_ms();
    long drv_back = -1;
    while (now_ms() - t0 < 40000) {
        pooled_ping_ms(pool, &ok);
        if (ok) {
            drv_back = (long)(now_ms() - t0);
            break;
        }
        sleep_ms(10);
    }
    pooled_ping_ms(pool, &ok);
    test_peer_kill(peer, SIGSTOP);
    ping_job_t job = {.pool = pool};
    pthread_t th;
    pthread_create(&th, NULL, ping_thread, &job);
    t0 = now_ms();
    while (!job.done && now_ms() - t0 < hung_cap_ms)
        sleep_ms(10);
    long drv_hung = job.done ? job.ms : (long)hung_cap_ms;
    bool drv_hung_capped = !job.done;
    test_peer_kill(peer, SIGCONT); /* lets the blocked ping finish */
    pthread_join(th, NULL);
    mongoc_client_pool_destroy(pool);
    mongoc_uri_destroy(uri);

    char a[64], b[64];
    printf("Failure detection with mongosupd's default checks (inter 2000 ms, fastinter 500, downinter 1000,\n"
           "timeout 1000, rise 2, fall 3) next to a mongo-c-driver pool with its defaults, same peer, same run.\n"
           "After mongosupd marks a cluster DOWN, workers' checkouts fail at once (circuit open).\n\n");
    printf("| event | mongosupd | driver alone | ratio |\n|---|---|---|---|\n");
    fmt_ms(a, sizeof a, sup_dead, false);
    fmt_ms(b, sizeof b, drv_dead, false);
    printf("| peer killed: DOWN / a ping fails | %s | %s (%s) | - |\n", a, b,
           drv_dead_failed ? "connection refused: the driver sees it on use" : "ping did not fail");
    fmt_ms(a, sizeof a, sup_hung, false);
    fmt_ms(b, sizeof b, drv_hung, drv_hung_capped);
    printf("| peer SIGSTOPped: DOWN / a ping fails | %s | %s%s | %s%.1fx |\n", a, b,
           drv_hung_capped ? " (capped; socketTimeoutMS is 300 s)" : "", drv_hung_capped ? ">" : "",
           sup_hung > 0 ? (double)drv_hung / (double)sup_hung : 0.0);
    fmt_ms(a, sizeof a, sup_back, false);
    fmt_ms(b, sizeof b, drv_back, false);
    printf("| peer restarted: UP / first ping works | %s | %s | - |\n", a, b);
    fmt_ms(a, sizeof a, sup_hung_back, false);
    printf("| hung peer resumed: UP | %s | - | - |\n", a);
    if (drv_hung_capped)
        printf("\n(driver-alone hung case capped at %u ms%s)\n", hung_cap_ms,
               quick && quick[0] ? ", reduced scale: MONGOSUP_BENCH_QUICK" : "");

    /* ---- cost: 8 clusters checked every 500 ms for ~10 s ---- */
    snprintf(segname, sizeof segname, "/detect-bench-cost-%d", (int)getpid());
    write_config(segname, test_peer_uri(peer), 8, "check_interval_ms = 500; check_timeout_ms = 400;");
    sup = start_daemon();
    if (!open_segment(segname, &seg))
        return 2;
    sleep_ms(1000);
    char statp[64], statusp[64];
    snprintf(statp, sizeof statp, "/proc/%d/stat", (int)sup);
    snprintf(statusp, sizeof statusp, "/proc/%d/status", (int)sup);
    unsigned long long ticks[2] = {0, 0};
    uint64_t tt[2];
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(statp, "r");
        char buf[1024] = {0};
        if (f != NULL) {
            if (fgets(buf, sizeof buf, f) == NULL)
                buf[0] = '\0';
            fclose(f);
        }
        char *p = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        if (p != NULL)
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
        ticks[k] = ut + st;
        tt[k] = now_ms();
        if (k == 0)
            sleep_ms(10000);
    }
    long rss_kb = 0;
    FILE *f = fopen(statusp, "r");
    char line[256];
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld", &rss_kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    uint64_t checks = 0;
    for (uint32_t i = 0; i < 8; i++)
        checks += atomic_load(&msup_segment_row(&seg, i)->checks_passed);
    double cpu = (double)(ticks[1] - ticks[0]) / (double)sysconf(_SC_CLK_TCK) * 1000.0 / (double)(tt[1] - tt[0]) * 100;
    printf("\nmongosupd with 8 clusters checked every 500 ms, over %.1f s: CPU %.2f%% of one core, RSS %ld KiB, "
           "%llu checks passed in all\n",
           (double)(tt[1] - tt[0]) / 1000.0, cpu, rss_kb, (unsigned long long)checks);
    stop_daemon(sup);
    msup_segment_close(&seg);
    test_peer_stop(&peer);
    unlink(conf_path);
    unlink(log_path);
    mongoc_cleanup();
    return 0;
}
