/* probe.c: while a cluster is DOWN, the worker asks it itself (one single-threaded scan every 250 ms, on a thread of its own): evidence that opens half-open before mongosupd's next check. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mongoc/mongoc.h>

#include "failfast.h"
#include "probe.h"
#include "worker.h"

#define NS_PER_MS 1000000ull

/* One scan of the cluster: true when a member answered hello.  A fresh
 * client each time: a single-threaded client skips a server that failed for
 * 5 s (its cooldown).  The scan is bounded by connectTimeoutMS (name
 * resolution aside), which is why this runs on its own thread. */
static bool probe_once(const char *uri_text, uint32_t timeout_ms)
{
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_text, NULL);
    if (uri == NULL)
        return false;
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, (int32_t)timeout_ms);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, (int32_t)timeout_ms);
    mongoc_uri_set_option_as_bool(uri, MONGOC_URI_SERVERSELECTIONTRYONCE, true);
    mongoc_client_t *client = mongoc_client_new_from_uri_with_error(uri, NULL);
    mongoc_uri_destroy(uri);
    if (client == NULL)
        return false;
    /* Any member that answers, as mongosupd's check of a replica set: a
     * cluster without a primary is DEGRADED, not DOWN. */
    mongoc_read_prefs_t *nearest = mongoc_read_prefs_new(MONGOC_READ_NEAREST);
    bson_error_t err;
    mongoc_server_description_t *sd = mongoc_client_select_server(client, false, nearest, &err);
    bool reached = sd != NULL;
    mongoc_server_description_destroy(sd);
    mongoc_read_prefs_destroy(nearest);
    mongoc_client_destroy(client);
    return reached;
}

static void *probe_main(void *arg)
{
    struct msup_wcluster *c = arg;
    msup_probe_t *p = &c->failfast.probe;
    pthread_mutex_lock(&p->mu);
    while (!p->stop && msup_failfast_probe_wanted(c)) {
        pthread_mutex_unlock(&p->mu);
        uint64_t next = msup_mono_ns() + MSUP_PROBE_INTERVAL_MS * NS_PER_MS;
        bool reached = probe_once(p->uri, p->timeout_ms);
        atomic_fetch_add_explicit(&p->runs, 1, memory_order_relaxed);
        if (reached) {
            atomic_fetch_add_explicit(&p->reached, 1, memory_order_relaxed);
            msup_failfast_note_reached(c);
        }
        pthread_mutex_lock(&p->mu);
        struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
        while (!p->stop && msup_mono_ns() < next)
            if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT)
                break;
    }
    pthread_mutex_unlock(&p->mu);
    atomic_store_explicit(&p->finished, true, memory_order_release);
    return NULL;
}

static void join(msup_probe_t *p)
{
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->uri);
    p->uri = NULL;
    p->started = false;
}

void msup_probe_tend(struct msup_wcluster *c)
{
    msup_probe_t *p = &c->failfast.probe;
    if (p->started && atomic_load_explicit(&p->finished, memory_order_acquire))
        join(p);
    if (p->started || !msup_failfast_probe_wanted(c))
        return;
    const msup_cluster_cfg_t *cfg = atomic_load_explicit(&c->cfg, memory_order_acquire);
    if ((p->uri = strdup(cfg->uri)) == NULL)
        return;
    p->timeout_ms = cfg->check_timeout_ms ? cfg->check_timeout_ms : 1000;
    p->stop = false;
    atomic_store_explicit(&p->finished, false, memory_order_relaxed);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&p->mu, NULL);
    /* Started from the upkeep thread, whose signals are all blocked: the
     * probe inherits that mask, the application's signals stay its own. */
    if (pthread_create(&p->thread, NULL, probe_main, c) != 0) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        free(p->uri);
        p->uri = NULL;
        return; /* no probe: the supervisor's checks and the pool's monitor still open half-open */
    }
    p->started = true;
}

void msup_probe_stop(struct msup_wcluster *c)
{
    msup_probe_t *p = &c->failfast.probe;
    if (!p->started)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    join(p);
}
