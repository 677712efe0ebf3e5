/* mongosup.h: the public API of libmongosup, for prefork servers that use mongo-c-driver. */
#ifndef MONGOSUP_H
#define MONGOSUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MONGOSUP_BUILDING) && defined(__GNUC__)
#define MONGOSUP_API __attribute__((visibility("default")))
#else
#define MONGOSUP_API
#endif

/* Error domains of mongosup_error_t. */
typedef enum mongosup_error_domain {
    MONGOSUP_ERROR_NONE = 0,
    MONGOSUP_ERROR_MONGOSUP = 1, /* code is a mongosup_error_code_t */
    MONGOSUP_ERROR_DRIVER = 2,   /* driver_domain/driver_code hold the bson_error_t's */
} mongosup_error_domain_t;

typedef enum mongosup_error_code {
    MONGOSUP_OK = 0,
    MONGOSUP_E_CONFIG = 1,          /* invalid configuration (message has file:line) */
    MONGOSUP_E_SEGMENT = 2,         /* shared-memory segment missing, foreign or corrupted */
    MONGOSUP_E_UNKNOWN_CLUSTER = 3,
    MONGOSUP_E_CIRCUIT_OPEN = 4,    /* the supervisor marks the cluster DOWN */
    MONGOSUP_E_POOL_TIMEOUT = 5,    /* no client within the wait-queue timeout */
    MONGOSUP_E_SHUTTING_DOWN = 6,   /* the supervisor is draining */
    MONGOSUP_E_FORKED = 7,          /* handle inherited across fork: call mongosup_attach */
    MONGOSUP_E_DRIVER = 8,          /* mongo-c-driver failure */
    MONGOSUP_E_NO_SLOT = 9,         /* every worker slot is taken (max_workers) */
    MONGOSUP_E_INVALID_ARG = 10,
    MONGOSUP_E_SYSTEM = 11,         /* an OS call failed (errno in driver_code) */
} mongosup_error_code_t;

/* Fixed-size error, like bson_error_t; messages never carry a password. */
typedef struct mongosup_error {
    uint32_t domain;        /* mongosup_error_domain_t */
    uint32_t code;          /* mongosup_error_code_t */
    uint32_t driver_domain; /* bson_error_t.domain, for MONGOSUP_E_DRIVER */
    uint32_t driver_code;   /* bson_error_t.code (or errno for MONGOSUP_E_SYSTEM) */
    char message[496];
} mongosup_error_t;

typedef struct mongosup_config mongosup_config_t;
typedef struct mongosup mongosup_t;

/* Loads and validates a configuration file.  environment may be NULL: then
 * MONGOSUP_ENV, else the file's default_environment.  Returns NULL and fills
 * error (with file and line) on any invalid input. */
MONGOSUP_API mongosup_config_t *mongosup_config_load(const char *path, const char *environment,
                                                     mongosup_error_t *error);
MONGOSUP_API void mongosup_config_destroy(mongosup_config_t **config);
MONGOSUP_API const char *mongosup_config_environment(const mongosup_config_t *config);
MONGOSUP_API size_t mongosup_config_cluster_count(const mongosup_config_t *config);
MONGOSUP_API const char *mongosup_config_cluster_name(const mongosup_config_t *config, size_t i);

/* Writes a URI without its credentials into out (always NUL-terminated). */
MONGOSUP_API bool mongosup_uri_redact(const char *uri, char *out, size_t out_len, mongosup_error_t *error);

MONGOSUP_API const char *mongosup_version(void);

/* ---- WORKER API (see docs/api.md) -------------------------------------
 * A worker process calls mongosup_attach after fork, then checks clients out
 * and in from any of its threads.  Pools are created lazily, per cluster,
 * in the worker; a handle inherited across fork is refused with
 * MONGOSUP_E_FORKED and never destroyed (mongoc 1.23 deadlocks when a child
 * destroys its parent's pool). */

/* Claims a worker slot in the shared segment (creating the segment when no
 * supervisor has yet) and maps the configured clusters.  No network I/O.
 * cfg must outlive the handle.  NULL + error on failure. */
MONGOSUP_API mongosup_t *mongosup_attach(const mongosup_config_t *cfg, mongosup_error_t *error);

/* A pooled client of the cluster, waiting at most its wait_queue_timeout_ms
 * for one (MONGOSUP_E_POOL_TIMEOUT).  Fails at once with
 * MONGOSUP_E_CIRCUIT_OPEN when a live supervisor marks the cluster DOWN,
 * MONGOSUP_E_SHUTTING_DOWN while draining, MONGOSUP_E_FORKED on an
 * inherited handle.  Thread-safe. */
MONGOSUP_API mongoc_client_t *mongosup_checkout(mongosup_t *handle, const char *cluster, mongosup_error_t *error);

/* Gives a client back.  outcome: the error of the last operation on it, or
 * NULL; failures no command event reports (server selection, auth) are
 * counted from it.  Thread-safe; never blocks on the network. */
MONGOSUP_API void mongosup_checkin(mongosup_t *handle, mongoc_client_t *client, const bson_error_t *outcome);

/* The default database (database_name) of a checked-out client's cluster,
 * or of a cluster by name; NULL when none is configured. */
MONGOSUP_API const char *mongosup_client_database(mongosup_t *handle, const mongoc_client_t *client);
MONGOSUP_API const char *mongosup_cluster_database(mongosup_t *handle, const char *cluster);

/* True once the supervisor has asked for shutdown (or detach has begun):
 * finish the work in hand and exit.  Acknowledges it in the slot. */
MONGOSUP_API bool mongosup_draining(mongosup_t *handle);

/* Refuses new checkouts, waits up to drain_timeout_ms for checked-out
 * clients, closes the pools, marks the slot EXITED and frees the handle;
 * sets *handle to NULL.  Returns false when clients were still out at the
 * deadline (their pools are then abandoned, not destroyed). */
MONGOSUP_API bool mongosup_detach(mongosup_t **handle, uint32_t drain_timeout_ms);

/* The callback of mongosup_run: runs one attempt on client.  reply is an
 * initialised, empty bson_t: hand it to the driver call as its reply (the
 * driver re-initialises it) so that errorLabels can be read; mongosup
 * destroys it.  Return false and fill error on failure. */
typedef bool (*mongosup_run_fn)(mongoc_client_t *client, void *ctx, bson_t *reply, bson_error_t *error);

/* Runs fn with a checked-out client; retries transient failures (network
 * errors, the NotWritablePrimary / ShutdownInProgress family, the
 * RetryableWriteError / TransientTransactionError labels) with exponential
 * backoff and jitter, up to the cluster's retry_max_attempts and
 * retry_deadline_ms.  Each retry is counted.  A failed attempt's error is
 * MONGOSUP_E_DRIVER with the driver's domain and code. */
MONGOSUP_API bool mongosup_run(mongosup_t *handle, const char *cluster, mongosup_run_fn fn, void *ctx,
                               mongosup_error_t *error);

/* The worker slot index of this handle (for logs), -1 for NULL. */
MONGOSUP_API int mongosup_worker_slot(const mongosup_t *handle);

#ifdef __cplusplus
}
#endif
#endif
