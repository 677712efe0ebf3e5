/* worker_reload.c: binding clusters to their segment rows, and reloading the settings when the configuration generation moves. */
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

void msup_wcluster_bind_row(mongosup_t *h, msup_segment_t *seg, msup_wcluster_t *c, int row)
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

bool msup_handle_keep(mongosup_t *h, mongosup_config_t *cfg, msup_segment_t *seg)
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
            if (!msup_wcluster_init(h, &h->clusters[n], cc, &why))
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
        msup_handle_keep(h, h->own_cfg, NULL);
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
            msup_wcluster_bind_row(h, seg, c, row);
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
