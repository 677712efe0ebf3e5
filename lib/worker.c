/* worker.c: the worker handle's life: attach after fork, draining, detach. */
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

/* ---- attach / detach ---- */

static void free_handle(mongosup_t *h)
{
    for (size_t i = 0; i < msup_handle_cluster_count(h); i++) {
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
    while (h->kept != NULL) {
        msup_kept_t *k = h->kept;
        h->kept = k->next;
        mongosup_config_destroy(&k->cfg);
        if (k->seg != NULL) {
            msup_segment_close(k->seg);
            free(k->seg);
        }
        free(k);
    }
    mongosup_config_destroy(&h->own_cfg);
    free(h->config_path);
    msup_segment_t *seg = msup_handle_seg(h);
    if (seg != NULL) {
        if (seg->base != NULL)
            msup_segment_close(seg);
        free(seg);
    }
    free(h);
}

bool msup_wcluster_init(mongosup_t *h, msup_wcluster_t *c, const msup_cluster_cfg_t *cfg, mongosup_error_t *error)
{
    atomic_init(&c->cfg, cfg);
    msup_apm_configure(c);
    c->handle = h;
    snprintf(c->name, sizeof c->name, "%s", cfg->name);
    c->max_pool_size = cfg->max_pool_size > 0 ? cfg->max_pool_size : 100;
    c->min_pool_size = cfg->min_pool_size;
    atomic_init(&c->removed, false);
    atomic_store_explicit(&c->row, -1, memory_order_relaxed);
    c->private_stats = aligned_alloc(MSUP_CACHE_LINE, sizeof(msup_stats_t));
    if (c->private_stats == NULL)
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    memset(c->private_stats, 0, sizeof(msup_stats_t));
    atomic_store_explicit(&c->stats, c->private_stats, memory_order_release);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->freed, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->outage_epoch, 1); /* new clients start at 0: unverified */
    return true;
}

mongosup_t *mongosup_attach(const mongosup_config_t *cfg, mongosup_error_t *error)
{
    if (cfg == NULL) {
        msup_fail(error, MONGOSUP_E_INVALID_ARG, "mongosup_attach: no configuration");
        return NULL;
    }
    mongoc_init();
    msup_process_init();
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
    /* Reloads read the same file for the same environment (docs/api.md). */
    if (cfg->path != NULL)
        h->config_path = strdup(cfg->path);
    snprintf(h->config_env, sizeof h->config_env, "%s", cfg->environment);

    /* Room for the clusters a reload may add (the segment's capacity). */
    h->cluster_cap = cfg->max_clusters > cfg->cluster_count ? cfg->max_clusters : cfg->cluster_count;
    if (h->cluster_cap == 0)
        h->cluster_cap = 1;
    h->clusters = calloc(h->cluster_cap, sizeof *h->clusters);
    msup_segment_t *seg = calloc(1, sizeof *seg);
    atomic_init(&h->seg, seg);
    size_t max_clients = 0;
    if (h->clusters == NULL || seg == NULL) {
        free_handle(h);
        msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->cluster_count; i++) {
        if (!msup_wcluster_init(h, &h->clusters[i], &cfg->clusters[i], error)) {
            free_handle(h);
            return NULL;
        }
        atomic_store_explicit(&h->cluster_count, i + 1, memory_order_release);
        max_clients += 2 * (size_t)h->clusters[i].max_pool_size; /* a pool and the one it replaces */
    }
    h->apm = msup_apm_callbacks_new(msup_apm_wants_started(cfg));
    /* Twice what this configuration needs: a reload may grow the pools
     * (the map stays below half full; reload_settings checks). */
    h->clients_capacity = 2 * max_clients + 64;
    if (!msup_clientmap_init(&h->clients, h->clients_capacity / 2)) {
        free_handle(h);
        msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
        return NULL;
    }

    /* The first process creates the segment, the supervisor adopts it: a
     * worker started before the supervisor keeps its counters. */
    uint32_t slot;
    if (!msup_handle_open_segment(h, cfg, seg, &slot, error)) {
        seg->base = NULL;
        free_handle(h);
        return NULL;
    }
    h->slot = slot;
    h->slot_ptr = msup_segment_slot(seg, slot);

    /* Map every cluster to its row (registering missing rows); the
     * settings are the application's until the generation moves. */
    h->settings_generation = msup_segment_config_generation(seg);
    /* A configuration loaded before the supervisor last applied one (read
     * in a prefork master, which forked after a reload) is read again now,
     * as a running worker does when the generation moves. */
    if (h->config_path != NULL && msup_segment_config_applied_ns(seg) > cfg->loaded_mono_ns)
        h->settings_generation = UINT64_MAX;
    atomic_store_explicit(&h->config_generation, UINT64_MAX, memory_order_relaxed);
    msup_handle_remap_rows(h);

    if (!msup_upkeep_start(h, error)) {
        msup_slot_release(seg, h->slot);
        free_handle(h);
        return NULL;
    }
    return h;
}

/* How long a detaching worker waits for the fold lock (held only
 * while another folder folds one slot) before leaving its slot EXITED for a
 * reaper instead. */
#define DETACH_FOLD_WAIT_MS 1000

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
        msup_handle_abandon(h);
        return true;
    }
    atomic_store_explicit(&h->closing, true, memory_order_release);
    size_t count = msup_handle_cluster_count(h);
    for (size_t i = 0; i < count; i++) {
        /* Wake checkouts waiting for a client: they fail (shutting down). */
        pthread_mutex_lock(&h->clusters[i].mu);
        pthread_cond_broadcast(&h->clusters[i].freed);
        pthread_mutex_unlock(&h->clusters[i].mu);
    }
    uint64_t deadline = msup_mono_ns() + (uint64_t)drain_timeout_ms * NS_PER_MS;
    bool all_back = true;
    for (size_t i = 0; i < count; i++)
        all_back = wait_all_back(&h->clusters[i], deadline) && all_back;
    msup_upkeep_stop(h);
    /* No reload or re-attach can run any more: checkouts are refused. */
    pthread_mutex_lock(&h->map_mu);
    pthread_mutex_unlock(&h->map_mu);
    count = msup_handle_cluster_count(h);
    msup_segment_t *seg = msup_handle_seg(h);

    if (!all_back) {
        /* Clients are still out: their pools cannot be destroyed, and late
         * APM events must not write into a slot the reaper may reuse. */
        for (size_t i = 0; i < count; i++) {
            msup_wcluster_t *c = &h->clusters[i];
            pthread_mutex_lock(&c->mu);
            msup_wcluster_bind_row(h, seg, c, -1);
            pthread_mutex_unlock(&c->mu);
        }
        msup_slot_free_own(seg, h->slot, DETACH_FOLD_WAIT_MS);
        msup_handle_abandon(h);
        return false;
    }
    for (size_t i = 0; i < count; i++) {
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
    msup_slot_free_own(seg, h->slot, DETACH_FOLD_WAIT_MS);
    free_handle(h);
    return true;
}

/* ---- draining ---- */

bool msup_handle_segment_draining(mongosup_t *h)
{
    if (msup_segment_phase(msup_handle_seg(h)) < MSUP_PHASE_DRAINING)
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
    return msup_handle_segment_draining(h) || atomic_load_explicit(&h->closing, memory_order_relaxed);
}
