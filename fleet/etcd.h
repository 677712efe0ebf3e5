/* etcd.h: the few etcd v3 calls the fleet needs, over etcd's HTTP/JSON gateway (libcurl + json-c). */
#ifndef MONGOSUP_FLEET_ETCD_H
#define MONGOSUP_FLEET_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/config.h"

typedef enum {
    MSUP_ETCD_OK,
    MSUP_ETCD_UNREACHABLE, /* no endpoint answered in time (or without quorum): the caller retries */
    MSUP_ETCD_LEASE_GONE,  /* the lease expired or was revoked */
    MSUP_ETCD_REFUSED,     /* etcd answered with an error: credentials, permissions, a bad request */
} msup_etcd_status_t;

typedef struct msup_etcd msup_etcd_t;

typedef struct msup_etcd_kv {
    char key[256];
    char value[512];     /* decoded; a longer value is marked too_long, not truncated silently */
    bool too_long;
    int64_t mod_revision;
    int64_t lease;
} msup_etcd_kv_t;

typedef struct msup_etcd_range {
    msup_etcd_kv_t *kvs;
    size_t count;
    int64_t revision;    /* the store's revision when it was read */
} msup_etcd_range_t;

/* A client for the endpoints, TLS files and credentials of the fleet
 * group (copied).  NULL with a reason when libcurl cannot start. */
msup_etcd_t *msup_etcd_new(const msup_fleet_cfg_t *fleet, char *why, size_t why_len);
void msup_etcd_free(msup_etcd_t *e);

/* A reload: e takes from's endpoints, request timeout, credentials and TLS
 * files (and forgets its token: the next request authenticates), then
 * from is freed.  e's request counter stays.  The thread that uses e only. */
void msup_etcd_take_settings(msup_etcd_t *e, msup_etcd_t *from);

/* The last failure in one line (no secret, no request body). */
const char *msup_etcd_error(const msup_etcd_t *e);

/* Patient: an authentication (needed first, and again when etcd forgot the
 * token) may take 4 request timeouts instead of one.  For a caller that
 * holds no lease, whose deadline nothing waits on. */
void msup_etcd_set_patient(msup_etcd_t *e, bool patient);

/* HTTP requests sent so far (any thread). */
uint64_t msup_etcd_requests(msup_etcd_t *e);

msup_etcd_status_t msup_etcd_lease_grant(msup_etcd_t *e, uint32_t ttl_s, int64_t *lease);
/* *ttl_left: seconds the server gives the lease from now. */
msup_etcd_status_t msup_etcd_lease_keepalive(msup_etcd_t *e, int64_t lease, int64_t *ttl_left);
msup_etcd_status_t msup_etcd_lease_revoke(msup_etcd_t *e, int64_t lease);

/* Every key under prefix + "/" (the caller frees with msup_etcd_range_free). */
msup_etcd_status_t msup_etcd_range_prefix(msup_etcd_t *e, const char *prefix, msup_etcd_range_t *out);
void msup_etcd_range_free(msup_etcd_range_t *r);

/* Puts key = value attached to lease.  guard_revision > 0 makes it a
 * transaction: applied only when no key under guard_prefix + "/" was
 * created or modified after guard_revision (*applied tells). */
msup_etcd_status_t msup_etcd_put(msup_etcd_t *e, const char *key, const char *value, int64_t lease,
                                 const char *guard_prefix, int64_t guard_revision, bool *applied);

#endif
