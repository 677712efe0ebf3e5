/* worker_fixture.h: shared set-up of the worker tests: a test peer, a config file written at run time, a segment. */
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
    test_peer_t *peer;
    char conf_path[128];
    char segment[64];
    mongosup_config_t *cfg;
} wfix_t;

/* Starts a standalone peer and loads a config whose one cluster "main"
 * points at it; `keys` are extra cluster settings ("max_pool_size = 4;").
 * uri_options are appended to the peer's URI (may be NULL). */
bool wfix_start(wfix_t *f, const char *tag, const char *keys, const char *uri_options);
/* The same with a second peer-less cluster "spare" (a port nobody listens on). */
void wfix_stop(wfix_t *f);

/* Writes and loads a configuration for an arbitrary URI. */
mongosup_config_t *wfix_load(wfix_t *f, const char *uri, const char *keys);

/* Opens the segment writable (the test plays the supervisor). */
bool wfix_segment(const wfix_t *f, msup_segment_t *seg);

/* Totals of cluster `name` in a fresh snapshot (retired + live slots). */
bool wfix_totals(const wfix_t *f, const char *name, msup_totals_t *out);

/* Runs {ping: 1} on a client; returns the driver's verdict. */
bool wfix_ping(mongoc_client_t *client, bson_error_t *error);

/* Waits up to ms for pred(arg) to hold, polling every 5 ms. */
bool wfix_wait_for(bool (*pred)(void *), void *arg, int ms);

long wfix_peer_stat(const wfix_t *f, const char *key);

#endif
