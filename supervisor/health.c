/* health.c: one checker thread per cluster: ping (+ hello on replica sets), RTT, hysteresis, watchdog. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mongoc/mongoc.h>

#include "error.h"
#include "health.h"
#include "log.h"
#include "redact.h"
#include "snapshot.h"
#include "stats.h"
#include "textsafe.h"

void msup_check_params_from_config(const msup_cluster_cfg_t *cc, msup_check_params_t *p)
{
    p->hy.rise = cc->rise;
    p->hy.fall = cc->fall;
    p->hy.inter_ms = cc->check_interval_ms;
    p->hy.fastinter_ms = cc->check_fastinter_ms;
    p->hy.downinter_ms = cc->check_downinter_ms;
    p->timeout_ms = cc->check_timeout_ms;
    p->degraded_rtt_ms = cc->degraded_rtt_ms;
    p->is_replica_set = cc->is_replica_set;
}

/* The result of one check, before the hysteresis. */
typedef struct check_result {
    msup_check_outcome_t outcome;
    uint64_t rtt_us;
    bool primary_known;           /* a replica-set hello answered */
    bool has_primary;
    uint32_t fail_class;
    uint32_t domain, code;
    char message[MSUP_ERRMSG_MAX * 2];
} check_result_t;

static enum msup_fail_class classify(const bson_error_t *e)
{
    if (e->domain == MONGOC_ERROR_SERVER_SELECTION)
        return MSUP_FAIL_SERVER_SELECTION;
    if (e->domain == MONGOC_ERROR_CLIENT && e->code == MONGOC_ERROR_CLIENT_AUTHENTICATE)
        return MSUP_FAIL_AUTH;
    if (e->domain == MONGOC_ERROR_STREAM || e->domain == MONGOC_ERROR_PROTOCOL)
        return strstr(e->message, "timeout") != NULL ? MSUP_FAIL_TIMEOUT : MSUP_FAIL_NETWORK;
    if (e->domain == MONGOC_ERROR_SERVER || e->domain == MONGOC_ERROR_QUERY)
        return MSUP_FAIL_SERVER;
    return MSUP_FAIL_OTHER;
}

static void fail_result(check_result_t *r, const char *what, const bson_error_t *e)
{
    char clean[MSUP_ERRMSG_MAX * 2 - 32];
    msup_redact_text(e->message, clean, sizeof clean);
    r->outcome = MSUP_CHECK_FAILED;
    r->fail_class = classify(e);
    r->domain = e->domain;
    r->code = e->code;
    msup_text_format(r->message, sizeof r->message, "%s: %s", what, clean); /* whole characters only */
}

/* A single-threaded client whose every timeout is the check timeout: a
 * check is then bounded by the driver, except for name resolution. */
static mongoc_client_t *make_client(const char *uri_text, uint32_t timeout_ms, bson_error_t *err)
{
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_text, err);
    if (uri == NULL)
        return NULL;
    int32_t t = (int32_t)(timeout_ms ? timeout_ms : 1000);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, t);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, t);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, t);
    /* One scan per selection (bounded by connectTimeoutMS), no retry loop. */
    mongoc_uri_set_option_as_bool(uri, MONGOC_URI_SERVERSELECTIONTRYONCE, true);
    mongoc_uri_set_option_as_bool(uri, MONGOC_URI_RETRYREADS, false);
    mongoc_uri_set_appname(uri, "mongosupd-check");
    mongoc_client_t *client = mongoc_client_new_from_uri_with_error(uri, err);
    mongoc_uri_destroy(uri);
    if (client != NULL)
        mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    return client;
}

static uint64_t elapsed_us(uint64_t start_mono_ns)
{
    return (msup_mono_ns() - start_mono_ns) / 1000u;
}

/* Runs one check with *client (created when NULL).  Any failure leaves
 * *client for the caller to drop: a fresh topology next time avoids the
 * single-threaded client's 5 s cooldown after a failed server. */
static void run_check(msup_checker_t *ck, const msup_check_params_t *p, mongoc_client_t **client,
                      check_result_t *r)
{
    bson_error_t err;
    memset(r, 0, sizeof *r);
    if (*client == NULL) {
        *client = make_client(ck->uri, p->timeout_ms, &err);
        if (*client == NULL)
            return fail_result(r, "client", &err);
    }
    /* Replica sets: any member answers the ping, hello says whether there is
     * a primary; a cluster without one is DEGRADED, not DOWN. */
    mongoc_read_prefs_t *prefs = p->is_replica_set ? mongoc_read_prefs_new(MONGOC_READ_NEAREST) : NULL;
    mongoc_server_description_t *sd = mongoc_client_select_server(*client, false, prefs, &err);
    if (sd == NULL) {
        mongoc_read_prefs_destroy(prefs);
        return fail_result(r, "server selection", &err);
    }
    mongoc_server_description_destroy(sd);

    bson_t ping = BSON_INITIALIZER, reply;
    BSON_APPEND_INT32(&ping, "ping", 1);
    uint64_t start = msup_mono_ns();
    bool ok = mongoc_client_command_simple(*client, "admin", &ping, prefs, &reply, &err);
    r->rtt_us = elapsed_us(start);
    bson_destroy(&ping);
    bson_destroy(&reply);
    if (!ok) {
        mongoc_read_prefs_destroy(prefs);
        return fail_result(r, "ping", &err);
    }
    r->outcome = MSUP_CHECK_OK;
    if (p->is_replica_set) {
        bson_t hello = BSON_INITIALIZER;
        BSON_APPEND_INT32(&hello, "hello", 1);
        ok = mongoc_client_command_simple(*client, "admin", &hello, prefs, &reply, &err);
        bson_destroy(&hello);
        if (!ok) {
            bson_destroy(&reply);
            mongoc_read_prefs_destroy(prefs);
            return fail_result(r, "hello", &err);
        }
        bson_iter_t it;
        r->primary_known = true;
        if (bson_iter_init_find(&it, &reply, "isWritablePrimary") && bson_iter_as_bool(&it))
            r->has_primary = true;
        else if (bson_iter_init_find(&it, &reply, "ismaster") && bson_iter_as_bool(&it))
            r->has_primary = true;
        else if (bson_iter_init_find(&it, &reply, "primary") && BSON_ITER_HOLDS_UTF8(&it) &&
                 bson_iter_utf8(&it, NULL)[0] != '\0')
            r->has_primary = true;
        bson_destroy(&reply);
        if (!r->has_primary) {
            r->outcome = MSUP_CHECK_DEGRADED;
            snprintf(r->message, sizeof r->message, "replica set has no primary");
        }
    }
    mongoc_read_prefs_destroy(prefs);
    if (r->outcome == MSUP_CHECK_OK && p->degraded_rtt_ms > 0 && r->rtt_us > (uint64_t)p->degraded_rtt_ms * 1000u) {
        r->outcome = MSUP_CHECK_DEGRADED;
        snprintf(r->message, sizeof r->message, "round trip %llu us is above degraded_rtt_ms %u",
                 (unsigned long long)r->rtt_us, p->degraded_rtt_ms);
    }
}

static const char *outcome_name(msup_check_outcome_t o)
{
    return o == MSUP_CHECK_OK ? "ok" : o == MSUP_CHECK_DEGRADED ? "degraded" : "failed";
}

/* Feeds one result to the hysteresis and publishes it in the row.  Called
 * with ck->mu held, by the checker thread or the watchdog. */
static void apply_locked(msup_checker_t *ck, const check_result_t *r)
{
    msup_cluster_row_t *row = msup_segment_row(ck->seg, ck->row);
    uint64_t now = msup_now_ns();
    uint32_t previous;
    bool changed = msup_hstate_feed(&ck->hs, &ck->params.hy, r->outcome, &previous);

    atomic_store_explicit(&row->last_check_ns, now, memory_order_relaxed);
    if (r->outcome != MSUP_CHECK_FAILED) {
        atomic_store_explicit(&row->last_rtt_us, r->rtt_us, memory_order_relaxed);
        atomic_fetch_add_explicit(&row->checks_passed, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&row->checks_failed, 1, memory_order_relaxed);
    }
    if (r->primary_known)
        atomic_store_explicit(&row->has_primary, r->has_primary ? 1u : 0u, memory_order_relaxed);
    if (r->outcome != MSUP_CHECK_OK)
        msup_last_error_write(&row->last_check_error, (enum msup_fail_class)r->fail_class, r->domain, r->code,
                              r->message);
    atomic_store_explicit(&row->consecutive_ok, ck->hs.reach_streak, memory_order_relaxed);
    atomic_store_explicit(&row->consecutive_fail, ck->hs.fail_streak, memory_order_relaxed);
    msup_log(LOG_DEBUG, "cluster %s: check %s, rtt %llu us%s%s", ck->name, outcome_name(r->outcome),
             (unsigned long long)r->rtt_us, r->message[0] ? ": " : "", r->message);
    if (!changed)
        return;
    atomic_store_explicit(&row->health_since_ns, now, memory_order_relaxed);
    atomic_fetch_add_explicit(&row->transitions, 1, memory_order_relaxed);
    atomic_store_explicit(&row->health, ck->hs.state, memory_order_release);
    /* Half-open trials run on the pools as they are; a reconnect waits for UP. */
    if ((previous == MSUP_HEALTH_DOWN || previous == MSUP_HEALTH_RECOVERING) &&
        (ck->hs.state == MSUP_HEALTH_UP || ck->hs.state == MSUP_HEALTH_DEGRADED))
        ck->came_up = true;
    int level = ck->hs.state == MSUP_HEALTH_UP || ck->hs.state == MSUP_HEALTH_RECOVERING ? LOG_NOTICE : LOG_WARNING;
    const char *what;
    uint32_t count = msup_hstate_cause(&ck->hs, previous, &what); /* the streak that caused it */
    if (r->outcome == MSUP_CHECK_OK)
        msup_log(level, "cluster %s: %s -> %s after %u %s checks (rtt %llu us)", ck->name,
                 msup_health_name(previous), msup_health_name(ck->hs.state), count, what,
                 (unsigned long long)r->rtt_us);
    else
        msup_log(level, "cluster %s: %s -> %s after %u %s checks: %s", ck->name, msup_health_name(previous),
                 msup_health_name(ck->hs.state), count, what, r->message);
}

static struct timespec mono_deadline(uint64_t mono_ns)
{
    return (struct timespec){.tv_sec = (time_t)(mono_ns / 1000000000u), .tv_nsec = (long)(mono_ns % 1000000000u)};
}

static atomic_uint checkers_running;

unsigned msup_checkers_running(void)
{
    return atomic_load(&checkers_running);
}

static void checker_free(msup_checker_t *ck)
{
    pthread_cond_destroy(&ck->cv);
    pthread_mutex_destroy(&ck->mu);
    free(ck->uri);
    free(ck);
}

static void *checker_main(void *arg)
{
    msup_checker_t *ck = arg;
    mongoc_client_t *client = NULL;
    uint64_t next_due = msup_mono_ns(); /* check at once on start */

    pthread_mutex_lock(&ck->mu);
    while (!ck->stop) {
        uint64_t now = msup_mono_ns();
        if (now < next_due) {
            struct timespec ts = mono_deadline(next_due);
            pthread_cond_timedwait(&ck->cv, &ck->mu, &ts);
            continue;
        }
        msup_check_params_t params = ck->params;
        ck->in_progress = true;
        ck->abandoned = false;
        ck->check_started_mono_ns = now;
        ck->check_timeout_ms = params.timeout_ms;
        pthread_mutex_unlock(&ck->mu);

        check_result_t r;
        run_check(ck, &params, &client, &r);
        if (r.outcome == MSUP_CHECK_FAILED && client != NULL) {
            mongoc_client_destroy(client);
            client = NULL;
        }

        pthread_mutex_lock(&ck->mu);
        ck->in_progress = false;
        uint64_t took_ms = (msup_mono_ns() - ck->check_started_mono_ns) / 1000000u;
        if (ck->stop) {
            /* Stopped during the check (reload, shutdown): the row may
             * already be REMOVED or belong to a new checker. */
            msup_log(LOG_INFO, "cluster %s: a check of a stopped checker returned after %llu ms; result dropped",
                     ck->name, (unsigned long long)took_ms);
            break;
        }
        if (ck->abandoned) {
            /* The watchdog already counted this check as failed: drop the
             * client whatever the late answer says. */
            if (client != NULL) {
                pthread_mutex_unlock(&ck->mu);
                mongoc_client_destroy(client);
                pthread_mutex_lock(&ck->mu);
                client = NULL;
            }
            msup_log(LOG_INFO, "cluster %s: a check abandoned by the watchdog returned after %llu ms", ck->name,
                     (unsigned long long)took_ms);
        } else {
            apply_locked(ck, &r);
        }
        next_due = msup_mono_ns() + (uint64_t)msup_hstate_next_interval_ms(&ck->hs, &ck->params.hy) * 1000000u;
    }
    pthread_mutex_unlock(&ck->mu);
    if (client != NULL)
        mongoc_client_destroy(client);
    pthread_mutex_lock(&ck->mu);
    ck->exited = true;
    bool self_free = ck->detached;
    pthread_mutex_unlock(&ck->mu);
    if (self_free)
        checker_free(ck);
    atomic_fetch_sub(&checkers_running, 1);
    return NULL;
}

msup_checker_t *msup_checker_start(msup_segment_t *seg, uint32_t row, const msup_cluster_cfg_t *cc,
                                   mongosup_error_t *error)
{
    msup_checker_t *ck = calloc(1, sizeof *ck);
    if (ck == NULL || (ck->uri = strdup(cc->uri)) == NULL) {
        free(ck);
        msup_fail(error, MONGOSUP_E_SYSTEM, "cluster %s: out of memory", cc->name);
        return NULL;
    }
    snprintf(ck->name, sizeof ck->name, "%s", cc->name);
    snprintf(ck->uri_display, sizeof ck->uri_display, "%s", cc->uri_display);
    ck->seg = seg;
    ck->row = row;
    msup_check_params_from_config(cc, &ck->params);
    msup_hstate_init(&ck->hs, atomic_load_explicit(&msup_segment_row(seg, row)->health, memory_order_acquire));
    pthread_mutex_init(&ck->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ck->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_fetch_add(&checkers_running, 1);
    int rc = pthread_create(&ck->thread, NULL, checker_main, ck);
    if (rc != 0) {
        atomic_fetch_sub(&checkers_running, 1);
        errno = rc;
        msup_fail_errno(error, MONGOSUP_E_SYSTEM, "cluster %s: cannot start its checker thread", cc->name);
        pthread_cond_destroy(&ck->cv);
        pthread_mutex_destroy(&ck->mu);
        free(ck->uri);
        free(ck);
        return NULL;
    }
    ck->thread_started = true;
    msup_log(LOG_INFO, "cluster %s: checking %s every %u ms (fastinter %u, downinter %u, timeout %u, rise %u, fall %u)",
             ck->name, ck->uri_display, ck->params.hy.inter_ms, ck->params.hy.fastinter_ms,
             ck->params.hy.downinter_ms, ck->params.timeout_ms, ck->params.hy.rise, ck->params.hy.fall);
    return ck;
}

void msup_checker_update(msup_checker_t *ck, const msup_check_params_t *p)
{
    pthread_mutex_lock(&ck->mu);
    ck->params = *p;
    pthread_cond_signal(&ck->cv);
    pthread_mutex_unlock(&ck->mu);
}

void msup_checker_stop(msup_checker_t **ckp, uint32_t wait_ms)
{
    msup_checker_t *ck = *ckp;
    if (ck == NULL)
        return;
    *ckp = NULL;
    pthread_mutex_lock(&ck->mu);
    ck->stop = true;
    bool busy = ck->in_progress;
    uint64_t started = ck->check_started_mono_ns;
    pthread_cond_signal(&ck->cv);
    pthread_mutex_unlock(&ck->mu);
    if (!ck->thread_started) {
        checker_free(ck);
        return;
    }
    if (busy && wait_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000u;
        ts.tv_nsec += (long)(wait_ms % 1000u) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np(ck->thread, NULL, &ts) == 0) {
            checker_free(ck);
            return;
        }
    }
    /* An idle thread leaves at once (it only waits on cv); a busy one is
     * left to finish its call on its own. */
    pthread_mutex_lock(&ck->mu);
    if (!ck->in_progress || ck->exited) {
        pthread_mutex_unlock(&ck->mu);
        pthread_join(ck->thread, NULL);
        checker_free(ck);
        return;
    }
    /* Logged before the unlock: from then on the thread may free ck. */
    msup_log(wait_ms > 0 ? LOG_WARNING : LOG_INFO,
             "cluster %s: checker stopped during a check running for %llu ms; left to finish on its own", ck->name,
             (unsigned long long)((msup_mono_ns() - started) / 1000000u));
    ck->detached = true;
    pthread_detach(ck->thread);
    pthread_mutex_unlock(&ck->mu);
}

void msup_checker_watchdog(msup_checker_t *ck, uint64_t now)
{
    pthread_mutex_lock(&ck->mu);
    uint64_t limit_ns = (uint64_t)(ck->check_timeout_ms + MSUP_WATCHDOG_MARGIN_MS) * 1000000u;
    bool fire = false;
    if (ck->in_progress && !ck->abandoned && now > ck->check_started_mono_ns &&
        now - ck->check_started_mono_ns > limit_ns) {
        ck->abandoned = true;
        fire = true;
    } else if (ck->in_progress && ck->abandoned && now >= ck->watchdog_next_mono_ns) {
        fire = true; /* still stuck: one more failed check per interval */
    }
    if (fire) {
        check_result_t r = {.outcome = MSUP_CHECK_FAILED, .fail_class = MSUP_FAIL_TIMEOUT};
        snprintf(r.message, sizeof r.message, "check still running after %llu ms (watchdog; name resolution?)",
                 (unsigned long long)((now - ck->check_started_mono_ns) / 1000000u));
        ck->watchdog_fired++;
        apply_locked(ck, &r);
        ck->watchdog_next_mono_ns = now + (uint64_t)msup_hstate_next_interval_ms(&ck->hs, &ck->params.hy) * 1000000u;
    }
    pthread_mutex_unlock(&ck->mu);
}

bool msup_checker_take_came_up(msup_checker_t *ck)
{
    pthread_mutex_lock(&ck->mu);
    bool v = ck->came_up;
    ck->came_up = false;
    pthread_mutex_unlock(&ck->mu);
    return v;
}

uint32_t msup_checker_health(msup_checker_t *ck)
{
    pthread_mutex_lock(&ck->mu);
    uint32_t h = ck->hs.state;
    pthread_mutex_unlock(&ck->mu);
    return h;
}
