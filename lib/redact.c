/* redact.c: URIs and free text without credentials, for display, logs and error messages. */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "mongosup.h"
#include "redact.h"
#include "strbuf.h"

/* Ends a truncated display string with "..." so nobody mistakes it for the whole. */
static void ob_finish(msup_strbuf_t *ob)
{
    if (!ob->truncated || ob->cap < 4)
        return;
    size_t at = ob->cap - 4 < ob->len ? ob->cap - 4 : ob->len;
    while (at > 0 && ((unsigned char)ob->p[at] & 0xc0u) == 0x80u)
        at--; /* never "..." inside a UTF-8 character */
    memcpy(ob->p + at, "...", 4);
    ob->len = at + 3;
}

/* True for an option name (n bytes) whose value is a secret. */
static bool option_is_secret(const char *name, size_t n)
{
    static const char props[] = "authmechanismproperties";
    if (n == sizeof props - 1 && strncasecmp(name, props, n) == 0)
        return true;
    for (size_t i = 0; i + 8 <= n; i++)
        if (strncasecmp(name + i, "password", 8) == 0)
            return true;
    return false;
}

/* Copies an option string "a=1&b=2" (n bytes) with secret values masked. */
static void ob_put_options(msup_strbuf_t *ob, const char *opts, size_t n)
{
    const char *end = opts + n;
    const char *p = opts;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq != NULL && option_is_secret(p, (size_t)(eq - p))) {
            msup_strbuf_putn(ob, p, (size_t)(eq - p) + 1);
            msup_strbuf_puts(ob, "***");
        } else {
            msup_strbuf_putn(ob, p, (size_t)(stop - p));
        }
        if (amp != NULL)
            msup_strbuf_puts(ob, "&");
        p = amp != NULL ? amp + 1 : end;
    }
}

/* The option text of a URI that mongoc accepted: after the first '?' that
 * follows the authority (which ends at the first '/': a valid URI has no
 * unescaped '/' in its user information). */
static const char *uri_options_text(const char *uri)
{
    const char *rest = strstr(uri, "://");
    if (rest == NULL)
        return NULL;
    const char *slash = strchr(rest + 3, '/');
    if (slash == NULL)
        return NULL;
    const char *q = strchr(slash, '?');
    return q != NULL ? q + 1 : NULL;
}

static void redact_parsed(const mongoc_uri_t *u, const char *uri, msup_strbuf_t *ob)
{
    const char *srv = mongoc_uri_get_srv_hostname(u);
    msup_strbuf_puts(ob, srv != NULL ? "mongodb+srv://" : "mongodb://");
    const char *user = mongoc_uri_get_username(u);
    if (user != NULL) {
        msup_strbuf_put_encoded(ob, user, NULL);
        if (mongoc_uri_get_password(u) != NULL)
            msup_strbuf_puts(ob, ":***");
        msup_strbuf_puts(ob, "@");
    }
    if (srv != NULL) {
        msup_strbuf_puts(ob, srv);
    } else {
        bool first = true;
        for (const mongoc_host_list_t *h = mongoc_uri_get_hosts(u); h != NULL; h = h->next) {
            if (!first)
                msup_strbuf_puts(ob, ",");
            first = false;
            msup_strbuf_put_encoded(ob, h->host_and_port, "[]:");
        }
    }
    const char *db = mongoc_uri_get_database(u);
    const char *opts = uri_options_text(uri);
    if (db != NULL || (opts != NULL && *opts != '\0'))
        msup_strbuf_puts(ob, "/");
    if (db != NULL)
        msup_strbuf_put_encoded(ob, db, NULL);
    if (opts != NULL && *opts != '\0') {
        msup_strbuf_puts(ob, "?");
        ob_put_options(ob, opts, strlen(opts));
    }
}

/* For a string mongoc rejects: hide everything between "://" and the last
 * '@' (over-masking is the safe side), and the secret options after it. */
static void redact_unparsed(const char *uri, msup_strbuf_t *ob, size_t cap)
{
    const char *scheme_end = strstr(uri, "://");
    if (scheme_end == NULL) {
        msup_redact_text(uri, ob->p, cap);
        ob->len = strlen(ob->p);
        ob->truncated = ob->len + 1 >= cap && strlen(uri) >= cap;
        return;
    }
    const char *rest = scheme_end + 3;
    const char *at = strrchr(rest, '@');
    msup_strbuf_putn(ob, uri, (size_t)(rest - uri));
    if (at != NULL) {
        msup_strbuf_puts(ob, "***@");
        rest = at + 1;
    }
    const char *q = strchr(rest, '?');
    if (q == NULL) {
        msup_strbuf_puts(ob, rest);
    } else {
        msup_strbuf_putn(ob, rest, (size_t)(q - rest) + 1);
        ob_put_options(ob, q + 1, strlen(q + 1));
    }
}

bool mongosup_uri_redact(const char *uri, char *out, size_t out_len, mongosup_error_t *error)
{
    if (out == NULL || out_len == 0)
        return msup_fail(error, MONGOSUP_E_INVALID_ARG, "mongosup_uri_redact: no output buffer");
    out[0] = '\0';
    if (uri == NULL)
        return msup_fail(error, MONGOSUP_E_INVALID_ARG, "mongosup_uri_redact: uri is NULL");

    msup_strbuf_t ob;
    msup_strbuf_init_fixed(&ob, out, out_len);
    bson_error_t berr;
    mongoc_uri_t *u = mongoc_uri_new_with_error(uri, &berr);
    /* mongoc splits "user:pa@ss@host" at the first '@' and would show the
     * rest of the password as a host: mask such strings textually. */
    const char *rest = strstr(uri, "://");
    if (u != NULL && rest != NULL) {
        const char *slash = strchr(rest + 3, '/');
        size_t n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
        const char *at = memchr(rest, '@', n);
        if (at != NULL && memchr(at + 1, '@', n - (size_t)(at + 1 - rest)) != NULL) {
            mongoc_uri_destroy(u);
            u = NULL;
        }
    }
    if (u != NULL) {
        redact_parsed(u, uri, &ob);
        mongoc_uri_destroy(u);
    } else {
        redact_unparsed(uri, &ob, out_len);
    }
    ob_finish(&ob);
    return true;
}

/* Characters that end a "word" in free text: a credential never spans them. */
static bool is_text_delim(unsigned char ch)
{
    return ch == '\0' || isspace(ch) || strchr("\"'`<>(){};", ch) != NULL;
}

void msup_redact_text(const char *in, char *out, size_t n)
{
    if (out == NULL || n == 0)
        return;
    msup_strbuf_t ob;
    msup_strbuf_init_fixed(&ob, out, n);
    if (in == NULL)
        return;

    const char *p = in;
    while (*p != '\0') {
        if (is_text_delim((unsigned char)*p)) {
            msup_strbuf_putn(&ob, p, 1);
            p++;
            continue;
        }
        const char *w = p;
        while (!is_text_delim((unsigned char)*p))
            p++;
        size_t wlen = (size_t)(p - w);

        /* Credentials: from the start of the word (or after "://") to the
         * last '@' before the first '?' that follows the first '@'. */
        const char *start = w;
        const char *scheme = memmem(w, wlen, "://", 3);
        if (scheme != NULL)
            start = scheme + 3;
        const char *first_at = memchr(start, '@', (size_t)(p - start));
        const char *cred_end = NULL;
        if (first_at != NULL) {
            const char *q = memchr(first_at, '?', (size_t)(p - first_at));
            const char *lim = q != NULL ? q : p;
            for (const char *c = first_at; c < lim; c++)
                if (*c == '@')
                    cred_end = c;
        }
        const char *colon = cred_end != NULL ? memchr(start, ':', (size_t)(cred_end - start)) : NULL;
        const char *tail = w;
        if (colon != NULL) {
            msup_strbuf_putn(&ob, w, (size_t)(colon - w));
            msup_strbuf_puts(&ob, ":***");
            tail = cred_end;
        }

        /* Secret options (key=value) anywhere in the rest of the word. */
        while (tail < p) {
            const char *eq = memchr(tail, '=', (size_t)(p - tail));
            if (eq == NULL) {
                msup_strbuf_putn(&ob, tail, (size_t)(p - tail));
                break;
            }
            const char *k = eq;
            while (k > tail && (isalnum((unsigned char)k[-1]) || k[-1] == '_'))
                k--;
            msup_strbuf_putn(&ob, tail, (size_t)(eq - tail) + 1);
            tail = eq + 1;
            if (option_is_secret(k, (size_t)(eq - k))) {
                msup_strbuf_puts(&ob, "***");
                const char *amp = memchr(tail, '&', (size_t)(p - tail));
                tail = amp != NULL ? amp : p;
            }
        }
    }
    ob_finish(&ob);
}
