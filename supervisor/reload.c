/* reload.c: SIGHUP or the control socket: load, validate, then apply the new configuration to the segment all at once. */
#include <stdio.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "budget.h"
#include "../fleet/fleet.h"
#include "error.h"
#include "health.h"
#include "hostcap.h"
#include "log.h"
#include "redact.h"
#include "reconnect.h"
#include "reload.h"

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Settings whose change a worker or a checker must see. */
static bool cluster_changed(const msup_cluster_cfg_t *a, const msup_cluster_cfg_t *b)
{
    return !same_str(a->uri, b->uri) || !same_str(a->database_name, b->database_name) ||
           !same_str(a->appname, b->appname) || a->max_pool_size != b->max_pool_size ||
           a->min_pool_size != b->min_pool_size || a->max_idle_time_ms != b->max_idle_time_ms ||
           a->wait_queue_timeout_ms != b->wait_queue_timeout_ms || a->connect_timeout_ms != b->connect_timeout_ms ||
           a->socket_timeout_ms != b->socket_timeout_ms ||
           a->server_selection_timeout_ms != b->server_selection_timeout_ms ||
           a->heartbeat_frequency_ms != b->heartbeat_frequency_ms || a->retry_writes != b->retry_writes ||
           a->retry_reads != b->retry_reads || !same_str(a->tls_ca_file, b->tls_ca_file) ||
           !same_str(a->tls_certificate_key_file, b->tls_certificate_key_file) ||
           !same_str(a->tls_certificate_key_file_password, b->tls_certificate_key_file_password) ||
           a->tls_allow_invalid_hostnames != b->tls_allow_invalid_hostnames ||
           a->check_interval_ms != b->check_interval_ms || a->check_fastinter_ms != b->check_fastinter_ms ||
           a->check_downinter_ms != b->check_downinter_ms || a->check_timeout_ms != b->check_timeout_ms ||
           a->rise != b->rise || a->fall != b->fall || a->degraded_rtt_ms != b->degraded_rtt_ms ||
           a->circuit_breaker != b->circuit_breaker || a->reconnect_window_ms != b->reconnect_window_ms ||
           a->reconnect_min_interval_ms != b->reconnect_min_interval_ms ||
           a->reconnect_network_errors_per_s != b->reconnect_network_errors_per_s ||
           a->retry_max_attempts != b->retry_max_attempts || a->retry_deadline_ms != b->retry_deadline_ms ||
           a->retry_backoff_ms != b->retry_backoff_ms || a->max_connections != b->max_connections ||
           a->max_connecting != b->max_connecting || a->fleet_max_connections != b->fleet_max_connections ||
           a->fleet_floor != b->fleet_floor;
}

static bool same_uri_str(const mongoc_uri_t *a, const mongoc_uri_t *b, const char *option)
{
    return same_str(mongoc_uri_get_option_as_utf8(a, option, NULL), mongoc_uri_get_option_as_utf8(b, option, NULL));
}

static bool same_uri_bool(const mongoc_uri_t *a, const mongoc_uri_t *b, const char *option)
{
    return mongoc_uri_get_option_as_bool(a, option, false) == mongoc_uri_get_option_as_bool(b, option, false);
}

/* Whether two URIs reach the same deployment as the same principal: hosts
 * (or SRV name), replica set, credentials, authentication and TLS.  The
 * rest of a URI (pool size, timeouts, retries, appname, ...) are settings:
 * the configuration writes them into the URI, so comparing whole strings
 * reset a cluster's health to UNKNOWN on a reload that only changed
 * max_pool_size.  The checker's own client overrides every timeout, so it
 * needs nothing new for such a change. */
static bool same_deployment(const char *uri_a, const char *uri_b)
{
    if (same_str(uri_a, uri_b))
        return true;
    mongoc_uri_t *a = uri_a ? mongoc_uri_new_with_error(uri_a, NULL) : NULL;
    mongoc_uri_t *b = uri_b ? mongoc_uri_new_with_error(uri_b, NULL) : NULL;
    bool same = a != NULL && b != NULL;
    const mongoc_host_list_t *ha = same ? mongoc_uri_get_hosts(a) : NULL, *hb = same ? mongoc_uri_get_hosts(b) : NULL;
    for (; same && (ha != NULL || hb != NULL); ha = ha->next, hb = hb->next)
        same = ha != NULL && hb != NULL && strcmp(ha->host_and_port, hb->host_and_port) == 0;
    if (same) {
        bson_t pa, pb;
        bool has_a = mongoc_uri_get_mechanism_properties(a, &pa), has_b = mongoc_uri_get_mechanism_properties(b, &pb);
        same = has_a == has_b && (!has_a || bson_equal(&pa, &pb));
    }
    same = same && same_str(mongoc_uri_get_srv_hostname(a), mongoc_uri_get_srv_hostname(b)) &&
           same_str(mongoc_uri_get_replica_set(a), mongoc_uri_get_replica_set(b)) &&
           same_str(mongoc_uri_get_username(a), mongoc_uri_get_username(b)) &&
           same_str(mongoc_uri_get_password(a), mongoc_uri_get_password(b)) &&
           same_str(mongoc_uri_get_auth_source(a), mongoc_uri_get_auth_source(b)) &&
           same_str(mongoc_uri_get_auth_mechanism(a), mongoc_uri_get_auth_mechanism(b)) &&
           mongoc_uri_get_tls(a) == mongoc_uri_get_tls(b) && same_uri_str(a, b, MONGOC_URI_TLSCAFILE) &&
           same_uri_str(a, b, MONGOC_URI_TLSCERTIFICATEKEYFILE) &&
           same_uri_str(a, b, MONGOC_URI_TLSCERTIFICATEKEYFILEPASSWORD) &&
           same_uri_bool(a, b, MONGOC_URI_TLSALLOWINVALIDHOSTNAMES) &&
           same_uri_bool(a, b, MONGOC_URI_TLSALLOWINVALIDCERTIFICATES) &&
           same_uri_bool(a, b, MONGOC_URI_TLSINSECURE) && same_uri_bool(a, b, MONGOC_URI_DIRECTCONNECTION) &&
           same_uri_bool(a, b, MONGOC_URI_LOADBALANCED);
    mongoc_uri_destroy(a);
    mongoc_uri_destroy(b);
    return same;
}

/* Registry index of a cluster by name among rows ever used (ACTIVE or
 * REMOVED), or -1: a cluster removed and added back finds its counters
 * again.  The registry (stats segment) is the index space: a worker that
 * started before us may have registered the cluster already. */
static int row_by_name(const msup_segment_t *seg, const char *name)
{
    for (uint32_t i = 0; i < seg->max_clusters; i++) {
        const msup_reg_row_t *row = msup_segment_reg(seg, i);
        if (atomic_load_explicit(&row->row_state, memory_order_acquire) != MSUP_ROW_UNUSED &&
            strncmp(row->name, name, MSUP_NAME_MAX) == 0)
            return (int)i;
    }
    return -1;
}

/* Whether index i is free in both tables (a control row left over by a
 * registry that was recreated is not reused under another name). */
static bool row_unused(const msup_segment_t *seg, uint32_t i)
{
    return atomic_load_explicit(&msup_segment_reg(seg, i)->row_state, memory_order_acquire) == MSUP_ROW_UNUSED &&
           atomic_load_explicit(&msup_segment_row(seg, i)->row_state, memory_order_acquire) == MSUP_ROW_UNUSED;
}

/* Assigns a row to every cluster of cfg; fails (nothing changed) when the
 * table is full.  A fresh row is never one a REMOVED cluster used: its
 * slot counters and retired totals belong to that cluster. */
static bool plan_rows(const msup_segment_t *seg, const mongosup_config_t *cfg, int *rows, mongosup_error_t *error)
{
    bool taken[MSUP_MAX_CLUSTERS] = {false};
    for (size_t c = 0; c < cfg->cluster_count; c++) {
        rows[c] = row_by_name(seg, cfg->clusters[c].name);
        if (rows[c] >= 0)
            taken[rows[c]] = true;
    }
    for (size_t c = 0; c < cfg->cluster_count; c++) {
        if (rows[c] >= 0)
            continue;
        for (uint32_t i = 0; i < seg->max_clusters && rows[c] < 0; i++) {
            if (!taken[i] && row_unused(seg, i)) {
                rows[c] = (int)i;
                taken[i] = true;
            }
        }
        if (rows[c] < 0)
            return msup_fail(error, MONGOSUP_E_CONFIG,
                             "cluster %s does not fit: the segment's %u cluster rows are all used (removed clusters "
                             "keep theirs); a full restart is needed: stop the workers and mongosupd so that the "
                             "segment is recreated",
                             cfg->clusters[c].name, seg->max_clusters);
    }
    return true;
}

static bool geometry_fits(const msup_sup_t *sup, const mongosup_config_t *cfg, mongosup_error_t *error)
{
    const msup_segment_t *seg = &sup->seg;
    if (strcmp(cfg->segment_name, seg->name) != 0)
        return msup_fail(error, MONGOSUP_E_CONFIG,
                         "segment name changed from %s to %s: restart mongosupd (and the workers) to use it", seg->name,
                         cfg->segment_name);
    if (cfg->max_workers != seg->max_workers || cfg->max_clusters != seg->max_clusters)
        return msup_fail(error, MONGOSUP_E_CONFIG,
                         "segment geometry changed from %u workers x %u clusters to %u x %u: a full restart is "
                         "needed (stop the workers and mongosupd so that the segment is recreated)",
                         seg->max_workers, seg->max_clusters, cfg->max_workers, cfg->max_clusters);
    return true;
}

/* Registers the cluster at idx in the registry (stats segment), unless
 * it is there: a registrant (worker) may have claimed the row since we
 * planned it; false then (the caller plans again at the next reload). */
static bool register_row(msup_segment_t *seg, uint32_t idx, const msup_cluster_cfg_t *cc)
{
    msup_reg_row_t *reg = msup_segment_reg(seg, idx);
    uint32_t state = atomic_load_explicit(&reg->row_state, memory_order_acquire);
    if (state == MSUP_ROW_UNUSED) {
        if (!atomic_compare_exchange_strong_explicit(&reg->row_state, &state, MSUP_ROW_CLAIMING, memory_order_acq_rel,
                                                     memory_order_acquire))
            return row_by_name(seg, cc->name) == (int)idx;
        memset(reg->name, 0, sizeof reg->name);
        snprintf(reg->name, sizeof reg->name, "%s", cc->name);
        atomic_fetch_add_explicit(&seg->shdr->cluster_count, 1, memory_order_release);
    } else if (strncmp(reg->name, cc->name, sizeof reg->name) != 0) {
        return false;
    }
    msup_budget_apply_limits(&reg->limits, cc->max_connections, cc->max_connecting);
    atomic_store_explicit(&reg->row_state, MSUP_ROW_ACTIVE, memory_order_release);
    return true;
}

/* Fills a row's description; the row becomes ACTIVE last (release). */
static void publish_row(msup_sup_t *sup, uint32_t idx, const msup_cluster_cfg_t *cc, bool fresh)
{
    msup_segment_t *seg = &sup->seg;
    msup_cluster_row_t *row = msup_segment_row(seg, idx);
    uint32_t state = atomic_load_explicit(&row->row_state, memory_order_acquire);
    if (!register_row(seg, idx, cc))
        msup_log(LOG_WARNING, "cluster %s: registry row %u was taken by another name meanwhile", cc->name, idx);
    if (fresh || strncmp(row->name, cc->name, sizeof row->name) != 0) {
        memset(row->name, 0, sizeof row->name);
        snprintf(row->name, sizeof row->name, "%s", cc->name);
    }
    if (fresh || state == MSUP_ROW_REMOVED) {
        /* A cluster added back may point elsewhere now: the health it had
         * when it was removed says nothing (a stale DOWN would keep its
         * circuit open until the new checks decide). */
        atomic_store_explicit(&row->health, MSUP_HEALTH_UNKNOWN, memory_order_relaxed);
        atomic_store_explicit(&row->health_since_ns, msup_now_ns(), memory_order_relaxed);
    }
    snprintf(row->uri_display, sizeof row->uri_display, "%s", cc->uri_display);
    row->is_replica_set = cc->is_replica_set;
    atomic_store_explicit(&row->circuit_breaker, cc->circuit_breaker ? 1u : 0u, memory_order_relaxed);
    atomic_store_explicit(&row->max_pool_size, cc->max_pool_size, memory_order_relaxed);
    msup_hostcap_publish(sup, row, cc);
    atomic_store_explicit(&row->row_state, MSUP_ROW_ACTIVE, memory_order_release);
}

bool msup_config_apply(msup_sup_t *sup, mongosup_config_t *cfg, mongosup_error_t *error)
{
    msup_segment_t *seg = &sup->seg;
    mongosup_config_t *old = sup->cfg;
    mongosup_error_t err;
    int rows[MSUP_MAX_CLUSTERS];
    if (cfg->cluster_count > MSUP_MAX_CLUSTERS) {
        msup_log(LOG_ERR, "configuration %s: %zu clusters, at most %d", cfg->path, cfg->cluster_count,
                 MSUP_MAX_CLUSTERS);
        return msup_fail(error, MONGOSUP_E_CONFIG, "configuration %s: %zu clusters, at most %d", cfg->path,
                         cfg->cluster_count, MSUP_MAX_CLUSTERS);
    }
    if (!geometry_fits(sup, cfg, &err) || !plan_rows(seg, cfg, rows, &err)) {
        msup_log(LOG_ERR, "configuration %s not applied, the running one stays: %s", cfg->path, err.message);
        return msup_fail(error, MONGOSUP_E_CONFIG, "configuration %s not applied: %s", cfg->path, err.message);
    }
    unsigned added = 0, removed = 0, changed = 0;
    bool keep[MSUP_MAX_CLUSTERS] = {false};
    for (size_t c = 0; c < cfg->cluster_count; c++)
        keep[rows[c]] = true;

    /* Removed clusters: their rows stay (REMOVED) with their counters. */
    for (uint32_t i = 0; i < seg->max_clusters; i++) {
        msup_cluster_row_t *row = msup_segment_row(seg, i);
        if (keep[i] || atomic_load_explicit(&row->row_state, memory_order_acquire) != MSUP_ROW_ACTIVE)
            continue;
        msup_checker_stop(&sup->checkers[i], 0);
        atomic_store_explicit(&row->row_state, MSUP_ROW_REMOVED, memory_order_release);
        if (strncmp(msup_segment_reg(seg, i)->name, row->name, sizeof row->name) == 0)
            atomic_store_explicit(&msup_segment_reg(seg, i)->row_state, MSUP_ROW_REMOVED, memory_order_release);
        msup_log(LOG_NOTICE, "cluster %.*s removed (row %u kept with its counters)",
                 (int)sizeof row->name, row->name, i);
        removed++;
    }

    msup_header_t *hdr = msup_segment_hdr(seg);
    uint32_t used = atomic_load_explicit(&hdr->cluster_count, memory_order_relaxed);
    for (size_t c = 0; c < cfg->cluster_count; c++) {
        const msup_cluster_cfg_t *cc = &cfg->clusters[c];
        uint32_t idx = (uint32_t)rows[c];
        msup_cluster_row_t *row = msup_segment_row(seg, idx);
        uint32_t state = atomic_load_explicit(&row->row_state, memory_order_acquire);
        int old_c = old ? msup_config_find_cluster(old, cc->name) : -1;
        const msup_cluster_cfg_t *prev = old_c >= 0 ? &old->clusters[old_c] : NULL;

        if (state == MSUP_ROW_ACTIVE && sup->checkers[idx] != NULL && prev != NULL) {
            if (!cluster_changed(prev, cc))
                continue;
            changed++;
            if (!same_deployment(prev->uri, cc->uri)) {
                /* Another deployment (or principal): fresh health, fresh checker. */
                msup_checker_stop(&sup->checkers[idx], 0);
                atomic_store_explicit(&row->health, MSUP_HEALTH_UNKNOWN, memory_order_release);
                atomic_store_explicit(&row->health_since_ns, msup_now_ns(), memory_order_relaxed);
                publish_row(sup, idx, cc, false);
                msup_log(LOG_NOTICE, "cluster %s changed: now %s", cc->name, cc->uri_display);
            } else {
                msup_check_params_t p;
                msup_check_params_from_config(cc, &p);
                msup_checker_update(sup->checkers[idx], &p);
                publish_row(sup, idx, cc, false);
                msup_log(LOG_NOTICE, "cluster %s changed: settings updated", cc->name);
                continue;
            }
        } else {
            bool fresh = state == MSUP_ROW_UNUSED;
            publish_row(sup, idx, cc, fresh);
            if (old != NULL) {
                added++;
                msup_log(LOG_NOTICE, "cluster %s added (row %u): %s", cc->name, idx, cc->uri_display);
            }
            msup_reconnect_reset(sup, idx);
        }
        if (idx + 1 > used)
            used = idx + 1;
        if (sup->checkers[idx] == NULL) {
            sup->checkers[idx] = msup_checker_start(seg, idx, cc, &err);
            if (sup->checkers[idx] == NULL)
                msup_log(LOG_ERR, "cluster %s: %s", cc->name, err.message);
        }
    }
    atomic_store_explicit(&hdr->cluster_count, used, memory_order_release);
    atomic_store_explicit(&hdr->heartbeat_timeout_ms, cfg->supervisor.heartbeat_timeout_ms, memory_order_relaxed);
    atomic_store_explicit(&hdr->config_applied_mono_ns, msup_mono_ns(), memory_order_relaxed);
    uint64_t gen = atomic_fetch_add_explicit(&hdr->config_generation, 1, memory_order_release) + 1;

    if (old != NULL) {
        const msup_supervisor_cfg_t *o = &old->supervisor, *n = &cfg->supervisor;
        if (!same_str(o->pidfile, n->pidfile) || !same_str(o->metrics_listen, n->metrics_listen) ||
            !same_str(o->control_socket, n->control_socket))
            msup_log(LOG_WARNING,
                     "pidfile, metrics_listen and control_socket changes take effect at the next start of mongosupd");
        msup_log_open(n->log != NULL && strcmp(n->log, "syslog") == 0, sup->verbose ? LOG_DEBUG : n->log_level);
        msup_log(LOG_NOTICE, "configuration %s applied: generation %llu, %u added, %u removed, %u changed", cfg->path,
                 (unsigned long long)gen, added, removed, changed);
        msup_fleet_reconfigure(sup->fleet, old, cfg); /* the fleet's totals and etcd settings, live */
        mongosup_config_destroy(&old);
    }
    sup->cfg = cfg;
    return true;
}

bool msup_reload(msup_sup_t *sup, const char *cause, mongosup_error_t *error)
{
    mongosup_error_t err;
    msup_log(LOG_NOTICE, "%s: reloading %s", cause, sup->config_path);
    /* The environment chosen at start (-e, $MONGOSUP_ENV or the file's
     * default_environment then) stays: an edited default_environment must
     * not move a running supervisor to other clusters. */
    mongosup_config_t *cfg = mongosup_config_load(sup->config_path, mongosup_config_environment(sup->cfg), &err);
    if (cfg == NULL) {
        char clean[sizeof err.message];
        msup_redact_text(err.message, clean, sizeof clean);
        msup_log(LOG_ERR, "reload rejected, the running configuration stays: %s", clean);
        return msup_fail(error, MONGOSUP_E_CONFIG, "%s", clean);
    }
    if (msup_config_apply(sup, cfg, error))
        return true;
    mongosup_config_destroy(&cfg);
    return false;
}
