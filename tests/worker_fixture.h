/* worker_fixture.h: shared set-up of the worker tests: a test peer or a real deployment, a config file written at run time, a segment. */
#ifndef MONGOSUP_TESTS_WORKER_FIXTURE_H
#define MONGOSUP_TESTS_WORKER_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "mongosup.h"
#include "peer/peer.h"
#include "segment.h"
#include "snapshot.h"

typedef struct wfix {
    test_peer_t *peer;      /* NULL when the test runs against $MONGOSUP_TEST_URI */
    bool real;
    char database[64];      /* "wtest" on the peer, "mongosup_test_<pid>" on a real deployment */
    char conf_path[128];
    char segment[64];
    const char *top_level;  /* extra top-level groups wfix_load writes ("fleet = {...};"), or NULL */
    mongosup_config_t *cfg;
    /* Both segments as a supervisor set them up before any worker: the
     * control segment claimed (this process holds its lock) with the
     * configuration's clusters published, so that a test can play the
     * supervisor (health, heartbeat, phase) through wfix_segment. */
    msup_segment_t sup;
} wfix_t;

/* Starts a standalone peer and loads a config whose one cluster "main"
 * points at it; `keys` are extra cluster settings ("max_pool_size = 4;").
 * uri_options are appended to the peer's URI (may be NULL). */
bool wfix_start(wfix_t *f, const char *tag, const char *keys, const char *uri_options);
/* The same against a real deployment ($MONGOSUP_TEST_URI) when `real`:
 * no peer, a database of its own that wfix_stop drops. */
bool wfix_start_on(wfix_t *f, const char *tag, const char *keys, const char *uri_options, bool real);
/* wfix_start on the peer, then one attached handle; both asserted (fatal). */
mongosup_t *wfix_start_attached(wfix_t *f, const char *tag, const char *keys);
/* The test plays a supervisor in seg: its pid, and a heartbeat fresh or 10 s stale. */
void wfix_play_supervisor(msup_segment_t *seg, bool fresh);

/* Stops the peer, or drops the test's database on a real deployment. */
void wfix_stop(wfix_t *f);

/* URI of the deployment under test (peer or real) with URI options
 * appended (may be NULL); free() it. */
char *wfix_uri_with(const wfix_t *f, const char *options);

/* A /real/... test calls this first: true when $MONGOSUP_TEST_URI is set;
 * otherwise it prints "SKIP <name>: MONGOSUP_TEST_URI is not set". */
bool wfix_real_wanted(const char *name);
/* Prints "SKIP <name>: needs the test peer (MONGOSUP_TEST_URI is a real deployment)". */
void wfix_skip_needs_peer(const char *name);
/* The /real/.../needs-peer entry of a suite: one SKIP line per test of
 * `names` (NULL-terminated) that runs against the peer only. */
void wfix_real_peer_only(const char *suite_entry, const char *const *names);

/* Connections the server counts now: the peer's conn.current, or
 * serverStatus.connections.current of a real deployment's primary through
 * `probe` (a client the caller keeps connected); -1 when not available. */
long wfix_server_connections(const wfix_t *f, mongoc_client_t *probe);

/* Writes and loads a configuration for an arbitrary URI. */
mongosup_config_t *wfix_load(wfix_t *f, const char *uri, const char *keys);

/* Opens both segments writable (the test plays the supervisor). */
bool wfix_segment(const wfix_t *f, msup_segment_t *seg);

/* Totals of cluster `name` in a fresh snapshot (retired + live slots). */
bool wfix_totals(const wfix_t *f, const char *name, msup_totals_t *out);

/* Runs {ping: 1} on a client; returns the driver's verdict. */
bool wfix_ping(mongoc_client_t *client, bson_error_t *error);

/* Waits up to ms for pred(arg) to hold, polling every 5 ms. */
bool wfix_wait_for(bool (*pred)(void *), void *arg, int ms);

/* A counter of the peer; -1 on a real deployment. */
long wfix_peer_stat(const wfix_t *f, const char *key);

#endif
