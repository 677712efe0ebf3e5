/* classify.h: driver errors to failure classes, command names to operation classes (internal). */
#ifndef MONGOSUP_CLASSIFY_H
#define MONGOSUP_CLASSIFY_H

#include <stdbool.h>

#include <mongoc/mongoc.h>

#include "layout.h"

/* The failure class of a driver error (error API version 2 domains). */
enum msup_fail_class msup_classify_error(const bson_error_t *error);

/* The same for a failed command that took duration_us: the driver reports a
 * socket timeout and a closed socket with the same domain, code and text
 * ("socket error or timeout"), so a STREAM/SOCKET failure that lasted about
 * socketTimeoutMS (95% or more) is a timeout, an earlier one a network error. */
enum msup_fail_class msup_classify_failed_command(const bson_error_t *error, uint64_t duration_us,
                                                  uint32_t socket_timeout_ms);

/* The operation class of a command: read, write or command. */
enum msup_op_class msup_classify_command(const char *command_name);

/* True for failures that a retry may cure: network errors, the
 * NotWritablePrimary / ShutdownInProgress family of server codes, and
 * replies labelled RetryableWriteError or TransientTransactionError.
 * reply may be NULL or empty. */
bool msup_error_is_transient(const bson_error_t *error, const bson_t *reply);


#endif
