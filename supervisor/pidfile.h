/* pidfile.h: a pidfile held with an fcntl lock for as long as mongosupd runs. */
#ifndef MONGOSUPD_PIDFILE_H
#define MONGOSUPD_PIDFILE_H

#include <stdbool.h>

#include "mongosup.h"

typedef struct msup_pidfile {
    int fd;        /* -1: none */
    char *path;
} msup_pidfile_t;

/* Creates or takes over path, locks it and writes our pid.  A pidfile whose
 * lock nobody holds is stale (its writer died) and is taken over.  When a
 * live process holds it: false, "another mongosupd (pid N) holds ...". */
bool msup_pidfile_acquire(msup_pidfile_t *pf, const char *path, mongosup_error_t *error);

/* Unlinks and unlocks (only if we hold it). */
void msup_pidfile_release(msup_pidfile_t *pf);

#endif
