/* tools_fixture.h: a segment filled by hand with known values, for the monitor, ctl, metrics tests and the render benchmark. */
#ifndef MONGOSUP_TESTS_TOOLS_FIXTURE_H
#define MONGOSUP_TESTS_TOOLS_FIXTURE_H

#include <stdbool.h>
#include <sys/types.h>

#include "segment.h"
#include "stats.h"

/* The known values (see tools_fixture.c for the full picture). */
#define FX_ENV              "production"
#define FX_UPTIME_S         3725u           /* 1h02m05s */
#define FX_USERS_SINCE_S    65u             /* 1m05s */
#define FX_USERS_RTT_US     1500u
#define FX_ORDERS_RTT_US    250000u
#define FX_BILLING_ERROR    "No suitable servers found: mongodb://app:***@db3.example:27017"
#define FX_BILLING_CHECK_ERROR "connection refused calling hello on 'db3.example:27017'"
#define FX_EXITED_PID       4242
/* Slow-operation rings: slot 0 on users one slow find (FX_SLOW_US), slot 1
 * on billing one failed insert; the retired totals count 4 more slow
 * operations on users. */
#define FX_SLOW_US          532000u
#define FX_USERS_SLOW_OPS   5u

/* Creates the segment `name` (4 clusters of capacity, 8 workers) and fills
 * it: clusters users (UP), orders (DEGRADED), billing (DOWN), a REMOVED row
 * "legacy"; worker slots 0 and 1 ACTIVE (pid = worker_pid), slot 2 EXITED;
 * retired totals.  The supervisor fields name sup_pid (0: none) with a fresh
 * heartbeat. */
bool fx_create(const char *name, pid_t sup_pid, pid_t worker_pid, msup_segment_t *seg);

/* Publishes a supervisor: pid, its start time, a fresh heartbeat. */
void fx_set_supervisor(msup_segment_t *seg, pid_t pid);
/* Refreshes the heartbeat (a test that runs a while keeps "alive" true). */
void fx_heartbeat(msup_segment_t *seg);

/* Creates a big segment (workers x clusters, all ACTIVE and UP) with
 * traffic in every slot: the benchmark's shape. */
bool fx_create_big(const char *name, uint32_t workers, uint32_t clusters, msup_segment_t *seg);

/* Path of a built tool ("mongosup-top", "mongosupctl"). */
const char *fx_tool(const char *tool);

/* Runs a shell command, captures stdout (and stderr when with_stderr) into a
 * malloc'd string; returns the exit status (or -1) in *status. */
char *fx_run(const char *cmd, bool with_stderr, int *status);

#endif
