/* error.c: one-line failure helpers for mongosup_error_t. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "textsafe.h"

static void fill(mongosup_error_t *error, uint32_t domain, uint32_t code, const char *fmt, va_list ap)
{
    error->domain = domain;
    error->code = code;
    error->driver_domain = 0;
    error->driver_code = 0;
    /* Valid UTF-8, never half a character at a cut (textsafe.h). */
    msup_text_vformat(error->message, sizeof error->message, fmt, ap);
}

bool msup_fail(mongosup_error_t *error, mongosup_error_code_t code, const char *fmt, ...)
{
    if (error == NULL)
        return false;
    va_list ap;
    va_start(ap, fmt);
    fill(error, MONGOSUP_ERROR_MONGOSUP, code, fmt, ap);
    va_end(ap);
    return false;
}

bool msup_fail_errno(mongosup_error_t *error, mongosup_error_code_t code, const char *fmt, ...)
{
    int saved = errno;
    if (error == NULL)
        return false;
    va_list ap;
    va_start(ap, fmt);
    fill(error, MONGOSUP_ERROR_MONGOSUP, code, fmt, ap);
    va_end(ap);
    size_t len = strlen(error->message);
    snprintf(error->message + len, sizeof error->message - len, ": %s", strerror(saved));
    msup_text_cut_tail(error->message);
    error->driver_code = (uint32_t)saved;
    errno = saved;
    return false;
}

bool msup_fail_driver(mongosup_error_t *error, const bson_error_t *driver, const char *what)
{
    if (error == NULL)
        return false;
    error->domain = MONGOSUP_ERROR_DRIVER;
    error->code = MONGOSUP_E_DRIVER;
    error->driver_domain = driver->domain;
    error->driver_code = driver->code;
    /* Each part cut on a character boundary, so the suffix always fits. */
    char w[101], m[361];
    msup_text_copy(w, sizeof w, what, sizeof w - 1);
    msup_text_copy(m, sizeof m, driver->message, sizeof driver->message);
    snprintf(error->message, sizeof error->message, "%s: %s (domain %u, code %u)", w, m, driver->domain,
             driver->code);
    return false;
}

void msup_error_clear(mongosup_error_t *error)
{
    if (error != NULL)
        memset(error, 0, sizeof *error);
}
