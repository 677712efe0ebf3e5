/* control_path.h: where mongosupd's control socket lives: one rule shared by mongosupd and mongosupctl. */
#ifndef MONGOSUPD_CONTROL_PATH_H
#define MONGOSUPD_CONTROL_PATH_H

#include <stdbool.h>
#include <stddef.h>

#include "mongosup.h"

/* sizeof ((struct sockaddr_un *)0)->sun_path, NUL included. */
#define MSUP_CONTROL_PATH_MAX 108

/* The directory mongosupd creates (0755, root) when the default path is
 * under it and it is missing. */
#define MSUP_CONTROL_RUN_DIR "/run/mongosup"

/*
 * Resolves the control socket's path into out (n >= MSUP_CONTROL_PATH_MAX):
 *   1. `configured` (supervisor.control_socket) when not NULL;
 *   2. else, when `pidfile` (the file's supervisor.pidfile) is not NULL:
 *      <directory of the pidfile>/<segment name without '/'>.sock;
 *   3. else, when the caller is root or owns /run/mongosup (systemd's
 *      RuntimeDirectory=mongosup): /run/mongosup/<segment>.sock;
 *   4. else /tmp/mongosup-<euid>/<segment>.sock.
 * *creatable_dir (may be NULL) tells whether the directory is one that
 * mongosupd may create when missing (root for case 3, anyone for case 4).  Fails with a one-line reason when
 * the result does not fit in a socket address.
 */
bool msup_control_path_resolve(const char *configured, const char *pidfile, const char *segment, char *out,
                               size_t n, bool *creatable_dir, mongosup_error_t *error);

#endif
