/* worker_failfast_test.c: a DOWN verdict ends operations in flight, selection is bounded by the checks, half-open recovery; mongosupd and forked workers against real peer faults. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "failfast.h"
#include "probe.h"
#include "stats.h"
#include "testmain.h"
#include "worker.h"
#include "worker_fixture.h"

#define NS_PER_MS 1000000ull
#define WORKERS 2
#define THREADS 4          /* per worker: 2 plain commands, 2 retryable reads */
#define CUT_BOUND_MS 100   /* the goal: in-flight operations end this soon after DOWN */
#define SELECTION_MS 600   /* the formula for the checks below: 200 + 2 x 100 + 100 + 100 */

/* Health checks fast enough for a test; server_selection_timeout_ms is
 * left to its default, which follows them. */
#define CHECKS                                                                                                  \
    "check_interval_ms = 200; check_fastinter_ms = 100; check_downinter_ms = 100; check_timeout_ms = 100; "    \
    "rise = 2; fall = 2; heartbeat_frequency_ms = 500; connect_timeout_ms = 2000; database_name = \"wtest\";"

/* Valgrind slows the workers (the supervisor runs natively): widen the
 * time allowed, never what must happen. */
static uint64_t slack_ms(uint64_t ms)
{
    return msup_test_under_valgrind() ? ms * 4 + 1500 : ms;
}

/* ---- fixture: two peers on 127.0.0.1, mongosupd, the segment ---- */

typedef struct ffix {
    test_peer_t *main, *other;
    char segment[64], conf[128], log[128];
    pid_t sup;
    msup_segment_t seg;
    bool mapped;
    int row_main, row_other;
} ffix_t;

static const char *daemon_path(void)
{
    static char path[4096];
    const char *b = getenv("MONGOSUP_TEST_BUILDDIR");
    snprintf(path, sizeof path, "%s/supervisor/mongosupd", b && b[0] ? b : MONGOSUP_BUILDDIR);
    return path;
}

static uint32_t health_of(const ffix_t *f, int row)
{
    return atomic_load_explicit(&msup_segment_row(&f->seg, (uint32_t)row)->health, memory_order_acquire);
}

/* Polls every millisecond: the time the row turned `want`, or 0. */
static uint64_t wait_health(const ffix_t *f, int row, uint32_t want, unsigned timeout_ms)
{
    uint64_t deadline = msup_test_now_ms() + timeout_ms;
    while (msup_test_now_ms() < deadline) {
        if (health_of(f, row) == want)
            return msup_mono_ns();
        msup_test_sleep_ms(1);
    }
    return 0;
}

static void ffix_start(ffix_t *f, const char *tag)
{
    memset(f, 0, sizeof *f);
    f->main = test_peer_start("standalone", 1, NULL);
    f->other = test_peer_start("standalone", 1, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->main);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->other);
    snprintf(f->segment, sizeof f->segment, "%s", msup_test_segment_name(tag));
    msup_segment_unlink(f->segment, NULL);
    snprintf(f->conf, sizeof f->conf, "/tmp/msup-ff-%d-%s.conf", (int)getpid(), tag);
    snprintf(f->log, sizeof f->log, "/tmp/msup-ff-%d-%s.log", (int)getpid(), tag);
    FILE *fp = fopen(f->conf, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fprintf(fp,
            "segment = { name = \"%s\"; max_workers = 16; max_clusters = 4; };\n"
            "supervisor = { log_level = \"info\"; heartbeat_interval_ms = 50; reap_interval_ms = 100; };\n"
            "default_environment = \"test\";\n"
            "defaults = { " CHECKS " };\n"
            "environments = { test = { clusters = {\n"
            "  main = { mongo_uri = \"mongodb://127.0.0.1:%d/\"; };\n"
            "  other = { mongo_uri = \"mongodb://127.0.0.1:%d/\"; };\n"
            "}; }; };\n",
            f->segment, test_peer_port(f->main, 0), test_peer_port(f->other, 0));
    fclose(fp);
    unlink(f->log);
    f->sup = fork();
    if (f->sup == 0) {
        int fd = open(f->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(daemon_path(), daemon_path(), "-c", f->conf, (char *)NULL);
        _exit(127);
    }
    CU_ASSERT_FATAL(f->sup > 0);
    mongosup_error_t error;
    /* Deadlines for mongosupd's start-up, not rounds: a loaded machine. */
    uint64_t deadline = msup_test_now_ms() + 30000;
    while (!f->mapped && msup_test_now_ms() < deadline) {
        f->mapped = msup_segment_open_readonly(f->segment, (uid_t)-1, &f->seg, &error) &&
                    msup_segment_control(&f->seg) != NULL &&
                    atomic_load(&msup_segment_hdr(&f->seg)->supervisor_pid) == f->sup;
        if (!f->mapped && f->seg.base != NULL)
            msup_segment_close(&f->seg);
        if (!f->mapped)
            msup_test_sleep_ms(10);
    }
    CU_ASSERT_FATAL(f->mapped);
    while (msup_test_now_ms() < deadline) {
        f->row_main = msup_segment_find_cluster(&f->seg, "main");
        f->row_other = msup_segment_find_cluster(&f->seg, "other");
        if (f->row_main >= 0 && f->row_other >= 0)
            break;
        msup_test_sleep_ms(10);
    }
    CU_ASSERT_FATAL(f->row_main >= 0 && f->row_other >= 0);
    CU_ASSERT_FATAL(wait_health(f, f->row_main, MSUP_HEALTH_UP, 15000) != 0);
    CU_ASSERT_FATAL(wait_health(f, f->row_other, MSUP_HEALTH_UP, 15000) != 0);
}

static void ffix_stop(ffix_t *f)
{
    if (f->sup > 0) {
        kill(f->sup, SIGTERM); /* our own child, not yet reaped: the pid is still ours */
        int st;
        waitpid(f->sup, &st, 0);
    }
    if (f->mapped)
        msup_segment_close(&f->seg);
    test_peer_stop(&f->main);
    test_peer_stop(&f->other);
    msup_segment_unlink(f->segment, NULL);
    unlink(f->conf);
    unlink(f->log);
}

static bool totals(const ffix_t *f, const char *name, msup_totals_t *out)
{
    msup_snapshot_t snap;
    mongosup_error_t error;
    bool found = false;
    if (!msup_snapshot_take(&f->seg, &snap, &error))
        return false;
    for (uint32_t i = 0; i < snap.cluster_count; i++) {
        if (strcmp(snap.clusters[i].name, name) == 0) {
            *out = snap.clusters[i].totals;
            found = true;
        }
    }
    msup_snapshot_free(&snap);
    return found;
}

/* The failures of cluster `name` counted since `base` was taken, by class. */
static bool failures_since(const ffix_t *f, const char *name, const msup_totals_t *base, uint64_t *out)
{
    msup_totals_t now;
    if (!totals(f, name, &now))
        return false;
    for (int k = 0; k < MSUP_FAIL__COUNT; k++)
        out[k] = now.failures[k] - base->failures[k];
    return true;
}

/* Prints the failures counted before the fault (the workers' warm-up): under
 * valgrind a first server selection can outlast the 600 ms timeout. */
static void print_warm_up(const msup_totals_t *main0, const msup_totals_t *other0)
{
    printf("(warm-up failures: main %llu, other %llu) ", (unsigned long long)msup_totals_failures(main0),
           (unsigned long long)msup_totals_failures(other0));
}

static uint64_t sum_u64(const uint64_t *v, int n)
{
    uint64_t total = 0;
    for (int i = 0; i < n; i++)
        total += v[i];
    return total;
}

/* ---- forked workers ---- */

enum op_kind { OP_COMMAND, OP_CURSOR, OP_SUMMARY };

typedef struct result {
    int32_t kind;
    int32_t ok;        /* the operation succeeded (OP_SUMMARY: the other cluster's failures) */
    int32_t refused;   /* the checkout itself was refused */
    uint32_t domain, code;
    uint64_t start_ns, end_ns;
    uint64_t other_ok;
    uint64_t warm_up_failed;  /* OP_SUMMARY: the other cluster's failures before 'G' */
} result_t;

typedef struct child {
    mongosup_t *h;
    int out_fd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool go;
    _Atomic bool stop;
    _Atomic int warmed;  /* threads whose warm-up operation is over */
    _Atomic uint64_t other_ok, other_fail;
} child_t;

typedef struct worker_thread {
    child_t *ch;
    enum op_kind kind;
    pthread_t t;
} worker_thread_t;

static bool run_op(mongoc_client_t *client, enum op_kind kind, bson_error_t *err)
{
    if (kind == OP_COMMAND) { /* a generic command: the driver never retries it */
        bson_t *cmd = BCON_NEW("find", BCON_UTF8("c"));
        bool ok = mongoc_client_command_simple(client, "wtest", cmd, NULL, NULL, err);
        bson_destroy(cmd);
        return ok;
    }
    /* A find: a retryable read (retryReads is on by default). */
    mongoc_collection_t *coll = mongoc_client_get_collection(client, "wtest", "c");
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

static void wait_go(child_t *ch)
{
    pthread_mutex_lock(&ch->mu);
    while (!ch->go)
        pthread_cond_wait(&ch->cv, &ch->mu);
    pthread_mutex_unlock(&ch->mu);
}

static void *worker_thread_main(void *arg)
{
    worker_thread_t *w = arg;
    child_t *ch = w->ch;
    mongosup_error_t error;
    bson_error_t berr;
    /* Warm: a connected client per thread before the fault. */
    mongoc_client_t *client = mongosup_checkout(ch->h, "main", &error);
    if (client != NULL) {
        bool ok = wfix_ping(client, &berr);
        mongosup_checkin(ch->h, client, ok ? NULL : &berr);
    }
    atomic_fetch_add(&ch->warmed, 1);
    wait_go(ch);
    result_t r = {.kind = w->kind};
    r.start_ns = msup_mono_ns();
    client = mongosup_checkout(ch->h, "main", &error);
    if (client == NULL) {
        r.refused = 1;
        r.domain = error.domain;
        r.code = error.code;
    } else {
        memset(&berr, 0, sizeof berr);
        r.ok = run_op(client, w->kind, &berr);
        r.domain = berr.domain;
        r.code = berr.code;
        mongosup_checkin(ch->h, client, r.ok ? NULL : &berr);
    }
    r.end_ns = msup_mono_ns();
    if (write(ch->out_fd, &r, sizeof r) != (ssize_t)sizeof r)
        _exit(4);
    return NULL;
}

/* Serves the other cluster throughout, one ping every few ms. */
static void *other_thread_main(void *arg)
{
    child_t *ch = arg;
    mongosup_error_t error;
    bson_error_t berr;
    while (!atomic_load(&ch->stop)) {
        mongoc_client_t *client = mongosup_checkout(ch->h, "other", &error);
        bool ok = client != NULL && wfix_ping(client, &berr);
        if (client != NULL)
            mongosup_checkin(ch->h, client, ok ? NULL : &berr);
        atomic_fetch_add(ok ? &ch->other_ok : &ch->other_fail, 1);
        msup_test_sleep_ms(5);
    }
    return NULL;
}

/* A worker process: attach, warm 4 threads and the other cluster, say
 * 'R'; on 'G' the threads start their operation; on 'S' it reports the
 * other cluster's figures since 'G', detaches and exits. */
static int child_main(const char *conf, int ctl_fd, int out_fd)
{
    mongosup_error_t error;
    mongosup_config_t *cfg = mongosup_config_load(conf, NULL, &error);
    child_t ch = {.out_fd = out_fd};
    ch.h = cfg != NULL ? mongosup_attach(cfg, &error) : NULL;
    if (ch.h == NULL) {
        fprintf(stderr, "failfast child: %s\n", error.message);
        return 2;
    }
    pthread_mutex_init(&ch.mu, NULL);
    pthread_cond_init(&ch.cv, NULL);
    worker_thread_t w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_thread_t){.ch = &ch, .kind = i % 2 == 0 ? OP_COMMAND : OP_CURSOR};
        pthread_create(&w[i].t, NULL, worker_thread_main, &w[i]);
    }
    pthread_t other;
    pthread_create(&other, NULL, other_thread_main, &ch);
    /* 'R' once every warm-up operation is over and counted: the test takes
     * its baseline of the segment's counters then. */
    while (atomic_load(&ch.warmed) < THREADS || (atomic_load(&ch.other_ok) == 0 && atomic_load(&ch.other_fail) == 0))
        msup_test_sleep_ms(2);
    char c = 'R';
    if (write(out_fd, &c, 1) != 1 || read(ctl_fd, &c, 1) != 1 || c != 'G')
        return 3;
    uint64_t ok_before = atomic_load(&ch.other_ok), failed_before = atomic_load(&ch.other_fail);
    pthread_mutex_lock(&ch.mu);
    ch.go = true;
    pthread_cond_broadcast(&ch.cv);
    pthread_mutex_unlock(&ch.mu);
    for (int i = 0; i < THREADS; i++)
        pthread_join(w[i].t, NULL);
    if (read(ctl_fd, &c, 1) != 1 || c != 'S')
        return 3;
    atomic_store(&ch.stop, true);
    pthread_join(other, NULL);
    result_t s = {.kind = OP_SUMMARY, .ok = (int32_t)(atomic_load(&ch.other_fail) - failed_before),
                  .other_ok = atomic_load(&ch.other_ok) - ok_before, .warm_up_failed = failed_before};
    if (write(out_fd, &s, sizeof s) != (ssize_t)sizeof s)
        return 4;
    bool clean = mongosup_detach(&ch.h, 5000);
    mongosup_config_destroy(&cfg);
    return clean ? 0 : 5;
}

typedef struct workers {
    pid_t pid[WORKERS];
    int ctl[WORKERS], out[WORKERS];
} workers_t;

static bool read_full(int fd, void *buf, size_t n, unsigned timeout_ms)
{
    size_t got = 0;
    uint64_t deadline = msup_test_now_ms() + timeout_ms;
    while (got < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        uint64_t now = msup_test_now_ms();
        if (now >= deadline || poll(&p, 1, (int)(deadline - now)) <= 0)
            return false;
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

static void workers_start(workers_t *ws, const ffix_t *f)
{
    for (int i = 0; i < WORKERS; i++) {
        int ctl[2], out[2];
        CU_ASSERT_FATAL(pipe2(ctl, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(ctl[1]);
            close(out[0]);
            _exit(child_main(f->conf, ctl[0], out[1]));
        }
        close(ctl[0]);
        close(out[1]);
        ws->pid[i] = pid;
        ws->ctl[i] = ctl[1];
        ws->out[i] = out[0];
    }
    for (int i = 0; i < WORKERS; i++) {
        char c = 0;
        CU_ASSERT_FATAL(read_full(ws->out[i], &c, 1, (unsigned)slack_ms(10000)) && c == 'R');
    }
}

static void workers_say(const workers_t *ws, char c)
{
    for (int i = 0; i < WORKERS; i++)
        CU_ASSERT_EQUAL(write(ws->ctl[i], &c, 1), 1);
}

/* The THREADS results of every worker, in one array. */
static void workers_results(const workers_t *ws, result_t *r, unsigned timeout_ms)
{
    for (int i = 0; i < WORKERS; i++)
        for (int k = 0; k < THREADS; k++)
            CU_ASSERT_FATAL(read_full(ws->out[i], &r[i * THREADS + k], sizeof *r, timeout_ms));
}

/* Stops the workers: from 'G' on, the other cluster must have served
 * without a single failure; every worker exits 0 (detached cleanly). */
static void workers_stop(workers_t *ws)
{
    workers_say(ws, 'S');
    for (int i = 0; i < WORKERS; i++) {
        result_t s;
        CU_ASSERT(read_full(ws->out[i], &s, sizeof s, (unsigned)slack_ms(10000)));
        printf("(worker %d: other cluster %llu ok, %d failed; %llu failed in its warm-up) ", i,
               (unsigned long long)s.other_ok, s.ok, (unsigned long long)s.warm_up_failed);
        CU_ASSERT_EQUAL(s.kind, OP_SUMMARY);
        CU_ASSERT_EQUAL(s.ok, 0);
        CU_ASSERT(s.other_ok > 0);
        int st = -1;
        waitpid(ws->pid[i], &st, 0);
        CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        close(ws->ctl[i]);
        close(ws->out[i]);
    }
}

/* A plain TCP connection to the peer from this process, which is not a
 * worker: a DOWN verdict must never touch it. */
static int raw_connection(test_peer_t *peer)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)test_peer_port(peer, 0)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

static bool still_connected(int fd)
{
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return true;
    printf("(raw connection: recv %zd, %s) ", n, n < 0 ? strerror(errno) : "end of stream");
    return false;
}

static void sort_u64(uint64_t *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && v[k - 1] > v[k]; k--) {
            uint64_t t = v[k];
            v[k] = v[k - 1];
            v[k - 1] = t;
        }
}

/* The other peer's connection count once the workers' pools have opened
 * all theirs (the monitors' sockets come after the first operations):
 * unchanged for longer than a heartbeat (500 ms).  Taken as soon as the
 * warm-up was over, a late monitor socket looked like a reconnect (1 in 4
 * loaded runs). */
static long settled_connections(test_peer_t *peer)
{
    long n = test_peer_stat(peer, "conn.total");
    uint64_t stable_since = msup_test_now_ms(), deadline = stable_since + slack_ms(10000);
    while (msup_test_now_ms() - stable_since < 700 && msup_test_now_ms() < deadline) {
        msup_test_sleep_ms(50);
        long now = test_peer_stat(peer, "conn.total");
        if (now != n) {
            n = now;
            stable_since = msup_test_now_ms();
        }
    }
    return n;
}

/* Stalls every find on the main peer, lets the workers go and waits until
 * all their operations are in the middle of a reply: checked out and sent
 * before any fault, however slowly the workers run (valgrind). */
static void start_stalled_operations(ffix_t *f, const workers_t *ws)
{
    CU_ASSERT(test_peer_command(f->main, "{\"cmd\":\"reset_stats\"}", NULL, 0));
    CU_ASSERT(test_peer_command(f->main, "{\"cmd\":\"delay\",\"ms\":60000,\"command\":\"find\"}", NULL, 0));
    workers_say(ws, 'G');
    long inflight = 0;
    uint64_t deadline = msup_test_now_ms() + slack_ms(5000);
    while ((inflight = test_peer_stat(f->main, "cmd.find")) < WORKERS * THREADS && msup_test_now_ms() < deadline)
        msup_test_sleep_ms(5);
    CU_ASSERT_EQUAL_FATAL(inflight, WORKERS * THREADS);
    msup_test_sleep_ms(50);
}

/* ---- hang: operations blocked on a socket end at DOWN ---- */

static void test_hang_in_flight(void)
{
    ffix_t f;
    ffix_start(&f, "ffhang");
    int raw = raw_connection(f.main);
    workers_t ws;
    workers_start(&ws, &f);
    /* What the fault causes counts from here: the warm-up is over. */
    msup_totals_t main0, other0;
    CU_ASSERT_FATAL(totals(&f, "main", &main0) && totals(&f, "other", &other0));
    print_warm_up(&main0, &other0);
    long other_conns = settled_connections(f.other);
    /* Every find stalls: 8 operations in the middle of a reply. */
    start_stalled_operations(&f, &ws);
    test_peer_kill(f.main, SIGSTOP);
    uint64_t fault = msup_mono_ns();
    uint64_t down = wait_health(&f, f.row_main, MSUP_HEALTH_DOWN, 5000);
    CU_ASSERT_FATAL(down != 0);
    result_t r[WORKERS * THREADS];
    workers_results(&ws, r, (unsigned)slack_ms(5000));
    uint64_t plain[WORKERS * THREADS], retried[WORKERS * THREADS];
    int np = 0, nr = 0;
    for (int i = 0; i < WORKERS * THREADS; i++) {
        CU_ASSERT_FALSE(r[i].ok);
        CU_ASSERT_FALSE(r[i].refused);
        CU_ASSERT(r[i].start_ns < fault);
        int64_t after_down_ms = ((int64_t)r[i].end_ns - (int64_t)down) / (int64_t)NS_PER_MS;
        if (r[i].kind == OP_COMMAND)
            plain[np++] = (uint64_t)(after_down_ms < 0 ? 0 : after_down_ms);
        else
            retried[nr++] = (uint64_t)(after_down_ms < 0 ? 0 : after_down_ms);
        /* The driver's own error: the socket was shut (a network error),
         * or the retry found no server in time. */
        CU_ASSERT(r[i].domain == MONGOC_ERROR_STREAM || r[i].domain == MONGOC_ERROR_SERVER_SELECTION);
    }
    sort_u64(plain, np);
    sort_u64(retried, nr);
    printf("(DOWN %llu ms after SIGSTOP; commands end <= %llu ms after DOWN, retried reads <= %llu ms) ",
           (unsigned long long)((down - fault) / NS_PER_MS), (unsigned long long)plain[np - 1],
           (unsigned long long)retried[nr - 1]);
    /* A command ends when its socket is shut: the goal plus scheduling
     * slack on a shared machine. */
    CU_ASSERT(plain[np - 1] <= slack_ms(CUT_BOUND_MS + 150));
    /* A retried read waits for a server once more: bounded by the
     * selection timeout the checks imply, not by socketTimeoutMS (300 s). */
    CU_ASSERT(retried[nr - 1] <= slack_ms(CUT_BOUND_MS + SELECTION_MS + 150));
    /* The other cluster's connections were never shut by the fault: no
     * reconnect.  Counted before the workers detach (a pool's teardown
     * may connect to end its sessions). */
    long other_after = test_peer_stat(f.other, "conn.total");
    printf("(other peer: %ld connections before the fault, %ld after) ", other_conns, other_after);
    CU_ASSERT_EQUAL(other_after, other_conns);
    workers_stop(&ws);
    uint64_t fails[MSUP_FAIL__COUNT];
    CU_ASSERT_FATAL(failures_since(&f, "main", &main0, fails));
    printf("(main since the warm-up: circuit_open %llu, network %llu, selection %llu) ",
           (unsigned long long)fails[MSUP_FAIL_CIRCUIT_OPEN], (unsigned long long)fails[MSUP_FAIL_NETWORK],
           (unsigned long long)fails[MSUP_FAIL_SERVER_SELECTION]);
    CU_ASSERT(fails[MSUP_FAIL_CIRCUIT_OPEN] >= WORKERS * THREADS);
    CU_ASSERT_EQUAL(fails[MSUP_FAIL_NETWORK], 0);
    CU_ASSERT_EQUAL(fails[MSUP_FAIL_TIMEOUT], 0);
    CU_ASSERT_EQUAL(fails[MSUP_FAIL_SERVER_SELECTION], 0);
    CU_ASSERT_FATAL(failures_since(&f, "other", &other0, fails));
    CU_ASSERT_EQUAL(sum_u64(fails, MSUP_FAIL__COUNT), 0);
    test_peer_kill(f.main, SIGCONT);
    /* Another process's connection to the hung peer: untouched. */
    CU_ASSERT_TRUE(still_connected(raw));
    close(raw);
    ffix_stop(&f);
}

/* ---- kill: operations waiting for server selection ---- */

static void test_kill_selection(void)
{
    ffix_t f;
    ffix_start(&f, "ffkill");
    mongosup_error_t error;
    mongosup_config_t *cfg = mongosup_config_load(f.conf, NULL, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->clusters[0].server_selection_timeout_ms, SELECTION_MS);
    mongosup_config_destroy(&cfg);
    workers_t ws;
    workers_start(&ws, &f);
    msup_totals_t main0, other0;
    CU_ASSERT_FATAL(totals(&f, "main", &main0) && totals(&f, "other", &other0));
    print_warm_up(&main0, &other0);
    long other_conns = settled_connections(f.other);
    /* The operations are sent before the kill (under valgrind, workers
     * told to go before it started theirs after the DOWN verdict, and were
     * rightly refused): each meets a dead server, then waits to select one. */
    start_stalled_operations(&f, &ws);
    test_peer_kill(f.main, SIGKILL);
    uint64_t fault = msup_mono_ns();
    uint64_t down = wait_health(&f, f.row_main, MSUP_HEALTH_DOWN, 5000);
    CU_ASSERT_FATAL(down != 0);
    result_t r[WORKERS * THREADS];
    workers_results(&ws, r, (unsigned)slack_ms(5000));
    uint64_t took[WORKERS * THREADS], after_down[WORKERS * THREADS];
    int ended_after_down = 0;
    for (int i = 0; i < WORKERS * THREADS; i++) {
        ended_after_down += r[i].end_ns > down ? 1 : 0;
        CU_ASSERT_FALSE(r[i].ok);
        /* They started before the verdict: never refused. */
        CU_ASSERT_FALSE(r[i].refused);
        CU_ASSERT(r[i].start_ns < fault);
        /* From the fault: the operations waited in the stalled find before. */
        took[i] = r[i].end_ns > fault ? (r[i].end_ns - fault) / NS_PER_MS : 0;
        after_down[i] = r[i].end_ns > down ? (r[i].end_ns - down) / NS_PER_MS : 0;
    }
    sort_u64(took, WORKERS * THREADS);
    sort_u64(after_down, WORKERS * THREADS);
    printf("(DOWN %llu ms after SIGKILL; operations ended <= %llu ms after SIGKILL, <= %llu ms after DOWN) ",
           (unsigned long long)((down - fault) / NS_PER_MS), (unsigned long long)took[WORKERS * THREADS - 1],
           (unsigned long long)after_down[WORKERS * THREADS - 1]);
    /* Selection gives up after the checks' detection bound plus margin
     * (600 ms here), not the driver's 30 s. */
    CU_ASSERT(took[WORKERS * THREADS - 1] <= slack_ms(SELECTION_MS + 300));
    CU_ASSERT(after_down[WORKERS * THREADS - 1] <= slack_ms(SELECTION_MS + 150));
    long other_after = test_peer_stat(f.other, "conn.total");
    printf("(other peer: %ld connections before the fault, %ld after) ", other_conns, other_after);
    CU_ASSERT_EQUAL(other_after, other_conns);
    workers_stop(&ws);
    uint64_t fails[MSUP_FAIL__COUNT];
    CU_ASSERT_FATAL(failures_since(&f, "main", &main0, fails));
    /* A plain command fails at once on the dead socket (a network error,
     * before any verdict); a retried read waits to select a server and
     * fails after DOWN: counted as the circuit opening. */
    printf("(%d ended after DOWN; main since the warm-up: circuit_open %llu, network %llu) ", ended_after_down,
           (unsigned long long)fails[MSUP_FAIL_CIRCUIT_OPEN], (unsigned long long)fails[MSUP_FAIL_NETWORK]);
    CU_ASSERT(ended_after_down >= WORKERS * THREADS / 2);
    CU_ASSERT(fails[MSUP_FAIL_CIRCUIT_OPEN] >= (uint64_t)ended_after_down);
    CU_ASSERT_EQUAL(fails[MSUP_FAIL_SERVER_SELECTION], 0);
    CU_ASSERT_FATAL(failures_since(&f, "other", &other0, fails));
    CU_ASSERT_EQUAL(sum_u64(fails, MSUP_FAIL__COUNT), 0);
    ffix_stop(&f);
}

/* ---- half-open: recovery next to a plain pool in this process ---- */

typedef struct first_ok {
    mongosup_t *h;               /* mongosup, or */
    mongoc_client_pool_t *pool;  /* a plain mongoc pool */
    uint64_t at_ns;              /* the first success */
    _Atomic bool stop;
} first_ok_t;

static void *first_ok_main(void *arg)
{
    first_ok_t *x = arg;
    while (!atomic_load(&x->stop)) {
        mongosup_error_t error;
        bson_error_t berr;
        mongoc_client_t *client = x->h != NULL ? mongosup_checkout(x->h, "main", &error)
                                               : mongoc_client_pool_pop(x->pool);
        if (client == NULL) {
            msup_test_sleep_ms(1); /* refused at once (circuit open): try again */
            continue;
        }
        bool ok = wfix_ping(client, &berr);
        if (x->h != NULL)
            mongosup_checkin(x->h, client, ok ? NULL : &berr);
        else
            mongoc_client_pool_push(x->pool, client);
        if (ok) {
            x->at_ns = msup_mono_ns();
            return NULL;
        }
    }
    return NULL;
}

static void test_half_open_recovery(void)
{
    ffix_t f;
    ffix_start(&f, "ffhalf");
    mongosup_error_t error;
    mongosup_config_t *cfg = mongosup_config_load(f.conf, NULL, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    mongosup_t *h = mongosup_attach(cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    /* The same effective options as mongosup's pool. */
    mongoc_uri_t *uri = mongoc_uri_new(cfg->clusters[0].uri);
    mongoc_client_pool_t *pool = mongoc_client_pool_new(uri);
    mongoc_uri_destroy(uri);
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    /* A failed step ends the test through `done`, never with threads or
     * the handle left running (a FATAL assertion would leave both). */
    mongoc_client_t *client = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL(client);
    if (client == NULL)
        goto done;
    CU_ASSERT(wfix_ping(client, NULL));
    mongosup_checkin(h, client, NULL);
    client = mongoc_client_pool_pop(pool);
    CU_ASSERT(wfix_ping(client, NULL));
    mongoc_client_pool_push(pool, client);

    test_peer_kill(f.main, SIGKILL);
    bool down = wait_health(&f, f.row_main, MSUP_HEALTH_DOWN, 5000) != 0;
    CU_ASSERT(down);
    if (!down)
        goto done;
    msup_test_sleep_ms(300);
    first_ok_t ms = {.h = h}, plain = {.pool = pool};
    pthread_t tm, tp;
    pthread_create(&tm, NULL, first_ok_main, &ms);
    pthread_create(&tp, NULL, first_ok_main, &plain);
    msup_test_sleep_ms(700); /* both are trying: plain in selection, mongosup refused */
    bool restarted = test_peer_restart(f.main);
    CU_ASSERT(restarted);
    uint64_t ready = msup_mono_ns();
    for (int i = 0; restarted && i < 1000 && (ms.at_ns == 0 || plain.at_ns == 0); i++)
        msup_test_sleep_ms(10);
    atomic_store(&ms.stop, true);
    atomic_store(&plain.stop, true);
    pthread_join(tm, NULL);
    pthread_join(tp, NULL);
    CU_ASSERT(ms.at_ns != 0 && plain.at_ns != 0);
    if (!restarted || ms.at_ns == 0 || plain.at_ns == 0)
        goto done;
    uint64_t ms_ms = ms.at_ns > ready ? (ms.at_ns - ready) / NS_PER_MS : 0;
    uint64_t plain_ms = plain.at_ns > ready ? (plain.at_ns - ready) / NS_PER_MS : 0;
    uint64_t up = wait_health(&f, f.row_main, MSUP_HEALTH_UP, 5000);
    printf("(first success after READY: mongosup %llu ms, plain mongoc %llu ms; UP after %llu ms) ",
           (unsigned long long)ms_ms, (unsigned long long)plain_ms,
           (unsigned long long)(up > ready ? (up - ready) / NS_PER_MS : 0));
    /* The mechanism's bound, not a ratio of two single samples (the ratio
     * is bench/failfast_bench's, over many cycles): the worker's own probe
     * asks every MSUP_PROBE_INTERVAL_MS, so its first success comes at most
     * one interval (plus the probe's scan and the trial's handshake) after
     * the plain driver's.  2 x plain + 200 failed once when the plain pool
     * reconnected in 4 ms under load. */
    CU_ASSERT(ms_ms <= plain_ms + MSUP_PROBE_INTERVAL_MS + slack_ms(500));
    /* Before half-open, the first success waited for UP (rise checks). */
    CU_ASSERT(up == 0 || ms.at_ns <= up);
done:
    CU_ASSERT(mongosup_detach(&h, 2000));
    mongoc_client_pool_destroy(pool);
    mongosup_config_destroy(&cfg);
    ffix_stop(&f);
}

/* ---- flaky: every other check fails ---- */

static void test_flaky_no_flap(void)
{
    ffix_t f;
    ffix_start(&f, "ffflaky");
    CU_ASSERT(test_peer_command(f.main, "{\"cmd\":\"fail\",\"command\":\"ping\",\"code\":2,\"times\":null}", NULL, 0));
    CU_ASSERT_FATAL(wait_health(&f, f.row_main, MSUP_HEALTH_DOWN, 5000) != 0);
    /* From now on the peer fails every other ping: every other check. */
    CU_ASSERT(test_peer_command(f.main, "{\"cmd\":\"clear\"}", NULL, 0));
    CU_ASSERT(test_peer_command(f.main, "{\"cmd\":\"fail\",\"command\":\"ping\",\"code\":2,\"times\":null,\"every\":2}",
                                NULL, 0));
    uint64_t entries[64];
    int n = 0;
    bool seen_up = false;
    uint32_t last = health_of(&f, f.row_main);
    uint64_t end = msup_test_now_ms() + 3000;
    while (msup_test_now_ms() < end) {
        uint32_t hnow = health_of(&f, f.row_main);
        if (hnow != last) {
            /* When the supervisor made the change (written before the
             * health it stores with release), not when we saw it. */
            if (hnow == MSUP_HEALTH_RECOVERING && n < 64)
                entries[n++] = atomic_load_explicit(&msup_segment_row(&f.seg, (uint32_t)f.row_main)->health_since_ns, memory_order_relaxed);
            seen_up = seen_up || hnow == MSUP_HEALTH_UP || hnow == MSUP_HEALTH_DEGRADED;
            last = hnow;
        }
        msup_test_sleep_ms(1);
    }
    test_peer_command(f.main, "{\"cmd\":\"clear\"}", NULL, 0);
    uint64_t min_gap = UINT64_MAX;
    for (int i = 1; i < n; i++)
        if ((entries[i] - entries[i - 1]) / NS_PER_MS < min_gap)
            min_gap = (entries[i] - entries[i - 1]) / NS_PER_MS;
    printf("(%d half-open periods in 3 s, closest %llu ms apart) ", n, (unsigned long long)min_gap);
    CU_ASSERT_FALSE(seen_up); /* rise = 2 good checks in a row never happens */
    CU_ASSERT(n >= 3);
    /* One DOWN/RECOVERING cycle: a failed check fastinter after the good
     * one, then a probe downinter later: 100 + 100 ms, the checks' own
     * time on top (intervals run from the end of a check). */
    CU_ASSERT(min_gap >= 195);
    ffix_stop(&f);
}

/* ---- the gate, with the test playing the supervisor ---- */

/* A worker (this process) on the test peer, whose supervisor the test
 * plays: it alone writes the main row's verdict. */
typedef struct played {
    wfix_t f;
    mongosup_t *h;
    msup_segment_t seg;
    int row; /* "main" */
} played_t;

static void played_start(played_t *p, const char *tag, const char *keys)
{
    CU_ASSERT_FATAL(wfix_start(&p->f, tag, keys, NULL));
    mongosup_error_t error;
    p->h = mongosup_attach(p->f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p->h);
    CU_ASSERT_FATAL(wfix_segment(&p->f, &p->seg));
    p->row = msup_segment_find_cluster(&p->seg, "main");
    CU_ASSERT_FATAL(p->row >= 0);
    /* A live supervisor: this process, with a heartbeat that stays fresh. */
    msup_header_t *hdr = msup_segment_hdr(&p->seg);
    atomic_store(&hdr->heartbeat_timeout_ms, 60000);
    atomic_store(&hdr->heartbeat_mono_ns, msup_mono_ns());
    atomic_store(&hdr->supervisor_pid, (int32_t)getpid());
}

static void played_verdict(played_t *p, uint32_t health)
{
    atomic_store(&msup_segment_row(&p->seg, (uint32_t)p->row)->health, health);
}

static void played_stop(played_t *p)
{
    msup_segment_close(&p->seg);
    CU_ASSERT(mongosup_detach(&p->h, 1000));
    wfix_stop(&p->f);
}

typedef struct trial {
    mongosup_t *h;
    mongoc_client_t *client;
} trial_t;

static void *trial_main(void *arg)
{
    trial_t *t = arg;
    mongosup_error_t error;
    t->client = mongosup_checkout(t->h, "main", &error);
    return NULL;
}

static void test_gate_half_open_trials(void)
{
    played_t p;
    played_start(&p, "ffgate", "");
    mongosup_error_t error;
    mongoc_client_t *c1 = mongosup_checkout(p.h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c1);
    mongosup_checkin(p.h, c1, NULL);
    played_verdict(&p, MSUP_HEALTH_DOWN);
    CU_ASSERT_PTR_NULL(mongosup_checkout(p.h, "main", &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_CIRCUIT_OPEN);
    /* No failed check came first: the calm look sees DOWN (the cutoff);
     * RECOVERING comes within the follow-up window, before the worker's
     * own evidence may count (the server is reachable), and the window
     * passes. */
    const _Atomic uint64_t *cutoffs = &p.h->clusters[0].failfast.cutoffs;
    for (int i = 0; i < 2000 && atomic_load(cutoffs) == 0; i++)
        msup_test_sleep_ms(1);
    CU_ASSERT_EQUAL_FATAL(atomic_load(cutoffs), 1);
    played_verdict(&p, MSUP_HEALTH_RECOVERING);
    msup_test_sleep_ms(MSUP_CUTOFF_FOLLOW_MS + 20);
    /* Half-open: one trial, the next checkout refused until it proves.
     * After DOWN the idle client is stale (its socket may be dead, the
     * verdict shut it): the trial checkout re-checks it under a handshake
     * slot, and that ping is the trial (slowed here so that the refusal is
     * seen while it runs: max_connecting 0 still counts the slot). */
    CU_ASSERT(test_peer_command(p.f.peer, "{\"cmd\":\"delay\",\"ms\":300,\"command\":\"ping\",\"times\":1}", NULL, 0));
    trial_t trial = {.h = p.h};
    pthread_t th;
    pthread_create(&th, NULL, trial_main, &trial);
    for (int i = 0; i < 5000 && atomic_load(&msup_segment_reg(&p.seg, (uint32_t)p.row)->budget_connecting) == 0; i++)
        msup_test_sleep_ms(1);
    CU_ASSERT_PTR_NULL(mongosup_checkout(p.h, "main", &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_CIRCUIT_OPEN);
    CU_ASSERT_PTR_NOT_NULL(strstr(error.message, "RECOVERING"));
    pthread_join(th, NULL);
    c1 = trial.client;
    CU_ASSERT_PTR_NOT_NULL_FATAL(c1);
    bson_error_t berr;
    CU_ASSERT(wfix_ping(c1, &berr)); /* the trial's reconnect proved the server: */
    mongoc_client_t *c2 = mongosup_checkout(p.h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL(c2);
    mongoc_client_t *c3 = mongosup_checkout(p.h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL(c3);
    mongosup_checkin(p.h, c1, NULL);
    if (c2 != NULL)
        mongosup_checkin(p.h, c2, NULL);
    if (c3 != NULL)
        mongosup_checkin(p.h, c3, NULL);
    /* A new DOWN verdict voids what the trial proved. */
    played_verdict(&p, MSUP_HEALTH_DOWN);
    msup_test_sleep_ms(50);
    CU_ASSERT_PTR_NULL(mongosup_checkout(p.h, "main", &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_CIRCUIT_OPEN);
    played_verdict(&p, MSUP_HEALTH_UP);
    c1 = mongosup_checkout(p.h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL(c1);
    if (c1 != NULL)
        mongosup_checkin(p.h, c1, NULL);
    played_stop(&p);
}

/* ---- mongosup_run: no retry waits out its backoff on an open circuit ---- */

typedef struct run_ctx {
    msup_segment_t *seg;
    int row;
    bool down_in_callback;     /* the callback itself brings the verdict */
    _Atomic int calls;
    _Atomic uint64_t failed_ns; /* the first attempt's failure */
} run_ctx_t;

/* Fails with a network error, the kind mongosup_run retries. */
static bool failing_op(mongoc_client_t *client, void *arg, bson_t *reply, bson_error_t *error)
{
    (void)client;
    (void)reply;
    run_ctx_t *x = arg;
    atomic_fetch_add(&x->calls, 1);
    if (x->down_in_callback)
        atomic_store(&msup_segment_row(x->seg, (uint32_t)x->row)->health, MSUP_HEALTH_DOWN);
    bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, "simulated: connection reset");
    atomic_store(&x->failed_ns, msup_mono_ns());
    return false;
}

static void *down_later_main(void *arg)
{
    run_ctx_t *x = arg;
    while (atomic_load(&x->failed_ns) == 0)
        msup_test_sleep_ms(1);
    msup_test_sleep_ms(100); /* well inside the first backoff (1000-2000 ms) */
    atomic_store(&msup_segment_row(x->seg, (uint32_t)x->row)->health, MSUP_HEALTH_DOWN);
    return (void *)(uintptr_t)msup_mono_ns();
}

static void test_run_retry_stops_at_down(void)
{
    played_t p;
    played_start(&p, "ffrun", "retry_max_attempts = 3; retry_backoff_ms = 2000; retry_deadline_ms = 60000;");
    mongosup_error_t error;

    /* DOWN arrives while the retry sleeps its backoff: it ends the wait. */
    run_ctx_t x = {.seg = &p.seg, .row = p.row};
    pthread_t t;
    pthread_create(&t, NULL, down_later_main, &x);
    bool ok = mongosup_run(p.h, "main", failing_op, &x, &error);
    uint64_t end = msup_mono_ns();
    void *down_ret;
    pthread_join(t, &down_ret);
    uint64_t down = (uint64_t)(uintptr_t)down_ret;
    CU_ASSERT_FALSE(ok);
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_CIRCUIT_OPEN);
    CU_ASSERT_EQUAL(atomic_load(&x.calls), 1);
    uint64_t after_down_ms = end > down ? (end - down) / NS_PER_MS : 0;
    printf("(backoff ended %llu ms after DOWN: %s) ", (unsigned long long)after_down_ms, error.message);
    CU_ASSERT(after_down_ms <= slack_ms(CUT_BOUND_MS));

    /* DOWN already when the attempt fails: no backoff at all. */
    played_verdict(&p, MSUP_HEALTH_UP);
    msup_test_sleep_ms(MSUP_FAILFAST_CALM_TICK_MS + 20);
    run_ctx_t y = {.seg = &p.seg, .row = p.row, .down_in_callback = true};
    ok = mongosup_run(p.h, "main", failing_op, &y, &error);
    /* From the attempt's failure, not from its start: the attempt's own
     * checkout re-checks its client under a handshake slot after the
     * outage above (budget.md), which under load takes its time. */
    uint64_t end_y = msup_mono_ns(), failed_y = atomic_load(&y.failed_ns);
    uint64_t took_ms = end_y > failed_y ? (end_y - failed_y) / NS_PER_MS : 0;
    printf("(DOWN during the attempt: refused %llu ms after it failed) ", (unsigned long long)took_ms);
    CU_ASSERT_FALSE(ok);
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_CIRCUIT_OPEN);
    CU_ASSERT_EQUAL(atomic_load(&y.calls), 1);
    CU_ASSERT(took_ms <= slack_ms(CUT_BOUND_MS));

    played_verdict(&p, MSUP_HEALTH_UP);
    played_stop(&p);
}

/* ---- half-open on the worker's own evidence, before any good check ---- */

/* The supervisor (the test) says DOWN and never anything else: no
 * RECOVERING, no rise, while the server is in fact reachable.  The
 * worker's own evidence (its probe, or its pool's monitor) lets a trial
 * checkout through while the row still reads DOWN; a trial that succeeds
 * opens the circuit for every checkout.  Returns the ms from DOWN to the
 * first successful trial, 0 if none came within bound_ms. */
static uint64_t own_evidence_case(const char *tag, const char *keys, uint64_t bound_ms, uint64_t *probes_reached)
{
    played_t p;
    played_start(&p, tag, keys);
    mongosup_error_t error;
    mongoc_client_t *c1 = mongosup_checkout(p.h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c1);
    CU_ASSERT(wfix_ping(c1, NULL)); /* the pool and its monitor run */
    mongosup_checkin(p.h, c1, NULL);
    played_verdict(&p, MSUP_HEALTH_DOWN);
    uint64_t down = msup_mono_ns();
    /* Fresh verdict: no evidence counts yet. */
    CU_ASSERT_PTR_NULL(mongosup_checkout(p.h, "main", &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_CIRCUIT_OPEN);
    uint64_t deadline = msup_test_now_ms() + slack_ms(bound_ms);
    unsigned refused = 0, failed_trials = 0;
    uint64_t proved = 0;
    while (proved == 0 && msup_test_now_ms() < deadline) {
        mongoc_client_t *trial = mongosup_checkout(p.h, "main", &error);
        if (trial == NULL) {
            CU_ASSERT_EQUAL(error.code, MONGOSUP_E_CIRCUIT_OPEN);
            refused++;
            msup_test_sleep_ms(5);
            continue;
        }
        CU_ASSERT_EQUAL(atomic_load(&msup_segment_row(&p.seg, (uint32_t)p.row)->health), MSUP_HEALTH_DOWN);
        bson_error_t berr;
        bool ok = wfix_ping(trial, &berr);
        mongosup_checkin(p.h, trial, ok ? NULL : &berr);
        if (ok) {
            proved = msup_mono_ns();
        } else {
            /* The DOWN verdict shut this client's socket: the trial fails
             * on it and closes the half-open state; more evidence opens it
             * again. */
            CU_ASSERT_EQUAL(berr.domain, MONGOC_ERROR_STREAM);
            failed_trials++;
        }
    }
    *probes_reached = atomic_load(&p.h->clusters[0].failfast.probe.reached);
    printf("(%s: %u refused, %u trials failed on a shut socket, proved %llu ms after DOWN, probe reached it %llu "
           "times) ",
           tag, refused, failed_trials, proved ? (unsigned long long)((proved - down) / NS_PER_MS) : 0ull,
           (unsigned long long)*probes_reached);
    CU_ASSERT(proved != 0);
    CU_ASSERT(refused > 0);
    /* Proved: every checkout goes through, the row still DOWN. */
    c1 = mongosup_checkout(p.h, "main", &error);
    mongoc_client_t *c2 = mongosup_checkout(p.h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL(c1);
    CU_ASSERT_PTR_NOT_NULL(c2);
    if (c1 != NULL)
        mongosup_checkin(p.h, c1, NULL);
    if (c2 != NULL)
        mongosup_checkin(p.h, c2, NULL);
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_row(&p.seg, (uint32_t)p.row)->health), MSUP_HEALTH_DOWN);
    played_verdict(&p, MSUP_HEALTH_UP);
    played_stop(&p);
    return proved ? (proved - down) / NS_PER_MS : 0;
}

/* The pool's monitor every 500 ms (the fixture's heartbeat) and the probe. */
static void test_gate_monitor_evidence(void)
{
    uint64_t reached;
    own_evidence_case("ffmon", "", MSUP_FAILFAST_CALM_TICK_MS + MSUP_CUTOFF_FOLLOW_MS + 3 * 500 + 500, &reached);
}

/* A monitor that checks only every 60 s: the worker's own probe, every
 * MSUP_PROBE_INTERVAL_MS, is what opens half-open. */
static void test_gate_probe_evidence(void)
{
    uint64_t reached;
    uint64_t bound = MSUP_FAILFAST_CALM_TICK_MS + MSUP_CUTOFF_FOLLOW_MS + 3 * MSUP_PROBE_INTERVAL_MS + 300;
    uint64_t took = own_evidence_case("ffprobe", "heartbeat_frequency_ms = 60000;", bound, &reached);
    CU_ASSERT(took != 0 && took <= slack_ms(bound));
    CU_ASSERT(reached >= 1);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/failfast/gate/half-open-trials", test_gate_half_open_trials},
        {"/failfast/gate/own-evidence-opens-half-open", test_gate_monitor_evidence},
        {"/failfast/gate/own-probe-opens-half-open", test_gate_probe_evidence},
        {"/failfast/run/retry-stops-at-down", test_run_retry_stops_at_down},
        {"/failfast/hang/in-flight-end-at-down", test_hang_in_flight},
        {"/failfast/kill/selection-bounded-by-checks", test_kill_selection},
        {"/failfast/half-open/first-op-after-restart", test_half_open_recovery},
        {"/failfast/half-open/flaky-does-not-flap", test_flaky_no_flap},
        {NULL, NULL},
    };
    int rc = msup_test_main("worker_failfast", tests, argc, argv);
    mongoc_cleanup();
    return rc;
}
