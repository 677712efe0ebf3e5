/* mongosup.h: the public API of libmongosup, for prefork servers that use mongo-c-driver or, through its driver-neutral part, another driver. */
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

/* ---- DRIVER-NEUTRAL WORKER API (see docs/api.md) -----------------------
 * For a worker that talks to MongoDB through another driver (pymongo,
 * Motor, ...): attach and detach as above, ask the gate before operations,
 * and report what the driver did: the figures land in the worker's slot
 * exactly as the mongoc path's do, and mongosup-top shows both side by
 * side.  Every call takes the cluster's name as configured; none makes a
 * syscall or takes a process-shared lock.  Thread-safe. */

/* Operation classes (docs/api.md, "Counters and classes"). */
typedef enum mongosup_op_class {
    MONGOSUP_OP_READ = 0,
    MONGOSUP_OP_WRITE = 1,
    MONGOSUP_OP_COMMAND = 2,
} mongosup_op_class_t;

/* The 8 failure classes; MONGOSUP_FAIL_NONE: the operation succeeded. */
typedef enum mongosup_fail_class {
    MONGOSUP_FAIL_NONE = -1,
    MONGOSUP_FAIL_NETWORK = 0,
    MONGOSUP_FAIL_TIMEOUT = 1,
    MONGOSUP_FAIL_SERVER_SELECTION = 2,
    MONGOSUP_FAIL_AUTH = 3,
    MONGOSUP_FAIL_SERVER = 4,
    MONGOSUP_FAIL_CIRCUIT_OPEN = 5,
    MONGOSUP_FAIL_SHUTTING_DOWN = 6,
    MONGOSUP_FAIL_OTHER = 7,
} mongosup_fail_class_t;

/* Pool events of another driver's connection pool (CMAP vocabulary). */
typedef enum mongosup_pool_event {
    MONGOSUP_POOL_CHECKOUT_WAIT = 1,      /* a checkout must wait; value 1: max_pool_size connections are out */
    MONGOSUP_POOL_CHECKOUT_SUCCEEDED = 2, /* value: microseconds it waited (0: none) */
    MONGOSUP_POOL_CHECKOUT_FAILED = 3,    /* no connection in time; value: microseconds it waited */
    MONGOSUP_POOL_CHECKED_IN = 4,
    MONGOSUP_POOL_CONNECTION_CREATED = 5,
    MONGOSUP_POOL_CONNECTION_CLOSED = 6,
    MONGOSUP_POOL_RETRY = 7,              /* an operation is retried (mongosup_run's policy, in the caller) */
} mongosup_pool_event_t;

/* Cluster health as the supervisor publishes it. */
typedef enum mongosup_health {
    MONGOSUP_HEALTH_UNKNOWN = 0,
    MONGOSUP_HEALTH_UP = 1,
    MONGOSUP_HEALTH_DEGRADED = 2,
    MONGOSUP_HEALTH_DOWN = 3,
    MONGOSUP_HEALTH_RECOVERING = 4,
} mongosup_health_t;

/* The resolved settings of a cluster, pointing into the configuration (they
 * live as long as it does).  uri carries the secrets: hand it to the driver
 * and never log it; show uri_display. */
typedef struct mongosup_cluster_settings {
    const char *uri;
    const char *uri_display;
    const char *database_name; /* NULL: none */
    const char *appname;       /* NULL: none configured */
    uint32_t max_pool_size;
    uint32_t min_pool_size;
    uint32_t max_idle_time_ms;
    uint32_t wait_queue_timeout_ms;
    uint32_t connect_timeout_ms;
    uint32_t socket_timeout_ms;
    uint32_t server_selection_timeout_ms;
    uint32_t heartbeat_frequency_ms;
    uint32_t retry_max_attempts;
    uint32_t retry_deadline_ms;
    uint32_t retry_backoff_ms;
    uint32_t max_connections;  /* the host's connection budget for the cluster, 0: none */
    uint32_t max_connecting;
    uint32_t reconnect_window_ms;
    bool retry_writes;
    bool retry_reads;
    bool circuit_breaker;
    bool is_replica_set;
} mongosup_cluster_settings_t;

/* sizeof(mongosup_cluster_settings_t), for bindings that mirror it. */
MONGOSUP_API size_t mongosup_cluster_settings_size(void);

/* Fills *out for the cluster.  MONGOSUP_E_UNKNOWN_CLUSTER, MONGOSUP_E_INVALID_ARG. */
MONGOSUP_API bool mongosup_cluster_settings(const mongosup_config_t *cfg, const char *cluster,
                                            mongosup_cluster_settings_t *out, mongosup_error_t *error);

/* The settings the handle follows now: after the supervisor's reload, the
 * copy the handle reloaded at its next gate or checkout (docs/api.md,
 * Reload); before it, those of the configuration it was attached with.
 * Strings live until the handle is detached.  A cluster added by a reload
 * is found, a removed one is MONGOSUP_E_UNKNOWN_CLUSTER; MONGOSUP_E_FORKED,
 * MONGOSUP_E_INVALID_ARG. */
MONGOSUP_API bool mongosup_current_settings(mongosup_t *handle, const char *cluster,
                                            mongosup_cluster_settings_t *out, mongosup_error_t *error);

/* Moves (compare for inequality) whenever the handle has followed a reload
 * or a re-attach to a new segment, at a gate or checkout: then read
 * mongosup_current_settings again and rebuild the clients whose settings
 * changed.  One atomic load; 0 for NULL. */
MONGOSUP_API uint64_t mongosup_config_generation(const mongosup_t *handle);

/* The gate, as mongosup_checkout's: true to go ahead.  False with
 * MONGOSUP_E_CIRCUIT_OPEN (a live supervisor marks the cluster DOWN),
 * MONGOSUP_E_SHUTTING_DOWN (draining or detaching), MONGOSUP_E_FORKED,
 * MONGOSUP_E_UNKNOWN_CLUSTER; refusals are counted as the checkout's are.
 * *generation (may be NULL): the cluster's reconnect generation; when it
 * differs from the one the caller's client was built for, rebuild the
 * client after mongosup_reconnect_delay_ms and call mongosup_serving_generation. */
MONGOSUP_API bool mongosup_gate(mongosup_t *handle, const char *cluster, uint64_t *generation,
                                mongosup_error_t *error);

/* The class of a command by name (find: read, insert: write, ...). */
MONGOSUP_API mongosup_op_class_t mongosup_command_class(const char *command_name);

/* Records one finished operation: class, duration, and for a failure its
 * class, the driver's or server's code and a message (redacted here: a URI
 * in it loses its credentials).  A network, timeout or selection failure
 * while the cluster is DOWN counts as circuit open, as on the mongoc path. */
MONGOSUP_API void mongosup_record_op(mongosup_t *handle, const char *cluster, mongosup_op_class_t op_class,
                                     uint64_t duration_us, mongosup_fail_class_t fail_class, uint32_t code,
                                     const char *message);

/* Records a failure that no operation reports (server selection, a new
 * connection that cannot connect or authenticate), as the mongoc path
 * counts them from mongosup_checkin's outcome. */
MONGOSUP_API void mongosup_record_failure(mongosup_t *handle, const char *cluster, mongosup_fail_class_t fail_class,
                                          uint32_t code, const char *message);

/* The driver's own monitor reached a server of the cluster: while the row
 * says DOWN this opens the half-open gate, as on the mongoc path. */
MONGOSUP_API void mongosup_record_heartbeat_ok(mongosup_t *handle, const char *cluster);

/* Records a pool event (see mongosup_pool_event_t for value). */
MONGOSUP_API void mongosup_record_pool(mongosup_t *handle, const char *cluster, mongosup_pool_event_t event,
                                       uint64_t value);

/* Connection budget: a token for a connection about to be created (false
 * with MONGOSUP_E_POOL_TIMEOUT when the host's max_connections is spent),
 * given back when it closes.  The reaper returns a dead worker's tokens. */
MONGOSUP_API bool mongosup_connection_acquire(mongosup_t *handle, const char *cluster, mongosup_error_t *error);
MONGOSUP_API void mongosup_connection_release(mongosup_t *handle, const char *cluster);

/* The supervisor's verdict on the cluster (UNKNOWN without a row); *alive
 * (may be NULL): the supervisor's heartbeat is fresh. */
MONGOSUP_API mongosup_health_t mongosup_cluster_health(mongosup_t *handle, const char *cluster, bool *alive);

/* This worker's delay before it rebuilds after a generation bump (spread
 * over reconnect_window_ms by slot, as the mongoc path's). */
MONGOSUP_API uint32_t mongosup_reconnect_delay_ms(mongosup_t *handle, const char *cluster);

/* The caller's client now serves `generation` (its first client, or one
 * rebuilt after a bump: `rebuilt`, counted as a reconnect): acknowledged
 * in the slot, where the supervisor and the monitor read it. */
MONGOSUP_API void mongosup_serving_generation(mongosup_t *handle, const char *cluster, uint64_t generation,
                                              bool rebuilt);

#ifdef __cplusplus
}
#endif
#endif
