/* budget.c: the cluster-wide connection budget: CAS-bounded tokens and handshake slots, fairness, pool accounts. */
#include <time.h>

#include "budget.h"

#define NS_PER_MS 1000000ull

/* Adds n to *counter when the result stays within limit (0: no limit). */
static bool cas_add_below(_Atomic int64_t *counter, const _Atomic uint32_t *limit_word, uint32_t n)
{
    int64_t cur = atomic_load_explicit(counter, memory_order_relaxed);
    for (;;) {
        /* Re-read the limit on every attempt: a reload may lower it meanwhile. */
        uint32_t limit = atomic_load_explicit((_Atomic uint32_t *)limit_word, memory_order_relaxed);
        if (limit != 0 && cur + (int64_t)n > (int64_t)limit)
            return false;
        if (atomic_compare_exchange_weak_explicit(counter, &cur, cur + (int64_t)n, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return true;
    }
}

bool msup_budget_try_acquire(msup_reg_row_t *row, const msup_budget_limits_t *limits, msup_stats_t *mine, uint32_t n)
{
    if (n == 0)
        return true;
    if (!cas_add_below(&row->budget_in_use, &limits->max_connections, n))
        return false;
    /* Row first, then slot: a death in between leaks (see budget.h). */
    atomic_fetch_add_explicit(&mine->budget_tokens, (int64_t)n, memory_order_release);
    return true;
}

void msup_budget_release(msup_reg_row_t *row, msup_stats_t *mine, uint32_t n)
{
    if (n == 0)
        return;
    atomic_fetch_sub_explicit(&mine->budget_tokens, (int64_t)n, memory_order_acq_rel);
    atomic_fetch_sub_explicit(&row->budget_in_use, (int64_t)n, memory_order_acq_rel);
}

bool msup_budget_try_begin_connect(msup_reg_row_t *row, const msup_budget_limits_t *limits, msup_stats_t *mine)
{
    if (!cas_add_below(&row->budget_connecting, &limits->max_connecting, 1))
        return false;
    atomic_fetch_add_explicit(&mine->budget_connecting, 1, memory_order_release);
    return true;
}

bool msup_budget_begin_connect(msup_reg_row_t *row, const msup_budget_limits_t *limits, msup_stats_t *mine,
                               uint64_t deadline_mono_ns)
{
    uint64_t nap_ns = NS_PER_MS;
    for (;;) {
        if (msup_budget_try_begin_connect(row, limits, mine))
            return true;
        /* No cross-process wake-up: handshakes last milliseconds, a short
         * doubling nap costs little and never spins on the shared line. */
        uint64_t now = msup_mono_ns();
        if (now >= deadline_mono_ns)
            return false;
        uint64_t nap = deadline_mono_ns - now < nap_ns ? deadline_mono_ns - now : nap_ns;
        struct timespec ts = {(time_t)(nap / 1000000000ull), (long)(nap % 1000000000ull)};
        nanosleep(&ts, NULL);
        if (nap_ns < 16 * NS_PER_MS)
            nap_ns *= 2;
    }
}

void msup_budget_end_connect(msup_reg_row_t *row, msup_stats_t *mine)
{
    atomic_fetch_sub_explicit(&mine->budget_connecting, 1, memory_order_acq_rel);
    atomic_fetch_sub_explicit(&row->budget_connecting, 1, memory_order_acq_rel);
}

void msup_budget_apply_limits(msup_budget_limits_t *limits, uint32_t max_connections, uint32_t max_connecting)
{
    atomic_store_explicit(&limits->max_connections, max_connections, memory_order_release);
    atomic_store_explicit(&limits->max_connecting, max_connecting, memory_order_release);
}

int64_t msup_budget_reclaim(msup_reg_row_t *row, msup_stats_t *dead)
{
    int64_t held = atomic_exchange_explicit(&dead->budget_tokens, 0, memory_order_acq_rel);
    if (held > 0)
        atomic_fetch_sub_explicit(&row->budget_in_use, held, memory_order_acq_rel);
    int64_t connecting = atomic_exchange_explicit(&dead->budget_connecting, 0, memory_order_acq_rel);
    if (connecting > 0)
        atomic_fetch_sub_explicit(&row->budget_connecting, connecting, memory_order_acq_rel);
    return held > 0 ? held : 0;
}

/* ---- fairness ---- */

/*
 * Two levels of contention share one stamp, budget_wait_mono_ns: its low
 * bit says "starving" (a worker below its floor or below floor(B/N)
 * waits), clear it says "contended" (a worker below ceil(B/N) waits).  A
 * fresh starving stamp is never overwritten by a contended one, so it lasts
 * MSUP_BUDGET_CONTENTION_NS after the last starving wait.
 */
enum contention { CALM = 0, CONTENDED = 1, STARVING = 2 };

static enum contention contention_at(const msup_reg_row_t *row, uint64_t now_mono_ns)
{
    uint64_t last = atomic_load_explicit(&row->budget_wait_mono_ns, memory_order_relaxed);
    if (last == 0 || now_mono_ns >= (last & ~1ull) + MSUP_BUDGET_CONTENTION_NS)
        return CALM;
    return (last & 1) ? STARVING : CONTENDED;
}

static void stamp_contention(msup_reg_row_t *row, enum contention level, uint64_t now_mono_ns)
{
    if (level == CALM)
        return;
    uint64_t stamp = (now_mono_ns & ~1ull) | (level == STARVING ? 1u : 0u);
    /* Many waiters stamp the same line: skip the store when it is fresh
     * (and never let a contended stamp hide a starving one). */
    uint64_t last = atomic_load_explicit(&row->budget_wait_mono_ns, memory_order_relaxed);
    enum contention now_level = contention_at(row, now_mono_ns);
    if (now_level == STARVING && level != STARVING)
        return;
    if (now_level == level && now_mono_ns <= (last & ~1ull) + NS_PER_MS)
        return;
    atomic_store_explicit(&row->budget_wait_mono_ns, stamp, memory_order_relaxed);
}

void msup_budget_note_wait(msup_reg_row_t *row, msup_stats_t *mine, bool signal, uint64_t now_mono_ns)
{
    atomic_fetch_add_explicit(&mine->budget_waits, 1, memory_order_relaxed);
    if (signal)
        stamp_contention(row, CONTENDED, now_mono_ns);
}

bool msup_budget_contended(const msup_reg_row_t *row, uint64_t now_mono_ns)
{
    return contention_at(row, now_mono_ns) != CALM;
}

bool msup_budget_starving(const msup_reg_row_t *row, uint64_t now_mono_ns)
{
    return contention_at(row, now_mono_ns) == STARVING;
}

static uint32_t share_of(uint32_t max, uint32_t interested)
{
    uint32_t share = max / (interested ? interested : 1);
    return share ? share : 1;
}

uint32_t msup_budget_fair_share(const msup_segment_t *seg, uint32_t row_index, uint32_t max,
                                uint64_t now_mono_ns)
{
    msup_reg_row_t *row = msup_segment_reg(seg, row_index);
    if (max == 0)
        return 0;
    /* The line caches how many workers are interested, not a share: each
     * worker divides its own effective limit (never one read from here). */
    uint64_t stamp = atomic_load_explicit(&row->budget_share_mono_ns, memory_order_acquire);
    if ((stamp != 0 && now_mono_ns < stamp + MSUP_BUDGET_SHARE_TTL_NS) ||
        !atomic_compare_exchange_strong_explicit(&row->budget_share_mono_ns, &stamp, now_mono_ns ? now_mono_ns : 1,
                                                 memory_order_acq_rel, memory_order_relaxed)) {
        /* Fresh, or another worker is recomputing it (0 computed yet: no fairness). */
        uint32_t interested = atomic_load_explicit(&row->budget_interested, memory_order_relaxed);
        return atomic_load_explicit(&row->budget_share, memory_order_relaxed) == 0 ? 0 : share_of(max, interested);
    }
    /* Elected: count the workers that use this cluster's budget. */
    uint32_t interested = 0;
    for (uint32_t i = 0; i < seg->max_workers; i++) {
        const msup_slot_t *slot = msup_segment_slot(seg, i);
        if (atomic_load_explicit(&slot->state, memory_order_relaxed) != MSUP_SLOT_ACTIVE)
            continue;
        const msup_stats_t *s = msup_slot_stats(seg, i, row_index);
        if (atomic_load_explicit(&s->budget_tokens, memory_order_relaxed) > 0 ||
            atomic_load_explicit(&s->budget_waits, memory_order_relaxed) > 0)
            interested++;
    }
    uint32_t share = share_of(max, interested);
    atomic_store_explicit(&row->budget_interested, interested, memory_order_relaxed);
    atomic_store_explicit(&row->budget_share, share, memory_order_release);
    return share;
}

/* ---- cost ---- */

msup_budget_cost_t msup_budget_cost(uint32_t hosts, bool streaming)
{
    if (hosts == 0)
        hosts = 1;
    msup_budget_cost_t cost = {.per_client = hosts, .per_pool = hosts * (streaming ? 2u : 1u)};
    return cost;
}

/* Hosts assumed behind an SRV name without srvMaxHosts: a replica set of 3. */
#define SRV_HOSTS_GUESS 3u

msup_budget_cost_t msup_budget_cost_for_uri(const mongoc_uri_t *uri)
{
    uint32_t hosts = 0;
    for (const mongoc_host_list_t *h = mongoc_uri_get_hosts(uri); h != NULL; h = h->next)
        hosts++;
    if (mongoc_uri_get_srv_hostname(uri) != NULL) {
        int32_t srv_max = mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SRVMAXHOSTS, 0);
        hosts = srv_max > 0 ? (uint32_t)srv_max : SRV_HOSTS_GUESS;
    }
    if (mongoc_uri_get_option_as_bool(uri, MONGOC_URI_LOADBALANCED, false)) {
        /* One socket per client through the balancer; no monitors. */
        msup_budget_cost_t lb = {.per_client = 1, .per_pool = 0};
        return lb;
    }
    if (mongoc_uri_get_option_as_bool(uri, MONGOC_URI_DIRECTCONNECTION, false))
        hosts = 1;
    return msup_budget_cost(hosts, true);
}

/* ---- one pool's account ---- */

void msup_budget_account_init(msup_budget_account_t *acct, msup_segment_t *seg, int row_index,
                              msup_stats_t *stats, msup_budget_cost_t cost, uint32_t min_pool_size,
                              const msup_budget_limits_t *limits)
{
    bool on = seg != NULL && row_index >= 0 && (uint32_t)row_index < seg->max_clusters && stats != NULL &&
              limits != NULL;
    acct->seg = on ? seg : NULL;
    acct->row = on ? msup_segment_reg(seg, (uint32_t)row_index) : NULL;
    acct->limits = on ? limits : NULL;
    acct->stats = on ? stats : NULL;
    acct->row_index = on ? (uint32_t)row_index : 0;
    acct->floor = min_pool_size > 1 ? min_pool_size : 1;
    acct->cost = cost;
    acct->clients = 0;
    acct->last_grow = 0;
    acct->monitors_paid = false;
    atomic_init(&acct->monitor_tokens, 0);
    atomic_init(&acct->monitors_settled, false);
    atomic_init(&acct->connect_held, false);
}

static uint32_t max_connections(const msup_budget_account_t *acct)
{
    return atomic_load_explicit((_Atomic uint32_t *)&acct->limits->max_connections, memory_order_acquire);
}

/* Tokens this worker holds for the cluster, all pools together. */
static int64_t worker_tokens(const msup_budget_account_t *acct)
{
    return atomic_load_explicit(&acct->stats->budget_tokens, memory_order_relaxed);
}

/* The most tokens a worker above its floor may hold while the cluster is
 * contended: floor(B/N) while someone starves, ceil(B/N) while someone
 * below that waits; 0 when nothing limits it. */
static uint32_t share_limit(const msup_budget_account_t *acct, enum contention level, uint64_t now_mono_ns)
{
    if (level == CALM)
        return 0;
    uint32_t max = max_connections(acct);
    uint32_t lo = msup_budget_fair_share(acct->seg, acct->row_index, max, now_mono_ns);
    if (lo == 0 || level == STARVING)
        return lo;
    uint32_t n = atomic_load_explicit(&acct->row->budget_interested, memory_order_relaxed);
    uint32_t hi = n > 0 ? (max + n - 1) / n : lo;
    return hi > lo ? hi : lo;
}

bool msup_budget_account_grow(msup_budget_account_t *acct, uint64_t now_mono_ns)
{
    if (acct->seg == NULL) {
        acct->clients++;
        acct->last_grow = 0;
        return true;
    }
    uint32_t n = acct->cost.per_client + (acct->monitors_paid ? 0 : acct->cost.per_pool);
    if (acct->clients >= acct->floor) {
        /* Someone below its share waits: leave the freed tokens to it. */
        uint32_t limit = share_limit(acct, contention_at(acct->row, now_mono_ns), now_mono_ns);
        if (limit != 0 && worker_tokens(acct) + (int64_t)n > (int64_t)limit)
            return false;
    }
    /* The first pop starts the monitors, which connect at once: their
     * handshakes need a slot before that pop (kept for the first handshake). */
    bool first = !acct->monitors_paid && acct->cost.per_pool > 0;
    if (first && !msup_budget_try_begin_connect(acct->row, acct->limits, acct->stats))
        return false;
    if (!msup_budget_try_acquire(acct->row, acct->limits, acct->stats, n)) {
        if (first)
            msup_budget_end_connect(acct->row, acct->stats);
        return false;
    }
    if (!acct->monitors_paid) {
        acct->monitors_paid = true;
        atomic_store_explicit(&acct->monitor_tokens, acct->cost.per_pool, memory_order_relaxed);
        atomic_store_explicit(&acct->connect_held, first, memory_order_release);
    }
    acct->clients++;
    acct->last_grow = n;
    return true;
}

/* Gives back the handshake slot of the first growth if no handshake used it. */
static void release_held_connect(msup_budget_account_t *acct)
{
    if (atomic_exchange_explicit(&acct->connect_held, false, memory_order_acq_rel))
        msup_budget_end_connect(acct->row, acct->stats);
}

void msup_budget_account_ungrow(msup_budget_account_t *acct)
{
    if (acct->clients == 0)
        return;
    acct->clients--;
    if (acct->seg == NULL)
        return;
    if (acct->last_grow > acct->cost.per_client) {
        /* That grow paid for the monitors too: the pop did not start them. */
        acct->monitors_paid = false;
        atomic_store_explicit(&acct->monitor_tokens, 0, memory_order_relaxed);
        release_held_connect(acct);
    }
    msup_budget_release(acct->row, acct->stats, acct->last_grow);
    acct->last_grow = 0;
}

void msup_budget_account_shrink(msup_budget_account_t *acct, uint32_t clients)
{
    if (clients > acct->clients)
        clients = acct->clients;
    acct->clients -= clients;
    if (acct->seg != NULL)
        msup_budget_release(acct->row, acct->stats, clients * acct->cost.per_client);
}

void msup_budget_account_close(msup_budget_account_t *acct)
{
    uint32_t monitors = atomic_exchange_explicit(&acct->monitor_tokens, 0, memory_order_acq_rel);
    if (acct->seg != NULL) {
        release_held_connect(acct);
        msup_budget_release(acct->row, acct->stats, acct->clients * acct->cost.per_client + monitors);
    }
    acct->clients = 0;
    acct->monitors_paid = false;
}

/* What a wait of this worker says to the others: starving when it is below
 * its floor or below floor(B/N) (they shed down to floor(B/N)), contended
 * when it is below ceil(B/N) (they shed what they hold above it); nothing
 * when it holds that much already (more would only churn connections). */
static enum contention wait_signals(const msup_budget_account_t *acct, uint64_t now_mono_ns)
{
    if (acct->clients < acct->floor)
        return STARVING;
    int64_t wanted = worker_tokens(acct) + (int64_t)acct->cost.per_client;
    uint32_t lo = msup_budget_fair_share(acct->seg, acct->row_index, max_connections(acct), now_mono_ns);
    if (lo == 0 || wanted <= (int64_t)lo)
        return STARVING;
    return wanted <= (int64_t)share_limit(acct, CONTENDED, now_mono_ns) ? CONTENDED : CALM;
}

void msup_budget_account_note_wait(msup_budget_account_t *acct, uint64_t now_mono_ns)
{
    if (acct->seg == NULL)
        return;
    enum contention level = wait_signals(acct, now_mono_ns);
    msup_budget_note_wait(acct->row, acct->stats, false, now_mono_ns);
    stamp_contention(acct->row, level, now_mono_ns);
}

void msup_budget_account_renew_wait(msup_budget_account_t *acct, uint64_t now_mono_ns)
{
    if (acct->seg != NULL)
        stamp_contention(acct->row, wait_signals(acct, now_mono_ns), now_mono_ns);
}

bool msup_budget_account_should_shed(const msup_budget_account_t *acct, uint32_t idle, uint64_t now_mono_ns)
{
    if (acct->seg == NULL || idle == 0 || acct->clients <= acct->floor)
        return false;
    uint32_t max = max_connections(acct);
    if (max != 0 && atomic_load_explicit(&acct->row->budget_in_use, memory_order_relaxed) > (int64_t)max)
        return true; /* a reload lowered the budget */
    uint32_t limit = share_limit(acct, contention_at(acct->row, now_mono_ns), now_mono_ns);
    /* Shed only while still at or above the limit afterwards: no ping-pong
     * with the grow rule, which refuses above the same limit. */
    return limit != 0 && worker_tokens(acct) - (int64_t)acct->cost.per_client >= (int64_t)limit;
}

bool msup_budget_account_pressed(const msup_budget_account_t *acct, uint64_t now_mono_ns, bool *limited)
{
    *limited = false;
    if (acct->seg == NULL)
        return false;
    uint32_t max = max_connections(acct);
    *limited = max != 0;
    if (max == 0)
        return false; /* no cap: no share, nothing to shed */
    return atomic_load_explicit(&acct->row->budget_in_use, memory_order_relaxed) > (int64_t)max ||
           msup_budget_contended(acct->row, now_mono_ns);
}

void msup_budget_account_settle_monitors(msup_budget_account_t *acct, mongoc_client_t *client)
{
    if (acct->seg == NULL || atomic_load_explicit(&acct->monitors_settled, memory_order_acquire))
        return;
    size_t n = 0;
    mongoc_server_description_t **sds = mongoc_client_get_server_descriptions(client, &n);
    uint32_t observed = 0;
    bool all_known = n > 0;
    for (size_t i = 0; i < n; i++) {
        const bson_t *hello = mongoc_server_description_hello_response(sds[i]);
        bson_iter_t it;
        if (hello == NULL || bson_empty(hello)) {
            all_known = false; /* not checked yet: keep what we reserved */
            break;
        }
        /* mongoc 1.23 streams (and adds an RTT socket) when the server's
         * hello carries a topologyVersion (MongoDB 4.4+). */
        observed += bson_iter_init_find(&it, hello, "topologyVersion") ? 2u : 1u;
    }
    mongoc_server_descriptions_destroy_all(sds, n);
    if (!all_known)
        return;
    bool expected = false;
    if (!atomic_compare_exchange_strong_explicit(&acct->monitors_settled, &expected, true, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return;
    /* More members than the URI lists cannot be reserved after the fact
     * (docs/budget.md: list every member); fewer give the surplus back. */
    uint32_t held = atomic_load_explicit(&acct->monitor_tokens, memory_order_relaxed);
    while (held > observed) {
        if (atomic_compare_exchange_weak_explicit(&acct->monitor_tokens, &held, observed, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            msup_budget_release(acct->row, acct->stats, held - observed);
            break;
        }
    }
}

bool msup_budget_handshake(msup_budget_account_t *acct, mongoc_client_t *client, uint64_t deadline_mono_ns,
                           bson_error_t *error)
{
    if (acct->seg == NULL)
        return true;
    bool held = atomic_exchange_explicit(&acct->connect_held, false, memory_order_acq_rel);
    if (!held && !msup_budget_begin_connect(acct->row, acct->limits, acct->stats, deadline_mono_ns)) {
        if (error != NULL)
            bson_set_error(error, MONGOSUP_ERROR_MONGOSUP, MONGOSUP_E_POOL_TIMEOUT,
                           "no connection handshake slot within the wait-queue timeout (max_connecting %u)",
                           atomic_load_explicit((_Atomic uint32_t *)&acct->limits->max_connecting, memory_order_relaxed));
        return false;
    }
    bson_t ping = BSON_INITIALIZER;
    BSON_APPEND_INT32(&ping, "ping", 1);
    bson_error_t local;
    if (error == NULL)
        error = &local;
    bool ok = mongoc_client_command_simple(client, "admin", &ping, NULL, NULL, error);
    /* A client re-checked after an outage may find its socket dead: the
     * driver drops it on that error, and a second ping reconnects, in the
     * same slot (command_simple is never retried by the driver itself). */
    if (!ok && error->domain == MONGOC_ERROR_STREAM)
        ok = mongoc_client_command_simple(client, "admin", &ping, NULL, NULL, error);
    bson_destroy(&ping);
    msup_budget_end_connect(acct->row, acct->stats);
    if (ok)
        msup_budget_account_settle_monitors(acct, client);
    return ok;
}
