/* neutral.c: the driver-neutral worker API: gate, operation and pool-event records, budget tokens and settings for a worker that uses another driver. */
#include <stddef.h>
#include <stdio.h>

#include "budget.h"
#include "classify.h"
#include "error.h"
#include "record.h"
#include "snapshot.h"
#include "stats.h"
#include "worker.h"

/* The public enums are the layout's: one set of numbers in the slot. */
_Static_assert((int)MONGOSUP_OP_READ == MSUP_OP_READ && (int)MONGOSUP_OP_WRITE == MSUP_OP_WRITE &&
                   (int)MONGOSUP_OP_COMMAND == MSUP_OP_COMMAND,
               "public operation classes are the layout's");
_Static_assert((int)MONGOSUP_FAIL_NETWORK == MSUP_FAIL_NETWORK && (int)MONGOSUP_FAIL_TIMEOUT == MSUP_FAIL_TIMEOUT &&
                   (int)MONGOSUP_FAIL_SERVER_SELECTION == MSUP_FAIL_SERVER_SELECTION &&
                   (int)MONGOSUP_FAIL_AUTH == MSUP_FAIL_AUTH && (int)MONGOSUP_FAIL_SERVER == MSUP_FAIL_SERVER &&
                   (int)MONGOSUP_FAIL_CIRCUIT_OPEN == MSUP_FAIL_CIRCUIT_OPEN &&
                   (int)MONGOSUP_FAIL_SHUTTING_DOWN == MSUP_FAIL_SHUTTING_DOWN &&
                   (int)MONGOSUP_FAIL_OTHER == MSUP_FAIL_OTHER && MSUP_FAIL__COUNT == 8,
               "public failure classes are the layout's");
_Static_assert((int)MONGOSUP_HEALTH_UNKNOWN == MSUP_HEALTH_UNKNOWN && (int)MONGOSUP_HEALTH_UP == MSUP_HEALTH_UP &&
                   (int)MONGOSUP_HEALTH_DEGRADED == MSUP_HEALTH_DEGRADED &&
                   (int)MONGOSUP_HEALTH_DOWN == MSUP_HEALTH_DOWN &&
                   (int)MONGOSUP_HEALTH_RECOVERING == MSUP_HEALTH_RECOVERING,
               "public health values are the layout's");

size_t mongosup_cluster_settings_size(void)
{
    return sizeof(mongosup_cluster_settings_t);
}

/* The public view of one cluster's resolved settings (strings point into c). */
static void settings_of(const msup_cluster_cfg_t *c, mongosup_cluster_settings_t *out)
{
    *out = (mongosup_cluster_settings_t){
        .uri = c->uri,
        .uri_display = c->uri_display,
        .database_name = c->database_name,
        .appname = c->appname,
        .max_pool_size = c->max_pool_size > 0 ? c->max_pool_size : 100,
        .min_pool_size = c->min_pool_size,
        .max_idle_time_ms = c->max_idle_time_ms,
        .wait_queue_timeout_ms = c->wait_queue_timeout_ms,
        .connect_timeout_ms = c->connect_timeout_ms,
        .socket_timeout_ms = c->socket_timeout_ms,
        .server_selection_timeout_ms = c->server_selection_timeout_ms,
        .heartbeat_frequency_ms = c->heartbeat_frequency_ms,
        .retry_max_attempts = c->retry_max_attempts,
        .retry_deadline_ms = c->retry_deadline_ms,
        .retry_backoff_ms = c->retry_backoff_ms,
        .max_connections = c->max_connections,
        .max_connecting = c->max_connecting,
        .reconnect_window_ms = c->reconnect_window_ms,
        .retry_writes = c->retry_writes,
        .retry_reads = c->retry_reads,
        .circuit_breaker = c->circuit_breaker,
        .is_replica_set = c->is_replica_set,
    };
}

bool mongosup_cluster_settings(const mongosup_config_t *cfg, const char *cluster, mongosup_cluster_settings_t *out,
                               mongosup_error_t *error)
{
    if (cfg == NULL || cluster == NULL || out == NULL)
        return msup_fail(error, MONGOSUP_E_INVALID_ARG, "mongosup_cluster_settings: no configuration, cluster or output");
    int i = msup_config_find_cluster(cfg, cluster);
    if (i < 0)
        return msup_fail(error, MONGOSUP_E_UNKNOWN_CLUSTER, "cluster '%.64s' is not in the configuration", cluster);
    settings_of(&cfg->clusters[i], out);
    return true;
}

bool mongosup_current_settings(mongosup_t *h, const char *cluster, mongosup_cluster_settings_t *out,
                               mongosup_error_t *error)
{
    if (h == NULL || cluster == NULL || out == NULL)
        return msup_fail(error, MONGOSUP_E_INVALID_ARG, "mongosup_current_settings: no handle, cluster or output");
    if (msup_handle_inherited(h))
        return msup_fail(error, MONGOSUP_E_FORKED, "this handle was inherited across fork(): call mongosup_attach in "
                         "the child");
    msup_wcluster_t *c = msup_find_wcluster(h, cluster);
    if (c == NULL)
        return msup_fail(error, MONGOSUP_E_UNKNOWN_CLUSTER, "cluster '%.64s' is not in the configuration", cluster);
    /* A reload swaps c->cfg; the copy it points into lives until detach. */
    settings_of(atomic_load_explicit(&c->cfg, memory_order_acquire), out);
    return true;
}

uint64_t mongosup_config_generation(const mongosup_t *h)
{
    /* Stored (release) after the reload's settings and the row map. */
    return h != NULL ? atomic_load_explicit(&h->config_generation, memory_order_acquire) : 0;
}

bool mongosup_gate(mongosup_t *h, const char *cluster, uint64_t *generation, mongosup_error_t *error)
{
    if (h == NULL || cluster == NULL)
        return msup_fail(error, MONGOSUP_E_INVALID_ARG, "mongosup_gate: no handle or cluster name");
    uint64_t gen;
    if (msup_handle_gate(h, cluster, &gen, error) == NULL)
        return false;
    if (generation != NULL)
        *generation = gen;
    return true;
}

mongosup_op_class_t mongosup_command_class(const char *command_name)
{
    return (mongosup_op_class_t)msup_classify_command(command_name);
}

/* The cluster a record goes to: NULL for an inherited handle (its slot is
 * the parent's) or an unknown cluster (nothing to count it in). */
static msup_wcluster_t *recording_cluster(mongosup_t *h, const char *cluster)
{
    if (h == NULL || cluster == NULL || msup_handle_inherited(h))
        return NULL;
    return msup_find_wcluster(h, cluster);
}

/* Out-of-range classes count as other: a binding's bug never writes past the array. */
static enum msup_fail_class fail_class_of(mongosup_fail_class_t fail_class)
{
    return (unsigned)fail_class < MSUP_FAIL__COUNT ? (enum msup_fail_class)fail_class : MSUP_FAIL_OTHER;
}

void mongosup_record_op(mongosup_t *h, const char *cluster, mongosup_op_class_t op_class, uint64_t duration_us,
                        mongosup_fail_class_t fail_class, uint32_t code, const char *message)
{
    msup_wcluster_t *c = recording_cluster(h, cluster);
    if (c == NULL)
        return;
    enum msup_op_class cls = (unsigned)op_class < MSUP_OP__COUNT ? (enum msup_op_class)op_class : MSUP_OP_COMMAND;
    if (fail_class == MONGOSUP_FAIL_NONE) {
        msup_record_op_ok(c, cls, duration_us);
        return;
    }
    msup_record_op_failed(c, cls, duration_us, fail_class_of(fail_class), MONGOSUP_ERROR_DRIVER, code, message);
}

void mongosup_record_failure(mongosup_t *h, const char *cluster, mongosup_fail_class_t fail_class, uint32_t code,
                             const char *message)
{
    msup_wcluster_t *c = recording_cluster(h, cluster);
    if (c != NULL && fail_class != MONGOSUP_FAIL_NONE)
        msup_record_failure(c, fail_class_of(fail_class), MONGOSUP_ERROR_DRIVER, code, message);
}

void mongosup_record_heartbeat_ok(mongosup_t *h, const char *cluster)
{
    msup_wcluster_t *c = recording_cluster(h, cluster);
    if (c != NULL)
        msup_failfast_note_reached(c);
}

/* Gauges of the other driver's pool, then published as the mongoc path's
 * are (an in-process mutex: the gauges stay exact under threads). */
static void foreign_gauges(msup_wcluster_t *c, int64_t in_use, int64_t idle, int64_t created)
{
    pthread_mutex_lock(&c->mu);
    c->foreign_in_use += in_use;
    c->foreign_idle += idle;
    c->foreign_created += created;
    msup_pool_publish_gauges(c);
    pthread_mutex_unlock(&c->mu);
}

void mongosup_record_pool(mongosup_t *h, const char *cluster, mongosup_pool_event_t event, uint64_t value)
{
    msup_wcluster_t *c = recording_cluster(h, cluster);
    if (c == NULL)
        return;
    msup_stats_t *s = msup_wcluster_stats(c);
    switch (event) {
    case MONGOSUP_POOL_CHECKOUT_WAIT:
        msup_record_checkout_wait(c, value != 0);
        break;
    case MONGOSUP_POOL_CHECKOUT_SUCCEEDED:
        msup_record_checkout_end(c, value != 0, value, NULL);
        msup_record_checkout_granted(c);
        /* A connection the pool had idle (or just created) is in use. */
        foreign_gauges(c, 1, -1, 0);
        break;
    case MONGOSUP_POOL_CHECKOUT_FAILED:
        msup_record_checkout_end(c, value != 0, value, "no connection within the driver's wait queue timeout");
        break;
    case MONGOSUP_POOL_CHECKED_IN:
        foreign_gauges(c, -1, 1, 0);
        break;
    case MONGOSUP_POOL_CONNECTION_CREATED:
        msup_stats_count(&s->clients_created, 1);
        foreign_gauges(c, 0, 1, 1);
        break;
    case MONGOSUP_POOL_CONNECTION_CLOSED:
        /* A connection closed while in use is checked in afterwards (CMAP
         * order): idle goes -1 now and +1 then, in use -1 then. */
        msup_stats_count(&s->clients_destroyed, 1);
        foreign_gauges(c, 0, -1, -1);
        break;
    case MONGOSUP_POOL_RETRY:
        msup_stats_count(&s->retries, 1);
        break;
    }
}

/* The budget line of the cluster (its registry row in the stats segment),
 * or NULL without a row. */
static msup_reg_row_t *budget_line(mongosup_t *h, msup_wcluster_t *c)
{
    int row = atomic_load_explicit(&c->row, memory_order_relaxed);
    return row >= 0 ? msup_segment_reg(msup_handle_seg(h), (uint32_t)row) : NULL;
}

bool mongosup_connection_acquire(mongosup_t *h, const char *cluster, mongosup_error_t *error)
{
    msup_wcluster_t *c = recording_cluster(h, cluster);
    if (c == NULL)
        return msup_fail(error, MONGOSUP_E_UNKNOWN_CLUSTER, "cluster '%.64s' is not in the configuration or the "
                         "handle was inherited across fork()", cluster != NULL ? cluster : "");
    /* The limits the worker enforces: the trusted control row's while its
     * supervisor is alive, its own configuration's otherwise (never the
     * worker-writable line's). */
    msup_reg_row_t *line = budget_line(h, c);
    if (line == NULL || msup_budget_try_acquire(line, &c->limits, msup_wcluster_stats(c), 1))
        return true;
    return msup_fail(error, MONGOSUP_E_POOL_TIMEOUT,
                     "cluster %s: the host's connection budget (max_connections) is spent", c->name);
}

void mongosup_connection_release(mongosup_t *h, const char *cluster)
{
    msup_wcluster_t *c = recording_cluster(h, cluster);
    msup_reg_row_t *line = c != NULL ? budget_line(h, c) : NULL;
    if (line != NULL)
        msup_budget_release(line, msup_wcluster_stats(c), 1);
}

mongosup_health_t mongosup_cluster_health(mongosup_t *h, const char *cluster, bool *alive)
{
    if (alive != NULL)
        *alive = false;
    msup_wcluster_t *c = recording_cluster(h, cluster);
    if (c == NULL)
        return MONGOSUP_HEALTH_UNKNOWN;
    msup_segment_t *seg = msup_handle_seg(h);
    if (alive != NULL)
        *alive = msup_supervisor_alive(seg);
    /* Health only from a trusted control row (worker_trust.c). */
    const msup_cluster_row_t *r = atomic_load_explicit(&c->ctl_row, memory_order_acquire);
    return r != NULL ? (mongosup_health_t)atomic_load_explicit(&r->health, memory_order_acquire)
                     : MONGOSUP_HEALTH_UNKNOWN;
}

uint32_t mongosup_reconnect_delay_ms(mongosup_t *h, const char *cluster)
{
    msup_wcluster_t *c = recording_cluster(h, cluster);
    if (c == NULL)
        return 0;
    uint32_t slot = atomic_load_explicit(&h->slot, memory_order_relaxed);
    return (uint32_t)(msup_reconnect_delay_ns(slot, c->cfg->reconnect_window_ms) / 1000000u);
}

void mongosup_serving_generation(mongosup_t *h, const char *cluster, uint64_t generation, bool rebuilt)
{
    msup_wcluster_t *c = recording_cluster(h, cluster);
    if (c == NULL)
        return;
    if (rebuilt)
        msup_stats_count(&msup_wcluster_stats(c)->reconnects, 1);
    msup_handle_acknowledge(c, generation);
}
