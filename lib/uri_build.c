/* uri_build.c: the URI each cluster's driver pool gets (URI source, password, option keys) and its redacted display form. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"
#include "error.h"
#include "failfast.h"
#include "redact.h"

static void uri_add_option(msup_strbuf_t *d, const char *name, const char *value)
{
    msup_strbuf_puts(d, msup_strbuf_last(d) == '?' ? "" : "&");
    msup_strbuf_puts(d, name);
    msup_strbuf_puts(d, "=");
    msup_strbuf_put_encoded(d, value, "/:");
}

static void lower_copy(char *out, size_t n, const char *in)
{
    size_t i = 0;
    for (; in[i] != '\0' && i + 1 < n; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

void msup_cfg_cluster_env_var(const char *cluster, char *out, size_t n)
{
    size_t len = (size_t)snprintf(out, n, "MONGOSUP_");
    for (const char *p = cluster; *p != '\0' && len + 1 < n; p++)
        out[len++] = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    out[len] = '\0';
    snprintf(out + len, n - len, "_URI");
}

typedef struct {
    const char *scheme;    /* "mongodb://" or "mongodb+srv://" (text) */
    const char *userinfo;  /* start, or NULL */
    size_t userinfo_len;   /* without the '@' */
    const char *hosts;
    size_t hosts_len;
    const char *db;        /* after the '/', or NULL */
    size_t db_len;
    const char *opts;      /* after the '?', or NULL */
} uri_parts_t;

/* Splits a URI that mongoc accepted: a valid URI has no unescaped '/' or '@'
 * in its user information, so the authority ends at the first '/'. */
static void split_uri(const char *uri, uri_parts_t *p)
{
    memset(p, 0, sizeof *p);
    const char *rest = strstr(uri, "://") + 3;
    p->scheme = uri;
    const char *slash = strchr(rest, '/');
    const char *auth_end = slash != NULL ? slash : rest + strlen(rest);
    const char *at = memrchr(rest, '@', (size_t)(auth_end - rest));
    if (at != NULL) {
        p->userinfo = rest;
        p->userinfo_len = (size_t)(at - rest);
        rest = at + 1;
    }
    p->hosts = rest;
    p->hosts_len = (size_t)(auth_end - rest);
    if (slash != NULL) {
        const char *q = strchr(slash, '?');
        p->db = slash + 1;
        p->db_len = q != NULL ? (size_t)(q - slash - 1) : strlen(slash + 1);
        p->opts = q != NULL ? q + 1 : NULL;
    }
}

/* Options that the config owns: dropped from the URI text, then written. */
static bool option_owned(const char *name, size_t n, const char *const *owned, size_t nowned)
{
    for (size_t i = 0; i < nowned; i++)
        if (strlen(owned[i]) == n && strncasecmp(owned[i], name, n) == 0)
            return true;
    return false;
}

/*
 * What mongo-c-driver 1.23 uses when an option is absent from the URI
 * (mongoc-client.h MONGOC_DEFAULT_*, mongoc-topology-private.h, and
 * MONGOC-NOTES.md).  The driver looks options up in the URI's option list on
 * every operation, so each option written costs every operation a little
 * (docs/benchmarks.md, opcost_bench): only values that differ are written.
 * Not here, so always written when set: heartbeatFrequencyMS, whose default
 * depends on the client (10 s pooled, 60 s for the single-threaded clients
 * of mongosupd's health checks, which get the same URI), appname and the
 * TLS files.  waitQueueTimeoutMS (absent: wait forever) differs from
 * mongosup's 5000 unless set to 0.
 */
static const struct {
    const char *option;
    uint32_t value;
} driver_defaults[] = {
    {"maxPoolSize", 100},
    {"waitQueueTimeoutMS", 0},
    {"connectTimeoutMS", 10000},
    {"socketTimeoutMS", 300000},
    {"serverSelectionTimeoutMS", 30000},
    {"retryWrites", 1},
    {"retryReads", 1},
    {"tlsAllowInvalidHostnames", 0},
};

static bool is_driver_default(const char *option, uint32_t value)
{
    for (size_t i = 0; i < sizeof driver_defaults / sizeof driver_defaults[0]; i++)
        if (strcmp(driver_defaults[i].option, option) == 0)
            return driver_defaults[i].value == value;
    return false;
}

/* Which options of the key table an appended list holds. */
typedef enum {
    FOR_DRIVER,  /* the values that differ from the driver's defaults */
    FOR_DISPLAY, /* the values set in the file that differ from the built-in defaults */
} option_choice_t;

/* Appends the URI options of the key table from the resolved values, then
 * the TLS key password. */
static void append_options(msup_strbuf_t *d, const msup_cluster_cfg_t *c, const config_setting_t *const *set,
                           option_choice_t choice, bool tls_password)
{
    for (size_t i = 0; i < MSUP_CFG_N_CLUSTER_KEYS; i++) {
        const key_t_ *k = &msup_cfg_cluster_keys[i];
        if (k->uri_option == NULL || (choice == FOR_DISPLAY && set[i] == NULL))
            continue;
        const char *field = (const char *)c + k->off;
        bool scalar = k->type == KT_U32 || k->type == KT_BOOL;
        uint32_t value = k->type == KT_U32    ? *(const uint32_t *)(const void *)field
                         : k->type == KT_BOOL ? (uint32_t)*(const bool *)(const void *)field
                                              : 0;
        if (scalar && choice == FOR_DISPLAY && value == k->def)
            continue;
        if (scalar && choice == FOR_DRIVER && is_driver_default(k->uri_option, value))
            continue;
        if (k->type == KT_U32) {
            char num[16];
            snprintf(num, sizeof num, "%u", value);
            uri_add_option(d, k->uri_option, num);
        } else if (k->type == KT_BOOL) {
            /* mongoc 1.23 turns TLS on when any tls* option is present, even
             * "false": leave a false TLS option out. */
            if (value == 0 && strncmp(k->uri_option, "tls", 3) == 0)
                continue;
            uri_add_option(d, k->uri_option, value != 0 ? "true" : "false");
        } else if (*(char *const *)(const void *)field != NULL) {
            uri_add_option(d, k->uri_option, *(char *const *)(const void *)field);
        }
    }
    if (tls_password)
        uri_add_option(d, "tlsCertificateKeyFilePassword", c->tls_certificate_key_file_password);
}

static bool fail_uri(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *cs,
                     const char *what, const char *uri, const char *source, const char *driver_msg)
{
    char shown[MSUP_URI_DISPLAY_MAX];
    char msg[256];
    mongosup_uri_redact(uri, shown, sizeof shown, NULL);
    msup_redact_text(driver_msg, msg, sizeof msg);
    return msup_cfg_fail_at(ctx, error, cs, "%s %s (from %s): %s", what, shown, source, msg);
}

/* Builds c->uri from the raw URI, the password and the option keys (see config_int.h). */
bool msup_cfg_resolve_uri(const load_ctx_t *ctx, mongosup_error_t *error, msup_cluster_cfg_t *c,
                        const config_setting_t *cs, const cluster_src_t *src,
                        const config_setting_t *const *set)
{
    /* 1. Which URI: file < uri_env < MONGOSUP_<CLUSTER>_URI. */
    const char *raw = NULL;
    char env_var[MSUP_NAME_MAX + 16];
    msup_cfg_cluster_env_var(c->name, env_var, sizeof env_var);
    size_t mongo_uri_idx = msup_cfg_ckey("mongo_uri");
    if (src->mongo_uri != NULL) {
        raw = src->mongo_uri;
        snprintf(c->uri_source, sizeof c->uri_source, "mongo_uri at %s:%u",
                 msup_cfg_setting_file(ctx, set[mongo_uri_idx]), (unsigned)config_setting_source_line(set[mongo_uri_idx]));
    }
    if (src->uri_env != NULL) {
        const char *v = getenv(src->uri_env);
        if (v != NULL && *v != '\0') {
            raw = v;
            snprintf(c->uri_source, sizeof c->uri_source, "$%s (uri_env)", src->uri_env);
        }
    }
    const char *v = getenv(env_var);
    if (v != NULL && *v != '\0') {
        raw = v;
        snprintf(c->uri_source, sizeof c->uri_source, "$%s", env_var);
    }
    if (raw == NULL) {
        if (src->uri_env != NULL)
            return msup_cfg_fail_at(ctx, error, cs, "no URI: $%s (uri_env) and $%s are not set and there is no mongo_uri",
                           src->uri_env, env_var);
        return msup_cfg_fail_at(ctx, error, cs, "no URI: set mongo_uri, uri_env or $%s", env_var);
    }

    bson_error_t berr;
    mongoc_uri_t *u = mongoc_uri_new_with_error(raw, &berr);
    if (u == NULL)
        return fail_uri(ctx, error, cs, "invalid URI", raw, c->uri_source, berr.message);
    uri_parts_t p;
    split_uri(raw, &p);
    if (p.userinfo != NULL && memchr(p.userinfo, '@', p.userinfo_len) != NULL) {
        /* mongoc takes the first '@': the rest of the password would become a host. */
        mongoc_uri_destroy(u);
        char shown[MSUP_URI_DISPLAY_MAX];
        mongosup_uri_redact(raw, shown, sizeof shown, NULL);
        return msup_cfg_fail_at(ctx, error, cs, "invalid URI %s (from %s): the user information has an unescaped '@' "
                       "(write it as %%40)", shown, c->uri_source);
    }

    /* 2. Options mongoc 1.23 parses but ignores: the library does them. */
    static const struct {
        const char *opt, *shown, *key;
    } ignored[] = {{MONGOC_URI_MINPOOLSIZE, "minPoolSize", "min_pool_size"},
                   {MONGOC_URI_MAXIDLETIMEMS, "maxIdleTimeMS", "max_idle_time_ms"},
                   {MONGOC_URI_WAITQUEUEMULTIPLE, "waitQueueMultiple", NULL}};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) {
        if (!mongoc_uri_has_option(u, ignored[i].opt))
            continue;
        mongoc_uri_destroy(u);
        if (ignored[i].key != NULL)
            return msup_cfg_fail_at(ctx, error, cs,
                           "URI option %s (from %s) is not honoured by mongo-c-driver 1.23: remove it and "
                           "use the config key %s",
                           ignored[i].shown, c->uri_source, ignored[i].key);
        return msup_cfg_fail_at(ctx, error, cs,
                       "URI option %s (from %s) is not supported: remove it (the wait is bounded by "
                       "wait_queue_timeout_ms)",
                       ignored[i].shown, c->uri_source);
    }

    /* 3. Option keys: explicit config key > URI option > built-in default. */
    const char *owned[MSUP_CFG_N_CLUSTER_KEYS + 1];
    size_t nowned = 0;
    for (size_t i = 0; i < MSUP_CFG_N_CLUSTER_KEYS; i++) {
        const key_t_ *k = &msup_cfg_cluster_keys[i];
        if (k->uri_option == NULL)
            continue;
        char lc[64];
        lower_copy(lc, sizeof lc, k->uri_option);
        char *field = (char *)c + k->off;
        if (set[i] == NULL && mongoc_uri_has_option(u, lc)) {
            if (k->type == KT_U32) {
                int32_t val = mongoc_uri_get_option_as_int32(u, lc, 0);
                if (val < (int64_t)k->min || val > (int64_t)k->max) {
                    mongoc_uri_destroy(u);
                    return msup_cfg_fail_at(ctx, error, cs, "URI option %s=%d (from %s) is out of range %u..%u",
                                   k->uri_option, val, c->uri_source, k->min, k->max);
                }
                *(uint32_t *)(void *)field = (uint32_t)val;
            } else if (k->type == KT_BOOL) {
                *(bool *)(void *)field = mongoc_uri_get_option_as_bool(u, lc, false);
            } else {
                const char *sv = mongoc_uri_get_option_as_utf8(u, lc, NULL);
                if (sv != NULL && strlen(sv) > k->max) {
                    mongoc_uri_destroy(u);
                    return msup_cfg_fail_at(ctx, error, cs, "URI option %s (from %s) is longer than %u bytes",
                                   k->uri_option, c->uri_source, k->max);
                }
                if (sv != NULL && (*(char **)(void *)field = strdup(sv)) == NULL) {
                    mongoc_uri_destroy(u);
                    return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
                }
            }
        }
        owned[nowned++] = k->uri_option;
    }
    /* Set neither as a key nor in the URI: server selection follows the health checks (failfast.c). */
    if (set[msup_cfg_ckey("server_selection_timeout_ms")] == NULL && !mongoc_uri_has_option(u, "serverselectiontimeoutms"))
        c->server_selection_timeout_ms = msup_failfast_selection_timeout_ms(c);
    if (c->database_name == NULL && mongoc_uri_get_database(u) != NULL &&
        (c->database_name = strdup(mongoc_uri_get_database(u))) == NULL) {
        mongoc_uri_destroy(u);
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    }
    bool uri_has_user = mongoc_uri_get_username(u) != NULL;
    const char *uri_tls_pw = mongoc_uri_get_option_as_utf8(u, MONGOC_URI_TLSCERTIFICATEKEYFILEPASSWORD, NULL);
    if (uri_tls_pw != NULL && (c->tls_certificate_key_file_password = strdup(uri_tls_pw)) == NULL) {
        mongoc_uri_destroy(u);
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    }
    mongoc_uri_destroy(u);

    /* 4. Secrets. */
    size_t i_penv = msup_cfg_ckey("password_env"), i_pfile = msup_cfg_ckey("password_file");
    size_t i_tenv = msup_cfg_ckey("tls_certificate_key_file_password_env");
    size_t i_tfile = msup_cfg_ckey("tls_certificate_key_file_password_file");
    char password[SECRET_MAX];
    char tls_password[SECRET_MAX];
    char how[PATH_MAX + 8], tls_how[PATH_MAX + 8];
    bool have_pw, have_tls_pw;
    if (!msup_cfg_resolve_secret(ctx, error, cs, set[i_penv], src->password_env, set[i_pfile], src->password_file,
                        password, &have_pw, how, sizeof how)) {
        explicit_bzero(password, sizeof password);
        return false;
    }
    if (have_pw && !uri_has_user) {
        explicit_bzero(password, sizeof password);
        return msup_cfg_fail_at(ctx, error, cs, "a password is configured (%s) but the URI (from %s) has no user name",
                       how, c->uri_source);
    }
    if (!msup_cfg_resolve_secret(ctx, error, cs, set[i_tenv], src->tls_password_env, set[i_tfile],
                        src->tls_password_file, tls_password, &have_tls_pw, tls_how, sizeof tls_how)) {
        explicit_bzero(password, sizeof password);
        explicit_bzero(tls_password, sizeof tls_password);
        return false;
    }
    if (have_tls_pw) {
        free(c->tls_certificate_key_file_password);
        if ((c->tls_certificate_key_file_password = strdup(tls_password)) == NULL) {
            explicit_bzero(password, sizeof password);
            explicit_bzero(tls_password, sizeof tls_password);
            return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
        }
        owned[nowned++] = "tlsCertificateKeyFilePassword";
    }
    explicit_bzero(tls_password, sizeof tls_password);
    if (have_pw) {
        size_t len = strlen(c->uri_source);
        snprintf(c->uri_source + len, sizeof c->uri_source - len, ", password from %s", how);
    }

    /* 5. The final string, built from the parts (mongoc_uri_get_string would
     * return the original). */
    msup_strbuf_t d = MSUP_STRBUF_GROWING;
    msup_strbuf_putn(&d, p.scheme, (size_t)(strstr(raw, "://") + 3 - raw));
    if (p.userinfo != NULL) {
        if (have_pw) {
            const char *colon = memchr(p.userinfo, ':', p.userinfo_len);
            msup_strbuf_putn(&d, p.userinfo, colon != NULL ? (size_t)(colon - p.userinfo) : p.userinfo_len);
            msup_strbuf_puts(&d, ":");
            msup_strbuf_put_encoded(&d, password, NULL);
        } else {
            msup_strbuf_putn(&d, p.userinfo, p.userinfo_len);
        }
        msup_strbuf_puts(&d, "@");
    }
    explicit_bzero(password, sizeof password);
    msup_strbuf_putn(&d, p.hosts, p.hosts_len);
    msup_strbuf_puts(&d, "/");
    if (p.db != NULL)
        msup_strbuf_putn(&d, p.db, p.db_len);
    msup_strbuf_puts(&d, "?");
    if (p.opts != NULL) {
        const char *o = p.opts;
        while (*o != '\0') {
            const char *amp = strchr(o, '&');
            size_t n = amp != NULL ? (size_t)(amp - o) : strlen(o);
            const char *eq = memchr(o, '=', n);
            size_t kn = eq != NULL ? (size_t)(eq - o) : n;
            if (n > 0 && !option_owned(o, kn, owned, nowned)) {
                if (msup_strbuf_last(&d) != '?')
                    msup_strbuf_puts(&d, "&");
                msup_strbuf_putn(&d, o, n);
            }
            o = amp != NULL ? amp + 1 : o + n;
        }
    }
    /* The display shows the URI as given plus the options the file changes
     * from the built-in defaults (it has only MSUP_URI_DISPLAY_MAX bytes). */
    msup_strbuf_t disp = MSUP_STRBUF_GROWING;
    msup_strbuf_putn(&disp, d.p, d.len);
    append_options(&d, c, set, FOR_DRIVER, have_tls_pw);
    append_options(&disp, c, set, FOR_DISPLAY, have_tls_pw);
    if (d.oom || disp.oom) {
        msup_strbuf_wipe(&d);
        msup_strbuf_wipe(&disp);
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    }

    /* 6. The result must parse too. */
    mongoc_uri_t *final = mongoc_uri_new_with_error(d.p, &berr);
    if (final == NULL) {
        bool r = fail_uri(ctx, error, cs, "URI with the configured options is invalid:", d.p, c->uri_source,
                          berr.message);
        msup_strbuf_wipe(&d);
        msup_strbuf_wipe(&disp);
        return r;
    }
    c->is_replica_set = mongoc_uri_get_replica_set(final) != NULL;
    mongoc_uri_destroy(final);
    c->uri = d.p;
    mongosup_uri_redact(disp.p, c->uri_display, sizeof c->uri_display, NULL);
    msup_strbuf_wipe(&disp);
    return true;
}
