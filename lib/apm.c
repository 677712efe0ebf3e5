/* apm.c: command monitoring callbacks that time every command and classify its failures; SDAM events for fail-fast. */
#include "classify.h"
#include "record.h"
#include "worker.h"

/*
 * These run on the application thread that runs the command, several at a
 * time in one worker: they only do relaxed atomic adds on the worker's own
 * slot (record.c, shared with the driver-neutral API), never block, never allocate and never call back into
 * the driver.  The context is the worker's cluster; its stats pointer is
 * read atomically because a row remap may move it.
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

static void on_succeeded(const mongoc_apm_command_succeeded_t *event)
{
    if (internal_command)
        return;
    msup_wcluster_t *c = mongoc_apm_command_succeeded_get_context(event);
    enum msup_op_class cls = msup_classify_command(mongoc_apm_command_succeeded_get_command_name(event));
    msup_record_op_ok(c, cls, duration_us(mongoc_apm_command_succeeded_get_duration(event)));
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
    msup_wcluster_t *c = mongoc_apm_command_failed_get_context(event);
    enum msup_op_class cls = msup_classify_command(mongoc_apm_command_failed_get_command_name(event));
    uint64_t us = duration_us(mongoc_apm_command_failed_get_duration(event));
    bson_error_t error;
    mongoc_apm_command_failed_get_error(event, &error);
    enum msup_fail_class fail = msup_classify_failed_command(&error, us, c->cfg->socket_timeout_ms);
    msup_record_op_failed(c, cls, us, fail, error.domain, error.code, error.message);
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
    msup_failfast_note_host(mongoc_apm_server_opening_get_context(event), mongoc_apm_server_opening_get_host(event));
}

static void on_heartbeat_succeeded(const mongoc_apm_server_heartbeat_succeeded_t *event)
{
    msup_failfast_note_heartbeat_ok(mongoc_apm_server_heartbeat_succeeded_get_context(event));
}

mongoc_apm_callbacks_t *msup_apm_callbacks_new(void)
{
    mongoc_apm_callbacks_t *cbs = mongoc_apm_callbacks_new();
    mongoc_apm_set_command_succeeded_cb(cbs, on_succeeded);
    mongoc_apm_set_command_failed_cb(cbs, on_failed);
    mongoc_apm_set_server_opening_cb(cbs, on_server_opening);
    mongoc_apm_set_server_heartbeat_succeeded_cb(cbs, on_heartbeat_succeeded);
    return cbs;
}
