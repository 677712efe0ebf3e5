/* classify.c: driver errors to failure classes, command names to operation classes. */
#include <strings.h>

#include "classify.h"

enum msup_fail_class msup_classify_error(const bson_error_t *error)
{
    switch (error->domain) {
    case MONGOC_ERROR_STREAM:
        return MSUP_FAIL_NETWORK;
    case MONGOC_ERROR_PROTOCOL:
        return error->code == MONGOC_ERROR_PROTOCOL_INVALID_REPLY ? MSUP_FAIL_NETWORK : MSUP_FAIL_OTHER;
    case MONGOC_ERROR_SERVER_SELECTION:
        return MSUP_FAIL_SERVER_SELECTION;
    case MONGOC_ERROR_CLIENT:
        return error->code == MONGOC_ERROR_CLIENT_AUTHENTICATE ? MSUP_FAIL_AUTH : MSUP_FAIL_OTHER;
    case MONGOC_ERROR_SERVER:
    case MONGOC_ERROR_WRITE_CONCERN:
        return MSUP_FAIL_SERVER;
    default:
        return MSUP_FAIL_OTHER;
    }
}

enum msup_fail_class msup_classify_failed_command(const bson_error_t *error, uint64_t duration_us,
                                                  uint32_t socket_timeout_ms)
{
    if (error->domain == MONGOC_ERROR_STREAM && error->code == MONGOC_ERROR_STREAM_SOCKET && socket_timeout_ms > 0 &&
        duration_us * 20 >= (uint64_t)socket_timeout_ms * 1000 * 19)
        return MSUP_FAIL_TIMEOUT;
    return msup_classify_error(error);
}

/* Runs on every command (APM): the first letter settles most names (ping,
 * hello, endSessions...) without a single string compare. */
enum msup_op_class msup_classify_command(const char *name)
{
    if (name == NULL)
        return MSUP_OP_COMMAND;
    switch (name[0] | 0x20) { /* ASCII lower case */
    case 'i':
        return strcasecmp(name, "insert") == 0 ? MSUP_OP_WRITE : MSUP_OP_COMMAND;
    case 'u':
        return strcasecmp(name, "update") == 0 ? MSUP_OP_WRITE : MSUP_OP_COMMAND;
    case 'd':
        if (strcasecmp(name, "delete") == 0)
            return MSUP_OP_WRITE;
        return strcasecmp(name, "distinct") == 0 ? MSUP_OP_READ : MSUP_OP_COMMAND;
    case 'f':
        if (strcasecmp(name, "find") == 0)
            return MSUP_OP_READ;
        return strcasecmp(name, "findAndModify") == 0 ? MSUP_OP_WRITE : MSUP_OP_COMMAND;
    case 'b':
        return strcasecmp(name, "bulkWrite") == 0 ? MSUP_OP_WRITE : MSUP_OP_COMMAND;
    case 'g':
        return strcasecmp(name, "getMore") == 0 || strcasecmp(name, "geoNear") == 0 ? MSUP_OP_READ
                                                                                    : MSUP_OP_COMMAND;
    case 'a':
        return strcasecmp(name, "aggregate") == 0 ? MSUP_OP_READ : MSUP_OP_COMMAND;
    case 'c':
        return strcasecmp(name, "count") == 0 ? MSUP_OP_READ : MSUP_OP_COMMAND;
    case 'm':
        return strcasecmp(name, "mapReduce") == 0 ? MSUP_OP_READ : MSUP_OP_COMMAND;
    case 'l':
        return strcasecmp(name, "listCollections") == 0 || strcasecmp(name, "listIndexes") == 0 ||
                       strcasecmp(name, "listDatabases") == 0
                   ? MSUP_OP_READ
                   : MSUP_OP_COMMAND;
    default:
        return MSUP_OP_COMMAND;
    }
}

/* Server codes of the NotWritablePrimary / ShutdownInProgress family and
 * the network-flavoured server errors that the retryable-writes spec lists. */
static const int32_t transient_codes[] = {
    6,     /* HostUnreachable */
    7,     /* HostNotFound */
    89,    /* NetworkTimeout */
    91,    /* ShutdownInProgress */
    189,   /* PrimarySteppedDown */
    262,   /* ExceededTimeLimit */
    9001,  /* SocketException */
    10107, /* NotWritablePrimary */
    11600, /* InterruptedAtShutdown */
    11602, /* InterruptedDueToReplStateChange */
    13435, /* NotPrimaryNoSecondaryOk */
    13436, /* NotPrimaryOrSecondary */
};

bool msup_error_is_transient(const bson_error_t *error, const bson_t *reply)
{
    if (reply != NULL && !bson_empty(reply) &&
        (mongoc_error_has_label(reply, "RetryableWriteError") ||
         mongoc_error_has_label(reply, "TransientTransactionError")))
        return true;
    if (error == NULL || error->code == 0)
        return false;
    enum msup_fail_class cls = msup_classify_error(error);
    if (cls == MSUP_FAIL_NETWORK || cls == MSUP_FAIL_TIMEOUT)
        return true;
    if (error->domain == MONGOC_ERROR_SERVER || error->domain == MONGOC_ERROR_WRITE_CONCERN) {
        for (size_t i = 0; i < sizeof transient_codes / sizeof transient_codes[0]; i++) {
            if ((int32_t)error->code == transient_codes[i])
                return true;
        }
    }
    return false;
}
