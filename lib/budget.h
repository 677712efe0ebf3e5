/* budget.h: the cluster-wide connection budget: tokens and handshake slots in the segment (internal). */
#ifndef MONGOSUP_BUDGET_H
#define MONGOSUP_BUDGET_H

#include <mongoc/mongoc.h>
#include <stdbool.h>
#include <stdint.h>

#include "segment.h"

/*
 * One token = one socket that a worker's pool may open to the cluster.
 * The registry row's budget line (stats segment) holds the count of every worker on the host
 * (budget_in_use, CAS below max_connections) and of the handshakes in
 * progress (budget_connecting, CAS below max_connecting); each worker's
 * slot holds its own share of both, so the reaper can give a dead worker's
 * tokens back exactly once (msup_budget_reclaim).
 *
 * Order of the two writes: a token is taken from the row first and then
 * recorded in the slot, and given back to the slot first and then to the
 * row.  A worker killed between the two leaks one token (the budget errs
 * low) instead of letting the reaper return a token twice (the cap would
 * err high).  docs/budget.md describes the whole mechanism.
 *
 * The limits are never read from the worker-writable line: every function
 * takes the effective limits (a worker's: the trusted control row's while
 * the supervisor is alive, its own configuration's otherwise).
 */

/* How long a budget wait keeps the cluster "contended" (or "starving"):
 * a checkout that still waits renews it every 10 ms (checkout.c). */
#define MSUP_BUDGET_CONTENTION_NS (250ull * 1000 * 1000)
/* How old the fair share may get before a worker recomputes it: about one
 * upkeep budget tick (pool.c), so a worker that starts asking is counted in
 * the share within ~50 ms (docs/budget.md, "Fairness"). */
#define MSUP_BUDGET_SHARE_TTL_NS  (50ull * 1000 * 1000)

/* ---- tokens (any process; lock-free) ---- */

/* Takes n tokens when the cluster stays within max_connections (0: no
 * limit, but still counted so the monitor shows connections open).
 * Returns false, taking nothing, when they do not fit. */
bool msup_budget_try_acquire(msup_reg_row_t *row, const msup_budget_limits_t *limits, msup_stats_t *mine, uint32_t n);

/* Gives back n tokens taken with msup_budget_try_acquire. */
void msup_budget_release(msup_reg_row_t *row, msup_stats_t *mine, uint32_t n);

/* Takes a handshake slot below max_connecting (0: no limit, counted). */
bool msup_budget_try_begin_connect(msup_reg_row_t *row, const msup_budget_limits_t *limits, msup_stats_t *mine);

/* Like try_begin_connect, but waits (sleeping 1 ms, doubling up to 16 ms)
 * until deadline_mono_ns (CLOCK_MONOTONIC).  Never call it with a mutex
 * held.  Returns false at the deadline. */
bool msup_budget_begin_connect(msup_reg_row_t *row, const msup_budget_limits_t *limits, msup_stats_t *mine,
                               uint64_t deadline_mono_ns);

void msup_budget_end_connect(msup_reg_row_t *row, msup_stats_t *mine);

/* ---- supervisor side ---- */

/* Publishes limits (the supervisor into its control row at start and
 * reload; a registrant into the registry line, for display; a worker into
 * its effective limits).  A lower limit takes nothing away by force:
 * workers shed idle clients as they come back
 * (msup_budget_account_should_shed) until the cluster is within it. */
void msup_budget_apply_limits(msup_budget_limits_t *limits, uint32_t max_connections, uint32_t max_connecting);

/* Reaper: returns the tokens and handshake slots a dead or exited worker's
 * stats still hold to the row.  Exchanges make a second call a no-op.
 * Returns the number of tokens returned. */
int64_t msup_budget_reclaim(msup_reg_row_t *row, msup_stats_t *dead);

/* ---- fairness ---- */

/* Counts a checkout that waits on the budget (mine->budget_waits) and, when
 * `signal` is set, marks the cluster contended. */
void msup_budget_note_wait(msup_reg_row_t *row, msup_stats_t *mine, bool signal, uint64_t now_mono_ns);

/* True when a worker below its fair share waited on the budget within the
 * last MSUP_BUDGET_CONTENTION_NS: workers above their floor then hold at
 * most ceil(B/N) tokens (B = max_connections, N = interested workers). */
bool msup_budget_contended(const msup_reg_row_t *row, uint64_t now_mono_ns);

/* True when the wait came from a worker below its floor of clients or below
 * floor(B/N): the others then hold at most floor(B/N). */
bool msup_budget_starving(const msup_reg_row_t *row, uint64_t now_mono_ns);

/* Tokens per interested worker: max_connections / the ACTIVE slots that
 * hold tokens for this cluster or ever waited on its budget.  0 when the
 * budget is unlimited.  Recomputed (a scan of the slot table) by one
 * worker at most once per MSUP_BUDGET_SHARE_TTL_NS; otherwise one load. */
uint32_t msup_budget_fair_share(const msup_segment_t *seg, uint32_t row_index, uint32_t max_connections,
                                uint64_t now_mono_ns);

/* ---- what a pool costs ---- */

typedef struct msup_budget_cost {
    uint32_t per_client; /* sockets one client may open: one per server it may use */
    uint32_t per_pool;   /* the pool's monitoring sockets, from its first pop to its destroy */
} msup_budget_cost_t;

/* The rule of docs/budget.md: monitors cost (1 + streaming) per host
 * listed; a client costs 1 when there is one host, else one per host (a
 * client may keep a socket to every server it ever selected: a former
 * primary after a stepdown, each mongos of a list, each secondary read). */
msup_budget_cost_t msup_budget_cost(uint32_t hosts, bool streaming);

/* The same from a URI; counts monitors as streaming (2 per host) until
 * msup_budget_account_settle_monitors sees the servers' hello replies. */
msup_budget_cost_t msup_budget_cost_for_uri(const mongoc_uri_t *uri);

/* ---- one pool's account: what the pool integration calls ----
 *
 * Every function below runs with the pool's owner mutex held (pool.c
 * functions run with c->mu held), except settle_monitors and handshake,
 * which talk to the server. */
typedef struct msup_budget_account {
    msup_segment_t *seg;        /* NULL: no row, budget off (nothing limited, nothing counted) */
    msup_reg_row_t *row;        /* where the tokens came from: a remap must not move them */
    const msup_budget_limits_t *limits; /* the effective limits (the owner's, never the line's) */
    msup_stats_t *stats;
    uint32_t row_index;
    uint32_t floor;             /* clients kept whatever the contention: max(min_pool_size, 1) */
    msup_budget_cost_t cost;
    uint32_t clients;           /* clients paid for */
    uint32_t last_grow;         /* tokens the last grow took (for ungrow) */
    bool monitors_paid;         /* the first growth paid for the monitors */
    /* Changed by settle_monitors without the mutex (a thread with a client
     * out: the pool cannot be closed meanwhile), hence atomic. */
    _Atomic uint32_t monitor_tokens;
    _Atomic bool monitors_settled;
    /* The first growth takes a handshake slot before the pop that starts
     * the monitors, and the first handshake uses it: so the monitors'
     * connections are under max_connecting too. */
    _Atomic bool connect_held;
} msup_budget_account_t;

void msup_budget_account_init(msup_budget_account_t *acct, msup_segment_t *seg, int row_index,
                              msup_stats_t *stats, msup_budget_cost_t cost, uint32_t min_pool_size,
                              const msup_budget_limits_t *limits);

/* Before the pool creates a client: takes its tokens (the first one also
 * pays for the monitors, which the first pop starts, and takes a handshake
 * slot for them).  Never blocks.  Refuses when the budget is exhausted,
 * when the first growth finds no handshake slot, or when the cluster is
 * contended and this worker already holds its fair share and its floor of
 * clients. */
bool msup_budget_account_grow(msup_budget_account_t *acct, uint64_t now_mono_ns);

/* The pop after a granted grow did not create a client: gives it back. */
void msup_budget_account_ungrow(msup_budget_account_t *acct);

/* `clients` of this pool were destroyed (idle trim, shedding). */
void msup_budget_account_shrink(msup_budget_account_t *acct, uint32_t clients);

/* The pool was destroyed: every token it holds goes back. */
void msup_budget_account_close(msup_budget_account_t *acct);

/* A checkout of this pool's cluster waits because grow was refused. */
void msup_budget_account_note_wait(msup_budget_account_t *acct, uint64_t now_mono_ns);

/* The same checkout still waits (it retries every few ms): keeps the
 * contention mark fresh without counting another budget wait. */
void msup_budget_account_renew_wait(msup_budget_account_t *acct, uint64_t now_mono_ns);

/* At checkin (or upkeep), with `idle` clients idle in this pool (at
 * checkin: counting the one coming back): true when one of them should be
 * destroyed now rather than kept: the cluster is above a (lowered)
 * max_connections, or contended while this worker holds more than its fair
 * share.  Never below the floor of clients. */
bool msup_budget_account_should_shed(const msup_budget_account_t *acct, uint32_t idle, uint64_t now_mono_ns);

/* Upkeep: true while shedding may be due (the cluster is above a lowered
 * max_connections, or contended).  Checkins ask should_shed only while the
 * upkeep saw this, so a checkin never reads the budget line otherwise.
 * *limited: the cluster has a max_connections at all. */
bool msup_budget_account_pressed(const msup_budget_account_t *acct, uint64_t now_mono_ns, bool *limited);

/* After the pool's first handshake: the servers' hello replies tell whether
 * the monitors stream (2 sockets per server) or poll (1); the surplus
 * reserved by msup_budget_cost_for_uri goes back.  Idempotent. */
void msup_budget_account_settle_monitors(msup_budget_account_t *acct, mongoc_client_t *client);

/* Opens a fresh client's connection (or re-checks one that may have died
 * in an outage) under max_connecting: waits for a handshake slot until
 * deadline_mono_ns (or uses the one the pool's first growth took), pings
 * (which connects and authenticates; once more when the first ping found
 * the socket dead), ends the handshake, settles the monitors.  Without the
 * pool mutex.  Returns false (with *error set when not NULL) when no slot
 * came in time or the ping failed; the pool destroys such a client
 * (pool.c: msup_pool_verify), it must not reach the application. */
bool msup_budget_handshake(msup_budget_account_t *acct, mongoc_client_t *client, uint64_t deadline_mono_ns,
                           bson_error_t *error);

#endif
