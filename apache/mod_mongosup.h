/* mod_mongosup.h: the optional functions that mod_mongosup offers other Apache modules (per-request MongoDB clients). */
#ifndef MOD_MONGOSUP_H
#define MOD_MONGOSUP_H

#include <apr_optional.h>
#include <httpd.h>

#include <mongosup.h>

/*
 * A handler in another module retrieves these with APR_RETRIEVE_OPTIONAL_FN
 * (in its optional_fn_retrieve hook) and gets NULL when mod_mongosup is not
 * loaded.  See docs/apache.md for a complete handler.
 *
 *   mongoc_client_t *c = mongosup_request_checkout(r, "users", &err);
 *   if (c == NULL)
 *       return mongosup_request_refuse(r, &err);   // 503 + Retry-After, or 500
 *   ... use c; on failure: mongosup_request_outcome(r, c, &bson_error);
 *   // no checkin needed: the request pool's cleanup gives c back
 *
 * All of them run in an Apache child, on the request's thread.
 */

/* Checks a client of `cluster` out for the request.  It goes back to the
 * pool when r->pool is cleaned up (the end of the request), with the
 * outcome last reported by mongosup_request_outcome, or at an explicit
 * mongosup_request_checkin.  Fails at once (NULL, error filled) while the
 * cluster is DOWN (MONGOSUP_E_CIRCUIT_OPEN) or the supervisor drains
 * (MONGOSUP_E_SHUTTING_DOWN), like mongosup_checkout; also when the child
 * could not attach (the attach error: MONGOSUP_E_NO_SLOT, ...) or
 * MongosupConfig is not set (MONGOSUP_E_CONFIG). */
APR_DECLARE_OPTIONAL_FN(mongoc_client_t *, mongosup_request_checkout,
                        (request_rec *r, const char *cluster, mongosup_error_t *error));

/* Records the error of the last operation on a checked-out client (NULL:
 * success), counted at the checkin.  A client that is not the request's
 * is ignored. */
APR_DECLARE_OPTIONAL_FN(void, mongosup_request_outcome,
                        (request_rec *r, mongoc_client_t *client, const bson_error_t *outcome));

/* Gives the client back now, with `outcome` (NULL: success); the request
 * pool then has nothing left to do for it. */
APR_DECLARE_OPTIONAL_FN(void, mongosup_request_checkin,
                        (request_rec *r, mongoc_client_t *client, const bson_error_t *outcome));

/* The HTTP status for a failed checkout or run: HTTP_SERVICE_UNAVAILABLE
 * (with a Retry-After header of MongosupRetryAfter seconds in
 * r->err_headers_out) when the cluster is DOWN, the supervisor drains, the
 * pool timed out or the child has no slot; HTTP_INTERNAL_SERVER_ERROR
 * otherwise.  Logs the reason at the request's log level. */
APR_DECLARE_OPTIONAL_FN(int, mongosup_request_refuse, (request_rec *r, const mongosup_error_t *error));

/* The cluster's default database for a checked-out client (NULL: none). */
APR_DECLARE_OPTIONAL_FN(const char *, mongosup_request_database, (request_rec *r, const mongoc_client_t *client));

/* mongosup_run in this child: fn runs with a client of `cluster`, transient
 * failures are retried (docs/api.md).  Same refusals as the checkout. */
APR_DECLARE_OPTIONAL_FN(bool, mongosup_request_run,
                        (request_rec *r, const char *cluster, mongosup_run_fn fn, void *ctx,
                         mongosup_error_t *error));

#endif
