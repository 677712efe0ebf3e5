/* fleet_int.h: the fleet thread's state, shared by fleet.c (the protocol) and show.c (status and metrics); not an API. */
#ifndef MONGOSUP_FLEET_INT_H
#define MONGOSUP_FLEET_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "etcd.h"
#include "fleet.h"

#define PEAK_BUCKETS 10           /* recent peak use: the highest of the last 10 one-second buckets */
#define SHOWN_RECORDS 32          /* hosts kept per cluster for `mongosupctl fleet` */
#define FLOOR_PENDING_CAP 256     /* hosts followed after a reload raised the floor */

typedef struct shown_record {
    char host[64];
    uint32_t floor, demand, cap;
} shown_record_t;

typedef struct fleet_cluster {
    char name[MSUP_NAME_MAX];
    msup_cluster_row_t *row;    /* the control row: the cap the workers enforce */
    msup_reg_row_t *line;       /* the stats segment's budget line: what they use */
    const msup_segment_t *seg;  /* the workers' slots: their budget waits */
    uint32_t row_index;
    /* ceiling: this host's max_connections, 0 = none.  Atomic: a reload's
     * values are written by the fleet thread, shown by the others. */
    _Atomic uint32_t fleet_max, floor, ceiling;
    _Atomic uint32_t fallback_floor;    /* the cap without a lease: floor, or the old one after a raise */
    /* A reload's values, taken by the thread at its next round (under mu). */
    bool reload_pending;
    uint32_t reload_max, reload_floor, reload_ceiling;
    bool republish;                     /* the record shows the keys before the reload (fleet thread) */
    /* After a reload raised the floor (fleet thread only): the hosts seen
     * with a lower floor since, each of which must publish the new one
     * before it is this host's cap without etcd: a host gone from the reads
     * may come back with the old one.  full: more than FLOOR_PENDING_CAP. */
    char (*floor_pending)[64];
    size_t floor_pending_count;
    bool floor_pending_full, floor_pending_logged;
    _Atomic uint32_t max_connecting;    /* the configuration's; a reload may change it */
    /* Protocol state (fleet thread only). */
    uint32_t published;                 /* the cap in our record; 0: no record under the current lease */
    uint32_t published_demand;
    uint64_t lowering_since_ns;         /* the cap was lowered and the record not yet */
    bool full_logged;                   /* "max_hosts hosts already have records" said once */
    uint32_t peak[PEAK_BUCKETS];
    uint64_t peak_second;
    uint64_t waits_seen;                /* the workers' budget waits at the last round */
    uint64_t waited_ns;                 /* when they last grew (0: never) */
    /* Shown by status (any thread). */
    _Atomic uint32_t enforced;          /* what the row has: the host's cap */
    _Atomic uint32_t target;
    _Atomic uint32_t hosts_seen;
    _Atomic uint32_t demand;
    shown_record_t shown[SHOWN_RECORDS]; /* under the fleet's view_mu */
    size_t shown_count, seen_count;
} fleet_cluster_t;

struct msup_fleet {
    char host_id[64];
    char prefix[256];
    uint32_t ttl_s, max_hosts, poll_ms, lower_wait_ms, timeout_ms;
    msup_etcd_t *etcd;
    msup_fleet_apply_fn apply;
    pthread_mutex_t apply_mu;         /* a cap read and written into the row as one step (reload vs thread) */
    pthread_mutex_t view_mu;          /* the clusters' shown records */
    pthread_mutex_t mu;               /* stop, cv */
    pthread_cond_t cv;
    bool stop;
    /* A reload's group settings, taken by the thread at its next round (under mu). */
    msup_etcd_t *reload_etcd;         /* new endpoints, credentials or TLS files; NULL: unchanged */
    bool reload_pending;
    uint32_t reload_poll_ms, reload_lower_wait_ms, reload_timeout_ms;
    pthread_t thread;
    size_t count;
    fleet_cluster_t clusters[MSUP_MAX_CLUSTERS];
    /* Lease (fleet thread only, but shown by status). */
    int64_t lease;
    uint64_t lease_deadline_ns;       /* ours: last keepalive sent + TTL - margin */
    uint64_t next_keepalive_ns;
    uint64_t next_grant_ns;           /* after a refusal (credentials): not every poll */
    _Atomic bool has_lease;
    _Atomic uint64_t last_contact_ns; /* CLOCK_REALTIME of etcd's last answer */
    _Atomic uint64_t lease_losses;
    char last_error[256];
    bool error_logged;
    msup_etcd_status_t error_logged_status; /* a new kind of trouble is logged too */
    /* Corrupt records already reported: one line per key and revision. */
    struct {
        char key[256];
        int64_t rev;
    } reported[16];
    unsigned reported_next;
};

#endif
