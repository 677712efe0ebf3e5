/* worker_budget_test.c: the cluster-wide connection budget wired into the worker pools, end to end against the test peer (and a real deployment). */
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
#include "slots.h"
#include "stats.h"
#include "testmain.h"
#include "worker.h"
#include "worker_fixture.h"

/* Shared by the test and its forked workers (MAP_SHARED, before fork). */
typedef struct ctl {
    _Atomic int phase;      /* RUN, PAUSE, STOP */
    _Atomic int paused;     /* workers idle with every client back */
    _Atomic long ok;
    _Atomic long failed;
    _Atomic long worker_ok[32]; /* per looping worker */
    char last_error[512];
} ctl_t;

enum { RUN = 0, PAUSE = 1, STOP = 2 };

#define NS_PER_MS 1000000ull

static ctl_t *ctl_new(void)
{
    ctl_t *ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(ctl != MAP_FAILED);
    memset(ctl, 0, sizeof *ctl);
    return ctl;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The application's command: a ping, or (when `counting`) a count, which
 * the counting proxy tells apart from the ping of mongosup's handshake. */
static bool app_command(mongoc_client_t *client, bool counting, bson_error_t *berr)
{
    if (!counting)
        return wfix_ping(client, berr);
    bson_t cmd = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&cmd, "count", "c");
    bool ok = mongoc_client_command_simple(client, "wtest", &cmd, NULL, NULL, berr);
    bson_destroy(&cmd);
    return ok;
}

/* One checkout + command + checkin; counted in ctl. */
static bool one_command(mongosup_t *h, ctl_t *ctl, bool counting)
{
    mongosup_error_t error;
    mongoc_client_t *client = mongosup_checkout(h, "main", &error);
    if (client == NULL) {
        atomic_fetch_add(&ctl->failed, 1);
        snprintf(ctl->last_error, sizeof ctl->last_error, "%s", error.message);
        return false;
    }
    bson_error_t berr;
    bool ok = app_command(client, counting, &berr);
    mongosup_checkin(h, client, ok ? NULL : &berr);
    atomic_fetch_add(ok ? &ctl->ok : &ctl->failed, 1);
    if (!ok)
        snprintf(ctl->last_error, sizeof ctl->last_error, "%s", berr.message);
    return ok;
}

static bool one_op(mongosup_t *h, ctl_t *ctl)
{
    return one_command(h, ctl, false);
}

typedef struct thread_arg {
    mongosup_t *h;
    ctl_t *ctl;
    int ops;
} thread_arg_t;

static void *fixed_ops_thread(void *arg)
{
    thread_arg_t *t = arg;
    for (int i = 0; i < t->ops; i++)
        one_op(t->h, t->ctl);
    return NULL;
}

/* A worker process: `threads` threads of `ops` operations each. */
static void fixed_worker(const mongosup_config_t *cfg, ctl_t *ctl, int threads, int ops)
{
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(cfg, &error);
    if (h == NULL)
        _exit(2);
    pthread_t th[16];
    thread_arg_t arg = {.h = h, .ctl = ctl, .ops = ops};
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, fixed_ops_thread, &arg);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    _exit(mongosup_detach(&h, 10000) ? 0 : 3);
}

typedef struct loop_arg {
    mongosup_t *h;
    ctl_t *ctl;
    int index;    /* the worker's */
    int think_ms; /* between operations; 0: none (saturation) */
    bool counting;
} loop_arg_t;

/* One thread of a looping worker: works until STOP, idle (its client back)
 * while PAUSE (counted in ctl->paused, one per thread). */
static void *loop_thread(void *arg)
{
    loop_arg_t *a = arg;
    ctl_t *ctl = a->ctl;
    bool paused = false;
    for (;;) {
        int phase = atomic_load(&ctl->phase);
        if (phase == STOP)
            break;
        if (phase == PAUSE) {
            if (!paused)
                atomic_fetch_add(&ctl->paused, 1);
            paused = true;
            nap_ms(5);
            continue;
        }
        if (paused)
            atomic_fetch_sub(&ctl->paused, 1);
        paused = false;
        if (one_command(a->h, ctl, a->counting))
            atomic_fetch_add(&ctl->worker_ok[a->index], 1);
        if (a->think_ms > 0)
            nap_ms(a->think_ms);
    }
    return NULL;
}

/* A worker process of `threads` looping threads. */
static void threaded_worker(const mongosup_config_t *cfg, ctl_t *ctl, int index, int threads, int think_ms,
                            bool counting)
{
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(cfg, &error);
    if (h == NULL)
        _exit(2);
    pthread_t th[16];
    loop_arg_t arg = {.h = h, .ctl = ctl, .index = index, .think_ms = think_ms, .counting = counting};
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, loop_thread, &arg);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    _exit(mongosup_detach(&h, 10000) ? 0 : 3);
}

/* A worker process that works until STOP and goes idle (every client
 * back) while PAUSE. */
static void looping_worker(const mongosup_config_t *cfg, ctl_t *ctl, int index)
{
    threaded_worker(cfg, ctl, index, 1, 10, false);
}

/* Waits for a child at most timeout_ms; kills it past that. */
static int wait_child(pid_t pid, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        nap_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* The test plays a live supervisor: its pid and a fresh heartbeat that
 * stays fresh for the test's length; returns the header to keep it so. */
static msup_header_t *play_supervisor(msup_segment_t *seg)
{
    msup_header_t *hdr = msup_segment_hdr(seg);
    atomic_store(&hdr->heartbeat_timeout_ms, 600000);
    atomic_store(&hdr->heartbeat_mono_ns, msup_mono_ns());
    atomic_store(&hdr->supervisor_pid, (int32_t)getpid());
    return hdr;
}

/* The cluster's control row (health, generation, the limits a live supervisor sets). */
static msup_cluster_row_t *main_row(msup_segment_t *seg)
{
    int row = msup_segment_find_cluster(seg, "main");
    CU_ASSERT_FATAL(row >= 0);
    return msup_segment_row(seg, (uint32_t)row);
}

/* Its registry row: the budget line every worker writes. */
static msup_reg_row_t *main_line(msup_segment_t *seg)
{
    int row = msup_segment_find_cluster(seg, "main");
    CU_ASSERT_FATAL(row >= 0);
    return msup_segment_reg(seg, (uint32_t)row);
}

/* ---- 8 workers x 16 threads share a budget of 20 ---- */

/* On a real deployment the server's connection count is sampled while the
 * workers run (serverStatus.connections.current of the primary, less the
 * count before they started): the peer's conn.max, approximated. */
typedef struct conn_sampler {
    const wfix_t *f;
    mongoc_client_t *probe;
    long baseline, peak;
    _Atomic int stop;
    pthread_t thread;
} conn_sampler_t;

static void *sample_connections(void *arg)
{
    conn_sampler_t *s = arg;
    while (!atomic_load(&s->stop)) {
        long n = wfix_server_connections(s->f, s->probe);
        if (n > s->peak)
            s->peak = n;
        nap_ms(5);
    }
    return NULL;
}

/* Hosts listed in $MONGOSUP_TEST_URI (an SRV URI counts 3, as the budget does). */
static unsigned real_hosts(void)
{
    mongoc_uri_t *uri = mongoc_uri_new(test_peer_real_uri());
    unsigned n = 0;
    for (const mongoc_host_list_t *h = uri ? mongoc_uri_get_hosts(uri) : NULL; h != NULL; h = h->next)
        n++;
    mongoc_uri_destroy(uri);
    return n > 0 ? n : 3;
}

static void cap_across_workers(bool real)
{
    bool vg = msup_test_under_valgrind();
    int workers = vg ? 2 : 8, threads = vg ? 3 : 16, ops = vg ? 3 : 15;
    unsigned budget = vg ? 4 : 20;
    /* docs/budget.md: a worker needs its monitors (up to 2 per host) and one
     * client (1 per host of a replica set) before it can work; a real
     * deployment's budget leaves room for two such workers at once, or a
     * small budget on a replica set would starve every worker but one. */
    if (real && budget < 2 * 3 * real_hosts())
        budget = 2 * 3 * real_hosts();
    char keys[160];
    snprintf(keys, sizeof keys, "max_pool_size = 10; max_connections = %u; wait_queue_timeout_ms = 60000;", budget);
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start_on(&f, "bcap", keys, NULL, real));
    /* Slow pings keep clients busy, so the pools want to grow (a real
     * deployment cannot be slowed: 16 threads per worker first checking out
     * at once want more clients than the budget all the same). */
    conn_sampler_t sampler = {.f = &f, .baseline = -1, .peak = -1};
    if (real) {
        /* A single-threaded client: one connection per server, made now. */
        sampler.probe = mongoc_client_new(test_peer_real_uri());
        CU_ASSERT_PTR_NOT_NULL_FATAL(sampler.probe);
        sampler.baseline = wfix_server_connections(&f, sampler.probe);
    } else {
        CU_ASSERT(test_peer_command(f.peer, "{\"cmd\":\"delay\",\"ms\":5,\"command\":\"ping\"}", NULL, 0));
        CU_ASSERT(test_peer_command(f.peer, "{\"cmd\":\"reset_stats\"}", NULL, 0));
    }
    ctl_t *ctl = ctl_new();
    pid_t pids[8];
    for (int w = 0; w < workers; w++) {
        pids[w] = fork();
        CU_ASSERT_FATAL(pids[w] >= 0);
        if (pids[w] == 0)
            fixed_worker(f.cfg, ctl, threads, ops);
    }
    /* Started after the forks: no child inherits a running sampler. */
    if (sampler.baseline >= 0)
        pthread_create(&sampler.thread, NULL, sample_connections, &sampler);
    for (int w = 0; w < workers; w++)
        CU_ASSERT_EQUAL(wait_child(pids[w], vg ? 600000 : 120000), 0);
    if (sampler.baseline >= 0) {
        atomic_store(&sampler.stop, 1);
        pthread_join(sampler.thread, NULL);
    }
    if (sampler.probe != NULL)
        mongoc_client_destroy(sampler.probe);
    long expected = (long)workers * threads * ops;
    CU_ASSERT_EQUAL(atomic_load(&ctl->ok), expected);
    CU_ASSERT_EQUAL(atomic_load(&ctl->failed), 0);
    if (atomic_load(&ctl->failed) != 0)
        fprintf(stderr, "last failure: %s\n", ctl->last_error);
    long conn_max;
    if (!real) {
        conn_max = wfix_peer_stat(&f, "conn.max");
        CU_ASSERT(conn_max > 0);
        CU_ASSERT(conn_max <= (long)budget);
    } else if (sampler.baseline >= 0 && sampler.peak >= 0) {
        /* Other clients of a shared deployment count too: run it on a quiet one. */
        conn_max = sampler.peak - sampler.baseline;
        CU_ASSERT(conn_max > 0);
        CU_ASSERT(conn_max <= (long)budget);
    } else {
        conn_max = -1;
        wfix_skip_needs_peer("/real/worker/budget/cap-across-workers: the connection count "
                             "(serverStatus.connections is not available here)");
    }
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT(t.budget_waits > 0);
    CU_ASSERT_EQUAL(t.checkouts, (uint64_t)expected);
    /* Every worker detached: every token came back. */
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    CU_ASSERT_EQUAL(atomic_load(&main_line(&seg)->budget_in_use), 0);
    CU_ASSERT_EQUAL(atomic_load(&main_line(&seg)->budget_connecting), 0);
    printf("\n    %s conn.max %ld (budget %u), budget waits %llu ", real ? "server" : "peer", conn_max, budget,
           (unsigned long long)t.budget_waits);
    msup_segment_close(&seg);
    munmap(ctl, sizeof *ctl);
    wfix_stop(&f);
}

/* ---- a SIGKILLed worker's tokens come back when it is reaped ---- */

static void killed_worker_tokens(bool real)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start_on(&f, "bkill", "max_pool_size = 4; max_connections = 50;", NULL, real));
    int fds[2];
    CU_ASSERT_FATAL(pipe(fds) == 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        mongosup_error_t error;
        mongosup_t *h = mongosup_attach(f.cfg, &error);
        mongoc_client_t *held[3];
        for (int i = 0; h != NULL && i < 3; i++) {
            held[i] = mongosup_checkout(h, "main", &error);
            if (held[i] == NULL || !wfix_ping(held[i], NULL))
                _exit(2);
        }
        char ready = h != NULL ? 'r' : 'x';
        if (write(fds[1], &ready, 1) != 1)
            _exit(3);
        for (;;)
            pause(); /* holding three clients and their tokens */
    }
    close(fds[1]);
    char ready = 0;
    CU_ASSERT_EQUAL_FATAL(read(fds[0], &ready, 1), 1);
    CU_ASSERT_EQUAL(ready, 'r');
    close(fds[0]);
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_reg_row_t *row = main_line(&seg);
    /* docs/budget.md: a standalone with polling monitors costs 1 token for
     * the pool and 1 per client.  A real deployment's topology is not
     * known here: at least the three clients. */
    int64_t held = atomic_load(&row->budget_in_use);
    if (real) {
        CU_ASSERT(held >= 3);
    } else {
        CU_ASSERT_EQUAL(held, 4);
        CU_ASSERT_EQUAL(wfix_peer_stat(&f, "conn.current"), 4);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CU_ASSERT_EQUAL(atomic_load(&row->budget_in_use), held); /* still held until reaped */
    CU_ASSERT(msup_slots_reap_all(&seg) >= 1);
    CU_ASSERT_EQUAL(atomic_load(&row->budget_in_use), 0);
    CU_ASSERT_EQUAL(atomic_load(&row->budget_connecting), 0);
    CU_ASSERT_EQUAL(msup_slots_reap_all(&seg), 0); /* exactly once */
    CU_ASSERT_EQUAL(atomic_load(&row->budget_in_use), 0);
    msup_segment_close(&seg);
    wfix_stop(&f);
}

/* ---- reconnect storm: the cluster goes down, comes back, generation bump ---- */

static bool all_acked(msup_segment_t *seg, uint32_t row, uint64_t generation, int workers)
{
    int acked = 0;
    for (uint32_t i = 0; i < seg->max_workers; i++) {
        if (atomic_load(&msup_segment_slot(seg, i)->state) != MSUP_SLOT_ACTIVE)
            continue;
        if (atomic_load(&msup_slot_stats(seg, i, row)->reconnect_ack) == generation)
            acked++;
    }
    return acked == workers;
}

static test_peer_t *proxied_start(wfix_t *f, const char *tag, const char *keys);
static void proxied_stop(wfix_t *f, test_peer_t **proxy);

static void test_reconnect_storm(void)
{
    bool vg = msup_test_under_valgrind();
    int workers = vg ? 4 : 32;
    unsigned max_connections = (unsigned)workers * 3, max_connecting = vg ? 2 : 3;
    char keys[256];
    snprintf(keys, sizeof keys,
             "max_pool_size = 2; max_connections = %u; max_connecting = %u; reconnect_window_ms = 0; "
             "wait_queue_timeout_ms = 60000; server_selection_timeout_ms = 5000;",
             max_connections, max_connecting);
    /* The referee is the counting proxy: a handshake lasts from accept to
     * the first reply or the client's close (the peer itself would count a
     * handshake the client gave up on until its delayed reply), and it
     * tells application connections from the driver's monitors. */
    wfix_t f;
    test_peer_t *proxy = proxied_start(&f, "bstorm", keys);
    ctl_t *ctl = ctl_new();
    pid_t pids[32];
    for (int w = 0; w < workers; w++) {
        pids[w] = fork();
        CU_ASSERT_FATAL(pids[w] >= 0);
        if (pids[w] == 0)
            looping_worker(f.cfg, ctl, w);
    }
    for (int i = 0; i < 6000 && atomic_load(&ctl->ok) < 3L * workers; i++)
        nap_ms(10);
    CU_ASSERT(atomic_load(&ctl->ok) >= 3L * workers);
    CU_ASSERT(test_peer_stat(proxy, "conn.max") <= (long)max_connections);

    /* Every client back; the cluster goes DOWN and comes back. */
    atomic_store(&ctl->phase, PAUSE);
    for (int i = 0; i < 3000 && atomic_load(&ctl->paused) < workers; i++)
        nap_ms(10);
    CU_ASSERT_FATAL(atomic_load(&ctl->paused) == workers);
    test_peer_kill(f.peer, SIGKILL);
    CU_ASSERT_FATAL(test_peer_restart(f.peer));
    /* The old pools' monitors reconnect by themselves (outside
     * max_connecting, docs/budget.md "Limits"): let them, then measure. */
    for (int i = 0; i < 1000 && test_peer_stat(proxy, "conn.current") < workers; i++)
        nap_ms(10);
    nap_ms(300);
    /* Slow handshakes pile up if anything lets too many through. */
    CU_ASSERT(test_peer_command(proxy, "{\"cmd\":\"delay_first_reply\",\"ms\":100}", NULL, 0));
    CU_ASSERT(test_peer_command(proxy, "{\"cmd\":\"reset_stats\"}", NULL, 0));

    /* The test plays the supervisor: live heartbeat, generation bump. */
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_cluster_row_t *row = main_row(&seg);
    uint32_t row_index = (uint32_t)msup_segment_find_cluster(&seg, "main");
    atomic_store(&msup_segment_hdr(&seg)->supervisor_start_time, msup_proc_start_time(getpid()));
    atomic_store(&msup_segment_hdr(&seg)->heartbeat_mono_ns, msup_mono_ns());
    atomic_store(&msup_segment_hdr(&seg)->supervisor_pid, (int32_t)getpid());
    uint64_t generation = atomic_fetch_add(&row->reconnect_generation, 1) + 1;
    atomic_store(&row->reconnect_at_ns, msup_now_ns());
    long before[32];
    for (int w = 0; w < workers; w++)
        before[w] = atomic_load(&ctl->worker_ok[w]);
    atomic_store(&ctl->phase, RUN);
    /* Done when every worker rebuilt and did two operations since (the
     * old pools' endSessions may hold a worker for a while). */
    bool done = false;
    for (int i = 0; i < 9000 && !done; i++) {
        atomic_store(&msup_segment_hdr(&seg)->heartbeat_mono_ns, msup_mono_ns());
        done = all_acked(&seg, row_index, generation, workers);
        for (int w = 0; w < workers && done; w++)
            done = atomic_load(&ctl->worker_ok[w]) >= before[w] + 2;
        nap_ms(10);
    }
    CU_ASSERT(done);
    long app_max = test_peer_stat(proxy, "handshakes.app_max"), all_max = test_peer_stat(proxy, "handshakes.all_max");
    long app_total = test_peer_stat(proxy, "handshakes.app"), bypass = test_peer_stat(proxy, "bypass.count");
    long conn_max = test_peer_stat(proxy, "conn.max");
    printf("\n    storm: %d workers, %ld application handshakes, at most %ld at once (%ld with the monitors), "
           "%ld bypassing (max_connecting %u), conn.max %ld (budget %u) ",
           workers, app_total, app_max, all_max, bypass, max_connecting, conn_max, max_connections);
    if (app_max > (long)max_connecting || bypass > 0) {
        char reply[8192];
        test_peer_command(proxy, "{\"cmd\":\"log\"}", reply, sizeof reply);
        printf("\n    the proxy's log: %.1500s\n", reply);
    }
    CU_ASSERT(app_total >= workers); /* every worker connected anew */
    CU_ASSERT(app_max >= 1);
    CU_ASSERT(app_max <= (long)max_connecting);
    CU_ASSERT(all_max <= (long)max_connecting + workers); /* + one monitor per new pool */
    CU_ASSERT_EQUAL(bypass, 0);
    CU_ASSERT(conn_max <= (long)max_connections);

    atomic_store(&ctl->phase, STOP);
    for (int w = 0; w < workers; w++)
        CU_ASSERT_EQUAL(wait_child(pids[w], 60000), 0);
    CU_ASSERT_EQUAL(atomic_load(&main_line(&seg)->budget_in_use), 0);
    CU_ASSERT_EQUAL(atomic_load(&main_line(&seg)->budget_connecting), 0);
    atomic_store(&msup_segment_hdr(&seg)->supervisor_pid, 0);
    msup_segment_close(&seg);
    munmap(ctl, sizeof *ctl);
    proxied_stop(&f, &proxy);
}

/* ---- a budget lowered by reload: trimmed as clients come back ---- */

typedef struct holder {
    mongosup_t *h;
    pthread_barrier_t *held, *lowered;
    bool ok;
} holder_t;

static void *hold_thread(void *arg)
{
    holder_t *t = arg;
    mongosup_error_t error;
    mongoc_client_t *client = mongosup_checkout(t->h, "main", &error);
    t->ok = client != NULL && wfix_ping(client, NULL);
    pthread_barrier_wait(t->held);
    pthread_barrier_wait(t->lowered);
    /* In flight after the budget went down: never closed under us. */
    t->ok = t->ok && wfix_ping(client, NULL) && wfix_ping(client, NULL);
    if (client != NULL)
        mongosup_checkin(t->h, client, NULL);
    return NULL;
}

static bool peer_conns_at_most(void *arg)
{
    wfix_t *f = arg;
    long n = wfix_peer_stat(f, "conn.current");
    return n >= 0 && n <= 4;
}

static bool budget_at_most_4(void *arg)
{
    msup_reg_row_t *row = arg;
    return atomic_load(&row->budget_in_use) <= 4;
}

static void test_lowered_budget(void)
{
    enum { THREADS = 8 };
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start(&f, "blower", "max_pool_size = 8; max_connections = 40; wait_queue_timeout_ms = 30000;",
                               NULL));
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_reg_row_t *row = main_line(&seg);
    /* A live supervisor (its limits are the ones workers enforce). */
    play_supervisor(&seg);

    pthread_barrier_t held, lowered;
    pthread_barrier_init(&held, NULL, THREADS + 1);
    pthread_barrier_init(&lowered, NULL, THREADS + 1);
    holder_t t[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        t[i] = (holder_t){.h = h, .held = &held, .lowered = &lowered};
        pthread_create(&th[i], NULL, hold_thread, &t[i]);
    }
    pthread_barrier_wait(&held);
    CU_ASSERT_EQUAL(atomic_load(&row->budget_in_use), THREADS + 1); /* 8 clients + the monitor */
    /* The test plays a reload: the control row's limit.  A forged line
     * limit would change nothing (nobody reads one from the line). */
    msup_budget_apply_limits(&row->limits, 1, 1);
    msup_budget_apply_limits(&main_row(&seg)->limits, 4, 0);
    pthread_barrier_wait(&lowered);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT(t[i].ok);
    }
    pthread_barrier_destroy(&held);
    pthread_barrier_destroy(&lowered);
    /* The upkeep notices the lower budget (within its 50 ms budget tick)
     * and sheds the idle clients; checkins shed from then on. */
    CU_ASSERT(wfix_wait_for(budget_at_most_4, row, 3000));
    CU_ASSERT(wfix_wait_for(peer_conns_at_most, &f, 3000));
    msup_totals_t tot;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &tot));
    CU_ASSERT(tot.clients_destroyed >= THREADS - 3);
    CU_ASSERT_EQUAL(tot.checkout_timeouts, 0);

    /* From now on the pool never grows past the lower budget. */
    CU_ASSERT(test_peer_command(f.peer, "{\"cmd\":\"delay\",\"ms\":5,\"command\":\"ping\"}", NULL, 0));
    CU_ASSERT(test_peer_command(f.peer, "{\"cmd\":\"reset_stats\"}", NULL, 0));
    ctl_t *ctl = ctl_new();
    thread_arg_t arg = {.h = h, .ctl = ctl, .ops = msup_test_under_valgrind() ? 3 : 20};
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, fixed_ops_thread, &arg);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    CU_ASSERT_EQUAL(atomic_load(&ctl->ok), (long)THREADS * arg.ops);
    CU_ASSERT_EQUAL(atomic_load(&ctl->failed), 0);
    CU_ASSERT(wfix_peer_stat(&f, "conn.max") <= 4);
    CU_ASSERT(atomic_load(&row->budget_in_use) <= 4);
    CU_ASSERT(mongosup_detach(&h, 5000));
    CU_ASSERT_EQUAL(atomic_load(&row->budget_in_use), 0);
    munmap(ctl, sizeof *ctl);
    msup_segment_close(&seg);
    wfix_stop(&f);
}

/* ---- a budget shared across hosts (fleet), without a live supervisor ---- */

/* The cap a worker enforces on its own for a cluster of a fleet budget is
 * the host's floor, not its max_connections: once this host's supervisor
 * is gone its lease expires and the other hosts take the rest of the room
 * (docs/fleet.md).  With a live supervisor the control row's cap rules. */
static void test_fleet_floor_without_supervisor(void)
{
    wfix_t f;
    const char *keys = "max_pool_size = 8; max_connections = 40; fleet_max_connections = 12;";
    CU_ASSERT_FATAL(wfix_start(&f, "fleetfloor", "max_pool_size = 8;", NULL));
    /* No etcd is contacted: only mongosupd talks to it. */
    f.top_level = "fleet = { endpoints = [\"http://127.0.0.1:1\"]; max_hosts = 4; };";
    mongosup_config_destroy(&f.cfg);
    f.cfg = wfix_load(&f, test_peer_uri(f.peer), keys);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f.cfg);
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_cluster_row_t *row = main_row(&seg);
    msup_budget_apply_limits(&row->limits, 9, 0); /* the fleet's share for this host */
    msup_header_t *hdr = play_supervisor(&seg);
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    const _Atomic uint32_t *cap = (const _Atomic uint32_t *)&h->clusters[0].limits.max_connections;
    CU_ASSERT_EQUAL(atomic_load(cap), 9);
    /* The supervisor stops beating: within the worker's 1 s segment check
     * the cap falls to the floor, 12 / max_hosts = 3. */
    atomic_store(&hdr->heartbeat_mono_ns, 1);
    atomic_store(&hdr->heartbeat_timeout_ms, 1);
    for (int i = 0; i < 300 && atomic_load(cap) != 3; i++) {
        mongoc_client_t *c = mongosup_checkout(h, "main", &error); /* the checks run on the worker's paths */
        if (c != NULL)
            mongosup_checkin(h, c, NULL);
        msup_test_sleep_ms(10);
    }
    CU_ASSERT_EQUAL(atomic_load(cap), 3);
    CU_ASSERT(mongosup_detach(&h, 5000));
    msup_segment_close(&seg);
    wfix_stop(&f);
}

/* ---- refereed by the counting proxy (tests/peer/countproxy.py) ---- */

/* The peer behind a counting proxy; the configuration points at the proxy. */
static test_peer_t *proxied_start(wfix_t *f, const char *tag, const char *keys)
{
    CU_ASSERT_FATAL(wfix_start(f, tag, keys, NULL));
    test_peer_t *proxy = test_peer_start_proxy(f->peer);
    CU_ASSERT_PTR_NOT_NULL_FATAL(proxy);
    mongosup_config_destroy(&f->cfg);
    f->cfg = wfix_load(f, test_peer_uri(proxy), keys);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->cfg);
    return proxy;
}

static void proxied_stop(wfix_t *f, test_peer_t **proxy)
{
    test_peer_stop(proxy);
    wfix_stop(f);
}

static pid_t fork_worker(const mongosup_config_t *cfg, ctl_t *ctl, int index, int threads, int think_ms,
                         bool counting)
{
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion in the test must not leave it looping */
        threaded_worker(cfg, ctl, index, threads, think_ms, counting);
    }
    return pid;
}

/* Every thread idle with its client back. */
static void pause_all(ctl_t *ctl, int threads)
{
    atomic_store(&ctl->phase, PAUSE);
    for (int i = 0; i < 3000 && atomic_load(&ctl->paused) < threads; i++)
        nap_ms(10);
    CU_ASSERT_EQUAL_FATAL(atomic_load(&ctl->paused), threads);
}

static void stop_all(ctl_t *ctl, const pid_t *pids, int workers)
{
    atomic_store(&ctl->phase, STOP);
    for (int w = 0; w < workers; w++)
        CU_ASSERT_EQUAL(wait_child(pids[w], 60000), 0);
}

/* Time bounds of the issue (1 s) stretched under valgrind, as elsewhere. */
static uint64_t bound_ms(uint64_t ms)
{
    return msup_test_under_valgrind() ? ms * 10 : ms;
}

/* 8 workers x 16 threads with no think time share a budget of 20: the proxy
 * never sees more than 20 sockets; every worker has its first application
 * connection within 1 s; after 1 s every worker holds within one token of
 * B/N (its sockets as the proxy counts them, monitor included); and the
 * budget's in_use equals the sockets open. */
static void test_fair_shares(void)
{
    bool vg = msup_test_under_valgrind();
    /* Under valgrind 2 workers share 5: a worker's first growth reserves 2
     * monitor tokens until the server's reply says it polls (docs/budget.md),
     * so the last worker to start needs 3 free at once. */
    int workers = vg ? 2 : 8, threads = vg ? 3 : 16;
    unsigned budget = vg ? 5 : 20;
    char keys[160];
    snprintf(keys, sizeof keys, "max_pool_size = 10; max_connections = %u; wait_queue_timeout_ms = 60000;", budget);
    wfix_t f;
    test_peer_t *proxy = proxied_start(&f, "bfair", keys);
    CU_ASSERT(test_peer_command(f.peer, "{\"cmd\":\"delay\",\"ms\":5,\"command\":\"ping\"}", NULL, 0));
    CU_ASSERT(test_peer_command(proxy, "{\"cmd\":\"reset_stats\"}", NULL, 0));
    ctl_t *ctl = ctl_new();
    pid_t pids[8];
    uint64_t start = msup_mono_ns();
    for (int w = 0; w < workers; w++)
        pids[w] = fork_worker(f.cfg, ctl, w, threads, 0, false);

    /* Every worker's first application connection. */
    uint64_t all_in_ms = UINT64_MAX;
    while ((msup_mono_ns() - start) / NS_PER_MS < bound_ms(3000)) {
        if (test_peer_stat(proxy, "workers.count") == workers && test_peer_stat(proxy, "workers.first_app_missing") == 0) {
            all_in_ms = (uint64_t)test_peer_stat(proxy, "workers.first_app_max_ms");
            break;
        }
        nap_ms(10);
    }
    /* Shares after 1 s: within one token of B/N, sampled for half a second. */
    while ((msup_mono_ns() - start) / NS_PER_MS < bound_ms(1000))
        nap_ms(10);
    double fair = (double)budget / workers;
    long lo_seen = 1000, hi_seen = 0;
    int off = 0, samples = 0;
    for (; samples < 25; samples++) {
        long lo = test_peer_stat(proxy, "workers.open_min"), hi = test_peer_stat(proxy, "workers.open_max");
        long count = test_peer_stat(proxy, "workers.count");
        lo_seen = lo < lo_seen ? lo : lo_seen;
        hi_seen = hi > hi_seen ? hi : hi_seen;
        if (count != workers || (double)lo < fair - 1 || (double)hi > fair + 1)
            off++;
        nap_ms(20);
    }
    long high_water = test_peer_stat(proxy, "conn.max");
    printf("\n    %d workers x %d threads, budget %u: all connected after %llu ms; shares after 1 s %ld..%ld "
           "(fair %.2f), %d of %d samples off; proxy high-water %ld ",
           workers, threads, budget, (unsigned long long)all_in_ms, lo_seen, hi_seen, fair, off, samples, high_water);
    CU_ASSERT(all_in_ms <= bound_ms(1000));
    CU_ASSERT_EQUAL(off, 0);
    CU_ASSERT(high_water <= (long)budget);
    CU_ASSERT_EQUAL(test_peer_stat(proxy, "bypass.count"), 0);

    /* Accounting: with every client back, a token is a socket the proxy sees. */
    pause_all(ctl, workers * threads);
    nap_ms(100);
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_reg_row_t *line = main_line(&seg);
    CU_ASSERT_EQUAL(atomic_load(&line->budget_in_use), test_peer_stat(proxy, "conn.current"));
    stop_all(ctl, pids, workers);
    CU_ASSERT_EQUAL(atomic_load(&ctl->failed), 0);
    if (atomic_load(&ctl->failed) != 0)
        fprintf(stderr, "last failure: %s\n", ctl->last_error);
    CU_ASSERT_EQUAL(atomic_load(&line->budget_in_use), 0);
    msup_segment_close(&seg);
    munmap(ctl, sizeof *ctl);
    proxied_stop(&f, &proxy);
}

/* Cold start with slow handshakes, checkouts that time out waiting for a
 * slot, then the server killed and restarted under load: the proxy never
 * sees more than max_connecting application connections in their
 * handshake at once, and every application connection sends mongosup's
 * ping first (none reached the application unconnected).  The monitors
 * (one per worker here) are the documented exemption. */
static void test_storm_handshakes(void)
{
    bool vg = msup_test_under_valgrind();
    int workers = vg ? 2 : 8, threads = vg ? 2 : 4;
    unsigned max_connecting = vg ? 2 : 3;
    char keys[256];
    snprintf(keys, sizeof keys,
             "max_pool_size = 4; max_connections = %d; max_connecting = %u; wait_queue_timeout_ms = %u; "
             "server_selection_timeout_ms = 3000;",
             workers * (threads + 1), max_connecting, vg ? 2000u : 250u);
    wfix_t f;
    test_peer_t *proxy = proxied_start(&f, "bhs", keys);
    CU_ASSERT(test_peer_command(proxy, "{\"cmd\":\"delay_first_reply\",\"ms\":100}", NULL, 0));
    CU_ASSERT(test_peer_command(proxy, "{\"cmd\":\"reset_stats\"}", NULL, 0));
    ctl_t *ctl = ctl_new();
    pid_t pids[8];
    for (int w = 0; w < workers; w++)
        pids[w] = fork_worker(f.cfg, ctl, w, threads, 2, true);
    /* Cold start: until every worker did a few operations. */
    bool started = false;
    for (int i = 0; i < 3000 && !started; i++) {
        started = true;
        for (int w = 0; w < workers && started; w++)
            started = atomic_load(&ctl->worker_ok[w]) >= 5;
        nap_ms(10);
    }
    CU_ASSERT(started);
    long cold_max = test_peer_stat(proxy, "handshakes.app_max"), cold_total = test_peer_stat(proxy, "handshakes.app");
    long cold_bypass = test_peer_stat(proxy, "bypass.count");

    /* The server dies under load and comes back. */
    test_peer_kill(f.peer, SIGKILL);
    nap_ms(300);
    CU_ASSERT_FATAL(test_peer_restart(f.peer));
    long before[8];
    for (int w = 0; w < workers; w++)
        before[w] = atomic_load(&ctl->worker_ok[w]);
    bool recovered = false;
    for (int i = 0; i < 3000 && !recovered; i++) {
        recovered = true;
        for (int w = 0; w < workers && recovered; w++)
            recovered = atomic_load(&ctl->worker_ok[w]) >= before[w] + 5;
        nap_ms(10);
    }
    CU_ASSERT(recovered);
    long app_max = test_peer_stat(proxy, "handshakes.app_max"), all_max = test_peer_stat(proxy, "handshakes.all_max");
    long app_total = test_peer_stat(proxy, "handshakes.app"), bypass = test_peer_stat(proxy, "bypass.count");
    char first[256] = "";
    if (bypass > 0) {
        char reply[4096];
        test_peer_command(proxy, "{\"cmd\":\"stats\"}", reply, sizeof reply);
        char *b = strstr(reply, "\"bypass\"");
        snprintf(first, sizeof first, "%.200s", b ? b : reply);
    }
    printf("\n    cold start: %ld application handshakes, at most %ld at once, %ld bypassing; "
           "after the restart: %ld in all, at most %ld at once (%ld with the monitors), %ld bypassing "
           "(max_connecting %u) %s",
           cold_total, cold_max, cold_bypass, app_total, app_max, all_max, bypass, max_connecting, first);
    CU_ASSERT(cold_total >= workers);
    CU_ASSERT(cold_max >= 1);
    CU_ASSERT(cold_max <= (long)max_connecting);
    CU_ASSERT(app_total > cold_total); /* the restart made every worker reconnect */
    CU_ASSERT(app_max <= (long)max_connecting);
    CU_ASSERT(all_max <= (long)max_connecting + workers); /* + one monitor per worker */
    CU_ASSERT_EQUAL(bypass, 0);
    stop_all(ctl, pids, workers);
    munmap(ctl, sizeof *ctl);
    proxied_stop(&f, &proxy);
}

/* A DOWN verdict shuts this host's sockets to the cluster: the idle
 * clients' tokens go back at once (the budget's in_use falls to the pools'
 * monitors, what the proxy sees), and after recovery their replacements
 * connect under the handshake slots, none bypassing. */
static void test_down_returns_idle_tokens(void)
{
    bool vg = msup_test_under_valgrind();
    int workers = 2, threads = vg ? 2 : 4;
    unsigned max_connecting = 2;
    char keys[256];
    snprintf(keys, sizeof keys,
             "max_pool_size = 4; max_connections = 20; max_connecting = %u; wait_queue_timeout_ms = %u;",
             max_connecting, vg ? 20000u : 5000u);
    wfix_t f;
    test_peer_t *proxy = proxied_start(&f, "bdown", keys);
    ctl_t *ctl = ctl_new();
    pid_t pids[2];
    for (int w = 0; w < workers; w++)
        pids[w] = fork_worker(f.cfg, ctl, w, threads, 2, true); /* count, not ping: a bypass shows */
    bool started = false;
    for (int i = 0; i < 3000 && !started; i++) {
        started = atomic_load(&ctl->worker_ok[0]) >= 20 && atomic_load(&ctl->worker_ok[1]) >= 20;
        nap_ms(10);
    }
    CU_ASSERT_FATAL(started);
    pause_all(ctl, workers * threads);
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_cluster_row_t *row = main_row(&seg);
    msup_reg_row_t *line = main_line(&seg);
    msup_header_t *hdr = play_supervisor(&seg);
    int64_t before = atomic_load(&line->budget_in_use);
    long sockets_before = test_peer_stat(proxy, "conn.current");
    CU_ASSERT(before > workers); /* monitors plus idle clients */

    uint64_t down_at = msup_mono_ns();
    atomic_store(&row->health, MSUP_HEALTH_DOWN);
    uint64_t returned_ms = UINT64_MAX;
    while ((msup_mono_ns() - down_at) / NS_PER_MS < bound_ms(5000)) {
        if (atomic_load(&line->budget_in_use) <= workers) {
            returned_ms = (msup_mono_ns() - down_at) / NS_PER_MS;
            break;
        }
        nap_ms(5);
    }
    int64_t during = atomic_load(&line->budget_in_use);
    /* The monitors' sockets were shut too; they reconnect by themselves. */
    long sockets_during = -1;
    for (int i = 0; i < 500 && (sockets_during = test_peer_stat(proxy, "conn.current")) != during; i++)
        nap_ms(10);
    printf("\n    %d workers: %lld tokens (%ld sockets) before DOWN, %lld after %llu ms (%ld sockets) ", workers,
           (long long)before, sockets_before, (long long)during, (unsigned long long)returned_ms, sockets_during);
    CU_ASSERT_EQUAL(during, workers); /* one monitor per pool: a standalone that polls */
    CU_ASSERT_EQUAL(sockets_during, during);

    /* Back UP: the replacements connect under the slots. */
    CU_ASSERT(test_peer_command(proxy, "{\"cmd\":\"delay_first_reply\",\"ms\":50}", NULL, 0));
    CU_ASSERT(test_peer_command(proxy, "{\"cmd\":\"reset_stats\"}", NULL, 0));
    atomic_store(&row->health, MSUP_HEALTH_UP);
    long ok_before[2] = {atomic_load(&ctl->worker_ok[0]), atomic_load(&ctl->worker_ok[1])};
    atomic_store(&ctl->phase, RUN);
    bool resumed = false;
    for (int i = 0; i < 3000 && !resumed; i++) {
        atomic_store(&hdr->heartbeat_mono_ns, msup_mono_ns());
        resumed = atomic_load(&ctl->worker_ok[0]) >= ok_before[0] + 20 &&
                  atomic_load(&ctl->worker_ok[1]) >= ok_before[1] + 20;
        nap_ms(10);
    }
    CU_ASSERT(resumed);
    long app = test_peer_stat(proxy, "handshakes.app"), app_max = test_peer_stat(proxy, "handshakes.app_max");
    long bypass = test_peer_stat(proxy, "bypass.count");
    printf("after UP: %ld application handshakes, at most %ld at once, %ld bypassing; %ld operations failed%s%s ", app,
           app_max, bypass, atomic_load(&ctl->failed), atomic_load(&ctl->failed) ? ", the last: " : "",
           atomic_load(&ctl->failed) ? ctl->last_error : "");
    if (app_max > (long)max_connecting || bypass > 0) {
        static char reply[65536];
        test_peer_command(proxy, "{\"cmd\":\"log\"}", reply, sizeof reply);
        printf("\n    the proxy's log: %.4000s\n", reply);
    }
    CU_ASSERT(app >= workers);
    CU_ASSERT(app_max <= (long)max_connecting);
    CU_ASSERT_EQUAL(bypass, 0);
    atomic_store(&hdr->supervisor_pid, 0);
    stop_all(ctl, pids, workers);
    msup_segment_close(&seg);
    munmap(ctl, sizeof *ctl);
    proxied_stop(&f, &proxy);
}

/* Attaches this process as a worker of f's cluster, plays a live supervisor
 * on f's segment, and runs one command through a checkout (the pool and its
 * monitor exist).  Returns the handle; *row and *hdr are the segment's. */
static mongosup_t *attach_played(wfix_t *f, msup_segment_t *seg, msup_cluster_row_t **row, msup_header_t **hdr,
                                 bool counting)
{
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f->cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_FATAL(wfix_segment(f, seg));
    *row = main_row(seg);
    *hdr = play_supervisor(seg);
    bson_error_t berr;
    mongoc_client_t *client = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    CU_ASSERT(app_command(client, counting, &berr));
    mongosup_checkin(h, client, NULL);
    return h;
}

/* A DOWN verdict that is over before the pool's monitor noticed the cutoff
 * (UP within one heartbeat): the monitor fails at its next heartbeat and
 * the driver drops every pooled socket then.  A client checked out after UP
 * and used after that failure must not reconnect inside the driver: its
 * checkout waits for the monitor's report (lib/monwatch.h).  Without the
 * wait this bypassed max_connecting in every run: the client connected at
 * once, its socket was dropped under it, and the count reconnected it. */
static void test_up_within_heartbeat(void)
{
    bool vg = msup_test_under_valgrind();
    unsigned heartbeat_ms = vg ? 4000u : 2000u;
    char keys[256];
    snprintf(keys, sizeof keys,
             "max_pool_size = 2; max_connections = 10; max_connecting = 1; heartbeat_frequency_ms = %u; "
             "wait_queue_timeout_ms = %u;",
             heartbeat_ms, 4 * heartbeat_ms);
    wfix_t f;
    test_peer_t *proxy = proxied_start(&f, "bbeat", keys);
    msup_segment_t seg;
    msup_cluster_row_t *row;
    msup_header_t *hdr;
    mongosup_t *h = attach_played(&f, &seg, &row, &hdr, true);
    mongosup_error_t error;
    bson_error_t berr;
    mongoc_client_t *client;
    /* The pool's monitor has connected and succeeded: its socket is open. */
    long sockets = 0;
    for (int i = 0; i < 1000 && (sockets = test_peer_stat(proxy, "conn.current")) < 2; i++)
        nap_ms(10);
    CU_ASSERT_FATAL(sockets == 2);
    msup_failfast_t *ff = &msup_find_wcluster(h, "main")->failfast;
    uint64_t cutoffs = atomic_load(&ff->cutoffs), waits = atomic_load(&ff->monitor_waits);

    /* DOWN: the cutoff shuts both sockets; UP as soon as it has. */
    atomic_store(&row->health, MSUP_HEALTH_DOWN);
    for (int i = 0; i < 2000 && atomic_load(&ff->cutoffs) == cutoffs; i++)
        nap_ms(1);
    CU_ASSERT_FATAL(atomic_load(&ff->cutoffs) > cutoffs);
    CU_ASSERT(test_peer_command(proxy, "{\"cmd\":\"reset_stats\"}", NULL, 0));
    nap_ms((int)MSUP_CUTOFF_FOLLOW_MS + 20); /* past the follow-up window: nothing it would shut */
    atomic_store(&row->health, MSUP_HEALTH_UP);
    atomic_store(&hdr->heartbeat_mono_ns, msup_mono_ns());

    /* A client checked out now, held past the monitor's next heartbeat. */
    uint64_t asked = msup_mono_ns();
    client = mongosup_checkout(h, "main", &error);
    uint64_t got_ms = (msup_mono_ns() - asked) / NS_PER_MS;
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    for (unsigned held = 0; held < heartbeat_ms + 1000; held += 100) {
        atomic_store(&hdr->heartbeat_mono_ns, msup_mono_ns());
        nap_ms(100);
    }
    bool ok = app_command(client, true, &berr);
    mongosup_checkin(h, client, ok ? NULL : &berr);
    long app = test_peer_stat(proxy, "handshakes.app"), bypass = test_peer_stat(proxy, "bypass.count");
    printf("\n    checkout after UP took %llu ms (heartbeat %u ms), waited for the monitor %llu time(s), "
           "%llu wait(s) ran out; then %ld application handshake(s), %ld bypassing; the held client's count %s ",
           (unsigned long long)got_ms, heartbeat_ms, (unsigned long long)(atomic_load(&ff->monitor_waits) - waits),
           (unsigned long long)atomic_load(&ff->monitor_wait_timeouts), app, bypass, ok ? "succeeded" : berr.message);
    if (bypass > 0) {
        static char reply[16384];
        test_peer_command(proxy, "{\"cmd\":\"log\"}", reply, sizeof reply);
        printf("\n    the proxy's log: %.4000s\n", reply);
    }
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(atomic_load(&ff->monitor_waits), waits + 1);
    CU_ASSERT_EQUAL(atomic_load(&ff->monitor_wait_timeouts), 0); /* the monitor's report ended it */
    CU_ASSERT(got_ms <= (uint64_t)heartbeat_ms + (vg ? 4000u : 1000u));
    CU_ASSERT(app >= 1);
    CU_ASSERT_EQUAL(bypass, 0);

    /* A DOWN that outlasts the monitor's next heartbeat: the monitor failed
     * and reported during DOWN, so the checkout after UP does not wait. */
    msup_monwatch_host_t *mon = &msup_find_wcluster(h, "main")->pool->monitors.host[0]; /* no rebuild here */
    cutoffs = atomic_load(&ff->cutoffs);
    waits = atomic_load(&ff->monitor_waits);
    atomic_store(&row->health, MSUP_HEALTH_DOWN);
    for (int i = 0; i < 2000 && atomic_load(&ff->cutoffs) == cutoffs; i++)
        nap_ms(1);
    uint64_t failures = atomic_load(&mon->failures);
    bool reported = false;
    for (unsigned waited = 0; waited < 3 * heartbeat_ms && !reported; waited += 20) {
        atomic_store(&hdr->heartbeat_mono_ns, msup_mono_ns());
        reported = atomic_load(&mon->failures) > failures && atomic_load(&mon->handled) > failures;
        nap_ms(20);
    }
    CU_ASSERT_FATAL(reported);
    atomic_store(&row->health, MSUP_HEALTH_UP);
    atomic_store(&hdr->heartbeat_mono_ns, msup_mono_ns());
    asked = msup_mono_ns();
    client = mongosup_checkout(h, "main", &error);
    got_ms = (msup_mono_ns() - asked) / NS_PER_MS;
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    ok = app_command(client, true, &berr);
    mongosup_checkin(h, client, ok ? NULL : &berr);
    printf("after a DOWN longer than a heartbeat: checkout took %llu ms, %llu wait(s) ",
           (unsigned long long)got_ms, (unsigned long long)(atomic_load(&ff->monitor_waits) - waits));
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(atomic_load(&ff->monitor_waits), waits);
    atomic_store(&hdr->supervisor_pid, 0);
    CU_ASSERT(mongosup_detach(&h, 5000));
    msup_segment_close(&seg);
    proxied_stop(&f, &proxy);
}

/* The index of host:port in the cluster's discovered hosts, or -1. */
static int discovered_host(msup_failfast_t *ff, const char *host, int port)
{
    for (uint32_t i = 0; i < ff->host_count; i++)
        if (strcmp(ff->hosts[i].host, host) == 0 && ff->hosts[i].port == port)
            return (int)i;
    return -1;
}

/* A replica-set seed that the driver replaced by the member's own name
 * (localhost in the URI, 127.0.0.1 in the set's config) left the topology
 * with its last heartbeat a success: it has no monitor to wait for at the
 * next cutoff (its server-closed event), or every connecting checkout after
 * every DOWN would wait out the whole bound.  (The fixture's segment names
 * the standalone peer's URI: the worker warns of the mismatch, which
 * changes nothing here.) */
static void test_replaced_seed_not_awaited(void)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start(&f, "bseed", "max_connecting = 2;", NULL));
    test_peer_t *rs = test_peer_start("rs", 1, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rs);
    int port = test_peer_port(rs, 0);
    char uri[128];
    snprintf(uri, sizeof uri, "mongodb://localhost:%d/?replicaSet=rs0", port);
    mongosup_config_destroy(&f.cfg);
    f.cfg = wfix_load(&f, uri, "max_connecting = 2;");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f.cfg);
    msup_segment_t seg;
    msup_cluster_row_t *row;
    msup_header_t *hdr;
    mongosup_t *h = attach_played(&f, &seg, &row, &hdr, false);
    mongosup_error_t error;
    bson_error_t berr;
    mongoc_client_t *client;
    msup_wcluster_t *c = msup_find_wcluster(h, "main");
    msup_failfast_t *ff = &c->failfast;
    msup_monwatch_t *w = &c->pool->monitors; /* no rebuild here */
    /* The seed answered (a success), then left; the member is monitored. */
    int seed = -1, member = -1;
    bool settled = false;
    for (int i = 0; i < 1000 && !settled; i++) {
        seed = discovered_host(ff, "localhost", port);
        member = discovered_host(ff, "127.0.0.1", port);
        settled = seed >= 0 && member >= 0 && atomic_load(&w->host[seed].ok_started) > 0 &&
                  atomic_load(&w->host[member].ok) == 1;
        if (!settled)
            nap_ms(10);
    }
    CU_ASSERT_FATAL(settled);

    /* DOWN, long enough for the member's monitor to fail and report. */
    uint64_t cutoffs = atomic_load(&ff->cutoffs), waits = atomic_load(&ff->monitor_waits);
    uint64_t failures = atomic_load(&w->host[member].failures);
    atomic_store(&row->health, MSUP_HEALTH_DOWN);
    bool reported = false;
    for (int i = 0; i < 1000 && !reported; i++) {
        atomic_store(&hdr->heartbeat_mono_ns, msup_mono_ns());
        reported = atomic_load(&ff->cutoffs) > cutoffs && atomic_load(&w->host[member].failures) > failures &&
                   atomic_load(&w->host[member].handled) > failures;
        nap_ms(10);
    }
    CU_ASSERT_FATAL(reported);
    atomic_store(&row->health, MSUP_HEALTH_UP);
    atomic_store(&hdr->heartbeat_mono_ns, msup_mono_ns());
    uint64_t asked = msup_mono_ns();
    client = mongosup_checkout(h, "main", &error);
    uint64_t got_ms = (msup_mono_ns() - asked) / NS_PER_MS;
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    bool ok = wfix_ping(client, &berr);
    mongosup_checkin(h, client, ok ? NULL : &berr);
    printf("\n    seed %d and member %d of %u hosts; after DOWN and UP the checkout took %llu ms, %llu wait(s) ", seed,
           member, ff->host_count, (unsigned long long)got_ms,
           (unsigned long long)(atomic_load(&ff->monitor_waits) - waits));
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(atomic_load(&ff->monitor_waits), waits);
    atomic_store(&hdr->supervisor_pid, 0);
    CU_ASSERT(mongosup_detach(&h, 5000));
    msup_segment_close(&seg);
    test_peer_stop(&rs);
    wfix_stop(&f);
}

/* A pool rebuild (a reconnect's generation bump) under saturation and a
 * budget smaller than the workers want: old pools' clients count until
 * they are closed, so the proxy never sees more sockets than the budget,
 * and once the clients are back the budget's in_use equals the sockets. */
static void test_rebuild_accounting(void)
{
    bool vg = msup_test_under_valgrind();
    int workers = vg ? 2 : 4, threads = vg ? 2 : 4;
    unsigned budget = vg ? 6 : 14;
    char keys[256];
    snprintf(keys, sizeof keys,
             "max_pool_size = 4; max_connections = %u; max_connecting = 2; reconnect_window_ms = 0; "
             "wait_queue_timeout_ms = 60000;",
             budget);
    wfix_t f;
    test_peer_t *proxy = proxied_start(&f, "brebuild", keys);
    ctl_t *ctl = ctl_new();
    pid_t pids[4];
    for (int w = 0; w < workers; w++)
        pids[w] = fork_worker(f.cfg, ctl, w, threads, 0, true);
    bool started = false;
    for (int i = 0; i < 3000 && !started; i++) {
        started = true;
        for (int w = 0; w < workers && started; w++)
            started = atomic_load(&ctl->worker_ok[w]) >= 20;
        nap_ms(10);
    }
    CU_ASSERT_FATAL(started);
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_cluster_row_t *row = main_row(&seg);
    msup_reg_row_t *line = main_line(&seg);
    uint32_t row_index = (uint32_t)msup_segment_find_cluster(&seg, "main");
    msup_header_t *hdr = play_supervisor(&seg);
    CU_ASSERT(test_peer_command(proxy, "{\"cmd\":\"reset_stats\"}", NULL, 0));
    uint64_t generation = atomic_fetch_add(&row->reconnect_generation, 1) + 1;
    atomic_store(&row->reconnect_at_ns, msup_now_ns());
    long before[4];
    for (int w = 0; w < workers; w++)
        before[w] = atomic_load(&ctl->worker_ok[w]);
    bool done = false;
    uint64_t start = msup_mono_ns(), rebuilt_ms = 0;
    for (int i = 0; i < 6000 && !done; i++) {
        atomic_store(&hdr->heartbeat_mono_ns, msup_mono_ns());
        done = all_acked(&seg, row_index, generation, workers);
        for (int w = 0; w < workers && done; w++)
            done = atomic_load(&ctl->worker_ok[w]) >= before[w] + 20;
        nap_ms(5);
    }
    rebuilt_ms = (msup_mono_ns() - start) / NS_PER_MS;
    CU_ASSERT(done);
    long during_max = test_peer_stat(proxy, "conn.max");
    pause_all(ctl, workers * threads);
    /* Every client back: tokens and sockets must agree exactly (the
     * proxy sees a close a moment after the worker gave its token back). */
    int64_t tokens = -1;
    long sockets = -2;
    for (int i = 0; i < 300; i++) {
        tokens = atomic_load(&line->budget_in_use);
        sockets = test_peer_stat(proxy, "conn.current");
        if (tokens == sockets)
            break;
        nap_ms(10);
    }
    printf("\n    %d workers x %d threads, budget %u: rebuilt in %llu ms, at most %ld sockets meanwhile; "
           "then %lld tokens for %ld sockets ",
           workers, threads, budget, (unsigned long long)rebuilt_ms, during_max, (long long)tokens, sockets);
    CU_ASSERT(during_max <= (long)budget);
    CU_ASSERT_EQUAL(tokens, sockets);
    CU_ASSERT_EQUAL(atomic_load(&ctl->failed), 0);
    atomic_store(&hdr->supervisor_pid, 0);
    stop_all(ctl, pids, workers);
    msup_segment_close(&seg);
    munmap(ctl, sizeof *ctl);
    proxied_stop(&f, &proxy);
}

/* Under saturation a reload lowers the budget from 40 to 8: the sockets the
 * proxy sees are within 8 within 1 s and stay there; no operation fails. */
static void test_shrink_under_saturation(void)
{
    bool vg = msup_test_under_valgrind();
    int workers = 2, threads = vg ? 4 : 16;
    unsigned high = vg ? 12 : 40, low = vg ? 6 : 8;
    char keys[160];
    snprintf(keys, sizeof keys, "max_pool_size = 20; max_connections = %u; wait_queue_timeout_ms = 60000;", high);
    wfix_t f;
    test_peer_t *proxy = proxied_start(&f, "bshrink", keys);
    CU_ASSERT(test_peer_command(f.peer, "{\"cmd\":\"delay\",\"ms\":5,\"command\":\"ping\"}", NULL, 0));
    ctl_t *ctl = ctl_new();
    pid_t pids[2];
    for (int w = 0; w < workers; w++)
        pids[w] = fork_worker(f.cfg, ctl, w, threads, 0, false);
    for (int i = 0; i < 1000 && atomic_load(&ctl->ok) == 0; i++)
        nap_ms(10); /* the first worker creates the segment */
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_cluster_row_t *row = main_row(&seg);
    msup_reg_row_t *line = main_line(&seg);
    /* A live supervisor: its control row's limits are what workers enforce. */
    msup_header_t *hdr = play_supervisor(&seg);
    long full = (long)workers * (threads + 1) < (long)high ? (long)workers * (threads + 1) : (long)high;
    for (int i = 0; i < 1000 && test_peer_stat(proxy, "conn.current") < full - 2; i++)
        nap_ms(10);
    long before = test_peer_stat(proxy, "conn.current");
    CU_ASSERT(before > (long)low);
    uint64_t lowered = msup_mono_ns();
    /* The test plays the reload: the control row's limit, then the
     * configuration generation (workers remap and take the new limits). */
    msup_budget_apply_limits(&row->limits, low, 0);
    atomic_fetch_add(&hdr->config_generation, 1);
    uint64_t within_ms = UINT64_MAX;
    while ((msup_mono_ns() - lowered) / NS_PER_MS < bound_ms(5000)) {
        if (test_peer_stat(proxy, "conn.current") <= (long)low) {
            within_ms = (msup_mono_ns() - lowered) / NS_PER_MS;
            break;
        }
        nap_ms(5);
    }
    CU_ASSERT(test_peer_command(proxy, "{\"cmd\":\"reset_stats\"}", NULL, 0));
    nap_ms(500);
    long after_max = test_peer_stat(proxy, "conn.max");
    printf("\n    %d workers x %d threads: %ld sockets, budget %u -> %u: within it after %llu ms, at most %ld "
           "in the next 500 ms ",
           workers, threads, before, high, low, (unsigned long long)within_ms, after_max);
    CU_ASSERT(within_ms <= bound_ms(1000));
    CU_ASSERT(after_max <= (long)low);
    CU_ASSERT(atomic_load(&line->budget_in_use) <= (int64_t)low);
    stop_all(ctl, pids, workers);
    CU_ASSERT_EQUAL(atomic_load(&ctl->failed), 0);
    if (atomic_load(&ctl->failed) != 0)
        fprintf(stderr, "last failure: %s\n", ctl->last_error);
    CU_ASSERT(atomic_load(&ctl->ok) > 0);
    CU_ASSERT_EQUAL(atomic_load(&line->budget_in_use), 0);
    msup_segment_close(&seg);
    munmap(ctl, sizeof *ctl);
    proxied_stop(&f, &proxy);
}

static void test_cap_across_workers(void)
{
    cap_across_workers(false);
}

static void test_real_cap_across_workers(void)
{
    if (wfix_real_wanted("/real/worker/budget/cap-across-workers"))
        cap_across_workers(true);
}

static void test_killed_worker_tokens(void)
{
    killed_worker_tokens(false);
}

static void test_real_killed_worker_tokens(void)
{
    if (wfix_real_wanted("/real/worker/budget/killed-worker-tokens-reaped"))
        killed_worker_tokens(true);
}

static void test_real_peer_only(void)
{
    static const char *const peer_only[] = {"/real/worker/budget/reconnect-storm", "/real/worker/budget/lowered-by-reload",
                                            "/real/worker/budget/fair-shares-under-saturation",
                                            "/real/worker/budget/storm-handshakes-refereed",
                                            "/real/worker/budget/shrink-under-saturation", NULL};
    wfix_real_peer_only("/real/worker/budget/needs-peer", peer_only);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/worker/budget/cap-across-workers", test_cap_across_workers},
        {"/worker/budget/killed-worker-tokens-reaped", test_killed_worker_tokens},
        {"/worker/budget/reconnect-storm", test_reconnect_storm},
        {"/worker/budget/lowered-by-reload", test_lowered_budget},
        {"/worker/budget/fair-shares-under-saturation", test_fair_shares},
        {"/worker/budget/storm-handshakes-refereed", test_storm_handshakes},
        {"/worker/budget/shrink-under-saturation", test_shrink_under_saturation},
        {"/worker/budget/down-returns-idle-tokens", test_down_returns_idle_tokens},
        {"/worker/budget/up-within-heartbeat", test_up_within_heartbeat},
        {"/worker/budget/replaced-seed-not-awaited", test_replaced_seed_not_awaited},
        {"/worker/budget/rebuild-accounting-refereed", test_rebuild_accounting},
        {"/worker/budget/fleet-floor-without-supervisor", test_fleet_floor_without_supervisor},
        /* The same against $MONGOSUP_TEST_URI, when it names a real deployment. */
        {"/real/worker/budget/cap-across-workers", test_real_cap_across_workers},
        {"/real/worker/budget/killed-worker-tokens-reaped", test_real_killed_worker_tokens},
        {"/real/worker/budget/needs-peer", test_real_peer_only},
        {NULL, NULL},
    };
    return msup_test_main("worker_budget", tests, argc, argv);
}
