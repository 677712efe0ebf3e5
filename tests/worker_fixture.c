/* worker_fixture.c: shared set-up of the worker tests (peer or real deployment, config file, segment). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "segment.h"
#include "segment_fixture.h"
#include "testmain.h"
#include "worker.h"
#include "worker_fixture.h"

/* What mongosupd does before any worker attaches: both segments, the
 * control segment claimed, every configured cluster registered and
 * published in its control row (heartbeat left to the test). */
static bool supervise(wfix_t *f)
{
    const mongosup_config_t *cfg = f->cfg;
    msup_geometry_t geo = msup_geometry_of(cfg);
    mongosup_error_t error;
    bool created;
    if (!msup_segment_open_or_create(cfg->segment_name, &geo, &f->sup, &created, &error) ||
        !msup_test_control_attach(&f->sup)) {
        fprintf(stderr, "supervise: %s\n", error.message);
        return false;
    }
    for (size_t i = 0; i < cfg->cluster_count; i++) {
        const msup_cluster_cfg_t *cc = &cfg->clusters[i];
        int idx = msup_registry_map(&f->sup, cc, (uint32_t)i);
        if (idx < 0)
            return false;
        msup_test_publish_cluster(&f->sup, cc, (uint32_t)idx);
    }
    atomic_store(&msup_segment_hdr(&f->sup)->supervisor_pid, 0); /* no heartbeat until a test gives one */
    return true;
}

mongosup_config_t *wfix_load(wfix_t *f, const char *uri, const char *keys)
{
    snprintf(f->conf_path, sizeof f->conf_path, "/tmp/msup-wtest-%d.conf", (int)getpid());
    FILE *fp = fopen(f->conf_path, "w");
    if (fp == NULL)
        return NULL;
    keys = keys ? keys : "";
    /* Short driver timeouts unless the test sets its own. */
    const char *sel = strstr(keys, "server_selection_timeout_ms") ? "" : "server_selection_timeout_ms = 2000;";
    const char *heartbeat = strstr(keys, "heartbeat_frequency_ms") ? "" : "heartbeat_frequency_ms = 500;";
    if (f->top_level != NULL)
        fprintf(fp, "%s\n", f->top_level);
    fprintf(fp,
            "segment = { name = \"%s\"; max_workers = 32; max_clusters = 4; };\n"
            "default_environment = \"test\";\n"
            "environments = { test = { clusters = {\n"
            "  main = { mongo_uri = \"%s\"; database_name = \"%s\"; %s\n"
            "           connect_timeout_ms = 2000; %s %s };\n"
            "}; }; };\n",
            f->segment, uri, f->database[0] ? f->database : "wtest", heartbeat, sel, keys);
    fclose(fp);
    mongosup_error_t error;
    mongosup_config_t *cfg = mongosup_config_load(f->conf_path, NULL, &error);
    if (cfg == NULL) {
        fprintf(stderr, "config: %s\n", error.message);
        return NULL;
    }
    return cfg;
}

/* Appends URI options to a connection string that may or may not have a
 * path or options already. */
static char *uri_append(const char *base, const char *options)
{
    size_t n = strlen(base) + (options ? strlen(options) : 0) + 3;
    char *uri = malloc(n);
    if (uri == NULL)
        return NULL;
    if (options == NULL || options[0] == '\0') {
        snprintf(uri, n, "%s", base);
        return uri;
    }
    const char *hosts = strstr(base, "://");
    hosts = hosts ? hosts + 3 : base;
    const char *sep = strchr(base, '?') ? "&" : strchr(hosts, '/') ? "?" : "/?";
    snprintf(uri, n, "%s%s%s", base, sep, options);
    return uri;
}

char *wfix_uri_with(const wfix_t *f, const char *options)
{
    if (f->real)
        return uri_append(test_peer_real_uri(), options);
    return test_peer_uri_with(f->peer, options);
}

bool wfix_start_on(wfix_t *f, const char *tag, const char *keys, const char *uri_options, bool real)
{
    memset(f, 0, sizeof *f);
    snprintf(f->segment, sizeof f->segment, "%s", msup_test_segment_name(tag));
    msup_segment_unlink(f->segment, NULL);
    f->real = real;
    if (real) {
        if (test_peer_real_uri() == NULL)
            return false;
        /* One database per run, dropped at the end: a real deployment is left clean. */
        snprintf(f->database, sizeof f->database, "mongosup_test_%d", (int)getpid());
    } else {
        snprintf(f->database, sizeof f->database, "wtest");
        f->peer = test_peer_start("standalone", 1, NULL);
        if (f->peer == NULL)
            return false;
    }
    char *uri = wfix_uri_with(f, uri_options);
    f->cfg = wfix_load(f, uri, keys);
    free(uri);
    return f->cfg != NULL && supervise(f);
}

bool wfix_start(wfix_t *f, const char *tag, const char *keys, const char *uri_options)
{
    return wfix_start_on(f, tag, keys, uri_options, false);
}

mongosup_t *wfix_start_attached(wfix_t *f, const char *tag, const char *keys)
{
    CU_ASSERT_FATAL(wfix_start(f, tag, keys, NULL));
    mongosup_error_t error;
    mongosup_t *h = mongosup_attach(f->cfg, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    return h;
}

void wfix_play_supervisor(msup_segment_t *seg, bool fresh)
{
    atomic_store(&msup_segment_hdr(seg)->heartbeat_timeout_ms, 3000);
    atomic_store(&msup_segment_hdr(seg)->heartbeat_mono_ns, fresh ? msup_mono_ns() : msup_mono_ns() - 10ull * 1000000000ull);
    atomic_store(&msup_segment_hdr(seg)->supervisor_pid, (int32_t)getpid());
}

/* Drops the run's database on the real deployment; says so if it cannot. */
static void drop_real_database(const wfix_t *f)
{
    mongoc_init();
    mongoc_client_t *client = mongoc_client_new(test_peer_real_uri());
    bson_error_t error = {0};
    bool dropped = false;
    if (client != NULL) {
        mongoc_database_t *db = mongoc_client_get_database(client, f->database);
        dropped = mongoc_database_drop(db, &error);
        mongoc_database_destroy(db);
        mongoc_client_destroy(client);
    }
    if (!dropped)
        fprintf(stderr, "could not drop database %s on MONGOSUP_TEST_URI: %s\n", f->database,
                client ? error.message : "bad URI");
}

void wfix_stop(wfix_t *f)
{
    mongosup_config_destroy(&f->cfg);
    test_peer_stop(&f->peer);
    if (f->real)
        drop_real_database(f);
    if (f->conf_path[0] != '\0')
        unlink(f->conf_path);
    if (f->sup.base != NULL)
        msup_segment_close(&f->sup);
    if (f->segment[0] != '\0')
        msup_segment_unlink(f->segment, NULL);
}

bool wfix_real_wanted(const char *name)
{
    if (test_peer_real_deployment())
        return true;
    printf("\n  SKIP %s: MONGOSUP_TEST_URI is not set ", name);
    fflush(stdout);
    return false;
}

void wfix_skip_needs_peer(const char *name)
{
    printf("\n  SKIP %s: needs the test peer (MONGOSUP_TEST_URI is a real deployment) ", name);
    fflush(stdout);
}

void wfix_real_peer_only(const char *suite_entry, const char *const *names)
{
    if (!wfix_real_wanted(suite_entry))
        return;
    /* These ran against the peer above; their faults or counters exist only there. */
    for (int i = 0; names[i] != NULL; i++)
        wfix_skip_needs_peer(names[i]);
    CU_PASS("peer-only tests listed");
}

long wfix_server_connections(const wfix_t *f, mongoc_client_t *probe)
{
    if (!f->real)
        return test_peer_stat(f->peer, "conn.current");
    bson_t cmd = BSON_INITIALIZER, reply;
    BSON_APPEND_INT32(&cmd, "serverStatus", 1);
    long current = -1;
    if (mongoc_client_command_simple(probe, "admin", &cmd, NULL, &reply, NULL)) {
        bson_iter_t it;
        if (bson_iter_init(&it, &reply) && bson_iter_find_descendant(&it, "connections.current", &it) &&
            BSON_ITER_HOLDS_NUMBER(&it))
            current = (long)bson_iter_as_int64(&it);
    }
    bson_destroy(&reply);
    bson_destroy(&cmd);
    return current;
}

bool wfix_segment(const wfix_t *f, msup_segment_t *seg)
{
    return msup_test_segment_open_rw(f->segment, seg);
}

bool wfix_totals(const wfix_t *f, const char *name, msup_totals_t *out)
{
    msup_segment_t seg;
    mongosup_error_t error;
    if (!msup_segment_open_readonly(f->segment, (uid_t)-1, &seg, &error))
        return false;
    msup_snapshot_t snap;
    bool found = false;
    if (msup_snapshot_take(&seg, &snap, &error)) {
        for (uint32_t i = 0; i < snap.cluster_count; i++) {
            if (strcmp(snap.clusters[i].name, name) == 0) {
                *out = snap.clusters[i].totals;
                found = true;
            }
        }
        msup_snapshot_free(&snap);
    }
    msup_segment_close(&seg);
    return found;
}

bool wfix_ping(mongoc_client_t *client, bson_error_t *error)
{
    bson_t ping = BSON_INITIALIZER;
    BSON_APPEND_INT32(&ping, "ping", 1);
    bool ok = mongoc_client_command_simple(client, "admin", &ping, NULL, NULL, error);
    bson_destroy(&ping);
    return ok;
}

bool wfix_wait_for(bool (*pred)(void *), void *arg, int ms)
{
    for (int waited = 0; waited <= ms; waited += 5) {
        if (pred(arg))
            return true;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return pred(arg);
}

long wfix_peer_stat(const wfix_t *f, const char *key)
{
    return f->peer ? test_peer_stat(f->peer, key) : -1;
}
