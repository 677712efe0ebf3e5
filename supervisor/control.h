/* control.h: mongosupd's control socket: a UNIX stream listener checked by peer credentials, served from the main loop. */
#ifndef MONGOSUPD_CONTROL_H
#define MONGOSUPD_CONTROL_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "supervisor.h"

/* Connections served at once; a new one past the cap replaces the oldest
 * that has not sent its request yet. */
#define MSUP_CONTROL_MAX_CONNS 16
/* The request buffer: a line of at most 255 bytes, its newline included. */
#define MSUP_CONTROL_LINE_MAX 256
/* From accept to the last byte of the answer (the command's own run time,
 * a reload for instance, is not counted: it runs between two polls). */
#define MSUP_CONTROL_DEADLINE_MS 2000
/* What msup_control_pollfds may fill. */
#define MSUP_CONTROL_POLLFDS (MSUP_CONTROL_MAX_CONNS + 1)

typedef struct msup_control msup_control_t;

/*
 * Listens on path: its directory must exist (or be creatable_dir, see
 * control_path.h), be owned by us or root and not be writable by group or
 * others; an existing socket of ours that nobody answers on is removed; any
 * other existing file is refused.  The socket is 0600, or 0660 with group
 * `group` ((gid_t)-1: none) for the read-only commands.  Fails with one
 * line and nothing left behind.
 */
bool msup_control_open(const char *path, bool creatable_dir, gid_t group, msup_control_t **out,
                       mongosup_error_t *error);

/* Closes every connection and the listener, and unlinks the path if it is
 * still our socket.  Sets *ctl to NULL; NULL is a no-op. */
void msup_control_close(msup_control_t **ctl);

/* Fills fds (MSUP_CONTROL_POLLFDS entries) with what the control socket
 * waits for and lowers *timeout_ms to the nearest connection deadline.
 * Returns the number of entries; 0 for a NULL ctl. */
size_t msup_control_pollfds(msup_control_t *ctl, struct pollfd *fds, uint32_t *timeout_ms);

/* After poll(2) on those entries: accepts, checks credentials, reads,
 * runs complete requests against sup, writes answers, and closes what is
 * answered or past its deadline.  Never blocks. */
void msup_control_serve(msup_control_t *ctl, const struct pollfd *fds, size_t n, msup_sup_t *sup);

#endif
