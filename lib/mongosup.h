/* mongosup.h: the public API of libmongosup, for prefork servers that use mongo-c-driver. */
#ifndef MONGOSUP_H
#define MONGOSUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MONGOSUP_BUILDING) && defined(__GNUC__)
#define MONGOSUP_API __attribute__((visibility("default")))
#else
#define MONGOSUP_API
#endif

/* Error domains of mongosup_error_t. */
typedef enum mongosup_error_domain {
    MONGOSUP_ERROR_NONE = 0,
    MONGOSUP_ERROR_MONGOSUP = 1, /* code is a mongosup_error_code_t */
    MONGOSUP_ERROR_DRIVER = 2,   /* driver_domain/driver_code hold the bson_error_t's */
} mongosup_error_domain_t;

typedef enum mongosup_error_code {
    MONGOSUP_OK = 0,
    MONGOSUP_E_CONFIG = 1,          /* invalid configuration (message has file:line) */
    MONGOSUP_E_SEGMENT = 2,         /* shared-memory segment missing, foreign or corrupted */
    MONGOSUP_E_UNKNOWN_CLUSTER = 3,
    MONGOSUP_E_CIRCUIT_OPEN = 4,    /* the supervisor marks the cluster DOWN */
    MONGOSUP_E_POOL_TIMEOUT = 5,    /* no client within the wait-queue timeout */
    MONGOSUP_E_SHUTTING_DOWN = 6,   /* the supervisor is draining */
    MONGOSUP_E_FORKED = 7,          /* handle inherited across fork: call mongosup_attach */
    MONGOSUP_E_DRIVER = 8,          /* mongo-c-driver failure */
    MONGOSUP_E_NO_SLOT = 9,         /* every worker slot is taken (max_workers) */
    MONGOSUP_E_INVALID_ARG = 10,
    MONGOSUP_E_SYSTEM = 11,         /* an OS call failed (errno in driver_code) */
} mongosup_error_code_t;

/* Fixed-size error, like bson_error_t; messages never carry a password. */
typedef struct mongosup_error {
    uint32_t domain;        /* mongosup_error_domain_t */
    uint32_t code;          /* mongosup_error_code_t */
    uint32_t driver_domain; /* bson_error_t.domain, for MONGOSUP_E_DRIVER */
    uint32_t driver_code;   /* bson_error_t.code (or errno for MONGOSUP_E_SYSTEM) */
    char message[496];
} mongosup_error_t;

typedef struct mongosup_config mongosup_config_t;
typedef struct mongosup mongosup_t;

/* Loads and validates a configuration file.  environment may be NULL: then
 * MONGOSUP_ENV, else the file's default_environment.  Returns NULL and fills
 * error (with file and line) on any invalid input. */
MONGOSUP_API mongosup_config_t *mongosup_config_load(const char *path, const char *environment,
                                                     mongosup_error_t *error);
MONGOSUP_API void mongosup_config_destroy(mongosup_config_t **config);
MONGOSUP_API const char *mongosup_config_environment(const mongosup_config_t *config);
MONGOSUP_API size_t mongosup_config_cluster_count(const mongosup_config_t *config);
MONGOSUP_API const char *mongosup_config_cluster_name(const mongosup_config_t *config, size_t i);

/* Writes a URI without its credentials into out (always NUL-terminated). */
MONGOSUP_API bool mongosup_uri_redact(const char *uri, char *out, size_t out_len, mongosup_error_t *error);

MONGOSUP_API const char *mongosup_version(void);

#ifdef __cplusplus
}
#endif
#endif
