/* run.c: mongosup_run, a checkout-callback-checkin loop that retries transient failures with backoff and jitter, and stops retrying once the circuit opens. */
#include <stdio.h>
#include <time.h>

#include "classify.h"
#include "error.h"
#include "failfast.h"
#include "redact.h"
#include "stats.h"
#include "worker.h"

#define NS_PER_MS 1000000ull

/* xorshift64*, one state per thread: jitter needs no lock and no syscall. */
static uint64_t jitter_random(void)
{
    static _Thread_local uint64_t state;
    if (state == 0)
        state = msup_mono_ns() ^ ((uint64_t)(uintptr_t)&state << 17) ^ UINT64_C(0x2545F4914F6CDD1D);
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * UINT64_C(0x2545F4914F6CDD1D);
}

/* Backoff before retry number `retry` (1-based): base * 2^(retry-1), capped
 * at 2^10 times the base, with "equal jitter" (half fixed, half random) so
 * that workers hit by the same failover do not retry in lockstep. */
static uint64_t backoff_ns(uint32_t base_ms, uint32_t retry)
{
    uint32_t shift = retry - 1 < 10 ? retry - 1 : 10;
    uint64_t full = ((uint64_t)base_ms * NS_PER_MS) << shift;
    if (full == 0)
        return 0;
    return full / 2 + jitter_random() % (full / 2 + 1);
}

/* Sleeps the backoff in slices of the fail-fast look (5 ms), and stops as
 * soon as the cluster's circuit opens: the retry's checkout then refuses at
 * once instead of after the rest of a backoff that can reach seconds. */
static void backoff_sleep(msup_wcluster_t *c, uint64_t pause_ns)
{
    uint64_t end = msup_mono_ns() + pause_ns;
    for (;;) {
        uint64_t now = msup_mono_ns();
        if (now >= end || msup_failfast_circuit_open(c))
            return;
        uint64_t step = end - now < MSUP_FAILFAST_TICK_MS * NS_PER_MS ? end - now : MSUP_FAILFAST_TICK_MS * NS_PER_MS;
        struct timespec ts = {(time_t)(step / 1000000000ull), (long)(step % 1000000000ull)};
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
}

static bool fail_attempt(mongosup_error_t *error, const char *cluster, const bson_error_t *berr, uint32_t attempt,
                         const char *why)
{
    bson_error_t shown = *berr;
    msup_redact_text(berr->message, shown.message, sizeof shown.message);
    char what[160];
    snprintf(what, sizeof what, "cluster %s: attempt %u%s", cluster, attempt, why);
    return msup_fail_driver(error, &shown, what);
}

bool mongosup_run(mongosup_t *h, const char *cluster, mongosup_run_fn fn, void *ctx, mongosup_error_t *error)
{
    if (h == NULL || cluster == NULL || fn == NULL)
        return msup_fail(error, MONGOSUP_E_INVALID_ARG, "mongosup_run: no handle, cluster or callback");
    if (msup_handle_inherited(h))
        return msup_fail(error, MONGOSUP_E_FORKED,
                         "this handle was inherited across fork(): call mongosup_attach in the child");
    msup_wcluster_t *c = msup_find_wcluster(h, cluster);
    if (c == NULL)
        return msup_fail(error, MONGOSUP_E_UNKNOWN_CLUSTER, "cluster '%.64s' is not in the configuration", cluster);
    const msup_cluster_cfg_t *cfg = c->cfg;
    uint32_t max_attempts = cfg->retry_max_attempts > 0 ? cfg->retry_max_attempts : 1;
    uint64_t deadline = msup_mono_ns() + (uint64_t)cfg->retry_deadline_ms * NS_PER_MS;

    for (uint32_t attempt = 1;; attempt++) {
        /* Refusals (circuit open, shutting down, pool timeout) are not
         * retried: the caller is better served by failing fast. */
        mongoc_client_t *client = mongosup_checkout(h, cluster, error);
        bson_t reply = BSON_INITIALIZER;
        bson_error_t berr = {0};
        bool ok = false;
        if (client == NULL) {
            /* A new client that could not connect (its handshake at
             * checkout): as transient as the same failure in fn. */
            if (error == NULL || error->code != MONGOSUP_E_DRIVER)
                return false;
            berr.domain = error->driver_domain;
            berr.code = error->driver_code;
            snprintf(berr.message, sizeof berr.message, "%s", error->message);
        } else {
            ok = fn(client, ctx, &reply, &berr);
            mongosup_checkin(h, client, ok ? NULL : &berr);
        }
        if (ok) {
            bson_destroy(&reply);
            return true;
        }
        if (berr.code == 0 && berr.domain == 0) {
            bson_set_error(&berr, MONGOC_ERROR_CLIENT, 0, "the callback failed without an error");
        }
        bool transient = msup_error_is_transient(&berr, &reply);
        bson_destroy(&reply);
        if (!transient)
            return fail_attempt(error, cluster, &berr, attempt, ", not transient");
        if (attempt >= max_attempts)
            return fail_attempt(error, cluster, &berr, attempt, ", retries exhausted");
        /* DOWN already (the failure was most likely the fault itself): the
         * next checkout refuses at once with circuit_open, no backoff first. */
        if (msup_failfast_circuit_open(c))
            continue;
        uint64_t pause = backoff_ns(cfg->retry_backoff_ms, attempt);
        uint64_t now = msup_mono_ns();
        if (now + pause >= deadline)
            return fail_attempt(error, cluster, &berr, attempt, ", retry deadline reached");
        msup_stats_count(&msup_wcluster_stats(c)->retries, 1);
        backoff_sleep(c, pause);
    }
}
