/* log.h: mongosupd's log: syslog levels, one line per event, stderr or syslog. */
#ifndef MONGOSUPD_LOG_H
#define MONGOSUPD_LOG_H

#include <stdbool.h>
#include <syslog.h>

/* Where lines go and the most verbose level kept (LOG_ERR..LOG_DEBUG).
 * Safe to call again on reload. */
void msup_log_open(bool use_syslog, int max_level);
void msup_log_set_level(int max_level);
int msup_log_level(void);
bool msup_log_to_syslog(void);
void msup_log_close(void);

/* One event, one line.  Callers pass only redacted text (URIs come from
 * uri_display); the driver's messages are redacted here, see log.c. */
void msup_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Routes mongo-c-driver's log (mongoc_log_set_handler) into msup_log. */
void msup_log_route_driver(void);

/* Parses "err", "warning", "notice", "info", "debug" (and a few aliases). */
bool msup_log_parse_level(const char *name, int *level);

#endif
