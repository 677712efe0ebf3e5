/* worker_fixture.c: shared set-up of the worker tests (peer, config file, segment). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "segment.h"
#include "testmain.h"
#include "worker_fixture.h"

mongosup_config_t *wfix_load(wfix_t *f, const char *uri, const char *keys)
{
    snprintf(f->conf_path, sizeof f->conf_path, "/tmp/msup-wtest-%d.conf", (int)getpid());
    FILE *fp = fopen(f->conf_path, "w");
    if (fp == NULL)
        return NULL;
    keys = keys ? keys : "";
    /* Short driver timeouts unless the test sets its own. */
    const char *sel = strstr(keys, "server_selection_timeout_ms") ? "" : "server_selection_timeout_ms = 2000;";
    fprintf(fp,
            "segment = { name = \"%s\"; max_workers = 32; max_clusters = 4; };\n"
            "default_environment = \"test\";\n"
            "environments = { test = { clusters = {\n"
            "  main = { mongo_uri = \"%s\"; database_name = \"wtest\"; heartbeat_frequency_ms = 500;\n"
            "           connect_timeout_ms = 2000; %s %s };\n"
            "}; }; };\n",
            f->segment, uri, sel, keys);
    fclose(fp);
    mongosup_error_t error;
    mongosup_config_t *cfg = mongosup_config_load(f->conf_path, NULL, &error);
    if (cfg == NULL) {
        fprintf(stderr, "config: %s\n", error.message);
        return NULL;
    }
    return cfg;
}

bool wfix_start(wfix_t *f, const char *tag, const char *keys, const char *uri_options)
{
    memset(f, 0, sizeof *f);
    snprintf(f->segment, sizeof f->segment, "%s", msup_test_segment_name(tag));
    msup_segment_unlink(f->segment, NULL);
    f->peer = test_peer_start("standalone", 1, NULL);
    if (f->peer == NULL)
        return false;
    char *uri = test_peer_uri_with(f->peer, uri_options);
    f->cfg = wfix_load(f, uri, keys);
    free(uri);
    return f->cfg != NULL;
}

void wfix_stop(wfix_t *f)
{
    mongosup_config_destroy(&f->cfg);
    test_peer_stop(&f->peer);
    if (f->conf_path[0] != '\0')
        unlink(f->conf_path);
    if (f->segment[0] != '\0')
        msup_segment_unlink(f->segment, NULL);
}

bool wfix_segment(const wfix_t *f, msup_segment_t *seg)
{
    mongosup_error_t error;
    if (msup_segment_adopt(f->segment, NULL, seg, &error))
        return true;
    fprintf(stderr, "segment: %s\n", error.message);
    return false;
}

bool wfix_totals(const wfix_t *f, const char *name, msup_totals_t *out)
{
    msup_segment_t seg;
    mongosup_error_t error;
    if (!msup_segment_open_readonly(f->segment, &seg, &error))
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
    return test_peer_stat(f->peer, key);
}
