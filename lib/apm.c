/* apm.c: command monitoring callbacks that time every command and classify its failures; SDAM events for fail-fast. */
#include <string.h>

#include "classify.h"
#include "record.h"
#include "slowlog.h"
#include "stats.h"
#include "worker.h"

/*
 * These run on the application thread that runs the command, several at a
 * time in one worker: they only do relaxed atomic adds on the worker's own
 * slot (record.c, shared with the driver-neutral API), never block, never allocate and never call back into
 * the driver.  The context is the pool the event came from (its cluster:
 * p->cluster); the cluster's stats pointer is read atomically because a row
 * remap may move it.
 */

static uint64_t duration_us(int64_t us)
{
    return us < 0 ? 0 : (uint64_t)us;
}

/* Set while this thread runs a command of our own (the handshake ping of a
 * new client): the application's operation counts stay exact. */
static _Thread_local bool internal_command;

void msup_apm_internal(bool on)
{
    internal_command = on;
}

/* ---- Slow-operation log (slowlog.h) ---------------------------------- */

void msup_apm_configure(msup_wcluster_t *c)
{
    const msup_cluster_cfg_t *cfg = atomic_load_explicit(&c->cfg, memory_order_acquire);
    atomic_store_explicit(&c->slow_us, cfg->slow_op_ms ? (uint64_t)cfg->slow_op_ms * 1000u : UINT64_MAX,
                          memory_order_relaxed);
    atomic_store_explicit(&c->log_failed_ops, cfg->log_failed_ops, memory_order_relaxed);
}

bool msup_apm_wants_started(const mongosup_config_t *cfg)
{
    for (size_t i = 0; i < cfg->cluster_count; i++)
        if (cfg->clusters[i].slow_op_ms != 0 || cfg->clusters[i].log_failed_ops)
            return true;
    return false;
}

/* The started event of the command this thread runs: its database and
 * collection, for the entry its succeeded or failed event may log.  Only
 * names are kept: the collection is the string value of the command's first
 * key ("find": "orders"), or getMore's "collection"; never another value. */
static _Thread_local struct {
    int64_t request_id;
    char database[MSUP_SLOWLOG_DB_MAX];
    char collection[MSUP_SLOWLOG_COLL_MAX];
} started;

static void copy_name(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static void on_started(const mongoc_apm_command_started_t *event)
{
    if (internal_command)
        return;
    started.request_id = mongoc_apm_command_started_get_request_id(event);
    const char *db = mongoc_apm_command_started_get_database_name(event);
    copy_name(started.database, sizeof started.database, db ? db : "", db ? strlen(db) : 0);
    started.collection[0] = '\0';
    const bson_t *cmd = mongoc_apm_command_started_get_command(event);
    bson_iter_t it;
    if (cmd == NULL || !bson_iter_init(&it, cmd) || !bson_iter_next(&it))
        return;
    if (strcmp(bson_iter_key(&it), "getMore") == 0 && !bson_iter_find(&it, "collection"))
        return;
    if (BSON_ITER_HOLDS_UTF8(&it)) {
        uint32_t len;
        const char *name = bson_iter_utf8(&it, &len);
        copy_name(started.collection, sizeof started.collection, name, len);
    }
}

/* Off the record path: only for an operation at or above slow_op_ms, or a
 * failed one when log_failed_ops is set. */
static void log_op(msup_stats_t *stats, const char *command, int64_t request_id, const mongoc_host_list_t *host,
                   uint64_t us, uint32_t outcome, bool slow)
{
    bool same = started.request_id == request_id;
    msup_slowop_in_t op = {
        .command = command,
        .database = same ? started.database : NULL,
        .collection = same ? started.collection : NULL,
        .server = host ? host->host_and_port : NULL,
        .duration_us = us,
        .outcome = outcome,
        .slow = slow,
    };
    msup_slowlog_record(&stats->slowlog, &op);
}

static void on_succeeded(const mongoc_apm_command_succeeded_t *event)
{
    if (internal_command)
        return;
    msup_wcluster_t *c = ((msup_pool_t *)mongoc_apm_command_succeeded_get_context(event))->cluster;
    const char *name = mongoc_apm_command_succeeded_get_command_name(event);
    uint64_t us = duration_us(mongoc_apm_command_succeeded_get_duration(event));
    if (msup_record_op_ok(c, msup_classify_command(name), us))
        log_op(msup_wcluster_stats(c), name, mongoc_apm_command_succeeded_get_request_id(event),
               mongoc_apm_command_succeeded_get_host(event), us, MSUP_SLOWOP_OK, true);
}

/* The last failure a command event counted on this thread: a checkin with
 * the same error as outcome is not counted twice.  Failures no failed event
 * reports (server selection, authentication, and write or write-concern
 * errors in an ok:1 reply, which arrive as a succeeded event) are counted
 * from the outcome. */
static _Thread_local struct {
    uint32_t domain, code;
} last_counted;

void msup_apm_forget(void)
{
    last_counted.domain = 0;
    last_counted.code = 0;
}

bool msup_apm_counted(const bson_error_t *error)
{
    bool seen = last_counted.domain == error->domain && last_counted.code == error->code;
    msup_apm_forget();
    return seen;
}

static void on_failed(const mongoc_apm_command_failed_t *event)
{
    if (internal_command)
        return; /* the checkout that ran it counts its failure */
    msup_wcluster_t *c = ((msup_pool_t *)mongoc_apm_command_failed_get_context(event))->cluster;
    enum msup_op_class cls = msup_classify_command(mongoc_apm_command_failed_get_command_name(event));
    uint64_t us = duration_us(mongoc_apm_command_failed_get_duration(event));
    bson_error_t error;
    mongoc_apm_command_failed_get_error(event, &error);
    enum msup_fail_class fail = msup_classify_failed_command(&error, us, c->cfg->socket_timeout_ms);
    /* A network error made the driver drop every pooled socket to that
     * server (a new generation): every client of this worker is stale.  A
     * timeout closed this client's socket only, but the event does not say
     * which client: all of them are re-checked (timeouts are rare). */
    if (fail == MSUP_FAIL_NETWORK || fail == MSUP_FAIL_TIMEOUT)
        msup_outage_bump(c);
    fail = msup_record_op_failed(c, cls, us, fail, error.domain, error.code, error.message);
    bool slow = us >= atomic_load_explicit(&c->slow_us, memory_order_relaxed);
    if (slow || atomic_load_explicit(&c->log_failed_ops, memory_order_relaxed))
        log_op(msup_wcluster_stats(c), mongoc_apm_command_failed_get_command_name(event),
               mongoc_apm_command_failed_get_request_id(event), mongoc_apm_command_failed_get_host(event), us,
               1u + (uint32_t)fail, slow);
    last_counted.domain = error.domain;
    last_counted.code = error.code;
}

/* SDAM events (monitor threads, or an application thread after a network
 * error, under a driver mutex): the members the driver discovered, whose
 * sockets a DOWN verdict shuts, and the driver's own monitor reaching a
 * server again, which opens the half-open gate (failfast.c).  No call back
 * into the driver, no allocation, no blocking beyond a short spin. */
static void on_server_opening(const mongoc_apm_server_opening_t *event)
{
    msup_pool_t *p = mongoc_apm_server_opening_get_context(event);
    msup_failfast_note_host(p->cluster, mongoc_apm_server_opening_get_host(event));
}

/* The server left the pool's topology: its monitor is gone (monwatch.h). */
static void on_server_closed(const mongoc_apm_server_closed_t *event)
{
    msup_failfast_note_monitor(mongoc_apm_server_closed_get_context(event), mongoc_apm_server_closed_get_host(event),
                               MSUP_MONITOR_CLOSED);
}

/* A monitor's check starts: after a failure, once the driver has cleared
 * the pool (monwatch.h). */
static void on_heartbeat_started(const mongoc_apm_server_heartbeat_started_t *event)
{
    msup_failfast_note_monitor(mongoc_apm_server_heartbeat_started_get_context(event),
                               mongoc_apm_server_heartbeat_started_get_host(event), MSUP_MONITOR_STARTED);
}

static void on_heartbeat_succeeded(const mongoc_apm_server_heartbeat_succeeded_t *event)
{
    msup_pool_t *p = mongoc_apm_server_heartbeat_succeeded_get_context(event);
    msup_failfast_note_monitor(p, mongoc_apm_server_heartbeat_succeeded_get_host(event), MSUP_MONITOR_SUCCEEDED);
    msup_failfast_note_reached(p->cluster);
}

/* The driver's monitor lost the server: it marks it Unknown and drops the
 * pooled sockets to it, which the next operation of each client would
 * reconnect on its own. */
static void on_heartbeat_failed(const mongoc_apm_server_heartbeat_failed_t *event)
{
    msup_pool_t *p = mongoc_apm_server_heartbeat_failed_get_context(event);
    msup_failfast_note_monitor(p, mongoc_apm_server_heartbeat_failed_get_host(event), MSUP_MONITOR_FAILED);
    msup_outage_bump(p->cluster);
}

mongoc_apm_callbacks_t *msup_apm_callbacks_new(bool with_started)
{
    mongoc_apm_callbacks_t *cbs = mongoc_apm_callbacks_new();
    /* The driver builds a started event only for a callback that wants it:
     * without the slow-operation log, none. */
    if (with_started)
        mongoc_apm_set_command_started_cb(cbs, on_started);
    mongoc_apm_set_command_succeeded_cb(cbs, on_succeeded);
    mongoc_apm_set_command_failed_cb(cbs, on_failed);
    mongoc_apm_set_server_opening_cb(cbs, on_server_opening);
    mongoc_apm_set_server_closed_cb(cbs, on_server_closed);
    mongoc_apm_set_server_heartbeat_started_cb(cbs, on_heartbeat_started);
    mongoc_apm_set_server_heartbeat_succeeded_cb(cbs, on_heartbeat_succeeded);
    mongoc_apm_set_server_heartbeat_failed_cb(cbs, on_heartbeat_failed);
    return cbs;
}
