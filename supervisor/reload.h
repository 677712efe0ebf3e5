/* reload.h: applying a configuration to the segment (at start, on SIGHUP and on the control socket's reload). */
#ifndef MONGOSUPD_RELOAD_H
#define MONGOSUPD_RELOAD_H

#include <stdbool.h>

#include "supervisor.h"

/* Applies cfg to the cluster table and the checkers: clusters added (row
 * ACTIVE, checker started), removed (row REMOVED, checker stopped) or
 * changed; then bumps config_generation.  Takes ownership of cfg on
 * success (the old one is destroyed).  On failure (the segment does not
 * fit) logs which restart is needed, changes nothing, returns false with
 * the reason in error and leaves cfg to the caller. */
bool msup_config_apply(msup_sup_t *sup, mongosup_config_t *cfg, mongosup_error_t *error);

/* Loads the file again and applies it; `cause` ("SIGHUP", the control
 * socket's peer) goes into the log.  An invalid file is logged (file:line,
 * redacted), the running configuration stays, and false is returned with
 * the same one-line reason in error (may be NULL). */
bool msup_reload(msup_sup_t *sup, const char *cause, mongosup_error_t *error);

#endif
