/* stats.h: the record path (relaxed atomic adds on the worker's own slot) and histogram maths. */
#ifndef MONGOSUP_STATS_H
#define MONGOSUP_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "layout.h"

/* Bucket of a latency in microseconds (see layout.h: log-linear, 32 per octave). */
static inline uint32_t msup_hist_index(uint64_t us)
{
    if (us < MSUP_HIST_SUB)
        return (uint32_t)us;
    uint32_t msb = 63u - (uint32_t)__builtin_clzll(us);
    uint32_t octave = msb - (MSUP_HIST_SUB_BITS - 1); /* 1 for [32,64) */
    if (octave >= MSUP_HIST_OCTAVES)
        return MSUP_HIST_BUCKETS - 1;
    uint32_t sub = (uint32_t)(us >> (msb - MSUP_HIST_SUB_BITS)) - MSUP_HIST_SUB;
    return octave * MSUP_HIST_SUB + sub;
}

/* Smallest value of bucket i, and the first value of the next bucket. */
uint64_t msup_hist_lower(uint32_t i);
uint64_t msup_hist_upper(uint32_t i);

#define MSUP_RELAXED memory_order_relaxed

/* Records one finished command: its class and latency.  Three relaxed adds
 * on lines only this process writes; no lock, no syscall; several threads
 * of the owning worker may call it at once.  The max and the octave mask
 * are loads in the common case. */
static inline void msup_stats_record_op(msup_stats_t *s, enum msup_op_class cls, uint64_t us)
{
    uint32_t b = msup_hist_index(us);
    uint32_t bit = 1u << (b / MSUP_HIST_SUB);
    atomic_fetch_add_explicit(&s->ops[cls], 1, MSUP_RELAXED);
    atomic_fetch_add_explicit(&s->hist[b], 1, MSUP_RELAXED);
    atomic_fetch_add_explicit(&s->hist_sum_us, us, MSUP_RELAXED);
    /* Plain loads first: the common case writes nothing more. */
    if (!(atomic_load_explicit(&s->hist_octaves, MSUP_RELAXED) & bit))
        atomic_fetch_or_explicit(&s->hist_octaves, bit, MSUP_RELAXED);
    uint64_t max = atomic_load_explicit(&s->hist_max_us, MSUP_RELAXED);
    while (us > max &&
           !atomic_compare_exchange_weak_explicit(&s->hist_max_us, &max, us, MSUP_RELAXED, MSUP_RELAXED))
        ;
}

/* The record path of an operation with the slow-operation log: the record,
 * then one comparison with the threshold (UINT64_MAX when the log is off);
 * true when the operation goes to the ring (slowlog.h).  The cost over
 * msup_stats_record_op is measured by bench/slowlog_bench. */
static inline bool msup_stats_record_op_slow(msup_stats_t *s, enum msup_op_class cls, uint64_t us,
                                             const _Atomic uint64_t *slow_us)
{
    msup_stats_record_op(s, cls, us);
    return __builtin_expect(us >= atomic_load_explicit(slow_us, MSUP_RELAXED), 0);
}

static inline void msup_stats_count(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_fetch_add_explicit(counter, n, MSUP_RELAXED);
}

static inline void msup_stats_gauge(_Atomic int64_t *gauge, int64_t delta)
{
    atomic_fetch_add_explicit(gauge, delta, MSUP_RELAXED);
}

/* Counts a failure of a class and remembers it as the last error (message
 * redacted by the caller).  Never blocks: when another thread of the worker
 * is writing the record, the text is skipped (the count is not). */
void msup_stats_record_failure(msup_stats_t *s, enum msup_fail_class cls, uint32_t domain, uint32_t code,
                               const char *message);

/* Writes / reads a last-error record under its sequence lock. */
void msup_last_error_write(msup_last_error_t *rec, enum msup_fail_class cls, uint32_t domain, uint32_t code,
                           const char *message);
bool msup_last_error_read(const msup_last_error_t *rec, msup_last_error_t *out);

/* A plain (non-atomic) copy of msup_stats_t used by readers and folds. */
typedef struct msup_totals {
    int64_t pool_in_use, pool_idle, pool_created, pool_max, budget_tokens;
    uint64_t checkouts, checkout_waits, checkout_wait_us, checkout_timeouts, max_reached, budget_waits;
    uint64_t clients_created, clients_destroyed;
    uint64_t ops[MSUP_OP__COUNT];
    uint64_t failures[MSUP_FAIL__COUNT];
    uint64_t retries, reconnects;
    uint64_t slow_ops;                 /* msup_stats_t.slowlog.slow_ops */
    uint64_t hist_count, hist_sum_us, hist_max_us;
    uint64_t hist[MSUP_HIST_BUCKETS];
} msup_totals_t;

/* dst += src (counters and histogram; gauges too when with_gauges). */
void msup_totals_add(msup_totals_t *dst, const msup_stats_t *src, bool with_gauges);
/* Folds src's counters (not gauges) into a retired record: dst = base + src. */
void msup_stats_fold(msup_stats_t *dst, const msup_stats_t *base, const msup_stats_t *src);
/* Value at quantile q (0..1) from a histogram, as the upper bound of its bucket capped by max. */
uint64_t msup_hist_quantile(const uint64_t *hist, uint64_t count, uint64_t max, double q);
uint64_t msup_totals_failures(const msup_totals_t *t);
uint64_t msup_totals_ops(const msup_totals_t *t);

#endif
