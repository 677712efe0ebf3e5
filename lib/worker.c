/* worker.c: the worker handle: attach after fork, checkout/checkin, draining, detach, fork detection. */
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

static void bind_row(mongosup_t *h, msup_segment_t *seg, msup_wcluster_t *c, int row)
{
    msup_stats_t *stats = row >= 0 ? msup_slot_stats(seg, h->slot, (uint32_t)row) : c->private_stats;
    msup_stats_t *old = msup_wcluster_stats(c);
    if (old != NULL && old != stats) {
        /* Gauges belong to the row we report to now. */
        atomic_store_explicit(&old->pool_in_use, 0, memory_order_relaxed);
        atomic_store_explicit(&old->pool_idle, 0, memory_order_relaxed);
        atomic_store_explicit(&old->pool_created, 0, memory_order_relaxed);
        atomic_store_explicit(&old->pool_max, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&c->row, row, memory_order_relaxed);
    msup_wcluster_refresh_trust(seg, c);
    atomic_store_explicit(&stats->pool_max, (int64_t)c->max_pool_size, memory_order_relaxed);
    atomic_store_explicit(&c->stats, stats, memory_order_release);
}

static bool keep(mongosup_t *h, mongosup_config_t *cfg, msup_segment_t *seg)
{
    msup_kept_t *k = calloc(1, sizeof *k);
    if (k == NULL)
        return false;
    k->cfg = cfg;
    k->seg = seg;
    k->next = h->kept;
    h->kept = k;
    return true;
}

static bool init_cluster(mongosup_t *h, msup_wcluster_t *c, const msup_cluster_cfg_t *cfg, mongosup_error_t *error);

/* Retires a cluster's current pool (with c->mu held): it is destroyed now
 * when no client is out (returned for the caller to destroy unlocked),
 * else when its last client comes back. */
static msup_pool_t *retire_current(msup_wcluster_t *c)
{
    msup_pool_t *p = c->pool;
    c->pool = NULL;
    if (p == NULL)
        return NULL;
    p->retired = true;
    if (p->out == 0)
        return p;
    p->next_retired = c->retired;
    c->retired = p;
    return NULL;
}

static bool same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void note_reload_failure(mongosup_t *h, const mongosup_error_t *why)
{
    char text[MSUP_ERRMSG_MAX];
    msup_redact_text(why->message, text, sizeof text);
    h->reload_error = *why;
    msup_redact_text(why->message, h->reload_error.message, sizeof h->reload_error.message);
    for (size_t i = 0; i < msup_handle_cluster_count(h); i++)
        msup_last_error_write(&msup_wcluster_stats(&h->clusters[i])->last_error, MSUP_FAIL_OTHER,
                              MONGOSUP_ERROR_MONGOSUP, MONGOSUP_E_CONFIG, text);
    fprintf(stderr, "mongosup[%d]: configuration reload failed, keeping the old settings: %s\n", (int)h->pid, text);
}

/*
 * Reloads the configuration file after the supervisor bumped the
 * configuration generation (map_mu held).  Clusters whose URI or pool
 * settings changed get a new pool at their next checkout (the old one is
 * retired as by a reconnect); other settings (timeouts, retries) apply at
 * once.  Removed clusters refuse checkouts; added ones become usable.  On
 * any failure the old settings stay.
 */
static void reload_settings(mongosup_t *h)
{
    mongosup_error_t why;
    mongosup_config_t *nc = mongosup_config_load(h->config_path, h->config_env, &why);
    if (nc == NULL) {
        note_reload_failure(h, &why);
        return;
    }
    size_t count = msup_handle_cluster_count(h), added = 0, clients = 0;
    for (size_t i = 0; i < nc->cluster_count; i++) {
        bool known = false;
        for (size_t k = 0; k < count && !known; k++)
            known = strcmp(h->clusters[k].name, nc->clusters[i].name) == 0;
        added += known ? 0 : 1;
        clients += 2 * (size_t)(nc->clusters[i].max_pool_size ? nc->clusters[i].max_pool_size : 100);
    }
    for (size_t k = 0; k < count; k++)
        clients += h->clusters[k].max_pool_size; /* pools being retired */
    if (count + added > h->cluster_cap || clients > h->clients_capacity) {
        msup_fail(&why, MONGOSUP_E_CONFIG,
                  "%s: the new configuration needs more clusters or clients than this worker was sized for at "
                  "attach: restart the worker to use it",
                  h->config_path);
        mongosup_config_destroy(&nc);
        note_reload_failure(h, &why);
        return;
    }
    for (size_t i = 0; i < nc->cluster_count; i++) {
        const msup_cluster_cfg_t *cc = &nc->clusters[i];
        msup_wcluster_t *c = NULL;
        for (size_t k = 0; k < count && c == NULL; k++)
            c = strcmp(h->clusters[k].name, cc->name) == 0 ? &h->clusters[k] : NULL;
        if (c == NULL) {
            size_t n = msup_handle_cluster_count(h);
            if (!init_cluster(h, &h->clusters[n], cc, &why))
                continue;
            atomic_store_explicit(&h->cluster_count, n + 1, memory_order_release);
            continue;
        }
        uint32_t max_pool = cc->max_pool_size > 0 ? cc->max_pool_size : 100;
        pthread_mutex_lock(&c->mu);
        const msup_cluster_cfg_t *old = c->cfg;
        bool rebuild = !same_text(old->uri, cc->uri) || !same_text(old->appname, cc->appname) ||
                       max_pool != c->max_pool_size || cc->min_pool_size != c->min_pool_size;
        c->cfg = cc;
        msup_apm_configure(c);
        c->max_pool_size = max_pool;
        c->min_pool_size = cc->min_pool_size;
        if (rebuild) {
            c->settings_epoch++;
            c->rebuild_due_ns = 0;
        }
        atomic_store_explicit(&msup_wcluster_stats(c)->pool_max, (int64_t)max_pool, memory_order_relaxed);
        atomic_store_explicit(&c->removed, false, memory_order_release);
        if (c->waiters > 0)
            pthread_cond_broadcast(&c->freed); /* a larger max lets waiters in */
        pthread_mutex_unlock(&c->mu);
    }
    for (size_t k = 0; k < count; k++) {
        msup_wcluster_t *c = &h->clusters[k];
        if (msup_config_find_cluster(nc, c->name) >= 0)
            continue;
        pthread_mutex_lock(&c->mu);
        atomic_store_explicit(&c->removed, true, memory_order_release);
        msup_pool_t *doomed = retire_current(c);
        msup_pool_publish_gauges(c);
        pthread_cond_broadcast(&c->freed); /* waiters fail: unknown cluster */
        pthread_mutex_unlock(&c->mu);
        msup_pool_destroy(doomed);
    }
    /* Readers may still hold the old copy's pointers: it lives until detach
     * (out of memory, it is leaked rather than freed). */
    if (h->own_cfg != NULL)
        keep(h, h->own_cfg, NULL);
    h->own_cfg = nc;
    msup_error_clear(&h->reload_error);
}

/* Remaps every cluster to its row when the header's configuration
 * generation moved; reloads the configuration file first when the
 * generation moved since the settings were loaded. */
void msup_handle_remap_rows(mongosup_t *h)
{
    pthread_mutex_lock(&h->map_mu);
    msup_segment_t *seg = msup_handle_seg(h);
    uint64_t gen = msup_segment_config_generation(seg);
    if (gen != atomic_load_explicit(&h->config_generation, memory_order_relaxed)) {
        if (gen != h->settings_generation && h->config_path != NULL)
            reload_settings(h);
        h->settings_generation = gen;
        for (size_t i = 0; i < msup_handle_cluster_count(h); i++) {
            msup_wcluster_t *c = &h->clusters[i];
            if (atomic_load_explicit(&c->removed, memory_order_acquire))
                continue; /* keeps its row for clients still out */
            int row = msup_registry_map(seg, c->cfg, (uint32_t)i % seg->max_clusters);
            pthread_mutex_lock(&c->mu);
            bind_row(h, seg, c, row);
            if (row >= 0)
                msup_wcluster_check_uri(h, c);
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
    size_t n = msup_handle_cluster_count(h);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(h->clusters[i].name, name) == 0)
            return atomic_load_explicit(&h->clusters[i].removed, memory_order_acquire) ? NULL : &h->clusters[i];
    }
    return NULL;
}

/* ---- a segment recreated under a long-lived worker ---- */

static const mongosup_config_t *current_cfg(const mongosup_t *h)
{
    return h->own_cfg != NULL ? h->own_cfg : h->cfg;
}

static bool open_segment(mongosup_t *h, const mongosup_config_t *cfg, msup_segment_t *seg, uint32_t *slot,
                         mongosup_error_t *error)
{
    msup_geometry_t geo = {.max_workers = cfg->max_workers,
                           .max_clusters = cfg->max_clusters,
                           .mode = cfg->segment_mode,
                           .group = cfg->segment_group,
                           .owner = cfg->segment_owner,
                           .environment = cfg->environment};
    bool created;
    if (!msup_segment_open_or_create(cfg->segment_name, &geo, seg, &created, error))
        return false;
    msup_handle_bind_control(h, seg);
    const char *slot_name = cfg->cluster_count > 0 && cfg->clusters[0].appname ? cfg->clusters[0].appname : h->appname;
    int claimed = msup_slot_claim(seg, h->pid, slot_name, error);
    if (claimed < 0) {
        msup_segment_close(seg);
        return false;
    }
    *slot = (uint32_t)claimed;
    return true;
}

/*
 * The segment we map was unlinked (a graceful stop without keep_segment)
 * or recreated (a new supervisor): open or create the one the name refers
 * to now, claim a slot there, rebind every cluster and rebuild every pool
 * (their budget tokens belong to the old segment's rows).  Counters start
 * from zero in the new segment.  The old mapping stays until detach (other
 * threads may hold pointers into it).  Returns true when it moved.
 */
static bool reattach_segment(mongosup_t *h)
{
    pthread_mutex_lock(&h->map_mu);
    atomic_store_explicit(&h->segment_stale, false, memory_order_relaxed);
    msup_segment_t *old = msup_handle_seg(h);
    if (!msup_segment_replaced(old)) {
        pthread_mutex_unlock(&h->map_mu);
        return false;
    }
    msup_segment_t *seg = calloc(1, sizeof *seg);
    mongosup_error_t why;
    uint32_t slot;
    if (seg == NULL || !keep(h, NULL, old)) {
        free(seg);
        pthread_mutex_unlock(&h->map_mu);
        return false;
    }
    if (!open_segment(h, current_cfg(h), seg, &slot, &why)) {
        h->kept->seg = NULL; /* still ours */
        free(seg);
        pthread_mutex_unlock(&h->map_mu);
        char text[MSUP_ERRMSG_MAX];
        msup_redact_text(why.message, text, sizeof text);
        fprintf(stderr, "mongosup[%d]: the segment was replaced and cannot be re-attached: %s\n", (int)h->pid, text);
        return false;
    }
    msup_slot_release(old, h->slot);
    atomic_store_explicit(&h->slot, slot, memory_order_relaxed);
    atomic_store_explicit(&h->slot_ptr, msup_segment_slot(seg, slot), memory_order_relaxed);
    atomic_store_explicit(&h->draining_acked, false, memory_order_relaxed);
    atomic_store_explicit(&h->seg, seg, memory_order_release);
    for (size_t i = 0; i < msup_handle_cluster_count(h); i++) {
        msup_wcluster_t *c = &h->clusters[i];
        pthread_mutex_lock(&c->mu);
        c->settings_epoch++; /* new pools, accounted in the new segment's budget */
        c->rebuild_due_ns = 0;
        pthread_mutex_unlock(&c->mu);
    }
    /* Map the rows again, and read the file again: a new supervisor may
     * run with a new configuration. */
    atomic_store_explicit(&h->config_generation, UINT64_MAX, memory_order_relaxed);
    h->settings_generation = UINT64_MAX;
    pthread_mutex_unlock(&h->map_mu);
    msup_handle_remap_rows(h);
    return true;
}

/* Phase STOPPED: the supervisor is gone; if its segment was replaced
 * since, move to the new one.  At most one check a second. */
static bool stopped_reattach(mongosup_t *h)
{
    static _Atomic uint64_t last_check_ns;
    uint64_t now = msup_mono_ns(), last = atomic_load_explicit(&last_check_ns, memory_order_relaxed);
    if (now - last < 1000 * NS_PER_MS && last != 0)
        return false;
    if (!atomic_compare_exchange_strong_explicit(&last_check_ns, &last, now, memory_order_relaxed,
                                                 memory_order_relaxed))
        return false;
    return reattach_segment(h);
}

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

static bool init_cluster(mongosup_t *h, msup_wcluster_t *c, const msup_cluster_cfg_t *cfg, mongosup_error_t *error)
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
        if (!init_cluster(h, &h->clusters[i], &cfg->clusters[i], error)) {
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
    if (!open_segment(h, cfg, seg, &slot, error)) {
        seg->base = NULL;
        free_handle(h);
        return NULL;
    }
    h->slot = slot;
    h->slot_ptr = msup_segment_slot(seg, slot);

    /* Map every cluster to its row (registering missing rows); the
     * settings are the application's until the generation moves. */
    h->settings_generation = msup_segment_config_generation(seg);
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
        abandon(h);
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
            bind_row(h, seg, c, -1);
            pthread_mutex_unlock(&c->mu);
        }
        msup_slot_free_own(seg, h->slot, DETACH_FOLD_WAIT_MS);
        abandon(h);
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

static bool segment_draining(mongosup_t *h)
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
    return segment_draining(h) || atomic_load_explicit(&h->closing, memory_order_relaxed);
}

/* ---- checkout / checkin ---- */

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
        reattach_segment(h);
    msup_segment_t *seg = msup_handle_seg(h);
    if (msup_segment_config_generation(seg) != atomic_load_explicit(&h->config_generation, memory_order_relaxed))
        msup_handle_remap_rows(h); /* and reloads the settings: see docs/api.md */
    msup_wcluster_t *c = msup_find_wcluster(h, cluster);
    if (c == NULL)
        return refuse_unknown(cluster, error);
    if (segment_draining(h)) {
        if (msup_segment_phase(seg) != MSUP_PHASE_STOPPED ||
            !stopped_reattach(h) || segment_draining(h))
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
        if (atomic_load_explicit(&h->closing, memory_order_acquire) || segment_draining(h)) {
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
