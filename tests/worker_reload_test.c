/* worker_reload_test.c: a worker takes a reloaded configuration at its next checkout, and follows a recreated segment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "slots.h"
#include "stats.h"
#include "testmain.h"
#include "worker_fixture.h"

/* Rewrites the fixture's configuration file with these cluster blocks
 * ("name = { mongo_uri = ...; ... };" each) on the fixture's segment. */
static bool write_conf(const wfix_t *f, const char *clusters)
{
    FILE *fp = fopen(f->conf_path, "w");
    if (fp == NULL)
        return false;
    fprintf(fp,
            "segment = { name = \"%s\"; max_workers = 32; max_clusters = 4; };\n"
            "default_environment = \"test\";\n"
            "environments = { test = { clusters = {\n%s\n}; }; };\n",
            f->segment, clusters);
    return fclose(fp) == 0;
}

/* A cluster on the deployment under test (the peer or $MONGOSUP_TEST_URI). */
static char *cluster_block(const wfix_t *f, const char *name, const char *keys)
{
    char *uri = wfix_uri_with(f, NULL);
    char *block = malloc(1024);
    snprintf(block, 1024,
             "  %s = { mongo_uri = \"%s\"; database_name = \"%s\"; "
             "heartbeat_frequency_ms = 500; server_selection_timeout_ms = 2000; %s };\n",
             name, uri, f->database, keys);
    free(uri);
    return block;
}

/* The test plays the supervisor's reload: a new file, then a bump. */
static void bump_generation(const wfix_t *f)
{
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(f, &seg));
    atomic_fetch_add(&msup_segment_hdr(&seg)->config_generation, 1);
    msup_segment_close(&seg);
}

static uint64_t ms_since(uint64_t start)
{
    return (msup_mono_ns() - start) / 1000000;
}

static void pool_size_and_timeout(bool real)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start_on(&f, "rlsize", "", NULL, real));
    char *one = cluster_block(&f, "main", "max_pool_size = 2; wait_queue_timeout_ms = 200;");
    CU_ASSERT_FATAL(write_conf(&f, one));
    free(one);
    mongosup_error_t error;
    mongosup_config_t *cfg = mongosup_config_load(f.conf_path, NULL, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    mongosup_t *h = mongosup_attach(cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    mongoc_client_t *c[4] = {NULL};
    c[0] = mongosup_checkout(h, "main", &error);
    c[1] = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL(c[0]);
    CU_ASSERT_PTR_NOT_NULL(c[1]);
    uint64_t t0 = msup_mono_ns();
    CU_ASSERT_PTR_NULL(mongosup_checkout(h, "main", &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_POOL_TIMEOUT);
    uint64_t waited = ms_since(t0); /* one reading for both bounds; the upper one scaled under valgrind */
    CU_ASSERT(waited >= 190 && waited < msup_test_slack_ms(1000));

    char *bigger = cluster_block(&f, "main", "max_pool_size = 3; wait_queue_timeout_ms = 600;");
    CU_ASSERT_FATAL(write_conf(&f, bigger));
    free(bigger);
    bump_generation(&f);
    /* The next checkout sees max_pool_size 3 (two clients are still out
     * of the old pool, which is retired when they come back). */
    c[2] = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL(c[2]);
    CU_ASSERT(c[2] == NULL || wfix_ping(c[2], NULL));
    t0 = msup_mono_ns();
    CU_ASSERT_PTR_NULL(mongosup_checkout(h, "main", &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_POOL_TIMEOUT);
    CU_ASSERT(ms_since(t0) >= 590); /* the new wait_queue_timeout_ms */
    CU_ASSERT_PTR_NOT_NULL(strstr(error.message, "600 ms"));
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.pool_max, 3);
    CU_ASSERT_EQUAL(t.reconnects, 1); /* rebuilt like a reconnect */
    for (int i = 0; i < 3; i++)
        mongosup_checkin(h, c[i], NULL);
    /* The application's configuration was not touched. */
    CU_ASSERT_EQUAL(cfg->clusters[0].max_pool_size, 2);
    CU_ASSERT(mongosup_detach(&h, 2000));
    mongosup_config_destroy(&cfg);
    wfix_stop(&f);
}

/* A prefork master loads its configuration, the supervisor applies a
 * newer file (reload), then a worker attaches with the master's copy: it
 * reads the file again at attach (the generation it sees is not news to it),
 * and a configuration loaded after the supervisor's is not read again. */
static void test_loaded_before_reload(void)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start(&f, "rlfork", "", NULL));
    char *two = cluster_block(&f, "main", "max_pool_size = 2;");
    CU_ASSERT_FATAL(write_conf(&f, two));
    free(two);
    mongosup_error_t error;
    mongosup_config_t *master = mongosup_config_load(f.conf_path, NULL, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(master);
    char *five = cluster_block(&f, "main", "max_pool_size = 5;");
    CU_ASSERT_FATAL(write_conf(&f, five));
    free(five);
    /* The test plays the supervisor's reload of the new file. */
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    atomic_store(&msup_segment_hdr(&seg)->config_applied_mono_ns, msup_mono_ns());
    atomic_fetch_add(&msup_segment_hdr(&seg)->config_generation, 1);
    mongosup_t *h = mongosup_attach(master, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    mongoc_client_t *c = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL(c);
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.pool_max, 5);
    mongosup_checkin(h, c, NULL);
    CU_ASSERT(mongosup_detach(&h, 2000));
    /* Loaded after the supervisor applied it: taken as it is (the file
     * says 3 now, unapplied; the worker keeps what it was given, 5). */
    mongosup_config_t *fresh = mongosup_config_load(f.conf_path, NULL, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fresh);
    char *three = cluster_block(&f, "main", "max_pool_size = 3;");
    CU_ASSERT_FATAL(write_conf(&f, three));
    free(three);
    h = mongosup_attach(fresh, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    c = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL(c);
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.pool_max, 5);
    mongosup_checkin(h, c, NULL);
    CU_ASSERT(mongosup_detach(&h, 2000));
    msup_segment_close(&seg);
    mongosup_config_destroy(&fresh);
    mongosup_config_destroy(&master);
    wfix_stop(&f);
}

static void remove_and_add(bool real)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start_on(&f, "rladd", "", NULL, real));
    char *main_block = cluster_block(&f, "main", "max_pool_size = 2;");
    char *extra_block = cluster_block(&f, "extra", "max_pool_size = 2;");
    CU_ASSERT_FATAL(write_conf(&f, main_block));
    mongosup_error_t error;
    mongosup_config_t *cfg = mongosup_config_load(f.conf_path, NULL, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    mongosup_t *h = mongosup_attach(cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_PTR_NULL(mongosup_checkout(h, "extra", &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_UNKNOWN_CLUSTER);

    /* Added. */
    char both[2048];
    snprintf(both, sizeof both, "%s%s", main_block, extra_block);
    CU_ASSERT_FATAL(write_conf(&f, both));
    bump_generation(&f);
    mongoc_client_t *e = mongosup_checkout(h, "extra", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT(wfix_ping(e, NULL));
    CU_ASSERT_STRING_EQUAL(mongosup_client_database(h, e), f.database);
    mongosup_checkin(h, e, NULL);
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "extra", &t));
    CU_ASSERT_EQUAL(t.checkouts, 1);

    /* Removed, with a client of it still out: that one comes back safely. */
    mongoc_client_t *m = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_FATAL(write_conf(&f, extra_block));
    bump_generation(&f);
    CU_ASSERT_PTR_NULL(mongosup_checkout(h, "main", &error));
    CU_ASSERT_EQUAL(error.code, MONGOSUP_E_UNKNOWN_CLUSTER);
    CU_ASSERT(wfix_ping(m, NULL));
    mongosup_checkin(h, m, NULL);
    e = mongosup_checkout(h, "extra", &error);
    CU_ASSERT_PTR_NOT_NULL(e);
    mongosup_checkin(h, e, NULL);

    /* And back again. */
    CU_ASSERT_FATAL(write_conf(&f, both));
    bump_generation(&f);
    m = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL(m);
    CU_ASSERT(m == NULL || wfix_ping(m, NULL));
    mongosup_checkin(h, m, NULL);
    CU_ASSERT(mongosup_detach(&h, 2000));
    mongosup_config_destroy(&cfg);
    free(main_block);
    free(extra_block);
    wfix_stop(&f);
}

static void bad_file_keeps_settings(bool real)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start_on(&f, "rlbad", "max_pool_size = 2;", NULL, real));
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    FILE *fp = fopen(f.conf_path, "w");
    CU_ASSERT_FATAL(fp != NULL);
    fputs("segment = { this is not libconfig\n", fp);
    fclose(fp);
    bump_generation(&f);
    mongoc_client_t *c = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL(c);
    CU_ASSERT(c == NULL || wfix_ping(c, NULL));
    mongosup_checkin(h, c, NULL);
    msup_segment_t seg;
    CU_ASSERT_FATAL(wfix_segment(&f, &seg));
    msup_snapshot_t snap;
    CU_ASSERT_FATAL(msup_snapshot_take(&seg, &snap, &error));
    CU_ASSERT_EQUAL(snap.clusters[0].last_error.code, MONGOSUP_E_CONFIG);
    CU_ASSERT_EQUAL(snap.clusters[0].totals.pool_max, 2);
    msup_snapshot_free(&snap);
    msup_segment_close(&seg);
    CU_ASSERT(mongosup_detach(&h, 2000));
    wfix_stop(&f);
}

/* ---- the segment recreated under a long-lived worker ---- */

static bool recreate_segment(const wfix_t *f, bool stop_first)
{
    msup_segment_t old, fresh;
    if (!wfix_segment(f, &old))
        return false;
    if (stop_first)
        atomic_store(&msup_segment_hdr(&old)->phase, MSUP_PHASE_STOPPED);
    msup_segment_unlink(f->segment, NULL);
    msup_segment_close(&old);
    msup_geometry_t geo = {.max_workers = 32, .max_clusters = 4, .mode = 0600, .group = (gid_t)-1,
                           .environment = "test"};
    mongosup_error_t error;
    if (!msup_segment_create(f->segment, &geo, &fresh, &error)) {
        fprintf(stderr, "create: %s\n", error.message);
        return false;
    }
    msup_segment_close(&fresh);
    return true;
}

/* Our pid holds an ACTIVE slot of the segment the name refers to now. */
static bool slot_in_current_segment(void *arg)
{
    const wfix_t *f = arg;
    msup_segment_t seg;
    mongosup_error_t error;
    if (!msup_segment_open_readonly(f->segment, (uid_t)-1, &seg, &error))
        return false;
    bool found = false;
    for (uint32_t i = 0; i < seg.max_workers && !found; i++) {
        msup_slot_t *s = msup_segment_slot(&seg, i);
        found = atomic_load(&s->state) == MSUP_SLOT_ACTIVE && s->pid == getpid();
    }
    msup_segment_close(&seg);
    return found;
}

static void segment_recreated_after_stop(bool real)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start_on(&f, "rlseg", "", NULL, real));
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    for (int i = 0; i < 3; i++) {
        mongoc_client_t *c = mongosup_checkout(h, "main", &error);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        mongosup_checkin(h, c, NULL);
    }
    CU_ASSERT_FATAL(recreate_segment(&f, true));
    /* STOPPED in the old mapping: the checkout moves to the new segment. */
    mongoc_client_t *c = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(wfix_ping(c, NULL));
    mongosup_checkin(h, c, NULL);
    CU_ASSERT(slot_in_current_segment(&f));
    msup_totals_t t;
    CU_ASSERT_FATAL(wfix_totals(&f, "main", &t));
    CU_ASSERT_EQUAL(t.checkouts, 1); /* counters start from zero in the new segment */
    CU_ASSERT(t.ops[MSUP_OP_COMMAND] >= 1); /* our ping (and the old pool's endSessions) */
    CU_ASSERT(mongosup_detach(&h, 2000));
    wfix_stop(&f);
}

typedef struct busy {
    wfix_t *f;
    mongosup_t *h;
} busy_t;

static bool checkout_lands_in_new_segment(void *arg)
{
    busy_t *b = arg;
    mongosup_error_t error;
    mongoc_client_t *c = mongosup_checkout(b->h, "main", &error);
    if (c != NULL)
        mongosup_checkin(b->h, c, NULL);
    msup_totals_t t;
    return c != NULL && wfix_totals(b->f, "main", &t) && t.checkouts >= 1;
}

static void segment_replaced_while_running(bool real)
{
    wfix_t f;
    CU_ASSERT_FATAL(wfix_start_on(&f, "rlrepl", "", NULL, real));
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f.cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    mongoc_client_t *c = mongosup_checkout(h, "main", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    mongosup_checkin(h, c, NULL);
    CU_ASSERT_FATAL(recreate_segment(&f, false));
    /* Still RUNNING in the old mapping: noticed within about a second. */
    busy_t b = {.f = &f, .h = h};
    CU_ASSERT(wfix_wait_for(checkout_lands_in_new_segment, &b, 5000));
    CU_ASSERT(slot_in_current_segment(&f));
    CU_ASSERT(mongosup_detach(&h, 2000));
    wfix_stop(&f);
}

static void test_pool_size_and_timeout(void)
{
    pool_size_and_timeout(false);
}

static void test_real_pool_size_and_timeout(void)
{
    if (wfix_real_wanted("/real/worker/reload/pool-size-and-timeout"))
        pool_size_and_timeout(true);
}

static void test_remove_and_add(void)
{
    remove_and_add(false);
}

static void test_real_remove_and_add(void)
{
    if (wfix_real_wanted("/real/worker/reload/remove-and-add-clusters"))
        remove_and_add(true);
}

static void test_bad_file_keeps_settings(void)
{
    bad_file_keeps_settings(false);
}

static void test_real_bad_file_keeps_settings(void)
{
    if (wfix_real_wanted("/real/worker/reload/bad-file-keeps-settings"))
        bad_file_keeps_settings(true);
}

static void test_segment_recreated_after_stop(void)
{
    segment_recreated_after_stop(false);
}

static void test_real_segment_recreated_after_stop(void)
{
    if (wfix_real_wanted("/real/worker/segment/recreated-after-stop"))
        segment_recreated_after_stop(true);
}

static void test_segment_replaced_while_running(void)
{
    segment_replaced_while_running(false);
}

static void test_real_segment_replaced_while_running(void)
{
    if (wfix_real_wanted("/real/worker/segment/replaced-while-running"))
        segment_replaced_while_running(true);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/worker/reload/pool-size-and-timeout", test_pool_size_and_timeout},
        {"/worker/reload/remove-and-add-clusters", test_remove_and_add},
        {"/worker/reload/loaded-before-reload", test_loaded_before_reload},
        {"/worker/reload/bad-file-keeps-settings", test_bad_file_keeps_settings},
        {"/worker/segment/recreated-after-stop", test_segment_recreated_after_stop},
        {"/worker/segment/replaced-while-running", test_segment_replaced_while_running},
        /* The same against $MONGOSUP_TEST_URI, when it names a real deployment. */
        {"/real/worker/reload/pool-size-and-timeout", test_real_pool_size_and_timeout},
        {"/real/worker/reload/remove-and-add-clusters", test_real_remove_and_add},
        {"/real/worker/reload/bad-file-keeps-settings", test_real_bad_file_keeps_settings},
        {"/real/worker/segment/recreated-after-stop", test_real_segment_recreated_after_stop},
        {"/real/worker/segment/replaced-while-running", test_real_segment_replaced_while_running},
        {NULL, NULL},
    };
    return msup_test_main("worker_reload", tests, argc, argv);
}
