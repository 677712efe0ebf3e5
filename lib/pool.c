/* pool.c: a worker's per-cluster driver pool: creation, counted pops and pushes, warm-up, idle trim, retirement; the upkeep thread. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "redact.h"
#include "stats.h"
#include "worker.h"

#define NS_PER_MS 1000000ull
/* How often the upkeep looks at a capped cluster's budget line. */
#define UPKEEP_BUDGET_TICK_MS 50

/* Builds a pool for the cluster; no network I/O (the first pop starts the
 * monitors).  Error API, appname and APM callbacks go in before that pop. */
msup_pool_t *msup_pool_create(msup_wcluster_t *c, uint64_t generation, mongosup_error_t *error)
{
    bson_error_t berr;
    char why[256];
    mongoc_uri_t *uri = mongoc_uri_new_with_error(c->cfg->uri, &berr);
    if (uri == NULL) {
        msup_redact_text(berr.message, why, sizeof why);
        msup_fail(error, MONGOSUP_E_DRIVER, "cluster %s: invalid URI %s: %s", c->name, c->cfg->uri_display, why);
        return NULL;
    }
    msup_pool_t *p = calloc(1, sizeof *p);
    mongoc_client_t **idle = calloc(c->max_pool_size, sizeof *idle);
    uint64_t *idle_epoch = calloc(c->max_pool_size, sizeof *idle_epoch);
    mongoc_client_pool_t *driver = p && idle && idle_epoch ? mongoc_client_pool_new_with_error(uri, &berr) : NULL;
    msup_budget_cost_t cost = msup_budget_cost_for_uri(uri);
    mongoc_uri_destroy(uri);
    if (driver == NULL) {
        free(p);
        free(idle);
        free(idle_epoch);
        if (p == NULL || idle == NULL || idle_epoch == NULL) {
            msup_fail(error, MONGOSUP_E_SYSTEM, "cluster %s: out of memory", c->name);
        } else {
            bson_error_t shown = berr;
            msup_redact_text(berr.message, shown.message, sizeof shown.message);
            snprintf(why, sizeof why, "cluster %s: cannot create pool", c->name);
            msup_fail_driver(error, &shown, why);
        }
        return NULL;
    }
    mongoc_client_pool_set_error_api(driver, MONGOC_ERROR_API_VERSION_2);
    if (c->cfg->appname == NULL) /* a configured appname is in the URI already */
        mongoc_client_pool_set_appname(driver, c->handle->appname);
    /* The pool is the events' context: its monitors are its own (monwatch.h). */
    p->cluster = c;
    mongoc_client_pool_set_apm_callbacks(driver, c->handle->apm, p);
    mongoc_client_pool_max_size(driver, c->max_pool_size);
    p->driver = driver;
    p->generation = generation;
    p->idle = idle;
    p->idle_epoch = idle_epoch;
    p->idle_cap = c->max_pool_size;
    p->warm_pending = c->min_pool_size > 0;
    p->settings_epoch = c->settings_epoch;
    /* The tokens go to the row (and mapping) of today: a later remap or a
     * new segment must not move them, so the account keeps its pointers. */
    int row = atomic_load_explicit(&c->row, memory_order_relaxed);
    msup_budget_account_init(&p->budget, row >= 0 ? msup_handle_seg(c->handle) : NULL, row, msup_wcluster_stats(c),
                             cost, c->min_pool_size, &c->limits);
    return p;
}

/* The one place where a pool may grow by a client: a budget token first. */
bool msup_pool_try_grow(msup_wcluster_t *c, msup_pool_t *p)
{
    (void)c;
    return msup_budget_account_grow(&p->budget, msup_mono_ns());
}

bool msup_pool_budget_refused(const msup_wcluster_t *c, const msup_pool_t *p)
{
    return p->idle_count == 0 && p->created < p->idle_cap && c->in_use < c->max_pool_size;
}

/* Takes a client the driver just popped out of the idle mirror; returns
 * the epoch it was verified at (0 when the mirror did not hold it: re-check
 * it).  The driver pops its head, our idle[n-1]; anything else would mean a
 * pop behind our back: the mirror is kept right regardless. */
static uint64_t mirror_pop(msup_pool_t *p, mongoc_client_t *client)
{
    uint32_t top = p->idle_count - 1;
    uint64_t verified = p->idle_epoch[top];
    if (p->idle[top] != client) {
        verified = 0;
        for (uint32_t i = 0; i < top; i++) {
            if (p->idle[i] == client) {
                verified = p->idle_epoch[i];
                p->idle[i] = p->idle[top];
                p->idle_epoch[i] = p->idle_epoch[top];
                break;
            }
        }
    }
    p->idle_count = top;
    return verified;
}

/* Pops a client (reusing the newest idle one, else creating one), counted.
 * With an idle client at hand this touches nothing shared: the client's
 * verified epoch is in this process's map. */
mongoc_client_t *msup_pool_take(msup_wcluster_t *c, msup_pool_t *p, bool *unverified)
{
    bool grow = p->idle_count == 0;
    *unverified = false;
    if (grow && (p->created >= p->idle_cap || !msup_pool_try_grow(c, p)))
        return NULL;
    mongoc_client_t *client = mongoc_client_pool_try_pop(p->driver);
    if (client == NULL) {
        if (grow)
            msup_budget_account_ungrow(&p->budget);
        return NULL;
    }
    if (grow) {
        if (!msup_clientmap_put(&c->handle->clients, client, p)) {
            /* Cannot happen with the map sized for every pool at its max;
             * refusing the client keeps checkin able to find every client. */
            mongoc_client_pool_push(p->driver, client);
            p->idle_epoch[p->idle_count] = 0;
            p->idle[p->idle_count++] = client;
            p->created++;
            return NULL;
        }
        p->created++;
        *unverified = true;
        msup_stats_count(&msup_wcluster_stats(c)->clients_created, 1);
    } else {
        uint64_t verified = mirror_pop(p, client);
        if (p->idle_count < p->idle_low)
            p->idle_low = p->idle_count;
        /* Its connection may have died since it last passed a slot (or it
         * never did): the driver would reconnect it inside the
         * application's first command, outside max_connecting. */
        *unverified = verified != atomic_load_explicit(&c->outage_epoch, memory_order_acquire);
    }
    p->out++;
    c->in_use++;
    return client;
}

/* Pushes a client back into its pool, with the outage epoch its connection
 * was verified at (its client map entry's).  Returns true when the pool is
 * retired and this was its last client out: the caller unlinks it and
 * destroys it after releasing the mutex. */
bool msup_pool_give(msup_wcluster_t *c, msup_pool_t *p, mongoc_client_t *client, uint64_t verified_epoch)
{
    mongoc_client_pool_push(p->driver, client);
    p->idle_epoch[p->idle_count] = verified_epoch;
    p->idle[p->idle_count++] = client;
    p->out--;
    c->in_use--;
    return p->retired && p->out == 0;
}

bool msup_pool_discard(msup_wcluster_t *c, msup_pool_t *p, mongoc_client_t *client)
{
    /* Out of the map before it is freed (see msup_pool_trim). */
    msup_clientmap_remove(&c->handle->clients, client);
    /* The driver can only destroy idle clients beyond its idle cap, never
     * the last one, which under saturation is the only one that comes
     * back: destroy it here (closing its sockets), as the driver's own
     * push would.  Its size counter still counts the client, so its
     * maximum goes up by one to keep the same room; our own count
     * (created < idle_cap) is what bounds the pool. */
    mongoc_client_destroy(client);
    p->driver_lost++;
    mongoc_client_pool_max_size(p->driver, p->idle_cap + p->driver_lost);
    p->out--;
    p->created--;
    c->in_use--;
    msup_budget_account_shrink(&p->budget, 1);
    msup_stats_count(&msup_wcluster_stats(c)->clients_destroyed, 1);
    return p->retired && p->out == 0;
}

bool msup_pool_verify(msup_wcluster_t *c, msup_pool_t *p, mongoc_client_t *client, uint64_t deadline_mono_ns,
                      bson_error_t *error)
{
    /* Read before the ping: a bump while it runs leaves the client stale. */
    uint64_t epoch = atomic_load_explicit(&c->outage_epoch, memory_order_acquire);
    bson_error_t local;
    if (error == NULL)
        error = &local;
    msup_apm_internal(true);
    bool ok = msup_budget_handshake(&p->budget, client, deadline_mono_ns, error);
    msup_apm_internal(false);
    /* A command error from the server means the connection is up. */
    ok = ok || error->domain == MONGOC_ERROR_SERVER;
    if (ok) {
        msup_clientmap_set_verified(&c->handle->clients, client, epoch);
        /* The server answered: a half-open trial (failfast.c) is proven. */
        msup_failfast_note_success(&c->failfast);
    }
    return ok;
}

/* mongoc_client_pool_min_size is deprecated because its name misleads (it
 * caps idle clients); that cap is exactly what trimming needs, and nothing
 * else shrinks a pool (MONGOC-NOTES).  Its warning is dropped by our log
 * handler (worker_fork.c). */
static void set_idle_cap(mongoc_client_pool_t *driver, uint32_t cap)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    mongoc_client_pool_min_size(driver, cap);
#pragma GCC diagnostic pop
}

/*
 * Destroys the `count` oldest idle clients.  The only way to shrink a
 * mongoc pool is a push under an idle cap (mongoc_client_pool_min_size):
 * each push beyond the cap destroys the oldest idle client (the tail of the
 * driver's queue, idle[0] here) and lowers the pool's size.  A cap of 0
 * means "none", so at least one idle client always stays.
 */
void msup_pool_trim(msup_wcluster_t *c, msup_pool_t *p, uint32_t count)
{
    uint32_t floor = c->min_pool_size > p->out ? c->min_pool_size - p->out : 0;
    if (floor < 1)
        floor = 1;
    if (p->idle_count <= floor)
        return;
    if (count > p->idle_count - floor)
        count = p->idle_count - floor;
    if (count == 0)
        return;
    uint32_t target = p->idle_count - count;
    set_idle_cap(p->driver, target);
    msup_stats_t *stats = msup_wcluster_stats(c);
    while (p->idle_count > target) {
        mongoc_client_t *client = mongoc_client_pool_try_pop(p->driver); /* the newest: idle[n-1] */
        if (client == NULL)
            break;
        /* Out of the map before the driver frees it: another cluster may
         * create a client at the same address the moment it is freed, and
         * removing afterwards would remove that one. */
        msup_clientmap_remove(&c->handle->clients, p->idle[0]);
        mongoc_client_pool_push(p->driver, client); /* queue > cap: the driver destroys the oldest */
        memmove(&p->idle[0], &p->idle[1], (p->idle_count - 1) * sizeof p->idle[0]);
        memmove(&p->idle_epoch[0], &p->idle_epoch[1], (p->idle_count - 1) * sizeof p->idle_epoch[0]);
        p->idle_count--;
        p->created--;
        msup_budget_account_shrink(&p->budget, 1);
        msup_stats_count(&stats->clients_destroyed, 1);
    }
    set_idle_cap(p->driver, 0);
}

/*
 * Destroys every idle client of the pool (c->mu held).  For a DOWN
 * verdict: this process's sockets to the cluster were just shut (failfast.c),
 * so each idle client holds a budget token for a socket that no longer
 * exists, and would be reconnected anyway.  Its token goes back now, and the
 * client that replaces it after recovery connects under a handshake slot
 * like any new one.  The driver cannot destroy its last idle client (its
 * idle cap of 0 means none), so each is popped and destroyed here, the
 * driver's maximum raised by one per client to keep its room (as
 * msup_pool_discard does).
 */
uint32_t msup_pool_drop_idle(msup_wcluster_t *c, msup_pool_t *p)
{
    uint32_t dropped = 0;
    while (p->idle_count > 0) {
        mongoc_client_t *client = mongoc_client_pool_try_pop(p->driver); /* the newest: idle[n-1] */
        if (client == NULL)
            break;
        mirror_pop(p, client);
        msup_clientmap_remove(&c->handle->clients, client); /* before the free: see msup_pool_trim */
        mongoc_client_destroy(client);
        p->driver_lost++;
        p->created--;
        dropped++;
    }
    if (dropped == 0)
        return 0;
    mongoc_client_pool_max_size(p->driver, p->idle_cap + p->driver_lost);
    if (p->idle_low > p->idle_count)
        p->idle_low = p->idle_count;
    msup_budget_account_shrink(&p->budget, dropped);
    msup_stats_count(&msup_wcluster_stats(c)->clients_destroyed, dropped);
    return dropped;
}

void msup_wcluster_drop_idle(msup_wcluster_t *c)
{
    pthread_mutex_lock(&c->mu);
    uint32_t dropped = 0;
    for (msup_pool_t *p = msup_wcluster_first_pool(c); p != NULL; p = msup_wcluster_next_pool(c, p))
        dropped += msup_pool_drop_idle(c, p);
    if (dropped > 0)
        msup_pool_publish_gauges(c);
    pthread_mutex_unlock(&c->mu);
}

void msup_pool_publish_gauges(msup_wcluster_t *c)
{
    int64_t idle = c->foreign_idle, created = c->foreign_created;
    for (msup_pool_t *p = c->pool; p != NULL; p = p == c->pool ? c->retired : p->next_retired) {
        idle += p->idle_count;
        created += p->created;
    }
    msup_stats_t *s = msup_wcluster_stats(c);
    /* Only this process writes these gauges, and only under c->mu. */
    atomic_store_explicit(&s->pool_in_use, (int64_t)c->in_use + c->foreign_in_use, memory_order_relaxed);
    atomic_store_explicit(&s->pool_idle, idle, memory_order_relaxed);
    atomic_store_explicit(&s->pool_created, created, memory_order_relaxed);
}

void msup_pool_destroy(msup_pool_t *p)
{
    if (p == NULL)
        return;
    msup_wcluster_t *c = p->cluster;
    /* The driver may send endSessions here: the APM context (p) is alive.
     * It pops a client for that, whose socket may have to reconnect (after
     * an outage): a handshake like any other, so under max_connecting
     * (waiting for a slot at most 2 s, then going ahead regardless). */
    msup_budget_account_t *acct = &p->budget;
    /* Every client is idle (nobody can check one in): out of the map before
     * the driver frees them, or a client created meanwhile at a freed
     * address would find this pool's entry. */
    msup_clientmap_remove_pool(&c->handle->clients, p);
    bool slot = acct->seg != NULL &&
                msup_budget_begin_connect(acct->row, acct->limits, acct->stats, msup_mono_ns() + 2000 * NS_PER_MS);
    mongoc_client_pool_destroy(p->driver);
    if (slot)
        msup_budget_end_connect(acct->row, acct->stats);
    /* Its sockets are closed: every token goes back.  (A pool abandoned
     * after fork never gets here: its tokens are the parent's.) */
    msup_budget_account_close(&p->budget);
    msup_stats_count(&msup_wcluster_stats(c)->clients_destroyed, p->created);
    free(p->idle);
    free(p->idle_epoch);
    free(p);
}

/* Delay before this worker rebuilds after a generation bump: the slot index
 * times the golden ratio, modulo 1, spreads any set of slots evenly. */
uint64_t msup_reconnect_delay_ns(uint32_t slot, uint32_t window_ms)
{
    uint64_t frac = (uint64_t)slot * UINT64_C(0x9E3779B97F4A7C15);
    return (uint64_t)(((unsigned __int128)frac * ((uint64_t)window_ms * NS_PER_MS)) >> 64);
}

/* ---- upkeep: warm-up of min_pool_size and idle trim, off the hot path ---- */

static void warm_up(msup_wcluster_t *c, msup_pool_t *p)
{
    /* Called with c->mu held; releases it while the clients connect. */
    if (!msup_failfast_monitors_reported(c, p, msup_mono_ns()))
        return; /* their failure would drop what connects now (monwatch.h): next tick */
    p->warm_pending = false;
    if (p->created >= c->min_pool_size)
        return;
    /* Idle clients come out first (LIFO): take until the pool has grown to
     * min_pool_size (or the connection budget says no). */
    mongoc_client_t **clients = calloc(c->max_pool_size, sizeof *clients);
    bool *unverified = calloc(c->max_pool_size, sizeof *unverified);
    if (clients == NULL || unverified == NULL) {
        free(clients);
        free(unverified);
        return;
    }
    uint32_t got = 0;
    while (p->created < c->min_pool_size && got < c->max_pool_size &&
           (clients[got] = msup_pool_take(c, p, &unverified[got])) != NULL)
        got++;
    msup_pool_publish_gauges(c);
    pthread_mutex_unlock(&c->mu);
    /* Popping does not connect: a handshake (under max_connecting) opens
     * each new client's connection; a client whose handshake failed is
     * destroyed (an unconnected client must not reach the application). */
    uint64_t deadline = msup_mono_ns() + (uint64_t)c->cfg->server_selection_timeout_ms * NS_PER_MS;
    for (uint32_t i = 0; i < got; i++)
        unverified[i] = unverified[i] && !msup_pool_verify(c, p, clients[i], deadline, NULL);
    pthread_mutex_lock(&c->mu);
    msup_pool_t *doomed = NULL;
    for (uint32_t i = 0; i < got; i++) {
        if (unverified[i] ? msup_pool_discard(c, p, clients[i])
                          : msup_pool_give(c, p, clients[i], msup_clientmap_verified(&c->handle->clients, clients[i])))
            doomed = p;
    }
    if (doomed != NULL) {
        msup_pool_t **link = &c->retired;
        while (*link != NULL && *link != doomed)
            link = &(*link)->next_retired;
        if (*link != NULL)
            *link = doomed->next_retired;
    }
    msup_pool_publish_gauges(c);
    if (c->waiters > 0)
        pthread_cond_broadcast(&c->freed);
    free(clients);
    free(unverified);
    if (doomed != NULL) {
        pthread_mutex_unlock(&c->mu);
        msup_pool_destroy(doomed);
        pthread_mutex_lock(&c->mu);
    }
}

/* Budget pressure (a lowered max_connections, or a worker below its share
 * waiting) is noticed here, off the hot path: idle clients beyond what the
 * budget allows go now, and checkins shed too until the pressure ends. */
static void shed_if_pressed(msup_wcluster_t *c, msup_pool_t *p, uint64_t now)
{
    bool limited = false;
    c->shed_watch = p != NULL && !p->retired && msup_budget_account_pressed(&p->budget, now, &limited);
    if (!c->shed_watch)
        return;
    bool shed = false;
    while (p->idle_count > 0 && p->budget.clients > p->budget.floor &&
           msup_budget_account_should_shed(&p->budget, p->idle_count, now)) {
        uint32_t before = p->idle_count;
        msup_pool_trim(c, p, 1);
        if (p->idle_count == before)
            break;
        shed = true;
    }
    if (shed)
        msup_pool_publish_gauges(c);
}

static void upkeep_cluster(msup_wcluster_t *c, uint64_t now)
{
    pthread_mutex_lock(&c->mu);
    msup_pool_t *p = c->pool;
    if (p != NULL && p->warm_pending)
        warm_up(c, p);
    p = c->pool;
    uint32_t max_idle = c->cfg->max_idle_time_ms;
    if (p != NULL && max_idle > 0 && now - c->trim_window_start_ns >= (uint64_t)max_idle * NS_PER_MS) {
        /* The oldest idle_low clients sat idle for the whole window. */
        msup_pool_trim(c, p, p->idle_low);
        c->trim_window_start_ns = now;
        p->idle_low = p->idle_count;
        msup_pool_publish_gauges(c);
    }
    shed_if_pressed(c, p, now);
    pthread_mutex_unlock(&c->mu);
}

/* The cluster's row has a max_connections: its budget line is watched at
 * the budget tick from the start (a worker that is not watching when
 * another starts to wait would keep its surplus until it looks). */
static bool budget_capped(const msup_wcluster_t *c)
{
    return atomic_load_explicit(&c->row, memory_order_relaxed) >= 0 &&
           atomic_load_explicit((_Atomic uint32_t *)&c->limits.max_connections, memory_order_relaxed) != 0;
}

static uint64_t upkeep_tick_ms(const mongosup_t *h)
{
    uint64_t tick = 1000;
    for (size_t i = 0; i < msup_handle_cluster_count(h); i++) {
        uint64_t max_idle = h->clusters[i].cfg->max_idle_time_ms;
        if (max_idle > 0 && max_idle / 4 < tick)
            tick = max_idle / 4;
        /* Budget pressure is noticed here, not at checkin: promptly. */
        if (budget_capped(&h->clusters[i]) && UPKEEP_BUDGET_TICK_MS < tick)
            tick = UPKEEP_BUDGET_TICK_MS;
    }
    return tick < 5 ? 5 : tick;
}

/* The loop wakes for a lock-free look at the rows' health, every 5 ms
 * while a DOWN verdict may be near (it must end the operations in flight
 * within milliseconds, failfast.c), every 100 ms otherwise; warm-up, trim,
 * shedding and the segment check run at their own, slower tick or when
 * kicked. */
static void *upkeep_main(void *arg)
{
    mongosup_t *h = arg;
    uint64_t next_full_ns = msup_mono_ns() + upkeep_tick_ms(h) * NS_PER_MS;
    uint32_t look_ms = MSUP_FAILFAST_TICK_MS;
    pthread_mutex_lock(&h->upkeep_mu);
    while (!h->upkeep_stop) {
        if (!h->upkeep_kick) {
            uint64_t until = msup_mono_ns() + look_ms * NS_PER_MS;
            if (next_full_ns < until)
                until = next_full_ns;
            struct timespec ts = {(time_t)(until / 1000000000ull), (long)(until % 1000000000ull)};
            pthread_cond_timedwait(&h->upkeep_cv, &h->upkeep_mu, &ts);
        }
        bool kicked = h->upkeep_kick;
        h->upkeep_kick = false;
        if (h->upkeep_stop)
            break;
        pthread_mutex_unlock(&h->upkeep_mu);
        uint64_t now = msup_mono_ns();
        look_ms = msup_failfast_tick(h, now);
        if (kicked || now >= next_full_ns) {
            for (size_t i = 0; i < msup_handle_cluster_count(h); i++)
                upkeep_cluster(&h->clusters[i], now);
            msup_handle_check_segment(h, now);
            /* a reload may change max_idle_time_ms */
            next_full_ns = msup_mono_ns() + upkeep_tick_ms(h) * NS_PER_MS;
        }
        pthread_mutex_lock(&h->upkeep_mu);
    }
    pthread_mutex_unlock(&h->upkeep_mu);
    return NULL;
}

bool msup_upkeep_start(mongosup_t *h, mongosup_error_t *error)
{
    /* Before any pool exists: every socket open now was inherited (or is
     * the application's own from before attach); a DOWN cutoff leaves them
     * alone.  Without the list, no cutoff at all rather than a wrong one. */
    if (!msup_inodeset_snapshot(&h->inherited_sockets))
        h->cutoff_disabled = true;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&h->upkeep_cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&h->upkeep_mu, NULL);
    /* The application's signals stay with the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&h->upkeep, NULL, upkeep_main, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        msup_inodeset_free(&h->inherited_sockets);
        errno = rc;
        return msup_fail_errno(error, MONGOSUP_E_SYSTEM, "cannot start the pool upkeep thread");
    }
    h->upkeep_running = true;
    return true;
}

void msup_upkeep_kick(mongosup_t *h)
{
    pthread_mutex_lock(&h->upkeep_mu);
    h->upkeep_kick = true;
    pthread_cond_signal(&h->upkeep_cv);
    pthread_mutex_unlock(&h->upkeep_mu);
}

void msup_upkeep_stop(mongosup_t *h)
{
    if (h->upkeep_running) {
        pthread_mutex_lock(&h->upkeep_mu);
        h->upkeep_stop = true;
        pthread_cond_signal(&h->upkeep_cv);
        pthread_mutex_unlock(&h->upkeep_mu);
        pthread_join(h->upkeep, NULL);
        h->upkeep_running = false;
        msup_failfast_stop(h); /* the probes the upkeep thread started */
    }
    pthread_cond_destroy(&h->upkeep_cv);
    pthread_mutex_destroy(&h->upkeep_mu);
    msup_inodeset_free(&h->inherited_sockets);
}
