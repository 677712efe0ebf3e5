/* demo.c: SetHandler mongosup-demo: examples/prefork_server.c's endpoints, written with the optional functions only. */
#include <httpd.h> /* first: the other Apache headers need its types */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "module.h"

APLOG_USE_MODULE(mongosup);

/*
 *   GET  /users/ID   find one {_id: ID} in <users db>.users       (cluster "users");
 *                    with ?checkin the client goes back before the answer
 *   POST /events     insert one event in <analytics db>.events    (cluster "analytics", retried)
 * Answers: 200, 404 (no such user), 503 + Retry-After (cluster DOWN, draining,
 * pool timeout), 500 (other database errors), 400 (anything else).
 *
 * It uses mod_mongosup only through the optional functions, exactly as a
 * handler in another module would (see docs/apache.md).
 */

static APR_OPTIONAL_FN_TYPE(mongosup_request_checkout) *checkout_fn;
static APR_OPTIONAL_FN_TYPE(mongosup_request_outcome) *outcome_fn;
static APR_OPTIONAL_FN_TYPE(mongosup_request_checkin) *checkin_fn;
static APR_OPTIONAL_FN_TYPE(mongosup_request_refuse) *refuse_fn;
static APR_OPTIONAL_FN_TYPE(mongosup_request_database) *database_fn;
static APR_OPTIONAL_FN_TYPE(mongosup_request_run) *run_fn;

static bool retrieve(void)
{
    if (checkout_fn == NULL) {
        checkout_fn = APR_RETRIEVE_OPTIONAL_FN(mongosup_request_checkout);
        outcome_fn = APR_RETRIEVE_OPTIONAL_FN(mongosup_request_outcome);
        checkin_fn = APR_RETRIEVE_OPTIONAL_FN(mongosup_request_checkin);
        refuse_fn = APR_RETRIEVE_OPTIONAL_FN(mongosup_request_refuse);
        database_fn = APR_RETRIEVE_OPTIONAL_FN(mongosup_request_database);
        run_fn = APR_RETRIEVE_OPTIONAL_FN(mongosup_request_run);
    }
    return checkout_fn && outcome_fn && checkin_fn && refuse_fn && database_fn && run_fn;
}

static int answer(request_rec *r, int status, const char *body)
{
    r->status = status;
    ap_set_content_type(r, "application/json");
    ap_rputs(body, r);
    return OK;
}

static int refused(request_rec *r, const mongosup_error_t *err, const char *body)
{
    return answer(r, refuse_fn(r, err), body);
}

/* ?checkin: give the client back as soon as the driver is done with it,
 * before the answer is written (a handler that streams a long answer
 * should); the request pool then has nothing left to give back. */
static bool early_checkin(const request_rec *r)
{
    return r->args != NULL && strcmp(r->args, "checkin") == 0;
}

static int get_user(request_rec *r, long long id)
{
    mongosup_error_t err;
    mongoc_client_t *client = checkout_fn(r, "users", &err);
    if (client == NULL)
        return refused(r, &err, "{\"error\":\"users cluster unavailable\"}\n");
    const char *db = database_fn(r, client);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, db ? db : "demo", "users");
    bson_t *filter = BCON_NEW("_id", BCON_INT64(id));
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    const bson_t *doc;
    bson_error_t error;
    int status;
    char *json = NULL;
    if (mongoc_cursor_next(cursor, &doc)) {
        json = bson_as_relaxed_extended_json(doc, NULL);
        status = HTTP_OK;
    } else if (mongoc_cursor_error(cursor, &error)) {
        outcome_fn(r, client, &error); /* counted when the client goes back */
        status = HTTP_INTERNAL_SERVER_ERROR;
    } else {
        status = HTTP_NOT_FOUND;
    }
    mongoc_cursor_destroy(cursor);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
    if (early_checkin(r))
        checkin_fn(r, client, status == HTTP_INTERNAL_SERVER_ERROR ? &error : NULL);
    /* otherwise no checkin: r->pool's cleanup does it */
    int rc = answer(r, status,
                    status == HTTP_OK                    ? json
                    : status == HTTP_INTERNAL_SERVER_ERROR ? "{\"error\":\"find failed\"}\n"
                                                           : "{\"error\":\"no such user\"}\n");
    bson_free(json);
    return rc;
}

typedef struct event_ctx {
    request_rec *r;
} event_ctx_t;

/* One attempt of the insert; mongosup_run retries it on transient errors. */
static bool insert_event(mongoc_client_t *client, void *p, bson_t *reply_doc, bson_error_t *error)
{
    event_ctx_t *ctx = p;
    const char *db = database_fn(ctx->r, client);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, db ? db : "demo", "events");
    bson_t *doc = BCON_NEW("pid", BCON_INT32((int32_t)getpid()), "uri", BCON_UTF8(ctx->r->uri), "at",
                           BCON_DATE_TIME(bson_get_monotonic_time() / 1000));
    bool ok = mongoc_collection_insert_one(coll, doc, NULL, reply_doc, error);
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
    return ok;
}

static int post_event(request_rec *r)
{
    int rc = ap_discard_request_body(r);
    if (rc != OK)
        return rc;
    event_ctx_t ctx = {r};
    mongosup_error_t err;
    if (run_fn(r, "analytics", insert_event, &ctx, &err))
        return answer(r, HTTP_OK, "{\"ok\":1}\n");
    return refused(r, &err, "{\"error\":\"insert failed\"}\n");
}

/* The trailing "/users/ID" of the URI: the demo can sit under any prefix. */
static bool user_id_of(const char *uri, long long *id)
{
    const char *p = strstr(uri, "/users/");
    if (p == NULL)
        return false;
    p += strlen("/users/");
    char *end;
    if (*p < '0' || *p > '9')
        return false;
    *id = strtoll(p, &end, 10);
    return *end == '\0';
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int msup_ap_demo_handler(request_rec *r)
{
    if (!retrieve()) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_mongosup: optional functions missing");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    long long id;
    if (r->method_number == M_GET && user_id_of(r->uri, &id))
        return get_user(r, id);
    if (r->method_number == M_POST && ends_with(r->uri, "/events"))
        return post_event(r);
    return answer(r, HTTP_BAD_REQUEST, "{\"error\":\"unknown request\"}\n");
}
