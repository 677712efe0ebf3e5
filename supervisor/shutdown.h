/* shutdown.h: the coordinated, phased shutdown (DRAINING -> STOPPING -> STOPPED). */
#ifndef MONGOSUPD_SHUTDOWN_H
#define MONGOSUPD_SHUTDOWN_H

#include "supervisor.h"

/* Runs every phase and returns mongosupd's exit status.  reason is logged. */
int msup_shutdown_run(msup_sup_t *sup, const char *reason);

/* Parses "term-kill", "kill", "none". */
typedef enum msup_escalate { MSUP_ESCALATE_TERM_KILL, MSUP_ESCALATE_KILL, MSUP_ESCALATE_NONE } msup_escalate_t;
msup_escalate_t msup_escalate_parse(const char *name);

#endif
