/* reload.h: applying a configuration to the segment (at start and on SIGHUP). */
#ifndef MONGOSUPD_RELOAD_H
#define MONGOSUPD_RELOAD_H

#include <stdbool.h>

#include "supervisor.h"

/* Applies cfg to the cluster table and the checkers: clusters added (row
 * ACTIVE, checker started), removed (row REMOVED, checker stopped) or
 * changed; then bumps config_generation.  Takes ownership of cfg on
 * success (the old one is destroyed).  On failure (the segment does not
 * fit) logs which restart is needed, changes nothing, returns false and
 * leaves cfg to the caller. */
bool msup_config_apply(msup_sup_t *sup, mongosup_config_t *cfg);

/* SIGHUP: loads the file again; an invalid file is logged (file:line) and
 * the running configuration stays. */
void msup_reload(msup_sup_t *sup);

#endif
