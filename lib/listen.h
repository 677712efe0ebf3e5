/* listen.h: parsing of listen addresses ("host:port", "[v6]:port", ":port", "port"). */
#ifndef MONGOSUP_LISTEN_H
#define MONGOSUP_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#include "mongosup.h"

/* Splits a listen address into host and port strings.  A missing host
 * means loopback (127.0.0.1): an endpoint is never public by accident.
 * Used by the configuration loader (validation) and by mongosupd's /metrics
 * endpoint, so both accept the same forms.  strict (the configuration
 * file) also requires an explicit host and a port in 1..65535; the program
 * interface accepts ":0" for an ephemeral port (tests). */
bool msup_listen_parse(const char *listen, bool strict, char *host, size_t host_len, char *port, size_t port_len,
                       mongosup_error_t *error);

#endif
