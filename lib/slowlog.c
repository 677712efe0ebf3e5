/* slowlog.c: writes and reads the slow-operation ring (slowlog.h). */
#include <sched.h>
#include <string.h>

#include "layout.h"
#include "segment.h"
#include "snapshot.h"
#include "slowlog.h"
#include "textsafe.h"

static void store_text(char *dst, size_t cap, const char *src)
{
    /* Valid UTF-8, cut on a character boundary: readers show it as is. */
    msup_text_copy(dst, cap, src != NULL ? src : "", cap - 1);
}

void msup_slowlog_record(msup_slowlog_t *ring, const msup_slowop_in_t *op)
{
    if (op->slow)
        atomic_fetch_add_explicit(&ring->slow_ops, 1, memory_order_relaxed);
    uint64_t ordinal = atomic_fetch_add_explicit(&ring->head, 1, memory_order_relaxed) + 1;
    msup_slowop_t *e = &ring->entry[ordinal % MSUP_SLOWLOG_ENTRIES];
    uint32_t seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
    /* Another writer holds the entry (the ring lapped it): give up, never wait. */
    if ((seq & 1u) ||
        !atomic_compare_exchange_strong_explicit(&e->seq, &seq, seq + 1, memory_order_acquire, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&ring->dropped, 1, memory_order_relaxed);
        return;
    }
    atomic_thread_fence(memory_order_release);
    if (e->ordinal > ordinal) {
        /* A newer record already took the entry while this writer stalled: keep it. */
        atomic_store_explicit(&e->seq, seq, memory_order_release);
        atomic_fetch_add_explicit(&ring->dropped, 1, memory_order_relaxed);
        return;
    }
    e->ordinal = ordinal;
    e->outcome = op->outcome;
    e->time_ns = msup_now_ns();
    e->duration_us = op->duration_us;
    e->slow = op->slow ? 1u : 0u;
    store_text(e->command, sizeof e->command, op->command);
    store_text(e->database, sizeof e->database, op->database);
    store_text(e->collection, sizeof e->collection, op->collection);
    store_text(e->server, sizeof e->server, op->server);
    atomic_store_explicit(&e->seq, seq + 2, memory_order_release);
}

/* Whatever a forged segment holds, a copy is safe to show. */
static void sanitize(msup_slowop_t *e)
{
    char tmp[MSUP_SLOWLOG_COLL_MAX];
    char *fields[] = {e->command, e->database, e->collection, e->server};
    size_t caps[] = {sizeof e->command, sizeof e->database, sizeof e->collection, sizeof e->server};
    for (int i = 0; i < 4; i++) {
        msup_text_copy(tmp, caps[i], fields[i], caps[i] - 1);
        memcpy(fields[i], tmp, caps[i]);
    }
    if (e->outcome > MSUP_FAIL__COUNT)
        e->outcome = 1u + MSUP_FAIL_OTHER;
    e->slow = e->slow ? 1u : 0u;
}

/* One tear-free copy of an entry; false when it was never written or kept changing. */
static bool read_entry(const msup_slowop_t *src_c, msup_slowop_t *out)
{
    msup_slowop_t *src = (msup_slowop_t *)src_c; /* atomic loads take non-const pointers */
    /* Few attempts: a writer holds an entry for a few hundred nanoseconds,
     * and a forged odd sequence must not stall a reader of many rings. */
    for (int attempt = 0; attempt < 20; attempt++) {
        uint32_t before = atomic_load_explicit(&src->seq, memory_order_acquire);
        if (before == 0)
            return false;
        if (before & 1u) {
            if (attempt > 4)
                sched_yield(); /* the writer may be descheduled mid-write */
            continue;
        }
        out->outcome = src->outcome;
        out->ordinal = src->ordinal;
        out->time_ns = src->time_ns;
        out->duration_us = src->duration_us;
        out->slow = src->slow;
        memcpy(out->command, src->command, sizeof out->command);
        memcpy(out->database, src->database, sizeof out->database);
        memcpy(out->collection, src->collection, sizeof out->collection);
        memcpy(out->server, src->server, sizeof out->server);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&src->seq, memory_order_relaxed) == before) {
            atomic_store_explicit(&out->seq, before, memory_order_relaxed);
            sanitize(out);
            return true;
        }
    }
    return false;
}

uint32_t msup_slowlog_read(const msup_slowlog_t *ring, uint64_t after, msup_slowop_t *out, uint32_t cap)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < MSUP_SLOWLOG_ENTRIES && n < cap; i++) {
        if (read_entry(&ring->entry[i], &out[n]) && out[n].ordinal > after)
            n++;
    }
    /* Oldest first: insertion sort of at most MSUP_SLOWLOG_ENTRIES. */
    for (uint32_t i = 1; i < n; i++) {
        msup_slowop_t e = out[i];
        uint32_t j = i;
        for (; j > 0 && out[j - 1].ordinal > e.ordinal; j--)
            out[j] = out[j - 1];
        out[j] = e;
    }
    return n;
}

const char *msup_slowop_outcome_name(uint32_t outcome)
{
    return outcome == MSUP_SLOWOP_OK ? "ok" : msup_fail_class_name((enum msup_fail_class)(outcome - 1));
}
