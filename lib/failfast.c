/* failfast.c: the worker's reaction to a DOWN verdict (socket cutoff), its half-open gate and the selection-timeout formula. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "failfast.h"
#include "segment.h"
#include "worker.h"

#define NS_PER_MS 1000000ull
#define DRIVER_SELECTION_DEFAULT_MS 30000u

uint32_t msup_failfast_selection_timeout_ms(const msup_cluster_cfg_t *c)
{
    uint64_t fall = c->fall ? c->fall : 1;
    uint64_t ms = (uint64_t)c->check_interval_ms + fall * c->check_timeout_ms + (fall - 1) * c->check_fastinter_ms +
                  c->check_fastinter_ms;
    return ms > DRIVER_SELECTION_DEFAULT_MS ? DRIVER_SELECTION_DEFAULT_MS : (uint32_t)ms;
}

/* The control row this worker believes for c (worker_trust.c: msup_wcluster_refresh_trust), or
 * NULL: health comes only from the supervisor-only control segment. */
static msup_cluster_row_t *row_of(struct msup_wcluster *c, msup_segment_t **seg_out)
{
    msup_cluster_row_t *r = atomic_load_explicit(&c->ctl_row, memory_order_acquire);
    if (r != NULL && seg_out != NULL)
        *seg_out = msup_handle_seg(c->handle);
    return r;
}

/* The breaker is in force: enabled for the cluster and a live supervisor
 * behind the verdict (otherwise everything fails open, as at checkout). */
static bool breaker_in_force(const msup_segment_t *seg, const msup_cluster_row_t *r)
{
    return atomic_load_explicit(&r->circuit_breaker, memory_order_relaxed) != 0 && msup_supervisor_alive(seg);
}

/* The follow-up window of a DOWN verdict applies while the breaker is still in force for the cluster's row. */
static bool follow_up_in_force(const msup_segment_t *seg, struct msup_wcluster *c)
{
    const msup_cluster_row_t *r = row_of(c, NULL);
    return r != NULL && !atomic_load_explicit(&c->removed, memory_order_relaxed) && breaker_in_force(seg, r);
}

bool msup_failfast_refuse(struct msup_wcluster *c, const struct msup_segment *seg, const msup_cluster_row_t *r,
                          uint32_t health)
{
    if (!breaker_in_force(seg, r))
        return false;
    msup_failfast_t *ff = &c->failfast;
    uint32_t local = atomic_load_explicit(&ff->local, memory_order_relaxed);
    if (local == MSUP_LOCAL_PROVEN)
        return false;
    if (health != MSUP_HEALTH_RECOVERING && local != MSUP_LOCAL_PROBING)
        return true;
    /* Half-open: one trial per spacing, whoever wins the slot; its
     * success (APM) proves the server for every checkout. */
    uint64_t now = msup_mono_ns(), due = atomic_load_explicit(&ff->next_trial_ns, memory_order_relaxed);
    if (now < due || !atomic_compare_exchange_strong_explicit(&ff->next_trial_ns, &due,
                                                              now + MSUP_HALF_OPEN_TRIAL_SPACING_MS * NS_PER_MS,
                                                              memory_order_relaxed, memory_order_relaxed))
        return true;
    uint32_t none = MSUP_LOCAL_NONE;
    atomic_compare_exchange_strong_explicit(&ff->local, &none, MSUP_LOCAL_PROBING, memory_order_relaxed,
                                            memory_order_relaxed);
    return false;
}

bool msup_failfast_circuit_open(struct msup_wcluster *c)
{
    msup_segment_t *seg;
    msup_cluster_row_t *r = row_of(c, &seg);
    return r != NULL && atomic_load_explicit(&r->health, memory_order_acquire) == MSUP_HEALTH_DOWN &&
           atomic_load_explicit(&c->failfast.local, memory_order_relaxed) == MSUP_LOCAL_NONE &&
           breaker_in_force(seg, r);
}

enum msup_fail_class msup_failfast_reclass(struct msup_wcluster *c, enum msup_fail_class cls)
{
    if (cls != MSUP_FAIL_NETWORK && cls != MSUP_FAIL_TIMEOUT && cls != MSUP_FAIL_SERVER_SELECTION)
        return cls;
    msup_failfast_t *ff = &c->failfast;
    /* A trial that failed on the network: back to the row's verdict. */
    if (atomic_load_explicit(&ff->local, memory_order_relaxed) != MSUP_LOCAL_NONE)
        atomic_store_explicit(&ff->local, MSUP_LOCAL_NONE, memory_order_relaxed);
    msup_segment_t *seg;
    msup_cluster_row_t *r = row_of(c, &seg);
    if (r != NULL && atomic_load_explicit(&r->health, memory_order_acquire) == MSUP_HEALTH_DOWN &&
        breaker_in_force(seg, r))
        return MSUP_FAIL_CIRCUIT_OPEN;
    return cls;
}

/* ---- hosts ---- */

static void hosts_lock(msup_failfast_t *ff)
{
    uint32_t free_ = 0;
    while (!atomic_compare_exchange_weak_explicit(&ff->hosts_lock, &free_, 1, memory_order_acquire,
                                                  memory_order_relaxed))
        free_ = 0;
}

static void hosts_unlock(msup_failfast_t *ff)
{
    atomic_store_explicit(&ff->hosts_lock, 0, memory_order_release);
}

void msup_failfast_note_host(struct msup_wcluster *c, const mongoc_host_list_t *host)
{
    if (host == NULL)
        return;
    msup_failfast_t *ff = &c->failfast;
    hosts_lock(ff);
    bool known = false;
    for (uint32_t i = 0; i < ff->host_count && !known; i++)
        known = ff->hosts[i].port == host->port && strcmp(ff->hosts[i].host, host->host) == 0;
    if (!known && ff->host_count < MSUP_FAILFAST_HOSTS) {
        snprintf(ff->hosts[ff->host_count].host, sizeof ff->hosts[0].host, "%s", host->host);
        ff->hosts[ff->host_count].port = host->port;
        ff->host_count++;
        atomic_fetch_add_explicit(&ff->hosts_version, 1, memory_order_release);
    }
    hosts_unlock(ff);
}

/* The index of host in ff->hosts, or -1 (full, or not opened yet). */
static int host_index(msup_failfast_t *ff, const mongoc_host_list_t *host)
{
    int found = -1;
    hosts_lock(ff);
    for (uint32_t i = 0; i < ff->host_count && found < 0; i++)
        if (ff->hosts[i].port == host->port && strcmp(ff->hosts[i].host, host->host) == 0)
            found = (int)i;
    hosts_unlock(ff);
    return found;
}

void msup_failfast_note_monitor(struct msup_pool *p, const mongoc_host_list_t *host, enum msup_monitor_event what)
{
    if (host == NULL)
        return;
    int i = host_index(&p->cluster->failfast, host);
    /* Entries are never removed: the index stays this host's. */
    if (i >= 0)
        msup_monwatch_event(&p->monitors, (uint32_t)i, what, msup_mono_ns());
}

static uint32_t host_count_of(msup_failfast_t *ff)
{
    hosts_lock(ff);
    uint32_t n = ff->host_count;
    hosts_unlock(ff);
    return n;
}

bool msup_failfast_monitors_reported(struct msup_wcluster *c, struct msup_pool *p, uint64_t now)
{
    if (atomic_load_explicit(&p->monitors.pending, memory_order_acquire) == 0)
        return true; /* the common case: no spin lock for the host count */
    enum msup_monwatch_state st = msup_monwatch_state(&p->monitors, host_count_of(&c->failfast), now);
    if (st == MSUP_MONWATCH_RAN_OUT)
        atomic_fetch_add_explicit(&c->failfast.monitor_wait_timeouts, 1, memory_order_relaxed);
    return st != MSUP_MONWATCH_WAITING;
}

#define MONITOR_POLL_NS (2 * NS_PER_MS)

/* The row still reads DOWN or RECOVERING: a checkout that gets this far is
 * a half-open trial, or comes after one proved the server. */
static bool recovering(struct msup_wcluster *c)
{
    const msup_cluster_row_t *r = row_of(c, NULL);
    uint32_t health = r != NULL ? atomic_load_explicit(&r->health, memory_order_acquire) : MSUP_HEALTH_UNKNOWN;
    return health == MSUP_HEALTH_DOWN || health == MSUP_HEALTH_RECOVERING;
}

void msup_failfast_await_monitors(struct msup_wcluster *c, struct msup_pool *p, uint64_t deadline)
{
    if (atomic_load_explicit(&p->monitors.pending, memory_order_acquire) == 0)
        return;
    /* Trials never wait: with the driver's default heartbeat the monitor
     * may report 10 s later, and recovery must stay no slower than the
     * driver's own (their sockets are the exemption, docs/budget.md). */
    if (recovering(c))
        return;
    uint64_t now = msup_mono_ns();
    if (msup_failfast_monitors_reported(c, p, now))
        return;
    atomic_fetch_add_explicit(&c->failfast.monitor_waits, 1, memory_order_relaxed);
    /* Short polls: the monitor's events come from the driver's threads,
     * under its locks, where nothing may block on ours. */
    while (now < deadline && !recovering(c) && !msup_failfast_monitors_reported(c, p, now)) {
        struct timespec ts = {0, (long)MONITOR_POLL_NS};
        nanosleep(&ts, NULL);
        now = msup_mono_ns();
    }
}

/* DOWN in the row, acted on by this worker, past the follow-up window:
 * evidence of reachability may open half-open (a reply read earlier may
 * predate the verdict). */
static bool evidence_counts(struct msup_wcluster *c)
{
    msup_failfast_t *ff = &c->failfast;
    msup_cluster_row_t *r = row_of(c, NULL);
    return r != NULL && atomic_load_explicit(&r->health, memory_order_acquire) == MSUP_HEALTH_DOWN &&
           atomic_load_explicit(&ff->verdict_acted, memory_order_acquire) != 0 &&
           msup_mono_ns() >= atomic_load_explicit(&ff->next_trial_ns, memory_order_relaxed);
}

void msup_failfast_note_reached(struct msup_wcluster *c)
{
    if (evidence_counts(c)) {
        uint32_t none = MSUP_LOCAL_NONE;
        atomic_compare_exchange_strong_explicit(&c->failfast.local, &none, MSUP_LOCAL_PROBING, memory_order_relaxed,
                                                memory_order_relaxed);
    }
}

bool msup_failfast_probe_wanted(struct msup_wcluster *c)
{
    msup_segment_t *seg;
    msup_cluster_row_t *r = row_of(c, &seg);
    return r != NULL && !atomic_load_explicit(&c->removed, memory_order_relaxed) &&
           atomic_load_explicit(&c->failfast.local, memory_order_relaxed) == MSUP_LOCAL_NONE && evidence_counts(c) &&
           breaker_in_force(seg, r);
}

void msup_failfast_stop(struct mongosup *h)
{
    for (size_t i = 0; i < msup_handle_cluster_count(h); i++)
        msup_probe_stop(&h->clusters[i]);
}

/* The URI's hosts and the members the driver discovered, resolved to
 * addresses (upkeep thread: name resolution may block). */
static void refresh_addresses(struct msup_wcluster *c)
{
    msup_failfast_t *ff = &c->failfast;
    const msup_cluster_cfg_t *cfg = atomic_load_explicit(&c->cfg, memory_order_acquire);
    uint32_t version = atomic_load_explicit(&ff->hosts_version, memory_order_acquire);
    if (cfg == ff->resolved_cfg && version == ff->resolved_version)
        return;
    msup_addrset_t set = {0};
    mongoc_uri_t *uri = mongoc_uri_new_with_error(cfg->uri, NULL);
    if (uri != NULL) {
        for (const mongoc_host_list_t *hl = mongoc_uri_get_hosts(uri); hl != NULL; hl = hl->next)
            msup_addrset_add_host(&set, hl->host, hl->port);
        mongoc_uri_destroy(uri);
    }
    char host[BSON_HOST_NAME_MAX + 1];
    for (uint32_t i = 0;; i++) {
        hosts_lock(ff);
        bool more = i < ff->host_count;
        uint16_t port = more ? ff->hosts[i].port : 0;
        if (more)
            memcpy(host, ff->hosts[i].host, sizeof host);
        hosts_unlock(ff);
        if (!more)
            break;
        msup_addrset_add_host(&set, host, port);
    }
    ff->addrs = set;
    ff->resolved_cfg = cfg;
    ff->resolved_version = version;
}

/* Shuts this process's sockets to c's hosts, except to a host that a
 * cluster not DOWN shares. */
static void cut(struct mongosup *h, struct msup_wcluster *c)
{
    if (h->cutoff_disabled)
        return;
    msup_addrset_t keep = {0};
    for (size_t i = 0; i < msup_handle_cluster_count(h); i++) {
        struct msup_wcluster *o = &h->clusters[i];
        if (o == c || o->failfast.seen_health == MSUP_HEALTH_DOWN)
            continue;
        for (uint32_t k = 0; k < o->failfast.addrs.count; k++)
            msup_addrset_add(&keep, &o->failfast.addrs.addr[k]);
    }
    msup_cutoff_result_t res;
    if (!msup_cutoff_sockets(&c->failfast.addrs, &keep, &h->inherited_sockets, &res) || res.shut == 0)
        return;
    msup_failfast_t *ff = &c->failfast;
    atomic_fetch_add_explicit(&ff->sockets_shut, res.shut, memory_order_relaxed);
    /* The pools' monitors whose sockets this may have shut: their new
     * connections wait until they report (monwatch.h), one heartbeat and
     * one connect at most. */
    const msup_cluster_cfg_t *cfg = atomic_load_explicit(&c->cfg, memory_order_acquire);
    uint64_t deadline = msup_mono_ns() +
                        ((uint64_t)cfg->heartbeat_frequency_ms + cfg->connect_timeout_ms) * NS_PER_MS;
    uint32_t n = host_count_of(ff);
    pthread_mutex_lock(&c->mu);
    for (msup_pool_t *p = msup_wcluster_first_pool(c); p != NULL; p = msup_wcluster_next_pool(c, p))
        msup_monwatch_cut(&p->monitors, n, deadline);
    pthread_mutex_unlock(&c->mu);
}

/* A DOWN verdict may be near: the last check failed (UP, DEGRADED or
 * UNKNOWN), or half-open, where one failed check is DOWN. */
static bool verdict_near(const msup_segment_t *seg, const msup_cluster_row_t *r, uint32_t health)
{
    if (health == MSUP_HEALTH_DOWN)
        return false; /* what comes next is RECOVERING: the gate reads it itself */
    return (health == MSUP_HEALTH_RECOVERING || atomic_load_explicit(&r->consecutive_fail, memory_order_relaxed) > 0) &&
           breaker_in_force(seg, r);
}

uint32_t msup_failfast_tick(struct mongosup *h, uint64_t now)
{
    size_t n = msup_handle_cluster_count(h);
    msup_segment_t *seg = msup_handle_seg(h);
    bool near = false;
    for (size_t i = 0; i < n; i++)
        refresh_addresses(&h->clusters[i]);
    /* Every row's health first: the keep rule reads the others' verdicts. */
    bool entered[MSUP_MAX_CLUSTERS] = {false};
    for (size_t i = 0; i < n && i < MSUP_MAX_CLUSTERS; i++) {
        struct msup_wcluster *c = &h->clusters[i];
        msup_failfast_t *ff = &c->failfast;
        const msup_cluster_row_t *r = row_of(c, NULL);
        uint32_t health = MSUP_HEALTH_UNKNOWN;
        if (r != NULL && !atomic_load_explicit(&c->removed, memory_order_relaxed)) {
            health = atomic_load_explicit(&r->health, memory_order_acquire);
            near = near || verdict_near(seg, r, health);
        }
        if (health != MSUP_HEALTH_DOWN && health != MSUP_HEALTH_RECOVERING) {
            if (atomic_load_explicit(&ff->local, memory_order_relaxed) != MSUP_LOCAL_NONE)
                atomic_store_explicit(&ff->local, MSUP_LOCAL_NONE, memory_order_relaxed);
            if (atomic_load_explicit(&ff->verdict_acted, memory_order_relaxed) != 0)
                atomic_store_explicit(&ff->verdict_acted, 0, memory_order_relaxed);
        }
        entered[i] = health == MSUP_HEALTH_DOWN && ff->seen_health != MSUP_HEALTH_DOWN &&
                     breaker_in_force(seg, r);
        /* The supervisor saw the cluster fail: this worker's sockets to it
         * may be dead too, and must be re-checked under max_connecting
         * before the application reuses them (pool.c, msup_pool_verify). */
        if (health != ff->seen_health && (ff->seen_health == MSUP_HEALTH_UP || health == MSUP_HEALTH_DOWN))
            msup_outage_bump(c);
        ff->seen_health = health;
    }
    for (size_t i = 0; i < n && i < MSUP_MAX_CLUSTERS; i++) {
        struct msup_wcluster *c = &h->clusters[i];
        msup_failfast_t *ff = &c->failfast;
        if (entered[i]) {
            /* A new DOWN verdict: whatever half-open proved is void. No
             * trial and no monitor evidence counts before the follow-up
             * window ends. */
            atomic_store_explicit(&ff->local, MSUP_LOCAL_NONE, memory_order_relaxed);
            ff->follow_until_ns = now + MSUP_CUTOFF_FOLLOW_MS * NS_PER_MS;
            atomic_store_explicit(&ff->next_trial_ns, ff->follow_until_ns, memory_order_relaxed);
            atomic_store_explicit(&ff->verdict_acted, 1, memory_order_release);
            atomic_fetch_add_explicit(&ff->cutoffs, 1, memory_order_relaxed);
            cut(h, c);
            /* Idle clients' sockets are gone (or doomed): their tokens go
             * back now, and their replacements connect under the slots. */
            msup_wcluster_drop_idle(c);
        } else if (ff->seen_health == MSUP_HEALTH_DOWN && now < ff->follow_until_ns &&
                   atomic_load_explicit(&ff->local, memory_order_relaxed) == MSUP_LOCAL_NONE &&
                   follow_up_in_force(seg, c)) {
            /* Only while the verdict still stands behind a live supervisor:
             * checkouts fail open as soon as it does not, and the follow-up
             * must not shut the connections they open. */
            cut(h, c);
        }
        near = near || now < ff->follow_until_ns;
        msup_probe_tend(c);
    }
    return near ? MSUP_FAILFAST_TICK_MS : MSUP_FAILFAST_CALM_TICK_MS;
}
