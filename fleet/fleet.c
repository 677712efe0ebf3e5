/* fleet.c: the fleet protocol run by mongosupd's fleet thread: lease and keepalives, publish demand and cap, read the prefix, lower first, raise only into free room by transaction. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../supervisor/log.h"
#include "error.h"
#include "etcd.h"
#include "fleet.h"
#include "fleet_int.h"
#include "plan.h"
#include "record.h"
#include "share.h"

#define MS 1000000ull
#define CLOCK_SLACK_MS 250       /* the server's clock may run a little faster than ours */
#define MAX_RECORDS 1024
#define REFUSED_RETRY_NS (5000 * MS)


/* ---- the host's cap: always through apply, under apply_mu ---- */

static void set_cap(msup_fleet_t *f, fleet_cluster_t *c, uint32_t cap, const char *cause)
{
    pthread_mutex_lock(&f->apply_mu);
    uint32_t old = atomic_load(&c->enforced);
    atomic_store(&c->enforced, cap);
    f->apply(c->row, cap, atomic_load(&c->max_connecting));
    pthread_mutex_unlock(&f->apply_mu);
    if (old != cap)
        msup_log(LOG_NOTICE, "fleet: cluster %s: this host's cap %u -> %u (%s)", c->name, old, cap, cause);
}

static uint64_t row_in_use(const fleet_cluster_t *c)
{
    int64_t v = atomic_load_explicit(&c->line->budget_in_use, memory_order_relaxed);
    return v > 0 ? (uint64_t)v : 0;
}

/* ---- demand: the recent peak, more when the cap is what limits it ---- */

/* Checkouts of the host's workers that waited on the budget, so far. */
static uint64_t budget_waits(const fleet_cluster_t *c)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < c->seg->max_workers; i++) {
        const msup_slot_t *slot = msup_segment_slot(c->seg, i);
        if (atomic_load_explicit(&slot->state, memory_order_relaxed) == MSUP_SLOT_ACTIVE)
            n += atomic_load_explicit(&msup_slot_stats(c->seg, i, c->row_index)->budget_waits, memory_order_relaxed);
    }
    return n;
}

static uint32_t sample_demand(fleet_cluster_t *c, uint64_t now_ns)
{
    uint64_t second = now_ns / (1000 * MS);
    if (second != c->peak_second) {
        for (uint64_t s = c->peak_second + 1; s <= second && s <= c->peak_second + PEAK_BUCKETS; s++)
            c->peak[s % PEAK_BUCKETS] = 0;
        c->peak_second = second;
    }
    uint64_t used = row_in_use(c);
    uint32_t *bucket = &c->peak[second % PEAK_BUCKETS];
    if (used > *bucket)
        *bucket = used > UINT32_MAX ? UINT32_MAX : (uint32_t)used;
    uint32_t peak = 0;
    for (int i = 0; i < PEAK_BUCKETS; i++)
        if (c->peak[i] > peak)
            peak = c->peak[i];
    /* A worker waited on the budget lately: the host would use more.  Ask
     * for half as much again.  Running at the cap is not enough: a host
     * whose idle workers keep as many clients as its cap (each keeps one)
     * wants nothing more, and asking would swing its share up and down at
     * every round. */
    uint32_t cap = atomic_load(&c->enforced);
    uint64_t waits = budget_waits(c);
    if (waits > c->waits_seen)
        c->waited_ns = now_ns;
    c->waits_seen = waits;
    uint64_t stamped = atomic_load_explicit(&c->line->budget_wait_mono_ns, memory_order_relaxed);
    uint64_t window = PEAK_BUCKETS * 1000 * MS;
    bool pressed = (stamped != 0 && now_ns - stamped < window) || (c->waited_ns != 0 && now_ns - c->waited_ns < window) ||
                   peak > cap;
    uint64_t demand = pressed ? (uint64_t)cap + (cap / 2 > 0 ? cap / 2 : 1) : peak;
    if (demand < peak)
        demand = peak;
    if (c->ceiling != 0 && demand > c->ceiling)
        demand = c->ceiling;
    if (demand > c->fleet_max)
        demand = c->fleet_max;
    return (uint32_t)demand;
}

/* ---- etcd errors: one line when trouble starts, one when it ends ---- */

static void note_etcd(msup_fleet_t *f, msup_etcd_status_t st, const char *what)
{
    if (st == MSUP_ETCD_OK) {
        atomic_store(&f->last_contact_ns, msup_now_ns());
        if (f->error_logged)
            msup_log(LOG_NOTICE, "fleet: etcd answers again");
        f->error_logged = false;
        return;
    }
    if (st != MSUP_ETCD_UNREACHABLE)
        atomic_store(&f->last_contact_ns, msup_now_ns()); /* it answered, with a refusal */
    snprintf(f->last_error, sizeof f->last_error, "%s: %s", what, msup_etcd_error(f->etcd));
    if (!f->error_logged || f->error_logged_status != st)
        msup_log(LOG_WARNING, "fleet: %s", f->last_error);
    f->error_logged = true;
    f->error_logged_status = st;
}

/* ---- the lease ---- */

/* Our deadline must pass before the server's: it counts the TTL from when
 * it received the keepalive, we from when we sent it.  The margin covers
 * one request (we stop before any request that could end past it) and
 * some clock drift. */
static uint64_t lease_margin_ns(const msup_fleet_t *f)
{
    return (uint64_t)(f->timeout_ms + CLOCK_SLACK_MS) * MS;
}

static void lose_lease(msup_fleet_t *f, const char *why)
{
    if (atomic_load(&f->has_lease))
        msup_log(LOG_WARNING, "fleet: lease %" PRIx64 " lost (%s): every cluster falls back to its floor", (uint64_t)f->lease, why);
    for (size_t i = 0; i < f->count; i++) {
        fleet_cluster_t *c = &f->clusters[i];
        set_cap(f, c, c->fallback_floor, "lease lost: the floor is reserved for this host");
        c->published = 0;
        c->lowering_since_ns = 0;
    }
    f->lease = 0;
    atomic_store(&f->has_lease, false);
    atomic_fetch_add(&f->lease_losses, 1);
}

static void send_keepalive(msup_fleet_t *f)
{
    uint64_t now = msup_mono_ns();
    if (now + (uint64_t)f->timeout_ms * MS >= f->lease_deadline_ns) {
        lose_lease(f, "no keepalive answered within the lease TTL minus a margin");
        return;
    }
    int64_t ttl_left = 0;
    msup_etcd_status_t st = msup_etcd_lease_keepalive(f->etcd, f->lease, &ttl_left);
    note_etcd(f, st, "lease keepalive");
    if (st == MSUP_ETCD_OK) {
        f->lease_deadline_ns = now + (uint64_t)ttl_left * 1000 * MS - lease_margin_ns(f);
        f->next_keepalive_ns = now + (uint64_t)f->ttl_s * 1000 * MS / 4;
    } else if (st == MSUP_ETCD_LEASE_GONE) {
        lose_lease(f, "expired on the server");
    } else {
        f->next_keepalive_ns = now + (uint64_t)f->poll_ms * MS; /* retry soon */
    }
}

/* True when a request may start: it ends (timeout) before our deadline.
 * When the request would leave no time for a keepalive after it, the
 * keepalive goes first (a slow round must not cost the lease).  When even
 * that cannot end in time, the lease is given up first: the cap must be at
 * the floor before the server can expire the lease and the others take
 * the room. */
static bool may_request(msup_fleet_t *f)
{
    if (f->lease == 0)
        return true;
    uint64_t now = msup_mono_ns(), request = (uint64_t)f->timeout_ms * MS;
    if (now + 2 * request >= f->lease_deadline_ns)
        send_keepalive(f);
    if (f->lease == 0)
        return false;
    if (msup_mono_ns() + request < f->lease_deadline_ns)
        return true;
    lose_lease(f, "no keepalive answered within the lease TTL minus a margin");
    return false;
}

static void keep_lease(msup_fleet_t *f)
{
    uint64_t now = msup_mono_ns();
    /* Without a lease no deadline runs: etcd may take its time to check
     * the password.  With one, every request fits before the deadline. */
    msup_etcd_set_patient(f->etcd, f->lease == 0);
    if (f->lease == 0) {
        if (now < f->next_grant_ns)
            return;
        int64_t id = 0;
        msup_etcd_status_t st = msup_etcd_lease_grant(f->etcd, f->ttl_s, &id);
        note_etcd(f, st, "lease grant");
        /* A refusal (wrong credentials, no permission) will not pass at the
         * next poll: etcd's password check costs it a bcrypt each time. */
        if (st == MSUP_ETCD_REFUSED)
            f->next_grant_ns = now + REFUSED_RETRY_NS;
        if (st != MSUP_ETCD_OK)
            return;
        msup_etcd_set_patient(f->etcd, false);
        /* From before the request (and a slow authentication): the server
         * started the TTL later, so our deadline passes first. */
        f->lease = id;
        f->lease_deadline_ns = now + (uint64_t)f->ttl_s * 1000 * MS - lease_margin_ns(f);
        f->next_keepalive_ns = now + (uint64_t)f->ttl_s * 1000 * MS / 4;
        atomic_store(&f->has_lease, true);
        msup_log(LOG_NOTICE, "fleet: host %s joined with lease %" PRIx64 " (TTL %u s)", f->host_id, (uint64_t)id, f->ttl_s);
        return;
    }
    if (now >= f->next_keepalive_ns)
        send_keepalive(f);
}

/* ---- one cluster's round ---- */

typedef struct view {
    msup_fleet_record_t recs[MAX_RECORDS];
    msup_share_host_t hosts[MAX_RECORDS];
    size_t n;            /* valid records, this host's included when present */
    int mine;            /* index of this host's record, or -1 */
    uint64_t others_caps;
} view_t;

static void report_bad(msup_fleet_t *f, const msup_etcd_kv_t *kv, const char *why)
{
    for (size_t i = 0; i < sizeof f->reported / sizeof f->reported[0]; i++)
        if (f->reported[i].rev == kv->mod_revision && strcmp(f->reported[i].key, kv->key) == 0)
            return;
    unsigned slot = f->reported_next++ % (sizeof f->reported / sizeof f->reported[0]);
    snprintf(f->reported[slot].key, sizeof f->reported[slot].key, "%s", kv->key);
    f->reported[slot].rev = kv->mod_revision;
    msup_log(LOG_WARNING, "fleet: ignoring the record at %.200s (revision %" PRId64 "): %s", kv->key,
             kv->mod_revision, why);
}

static void build_view(msup_fleet_t *f, const fleet_cluster_t *c, const msup_etcd_range_t *r, view_t *v)
{
    char base[512];
    snprintf(base, sizeof base, "%s/%s/", f->prefix, c->name);
    size_t blen = strlen(base);
    v->n = 0;
    v->mine = -1;
    v->others_caps = 0;
    for (size_t i = 0; i < r->count && v->n < MAX_RECORDS; i++) {
        const msup_etcd_kv_t *kv = &r->kvs[i];
        if (strncmp(kv->key, base, blen) != 0)
            continue; /* another cluster's */
        const char *host = kv->key + blen;
        char why[128];
        msup_fleet_record_t *rec = &v->recs[v->n];
        if (kv->too_long) {
            report_bad(f, kv, "value too long");
            continue;
        }
        if (kv->lease == 0) {
            /* Without a lease nobody removes it when its host dies: it would hold room for ever. */
            report_bad(f, kv, "not attached to a lease");
            continue;
        }
        if (!msup_fleet_record_decode(kv->value, host, rec, why, sizeof why)) {
            report_bad(f, kv, why);
            continue;
        }
        bool me = strcmp(host, f->host_id) == 0;
        /* Ours from before a reload is republished this round. */
        if (!me && (rec->fleet_max != c->fleet_max || rec->max_hosts != f->max_hosts || rec->floor != c->floor))
            report_bad(f, kv, "its fleet_max_connections, max_hosts or floor differ from this host's: every host "
                              "must use the same (counted with this host's floor)");
        if (me)
            v->mine = (int)v->n;
        else
            v->others_caps += rec->cap;
        /* Shares are computed with this host's floor for everybody: a record
         * cannot raise anyone's cap by claiming a smaller floor. */
        v->hosts[v->n] = (msup_share_host_t){rec->host, c->floor, rec->demand};
        v->n++;
    }
}

/* What `mongosupctl fleet` shows of the last read. */
static void keep_shown(msup_fleet_t *f, fleet_cluster_t *c, const view_t *v)
{
    pthread_mutex_lock(&f->view_mu);
    c->shown_count = 0;
    c->seen_count = v->n;
    for (size_t i = 0; i < v->n && i < SHOWN_RECORDS; i++) {
        shown_record_t *s = &c->shown[c->shown_count++];
        snprintf(s->host, sizeof s->host, "%s", v->recs[i].host);
        s->floor = v->recs[i].floor;
        s->demand = v->recs[i].demand;
        s->cap = v->recs[i].cap;
    }
    pthread_mutex_unlock(&f->view_mu);
}

static bool publish(msup_fleet_t *f, fleet_cluster_t *c, uint32_t cap, uint32_t demand, int64_t guard_rev,
                    bool *applied)
{
    msup_fleet_record_t rec = {.floor = c->floor, .demand = demand, .cap = cap, .fleet_max = c->fleet_max,
                               .max_hosts = f->max_hosts};
    snprintf(rec.host, sizeof rec.host, "%s", f->host_id);
    char key[512], value[512], guard[512];
    snprintf(key, sizeof key, "%s/%s/%s", f->prefix, c->name, f->host_id);
    snprintf(guard, sizeof guard, "%s/%s", f->prefix, c->name);
    msup_fleet_record_encode(&rec, value, sizeof value);
    if (!may_request(f))
        return false;
    msup_etcd_status_t st = msup_etcd_put(f->etcd, key, value, f->lease, guard, guard_rev, applied);
    note_etcd(f, st, "publish");
    if (st == MSUP_ETCD_LEASE_GONE)
        lose_lease(f, "expired on the server");
    if (st != MSUP_ETCD_OK || !*applied)
        return false;
    c->published = cap;
    c->published_demand = demand;
    c->republish = false;
    return true;
}

/* ---- a raised floor: the cap kept without etcd once every host uses it ---- */

static void floor_pending_clear(fleet_cluster_t *c)
{
    free(c->floor_pending);
    c->floor_pending = NULL;
    c->floor_pending_count = 0;
    c->floor_pending_full = false;
    c->floor_pending_logged = false;
}

/* host was seen with a floor below this host's raised one. */
static void floor_pending_add(fleet_cluster_t *c, const char *host)
{
    for (size_t i = 0; i < c->floor_pending_count; i++)
        if (strcmp(c->floor_pending[i], host) == 0)
            return;
    if (c->floor_pending == NULL)
        c->floor_pending = calloc(FLOOR_PENDING_CAP, sizeof *c->floor_pending);
    if (c->floor_pending == NULL || c->floor_pending_count == FLOOR_PENDING_CAP) {
        c->floor_pending_full = true; /* the safe side: the old floor stays the cap without etcd */
        return;
    }
    snprintf(c->floor_pending[c->floor_pending_count++], sizeof c->floor_pending[0], "%s", host);
}

/* host publishes the raised floor now. */
static void floor_pending_drop(fleet_cluster_t *c, const char *host)
{
    for (size_t i = 0; i < c->floor_pending_count; i++) {
        if (strcmp(c->floor_pending[i], host) != 0)
            continue;
        if (i + 1 < c->floor_pending_count)
            memcpy(c->floor_pending[i], c->floor_pending[c->floor_pending_count - 1], sizeof c->floor_pending[0]);
        c->floor_pending_count--;
        return;
    }
}

/* A reload raised the floor: the hosts of the last read that showed a
 * lower one must show the new one first (one may vanish before the next
 * read, and come back with its old floor).  Those an earlier raise still
 * waits for stay: they may be gone from that read. */
static void floor_pending_start(msup_fleet_t *f, fleet_cluster_t *c)
{
    pthread_mutex_lock(&f->view_mu);
    for (size_t i = 0; i < c->shown_count; i++)
        if (c->shown[i].floor < c->floor)
            floor_pending_add(c, c->shown[i].host);
    pthread_mutex_unlock(&f->view_mu);
}

/* After a reload raised the floor: the higher floor becomes the cap kept
 * without a lease once every host's record shows it (they all reserve it
 * for everybody then), every host seen with a lower one since the reload
 * included: one without a record now (its lease lapsed, it restarts) may
 * come back with the old floor and reserve only that for this host.
 * Until then, the old one. */
static void promote_floor(fleet_cluster_t *c, const view_t *v)
{
    uint32_t floor = c->floor;
    if (c->fallback_floor >= floor || v->n == 0)
        return;
    bool lower = false;
    for (size_t i = 0; i < v->n; i++) {
        if (v->recs[i].floor < floor) {
            floor_pending_add(c, v->recs[i].host);
            lower = true;
        } else {
            floor_pending_drop(c, v->recs[i].host);
        }
    }
    if (lower)
        return;
    if (c->floor_pending_count > 0 || c->floor_pending_full) {
        if (!c->floor_pending_logged)
            msup_log(LOG_NOTICE, "fleet: cluster %s: every record publishes the floor %u, but %s%s seen with a lower "
                     "floor since the reload has no record now: this host keeps %u without etcd until %s",
                     c->name, floor, c->floor_pending_full ? "more hosts than followed" : "host ",
                     c->floor_pending_full ? "" : c->floor_pending[0], (unsigned)c->fallback_floor,
                     c->floor_pending_full ? "its next start" : "it publishes the new one");
        c->floor_pending_logged = true;
        return;
    }
    c->fallback_floor = floor;
    floor_pending_clear(c);
    msup_log(LOG_NOTICE, "fleet: cluster %s: every host publishes the floor %u: it is this host's cap without etcd now",
             c->name, floor);
}

static void cluster_round(msup_fleet_t *f, fleet_cluster_t *c, const msup_etcd_range_t *r, view_t *v)
{
    uint64_t now = msup_mono_ns();
    uint32_t demand = sample_demand(c, now);
    atomic_store(&c->demand, demand);
    build_view(f, c, r, v);
    keep_shown(f, c, v);
    atomic_store(&c->hosts_seen, (uint32_t)v->n);
    atomic_store_explicit(&c->row->fleet_hosts, (uint32_t)v->n, memory_order_relaxed); /* for the tools */
    if (v->mine >= 0)
        v->hosts[v->mine].demand = demand; /* ours as it is now, not as last published */
    promote_floor(c, v);
    msup_plan_input_t in = {
        .share = {.fleet_max = c->fleet_max, .max_hosts = f->max_hosts, .floor = c->floor},
        .ceiling = c->ceiling,
        .fallback_floor = c->fallback_floor,
        .published = c->published,
        .published_demand = c->published_demand,
        .enforced = atomic_load(&c->enforced),
        .in_use = row_in_use(c),
        .demand = demand,
        .now_ns = now,
        .lower_wait_ns = (uint64_t)f->lower_wait_ms * MS,
        .lowering_since_ns = c->lowering_since_ns,
        .hosts = v->hosts,
        .n = v->n,
        .mine = v->mine,
        .others_caps = v->others_caps,
    };
    msup_plan_t plan;
    msup_plan_round(&in, &plan);
    atomic_store(&c->target, plan.target);
    atomic_store_explicit(&c->row->fleet_share, plan.target, memory_order_relaxed);
    c->lowering_since_ns = plan.lowering_since_ns;
    char cause[128];
    snprintf(cause, sizeof cause, "share of %zu hosts, demand %u", v->n, demand);
    bool applied = false;
    switch (plan.kind) {
    case MSUP_PLAN_LOST:
        lose_lease(f, "this host's record is gone from etcd");
        return;
    case MSUP_PLAN_FULL:
        set_cap(f, c, plan.enforce_now, "no record: max_hosts hosts already have one");
        if (c->full_logged)
            return;
        c->full_logged = true;
        msup_log(LOG_ERR, "fleet: cluster %s: %zu hosts already publish under %s and max_hosts is %u: this host "
                 "stays at its floor without a record (raise max_hosts on every host)",
                 c->name, v->n, f->prefix, f->max_hosts);
        return;
    case MSUP_PLAN_JOIN:
        set_cap(f, c, plan.enforce_now, "joining at the floor");
        c->full_logged = false;
        if (publish(f, c, plan.publish_cap, demand, r->revision, &applied))
            msup_log(LOG_NOTICE, "fleet: cluster %s: published floor %u (demand %u, %zu other hosts)", c->name,
                     plan.publish_cap, demand, v->n - (v->mine >= 0 ? 1 : 0));
        return;
    case MSUP_PLAN_WAIT:
        set_cap(f, c, plan.enforce_now, cause);
        return;
    case MSUP_PLAN_PUBLISH:
        set_cap(f, c, plan.enforce_now, cause);
        if (plan.publish_cap > plan.target && plan.publish_cap < c->published)
            msup_log(LOG_WARNING,
                     "fleet: cluster %s: %" PRIu64 " connections still open %u ms after lowering the cap to %u "
                     "(clients in use are never closed): publishing %u",
                     c->name, in.in_use, f->lower_wait_ms, plan.target, plan.publish_cap);
        if (publish(f, c, plan.publish_cap, demand, 0, &applied) && plan.lowering_done)
            c->lowering_since_ns = 0;
        return;
    case MSUP_PLAN_RAISE:
        set_cap(f, c, plan.enforce_now, "share went back up");
        if (publish(f, c, plan.publish_cap, demand, r->revision, &applied)) {
            snprintf(cause, sizeof cause, "share of %zu hosts, demand %u, room under the others' caps", v->n, demand);
            set_cap(f, c, plan.publish_cap, cause);
        }
        return;
    case MSUP_PLAN_NOTHING:
        set_cap(f, c, plan.enforce_now, "share went back up");
        /* The same cap with the reload's keys: the others see them, and a
         * raised floor can be taken up (promote_floor). */
        if (c->republish && c->published != 0 && publish(f, c, c->published, demand, 0, &applied))
            c->republish = false;
        return;
    }
}

/* ---- the thread ---- */

/* A reload's values (msup_fleet_reconfigure), at the start of a round. */
static void take_reload(msup_fleet_t *f)
{
    pthread_mutex_lock(&f->mu);
    if (f->reload_pending) {
        f->reload_pending = false;
        f->poll_ms = f->reload_poll_ms;
        f->lower_wait_ms = f->reload_lower_wait_ms;
        f->timeout_ms = f->reload_timeout_ms;
        if (f->reload_etcd != NULL) {
            msup_etcd_take_settings(f->etcd, f->reload_etcd);
            f->reload_etcd = NULL;
            f->error_logged = false; /* the new settings' first trouble is logged */
        }
    }
    for (size_t i = 0; i < f->count; i++) {
        fleet_cluster_t *c = &f->clusters[i];
        if (!c->reload_pending)
            continue;
        c->reload_pending = false;
        uint32_t old_max = c->fleet_max, old_floor = c->floor, old_ceiling = c->ceiling;
        c->fleet_max = c->reload_max;
        c->floor = c->reload_floor;
        c->ceiling = c->reload_ceiling;
        /* A lower floor is safe at once; a higher one is room the others
         * reserve for this host only once they use it too.  A floor lowered
         * while a raise still waits for that stays above what they reserve
         * (a raise 2 -> 5, then 3: they reserve 2): it waits too. */
        if (c->floor < c->fallback_floor)
            c->fallback_floor = c->floor;
        if (c->fallback_floor >= c->floor)
            floor_pending_clear(c);
        else if (c->floor != old_floor)
            floor_pending_start(f, c);
        atomic_store_explicit(&c->row->fleet_max_connections, c->fleet_max, memory_order_relaxed);
        c->republish = true;
        msup_log(LOG_NOTICE, "fleet: cluster %s: reload: fleet_max_connections %u -> %u, fleet_floor %u -> %u%s, "
                 "max_connections %u -> %u: re-planning (a lower cap goes into the row before the record, a higher "
                 "one through the transaction)", c->name, old_max, c->fleet_max, old_floor, c->floor,
                 c->fallback_floor < c->floor ? " (kept without etcd once every host publishes it)" : "",
                 old_ceiling, c->ceiling);
        /* Without a lease nothing is planned: the floor now. */
        if (f->lease == 0)
            set_cap(f, c, c->fallback_floor, "reload: the floor");
    }
    pthread_mutex_unlock(&f->mu);
}

static void one_round(msup_fleet_t *f, view_t *v)
{
    take_reload(f);
    keep_lease(f);
    if (f->lease == 0 || !may_request(f))
        return;
    msup_etcd_range_t r;
    msup_etcd_status_t st = msup_etcd_range_prefix(f->etcd, f->prefix, &r);
    note_etcd(f, st, "read the prefix");
    if (st != MSUP_ETCD_OK)
        return; /* caps stay; the lease deadline still protects */
    for (size_t i = 0; i < f->count && f->lease != 0; i++)
        cluster_round(f, &f->clusters[i], &r, v);
    msup_etcd_range_free(&r);
}

static void *fleet_main(void *arg)
{
    msup_fleet_t *f = arg;
    view_t *v = malloc(sizeof *v);
    pthread_mutex_lock(&f->mu);
    while (!f->stop && v != NULL) {
        pthread_mutex_unlock(&f->mu);
        one_round(f, v);
        pthread_mutex_lock(&f->mu);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t until = (uint64_t)ts.tv_sec * 1000 * MS + (uint64_t)ts.tv_nsec + (uint64_t)f->poll_ms * MS;
        ts.tv_sec = (time_t)(until / (1000 * MS));
        ts.tv_nsec = (long)(until % (1000 * MS));
        while (!f->stop && !f->reload_pending && pthread_cond_timedwait(&f->cv, &f->mu, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&f->mu);
    if (v == NULL)
        msup_log(LOG_ERR, "fleet: out of memory: the fleet thread stops; caps stay as they are");
    free(v);
    return NULL;
}

static int row_of(const msup_segment_t *seg, const char *name)
{
    for (uint32_t i = 0; i < seg->max_clusters; i++) {
        const msup_cluster_row_t *row = msup_segment_row(seg, i);
        if (atomic_load_explicit(&row->row_state, memory_order_acquire) == MSUP_ROW_ACTIVE &&
            strncmp(row->name, name, MSUP_NAME_MAX) == 0)
            return (int)i;
    }
    return -1;
}

msup_fleet_t *msup_fleet_start(msup_segment_t *seg, const mongosup_config_t *cfg, msup_fleet_apply_fn apply,
                               mongosup_error_t *error)
{
    msup_error_clear(error);
    const msup_fleet_cfg_t *fc = &cfg->fleet;
    size_t n = 0;
    for (size_t i = 0; i < cfg->cluster_count; i++)
        n += cfg->clusters[i].fleet_max_connections != 0;
    if (!fc->enabled || n == 0) {
        if (fc->enabled)
            msup_log(LOG_NOTICE, "fleet: no cluster sets fleet_max_connections: etcd is not used");
        return NULL;
    }
    msup_fleet_t *f = calloc(1, sizeof *f);
    if (f == NULL) {
        msup_fail(error, MONGOSUP_E_SYSTEM, "fleet: out of memory");
        return NULL;
    }
    char why[160];
    if ((f->etcd = msup_etcd_new(fc, why, sizeof why)) == NULL) {
        free(f);
        msup_fail(error, MONGOSUP_E_SYSTEM, "fleet: %s", why);
        return NULL;
    }
    snprintf(f->host_id, sizeof f->host_id, "%s", fc->host_id);
    snprintf(f->prefix, sizeof f->prefix, "%s", fc->prefix);
    f->ttl_s = fc->lease_ttl_s;
    f->max_hosts = fc->max_hosts;
    f->poll_ms = fc->poll_interval_ms;
    f->lower_wait_ms = fc->lower_wait_ms;
    f->timeout_ms = fc->request_timeout_ms;
    f->apply = apply;
    pthread_mutex_init(&f->apply_mu, NULL);
    pthread_mutex_init(&f->view_mu, NULL);
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    for (size_t i = 0; i < cfg->cluster_count; i++) {
        const msup_cluster_cfg_t *cc = &cfg->clusters[i];
        int row = cc->fleet_max_connections != 0 ? row_of(seg, cc->name) : -1;
        if (row < 0)
            continue;
        fleet_cluster_t *c = &f->clusters[f->count++];
        snprintf(c->name, sizeof c->name, "%s", cc->name);
        c->row = msup_segment_row(seg, (uint32_t)row);
        c->line = msup_segment_reg(seg, (uint32_t)row);
        c->seg = seg;
        c->row_index = (uint32_t)row;
        c->fleet_max = cc->fleet_max_connections;
        c->floor = cc->fleet_floor;
        c->ceiling = cc->max_connections;
        atomic_store(&c->max_connecting, cc->max_connecting);
        atomic_store(&c->enforced, c->floor);
        c->fallback_floor = c->floor;
        atomic_store_explicit(&c->row->fleet_max_connections, c->fleet_max, memory_order_relaxed);
        atomic_store_explicit(&c->row->fleet_hosts, 0, memory_order_relaxed);
        atomic_store_explicit(&c->row->fleet_share, c->floor, memory_order_relaxed);
        set_cap(f, c, c->floor, "start: the floor until etcd grants more");
    }
    int rc = pthread_create(&f->thread, NULL, fleet_main, f);
    if (rc != 0) {
        errno = rc;
        msup_fail_errno(error, MONGOSUP_E_SYSTEM, "fleet: cannot start its thread");
        msup_etcd_free(f->etcd);
        free(f);
        return NULL;
    }
    msup_log(LOG_NOTICE, "fleet: host %s, %zu clusters shared under %s through %s%s (lease TTL %u s, max_hosts %u)",
             f->host_id, f->count, f->prefix, fc->endpoints[0], fc->endpoints[1] != NULL ? " and others" : "",
             f->ttl_s, f->max_hosts);
    return f;
}

void msup_fleet_stop(msup_fleet_t **fleet, bool release_room)
{
    msup_fleet_t *f = fleet != NULL ? *fleet : NULL;
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    if (release_room && f->lease != 0 && msup_etcd_lease_revoke(f->etcd, f->lease) == MSUP_ETCD_OK)
        msup_log(LOG_NOTICE, "fleet: lease %" PRIx64 " revoked: this host's room returns to the others", (uint64_t)f->lease);
    msup_etcd_free(f->etcd);
    msup_etcd_free(f->reload_etcd);
    for (size_t i = 0; i < f->count; i++)
        floor_pending_clear(&f->clusters[i]);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    pthread_mutex_destroy(&f->apply_mu);
    pthread_mutex_destroy(&f->view_mu);
    free(f);
    *fleet = NULL;
}

bool msup_fleet_reapply(msup_fleet_t *f, const msup_cluster_cfg_t *cc, msup_cluster_row_t *row)
{
    for (size_t i = 0; f != NULL && i < f->count; i++) {
        fleet_cluster_t *c = &f->clusters[i];
        if (c->row != row || strcmp(c->name, cc->name) != 0)
            continue;
        atomic_store(&c->max_connecting, cc->max_connecting);
        pthread_mutex_lock(&f->apply_mu);
        f->apply(row, atomic_load(&c->enforced), cc->max_connecting);
        pthread_mutex_unlock(&f->apply_mu);
        return true; /* its totals: msup_fleet_reconfigure */
    }
    return false;
}

static bool same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_endpoints(char *const *a, char *const *b)
{
    size_t i = 0;
    for (; a[i] != NULL && b[i] != NULL; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return a[i] == NULL && b[i] == NULL;
}

/* The group's settings that only a start reads: logged, kept. */
static void refuse_restart_only(const msup_fleet_cfg_t *o, const msup_fleet_cfg_t *n)
{
    char what[160] = "";
    size_t len = 0;
    if (!same_text(o->host_id, n->host_id))
        len += (size_t)snprintf(what + len, sizeof what - len, " host_id");
    if (!same_text(o->prefix, n->prefix))
        len += (size_t)snprintf(what + len, sizeof what - len, " prefix");
    if (o->lease_ttl_s != n->lease_ttl_s)
        len += (size_t)snprintf(what + len, sizeof what - len, " lease_ttl_s");
    if (o->max_hosts != n->max_hosts)
        len += (size_t)snprintf(what + len, sizeof what - len, " max_hosts");
    if (len > 0)
        msup_log(LOG_WARNING, "fleet: reload: changes of%s take effect at the next start of mongosupd (this host's "
                 "lease and the shares of the hosts depend on them); the running values stay", what);
}

void msup_fleet_reconfigure(msup_fleet_t *f, const mongosup_config_t *old, const mongosup_config_t *cfg)
{
    if (f == NULL || old == NULL)
        return;
    const msup_fleet_cfg_t *o = &old->fleet, *n = &cfg->fleet;
    if (!n->enabled) {
        msup_log(LOG_WARNING, "fleet: reload: the fleet group was removed: that takes effect at the next start of "
                 "mongosupd; the fleet keeps its running settings until then");
        return;
    }
    refuse_restart_only(o, n);
    pthread_mutex_lock(&f->mu);
    /* Checked against the running TTL (a changed one waits for the start). */
    uint32_t timeout = n->request_timeout_ms, poll = n->poll_interval_ms;
    if (timeout * 4 > f->ttl_s * 1000u || poll * 2 > f->ttl_s * 1000u) {
        msup_log(LOG_WARNING, "fleet: reload: request_timeout_ms %u or poll_interval_ms %u does not fit the running "
                 "lease_ttl_s %u (at most a quarter, a half): both stay", timeout, poll, f->ttl_s);
        timeout = f->reload_pending ? f->reload_timeout_ms : f->timeout_ms;
        poll = f->reload_pending ? f->reload_poll_ms : f->poll_ms;
    }
    f->reload_timeout_ms = timeout;
    f->reload_poll_ms = poll;
    f->reload_lower_wait_ms = n->lower_wait_ms;
    f->reload_pending = true;
    if (!same_endpoints(o->endpoints, n->endpoints) || !same_text(o->username, n->username) ||
        !same_text(o->password, n->password) || !same_text(o->tls_ca_file, n->tls_ca_file) ||
        !same_text(o->tls_cert_file, n->tls_cert_file) || !same_text(o->tls_key_file, n->tls_key_file) ||
        timeout != f->timeout_ms) {
        msup_fleet_cfg_t settings = *n;
        settings.request_timeout_ms = timeout;
        char why[160];
        msup_etcd_t *e = msup_etcd_new(&settings, why, sizeof why);
        if (e == NULL) {
            msup_log(LOG_ERR, "fleet: reload: %s: the running etcd settings stay", why);
        } else {
            msup_etcd_free(f->reload_etcd); /* an earlier reload's, not taken yet */
            f->reload_etcd = e;
            msup_log(LOG_NOTICE, "fleet: reload: etcd endpoints, credentials, TLS files or request timeout changed: "
                     "used from the next request (the lease stays)");
        }
    }
    for (size_t i = 0; i < f->count; i++) {
        fleet_cluster_t *c = &f->clusters[i];
        int k = msup_config_find_cluster(cfg, c->name);
        const msup_cluster_cfg_t *cc = k >= 0 ? &cfg->clusters[k] : NULL;
        if (cc == NULL || cc->fleet_max_connections == 0) {
            msup_log(LOG_WARNING, "fleet: cluster %s: reload: %s: it leaves the fleet at the next start of mongosupd; "
                     "until then its share stays in the fleet", c->name,
                     cc == NULL ? "removed from the configuration" : "no fleet_max_connections any more");
            continue;
        }
        /* The loader checked the floors against the reload's max_hosts. */
        if ((uint64_t)cc->fleet_floor * f->max_hosts > cc->fleet_max_connections) {
            msup_log(LOG_WARNING, "fleet: cluster %s: reload: fleet_floor %u x the running max_hosts %u is more than "
                     "fleet_max_connections %u: its fleet keys stay", c->name, cc->fleet_floor, f->max_hosts,
                     cc->fleet_max_connections);
            continue;
        }
        uint32_t pmax = c->reload_pending ? c->reload_max : c->fleet_max;
        uint32_t pfloor = c->reload_pending ? c->reload_floor : c->floor;
        uint32_t pceil = c->reload_pending ? c->reload_ceiling : c->ceiling;
        if (cc->fleet_max_connections == pmax && cc->fleet_floor == pfloor && cc->max_connections == pceil)
            continue;
        c->reload_max = cc->fleet_max_connections;
        c->reload_floor = cc->fleet_floor;
        c->reload_ceiling = cc->max_connections;
        c->reload_pending = true;
    }
    pthread_cond_signal(&f->cv); /* re-plan now, not after the poll */
    pthread_mutex_unlock(&f->mu);
}
