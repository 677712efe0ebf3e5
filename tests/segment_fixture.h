/* segment_fixture.h: a fresh, uniquely named segment with published cluster rows, for unit tests. */
#ifndef MONGOSUP_SEGMENT_FIXTURE_H
#define MONGOSUP_SEGMENT_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "segment.h"

/* Creates "/msup-test-<pid>-<tag>": its stats segment (workers slots,
 * clusters registry rows) and its control segment (claimed: this process
 * holds the lock, as a supervisor would), and publishes the rows named in
 * names (NULL-terminated) as ACTIVE, in order, in both. */
bool msup_test_segment_setup(const char *tag, uint32_t workers, uint32_t clusters, const char *const *names,
                             msup_segment_t *seg);

/* Claims and binds the control segment of an existing stats mapping, as
 * mongosupd would (this process holds the lock until the segment closes). */
bool msup_test_control_attach(msup_segment_t *seg);

/* Opens an existing pair read-write as the supervisor maps it: the stats
 * segment adopted, the control segment mapped read-write without its lock
 * (mongosupd, or this test, holds it); ctl stays NULL when there is none. */
bool msup_test_segment_open_rw(const char *name, msup_segment_t *seg);

/* Publishes cluster cc in control row idx as mongosupd does at start
 * (name, URI, breaker, pool size, budget limits, ACTIVE, counted). */
void msup_test_publish_cluster(msup_segment_t *seg, const msup_cluster_cfg_t *cc, uint32_t idx);

/* Unmaps and removes both. */
void msup_test_segment_teardown(msup_segment_t *seg);

#endif
