/* stats.c: last-error records, histogram bounds, and folding/merging of per-slot counters. */
#include <sched.h>
#include <string.h>

#include "segment.h"
#include "stats.h"
#include "textsafe.h"

uint64_t msup_hist_lower(uint32_t i)
{
    if (i < MSUP_HIST_SUB)
        return i;
    uint32_t octave = i / MSUP_HIST_SUB;
    uint32_t sub = i % MSUP_HIST_SUB;
    /* octave o covers [2^(o+4), 2^(o+5)) in steps of 2^(o-1) */
    return (uint64_t)(MSUP_HIST_SUB + sub) << (octave - 1);
}

uint64_t msup_hist_upper(uint32_t i)
{
    return i + 1 < MSUP_HIST_BUCKETS ? msup_hist_lower(i + 1) : UINT64_MAX;
}

void msup_last_error_write(msup_last_error_t *rec, enum msup_fail_class cls, uint32_t domain, uint32_t code,
                           const char *message)
{
    uint32_t seq = atomic_load_explicit(&rec->seq, memory_order_relaxed);
    /* Another thread of this worker holds the record: skip, never wait. */
    if ((seq & 1u) ||
        !atomic_compare_exchange_strong_explicit(&rec->seq, &seq, seq + 1, memory_order_acquire,
                                                 memory_order_relaxed))
        return;
    atomic_thread_fence(memory_order_release);
    rec->domain = domain;
    rec->code = code;
    rec->fail_class = (uint32_t)cls;
    rec->time_ns = msup_now_ns();
    /* Valid UTF-8, cut on a character boundary (textsafe.h): readers show
     * and export it as is.  No more than the record's size is read. */
    msup_text_copy(rec->message, sizeof rec->message, message, sizeof rec->message - 1);
    atomic_store_explicit(&rec->seq, seq + 2, memory_order_release);
}

bool msup_last_error_read(const msup_last_error_t *rec, msup_last_error_t *out)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        uint32_t before = atomic_load_explicit(&((msup_last_error_t *)rec)->seq, memory_order_acquire);
        if (before & 1u) {
            if (attempt > 100)
                sched_yield(); /* the writer may be descheduled mid-write */
            continue;
        }
        out->domain = rec->domain;
        out->code = rec->code;
        out->fail_class = rec->fail_class;
        out->time_ns = rec->time_ns;
        memcpy(out->message, rec->message, sizeof out->message);
        atomic_thread_fence(memory_order_acquire);
        uint32_t after = atomic_load_explicit(&((msup_last_error_t *)rec)->seq, memory_order_relaxed);
        if (before == after) {
            out->message[MSUP_ERRMSG_MAX - 1] = '\0'; /* a corrupted record cannot overrun */
            atomic_store_explicit(&out->seq, before, memory_order_relaxed);
            return true;
        }
    }
    memset(out, 0, sizeof *out);
    return false;
}

void msup_stats_record_failure(msup_stats_t *s, enum msup_fail_class cls, uint32_t domain, uint32_t code,
                               const char *message)
{
    atomic_fetch_add_explicit(&s->failures[cls], 1, MSUP_RELAXED);
    msup_last_error_write(&s->last_error, cls, domain, code, message);
}

#define LOAD(p) atomic_load_explicit(&(p), MSUP_RELAXED)

void msup_totals_add(msup_totals_t *dst, const msup_stats_t *src_c, bool with_gauges)
{
    msup_stats_t *src = (msup_stats_t *)src_c; /* atomic loads take non-const pointers */
    if (with_gauges) {
        dst->pool_in_use += LOAD(src->pool_in_use);
        dst->pool_idle += LOAD(src->pool_idle);
        dst->pool_created += LOAD(src->pool_created);
        dst->pool_max += LOAD(src->pool_max);
        dst->budget_tokens += LOAD(src->budget_tokens);
    }
    dst->checkouts += LOAD(src->checkouts);
    dst->checkout_waits += LOAD(src->checkout_waits);
    dst->checkout_wait_us += LOAD(src->checkout_wait_us);
    dst->checkout_timeouts += LOAD(src->checkout_timeouts);
    dst->max_reached += LOAD(src->max_reached);
    dst->budget_waits += LOAD(src->budget_waits);
    dst->clients_created += LOAD(src->clients_created);
    dst->clients_destroyed += LOAD(src->clients_destroyed);
    for (int i = 0; i < MSUP_OP__COUNT; i++)
        dst->ops[i] += LOAD(src->ops[i]);
    for (int i = 0; i < MSUP_FAIL__COUNT; i++)
        dst->failures[i] += LOAD(src->failures[i]);
    dst->retries += LOAD(src->retries);
    dst->reconnects += LOAD(src->reconnects);
    dst->slow_ops += LOAD(src->slowlog.slow_ops);
    uint64_t count = LOAD(src->ops[MSUP_OP_READ]) + LOAD(src->ops[MSUP_OP_WRITE]) + LOAD(src->ops[MSUP_OP_COMMAND]);
    if (count == 0)
        return;
    dst->hist_count += count;
    dst->hist_sum_us += LOAD(src->hist_sum_us);
    uint64_t max = LOAD(src->hist_max_us);
    if (max > dst->hist_max_us)
        dst->hist_max_us = max;
    /* Only octaves that were ever written: a typical slot touches a few. */
    uint32_t octaves = LOAD(src->hist_octaves);
    while (octaves) {
        uint32_t o = (uint32_t)__builtin_ctz(octaves);
        octaves &= octaves - 1;
        if (o >= MSUP_HIST_OCTAVES)
            break;
        const _Atomic uint64_t *b = &src->hist[o * MSUP_HIST_SUB];
        uint64_t *d = &dst->hist[o * MSUP_HIST_SUB];
        for (uint32_t k = 0; k < MSUP_HIST_SUB; k++)
            d[k] += atomic_load_explicit((_Atomic uint64_t *)&b[k], MSUP_RELAXED);
    }
}

void msup_stats_fold(msup_stats_t *dst, const msup_stats_t *base_c, const msup_stats_t *src_c)
{
    msup_stats_t *base = (msup_stats_t *)base_c, *src = (msup_stats_t *)src_c;
#define FOLD(f) atomic_store_explicit(&dst->f, LOAD(base->f) + LOAD(src->f), MSUP_RELAXED)
    FOLD(checkouts);
    FOLD(checkout_waits);
    FOLD(checkout_wait_us);
    FOLD(checkout_timeouts);
    FOLD(max_reached);
    FOLD(budget_waits);
    FOLD(clients_created);
    FOLD(clients_destroyed);
    for (int i = 0; i < MSUP_OP__COUNT; i++)
        FOLD(ops[i]);
    for (int i = 0; i < MSUP_FAIL__COUNT; i++)
        FOLD(failures[i]);
    FOLD(retries);
    FOLD(reconnects);
    FOLD(slowlog.slow_ops);
    FOLD(hist_sum_us);
    for (uint32_t i = 0; i < MSUP_HIST_BUCKETS; i++)
        FOLD(hist[i]);
#undef FOLD
    uint64_t bmax = LOAD(base->hist_max_us), smax = LOAD(src->hist_max_us);
    atomic_store_explicit(&dst->hist_max_us, bmax > smax ? bmax : smax, MSUP_RELAXED);
    atomic_store_explicit(&dst->hist_octaves, LOAD(base->hist_octaves) | LOAD(src->hist_octaves), MSUP_RELAXED);
    /* The newest last error survives the fold. */
    msup_last_error_t b, s;
    bool hb = msup_last_error_read(&base->last_error, &b);
    bool hs = msup_last_error_read(&src->last_error, &s);
    const msup_last_error_t *keep = (hs && (!hb || s.time_ns >= b.time_ns)) ? &s : (hb ? &b : NULL);
    if (keep != NULL && keep->time_ns != 0) {
        msup_last_error_write(&dst->last_error, keep->fail_class, keep->domain, keep->code, keep->message);
        dst->last_error.time_ns = keep->time_ns;
    }
}

uint64_t msup_hist_quantile(const uint64_t *hist, uint64_t count, uint64_t max, double q)
{
    if (count == 0)
        return 0;
    if (q <= 0)
        q = 0;
    if (q > 1)
        q = 1;
    uint64_t rank = (uint64_t)(q * (double)count + 0.5);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < MSUP_HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank) {
            /* The bucket's upper edge (inclusive value: upper - 1), never above the true max. */
            uint64_t v = i < MSUP_HIST_SUB ? i : msup_hist_upper(i) - 1;
            return v < max ? v : max;
        }
    }
    return max;
}

uint64_t msup_totals_failures(const msup_totals_t *t)
{
    uint64_t n = 0;
    for (int i = 0; i < MSUP_FAIL__COUNT; i++)
        n += t->failures[i];
    return n;
}

uint64_t msup_totals_ops(const msup_totals_t *t)
{
    return t->ops[MSUP_OP_READ] + t->ops[MSUP_OP_WRITE] + t->ops[MSUP_OP_COMMAND];
}
