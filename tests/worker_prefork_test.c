/* worker_prefork_test.c: a master forks workers that attach and work; the segment's totals match what they counted; fork safety. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "slots.h"
#include "stats.h"
#include "testmain.h"
#include "worker.h"
#include "worker_fixture.h"

typedef struct counts {
    uint64_t ops[MSUP_OP__COUNT];
    uint64_t failed;
} counts_t;

typedef struct work_ctx {
    mongosup_t *h;
    int ops;
    int seed;
    counts_t counts;
} work_ctx_t;

/* One operation of a mix of CRUD and commands; counts its class itself. */
static bool one_op(mongoc_client_t *client, const char *db, int i, counts_t *c)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(client, db, "items");
    bson_error_t error;
    bool ok = true;
    bson_t *doc = BCON_NEW("k", BCON_INT32(i));
    switch (i % 5) {
    case 0:
        ok = mongoc_collection_insert_one(coll, doc, NULL, NULL, &error);
        c->ops[MSUP_OP_WRITE]++;
        break;
    case 1: {
        bson_t *opts = BCON_NEW("limit", BCON_INT64(1), "singleBatch", BCON_BOOL(true));
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, doc, opts, NULL);
        const bson_t *out;
        while (mongoc_cursor_next(cur, &out))
            ;
        ok = !mongoc_cursor_error(cur, &error);
        mongoc_cursor_destroy(cur);
        bson_destroy(opts);
        c->ops[MSUP_OP_READ]++;
        break;
    }
    case 2: {
        bson_t *upd = BCON_NEW("$set", "{", "v", BCON_INT32(1), "}");
        ok = mongoc_collection_update_one(coll, doc, upd, NULL, NULL, &error);
        bson_destroy(upd);
        c->ops[MSUP_OP_WRITE]++;
        break;
    }
    case 3:
        ok = mongoc_collection_delete_one(coll, doc, NULL, NULL, &error);
        c->ops[MSUP_OP_WRITE]++;
        break;
    default:
        ok = wfix_ping(client, &error);
        c->ops[MSUP_OP_COMMAND]++;
        break;
    }
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
    if (!ok)
        c->failed++;
    return ok;
}

static void *work_thread(void *arg)
{
    work_ctx_t *w = arg;
    for (int i = 0; i < w->ops; i++) {
        mongosup_error_t error;
        mongoc_client_t *client = mongosup_checkout(w->h, "main", &error);
        if (client == NULL) {
            w->counts.failed++;
            continue;
        }
        one_op(client, mongosup_client_database(w->h, client), w->seed + i, &w->counts);
        mongosup_checkin(w->h, client, NULL);
    }
    return NULL;
}

/* A worker: attach, two threads of work, detach; counts go to the pipe. */
static void worker_main(const mongosup_config_t *cfg, int ops, int fd)
{
    counts_t total = {0};
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(cfg, &error);
    if (h == NULL) {
        total.failed = 1000000;
    } else {
        work_ctx_t w[2] = {{.h = h, .ops = ops / 2, .seed = 0}, {.h = h, .ops = ops - ops / 2, .seed = 1}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&th[i], NULL, work_thread, &w[i]);
        for (int i = 0; i < 2; i++) {
            pthread_join(th[i], NULL);
            for (int k = 0; k < MSUP_OP__COUNT; k++)
                total.ops[k] += w[i].counts.ops[k];
            total.failed += w[i].counts.failed;
        }
        if (!mongosup_detach(&h, 5000))
            total.failed++;
    }
    ssize_t n = write(fd, &total, sizeof total);
    close(fd);
    _exit(n == (ssize_t)sizeof total ? 0 : 3);
}

/* Waits for a child at most timeout_ms; kills it past that (a hang fails the test). */
static int wait_child(pid_t pid, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* Runs against the peer, or against $MONGOSUP_TEST_URI when `real`. */
static void prefork_totals(bool real)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start_on(&f, "prefork", "max_pool_size = 4;", NULL, real));
    bool vg = msup_test_under_valgrind();
    int workers = vg ? 2 : 8, ops = vg ? 40 : 1000;
    pid_t pids[8];
    int fds[8];
    for (int i = 0; i < workers; i++) {
        int p[2];
        CU_ASSERT_FATAL(pipe(p) == 0);
        pids[i] = fork();
        CU_ASSERT_FATAL(pids[i] >= 0);
        if (pids[i] == 0) {
            close(p[0]);
            worker_main(f.cfg, ops, p[1]);
        }
        close(p[1]);
        fds[i] = p[0];
    }
    counts_t expect = {0};
    for (int i = 0; i < workers; i++) {
        counts_t c = {0};
        CU_ASSERT(read(fds[i], &c, sizeof c) == (ssize_t)sizeof c);
        close(fds[i]);
        CU_ASSERT_EQUAL(wait_child(pids[i], vg ? 300000 : 60000), 0);
        for (int k = 0; k < MSUP_OP__COUNT; k++)
            expect.ops[k] += c.ops[k];
        expect.failed += c.failed;
    }
    CU_ASSERT_EQUAL(expect.failed, 0);
    CU_ASSERT_EQUAL(expect.ops[MSUP_OP_READ] + expect.ops[MSUP_OP_WRITE] + expect.ops[MSUP_OP_COMMAND],
                    (uint64_t)(workers * ops));

    /* The driver ends the implicit sessions when a pool is destroyed: one
     * more command per worker that the workers did not issue themselves.
     * The peer counts them; a real deployment does not tell, so there the
     * extra commands are bounded instead. */
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.ops[MSUP_OP_READ], expect.ops[MSUP_OP_READ]);
    CU_ASSERT_EQUAL(t.ops[MSUP_OP_WRITE], expect.ops[MSUP_OP_WRITE]);
    long end_sessions = real ? (long)(t.ops[MSUP_OP_COMMAND] - expect.ops[MSUP_OP_COMMAND])
                             : wfix_peer_stat(&f, "cmd.endSessions");
    CU_ASSERT(t.ops[MSUP_OP_COMMAND] >= expect.ops[MSUP_OP_COMMAND]);
    CU_ASSERT(end_sessions >= 0 && end_sessions <= workers);
    CU_ASSERT_EQUAL(t.ops[MSUP_OP_COMMAND], expect.ops[MSUP_OP_COMMAND] + (uint64_t)end_sessions);
    CU_ASSERT_EQUAL(t.hist_count, msup_totals_ops(&t));
    uint64_t buckets = 0;
    for (uint32_t b = 0; b < MSUP_HIST_BUCKETS; b++)
        buckets += t.hist[b];
    CU_ASSERT_EQUAL(buckets, t.hist_count);
    CU_ASSERT_EQUAL(t.checkouts, (uint64_t)(workers * ops));
    CU_ASSERT_EQUAL(msup_totals_failures(&t), 0);
    CU_ASSERT_EQUAL(t.pool_in_use, 0);
    /* The peer agrees on the writes (a real deployment's counters are
     * shared with everyone else's traffic). */
    if (real)
        wfix_skip_needs_peer("/real/worker/prefork/totals-match-workers: the server's write counters");
    else
        CU_ASSERT_EQUAL((uint64_t)(wfix_peer_stat(&f, "cmd.insert") + wfix_peer_stat(&f, "cmd.update") +
                                   wfix_peer_stat(&f, "cmd.delete")),
                        expect.ops[MSUP_OP_WRITE]);

    /* Eight workers mapped the registered row: one registry row only. */
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    int rows = 0;
    for (uint32_t i = 0; i < seg.max_clusters; i++)
        rows += atomic_load(&msup_segment_reg(&seg, i)->row_state) == MSUP_ROW_ACTIVE &&
                strcmp(msup_segment_reg(&seg, i)->name, "main") == 0;
    CU_ASSERT_EQUAL(rows, 1);
    CU_ASSERT_EQUAL(atomic_load(&seg.shdr->cluster_count), 1);

    /* Every worker folded and freed its own slot at detach, exactly once:
     * nothing is left for a reaper, and the totals do not move. */
    CU_ASSERT_EQUAL(msup_slots_reap_all(&seg), 0);
    uint32_t active = atomic_load(&seg.retired->active) & 1u;
    CU_ASSERT_EQUAL(atomic_load(&seg.retired->slots_reaped[active]), (uint64_t)workers);
    for (uint32_t i = 0; i < seg.max_workers; i++)
        CU_ASSERT_EQUAL(atomic_load(&msup_segment_slot(&seg, i)->state), MSUP_SLOT_FREE);
    msup_segment_close(&seg);
    msup_totals_t after;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &after));
    CU_ASSERT_EQUAL(after.ops[MSUP_OP_READ], t.ops[MSUP_OP_READ]);
    CU_ASSERT_EQUAL(after.ops[MSUP_OP_WRITE], t.ops[MSUP_OP_WRITE]);
    CU_ASSERT_EQUAL(after.ops[MSUP_OP_COMMAND], t.ops[MSUP_OP_COMMAND]);
    CU_ASSERT_EQUAL(after.hist_count, t.hist_count);
    wfix_stop(&f);
}

static void test_prefork_totals(void)
{
    prefork_totals(false);
}

static void test_real_prefork_totals(void)
{
    if (wfix_real_wanted("/real/worker/prefork/totals-match-workers"))
        prefork_totals(true);
}

/* A master that made a pool before forking: children are told to attach,
 * abandon the inherited handle without hanging, and work; the parent too. */
static void fork_safety(bool real)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start_on(&f, "forksafe", "max_pool_size = 4;", NULL, real));
    mongosup_error_t error;
    mongosup_t *master = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(master);
    mongoc_client_t *client = mongosup_checkout(master, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    bson_error_t berr;
    CU_ASSERT(wfix_ping(client, &berr));
    mongosup_checkin(master, client, NULL);

    int children = msup_test_under_valgrind() ? 1 : 3;
    pid_t pids[3];
    for (int i = 0; i < children; i++) {
        pids[i] = fork();
        CU_ASSERT_FATAL(pids[i] >= 0);
        if (pids[i] == 0) {
            int rc = 0;
            mongosup_error_t e;
            mongosup_t *inherited = master;
            if (mongosup_checkout(inherited, "main", &e) != NULL || e.code != MONGOSUP_E_FORKED)
                rc = 10;
            if (strstr(e.message, "mongosup_attach") == NULL)
                rc = 11;
            mongosup_checkin(inherited, client, NULL); /* ignored: the parent's client */
            if (!mongosup_detach(&inherited, 100) || inherited != NULL) /* abandons, never destroys */
                rc = 12;
            mongosup_t *mine = mongosup_attach(f.cfg, &e);
            if (mine == NULL)
                _exit(13);
            mongoc_client_t *cl = mongosup_checkout(mine, "main", &e);
            bson_error_t be;
            if (cl == NULL || !wfix_ping(cl, &be))
                rc = 14;
            if (cl != NULL)
                mongosup_checkin(mine, cl, NULL);
            if (!mongosup_detach(&mine, 2000))
                rc = 15;
            _exit(rc);
        }
    }
    for (int i = 0; i < children; i++)
        CU_ASSERT_EQUAL(wait_child(pids[i], msup_test_under_valgrind() ? 120000 : 20000), 0);

    client = mongosup_checkout(master, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    CU_ASSERT(wfix_ping(client, &berr));
    mongosup_checkin(master, client, NULL);
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.checkouts, (uint64_t)(2 + children));
    CU_ASSERT(mongosup_detach(&master, 2000));
    wfix_stop(&f);
}

static void test_fork_safety(void)
{
    fork_safety(false);
}

static void test_real_fork_safety(void)
{
    if (wfix_real_wanted("/real/worker/prefork/fork-safety"))
        fork_safety(true);
}

/* ---- fork while another thread holds the library's mutexes ---- */

typedef struct holder {
    mongosup_t *h;
    pthread_barrier_t *locked, *forked;
} holder_t;

static void *hold_mutexes(void *arg)
{
    holder_t *x = arg;
    msup_wcluster_t *c = &x->h->clusters[0];
    pthread_mutex_lock(&x->h->map_mu);
    pthread_mutex_lock(&c->mu);
    pthread_mutex_lock(&x->h->upkeep_mu);
    pthread_barrier_wait(x->locked);
    pthread_barrier_wait(x->forked);
    pthread_mutex_unlock(&x->h->upkeep_mu);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_unlock(&x->h->map_mu);
    return NULL;
}

/* The child inherits those mutexes locked by a thread it does not have:
 * nothing it calls may take them (the inherited handle is refused or
 * abandoned without locking), and a new handle works. */
static void fork_with_mutexes_held(bool real)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start_on(&f, "forklock", "max_pool_size = 4;", NULL, real));
    mongosup_error_t error;
    mongosup_t *master = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(master);
    mongoc_client_t *client = mongosup_checkout(master, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);

    pthread_barrier_t locked, forked;
    pthread_barrier_init(&locked, NULL, 2);
    pthread_barrier_init(&forked, NULL, 2);
    holder_t x = {.h = master, .locked = &locked, .forked = &forked};
    pthread_t th;
    pthread_create(&th, NULL, hold_mutexes, &x);
    pthread_barrier_wait(&locked);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = 0;
        mongosup_error_t e;
        mongosup_t *inherited = master;
        if (mongosup_checkout(inherited, "main", &e) != NULL || e.code != MONGOSUP_E_FORKED)
            rc = 10;
        if (mongosup_run(inherited, "main", NULL, NULL, &e) || e.code != MONGOSUP_E_INVALID_ARG)
            rc = 11;
        mongosup_checkin(inherited, client, NULL);
        if (mongosup_draining(inherited) || mongosup_worker_slot(inherited) != -1)
            rc = 12;
        if (!mongosup_detach(&inherited, 100))
            rc = 13;
        mongosup_t *mine = mongosup_attach(f.cfg, &e);
        if (mine == NULL)
            _exit(14);
        mongoc_client_t *cl = mongosup_checkout(mine, "main", &e);
        if (cl == NULL || !wfix_ping(cl, NULL))
            rc = 15;
        if (cl != NULL)
            mongosup_checkin(mine, cl, NULL);
        if (!mongosup_detach(&mine, 2000))
            rc = 16;
        _exit(rc);
    }
    pthread_barrier_wait(&forked);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&locked);
    pthread_barrier_destroy(&forked);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL(wait_child(pid, msup_test_under_valgrind() ? 120000 : 20000), 0);
    mongosup_checkin(master, client, NULL);
    CU_ASSERT(mongosup_detach(&master, 2000));
    wfix_stop(&f);
}

static void test_fork_with_mutexes_held(void)
{
    fork_with_mutexes_held(false);
}

static void test_real_fork_with_mutexes_held(void)
{
    if (wfix_real_wanted("/real/worker/prefork/fork-with-mutexes-held"))
        fork_with_mutexes_held(true);
}

/* No supervisor: max_workers + 8 worker lifetimes one after the other
 * (as a prefork server recycles children) never fail with NO_SLOT: each
 * worker frees its own slot at detach, its counters folded exactly once.
 * (Before, nothing freed an EXITED slot without a supervisor.) */
static void test_lifetimes_without_supervisor(void)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start(&f, "lifetimes", NULL, NULL));
    uint32_t lifetimes = f.cfg->max_workers + 8;
    int no_slot = 0, failed = 0;
    for (uint32_t i = 0; i < lifetimes; i++) {
        pid_t pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
            mongosup_error_t error;
            mongosup_t *h = mongosup_attach(f.cfg, &error);
            if (h == NULL)
                _exit(error.code == MONGOSUP_E_NO_SLOT ? 10 : 11);
            mongoc_client_t *c = mongosup_checkout(h, "main", &error);
            if (c == NULL)
                _exit(12);
            mongosup_checkin(h, c, NULL);
            _exit(mongosup_detach(&h, 2000) ? 0 : 13);
        }
        int rc = wait_child(pid, 20000);
        no_slot += rc == 10;
        failed += rc != 0;
    }
    CU_ASSERT_EQUAL(no_slot, 0);
    CU_ASSERT_EQUAL(failed, 0);
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.checkouts, (uint64_t)lifetimes); /* exactly once each */
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    CU_ASSERT_FALSE(msup_supervisor_alive(&seg));
    uint32_t active = atomic_load(&seg.retired->active) & 1u;
    CU_ASSERT_EQUAL(atomic_load(&seg.retired->slots_reaped[active]), (uint64_t)lifetimes);
    msup_segment_close(&seg);
    wfix_stop(&f);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/worker/prefork/totals-match-workers", test_prefork_totals},
        {"/worker/prefork/fork-safety", test_fork_safety},
        {"/worker/prefork/lifetimes-without-supervisor", test_lifetimes_without_supervisor},
        {"/worker/prefork/fork-with-mutexes-held", test_fork_with_mutexes_held},
        /* The same against $MONGOSUP_TEST_URI, when it names a real deployment. */
        {"/real/worker/prefork/totals-match-workers", test_real_prefork_totals},
        {"/real/worker/prefork/fork-safety", test_real_fork_safety},
        {"/real/worker/prefork/fork-with-mutexes-held", test_real_fork_with_mutexes_held},
        {NULL, NULL},
    };
    int rc = msup_test_main("worker_prefork", tests, argc, argv);
    mongoc_cleanup();
    return rc;
}
