/* monwatch.c: whether a pool's driver monitors have reported since a DOWN cutoff shut their sockets (see monwatch.h for why). */
#include "monwatch.h"

#define NS_PER_MS 1000000ull

static void on_started(msup_monwatch_host_t *m)
{
    /* The monitor clears the pool after a failed check and before the next
     * check starts, in its own thread: every failure so far is handled. */
    atomic_store_explicit(&m->handled, atomic_load_explicit(&m->failures, memory_order_acquire), memory_order_release);
    atomic_fetch_add_explicit(&m->started, 1, memory_order_acq_rel);
}

static void on_succeeded(msup_monwatch_host_t *m)
{
    atomic_store_explicit(&m->ok, 1, memory_order_relaxed);
    atomic_store_explicit(&m->ok_started, atomic_load_explicit(&m->started, memory_order_acquire), memory_order_release);
    atomic_fetch_add_explicit(&m->completed, 1, memory_order_acq_rel);
}

static void on_failed(msup_monwatch_host_t *m, uint64_t now)
{
    atomic_store_explicit(&m->ok, 0, memory_order_relaxed);
    atomic_store_explicit(&m->failed_ns, now, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->failures, 1, memory_order_acq_rel);
    atomic_fetch_add_explicit(&m->completed, 1, memory_order_acq_rel);
}

/* A server that left the topology (a replica-set seed replaced by the
 * member's own name, a removed member) has no monitor left to clear the
 * pool: nothing to wait for, now or at a later cut. */
static void on_closed(msup_monwatch_host_t *m)
{
    atomic_store_explicit(&m->ok, 0, memory_order_relaxed);
    atomic_store_explicit(&m->completed, atomic_load_explicit(&m->started, memory_order_acquire),
                          memory_order_release);
    atomic_store_explicit(&m->pending, 0, memory_order_release);
}

void msup_monwatch_event(msup_monwatch_t *w, uint32_t i, enum msup_monitor_event what, uint64_t now)
{
    if (i >= MSUP_MONWATCH_HOSTS)
        return;
    msup_monwatch_host_t *m = &w->host[i];
    switch (what) {
    case MSUP_MONITOR_STARTED: on_started(m); break;
    case MSUP_MONITOR_SUCCEEDED: on_succeeded(m); break;
    case MSUP_MONITOR_FAILED: on_failed(m, now); break;
    case MSUP_MONITOR_CLOSED: on_closed(m); break;
    }
}

static bool host_cut(msup_monwatch_host_t *m, uint32_t cut)
{
    uint64_t started = atomic_load_explicit(&m->started, memory_order_acquire);
    uint64_t completed = atomic_load_explicit(&m->completed, memory_order_acquire);
    uint64_t failures = atomic_load_explicit(&m->failures, memory_order_acquire);
    bool ok = atomic_load_explicit(&m->ok, memory_order_relaxed) != 0;
    bool busy = started > completed;
    /* A monitor that failed and sleeps has nothing left to tell: its pool
     * was cleared already, what connects next is new. */
    if (!ok && !busy)
        return false;
    /* Healthy: its socket was shut, its next check fails; only a check that
     * began after the cut proves a live socket.  Reconnecting: the check
     * under way connects anew, its success is enough. */
    atomic_store_explicit(&m->await_failures, failures + 1, memory_order_relaxed);
    atomic_store_explicit(&m->await_ok, ok ? started + 1 : started, memory_order_relaxed);
    atomic_store_explicit(&m->pending, cut, memory_order_release);
    return true;
}

static bool host_reported(msup_monwatch_host_t *m, uint64_t now)
{
    uint32_t cut = atomic_load_explicit(&m->pending, memory_order_acquire);
    if (cut == 0)
        return true;
    uint64_t await_failures = atomic_load_explicit(&m->await_failures, memory_order_relaxed);
    uint64_t await_ok = atomic_load_explicit(&m->await_ok, memory_order_relaxed);
    bool failed = atomic_load_explicit(&m->failures, memory_order_acquire) >= await_failures;
    bool reported =
        atomic_load_explicit(&m->handled, memory_order_acquire) >= await_failures ||
        (failed &&
         now >= atomic_load_explicit(&m->failed_ns, memory_order_relaxed) + MSUP_MONWATCH_FAIL_GRACE_MS * NS_PER_MS) ||
        (atomic_load_explicit(&m->ok, memory_order_relaxed) != 0 &&
         atomic_load_explicit(&m->ok_started, memory_order_acquire) >= await_ok);
    /* Unless a newer cut made it pending again meanwhile. */
    if (reported)
        atomic_compare_exchange_strong_explicit(&m->pending, &cut, 0, memory_order_relaxed, memory_order_relaxed);
    return reported;
}

bool msup_monwatch_cut(msup_monwatch_t *w, uint32_t hosts, uint64_t deadline)
{
    if (hosts > MSUP_MONWATCH_HOSTS)
        hosts = MSUP_MONWATCH_HOSTS;
    if (++w->cuts == 0)
        w->cuts = 1;
    bool pending = false;
    for (uint32_t i = 0; i < hosts; i++)
        pending = host_cut(&w->host[i], w->cuts) || pending;
    if (pending) {
        atomic_store_explicit(&w->deadline_ns, deadline, memory_order_relaxed);
        atomic_store_explicit(&w->pending, w->cuts, memory_order_release);
    }
    return pending;
}

enum msup_monwatch_state msup_monwatch_state(msup_monwatch_t *w, uint32_t hosts, uint64_t now)
{
    uint32_t cut = atomic_load_explicit(&w->pending, memory_order_acquire);
    if (cut == 0)
        return MSUP_MONWATCH_REPORTED;
    if (hosts > MSUP_MONWATCH_HOSTS)
        hosts = MSUP_MONWATCH_HOSTS;
    bool all = true;
    for (uint32_t i = 0; i < hosts; i++)
        all = host_reported(&w->host[i], now) && all;
    bool late = !all && now >= atomic_load_explicit(&w->deadline_ns, memory_order_relaxed);
    if (!all && !late)
        return MSUP_MONWATCH_WAITING;
    /* Only the thread that clears this cut's flag reports it ran out. */
    bool cleared = atomic_compare_exchange_strong_explicit(&w->pending, &cut, 0, memory_order_relaxed,
                                                           memory_order_relaxed);
    return late && cleared ? MSUP_MONWATCH_RAN_OUT : MSUP_MONWATCH_REPORTED;
}
