/* tools_promcheck.h: a strict checker of the Prometheus text exposition (0.0.4) for the tools' tests. */
#ifndef MONGOSUP_TESTS_TOOLS_PROMCHECK_H
#define MONGOSUP_TESTS_TOOLS_PROMCHECK_H

#include <stdbool.h>
#include <stddef.h>

/* Checks the syntax (HELP/TYPE lines, metric and label names, label value
 * escapes, values), that each family is declared once with a TYPE before its
 * samples and its samples are contiguous, that no series repeats, that
 * counters end in _total, and that every histogram has ascending `le`
 * bounds, non-decreasing cumulative counts ending with +Inf equal to
 * _count, and a _sum.  On failure, why holds the line and the reason. */
bool prom_check(const char *text, char *why, size_t why_len);

/* The value of the series written exactly as `series` (name{labels}), or NULL.
 * Returns a pointer into a static buffer. */
const char *prom_value(const char *text, const char *series);

#endif
