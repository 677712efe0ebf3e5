/* shmname.h: the one validator of shared-memory segment names, and the names derived from them. */
#ifndef MONGOSUP_SHMNAME_H
#define MONGOSUP_SHMNAME_H

#include <stdbool.h>
#include <stddef.h>

#include "mongosup.h"

/* Suffix of the worker-writable stats segment beside the control segment
 * named in the configuration ("/mongosup.app" -> "/mongosup.app.stats"). */
#define MSUP_STATS_SUFFIX ".stats"

/*
 * Checks a configured segment name: it starts with '/', holds no other '/',
 * is not "/." or "/..", holds only printable ASCII without spaces, and
 * leaves room for MSUP_STATS_SUFFIX within MSUP_NAME_MAX (NUL included).
 * Returns false with a one-line reason (the name escaped) otherwise.
 */
bool msup_shm_name_check(const char *name, mongosup_error_t *error);

/* Writes the stats segment's name for a (checked) control name; false when
 * it does not fit in n bytes. */
bool msup_shm_stats_name(const char *name, char *out, size_t n);

#endif
