/* record.h: what an operation or a pool event adds to a worker's cluster slot, for the mongoc path and the driver-neutral API alike (internal). */
#ifndef MONGOSUP_RECORD_H
#define MONGOSUP_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "layout.h"

struct msup_wcluster;

/*
 * One copy of the counting rules, so that an operation reported by another
 * driver (neutral.c) lands in the slot exactly as one that mongo-c-driver's
 * APM events report (apm.c, checkout.c).  All of these are relaxed atomic
 * adds on the worker's own slot: no lock, no syscall, no allocation.
 */

/* A command that succeeded: its class and latency; a half-open trial that
 * succeeds proves the server (failfast.c).  True when it was slow (at least
 * the cluster's slow_op_ms): the caller may put it in the slow-operation
 * ring, with what it knows of the command (apm.c). */
bool msup_record_op_ok(struct msup_wcluster *c, enum msup_op_class cls, uint64_t us);

/* A command that failed: its class and latency, and the failure (below);
 * returns the class counted. */
enum msup_fail_class msup_record_op_failed(struct msup_wcluster *c, enum msup_op_class cls, uint64_t us,
                                           enum msup_fail_class fail, uint32_t domain, uint32_t code,
                                           const char *message);

/* A failure of class `fail`: network, timeout and selection failures while
 * the cluster is DOWN count as circuit_open (failfast.c); the message is
 * redacted here and kept as the slot's last error. */
enum msup_fail_class msup_record_failure(struct msup_wcluster *c, enum msup_fail_class fail, uint32_t domain,
                                         uint32_t code, const char *message);

/* A checkout has to wait for a client; at_max: max_pool_size are out. */
void msup_record_checkout_wait(struct msup_wcluster *c, bool at_max);

/* A checkout ended: waited_us is what it waited (counted when `waited`);
 * timeout_message NULL: it got a client (not counted yet: see
 * msup_record_checkout_granted), else it timed out with that reason. */
void msup_record_checkout_end(struct msup_wcluster *c, bool waited, uint64_t waited_us, const char *timeout_message);

/* The client is the application's (a new one has connected). */
void msup_record_checkout_granted(struct msup_wcluster *c);

#endif
