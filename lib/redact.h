/* redact.h: credential-free text for logs, errors and the monitor (internal). */
#ifndef MONGOSUP_REDACT_H
#define MONGOSUP_REDACT_H

#include <stddef.h>

/* Copies the free text in (a driver error message, a log line) into out
 * (n bytes, always NUL-terminated, truncated if needed) with every
 * "user:password@" turned into "user:***@" and the values of the URI options
 * that carry secrets (any option whose name contains "password", and
 * authMechanismProperties) turned into "***".  in and out must not overlap.
 * Async-signal-unsafe only in the sense that it is not reentrant on shared
 * buffers: it allocates nothing and takes no lock. */
void msup_redact_text(const char *in, char *out, size_t n);

#endif
