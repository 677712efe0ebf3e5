/* config_fleet.c: the `fleet` group (etcd endpoints, prefix, host id, lease, credentials) and the per-cluster fleet keys' cross-checks. */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_int.h"
#include "error.h"

/* Secret locations, used while resolving, not kept. */
typedef struct {
    const char *password_env;
    const char *password_file;
} fleet_src_t;

#define F_(f) offsetof(msup_fleet_cfg_t, f)
#define FS_(f) offsetof(fleet_src_t, f)
#define FU32(n, min, max, def) {#n, KT_U32, IN_CFG, F_(n), min, max, def, NULL, NULL}
#define FSTR(n, len) {#n, KT_STR, IN_CFG, F_(n), 0, len, 0, NULL, NULL}
#define FSRC(n, len) {#n, KT_STR, IN_SRC, FS_(n), 0, len, 0, NULL, NULL}

enum {
    FK_ENDPOINTS, FK_PREFIX, FK_HOST_ID, FK_LEASE_TTL, FK_MAX_HOSTS, FK_POLL, FK_LOWER_WAIT, FK_REQUEST_TIMEOUT,
    FK_USERNAME, FK_PASSWORD_ENV, FK_PASSWORD_FILE, FK_TLS_CA, FK_TLS_CERT, FK_TLS_KEY, FK_COUNT
};

static const key_t_ fleet_keys[FK_COUNT] = {
    [FK_ENDPOINTS] = {"endpoints", KT_STRLIST, IN_CFG, F_(endpoints), 0, 255, 0, NULL, NULL},
    [FK_PREFIX] = FSTR(prefix, 200),
    [FK_HOST_ID] = FSTR(host_id, 63),
    [FK_LEASE_TTL] = FU32(lease_ttl_s, 2, 3600, 10),
    [FK_MAX_HOSTS] = FU32(max_hosts, 1, 10000, 16),
    [FK_POLL] = FU32(poll_interval_ms, 50, 60000, 250),
    [FK_LOWER_WAIT] = FU32(lower_wait_ms, 0, 600000, 5000),
    [FK_REQUEST_TIMEOUT] = FU32(request_timeout_ms, 100, 60000, 1000),
    [FK_USERNAME] = FSTR(username, 255),
    [FK_PASSWORD_ENV] = FSRC(password_env, 255),
    [FK_PASSWORD_FILE] = FSRC(password_file, PATH_MAX - 1),
    [FK_TLS_CA] = FSTR(tls_ca_file, PATH_MAX - 1),
    [FK_TLS_CERT] = FSTR(tls_cert_file, PATH_MAX - 1),
    [FK_TLS_KEY] = FSTR(tls_key_file, PATH_MAX - 1),
};

#define DEFAULT_PREFIX "/mongosup/fleet"

/* Host ids and prefixes become etcd keys and log words: a safe alphabet. */
static bool valid_host_id(const char *id)
{
    size_t n = strlen(id);
    if (n < 1 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '_' && id[i] != '-' && id[i] != '.')
            return false;
    return true;
}

static bool valid_prefix(const char *p)
{
    if (p[0] != '/' || strlen(p) < 2 || p[strlen(p) - 1] == '/')
        return false;
    for (const char *c = p; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' && *c != '.' && *c != '/')
            return false;
    return strstr(p, "//") == NULL;
}

static bool valid_endpoint(const char *e)
{
    if (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0)
        return false;
    for (const char *c = e; *c != '\0'; c++)
        if (isspace((unsigned char)*c) || iscntrl((unsigned char)*c))
            return false;
    return strchr(e, '@') == NULL; /* credentials go in username/password, never in a URL that gets logged */
}

bool msup_cfg_parse_fleet(const load_ctx_t *ctx, mongosup_error_t *error, mongosup_config_t *cfg,
                          const config_setting_t *fleet)
{
    msup_fleet_cfg_t *f = &cfg->fleet;
    if (fleet == NULL)
        return true;
    const config_setting_t *set[FK_COUNT] = {0};
    if (!msup_cfg_layer_group(ctx, error, fleet, fleet_keys, FK_COUNT, set))
        return false;
    f->enabled = true;
    snprintf(f->source_file, sizeof f->source_file, "%s", msup_cfg_setting_file(ctx, fleet));
    f->source_line = config_setting_source_line(fleet);
    fleet_src_t src = {0};
    if (!msup_cfg_apply_keys(fleet_keys, FK_COUNT, set, f, &src))
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");

    if (f->endpoints == NULL)
        return msup_cfg_fail_at(ctx, error, fleet, "no endpoints = [\"http://HOST:2379\", ...] list");
    for (size_t i = 0; f->endpoints[i] != NULL; i++)
        if (!valid_endpoint(f->endpoints[i]))
            return msup_cfg_fail_at(ctx, error, set[FK_ENDPOINTS],
                                    "element %zu: \"%.80s\" is not an http:// or https:// URL without user "
                                    "information (credentials go in username and password_env/password_file)",
                                    i + 1, f->endpoints[i]);
    if (f->prefix == NULL && (f->prefix = strdup(DEFAULT_PREFIX)) == NULL)
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    if (!valid_prefix(f->prefix))
        return msup_cfg_fail_at(ctx, error, set[FK_PREFIX],
                                "\"%s\" is not a key prefix like \"/mongosup/fleet\" (starts with '/', no trailing "
                                "'/', [A-Za-z0-9._/-])",
                                f->prefix);
    if (f->host_id == NULL) {
        char host[256] = "";
        if (gethostname(host, sizeof host - 1) != 0 || !valid_host_id(host))
            return msup_cfg_fail_at(ctx, error, fleet,
                                    "the hostname \"%.64s\" is not a valid host id: set host_id (1 to 63 of "
                                    "[A-Za-z0-9._-])",
                                    host);
        if ((f->host_id = strdup(host)) == NULL)
            return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    } else if (!valid_host_id(f->host_id)) {
        return msup_cfg_fail_at(ctx, error, set[FK_HOST_ID], "\"%s\" is not 1 to 63 of [A-Za-z0-9._-]", f->host_id);
    }
    /* The host must notice a lost lease before the server can expire it:
     * its requests must be much shorter than the lease. */
    if (f->request_timeout_ms * 4 > f->lease_ttl_s * 1000u)
        return msup_cfg_fail_at(ctx, error, set[FK_REQUEST_TIMEOUT] != NULL ? set[FK_REQUEST_TIMEOUT] : fleet,
                                "request_timeout_ms %u must be at most a quarter of lease_ttl_s (%u s)",
                                f->request_timeout_ms, f->lease_ttl_s);
    if (f->poll_interval_ms * 2 > f->lease_ttl_s * 1000u)
        return msup_cfg_fail_at(ctx, error, set[FK_POLL] != NULL ? set[FK_POLL] : fleet,
                                "poll_interval_ms %u must be at most half of lease_ttl_s (%u s)", f->poll_interval_ms,
                                f->lease_ttl_s);
    bool has_secret = src.password_env != NULL || src.password_file != NULL;
    if (has_secret && f->username == NULL)
        return msup_cfg_fail_at(ctx, error, set[FK_PASSWORD_ENV] ? set[FK_PASSWORD_ENV] : set[FK_PASSWORD_FILE],
                                "a password without a username");
    if (f->username != NULL) {
        char secret[SECRET_MAX], how[PATH_MAX + 16];
        bool found = false;
        if (!has_secret)
            return msup_cfg_fail_at(ctx, error, set[FK_USERNAME], "username without password_env or password_file");
        if (!msup_cfg_resolve_secret(ctx, error, fleet, set[FK_PASSWORD_ENV], src.password_env,
                                     set[FK_PASSWORD_FILE], src.password_file, secret, &found, how, sizeof how))
            return false;
        f->password = strdup(secret);
        explicit_bzero(secret, sizeof secret);
        if (f->password == NULL)
            return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    }
    if ((f->tls_cert_file == NULL) != (f->tls_key_file == NULL))
        return msup_cfg_fail_at(ctx, error, set[FK_TLS_CERT] ? set[FK_TLS_CERT] : set[FK_TLS_KEY],
                                "tls_cert_file and tls_key_file go together");
    /* TLS files with a plain http:// endpoint would be ignored: that host's
     * traffic, password included, would go in clear. */
    bool has_tls = (f->tls_ca_file != NULL && f->tls_ca_file[0] != '\0') ||
                   (f->tls_cert_file != NULL && f->tls_cert_file[0] != '\0');
    for (size_t i = 0; has_tls && f->endpoints[i] != NULL; i++)
        if (strncmp(f->endpoints[i], "http://", 7) == 0)
            return msup_cfg_fail_at(ctx, error, set[FK_ENDPOINTS],
                                    "element %zu: \"%.80s\" is http:// but the group sets TLS files: use https://",
                                    i + 1, f->endpoints[i]);
    const size_t file_keys[] = {FK_TLS_CA, FK_TLS_CERT, FK_TLS_KEY};
    for (size_t i = 0; i < sizeof file_keys / sizeof file_keys[0]; i++) {
        const char *path = *(char **)(void *)((char *)f + fleet_keys[file_keys[i]].off);
        char why[PATH_MAX + 96];
        if (path != NULL && !msup_cfg_check_not_special(path, why, sizeof why))
            return msup_cfg_fail_at(ctx, error, set[file_keys[i]], "%s", why);
    }
    return true;
}

bool msup_cfg_check_cluster_fleet(const load_ctx_t *ctx, mongosup_error_t *error, const mongosup_config_t *cfg,
                                  msup_cluster_cfg_t *c, const config_setting_t *cs,
                                  const config_setting_t *const *set)
{
    const config_setting_t *s_max = set[msup_cfg_ckey("fleet_max_connections")];
    const config_setting_t *s_floor = set[msup_cfg_ckey("fleet_floor")];
    if (c->fleet_max_connections == 0) {
        if (c->fleet_floor != 0)
            return msup_cfg_fail_at(ctx, error, s_floor, "fleet_floor without fleet_max_connections");
        return true;
    }
    if (!cfg->fleet.enabled)
        return msup_cfg_fail_at(ctx, error, s_max != NULL ? s_max : cs,
                                "fleet_max_connections needs a fleet = { endpoints = [...]; ... } group");
    const msup_fleet_cfg_t *f = &cfg->fleet;
    if (c->fleet_floor == 0)
        c->fleet_floor = c->fleet_max_connections / f->max_hosts;
    /* A cap of 0 means "unlimited" to the budget: every host keeps at least one token. */
    if (c->fleet_floor == 0)
        return msup_cfg_fail_at(ctx, error, s_max != NULL ? s_max : cs,
                                "fleet_max_connections %u leaves no floor for each of fleet.max_hosts %u hosts",
                                c->fleet_max_connections, f->max_hosts);
    /* The partition bound: every host may fall back to its floor at once. */
    if ((uint64_t)c->fleet_floor * f->max_hosts > c->fleet_max_connections)
        return msup_cfg_fail_at(ctx, error, s_floor != NULL ? s_floor : cs,
                                "fleet_floor %u x fleet.max_hosts %u = %llu is more than fleet_max_connections %u: "
                                "the floors of all hosts must fit in the total",
                                c->fleet_floor, f->max_hosts, (unsigned long long)c->fleet_floor * f->max_hosts,
                                c->fleet_max_connections);
    if (c->max_connections != 0 && c->max_connections < c->fleet_floor)
        return msup_cfg_fail_at(ctx, error, set[msup_cfg_ckey("max_connections")],
                                "max_connections %u (this host's ceiling) is below its fleet_floor %u",
                                c->max_connections, c->fleet_floor);
    return true;
}

void msup_cfg_dump_fleet(const msup_fleet_cfg_t *f, FILE *out)
{
    if (!f->enabled)
        return;
    fprintf(out, "fleet = { # %s:%d\n", f->source_file, f->source_line);
    msup_cfg_dump_keys(out, fleet_keys, FK_COUNT, f);
    if (f->password != NULL)
        fprintf(out, "    password = \"***\";\n");
    fprintf(out, "};\n");
}

void msup_cfg_free_fleet(msup_fleet_cfg_t *f)
{
    for (size_t i = 0; f->endpoints != NULL && f->endpoints[i] != NULL; i++)
        free(f->endpoints[i]);
    free(f->endpoints);
    free(f->prefix);
    free(f->host_id);
    free(f->username);
    msup_cfg_free_secret(f->password);
    free(f->tls_ca_file);
    free(f->tls_cert_file);
    free(f->tls_key_file);
    memset(f, 0, sizeof *f);
}
