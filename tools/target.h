/* target.h: which segment a tool talks to (-n NAME, -c FILE [-e ENV], or MONGOSUP_SEGMENT). */
#ifndef MONGOSUP_TOOLS_TARGET_H
#define MONGOSUP_TOOLS_TARGET_H

#include <stdbool.h>
#include <stddef.h>

#include "mongosup.h"

typedef struct msup_target {
    const char *segment;     /* -n */
    const char *config_path; /* -c */
    const char *environment; /* -e */
} msup_target_t;

/* Resolves the segment name into out: -n wins, then the configuration file
 * (its segment name for the environment), then $MONGOSUP_SEGMENT.  Fails
 * with a one-line reason (an invalid configuration gives its file:line). */
bool msup_target_resolve(const msup_target_t *target, char *out, size_t n, mongosup_error_t *error);

#endif
