/* metrics.h: mongosupd's optional Prometheus endpoint (GET /metrics, libmicrohttpd). */
#ifndef MONGOSUPD_METRICS_H
#define MONGOSUPD_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "segment.h"

/* Starts serving GET /metrics (and HEAD) on `listen`: "HOST:PORT",
 * "[IPv6]:PORT" or ":PORT"/"PORT" (loopback, 127.0.0.1).  HOST may be a
 * name; the first address it resolves to is used.  The server runs its own
 * thread and reads `seg` for each scrape: the segment must stay mapped at
 * the same address until msup_metrics_stop.  One server per process. */
bool msup_metrics_start(const char *listen, const msup_segment_t *seg, mongosup_error_t *err);

/* Families rendered after the segment's on every scrape (mongosupd's
 * fleet, fleet/fleet.h); call before msup_metrics_start, and keep arg
 * alive until msup_metrics_stop.  render returns false on a write error. */
typedef bool (*msup_metrics_extra_fn)(FILE *out, void *arg);
void msup_metrics_set_extra(msup_metrics_extra_fn render, void *arg);

/* Stops the server (waits for its thread); harmless when none runs. */
void msup_metrics_stop(void);

/* The port actually bound (useful with port 0 in tests), or 0. */
unsigned msup_metrics_port(void);

/* Connections the endpoint holds now, and those it ended because they did
 * not send a request in time or the longest waiter had to make room
 * (counted since the process started). */
typedef struct msup_metrics_conns {
    unsigned open;
    uint64_t evicted;
} msup_metrics_conns_t;
msup_metrics_conns_t msup_metrics_conns(void);

#endif
