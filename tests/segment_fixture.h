/* segment_fixture.h: a fresh, uniquely named segment with published cluster rows, for unit tests. */
#ifndef MONGOSUP_SEGMENT_FIXTURE_H
#define MONGOSUP_SEGMENT_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "segment.h"

/* Creates "/msup-test-<pid>-<tag>" with workers slots and clusters rows, and
 * publishes the rows named in names (NULL-terminated) as ACTIVE, in order. */
bool msup_test_segment_setup(const char *tag, uint32_t workers, uint32_t clusters, const char *const *names,
                             msup_segment_t *seg);

/* Unmaps and removes it. */
void msup_test_segment_teardown(msup_segment_t *seg);

#endif
