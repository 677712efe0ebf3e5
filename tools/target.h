/* target.h: which segment a tool talks to (-n NAME, -c FILE [-e ENV], or MONGOSUP_SEGMENT). */
#ifndef MONGOSUP_TOOLS_TARGET_H
#define MONGOSUP_TOOLS_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mongosup.h"

typedef struct msup_target {
    const char *segment;     /* -n */
    const char *config_path; /* -c */
    const char *environment; /* -e */
} msup_target_t;

/* Resolves the segment name into out: -n wins, then the configuration file
 * (its segment name for the environment), then $MONGOSUP_SEGMENT.  *owner
 * is the configuration's segment.owner ((uid_t)-1 without one): the only
 * owner besides us and root that the tools accept.  Fails with a one-line
 * reason (an invalid configuration gives its file:line). */
bool msup_target_resolve(const msup_target_t *target, char *out, size_t n, uid_t *owner, mongosup_error_t *error);

#endif
