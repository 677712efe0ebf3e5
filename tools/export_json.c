/* export_json.c: --json, one document per snapshot (schema "mongosup/1"), built with json-c. */
#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "redact.h"
#include "textsafe.h"

#define MSUP_JSON_SCHEMA "mongosup/1"
/* Bumped by each addition within the schema (docs/monitoring.md): 2 added
 * the slow operations. */
#define MSUP_JSON_SCHEMA_REVISION 2

static void put_u64(json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_uint64(v));
}

static void put_i64(json_object *o, const char *key, int64_t v)
{
    json_object_object_add(o, key, json_object_new_int64(v));
}

/* Every string of the document is written by this serializer: json-c
 * passes bytes >= 0x80 through unchecked, so a name or a message from the
 * segment could make the document invalid UTF-8.  msup_text_json makes it
 * valid UTF-8, with every control character (C0, DEL, C1) as \u00HH. */
static int safe_string_to_json(json_object *jso, struct printbuf *pb, int level, int flags)
{
    (void)level;
    (void)flags;
    const char *v = json_object_get_string(jso);
    size_t n = (size_t)json_object_get_string_len(jso);
    char *text = malloc(MSUP_TEXT_JSON_CAP(n));
    if (text == NULL)
        return -1;
    size_t len = msup_text_json(text, MSUP_TEXT_JSON_CAP(n), v, n);
    printbuf_memappend(pb, "\"", 1);
    printbuf_memappend(pb, text, (int)len);
    printbuf_memappend(pb, "\"", 1);
    free(text);
    return 0;
}

/* A string of at most `max` bytes (a fixed-size field need not end in NUL). */
static void put_strn(json_object *o, const char *key, const char *v, size_t max)
{
    json_object *s = json_object_new_string_len(v, (int)strnlen(v, max));
    if (s != NULL)
        json_object_set_serializer(s, safe_string_to_json, NULL, NULL);
    json_object_object_add(o, key, s);
}

static void put_str(json_object *o, const char *key, const char *v)
{
    put_strn(o, key, v, strlen(v));
}

static void put_bool(json_object *o, const char *key, bool v)
{
    json_object_object_add(o, key, json_object_new_boolean(v));
}

static json_object *obj_in(json_object *parent, const char *key)
{
    json_object *o = json_object_new_object();
    json_object_object_add(parent, key, o);
    return o;
}

/* A last-error record, or null when there was none.  The text is redacted
 * when written; redacting again costs little and keeps a secret that slipped
 * through out of the output. */
static json_object *last_error_json(const msup_last_error_t *e)
{
    if (e->time_ns == 0)
        return NULL;
    char text[MSUP_ERRMSG_MAX * 2];
    char raw[MSUP_ERRMSG_MAX];
    snprintf(raw, sizeof raw, "%.*s", (int)sizeof e->message, e->message);
    msup_redact_text(raw, text, sizeof text);
    json_object *o = json_object_new_object();
    put_str(o, "class", e->fail_class < MSUP_FAIL__COUNT ? msup_fail_class_name(e->fail_class) : "unknown");
    put_u64(o, "domain", e->domain);
    put_u64(o, "code", e->code);
    put_u64(o, "time_ns", e->time_ns);
    put_str(o, "message", text);
    return o;
}

static json_object *cluster_json(const msup_cluster_snap_t *c)
{
    const msup_totals_t *t = &c->totals;
    json_object *o = json_object_new_object();
    put_str(o, "name", c->name);
    put_str(o, "uri", c->uri_display);
    put_str(o, "state", msup_health_name(c->health));
    put_u64(o, "state_since_ns", c->health_since_ns);
    put_u64(o, "transitions", c->transitions);
    put_bool(o, "replica_set", c->is_replica_set != 0);
    put_bool(o, "has_primary", c->has_primary != 0);
    put_bool(o, "circuit_breaker", c->circuit_breaker != 0);

    json_object *chk = obj_in(o, "checks");
    put_u64(chk, "last_ns", c->last_check_ns);
    put_u64(chk, "rtt_us", c->last_rtt_us);
    put_u64(chk, "consecutive_ok", c->consecutive_ok);
    put_u64(chk, "consecutive_fail", c->consecutive_fail);
    put_u64(chk, "passed", c->checks_passed);
    put_u64(chk, "failed", c->checks_failed);
    json_object_object_add(chk, "last_error", last_error_json(&c->last_check_error));

    json_object *rc = obj_in(o, "reconnect");
    put_u64(rc, "generation", c->reconnect_generation);
    put_u64(rc, "workers_live", c->workers_live);
    put_u64(rc, "workers_acked", c->workers_acked);
    put_u64(o, "workers_uri_mismatch", c->workers_uri_mismatch);
    put_u64(rc, "pool_rebuilds", t->reconnects);

    json_object *pool = obj_in(o, "pool");
    put_i64(pool, "in_use", t->pool_in_use);
    put_i64(pool, "idle", t->pool_idle);
    put_i64(pool, "clients", t->pool_created);
    put_i64(pool, "max", t->pool_max);
    put_u64(pool, "max_pool_size", c->max_pool_size);
    put_u64(pool, "checkouts", t->checkouts);
    put_u64(pool, "waits", t->checkout_waits);
    put_u64(pool, "wait_us", t->checkout_wait_us);
    put_u64(pool, "timeouts", t->checkout_timeouts);
    put_u64(pool, "max_reached", t->max_reached);
    put_u64(pool, "clients_created", t->clients_created);
    put_u64(pool, "clients_destroyed", t->clients_destroyed);

    json_object *bud = obj_in(o, "budget");
    put_i64(bud, "in_use", c->budget_in_use);
    put_u64(bud, "max_connections", c->max_connections);
    put_i64(bud, "connecting", c->budget_connecting);
    put_u64(bud, "max_connecting", c->max_connecting);
    put_u64(bud, "waits", t->budget_waits);
    if (c->fleet_max_connections != 0) {
        /* Shared across hosts: max_connections above is this host's cap. */
        json_object *fleet = obj_in(bud, "fleet");
        put_u64(fleet, "max_connections", c->fleet_max_connections);
        put_u64(fleet, "share", c->fleet_share);
        put_u64(fleet, "hosts", c->fleet_hosts);
    }

    json_object *ops = obj_in(o, "ops");
    for (int k = 0; k < MSUP_OP__COUNT; k++)
        put_u64(ops, msup_op_class_name((enum msup_op_class)k), t->ops[k]);
    put_u64(ops, "total", msup_totals_ops(t));

    json_object *fails = obj_in(o, "failures");
    for (int k = 0; k < MSUP_FAIL__COUNT; k++)
        put_u64(fails, msup_fail_class_name((enum msup_fail_class)k), t->failures[k]);
    put_u64(fails, "total", msup_totals_failures(t));
    put_u64(o, "retries", t->retries);
    put_u64(o, "slow_operations", t->slow_ops);

    json_object *lat = obj_in(o, "latency_us");
    put_u64(lat, "count", t->hist_count);
    put_u64(lat, "sum", t->hist_sum_us);
    put_u64(lat, "max", t->hist_max_us);
    put_u64(lat, "p50", c->p50_us);
    put_u64(lat, "p90", c->p90_us);
    put_u64(lat, "p99", c->p99_us);
    put_u64(lat, "p999", c->p999_us);

    json_object_object_add(o, "last_error", last_error_json(&c->last_error));
    return o;
}

static json_object *worker_json(const msup_worker_snap_t *w)
{
    json_object *o = json_object_new_object();
    put_u64(o, "slot", w->slot);
    put_i64(o, "pid", w->pid);
    put_str(o, "state", msup_slot_state_name(w->state));
    put_strn(o, "appname", w->appname, sizeof w->appname);
    put_u64(o, "attached_ns", w->attached_ns);
    put_u64(o, "exited_ns", w->exited_ns);
    put_u64(o, "ops", w->ops);
    put_u64(o, "failures", w->failures);
    put_u64(o, "checkouts", w->checkouts);
    put_i64(o, "in_use", w->in_use);
    put_bool(o, "uri_mismatch", w->uri_mismatch);
    return o;
}

/* One ring entry: names and figures only (slowlog.h: never a document or a value). */
static json_object *slow_op_json(const msup_snapshot_t *s, const msup_slowop_snap_t *e)
{
    json_object *o = json_object_new_object();
    put_strn(o, "cluster", s->clusters[e->cluster].name, sizeof s->clusters[e->cluster].name);
    put_u64(o, "slot", e->slot);
    put_i64(o, "pid", e->pid);
    put_u64(o, "time_ns", e->op.time_ns);
    put_u64(o, "duration_us", e->op.duration_us);
    put_strn(o, "command", e->op.command, sizeof e->op.command);
    put_strn(o, "database", e->op.database, sizeof e->op.database);
    put_strn(o, "collection", e->op.collection, sizeof e->op.collection);
    put_strn(o, "server", e->op.server, sizeof e->op.server);
    put_str(o, "outcome", msup_slowop_outcome_name(e->op.outcome));
    put_bool(o, "slow", e->op.slow != 0);
    return o;
}

bool msup_export_json(const msup_snapshot_t *s, FILE *out, bool pretty)
{
    json_object *root = json_object_new_object();
    if (root == NULL)
        return false;
    put_str(root, "schema", MSUP_JSON_SCHEMA);
    put_u64(root, "schema_revision", MSUP_JSON_SCHEMA_REVISION);
    put_u64(root, "taken_ns", s->taken_ns);

    json_object *seg = obj_in(root, "segment");
    put_strn(seg, "name", s->segment_name, sizeof s->segment_name);
    put_strn(seg, "environment", s->environment, sizeof s->environment);
    put_u64(seg, "max_workers", s->max_workers);
    put_u64(seg, "max_clusters", s->max_clusters);

    json_object *sup = obj_in(root, "supervisor");
    put_i64(sup, "pid", s->supervisor_pid);
    put_bool(sup, "alive", s->supervisor_alive);
    put_u64(sup, "started_ns", s->supervisor_started_ns);
    put_u64(sup, "heartbeat_ns", s->heartbeat_ns);
    put_u64(sup, "heartbeat_age_ms", s->heartbeat_age_ms);
    put_u64(sup, "restarts", s->supervisor_restarts);
    put_str(sup, "phase", msup_phase_name(s->phase));
    put_u64(sup, "config_generation", s->config_generation);
    put_u64(sup, "slots_reaped", s->slots_reaped);

    json_object *clusters = json_object_new_array();
    json_object_object_add(root, "clusters", clusters);
    for (uint32_t i = 0; i < s->cluster_count; i++)
        json_object_array_add(clusters, cluster_json(&s->clusters[i]));

    json_object *workers = json_object_new_array();
    json_object_object_add(root, "workers", workers);
    for (uint32_t i = 0; i < s->worker_count; i++)
        json_object_array_add(workers, worker_json(&s->workers[i]));

    json_object *slow = json_object_new_array();
    json_object_object_add(root, "slow_operations", slow);
    for (uint32_t i = 0; i < s->slow_count; i++)
        json_object_array_add(slow, slow_op_json(s, &s->slow_ops[i]));

    int flags = (pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN) | JSON_C_TO_STRING_NOSLASHESCAPE;
    const char *text = json_object_to_json_string_ext(root, flags);
    bool ok = text != NULL && fputs(text, out) >= 0 && fputc('\n', out) != EOF;
    json_object_put(root);
    return ok && !ferror(out);
}
