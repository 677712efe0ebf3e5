/* layout.h: the binary layout of the control and stats segments (NOT a public API). */
#ifndef MONGOSUP_LAYOUT_H
#define MONGOSUP_LAYOUT_H

/*
 * The configured segment name ("/mongosup.app") names two POSIX
 * shared-memory objects, split by who may write them (docs/security.md):
 *
 *   control segment "/mongosup.app"          stats segment "/mongosup.app.stats"
 *   (only mongosupd writes; read-only map    (workers write; may be group-writable)
 *    for workers and tools)
 *   +-----------------------+ 0               +------------------------+ 0
 *   | msup_header_t         |                 | msup_stats_header_t    |
 *   +-----------------------+ cluster_off     +------------------------+ reg_off
 *   | msup_cluster_row_t[]  |  health,        | msup_reg_row_t[]       |  registry (names ->
 *   |  max_clusters rows    |  generations,   |  max_clusters rows     |  index) and budget lines
 *   |                       |  limits         +------------------------+ retired_off
 *   +-----------------------+ total_size      | msup_retired_hdr_t     |  retired totals, two
 *                                             |  + 2 x msup_stats_t[]  |  copies, fold lock
 *                                             +------------------------+ slot_off
 *                                             | msup_slot_t +          |  max_workers slots; slot i
 *                                             |  msup_stats_t[max_cl]  |  written by its worker
 *                                             +------------------------+ total_size
 *
 * The index space is the stats registry's: cluster i's slot counters,
 * retired totals, budget line and control row all sit at index i.  A
 * worker trusts control row i for cluster X only when that row is ACTIVE
 * and named X (a forged registry name moves nothing but counters).
 *
 * Every field is a fixed-width integer or a char array; there is no pointer.
 * Offsets are relative to the start of each object and every table starts on
 * a cache line.  Readers validate magic, version, sizes and every offset and
 * count (segment.c: msup_layout_validate) before touching a table.
 *
 * Lifecycle.  The control segment is created only by mongosupd: it opens
 * the name (O_CREAT, never adopting another owner's or a group/other
 * writable object), takes an exclusive OFD lock on it before writing
 * anything, fills the header when it is new, and publishes `magic` last.
 * The lock is held for the supervisor's life (one supervisor per segment).
 * The stats segment is created by whoever comes first (a worker before any
 * supervisor, or mongosupd): O_CREAT|O_EXCL, ftruncate, fill the header,
 * publish `magic` last with a release store.  A reader that sees magic 0
 * waits for the creator.  A later party adopts a valid object of an
 * accepted owner, magic, version and geometry.  mongosupd unlinks both at
 * the end of a graceful shutdown.
 *
 * Memory ordering.
 *  - Counters and histogram buckets: relaxed atomic adds by the owning
 *    worker's threads, relaxed loads by readers.  A reader may see a count
 *    and a bucket from slightly different instants; totals stay monotonic.
 *  - Slot state: CAS FREE->CLAIMING (acq_rel) by a worker, then the worker
 *    stamps pid/start time/epoch and stores ACTIVE with release.  A worker
 *    that detaches folds its own slot (CAS ACTIVE->REAPING under the fold
 *    lock, fold, zero, store FREE); when it cannot, it stores EXITED and the
 *    supervisor folds it.  The supervisor CASes EXITED|ACTIVE(dead)->REAPING
 *    under the fold lock, folds, and stores FREE (release) after zeroing.
 *  - Retired totals: folded by whoever holds the fold lock (a CAS word with
 *    the folder's pid and start time, stolen only from a dead holder);
 *    double-buffered (crash safety of a fold) under a sequence counter
 *    (readers retry while it is odd or changed).  A fold writes the inactive
 *    copy, records which slot/epoch it folded, bumps `seq` to odd, flips
 *    `active`, bumps `seq` to even.  A reader that takes a snapshot reads
 *    `seq`, the active copy, the slots, then `seq` again and retries if it
 *    moved: so a slot is never counted twice or not at all.
 *  - Last-error records: a per-record sequence lock; a writer takes it with
 *    a CAS (even->odd) and gives up if another thread holds it (never
 *    blocks); readers copy and retry on a torn read.
 *  - Control header heartbeat, phase, generations, cluster health: written
 *    by the supervisor with release stores, read with acquire loads.
 */

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "slowlog.h"

/* Version 3: the control/stats split.  Versions 1 and 2 were one segment
 * (magic MSUP_LEGACY_MAGIC, version at the same offset 8): readers recognise
 * them to refuse them with the reason and what to do (segment.c).
 * Version 2 added MSUP_HEALTH_RECOVERING and msup_stats_t.uri_mismatch.
 * Version 3 split the segment into the control and the stats object.
 * Version 4 gave msup_header_t config_applied_mono_ns (in what was the last
 * cache line's padding: the sizes did not change, so only the version tells
 * a version-3 segment, whose supervisor never writes the field, apart). */
#define MSUP_LEGACY_MAGIC   UINT64_C(0x314D48535055534D) /* "MSUPSHM1" little-endian: layouts 1 and 2 */
#define MSUP_CTL_MAGIC      UINT64_C(0x324C544350555342) /* "BSUPCTL2" little-endian: the control segment */
#define MSUP_STATS_MAGIC    UINT64_C(0x3254415453505553) /* "SUPSTAT2" little-endian: the stats segment */
#define MSUP_LAYOUT_VERSION 4u
#define MSUP_CACHE_LINE     64

#define MSUP_NAME_MAX       64   /* cluster / environment / segment names, NUL included */
#define MSUP_ERRMSG_MAX     112  /* last-error text, redacted, NUL included */
#define MSUP_URI_DISPLAY_MAX 256 /* redacted URI shown by the monitor */
#define MSUP_MAX_CLUSTERS   64   /* hard cap; the segment is sized by the config */
#define MSUP_MAX_WORKERS    65536

/* Latency histogram: log-linear, microseconds.  Values below 32 us have
 * their own bucket; above, each power-of-two octave is split into 32 linear
 * sub-buckets (relative bucket width 1/32 = 3.1%).  22 octaves reach
 * 2^26 us = 67 s; larger values land in the last bucket (max is exact). */
#define MSUP_HIST_SUB_BITS  5
#define MSUP_HIST_SUB       (1u << MSUP_HIST_SUB_BITS)       /* 32 */
#define MSUP_HIST_OCTAVES   22
#define MSUP_HIST_BUCKETS   (MSUP_HIST_SUB * MSUP_HIST_OCTAVES) /* 704 */

enum msup_op_class { MSUP_OP_READ, MSUP_OP_WRITE, MSUP_OP_COMMAND, MSUP_OP__COUNT };

enum msup_fail_class {
    MSUP_FAIL_NETWORK,
    MSUP_FAIL_TIMEOUT,
    MSUP_FAIL_SERVER_SELECTION,
    MSUP_FAIL_AUTH,
    MSUP_FAIL_SERVER,
    MSUP_FAIL_CIRCUIT_OPEN,
    MSUP_FAIL_SHUTTING_DOWN,
    MSUP_FAIL_OTHER,
    MSUP_FAIL__COUNT
};

enum msup_slot_state {
    MSUP_SLOT_FREE = 0,
    MSUP_SLOT_CLAIMING = 1, /* a worker won the CAS and is stamping it */
    MSUP_SLOT_ACTIVE = 2,
    MSUP_SLOT_EXITED = 3,   /* detached cleanly; waiting for the reaper */
    MSUP_SLOT_REAPING = 4,  /* the supervisor is folding it */
};

enum msup_health {
    MSUP_HEALTH_UNKNOWN = 0,
    MSUP_HEALTH_UP = 1,
    MSUP_HEALTH_DEGRADED = 2,
    MSUP_HEALTH_DOWN = 3,
    MSUP_HEALTH_RECOVERING = 4, /* DOWN, then a check passed: half-open until `rise` (health_state.c) */
};

enum msup_phase {
    MSUP_PHASE_STARTING = 0, /* segment exists, no supervisor has run yet */
    MSUP_PHASE_RUNNING = 1,
    MSUP_PHASE_DRAINING = 2, /* no new checkouts; clients come back until the deadline */
    MSUP_PHASE_STOPPING = 3, /* deadline passed: escalating to stragglers */
    MSUP_PHASE_STOPPED = 4,  /* final summary written */
};

/* A registry row (stats segment) is claimed with a CAS UNUSED->CLAIMING (by
 * the supervisor, or by a worker that runs before any supervisor), its
 * fields are written, then ACTIVE is stored with release: a reader never
 * sees a half-written name.  Registrants scan from the cluster's index in
 * the configuration and wait on a CLAIMING row before passing it (it may be
 * the same cluster).  Control rows use the same states; only the
 * supervisor writes them. */
enum msup_row_state { MSUP_ROW_UNUSED = 0, MSUP_ROW_ACTIVE = 1, MSUP_ROW_REMOVED = 2, MSUP_ROW_CLAIMING = 3 };

/* A short error record, readable without tearing (see the seqlock rule). */
typedef struct msup_last_error {
    _Atomic uint32_t seq;
    uint32_t domain;           /* bson_error_t domain, or 0 */
    uint32_t code;             /* bson_error_t code, or a mongosup code */
    uint32_t fail_class;       /* enum msup_fail_class */
    uint64_t time_ns;          /* CLOCK_REALTIME */
    char message[MSUP_ERRMSG_MAX]; /* always redacted */
} msup_last_error_t;

/* Counters for one cluster, in one worker slot or in the retired totals.
 * Written by the slot's worker only; folded by the supervisor. */
typedef struct msup_stats {
    /* Gauges (live only: zeroed, not folded, when a slot is reaped). */
    alignas(MSUP_CACHE_LINE) _Atomic int64_t pool_in_use;
    _Atomic int64_t pool_idle;
    _Atomic int64_t pool_created;     /* clients that exist now (in use + idle) */
    _Atomic int64_t pool_max;         /* this worker's max_pool_size for the cluster */
    _Atomic int64_t budget_tokens;    /* connection-budget tokens this worker holds */
    _Atomic uint64_t reconnect_ack;   /* last reconnect generation this worker rebuilt for */
    _Atomic uint64_t reconnect_ack_ns;/* when (CLOCK_REALTIME) */
    _Atomic uint64_t config_generation_seen;

    /* Monotonic counters (folded into the retired totals). */
    alignas(MSUP_CACHE_LINE) _Atomic uint64_t checkouts;
    _Atomic uint64_t checkout_waits;      /* had to wait for a client */
    _Atomic uint64_t checkout_wait_us;    /* total time spent waiting */
    _Atomic uint64_t checkout_timeouts;
    _Atomic uint64_t max_reached;         /* a checkout found the pool at max_pool_size */
    _Atomic uint64_t budget_waits;        /* a checkout waited on the cluster-wide budget */
    _Atomic uint64_t clients_created;     /* clients ever created (pool growth) */
    _Atomic uint64_t clients_destroyed;   /* trimmed, rebuilt, closed */
    _Atomic uint64_t ops[MSUP_OP__COUNT];
    _Atomic uint64_t failures[MSUP_FAIL__COUNT];
    _Atomic uint64_t retries;
    _Atomic uint64_t reconnects;          /* pool rebuilds */

    /* Latency histogram of successful and failed commands.  Its count is
     * not stored: it is the sum of ops[] (one add less on the record path). */
    alignas(MSUP_CACHE_LINE) _Atomic uint64_t hist_sum_us;
    _Atomic uint64_t hist_max_us;
    _Atomic uint32_t hist_octaves;        /* bit o set once octave o has a non-zero bucket */
    uint32_t hist_pad_;
    alignas(MSUP_CACHE_LINE) _Atomic uint64_t hist[MSUP_HIST_BUCKETS];

    alignas(MSUP_CACHE_LINE) msup_last_error_t last_error;
    /* Live gauge (zeroed, not folded): handshakes this worker has in progress
     * under the cluster's max_connecting; the reaper returns them with the
     * tokens (budget.c).  It sits in the padding after last_error: the size
     * and every other offset are unchanged. */
    _Atomic int64_t budget_connecting;
    /* Live flag (zeroed, not folded), in the same padding: 1 while this
     * worker's redacted URI for the cluster differs from the one the
     * supervisor's row shows (a MONGOSUP_<CLUSTER>_URI override that the
     * worker's environment lacks): the row's health then says nothing
     * about this worker's connections.  Written by the worker (worker_trust.c:
     * msup_wcluster_check_uri), shown as uri_mismatch by the monitor. */
    _Atomic uint32_t uri_mismatch;
    /* Slow (and, when configured, failed) operations of this worker on this
     * cluster: a lock-free ring with per-entry sequences (slowlog.h).  Its
     * slow_ops count is folded into the retired totals; its entries are not
     * (they are live only, zeroed with the slot). */
    alignas(MSUP_CACHE_LINE) msup_slowlog_t slowlog;
} msup_stats_t;

/* One worker process. */
typedef struct msup_slot {
    alignas(MSUP_CACHE_LINE) _Atomic uint32_t state; /* enum msup_slot_state */
    int32_t pid;
    uint64_t start_time;       /* /proc/<pid>/stat field 22: tells pid reuse */
    uint64_t epoch;            /* claim count of this slot: tells folds apart */
    uint64_t attached_ns;      /* CLOCK_REALTIME */
    _Atomic uint64_t exited_ns;
    _Atomic uint32_t draining_ack; /* the worker saw DRAINING */
    uint32_t flags;
    char appname[48];
    /* followed by msup_stats_t stats[max_clusters] (cache-line aligned) */
} msup_slot_t;

/* The connection budget's limits (0 = unlimited). */
typedef struct msup_budget_limits {
    _Atomic uint32_t max_connections;
    _Atomic uint32_t max_connecting;
} msup_budget_limits_t;

/* ---- the control segment (only the supervisor writes it) ---- */

/* One configured cluster as the supervisor sees it: health, reconnect
 * generation, the budget limits workers enforce. */
typedef struct msup_cluster_row {
    alignas(MSUP_CACHE_LINE) _Atomic uint32_t row_state; /* enum msup_row_state */
    _Atomic uint32_t health;             /* enum msup_health */
    _Atomic uint64_t health_since_ns;    /* CLOCK_REALTIME */
    _Atomic uint64_t last_check_ns;
    _Atomic uint64_t last_rtt_us;
    _Atomic uint32_t consecutive_ok;
    _Atomic uint32_t consecutive_fail;
    _Atomic uint64_t transitions;
    _Atomic uint64_t checks_passed;
    _Atomic uint64_t checks_failed;
    _Atomic uint64_t reconnect_generation; /* workers rebuild their pool when it moves */
    _Atomic uint64_t reconnect_at_ns;      /* when it last moved */
    _Atomic uint32_t has_primary;          /* replica sets: last hello saw a primary */
    _Atomic uint32_t circuit_breaker;      /* 1: workers fail fast while DOWN */
    _Atomic uint32_t max_pool_size;        /* as configured, for display */
    uint32_t is_replica_set;
    /* The connection budget's limits (0 = unlimited): authoritative while
     * the supervisor is alive; workers enforce their own configuration's
     * otherwise (docs/security.md). */
    msup_budget_limits_t limits;
    char name[MSUP_NAME_MAX];
    char uri_display[MSUP_URI_DISPLAY_MAX]; /* redacted */
    /* A budget shared across hosts (fleet/, docs/fleet.md), mirrored here
     * by mongosupd's fleet thread because the tools never talk to etcd:
     * fleet_max_connections (0: not shared), the hosts with a record in
     * the last read of etcd, and this host's share from that read.  This
     * host's cap itself is limits.max_connections. */
    _Atomic uint32_t fleet_max_connections;
    _Atomic uint32_t fleet_hosts;
    _Atomic uint32_t fleet_share;

    alignas(MSUP_CACHE_LINE) msup_last_error_t last_check_error;
} msup_cluster_row_t;

/* The control segment's header. */
typedef struct msup_header {
    alignas(MSUP_CACHE_LINE) _Atomic uint64_t magic; /* MSUP_CTL_MAGIC, published last */
    uint32_t layout_version;
    uint32_t header_size;
    uint64_t total_size;
    uint32_t owner_uid;
    uint32_t max_clusters;
    uint32_t cluster_row_size;
    uint32_t creator_pid;
    uint64_t cluster_off;
    uint64_t created_ns;         /* CLOCK_REALTIME */
    char segment_name[MSUP_NAME_MAX];
    char environment[MSUP_NAME_MAX];

    /* Supervisor liveness. */
    alignas(MSUP_CACHE_LINE) _Atomic int32_t supervisor_pid;   /* 0: none yet */
    uint32_t pad0_;
    _Atomic uint64_t supervisor_start_time;  /* /proc stat field 22 */
    _Atomic uint64_t supervisor_started_ns;  /* CLOCK_REALTIME */
    _Atomic uint64_t heartbeat_mono_ns;      /* CLOCK_MONOTONIC (system-wide) */
    _Atomic uint64_t heartbeat_ns;           /* CLOCK_REALTIME, for display */
    _Atomic uint64_t supervisor_restarts;    /* adoptions */

    /* Configuration and shutdown (requests come over the control socket, never through here). */
    alignas(MSUP_CACHE_LINE) _Atomic uint64_t config_generation;
    _Atomic uint32_t phase;                  /* enum msup_phase */
    _Atomic uint32_t cluster_count;          /* rows in use (ACTIVE or REMOVED) */
    _Atomic uint64_t drain_deadline_mono_ns;
    _Atomic uint64_t drain_started_ns;
    _Atomic uint64_t heartbeat_timeout_ms;   /* how old a heartbeat may be and still count */
    /* CLOCK_MONOTONIC (one clock for the whole host) when the supervisor last
     * applied a configuration, stored before config_generation moves: a
     * worker whose configuration was loaded before it (in a prefork master)
     * reads its file again at attach. */
    _Atomic uint64_t config_applied_mono_ns;
} msup_header_t;

/* ---- the stats segment (workers write it) ---- */

/* One cluster of the registry: its name (the index it has is the one its
 * counters use everywhere) and the cluster-wide budget line. */
typedef struct msup_reg_row {
    alignas(MSUP_CACHE_LINE) _Atomic uint32_t row_state; /* enum msup_row_state */
    uint32_t pad_;
    char name[MSUP_NAME_MAX];

    /* Cluster-wide connection budget: the only line every worker writes. */
    alignas(MSUP_CACHE_LINE) _Atomic int64_t budget_in_use;  /* tokens held by all workers */
    _Atomic int64_t budget_connecting;                       /* handshakes in progress */
    /* The limits the registrant's configuration gave (display only: no
     * process enforces a limit read from this worker-writable line). */
    msup_budget_limits_t limits;
    /* Fairness (budget.c): the last budget wait by a worker below its fair
     * share (CLOCK_MONOTONIC, system-wide), and the fair share itself,
     * recomputed lazily by whichever worker finds it older than a second. */
    _Atomic uint64_t budget_wait_mono_ns;
    _Atomic uint64_t budget_share_mono_ns;
    _Atomic uint32_t budget_share;      /* tokens per interested worker; 0 = unlimited budget */
    _Atomic uint32_t budget_interested; /* workers that share was computed for */
} msup_reg_row_t;

/* Retired totals: the folded counters of reaped slots. */
typedef struct msup_retired_hdr {
    alignas(MSUP_CACHE_LINE) _Atomic uint64_t seq;   /* odd while a fold is being published */
    _Atomic uint32_t active;                         /* 0 or 1: the copy readers use */
    uint32_t pad_;
    /* What the active copy last folded: lets a later folder finish an
     * interrupted reap exactly once. */
    _Atomic uint64_t folded_slot[2];
    _Atomic uint64_t folded_epoch[2];
    _Atomic uint64_t slots_reaped[2];
    /* The fold lock: 0, or the holder's pid << 32 | the low 32 bits of its
     * start time.  Taken by CAS; stolen only from a holder that is gone. */
    alignas(MSUP_CACHE_LINE) _Atomic uint64_t fold_owner;
    /* followed by 2 x msup_stats_t[max_clusters] */
} msup_retired_hdr_t;

/* The stats segment's header. */
typedef struct msup_stats_header {
    alignas(MSUP_CACHE_LINE) _Atomic uint64_t magic; /* MSUP_STATS_MAGIC, published last */
    uint32_t layout_version;
    uint32_t header_size;
    uint64_t total_size;
    uint32_t owner_uid;
    uint32_t max_workers;
    uint32_t max_clusters;
    uint32_t reg_row_size;
    uint32_t slot_size;          /* msup_slot_t + max_clusters stats */
    uint32_t stats_size;         /* sizeof(msup_stats_t) */
    uint64_t reg_off;
    uint64_t retired_off;
    uint64_t slot_off;
    uint64_t created_ns;         /* CLOCK_REALTIME */
    uint32_t creator_pid;
    uint32_t hist_buckets;       /* MSUP_HIST_BUCKETS at creation */
    char segment_name[MSUP_NAME_MAX]; /* the control segment's (configured) name */
    char environment[MSUP_NAME_MAX];

    alignas(MSUP_CACHE_LINE) _Atomic uint32_t cluster_count; /* registry rows in use */
} msup_stats_header_t;

_Static_assert(sizeof(msup_last_error_t) == 136, "last error record size");
_Static_assert(sizeof(msup_stats_t) % MSUP_CACHE_LINE == 0, "stats are whole cache lines");
_Static_assert(offsetof(msup_stats_t, checkouts) % MSUP_CACHE_LINE == 0, "counters on their own line");
_Static_assert(offsetof(msup_stats_t, hist) % MSUP_CACHE_LINE == 0, "histogram on its own line");
_Static_assert(sizeof(msup_slot_t) % MSUP_CACHE_LINE == 0, "slot header is whole cache lines");
_Static_assert(sizeof(msup_cluster_row_t) % MSUP_CACHE_LINE == 0, "cluster row is whole cache lines");
_Static_assert(offsetof(msup_cluster_row_t, fleet_share) + sizeof(uint32_t) <= offsetof(msup_cluster_row_t, last_check_error),
               "the fleet mirror fits before the last check error (rows stay 640 bytes)");
_Static_assert(sizeof(msup_reg_row_t) % MSUP_CACHE_LINE == 0, "registry row is whole cache lines");
_Static_assert(offsetof(msup_reg_row_t, budget_in_use) % MSUP_CACHE_LINE == 0, "budget counters on their own line");
_Static_assert(sizeof(msup_stats_header_t) % MSUP_CACHE_LINE == 0, "stats header is whole cache lines");
_Static_assert(offsetof(msup_stats_t, budget_connecting) > offsetof(msup_stats_t, last_error) &&
               offsetof(msup_stats_t, slowlog) - offsetof(msup_stats_t, last_error) == 3 * MSUP_CACHE_LINE,
               "budget_connecting lives in last_error's padding (no layout growth)");
_Static_assert(offsetof(msup_stats_t, uri_mismatch) + sizeof(uint32_t) <= offsetof(msup_stats_t, slowlog) &&
               offsetof(msup_stats_t, slowlog) - offsetof(msup_stats_t, last_error) == 3 * MSUP_CACHE_LINE,
               "uri_mismatch lives in last_error's padding (no layout growth)");
_Static_assert(offsetof(msup_reg_row_t, budget_interested) < offsetof(msup_reg_row_t, budget_in_use) + MSUP_CACHE_LINE,
               "budget fields stay on the budget line");
_Static_assert(sizeof(msup_retired_hdr_t) % MSUP_CACHE_LINE == 0, "retired header size");
_Static_assert(sizeof(msup_header_t) % MSUP_CACHE_LINE == 0, "header is whole cache lines");
_Static_assert(sizeof(msup_header_t) <= 4096, "header fits a page");
_Static_assert(MSUP_OP__COUNT == 3 && MSUP_FAIL__COUNT == 8, "class counts are part of the layout");
_Static_assert(MSUP_HIST_OCTAVES <= 32, "octave mask is 32 bits");

/* Sizes of the two objects for a geometry: the formulas quoted in docs/segment.md. */
static inline uint64_t msup_ctlseg_size(uint32_t max_clusters)
{
    return sizeof(msup_header_t) + (uint64_t)max_clusters * sizeof(msup_cluster_row_t);
}

static inline uint64_t msup_layout_size(uint32_t max_workers, uint32_t max_clusters)
{
    uint64_t hdr = sizeof(msup_stats_header_t);
    uint64_t rows = (uint64_t)max_clusters * sizeof(msup_reg_row_t);
    uint64_t retired = sizeof(msup_retired_hdr_t) + 2ull * max_clusters * sizeof(msup_stats_t);
    uint64_t slot = sizeof(msup_slot_t) + (uint64_t)max_clusters * sizeof(msup_stats_t);
    return hdr + rows + retired + (uint64_t)max_workers * slot;
}

#endif
