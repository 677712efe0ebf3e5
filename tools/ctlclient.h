/* ctlclient.h: mongosupctl's side of the control socket: connect, check who answers, send one request, read the verdict. */
#ifndef MONGOSUP_TOOLS_CTLCLIENT_H
#define MONGOSUP_TOOLS_CTLCLIENT_H

#include <stdbool.h>

#include "mongosup.h"

typedef enum {
    MSUP_CTL_ANSWER_OK,       /* the verdict line was "ok ..." */
    MSUP_CTL_ANSWER_ERROR,    /* "error ...": the supervisor refused or failed (credentials included) */
    MSUP_CTL_NO_LISTENER,     /* no socket file, or nothing listens on it */
    MSUP_CTL_FAILED,          /* permission denied, an untrusted peer, a timeout, a broken answer */
} msup_ctl_status_t;

typedef struct msup_ctl_answer {
    char *lines;              /* lines before the verdict, each ending in '\n' (control characters escaped); malloc'd */
    char verdict[512];        /* the verdict line without its "ok " or "error " */
} msup_ctl_answer_t;

/*
 * Sends `request` (one line, no newline) to the supervisor listening on
 * path and reads its answer within timeout_ms.  The process that answers
 * must run as root, as the caller's euid, or as the owner of the socket's
 * directory (when that directory is not writable by group or others):
 * anyone else could only be a squatter.  Statuses other than the two
 * ANSWER ones come with a one-line reason in error; answer->lines is
 * always freed by msup_ctl_answer_free.
 */
msup_ctl_status_t msup_ctl_request(const char *path, const char *request, unsigned timeout_ms,
                                   msup_ctl_answer_t *answer, mongosup_error_t *error);

void msup_ctl_answer_free(msup_ctl_answer_t *answer);

#endif
