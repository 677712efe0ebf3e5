/* request.c: the optional functions: a client checked out for a request and checked in by the request pool's cleanup. */
#include <httpd.h> /* first: the other Apache headers need its types */
#include <string.h>

#include <apr_strings.h>
#include <http_log.h>
#include <http_protocol.h>

#include "module.h"

APLOG_USE_MODULE(mongosup);

/* One checked-out client of a request, in r->pool. */
typedef struct checkout {
    struct checkout *next;
    request_rec *r;
    mongoc_client_t *client;
    bool failed;
    bson_error_t outcome;
} checkout_t;

/* The request's checkouts hang off its request_config. */
static checkout_t **checkouts_of(request_rec *r)
{
    checkout_t **head = ap_get_module_config(r->request_config, &mongosup_module);
    if (head == NULL) {
        head = apr_pcalloc(r->pool, sizeof *head);
        ap_set_module_config(r->request_config, &mongosup_module, head);
    }
    return head;
}

static checkout_t *find(request_rec *r, const mongoc_client_t *client)
{
    for (checkout_t *c = *checkouts_of(r); c != NULL; c = c->next)
        if (c->client == client)
            return c;
    return NULL;
}

/* Runs when r->pool is cleaned up (or at an explicit checkin): a handler
 * that forgets its client cannot leak it. */
static apr_status_t checkin_cleanup(void *p)
{
    checkout_t *c = p;
    mongosup_t *h = msup_ap_handle(NULL);
    if (c->client != NULL && h != NULL)
        mongosup_checkin(h, c->client, c->failed ? &c->outcome : NULL);
    c->client = NULL;
    return APR_SUCCESS;
}

static mongoc_client_t *mongosup_request_checkout(request_rec *r, const char *cluster, mongosup_error_t *error)
{
    mongosup_t *h = msup_ap_handle(error);
    if (h == NULL)
        return NULL;
    mongoc_client_t *client = mongosup_checkout(h, cluster, error);
    if (client == NULL)
        return NULL;
    checkout_t *c = apr_pcalloc(r->pool, sizeof *c);
    c->r = r;
    c->client = client;
    checkout_t **head = checkouts_of(r);
    c->next = *head;
    *head = c;
    apr_pool_cleanup_register(r->pool, c, checkin_cleanup, apr_pool_cleanup_null);
    return client;
}

static void mongosup_request_outcome(request_rec *r, mongoc_client_t *client, const bson_error_t *outcome)
{
    checkout_t *c = find(r, client);
    if (c == NULL)
        return;
    c->failed = outcome != NULL;
    if (outcome != NULL)
        c->outcome = *outcome;
}

static void mongosup_request_checkin(request_rec *r, mongoc_client_t *client, const bson_error_t *outcome)
{
    checkout_t *c = find(r, client);
    if (c == NULL)
        return;
    mongosup_request_outcome(r, client, outcome);
    apr_pool_cleanup_run(r->pool, c, checkin_cleanup);
}

static bool is_unavailable(const mongosup_error_t *error)
{
    switch (error->code) {
    case MONGOSUP_E_CIRCUIT_OPEN:
    case MONGOSUP_E_SHUTTING_DOWN:
    case MONGOSUP_E_POOL_TIMEOUT:
    case MONGOSUP_E_NO_SLOT:
    case MONGOSUP_E_SEGMENT:
        return true;
    default:
        return false;
    }
}

static int mongosup_request_refuse(request_rec *r, const mongosup_error_t *error)
{
    if (is_unavailable(error)) {
        apr_table_setn(r->err_headers_out, "Retry-After",
                       apr_psprintf(r->pool, "%u", msup_ap.conf ? msup_ap.conf->retry_after_s
                                                                : MSUP_AP_RETRY_AFTER_DEFAULT_S));
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_mongosup: 503: %s", error->message);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_mongosup: %s", error->message);
    return HTTP_INTERNAL_SERVER_ERROR;
}

static const char *mongosup_request_database(request_rec *r, const mongoc_client_t *client)
{
    mongosup_t *h = msup_ap_handle(NULL);
    return h != NULL ? mongosup_client_database(h, client) : NULL;
}

static bool mongosup_request_run(request_rec *r, const char *cluster, mongosup_run_fn fn, void *ctx, mongosup_error_t *error)
{
    mongosup_t *h = msup_ap_handle(error);
    return h != NULL && mongosup_run(h, cluster, fn, ctx, error);
}

void msup_ap_register_request_api(void)
{
    APR_REGISTER_OPTIONAL_FN(mongosup_request_checkout);
    APR_REGISTER_OPTIONAL_FN(mongosup_request_outcome);
    APR_REGISTER_OPTIONAL_FN(mongosup_request_checkin);
    APR_REGISTER_OPTIONAL_FN(mongosup_request_refuse);
    APR_REGISTER_OPTIONAL_FN(mongosup_request_database);
    APR_REGISTER_OPTIONAL_FN(mongosup_request_run);
}
