/* etcd.c: etcd v3 lease, range and guarded put over the HTTP/JSON gateway: libcurl for HTTP, json-c for the bodies, base64 keys and values. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "base64.h"
#include "etcd.h"
#include "strbuf.h"

#define MAX_ENDPOINTS 16
#define KEY_MAX 255
#define RESPONSE_MAX (4u << 20) /* a prefix of a few thousand small records fits; more is refused */

struct msup_etcd {
    CURL *curl;
    char *endpoints[MAX_ENDPOINTS];
    size_t endpoint_count;
    size_t current;                 /* the endpoint tried first; moves on a transport failure */
    long timeout_ms;
    bool patient;                   /* authenticate may take several timeouts (bcrypt on a busy server) */
    char *username, *password;      /* secret: only ever in a request body */
    char *token;                    /* etcd auth token, NULL before authenticate */
    char *ca, *cert, *key;
    char error[256];
    _Atomic uint64_t requests;      /* HTTP requests sent, for the status and the figures */
};

static void set_error(msup_etcd_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(msup_etcd_t *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->error, sizeof e->error, fmt, ap);
    va_end(ap);
}

const char *msup_etcd_error(const msup_etcd_t *e)
{
    return e->error;
}

void msup_etcd_set_patient(msup_etcd_t *e, bool patient)
{
    e->patient = patient;
}

uint64_t msup_etcd_requests(msup_etcd_t *e)
{
    return atomic_load_explicit(&e->requests, memory_order_relaxed);
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

msup_etcd_t *msup_etcd_new(const msup_fleet_cfg_t *f, char *why, size_t why_len)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(why, why_len, "libcurl failed to initialise");
        return NULL;
    }
    msup_etcd_t *e = calloc(1, sizeof *e);
    if (e == NULL || (e->curl = curl_easy_init()) == NULL) {
        free(e);
        curl_global_cleanup();
        snprintf(why, why_len, "out of memory (libcurl handle)");
        return NULL;
    }
    for (size_t i = 0; f->endpoints != NULL && f->endpoints[i] != NULL && i < MAX_ENDPOINTS; i++) {
        size_t n = strlen(f->endpoints[i]);
        if ((e->endpoints[i] = strdup(f->endpoints[i])) == NULL)
            break;
        if (n > 0 && e->endpoints[i][n - 1] == '/')
            e->endpoints[i][n - 1] = '\0';
        e->endpoint_count = i + 1;
    }
    e->timeout_ms = (long)f->request_timeout_ms;
    e->username = dup_or_null(f->username);
    e->password = dup_or_null(f->password);
    e->ca = dup_or_null(f->tls_ca_file);
    e->cert = dup_or_null(f->tls_cert_file);
    e->key = dup_or_null(f->tls_key_file);
    return e;
}

void msup_etcd_free(msup_etcd_t *e)
{
    if (e == NULL)
        return;
    curl_easy_cleanup(e->curl);
    for (size_t i = 0; i < e->endpoint_count; i++)
        free(e->endpoints[i]);
    free(e->username);
    wipe_free(e->password);
    wipe_free(e->token);
    free(e->ca);
    free(e->cert);
    free(e->key);
    free(e);
    curl_global_cleanup();
}

#define SWAP(a, b)                                                                                                     \
    do {                                                                                                               \
        __typeof__(a) t_ = (a);                                                                                        \
        (a) = (b);                                                                                                     \
        (b) = t_;                                                                                                      \
    } while (0)

void msup_etcd_take_settings(msup_etcd_t *e, msup_etcd_t *from)
{
    for (size_t i = 0; i < MAX_ENDPOINTS; i++)
        SWAP(e->endpoints[i], from->endpoints[i]);
    SWAP(e->endpoint_count, from->endpoint_count);
    e->current = 0;
    e->timeout_ms = from->timeout_ms;
    SWAP(e->username, from->username);
    SWAP(e->password, from->password);
    SWAP(e->ca, from->ca);
    SWAP(e->cert, from->cert);
    SWAP(e->key, from->key);
    wipe_free(e->token);
    e->token = NULL;
    msup_etcd_free(from);
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    msup_strbuf_t *sb = arg;
    if (sb->len + size * n > RESPONSE_MAX)
        return 0; /* curl fails the transfer: CURLE_WRITE_ERROR */
    msup_strbuf_putn(sb, data, size * n);
    return sb->oom ? 0 : size * n;
}

/* A certificate etcd's does not verify against, or a file curl cannot
 * use: a configuration error, not a network one. */
static bool tls_refused(CURLcode rc)
{
    return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM ||
           rc == CURLE_SSL_CIPHER;
}

/* One POST of body to path on the current endpoint; *reply gets the parsed
 * answer (HTTP 200) or the gateway's error object.  A transport failure
 * moves to the next endpoint for the next call. */
static msup_etcd_status_t post_once(msup_etcd_t *e, const char *path, const char *body, long timeout_ms,
                                    json_object **reply, long *http_status)
{
    *reply = NULL;
    const char *base = e->endpoints[e->current];
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    msup_strbuf_t sb = MSUP_STRBUF_GROWING;
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[600];
    if (e->token != NULL) {
        snprintf(auth, sizeof auth, "Authorization: %s", e->token);
        headers = curl_slist_append(headers, auth);
        explicit_bzero(auth, sizeof auth);
    }
    CURL *c = e->curl;
    char detail[CURL_ERROR_SIZE] = "";
    curl_easy_reset(c);
    /* curl's own words ("SSL certificate problem: unable to get local
     * issuer certificate") say which file is wrong; its code's do not. */
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* a thread of its own: no SIGALRM for DNS timeouts */
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sb);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (e->ca != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, e->ca);
    if (e->cert != NULL) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, e->cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, e->key);
    }
    atomic_fetch_add_explicit(&e->requests, 1, memory_order_relaxed);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL); /* detail is on this stack */
    curl_slist_free_all(headers);
    msup_etcd_status_t st = MSUP_ETCD_OK;
    if (rc != CURLE_OK && tls_refused(rc)) {
        /* The files, not the network: no use trying at every poll. */
        set_error(e, "%s: %s%s%s (TLS files: tls_ca_file %s, tls_cert_file %s)", base, curl_easy_strerror(rc),
                  detail[0] != '\0' ? ": " : "", detail, e->ca != NULL ? e->ca : "none: the system's CAs",
                  e->cert != NULL ? e->cert : "none");
        e->current = (e->current + 1) % e->endpoint_count;
        st = MSUP_ETCD_REFUSED;
    } else if (rc != CURLE_OK) {
        set_error(e, "%s: %s%s%s", base, curl_easy_strerror(rc), detail[0] != '\0' ? ": " : "", detail);
        e->current = (e->current + 1) % e->endpoint_count;
        st = MSUP_ETCD_UNREACHABLE;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, http_status);
        *reply = sb.p != NULL ? json_tokener_parse(sb.p) : NULL;
        if (*reply == NULL || !json_object_is_type(*reply, json_type_object)) {
            json_object_put(*reply);
            *reply = NULL;
            set_error(e, "%s%s: HTTP %ld with a body that is not a JSON object", base, path, *http_status);
            st = MSUP_ETCD_REFUSED;
        }
    }
    msup_strbuf_wipe(&sb);
    return st;
}

static const char *str_member(json_object *o, const char *name)
{
    json_object *v = NULL;
    return o != NULL && json_object_object_get_ex(o, name, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* int64 fields come as JSON strings from the gateway ("revision":"12"). */
static int64_t int_member(json_object *o, const char *name)
{
    json_object *v = NULL;
    if (o == NULL || !json_object_object_get_ex(o, name, &v))
        return 0;
    if (json_object_is_type(v, json_type_string))
        return strtoll(json_object_get_string(v), NULL, 10);
    return json_object_get_int64(v);
}

static msup_etcd_status_t authenticate(msup_etcd_t *e)
{
    json_object *req = json_object_new_object();
    json_object_object_add(req, "name", json_object_new_string(e->username));
    json_object_object_add(req, "password", json_object_new_string(e->password));
    char *body = strdup(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
    /* json-c keeps the serialised text in the object: wipe it with the password. */
    json_object *pw = NULL;
    if (json_object_object_get_ex(req, "password", &pw))
        json_object_set_string(pw, "");
    json_object_put(req);
    if (body == NULL) {
        set_error(e, "out of memory");
        return MSUP_ETCD_UNREACHABLE;
    }
    json_object *reply = NULL;
    long http = 0;
    /* etcd checks the password with bcrypt, slow on a busy server. */
    long timeout = e->patient ? 4 * e->timeout_ms : e->timeout_ms;
    msup_etcd_status_t st = post_once(e, "/v3/auth/authenticate", body, timeout, &reply, &http);
    wipe_free(body);
    if (st == MSUP_ETCD_OK) {
        const char *token = str_member(reply, "token");
        if (http != 200 || token == NULL) {
            const char *m = str_member(reply, "message");
            set_error(e, "etcd refused the credentials of user %s: %.120s", e->username, m != NULL ? m : "no token");
            st = MSUP_ETCD_REFUSED;
        } else {
            wipe_free(e->token);
            e->token = strdup(token);
        }
    }
    json_object_put(reply);
    return st;
}

/* POST with authentication (and one re-authentication when the token
 * expired).  On OK, *reply is the answer of a successful call; otherwise
 * it is NULL and the error says why. */
static msup_etcd_status_t call(msup_etcd_t *e, const char *path, json_object *req, json_object **reply)
{
    *reply = NULL;
    const char *body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (e->username != NULL && e->token == NULL) {
            msup_etcd_status_t st = authenticate(e);
            if (st != MSUP_ETCD_OK)
                return st;
        }
        long http = 0;
        json_object *r = NULL;
        msup_etcd_status_t st = post_once(e, path, body, e->timeout_ms, &r, &http);
        if (st != MSUP_ETCD_OK)
            return st;
        if (http == 200) {
            *reply = r;
            return MSUP_ETCD_OK;
        }
        const char *m = str_member(r, "message");
        char msg[160];
        snprintf(msg, sizeof msg, "%s", m != NULL ? m : "(no message)");
        int64_t code = int_member(r, "code");
        json_object_put(r);
        set_error(e, "%s%s: HTTP %ld: %s", e->endpoints[e->current], path, http, msg);
        if (strstr(msg, "lease not found") != NULL)
            return MSUP_ETCD_LEASE_GONE;
        if (e->username != NULL && attempt == 0 && (code == 16 || strstr(msg, "auth token") != NULL)) {
            wipe_free(e->token); /* expired: authenticate again */
            e->token = NULL;
            continue;
        }
        /* Unavailable (14), deadline (4), no leader: etcd cannot decide now. */
        if (code == 14 || code == 4 || strstr(msg, "no leader") != NULL || strstr(msg, "timed out") != NULL) {
            e->current = (e->current + 1) % e->endpoint_count;
            return MSUP_ETCD_UNREACHABLE;
        }
        return MSUP_ETCD_REFUSED;
    }
    return MSUP_ETCD_REFUSED;
}

static void add_id(json_object *o, const char *name, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    json_object_object_add(o, name, json_object_new_string(buf));
}

static void add_b64(json_object *o, const char *name, const char *bytes, size_t n)
{
    char out[4 * ((KEY_MAX * 2 + 2) / 3) + 8];
    if (n > KEY_MAX * 2)
        n = KEY_MAX * 2;
    msup_b64_encode(bytes, n, out);
    json_object_object_add(o, name, json_object_new_string(out));
}

/* prefix + "/" .. prefix + "0": every key under the prefix ('0' follows '/'). */
static void add_prefix_range(json_object *o, const char *prefix)
{
    char from[KEY_MAX + 2], to[KEY_MAX + 2];
    snprintf(from, sizeof from, "%s/", prefix);
    snprintf(to, sizeof to, "%s0", prefix);
    add_b64(o, "key", from, strlen(from));
    add_b64(o, "range_end", to, strlen(to));
}

msup_etcd_status_t msup_etcd_lease_grant(msup_etcd_t *e, uint32_t ttl_s, int64_t *lease)
{
    json_object *req = json_object_new_object(), *reply = NULL;
    json_object_object_add(req, "TTL", json_object_new_int64(ttl_s));
    msup_etcd_status_t st = call(e, "/v3/lease/grant", req, &reply);
    json_object_put(req);
    if (st == MSUP_ETCD_OK) {
        *lease = int_member(reply, "ID");
        if (*lease == 0) {
            set_error(e, "lease grant: no ID in the answer");
            st = MSUP_ETCD_REFUSED;
        }
    }
    json_object_put(reply);
    return st;
}

msup_etcd_status_t msup_etcd_lease_keepalive(msup_etcd_t *e, int64_t lease, int64_t *ttl_left)
{
    json_object *req = json_object_new_object(), *reply = NULL;
    add_id(req, "ID", lease);
    msup_etcd_status_t st = call(e, "/v3/lease/keepalive", req, &reply);
    json_object_put(req);
    if (st == MSUP_ETCD_OK) {
        /* A stream of one answer: {"result": {..., "TTL": "2"}}; no TTL: the lease is gone. */
        json_object *result = NULL;
        json_object_object_get_ex(reply, "result", &result);
        *ttl_left = int_member(result, "TTL");
        if (result == NULL) {
            set_error(e, "lease keepalive: no result in the answer");
            st = MSUP_ETCD_UNREACHABLE;
        } else if (*ttl_left <= 0) {
            set_error(e, "lease %" PRIx64 " expired on the server", (uint64_t)lease);
            st = MSUP_ETCD_LEASE_GONE;
        }
    }
    json_object_put(reply);
    return st;
}

msup_etcd_status_t msup_etcd_lease_revoke(msup_etcd_t *e, int64_t lease)
{
    json_object *req = json_object_new_object(), *reply = NULL;
    add_id(req, "ID", lease);
    msup_etcd_status_t st = call(e, "/v3/lease/revoke", req, &reply);
    json_object_put(req);
    json_object_put(reply);
    return st;
}

static bool decode_into(json_object *kv, const char *name, char *out, size_t max, bool *too_long)
{
    const char *b64 = str_member(kv, name);
    size_t len = 0;
    if (b64 == NULL) {
        out[0] = '\0'; /* an empty value is left out of the JSON */
        return true;
    }
    if (strlen(b64) / 4 * 3 > max + 2) {
        *too_long = true;
        out[0] = '\0';
        return true;
    }
    return msup_b64_decode(b64, out, max, &len) && strlen(out) == len; /* no NUL inside */
}

msup_etcd_status_t msup_etcd_range_prefix(msup_etcd_t *e, const char *prefix, msup_etcd_range_t *out)
{
    memset(out, 0, sizeof *out);
    json_object *req = json_object_new_object(), *reply = NULL;
    add_prefix_range(req, prefix);
    msup_etcd_status_t st = call(e, "/v3/kv/range", req, &reply);
    json_object_put(req);
    if (st != MSUP_ETCD_OK)
        return st;
    json_object *header = NULL, *kvs = NULL;
    json_object_object_get_ex(reply, "header", &header);
    out->revision = int_member(header, "revision");
    if (json_object_object_get_ex(reply, "kvs", &kvs) && json_object_is_type(kvs, json_type_array)) {
        size_t n = json_object_array_length(kvs);
        out->kvs = calloc(n > 0 ? n : 1, sizeof *out->kvs);
        if (out->kvs == NULL) {
            json_object_put(reply);
            set_error(e, "out of memory");
            return MSUP_ETCD_UNREACHABLE;
        }
        for (size_t i = 0; i < n; i++) {
            json_object *kv = json_object_array_get_idx(kvs, i);
            msup_etcd_kv_t *d = &out->kvs[out->count];
            bool key_too_long = false;
            if (!decode_into(kv, "key", d->key, sizeof d->key - 1, &key_too_long) || key_too_long)
                continue; /* not a key of ours: skipped */
            if (!decode_into(kv, "value", d->value, sizeof d->value - 1, &d->too_long))
                d->too_long = true; /* undecodable: the caller ignores it like an oversized one */
            d->mod_revision = int_member(kv, "mod_revision");
            d->lease = int_member(kv, "lease");
            out->count++;
        }
    }
    json_object_put(reply);
    return MSUP_ETCD_OK;
}

void msup_etcd_range_free(msup_etcd_range_t *r)
{
    free(r->kvs);
    memset(r, 0, sizeof *r);
}

msup_etcd_status_t msup_etcd_put(msup_etcd_t *e, const char *key, const char *value, int64_t lease,
                                 const char *guard_prefix, int64_t guard_revision, bool *applied)
{
    *applied = false;
    json_object *put = json_object_new_object(), *reply = NULL;
    add_b64(put, "key", key, strlen(key));
    add_b64(put, "value", value, strlen(value));
    if (lease != 0)
        add_id(put, "lease", lease);
    msup_etcd_status_t st;
    if (guard_revision <= 0) {
        st = call(e, "/v3/kv/put", put, &reply);
        json_object_put(put);
        *applied = st == MSUP_ETCD_OK;
    } else {
        /* No key under the prefix has a mod_revision above the one read:
         * nobody published (or joined) since. */
        json_object *txn = json_object_new_object(), *cmp = json_object_new_object();
        json_object_object_add(cmp, "target", json_object_new_string("MOD"));
        json_object_object_add(cmp, "result", json_object_new_string("LESS"));
        add_prefix_range(cmp, guard_prefix);
        add_id(cmp, "mod_revision", guard_revision + 1);
        json_object *cmps = json_object_new_array(), *ops = json_object_new_array(), *op = json_object_new_object();
        json_object_array_add(cmps, cmp);
        json_object_object_add(op, "request_put", put);
        json_object_array_add(ops, op);
        json_object_object_add(txn, "compare", cmps);
        json_object_object_add(txn, "success", ops);
        st = call(e, "/v3/kv/txn", txn, &reply);
        json_object_put(txn);
        if (st == MSUP_ETCD_OK) {
            json_object *ok = NULL;
            *applied = json_object_object_get_ex(reply, "succeeded", &ok) && json_object_get_boolean(ok);
        }
    }
    json_object_put(reply);
    return st;
}
