/* error.h: filling mongosup_error_t in one line per failure path. */
#ifndef MONGOSUP_ERROR_H
#define MONGOSUP_ERROR_H

#include <stdarg.h>
#include <stdbool.h>

#include "mongosup.h"

/* Fills error (if not NULL) with a MONGOSUP_ERROR_MONGOSUP code and a
 * printf-style message; returns false so that a failure path is one line:
 *     return msup_fail(error, MONGOSUP_E_SEGMENT, "segment %s: %s", name, why);  */
bool msup_fail(mongosup_error_t *error, mongosup_error_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same, for an OS call that set errno: appends strerror and keeps errno. */
bool msup_fail_errno(mongosup_error_t *error, mongosup_error_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Converts a driver error (bson_error_t) into MONGOSUP_E_DRIVER. */
bool msup_fail_driver(mongosup_error_t *error, const bson_error_t *driver, const char *what);

void msup_error_clear(mongosup_error_t *error);

#endif
