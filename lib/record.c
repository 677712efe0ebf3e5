/* record.c: operations and pool events into a worker's cluster slot, shared by the mongoc path and the driver-neutral API. */
#include "record.h"

#include "error.h"
#include "redact.h"
#include "stats.h"
#include "worker.h"

bool msup_record_op_ok(msup_wcluster_t *c, enum msup_op_class cls, uint64_t us)
{
    /* The only cost of the slow-operation log for an operation that is not
     * slow: one comparison (slow_us is UINT64_MAX when the log is off). */
    bool slow = msup_stats_record_op_slow(msup_wcluster_stats(c), cls, us, &c->slow_us);
    msup_failfast_note_success(&c->failfast);
    return slow;
}

enum msup_fail_class msup_record_failure(msup_wcluster_t *c, enum msup_fail_class fail, uint32_t domain,
                                         uint32_t code, const char *message)
{
    char redacted[MSUP_ERRMSG_MAX];
    msup_redact_text(message != NULL ? message : "", redacted, sizeof redacted);
    fail = msup_failfast_reclass(c, fail);
    msup_stats_record_failure(msup_wcluster_stats(c), fail, domain, code, redacted);
    return fail;
}

enum msup_fail_class msup_record_op_failed(msup_wcluster_t *c, enum msup_op_class cls, uint64_t us,
                                           enum msup_fail_class fail, uint32_t domain, uint32_t code,
                                           const char *message)
{
    msup_stats_record_op(msup_wcluster_stats(c), cls, us);
    return msup_record_failure(c, fail, domain, code, message);
}

void msup_record_checkout_wait(msup_wcluster_t *c, bool at_max)
{
    msup_stats_t *s = msup_wcluster_stats(c);
    msup_stats_count(&s->checkout_waits, 1);
    if (at_max)
        msup_stats_count(&s->max_reached, 1);
}

void msup_record_checkout_end(msup_wcluster_t *c, bool waited, uint64_t waited_us, const char *timeout_message)
{
    msup_stats_t *s = msup_wcluster_stats(c);
    if (waited)
        msup_stats_count(&s->checkout_wait_us, waited_us);
    if (timeout_message == NULL)
        return;
    msup_stats_count(&s->checkout_timeouts, 1);
    msup_last_error_write(&s->last_error, MSUP_FAIL_TIMEOUT, MONGOSUP_ERROR_MONGOSUP, MONGOSUP_E_POOL_TIMEOUT,
                          timeout_message);
}

void msup_record_checkout_granted(msup_wcluster_t *c)
{
    msup_stats_count(&msup_wcluster_stats(c)->checkouts, 1);
}
