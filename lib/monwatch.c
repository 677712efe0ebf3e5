/* monwatch.c: whether a host's driver monitor has reported since a DOWN cutoff shut its socket (see monwatch.h for why). */
#include "monwatch.h"

#define NS_PER_MS 1000000ull

void msup_monwatch_started(msup_monwatch_host_t *m)
{
    /* The monitor clears the pool after a failed check and before the next
     * check starts, in its own thread: every failure so far is handled. */
    atomic_store_explicit(&m->handled, atomic_load_explicit(&m->failures, memory_order_acquire), memory_order_release);
    atomic_fetch_add_explicit(&m->started, 1, memory_order_acq_rel);
}

void msup_monwatch_succeeded(msup_monwatch_host_t *m)
{
    atomic_store_explicit(&m->ok, 1, memory_order_relaxed);
    atomic_store_explicit(&m->ok_started, atomic_load_explicit(&m->started, memory_order_acquire), memory_order_release);
    atomic_fetch_add_explicit(&m->completed, 1, memory_order_acq_rel);
}

void msup_monwatch_failed(msup_monwatch_host_t *m, uint64_t now_mono_ns)
{
    atomic_store_explicit(&m->ok, 0, memory_order_relaxed);
    atomic_store_explicit(&m->failed_ns, now_mono_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->failures, 1, memory_order_acq_rel);
    atomic_fetch_add_explicit(&m->completed, 1, memory_order_acq_rel);
}

bool msup_monwatch_cut(msup_monwatch_host_t *m)
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
    if (++m->cuts == 0)
        m->cuts = 1;
    atomic_store_explicit(&m->pending, m->cuts, memory_order_release);
    return true;
}

bool msup_monwatch_reported(msup_monwatch_host_t *m, uint64_t now_mono_ns)
{
    uint32_t cut = atomic_load_explicit(&m->pending, memory_order_acquire);
    if (cut == 0)
        return true;
    uint64_t await_failures = atomic_load_explicit(&m->await_failures, memory_order_relaxed);
    uint64_t await_ok = atomic_load_explicit(&m->await_ok, memory_order_relaxed);
    bool failed = atomic_load_explicit(&m->failures, memory_order_acquire) >= await_failures;
    bool reported =
        atomic_load_explicit(&m->handled, memory_order_acquire) >= await_failures ||
        (failed && now_mono_ns >= atomic_load_explicit(&m->failed_ns, memory_order_relaxed) +
                                      MSUP_MONWATCH_FAIL_GRACE_MS * NS_PER_MS) ||
        (atomic_load_explicit(&m->ok, memory_order_relaxed) != 0 &&
         atomic_load_explicit(&m->ok_started, memory_order_acquire) >= await_ok);
    /* Unless a newer cut made it pending again meanwhile. */
    if (reported)
        atomic_compare_exchange_strong_explicit(&m->pending, &cut, 0, memory_order_relaxed, memory_order_relaxed);
    return reported;
}
