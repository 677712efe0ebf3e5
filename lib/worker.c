/* worker.c: the worker handle: attach after fork, checkout/checkin, draining, detach, fork detection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "classify.h"
#include "error.h"
#include "redact.h"
#include "slots.h"
#include "stats.h"
#include "worker.h"

#define NS_PER_MS 1000000ull

/* ---- process-wide state: fork epoch, driver log, abandoned handles ---- */

/* Bumped in every child by pthread_atfork: a handle whose epoch differs was
 * inherited across fork.  A load and a compare instead of getpid() (a real
 * syscall in current glibc) on every checkout. */
static _Atomic uint64_t fork_epoch;
static pthread_once_t process_once = PTHREAD_ONCE_INIT;
/* Handles we may not free (inherited across fork, or clients still out at
 * detach): kept reachable here, never destroyed. */
static _Atomic(mongosup_t *) abandoned;

static void on_fork_child(void)
{
    atomic_fetch_add_explicit(&fork_epoch, 1, memory_order_relaxed);
}

/* The driver logs pooled monitor errors at DEBUG on stdout, and the idle
 * cap that trimming needs (mongoc_client_pool_min_size) logs a deprecation
 * warning on every call: keep warnings and worse, redacted, on stderr. */
static void driver_log(mongoc_log_level_t level, const char *domain, const char *message, void *data)
{
    (void)data;
    if (level > MONGOC_LOG_LEVEL_WARNING || strstr(message, "mongoc_client_pool_min_size") != NULL)
        return;
    char text[1024];
    msup_redact_text(message, text, sizeof text);
    fprintf(stderr, "mongosup[%d]: driver %s: %s\n", (int)getpid(), domain ? domain : "", text);
}

static void process_init(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
    mongoc_log_set_handler(driver_log, NULL);
}

uint64_t msup_fork_epoch(void)
{
    return atomic_load_explicit(&fork_epoch, memory_order_relaxed);
}

bool msup_handle_inherited(const mongosup_t *h)
{
    return h->fork_epoch != atomic_load_explicit(&fork_epoch, memory_order_relaxed);
}

static void abandon(mongosup_t *h)
{
    mongosup_t *head = atomic_load_explicit(&abandoned, memory_order_relaxed);
    do {
        h->next_abandoned = head;
    } while (!atomic_compare_exchange_weak_explicit(&abandoned, &head, h, memory_order_release,
                                                    memory_order_relaxed));
}

/* ---- rows ---- */

static void bind_row(mongosup_t *h, msup_wcluster_t *c, int row)
{
    msup_stats_t *stats = row >= 0 ? msup_slot_stats(&h->seg, h->slot, (uint32_t)row) : c->private_stats;
    msup_stats_t *old = msup_wcluster_stats(c);
    if (old != NULL && old != stats) {
        /* Gauges belong to the row we report to now. */
        atomic_store_explicit(&old->pool_in_use, 0, memory_order_relaxed);
        atomic_store_explicit(&old->pool_idle, 0, memory_order_relaxed);
        atomic_store_explicit(&old->pool_created, 0, memory_order_relaxed);
        atomic_store_explicit(&old->pool_max, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&c->row, row, memory_order_relaxed);
    atomic_store_explicit(&stats->pool_max, (int64_t)c->max_pool_size, memory_order_relaxed);
    atomic_store_explicit(&c->stats, stats, memory_order_release);
}

void msup_handle_remap_rows(mongosup_t *h)
{
    pthread_mutex_lock(&h->map_mu);
    uint64_t gen = atomic_load_explicit(&h->seg.hdr->config_generation, memory_order_acquire);
    if (gen != atomic_load_explicit(&h->config_generation, memory_order_relaxed)) {
        for (size_t i = 0; i < h->cluster_count; i++) {
            msup_wcluster_t *c = &h->clusters[i];
            int row = msup_registry_map(&h->seg, c->cfg, (uint32_t)i % h->seg.max_clusters);
            pthread_mutex_lock(&c->mu);
            bind_row(h, c, row);
            atomic_store_explicit(&msup_wcluster_stats(c)->config_generation_seen, gen, memory_order_relaxed);
            msup_pool_publish_gauges(c);
            pthread_mutex_unlock(&c->mu);
        }
        atomic_store_explicit(&h->config_generation, gen, memory_order_release);
    }
    pthread_mutex_unlock(&h->map_mu);
}

msup_wcluster_t *msup_find_wcluster(mongosup_t *h, const char *name)
{
    for (size_t i = 0; i < h->cluster_count; i++) {
        if (strcmp(h->clusters[i].name, name) == 0)
            return &h->clusters[i];
    }
    return NULL;
}

/* ---- attach / detach ---- */

static void free_handle(mongosup_t *h)
{
    for (size_t i = 0; i < h->cluster_count; i++) {
        msup_wcluster_t *c = &h->clusters[i];
        pthread_cond_destroy(&c->freed);
        pthread_mutex_destroy(&c->mu);
        free(c->private_stats);
    }
    free(h->clusters);
    msup_clientmap_free(&h->clients);
    if (h->apm != NULL)
        mongoc_apm_callbacks_destroy(h->apm);
    pthread_mutex_destroy(&h->map_mu);
    free(h);
}

static bool init_cluster(mongosup_t *h, msup_wcluster_t *c, const msup_cluster_cfg_t *cfg, mongosup_error_t *error)
{
    c->cfg = cfg;
    c->handle = h;
    snprintf(c->name, sizeof c->name, "%s", cfg->name);
    c->max_pool_size = cfg->max_pool_size > 0 ? cfg->max_pool_size : 100;
    c->min_pool_size = cfg->min_pool_size;
    atomic_store_explicit(&c->row, -1, memory_order_relaxed);
    c->private_stats = aligned_alloc(MSUP_CACHE_LINE, sizeof(msup_stats_t));
    if (c->private_stats == NULL)
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    memset(c->private_stats, 0, sizeof(msup_stats_t));
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->freed, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&c->mu, NULL);
    return true;
}

mongosup_t *mongosup_attach(const mongosup_config_t *cfg, mongosup_error_t *error)
{
    if (cfg == NULL) {
        msup_fail(error, MONGOSUP_E_INVALID_ARG, "mongosup_attach: no configuration");
        return NULL;
    }
    mongoc_init();
    pthread_once(&process_once, process_init);
    mongosup_t *h = calloc(1, sizeof *h);
    if (h == NULL) {
        msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
        return NULL;
    }
    h->fork_epoch = msup_fork_epoch();
    h->pid = getpid();
    h->cfg = cfg;
    pthread_mutex_init(&h->map_mu, NULL);
    snprintf(h->appname, sizeof h->appname, "mongosup-%d", (int)h->pid);

    h->clusters = calloc(cfg->cluster_count ? cfg->cluster_count : 1, sizeof *h->clusters);
    size_t max_clients = 0;
    if (h->clusters == NULL) {
        free_handle(h);
        msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->cluster_count; i++) {
        if (!init_cluster(h, &h->clusters[i], &cfg->clusters[i], error)) {
            free_handle(h);
            return NULL;
        }
        h->cluster_count++;
        max_clients += 2 * (size_t)h->clusters[i].max_pool_size; /* a pool and the one it replaces */
    }
    h->apm = msup_apm_callbacks_new();
    if (!msup_clientmap_init(&h->clients, max_clients)) {
        free_handle(h);
        msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
        return NULL;
    }

    /* The first process creates the segment, the supervisor adopts it: a
     * worker started before the supervisor keeps its counters. */
    msup_geometry_t geo = {.max_workers = cfg->max_workers,
                           .max_clusters = cfg->max_clusters,
                           .mode = cfg->segment_mode,
                           .group = cfg->segment_group,
                           .environment = cfg->environment};
    bool created;
    if (!msup_segment_open_or_create(cfg->segment_name, &geo, &h->seg, &created, error)) {
        free_handle(h);
        return NULL;
    }
    const char *slot_name = cfg->cluster_count > 0 && cfg->clusters[0].appname ? cfg->clusters[0].appname : h->appname;
    int slot = msup_slot_claim(&h->seg, h->pid, slot_name, error);
    if (slot < 0) {
        msup_segment_close(&h->seg);
        free_handle(h);
        return NULL;
    }
    h->slot = (uint32_t)slot;
    h->slot_ptr = msup_segment_slot(&h->seg, h->slot);

    /* Map every cluster to its row (registering missing rows). */
    atomic_store_explicit(&h->config_generation, UINT64_MAX, memory_order_relaxed);
    msup_handle_remap_rows(h);

    if (!msup_upkeep_start(h, error)) {
        msup_slot_release(&h->seg, h->slot);
        msup_segment_close(&h->seg);
        free_handle(h);
        return NULL;
    }
    return h;
}

/* Waits until every client of the cluster is back, or the deadline. */
static bool wait_all_back(msup_wcluster_t *c, uint64_t deadline_ns)
{
    pthread_mutex_lock(&c->mu);
    while (c->in_use > 0) {
        struct timespec ts = {(time_t)(deadline_ns / 1000000000ull), (long)(deadline_ns % 1000000000ull)};
        c->waiters++;
        int rc = pthread_cond_timedwait(&c->freed, &c->mu, &ts);
        c->waiters--;
        if (rc == ETIMEDOUT && c->in_use > 0)
            break;
    }
    bool all_back = c->in_use == 0;
    pthread_mutex_unlock(&c->mu);
    return all_back;
}

bool mongosup_detach(mongosup_t **handle, uint32_t drain_timeout_ms)
{
    if (handle == NULL || *handle == NULL)
        return true;
    mongosup_t *h = *handle;
    *handle = NULL;
    if (msup_handle_inherited(h)) {
        /* The parent's handle: its pools and slot are the parent's.
         * Destroying an inherited pool deadlocks mongoc 1.23. */
        abandon(h);
        return true;
    }
    atomic_store_explicit(&h->closing, true, memory_order_release);
    for (size_t i = 0; i < h->cluster_count; i++) {
        /* Wake checkouts waiting for a client: they fail (shutting down). */
        pthread_mutex_lock(&h->clusters[i].mu);
        pthread_cond_broadcast(&h->clusters[i].freed);
        pthread_mutex_unlock(&h->clusters[i].mu);
    }
    uint64_t deadline = msup_mono_ns() + (uint64_t)drain_timeout_ms * NS_PER_MS;
    bool all_back = true;
    for (size_t i = 0; i < h->cluster_count; i++)
        all_back = wait_all_back(&h->clusters[i], deadline) && all_back;
    msup_upkeep_stop(h);

    if (!all_back) {
        /* Clients are still out: their pools cannot be destroyed, and late
         * APM events must not write into a slot the reaper may reuse. */
        for (size_t i = 0; i < h->cluster_count; i++) {
            msup_wcluster_t *c = &h->clusters[i];
            pthread_mutex_lock(&c->mu);
            bind_row(h, c, -1);
            pthread_mutex_unlock(&c->mu);
        }
        msup_slot_release(&h->seg, h->slot);
        abandon(h);
        return false;
    }
    for (size_t i = 0; i < h->cluster_count; i++) {
        msup_wcluster_t *c = &h->clusters[i];
        msup_pool_t *p = c->pool, *r = c->retired;
        c->pool = NULL;
        c->retired = NULL;
        msup_pool_destroy(p);
        while (r != NULL) {
            msup_pool_t *next = r->next_retired;
            msup_pool_destroy(r);
            r = next;
        }
        msup_pool_publish_gauges(c);
    }
    msup_slot_release(&h->seg, h->slot);
    msup_segment_close(&h->seg);
    free_handle(h);
    return true;
}

/* ---- draining ---- */

static bool segment_draining(mongosup_t *h)
{
    if (atomic_load_explicit(&h->seg.hdr->phase, memory_order_acquire) < MSUP_PHASE_DRAINING)
        return false;
    if (!atomic_load_explicit(&h->draining_acked, memory_order_relaxed)) {
        atomic_store_explicit(&h->slot_ptr->draining_ack, 1, memory_order_release);
        atomic_store_explicit(&h->draining_acked, true, memory_order_relaxed);
    }
    return true;
}

bool mongosup_draining(mongosup_t *h)
{
    if (h == NULL || msup_handle_inherited(h))
        return false;
    return segment_draining(h) || atomic_load_explicit(&h->closing, memory_order_relaxed);
}

/* ---- checkout / checkin ---- */

static void count_failure(msup_wcluster_t *c, enum msup_fail_class cls, uint32_t code, const char *message)
{
    msup_stats_record_failure(msup_wcluster_stats(c), cls, MONGOSUP_ERROR_MONGOSUP, code, message);
}

static void acknowledge(msup_wcluster_t *c, uint64_t generation)
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
        acknowledge(c, generation);
        if (p->warm_pending)
            msup_upkeep_kick(c->handle);
        return p;
    }
    uint64_t now = msup_mono_ns();
    if (c->rebuild_due_ns == 0) {
        c->rebuild_due_ns = now + msup_reconnect_delay_ns(c->handle->slot, c->cfg->reconnect_window_ms);
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
    acknowledge(c, generation);
    if (fresh->warm_pending)
        msup_upkeep_kick(c->handle);
    return fresh;
}

static mongoc_client_t *refuse_shutting_down(msup_wcluster_t *c, mongosup_error_t *error)
{
    count_failure(c, MSUP_FAIL_SHUTTING_DOWN, MONGOSUP_E_SHUTTING_DOWN, "shutting down: checkout refused");
    msup_fail(error, MONGOSUP_E_SHUTTING_DOWN, "cluster %s: shutting down, checkout refused", c->name);
    return NULL;
}

mongoc_client_t *mongosup_checkout(mongosup_t *h, const char *cluster, mongosup_error_t *error)
{
    if (h == NULL || cluster == NULL) {
        msup_fail(error, MONGOSUP_E_INVALID_ARG, "mongosup_checkout: no handle or cluster name");
        return NULL;
    }
    if (msup_handle_inherited(h)) {
        msup_fail(error, MONGOSUP_E_FORKED,
                  "this handle was inherited across fork(): call mongosup_attach in the child");
        return NULL;
    }
    msup_wcluster_t *c = msup_find_wcluster(h, cluster);
    if (c == NULL) {
        msup_fail(error, MONGOSUP_E_UNKNOWN_CLUSTER, "cluster '%.64s' is not in the configuration", cluster);
        return NULL;
    }
    msup_header_t *hdr = h->seg.hdr;
    if (atomic_load_explicit(&hdr->config_generation, memory_order_relaxed) !=
        atomic_load_explicit(&h->config_generation, memory_order_relaxed))
        msup_handle_remap_rows(h);
    if (segment_draining(h) || atomic_load_explicit(&h->closing, memory_order_acquire))
        return refuse_shutting_down(c, error);

    uint64_t generation = 0;
    int row = atomic_load_explicit(&c->row, memory_order_relaxed);
    if (row >= 0) {
        msup_cluster_row_t *r = msup_segment_row(&h->seg, (uint32_t)row);
        if (atomic_load_explicit(&r->health, memory_order_acquire) == MSUP_HEALTH_DOWN &&
            atomic_load_explicit(&r->circuit_breaker, memory_order_relaxed) != 0 && msup_supervisor_alive(&h->seg)) {
            count_failure(c, MSUP_FAIL_CIRCUIT_OPEN, MONGOSUP_E_CIRCUIT_OPEN, "circuit open: cluster is DOWN");
            msup_fail(error, MONGOSUP_E_CIRCUIT_OPEN, "cluster %s is DOWN (circuit open): checkout refused",
                      c->name);
            return NULL;
        }
        generation = atomic_load_explicit(&r->reconnect_generation, memory_order_acquire);
    }

    msup_pool_t *doomed = NULL;
    mongoc_client_t *client = NULL;
    pthread_mutex_lock(&c->mu);
    msup_pool_t *p = c->pool;
    if (p != NULL && p->generation != generation && row >= 0) {
        /* Another thread may have rebuilt for a newer generation since our
         * unlocked read: never rebuild backwards. */
        generation = atomic_load_explicit(&msup_segment_row(&h->seg, (uint32_t)row)->reconnect_generation,
                                          memory_order_acquire);
    }
    if (p == NULL || p->generation != generation) {
        p = current_pool(c, generation, &doomed, error);
        if (p == NULL) {
            pthread_mutex_unlock(&c->mu);
            return NULL;
        }
    }
    msup_stats_t *s = msup_wcluster_stats(c);
    uint64_t wait_start = 0, deadline = 0;
    for (;;) {
        if (c->in_use < c->max_pool_size && (client = msup_pool_take(c, c->pool)) != NULL)
            break;
        if (atomic_load_explicit(&h->closing, memory_order_acquire) || segment_draining(h)) {
            pthread_mutex_unlock(&c->mu);
            msup_pool_destroy(doomed);
            return refuse_shutting_down(c, error);
        }
        if (wait_start == 0) {
            wait_start = msup_mono_ns();
            deadline = wait_start + (uint64_t)c->cfg->wait_queue_timeout_ms * NS_PER_MS;
            msup_stats_count(&s->checkout_waits, 1);
            if (c->in_use >= c->max_pool_size)
                msup_stats_count(&s->max_reached, 1);
        }
        int rc;
        c->waiters++;
        if (c->cfg->wait_queue_timeout_ms == 0) { /* 0: no bound, as in the driver */
            rc = pthread_cond_wait(&c->freed, &c->mu);
        } else {
            struct timespec ts = {(time_t)(deadline / 1000000000ull), (long)(deadline % 1000000000ull)};
            rc = pthread_cond_timedwait(&c->freed, &c->mu, &ts);
        }
        c->waiters--;
        if (rc == ETIMEDOUT && !(c->in_use < c->max_pool_size && (client = msup_pool_take(c, c->pool)) != NULL))
            break;
        if (client != NULL)
            break;
    }
    if (wait_start != 0)
        msup_stats_count(&s->checkout_wait_us, (msup_mono_ns() - wait_start) / 1000);
    if (client != NULL) {
        msup_stats_count(&s->checkouts, 1);
        msup_apm_forget();
    }
    else
        msup_stats_count(&s->checkout_timeouts, 1);
    msup_pool_publish_gauges(c);
    pthread_mutex_unlock(&c->mu);
    msup_pool_destroy(doomed);
    if (client == NULL) {
        msup_last_error_write(&s->last_error, MSUP_FAIL_TIMEOUT, MONGOSUP_ERROR_MONGOSUP, MONGOSUP_E_POOL_TIMEOUT,
                              "no client within wait_queue_timeout_ms");
        msup_fail(error, MONGOSUP_E_POOL_TIMEOUT, "cluster %s: no client within %u ms (max_pool_size %u in use)",
                  c->name, c->cfg->wait_queue_timeout_ms, c->max_pool_size);
    }
    return client;
}

void mongosup_checkin(mongosup_t *h, mongoc_client_t *client, const bson_error_t *outcome)
{
    if (h == NULL || client == NULL || msup_handle_inherited(h))
        return; /* a client of the parent's pool is abandoned with it */
    msup_pool_t *p = msup_clientmap_get(&h->clients, client);
    if (p == NULL)
        return; /* not one of ours: never push a foreign client into a pool */
    msup_wcluster_t *c = p->cluster;
    if (outcome != NULL && (outcome->code != 0 || outcome->domain != 0) && !msup_apm_counted(outcome)) {
        /* No failed command event counted this one (see apm.c). */
        char message[MSUP_ERRMSG_MAX];
        msup_redact_text(outcome->message, message, sizeof message);
        msup_stats_record_failure(msup_wcluster_stats(c), msup_classify_error(outcome), outcome->domain,
                                  outcome->code, message);
    }
    pthread_mutex_lock(&c->mu);
    bool doomed = msup_pool_give(c, p, client);
    if (doomed) {
        msup_pool_t **link = &c->retired;
        while (*link != NULL && *link != p)
            link = &(*link)->next_retired;
        if (*link != NULL)
            *link = p->next_retired;
    }
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
    return h != NULL ? (int)h->slot : -1;
}
