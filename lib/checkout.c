/* checkout.c: the hot path: the gate (health, drain, generation), checkout with budget and handshake slots, checkin. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "classify.h"
#include "error.h"
#include "record.h"
#include "redact.h"
#include "slots.h"
#include "snapshot.h"
#include "stats.h"
#include "textsafe.h"
#include "worker.h"

#define NS_PER_MS 1000000ull

static void count_failure(msup_wcluster_t *c, enum msup_fail_class cls, uint32_t code, const char *message)
{
    msup_stats_record_failure(msup_wcluster_stats(c), cls, MONGOSUP_ERROR_MONGOSUP, code, message);
}

void msup_handle_acknowledge(msup_wcluster_t *c, uint64_t generation)
{
    msup_stats_t *s = msup_wcluster_stats(c);
    atomic_store_explicit(&s->reconnect_ack_ns, msup_now_ns(), memory_order_relaxed);
    atomic_store_explicit(&s->reconnect_ack, generation, memory_order_release);
}

/*
 * The pool to pop from, with c->mu held: created on the first checkout;
 * rebuilt when the row's generation moved and this worker's delay has
 * passed (the old pool keeps serving meanwhile).  A replaced pool with
 * clients out is retired; one without is returned in *doomed for the
 * caller to destroy after unlocking.
 */
static msup_pool_t *current_pool(msup_wcluster_t *c, uint64_t generation, msup_pool_t **doomed,
                                 mongosup_error_t *error)
{
    msup_pool_t *p = c->pool;
    if (p == NULL) {
        p = msup_pool_create(c, generation, error);
        if (p == NULL)
            return NULL;
        c->pool = p;
        c->trim_window_start_ns = msup_mono_ns();
        msup_handle_acknowledge(c, generation);
        if (p->warm_pending)
            msup_upkeep_kick(c->handle);
        return p;
    }
    uint64_t now = msup_mono_ns();
    if (c->rebuild_due_ns == 0) {
        /* New settings or a new segment: at once (the handshakes stay under
         * max_connecting); a reconnect: after this worker's delay. */
        bool settings = p->settings_epoch != c->settings_epoch;
        c->rebuild_due_ns = now + (settings ? 0 : msup_reconnect_delay_ns(c->handle->slot, c->cfg->reconnect_window_ms));
        if (c->rebuild_due_ns == 0)
            c->rebuild_due_ns = 1;
    }
    if (now < c->rebuild_due_ns)
        return p;
    mongosup_error_t why;
    msup_pool_t *fresh = msup_pool_create(c, generation, &why);
    if (fresh == NULL) {
        /* Keep serving from the old pool; try again in a second. */
        c->rebuild_due_ns = now + 1000 * NS_PER_MS;
        count_failure(c, MSUP_FAIL_OTHER, why.code, why.message);
        return p;
    }
    p->retired = true;
    if (p->out == 0) {
        *doomed = p;
    } else {
        p->next_retired = c->retired;
        c->retired = p;
    }
    c->pool = fresh;
    c->rebuild_due_ns = 0;
    c->trim_window_start_ns = now;
    msup_stats_count(&msup_wcluster_stats(c)->reconnects, 1);
    msup_handle_acknowledge(c, generation);
    if (fresh->warm_pending)
        msup_upkeep_kick(c->handle);
    return fresh;
}

static void *refuse_shutting_down(msup_wcluster_t *c, mongosup_error_t *error)
{
    count_failure(c, MSUP_FAIL_SHUTTING_DOWN, MONGOSUP_E_SHUTTING_DOWN, "shutting down: checkout refused");
    msup_fail(error, MONGOSUP_E_SHUTTING_DOWN, "cluster %s: shutting down, checkout refused", c->name);
    return NULL;
}

static void *refuse_unknown(const char *cluster, mongosup_error_t *error)
{
    msup_fail(error, MONGOSUP_E_UNKNOWN_CLUSTER, "cluster '%.64s' is not in the configuration", cluster);
    return NULL;
}

/* Unlinks a retired pool whose last client came back (c->mu held). */
static void unlink_retired(msup_wcluster_t *c, msup_pool_t *p)
{
    msup_pool_t **link = &c->retired;
    while (*link != NULL && *link != p)
        link = &(*link)->next_retired;
    if (*link != NULL)
        *link = p->next_retired;
}

/* A client goes back to its pool: idle again, or destroyed at once (never
 * one in use) when `discard` says so (its handshake failed), when its pool
 * was retired (its sockets would only wait for the pool's end), or when
 * the connection budget asks this worker to shed (a lowered budget, or a
 * worker below its share waiting) -- the last only while the upkeep saw
 * budget pressure (shed_watch): otherwise a checkin reads neither the
 * clock nor the shared budget line.  The pool is destroyed when it was
 * retired and this was its last client out. */
static void give_back(mongosup_t *h, msup_wcluster_t *c, msup_pool_t *p, mongoc_client_t *client, bool discard,
                      uint64_t verified_epoch)
{
    pthread_mutex_lock(&c->mu);
    if (!discard && (p->retired || c->shed_watch))
        discard = p->retired ? p->out > 1
                             : p->budget.clients > p->budget.floor &&
                                   msup_budget_account_should_shed(&p->budget, p->idle_count + 1, msup_mono_ns());
    bool doomed = discard ? msup_pool_discard(c, p, client) : msup_pool_give(c, p, client, verified_epoch);
    if (doomed)
        unlink_retired(c, p);
    msup_pool_publish_gauges(c);
    if (c->waiters > 0) {
        if (atomic_load_explicit(&h->closing, memory_order_relaxed))
            pthread_cond_broadcast(&c->freed);
        else
            pthread_cond_signal(&c->freed);
    }
    pthread_mutex_unlock(&c->mu);
    if (doomed)
        msup_pool_destroy(p);
}

/* A fresh client, or one whose connection may have died since it last
 * passed a slot, connects (under max_connecting) before it is handed out;
 * mutex released.  Its ping is ours: APM does not count it as the
 * application's operation, the failure path below counts what failed.  A
 * client that failed is destroyed, never handed out later unconnected; one
 * that was connected before and only found no slot in time goes back as
 * it was (still to be re-checked: its socket may be fine). */
static mongoc_client_t *handshake(mongosup_t *h, msup_wcluster_t *c, msup_pool_t *p, mongoc_client_t *client,
                                  uint64_t deadline, mongosup_error_t *error)
{
    bson_error_t berr;
    /* A cutoff may have shut a monitor that has not noticed yet: its
     * failure would drop this connection once the application has it. */
    msup_failfast_await_monitors(c, p, deadline);
    if (msup_pool_verify(c, p, client, deadline, &berr))
        return client;
    /* No handshake slot in time (budget.c).  MONGOSUP_ERROR_MONGOSUP is 1,
     * like MONGOC_ERROR_CLIENT: the code tells them apart (an auth failure
     * is CLIENT / 11). */
    bool no_slot = berr.domain == MONGOSUP_ERROR_MONGOSUP && berr.code == MONGOSUP_E_POOL_TIMEOUT &&
                   strstr(berr.message, "handshake slot") != NULL;
    uint64_t verified = msup_clientmap_verified(&h->clients, client);
    give_back(h, c, p, client, !no_slot || verified == 0, verified);
    msup_stats_t *s = msup_wcluster_stats(c);
    char message[MSUP_ERRMSG_MAX];
    msup_redact_text(berr.message, message, sizeof message);
    if (no_slot) {
        msup_stats_count(&s->checkout_timeouts, 1);
        msup_last_error_write(&s->last_error, MSUP_FAIL_TIMEOUT, MONGOSUP_ERROR_MONGOSUP, MONGOSUP_E_POOL_TIMEOUT,
                              message);
        msup_fail(error, MONGOSUP_E_POOL_TIMEOUT, "cluster %s: %s", c->name, message);
        return NULL;
    }
    /* Like an operation's failure (apm.c): a failed half-open trial closes it. */
    msup_stats_record_failure(s, msup_failfast_reclass(c, msup_classify_error(&berr)), berr.domain, berr.code,
                              message);
    bson_error_t shown = berr;
    snprintf(shown.message, sizeof shown.message, "%s", message);
    char what[160];
    snprintf(what, sizeof what, "cluster %s: a new client cannot connect", c->name);
    msup_fail_driver(error, &shown, what);
    return NULL;
}

/* How long a checkout blocked on the budget sleeps before it tries again:
 * tokens freed by other processes do not signal c->freed. */
#define BUDGET_RETRY_NS (10 * NS_PER_MS)

/*
 * The gate in front of every operation on a cluster, for the checkout and
 * for the driver-neutral API (neutral.c): follows a recreated segment and
 * a reload first, then refuses an inherited handle (MONGOSUP_E_FORKED), an
 * unknown cluster, a drain or detach (MONGOSUP_E_SHUTTING_DOWN) and a DOWN
 * verdict with the breaker in force (MONGOSUP_E_CIRCUIT_OPEN, half-open
 * trials aside: failfast.c).  Refusals of the last two kinds are counted.
 * Returns the cluster and, in *generation, its row's reconnect generation
 * (0 without a row).  No syscall and no lock while nothing moved.
 */
msup_wcluster_t *msup_handle_gate(mongosup_t *h, const char *cluster, uint64_t *generation, mongosup_error_t *error)
{
    if (msup_handle_inherited(h)) {
        msup_fail(error, MONGOSUP_E_FORKED,
                  "this handle was inherited across fork(): call mongosup_attach in the child");
        return NULL;
    }
    if (atomic_load_explicit(&h->segment_stale, memory_order_relaxed))
        msup_handle_reattach_segment(h);
    msup_segment_t *seg = msup_handle_seg(h);
    if (msup_segment_config_generation(seg) != atomic_load_explicit(&h->config_generation, memory_order_relaxed))
        msup_handle_remap_rows(h); /* and reloads the settings: see docs/api.md */
    msup_wcluster_t *c = msup_find_wcluster(h, cluster);
    if (c == NULL)
        return refuse_unknown(cluster, error);
    if (msup_handle_segment_draining(h)) {
        if (msup_segment_phase(seg) != MSUP_PHASE_STOPPED ||
            !msup_handle_stopped_reattach(h) || msup_handle_segment_draining(h))
            return refuse_shutting_down(c, error);
        seg = msup_handle_seg(h);
    }
    if (atomic_load_explicit(&h->closing, memory_order_acquire))
        return refuse_shutting_down(c, error);

    *generation = 0;
    /* Health and generation only from a trusted control row (refresh_trust). */
    msup_cluster_row_t *r = atomic_load_explicit(&c->ctl_row, memory_order_acquire);
    if (r != NULL) {
        uint32_t health = atomic_load_explicit(&r->health, memory_order_acquire);
        /* DOWN refuses; RECOVERING (and DOWN once this worker's own monitor
         * reached the server) lets half-open trials through (failfast.c). */
        if ((health == MSUP_HEALTH_DOWN || health == MSUP_HEALTH_RECOVERING) &&
            msup_failfast_refuse(c, seg, r, health)) {
            count_failure(c, MSUP_FAIL_CIRCUIT_OPEN, MONGOSUP_E_CIRCUIT_OPEN, "circuit open: cluster is DOWN");
            msup_fail(error, MONGOSUP_E_CIRCUIT_OPEN, "cluster %s is %s (circuit open): checkout refused", c->name,
                      msup_health_name(health));
            return NULL;
        }
        *generation = atomic_load_explicit(&r->reconnect_generation, memory_order_acquire);
    }
    return c;
}

mongoc_client_t *mongosup_checkout(mongosup_t *h, const char *cluster, mongosup_error_t *error)
{
    if (h == NULL || cluster == NULL) {
        msup_fail(error, MONGOSUP_E_INVALID_ARG, "mongosup_checkout: no handle or cluster name");
        return NULL;
    }
    uint64_t generation;
    msup_wcluster_t *c = msup_handle_gate(h, cluster, &generation, error);
    if (c == NULL)
        return NULL;
    /* The trusted control row the gate read (refresh_trust), if any. */
    msup_cluster_row_t *r = atomic_load_explicit(&c->ctl_row, memory_order_acquire);

    msup_pool_t *doomed = NULL;
    mongoc_client_t *client = NULL;
    pthread_mutex_lock(&c->mu);
    if (atomic_load_explicit(&c->removed, memory_order_relaxed)) {
        pthread_mutex_unlock(&c->mu);
        return refuse_unknown(cluster, error);
    }
    msup_pool_t *p = c->pool;
    if (p != NULL && p->generation != generation && r != NULL) {
        /* Another thread may have rebuilt for a newer generation since our
         * unlocked read: never rebuild backwards. */
        generation = atomic_load_explicit(&r->reconnect_generation, memory_order_acquire);
    }
    if (p == NULL || p->generation != generation || p->settings_epoch != c->settings_epoch) {
        p = current_pool(c, generation, &doomed, error);
        if (p == NULL) {
            pthread_mutex_unlock(&c->mu);
            return NULL;
        }
    }
    uint32_t wq_ms = c->cfg->wait_queue_timeout_ms;
    uint64_t wait_start = 0, deadline = 0;
    bool unverified = false, budget_waited = false;
    msup_pool_t *from = NULL;
    for (;;) {
        from = c->pool;
        if (from != NULL && c->in_use < c->max_pool_size && (client = msup_pool_take(c, from, &unverified)) != NULL)
            break;
        if (atomic_load_explicit(&h->closing, memory_order_acquire) || msup_handle_segment_draining(h)) {
            pthread_mutex_unlock(&c->mu);
            msup_pool_destroy(doomed);
            return refuse_shutting_down(c, error);
        }
        if (from == NULL || atomic_load_explicit(&c->removed, memory_order_relaxed)) {
            pthread_mutex_unlock(&c->mu); /* removed by a reload while we waited */
            msup_pool_destroy(doomed);
            return refuse_unknown(cluster, error);
        }
        uint64_t now = msup_mono_ns();
        if (wait_start == 0) {
            wait_start = now;
            deadline = wait_start + (uint64_t)wq_ms * NS_PER_MS;
            msup_record_checkout_wait(c, c->in_use >= c->max_pool_size);
        }
        uint64_t wake = wq_ms == 0 ? UINT64_MAX : deadline; /* 0: no bound, as in the driver */
        if (msup_pool_budget_refused(c, from)) {
            /* Refused by the cluster-wide budget, not by our own pool. */
            if (!budget_waited)
                msup_budget_account_note_wait(&from->budget, now);
            else
                msup_budget_account_renew_wait(&from->budget, now);
            budget_waited = true;
            if (now + BUDGET_RETRY_NS < wake)
                wake = now + BUDGET_RETRY_NS;
        }
        c->waiters++;
        if (wake == UINT64_MAX) {
            pthread_cond_wait(&c->freed, &c->mu);
        } else {
            struct timespec ts = {(time_t)(wake / 1000000000ull), (long)(wake % 1000000000ull)};
            pthread_cond_timedwait(&c->freed, &c->mu, &ts);
        }
        c->waiters--;
        if (wq_ms != 0 && msup_mono_ns() >= deadline) {
            from = c->pool;
            if (from != NULL && c->in_use < c->max_pool_size)
                client = msup_pool_take(c, from, &unverified);
            break;
        }
    }
    uint64_t done = wait_start != 0 || unverified ? msup_mono_ns() : 0;
    msup_record_checkout_end(c, wait_start != 0, wait_start != 0 ? (done - wait_start) / 1000 : 0,
                             client != NULL ? NULL
                             : budget_waited ? "no connection-budget token within wait_queue_timeout_ms"
                                             : "no client within wait_queue_timeout_ms");
    msup_pool_publish_gauges(c);
    uint32_t max_pool = c->max_pool_size;
    pthread_mutex_unlock(&c->mu);
    msup_pool_destroy(doomed);
    if (client == NULL) {
        if (budget_waited)
            msup_fail(error, MONGOSUP_E_POOL_TIMEOUT,
                      "cluster %s: no client within %u ms (the cluster's connection budget, max_connections, is spent)",
                      c->name, wq_ms);
        else
            msup_fail(error, MONGOSUP_E_POOL_TIMEOUT, "cluster %s: no client within %u ms (max_pool_size %u in use)",
                      c->name, wq_ms, max_pool);
        return NULL;
    }
    if (unverified) {
        uint64_t hs_deadline = wq_ms != 0 ? (wait_start != 0 ? deadline : done + (uint64_t)wq_ms * NS_PER_MS)
                                          : done + (uint64_t)c->cfg->server_selection_timeout_ms * NS_PER_MS;
        if (handshake(h, c, from, client, hs_deadline, error) == NULL)
            return NULL;
    }
    msup_record_checkout_granted(c);
    msup_apm_forget();
    return client;
}

void mongosup_checkin(mongosup_t *h, mongoc_client_t *client, const bson_error_t *outcome)
{
    if (h == NULL || client == NULL || msup_handle_inherited(h))
        return; /* a client of the parent's pool is abandoned with it */
    msup_clientmap_entry_t *entry = msup_clientmap_entry(&h->clients, client);
    msup_pool_t *p = entry != NULL ? atomic_load_explicit(&entry->pool, memory_order_acquire) : NULL;
    if (p == NULL)
        return; /* not one of ours: never push a foreign client into a pool */
    msup_wcluster_t *c = p->cluster;
    if (outcome != NULL && (outcome->code != 0 || outcome->domain != 0)) {
        enum msup_fail_class cls = msup_classify_error(outcome);
        /* No failed command event counted this one (see apm.c). */
        if (!msup_apm_counted(outcome))
            msup_record_failure(c, cls, outcome->domain, outcome->code, outcome->message);
        /* The driver drops its sockets after such failures: whatever
         * reconnects them must pass a handshake slot first (apm.c). */
        if (cls == MSUP_FAIL_NETWORK || cls == MSUP_FAIL_TIMEOUT || cls == MSUP_FAIL_SERVER_SELECTION)
            msup_outage_bump(c);
    }
    give_back(h, c, p, client, false, atomic_load_explicit(&entry->verified_epoch, memory_order_relaxed));
}

const char *mongosup_client_database(mongosup_t *h, const mongoc_client_t *client)
{
    if (h == NULL || client == NULL || msup_handle_inherited(h))
        return NULL;
    msup_pool_t *p = msup_clientmap_get(&h->clients, client);
    return p != NULL ? p->cluster->cfg->database_name : NULL;
}

const char *mongosup_cluster_database(mongosup_t *h, const char *cluster)
{
    if (h == NULL || cluster == NULL)
        return NULL;
    msup_wcluster_t *c = msup_find_wcluster(h, cluster);
    return c != NULL ? c->cfg->database_name : NULL;
}

int mongosup_worker_slot(const mongosup_t *h)
{
    /* An inherited handle's slot is the parent's. */
    return h != NULL && !msup_handle_inherited(h) ? (int)atomic_load_explicit(&h->slot, memory_order_relaxed) : -1;
}
