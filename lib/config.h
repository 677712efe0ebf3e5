/* config.h: the resolved configuration (internal view of mongosup_config_t). */
#ifndef MONGOSUP_CONFIG_H
#define MONGOSUP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "layout.h"
#include "mongosup.h"

/*
 * File shape (libconfig):
 *
 *   segment    = { name = "/mongosup.app"; mode = "0600"; group = "";  max_workers = 64;
 *                  max_clusters = 8; };
 *   supervisor = { pidfile = ""; log = "stderr"; log_level = "info"; ... };
 *   default_environment = "development";
 *   defaults   = { <cluster settings> };                   # for every environment
 *   environments = {
 *     production = {
 *       defaults = { <cluster settings> };                 # for this environment
 *       clusters = { users = { mongo_uri = "..."; <cluster settings> }; ... };
 *     };
 *   };
 *
 * Precedence of a cluster setting: built-in default < top-level defaults <
 * environment defaults < the cluster's own block.  The URI: mongo_uri in the
 * file, replaced by the variable named by uri_env when that is set, replaced
 * by MONGOSUP_<CLUSTER>_URI when that is set (cluster name upper-cased,
 * non-alphanumerics as '_').  A password from password_env or password_file
 * (never world-readable) is put into the URI.
 */

typedef struct msup_cluster_cfg {
    char name[MSUP_NAME_MAX];
    char *uri;                 /* full URI, password included: never log it */
    char uri_display[MSUP_URI_DISPLAY_MAX]; /* redacted */
    char *database_name;       /* default database, may be NULL */
    char *appname;             /* may be NULL: "mongosup-<pid>" */
    bool is_replica_set;       /* replicaSet= in the URI */

    /* Pool (enforced by libmongosup, see lib/pool.c). */
    uint32_t max_pool_size;          /* 1..10000, default 100 */
    uint32_t min_pool_size;          /* 0..max_pool_size, default 0: warmed, never trimmed below */
    uint32_t max_idle_time_ms;       /* 0 = never trim, default 0 */
    uint32_t wait_queue_timeout_ms;  /* checkout bound, default 5000 */
    uint32_t connect_timeout_ms;     /* default 10000 */
    uint32_t socket_timeout_ms;      /* default 300000 */
    uint32_t server_selection_timeout_ms; /* default 30000 */
    uint32_t heartbeat_frequency_ms; /* >= 500, default 10000 */
    bool retry_writes;               /* default true */
    bool retry_reads;                /* default true */

    /* TLS file options (passed as URI options). */
    char *tls_ca_file;
    char *tls_certificate_key_file;
    char *tls_certificate_key_file_password; /* from tls_..._password_env/_file */
    bool tls_allow_invalid_hostnames;

    /* Health checks (mongosupd). */
    uint32_t check_interval_ms;   /* inter, default 2000 */
    uint32_t check_fastinter_ms;  /* while in transition, default 500 */
    uint32_t check_downinter_ms;  /* while DOWN, default 1000 */
    uint32_t check_timeout_ms;    /* default 1000 */
    uint32_t rise;                /* default 2 */
    uint32_t fall;                /* default 3 */
    uint32_t degraded_rtt_ms;     /* 0 = off, default 0 */

    /* Worker behaviour. */
    bool circuit_breaker;             /* default true */
    uint32_t reconnect_window_ms;     /* stagger window, default 2000 */
    uint32_t reconnect_min_interval_ms; /* rate limit of generation bumps, default 5000 */
    uint32_t reconnect_network_errors_per_s; /* 0 = off, default 0 */

    /* mongosup_run retries. */
    uint32_t retry_max_attempts;  /* default 3 */
    uint32_t retry_deadline_ms;   /* default 10000 */
    uint32_t retry_backoff_ms;    /* base of the exponential backoff, default 50 */

    /* Cluster-wide connection budget (issue 7). */
    uint32_t max_connections;     /* 0 = unlimited */
    uint32_t max_connecting;      /* 0 = unlimited */

    /* Slow-operation log (issue 15, lib/slowlog.h). */
    uint32_t slow_op_ms;          /* 0 = off: operations at least this long go to the slot's ring */
    bool log_failed_ops;          /* every failed operation goes to the ring as well */
    /* Fleet-wide budget (issue 13, fleet/): 0 = this cluster is not shared. */
    uint32_t fleet_max_connections; /* the total across every host */
    uint32_t fleet_floor;           /* this host's reserved cap; resolved: never 0 when fleet_max_connections is */

    /* Where each setting came from, for --check-config and error messages. */
    char source_file[256];
    int source_line;              /* line of the cluster's block */
    char uri_source[256];         /* where the URI and its password came from (no secret) */
} msup_cluster_cfg_t;

typedef struct msup_supervisor_cfg {
    char *pidfile;                /* NULL: none */
    char *log;                    /* "stderr" or "syslog" */
    int log_level;                /* LOG_ERR..LOG_DEBUG (syslog.h levels) */
    uint32_t heartbeat_interval_ms;   /* default 250 */
    uint32_t heartbeat_timeout_ms;    /* workers trust a heartbeat this fresh, default 3000 */
    uint32_t reap_interval_ms;        /* default 500 */
    uint32_t drain_timeout_ms;        /* default 30000 */
    int shutdown_signal;              /* signal sent to workers on drain; 0 = none (default) */
    char *escalate;                   /* "term-kill" (default), "kill", "none" */
    uint32_t escalate_grace_ms;       /* SIGTERM -> SIGKILL delay, default 2000 */
    bool keep_segment;                /* default false: unlink at the end */
    char *metrics_listen;             /* NULL: off; "127.0.0.1:9216" */
    char *control_socket;             /* NULL: the default (supervisor/control_path.h) */
} msup_supervisor_cfg_t;

/* The `fleet` group: how the supervisors of several hosts share
 * fleet_max_connections through etcd (docs/fleet.md).  enabled is false
 * without the group: nothing else is read then. */
typedef struct msup_fleet_cfg {
    bool enabled;
    char **endpoints;             /* NULL-terminated list of base URLs ("http://10.0.0.1:2379") */
    char *prefix;                 /* key prefix, default "/mongosup/fleet" */
    char *host_id;                /* default: the hostname */
    uint32_t lease_ttl_s;         /* default 10 */
    uint32_t max_hosts;           /* hosts whose floors are reserved, default 16 */
    uint32_t poll_interval_ms;    /* how often the prefix is read, default 250 */
    uint32_t lower_wait_ms;       /* bound on waiting for connections under a lowered cap, default 5000 */
    uint32_t request_timeout_ms;  /* one etcd request, default 1000 */
    char *username;               /* etcd user, or NULL (no auth) */
    char *password;               /* secret, from password_env/password_file: never log it */
    char *tls_ca_file;
    char *tls_cert_file;
    char *tls_key_file;
    char source_file[256];        /* where the group is, for messages */
    int source_line;
} msup_fleet_cfg_t;

struct mongosup_config {
    char *path;
    uint64_t loaded_mono_ns;            /* CLOCK_MONOTONIC when the file was read */
    char environment[MSUP_NAME_MAX];
    char segment_name[MSUP_NAME_MAX];   /* starts with '/' */
    mode_t segment_mode;                /* default 0600 */
    gid_t segment_group;                /* (gid_t)-1: none */
    uid_t segment_owner;                /* segment.owner: another accepted owner, (uid_t)-1: none */
    uint32_t max_workers;               /* 1..MSUP_MAX_WORKERS, default 64 */
    uint32_t max_clusters;              /* segment capacity, >= cluster count, default max(8, count) */
    msup_supervisor_cfg_t supervisor;
    msup_fleet_cfg_t fleet;
    size_t cluster_count;
    msup_cluster_cfg_t *clusters;
};

/* Index of a cluster by name, or -1. */
int msup_config_find_cluster(const mongosup_config_t *config, const char *name);

/* Prints the resolved configuration, URIs redacted (mongosupd --check-config). */
void msup_config_dump(const mongosup_config_t *config, FILE *out);

#endif
