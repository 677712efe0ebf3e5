/* worker_trust.c: what a worker believes from the supervisor-only control segment (trusted row, enforced limits, URI agreement) and when it maps a new one. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "budget.h"
#include "stats.h"
#include "textsafe.h"
#include "worker.h"

#define NS_PER_MS 1000000ull

/* The cap a worker enforces on its own (no live supervisor).  A cluster
 * whose budget is shared across hosts (fleet_max_connections): only the
 * host's floor, the room no other host may take (docs/fleet.md); the other
 * hosts take the rest once this host's lease expires. */
static uint32_t own_max_connections(const msup_cluster_cfg_t *cfg)
{
    if (cfg->fleet_max_connections != 0 && cfg->fleet_floor != 0 &&
        (cfg->max_connections == 0 || cfg->fleet_floor < cfg->max_connections))
        return cfg->fleet_floor;
    return cfg->max_connections;
}

void msup_wcluster_refresh_trust(msup_segment_t *seg, msup_wcluster_t *c)
{
    int row = atomic_load_explicit(&c->row, memory_order_relaxed);
    msup_cluster_row_t *ctl = row >= 0 ? msup_segment_trusted_row(seg, (uint32_t)row) : NULL;
    atomic_store_explicit(&c->ctl_row, ctl, memory_order_release);
    const msup_cluster_cfg_t *cfg = atomic_load_explicit(&c->cfg, memory_order_acquire);
    /* Never the worker-writable registry line's limits (docs/security.md). */
    if (ctl != NULL && msup_supervisor_alive(seg))
        msup_budget_apply_limits(&c->limits, atomic_load_explicit(&ctl->limits.max_connections, memory_order_acquire),
                                 atomic_load_explicit(&ctl->limits.max_connecting, memory_order_acquire));
    else
        msup_budget_apply_limits(&c->limits, own_max_connections(cfg), cfg->max_connecting);
}

void msup_wcluster_check_uri(const mongosup_t *h, msup_wcluster_t *c)
{
    /* Only the trusted control row says what the supervisor checks. */
    const msup_cluster_row_t *r = atomic_load_explicit(&c->ctl_row, memory_order_acquire);
    const msup_cluster_cfg_t *cfg = c->cfg;
    /* An empty URI: the row does not say what is checked (yet). */
    bool differs = r != NULL && r->uri_display[0] != '\0' &&
                   strncmp(cfg->uri_display, r->uri_display, sizeof r->uri_display) != 0;
    uint32_t was = atomic_exchange_explicit(&msup_wcluster_stats(c)->uri_mismatch, differs ? 1u : 0u,
                                            memory_order_relaxed);
    if (!differs || was != 0)
        return;
    char theirs[MSUP_URI_DISPLAY_MAX + 64], ours[MSUP_URI_DISPLAY_MAX + 64];
    msup_text_escape(theirs, sizeof theirs, r->uri_display, sizeof r->uri_display);
    msup_text_escape(ours, sizeof ours, cfg->uri_display, sizeof cfg->uri_display);
    fprintf(stderr,
            "mongosup[%d]: warning: cluster %s: this worker connects to %s (from %s) but the supervisor checks %s: "
            "the health shown for the cluster is not this worker's; give the worker the supervisor's URI "
            "(e.g. the same MONGOSUP_<CLUSTER>_URI)\n",
            (int)h->pid, c->name, ours, cfg->uri_source, theirs);
}

bool msup_handle_bind_control(mongosup_t *h, msup_segment_t *seg)
{
    mongosup_error_t why;
    if (msup_segment_bind_control(seg, &why))
        return true;
    /* None yet (no supervisor ran) is normal; a refused one (owner, mode,
     * layout) is said once: we run as without a supervisor either way. */
    if (why.driver_code != ENOENT && !atomic_exchange_explicit(&h->control_refusal_said, true, memory_order_relaxed))
        fprintf(stderr, "mongosup[%d]: %s; running without a supervisor\n", (int)h->pid, why.message);
    return false;
}

void msup_handle_check_segment(mongosup_t *h, uint64_t now_mono_ns)
{
    if (now_mono_ns - h->segment_checked_ns < 1000 * NS_PER_MS)
        return;
    h->segment_checked_ns = now_mono_ns;
    msup_segment_t *seg = msup_handle_seg(h);
    if (msup_segment_replaced(seg)) {
        atomic_store_explicit(&h->segment_stale, true, memory_order_release);
        return;
    }
    pthread_mutex_lock(&h->map_mu);
    if ((msup_segment_control(seg) == NULL || msup_ctlseg_replaced(seg)) && msup_handle_bind_control(h, seg))
        atomic_store_explicit(&h->config_generation, UINT64_MAX, memory_order_release); /* remap: trust anew */
    for (size_t i = 0; i < msup_handle_cluster_count(h); i++) {
        msup_wcluster_t *c = &h->clusters[i];
        pthread_mutex_lock(&c->mu);
        msup_wcluster_refresh_trust(seg, c);
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&h->map_mu);
}
