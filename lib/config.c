/* config.c: reads the libconfig file, layers the defaults, validates every value and
 * resolves each cluster's final URI (environment overrides, passwords, pool options). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <libconfig.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "listen.h"
#include "error.h"
#include "redact.h"
#include "strbuf.h"

#define CFG_E MONGOSUP_E_CONFIG
#define MSG_MAX 496          /* sizeof mongosup_error_t.message */
#define SECRET_MAX 1024      /* longest password read from a file */
#define APPNAME_MAX 128      /* mongoc's limit */

/* ------------------------------------------------------------------------ */
/* The key tables: one row per setting drives validation, defaults, the URI  */
/* options and the dump (docs/configuration.md mirrors them).                */

typedef enum { KT_U32, KT_BOOL, KT_STR, KT_ENUM_INT, KT_ENUM_STR } key_type_t;

/* Where a key's value lands: in the resolved struct, or in the cluster's
 * sources (URI and secret locations, used while resolving, not kept). */
typedef enum { IN_CFG, IN_SRC } key_where_t;

typedef struct {
    const char *name;
    int value;
} choice_t;

typedef struct {
    const char *name;
    key_type_t type;
    key_where_t where;
    size_t off;            /* into msup_cluster_cfg_t / msup_supervisor_cfg_t / cluster_src_t */
    uint32_t min, max;     /* KT_U32: range; KT_STR: max length in bytes */
    uint32_t def;          /* KT_U32 / KT_BOOL default; KT_ENUM_*: index in choices */
    const char *uri_option;/* the URI option it becomes, or NULL */
    const choice_t *choices;
} key_t_;

/* Source strings of a cluster (pointers into the libconfig tree). */
typedef struct {
    const char *mongo_uri;
    const char *uri_env;
    const char *password_env;
    const char *password_file;
    const char *tls_password_env;
    const char *tls_password_file;
} cluster_src_t;

#define C_(f) offsetof(msup_cluster_cfg_t, f)
#define S_(f) offsetof(cluster_src_t, f)
#define U32(n, min, max, def, opt) {#n, KT_U32, IN_CFG, C_(n), min, max, def, opt, NULL}
#define BOOL(n, def, opt) {#n, KT_BOOL, IN_CFG, C_(n), 0, 1, def, opt, NULL}
#define STR(n, len, opt) {#n, KT_STR, IN_CFG, C_(n), 0, len, 0, opt, NULL}
#define SRC(n, f, len) {#n, KT_STR, IN_SRC, S_(f), 0, len, 0, NULL, NULL}

static const key_t_ cluster_keys[] = {
    SRC(mongo_uri, mongo_uri, 8192),
    SRC(uri_env, uri_env, 255),
    STR(database_name, 63, NULL),
    STR(appname, APPNAME_MAX, "appname"),
    U32(max_pool_size, 1, 10000, 100, "maxPoolSize"),
    U32(min_pool_size, 0, 10000, 0, NULL),
    U32(max_idle_time_ms, 0, 86400000, 0, NULL),
    U32(wait_queue_timeout_ms, 0, 3600000, 5000, "waitQueueTimeoutMS"),
    U32(connect_timeout_ms, 1, 300000, 10000, "connectTimeoutMS"),
    U32(socket_timeout_ms, 1, 86400000, 300000, "socketTimeoutMS"),
    U32(server_selection_timeout_ms, 1, 3600000, 30000, "serverSelectionTimeoutMS"),
    U32(heartbeat_frequency_ms, 500, 3600000, 10000, "heartbeatFrequencyMS"),
    BOOL(retry_writes, 1, "retryWrites"),
    BOOL(retry_reads, 1, "retryReads"),
    STR(tls_ca_file, PATH_MAX - 1, "tlsCAFile"),
    STR(tls_certificate_key_file, PATH_MAX - 1, "tlsCertificateKeyFile"),
    SRC(tls_certificate_key_file_password_env, tls_password_env, 255),
    SRC(tls_certificate_key_file_password_file, tls_password_file, PATH_MAX - 1),
    BOOL(tls_allow_invalid_hostnames, 0, "tlsAllowInvalidHostnames"),
    SRC(password_env, password_env, 255),
    SRC(password_file, password_file, PATH_MAX - 1),
    U32(check_interval_ms, 100, 3600000, 2000, NULL),
    U32(check_fastinter_ms, 50, 3600000, 500, NULL),
    U32(check_downinter_ms, 50, 3600000, 1000, NULL),
    U32(check_timeout_ms, 50, 600000, 1000, NULL),
    U32(rise, 1, 1000, 2, NULL),
    U32(fall, 1, 1000, 3, NULL),
    U32(degraded_rtt_ms, 0, 600000, 0, NULL),
    BOOL(circuit_breaker, 1, NULL),
    U32(reconnect_window_ms, 0, 600000, 2000, NULL),
    U32(reconnect_min_interval_ms, 0, 3600000, 5000, NULL),
    U32(reconnect_network_errors_per_s, 0, 1000000, 0, NULL),
    U32(retry_max_attempts, 1, 100, 3, NULL),
    U32(retry_deadline_ms, 0, 3600000, 10000, NULL),
    U32(retry_backoff_ms, 0, 60000, 50, NULL),
    U32(max_connections, 0, 1000000, 0, NULL),
    U32(max_connecting, 0, 100000, 0, NULL),
};
#define N_CLUSTER_KEYS (sizeof cluster_keys / sizeof cluster_keys[0])

#undef U32
#undef BOOL
#undef STR
#define V_(f) offsetof(msup_supervisor_cfg_t, f)
#define U32(n, min, max, def) {#n, KT_U32, IN_CFG, V_(n), min, max, def, NULL, NULL}

static const choice_t log_choices[] = {{"stderr", 0}, {"syslog", 1}, {NULL, 0}};
static const choice_t level_choices[] = {{"error", LOG_ERR},   {"warning", LOG_WARNING},
                                         {"notice", LOG_NOTICE}, {"info", LOG_INFO},
                                         {"debug", LOG_DEBUG},  {NULL, 0}};
static const choice_t signal_choices[] = {{"none", 0},       {"TERM", SIGTERM}, {"QUIT", SIGQUIT},
                                          {"INT", SIGINT},    {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
                                          {"HUP", SIGHUP},    {NULL, 0}};
static const choice_t escalate_choices[] = {{"term-kill", 0}, {"kill", 1}, {"none", 2}, {NULL, 0}};

static const key_t_ supervisor_keys[] = {
    {"pidfile", KT_STR, IN_CFG, V_(pidfile), 0, PATH_MAX - 1, 0, NULL, NULL},
    {"log", KT_ENUM_STR, IN_CFG, V_(log), 0, 0, 0, NULL, log_choices},
    {"log_level", KT_ENUM_INT, IN_CFG, V_(log_level), 0, 0, 3, NULL, level_choices},
    U32(heartbeat_interval_ms, 10, 60000, 250),
    U32(heartbeat_timeout_ms, 100, 600000, 3000),
    U32(reap_interval_ms, 10, 60000, 500),
    U32(drain_timeout_ms, 0, 86400000, 30000),
    {"shutdown_signal", KT_ENUM_INT, IN_CFG, V_(shutdown_signal), 0, 0, 0, NULL, signal_choices},
    {"escalate", KT_ENUM_STR, IN_CFG, V_(escalate), 0, 0, 0, NULL, escalate_choices},
    U32(escalate_grace_ms, 0, 600000, 2000),
    {"keep_segment", KT_BOOL, IN_CFG, V_(keep_segment), 0, 1, 0, NULL, NULL},
    {"metrics_listen", KT_STR, IN_CFG, V_(metrics_listen), 0, 255, 0, NULL, NULL},
};
#define N_SUPERVISOR_KEYS (sizeof supervisor_keys / sizeof supervisor_keys[0])

/* The segment block is small and every key has its own rule: names only. */
static const key_t_ segment_keys[] = {
    {"name", KT_STR, IN_CFG, 0, 0, MSUP_NAME_MAX - 1, 0, NULL, NULL},
    {"mode", KT_STR, IN_CFG, 0, 0, 8, 0, NULL, NULL},
    {"group", KT_STR, IN_CFG, 0, 0, 255, 0, NULL, NULL},
    {"max_workers", KT_U32, IN_CFG, 0, 1, MSUP_MAX_WORKERS, 64, NULL, NULL},
    {"max_clusters", KT_U32, IN_CFG, 0, 1, MSUP_MAX_CLUSTERS, 8, NULL, NULL},
    {"owner", KT_STR, IN_CFG, 0, 0, 255, 0, NULL, NULL},
};
#define N_SEGMENT_KEYS (sizeof segment_keys / sizeof segment_keys[0])

static const char *const root_names[] = {"segment", "supervisor", "default_environment", "defaults",
                                         "environments", NULL};
static const char *const env_names[] = {"defaults", "clusters", NULL};

/* ------------------------------------------------------------------------ */
/* Locations and messages                                                     */

/* Writes "a.b.c", the path of s from the root. */
static void setting_path(const config_setting_t *s, char *buf, size_t n)
{
    const config_setting_t *chain[32];
    size_t depth = 0;
    for (const config_setting_t *p = s; p != NULL && depth < 32; p = config_setting_parent(p))
        if (config_setting_name(p) != NULL)
            chain[depth++] = p;
    buf[0] = '\0';
    size_t len = 0;
    while (depth > 0 && len + 1 < n) {
        const config_setting_t *p = chain[--depth];
        int w = snprintf(buf + len, n - len, "%s%s", len > 0 ? "." : "", config_setting_name(p));
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

typedef struct {
    const char *path; /* the file given to mongosup_config_load */
} load_ctx_t;

static const char *setting_file(const load_ctx_t *ctx, const config_setting_t *s)
{
    const char *f = config_setting_source_file(s);
    return f != NULL ? f : ctx->path;
}

/* "FILE:LINE: a.b.c: message"; returns false. */
static bool fail_at(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *s,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static bool fail_at(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *s,
                    const char *fmt, ...)
{
    char where[128];
    char msg[MSG_MAX];
    setting_path(s, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return msup_fail(error, CFG_E, "%s:%u: %s%s%s", setting_file(ctx, s),
                     (unsigned)config_setting_source_line(s), where, where[0] != '\0' ? ": " : "", msg);
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Names of a list (from a key table or a NULL-terminated array). */
typedef struct {
    const key_t_ *keys;
    size_t nkeys;
    const char *const *names;
} namelist_t;

static size_t nl_count(const namelist_t *nl)
{
    if (nl->keys != NULL)
        return nl->nkeys;
    size_t n = 0;
    while (nl->names[n] != NULL)
        n++;
    return n;
}

static const char *nl_name(const namelist_t *nl, size_t i)
{
    return nl->keys != NULL ? nl->keys[i].name : nl->names[i];
}

/* "unknown key (did you mean X?); valid keys: a, b, ..." fitted in a message. */
static bool fail_unknown(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *s,
                         const namelist_t *nl, const char *what)
{
    const char *bad = config_setting_name(s);
    size_t n = nl_count(nl);
    const char *near = NULL;
    size_t near_d = 4;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(bad, nl_name(nl, i));
        if (d < near_d) {
            near_d = d;
            near = nl_name(nl, i);
        }
    }
    char list[360];
    size_t len = 0;
    list[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *name = nl_name(nl, i);
        if (len + strlen(name) + 7 >= sizeof list) {
            snprintf(list + len, sizeof list - len, ", ...");
            break;
        }
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i > 0 ? ", " : "", name);
    }
    char hint[96] = "";
    if (near != NULL)
        snprintf(hint, sizeof hint, " (did you mean %s?)", near);
    return fail_at(ctx, error, s, "unknown %s%s; valid: %s", what, hint, list);
}

static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP: return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64: return "an integer";
    case CONFIG_TYPE_FLOAT: return "a float";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL: return "a boolean";
    case CONFIG_TYPE_ARRAY: return "an array";
    case CONFIG_TYPE_LIST: return "a list";
    default: return "something else";
    }
}

static bool expect_group(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *s)
{
    if (config_setting_type(s) == CONFIG_TYPE_GROUP)
        return true;
    return fail_at(ctx, error, s, "expected a group { ... }, got %s", type_name(config_setting_type(s)));
}

static const key_t_ *find_key(const key_t_ *keys, size_t n, const char *name, size_t *idx)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].name, name) == 0) {
            if (idx != NULL)
                *idx = i;
            return &keys[i];
        }
    return NULL;
}

/* Index of a cluster key that the code names (a missing one is a bug). */
static size_t ckey(const char *name)
{
    size_t idx = 0;
    if (find_key(cluster_keys, N_CLUSTER_KEYS, name, &idx) == NULL)
        abort();
    return idx;
}

static bool name_in(const char *const *names, const char *name)
{
    for (; *names != NULL; names++)
        if (strcmp(*names, name) == 0)
            return true;
    return false;
}

static const choice_t *find_choice(const choice_t *c, const char *name)
{
    for (; c->name != NULL; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* Checks one value against its key's type and range. */
static bool check_value(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *s,
                        const key_t_ *k)
{
    int t = config_setting_type(s);
    switch (k->type) {
    case KT_U32: {
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            return fail_at(ctx, error, s, "expected an integer, got %s", type_name(t));
        long long v = config_setting_get_int64(s);
        if (v < (long long)k->min || v > (long long)k->max)
            return fail_at(ctx, error, s, "%lld is out of range %u..%u", v, k->min, k->max);
        return true;
    }
    case KT_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            return fail_at(ctx, error, s, "expected true or false, got %s", type_name(t));
        return true;
    case KT_STR:
        if (t != CONFIG_TYPE_STRING)
            return fail_at(ctx, error, s, "expected a string, got %s", type_name(t));
        if (strlen(config_setting_get_string(s)) > k->max)
            return fail_at(ctx, error, s, "longer than %u bytes", k->max);
        return true;
    case KT_ENUM_INT:
    case KT_ENUM_STR: {
        if (t != CONFIG_TYPE_STRING)
            return fail_at(ctx, error, s, "expected a string, got %s", type_name(t));
        const char *v = config_setting_get_string(s);
        if (find_choice(k->choices, v) != NULL)
            return true;
        char list[160];
        size_t len = 0;
        list[0] = '\0';
        for (const choice_t *c = k->choices; c->name != NULL && len < sizeof list; c++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s\"%s\"", len > 0 ? ", " : "", c->name);
        return fail_at(ctx, error, s, "\"%s\" is not one of %s", v, list);
    }
    }
    return false;
}

/* Validates every member of a group against a key table; records which
 * setting provides each key (later groups override earlier ones). */
static bool layer_group(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *group,
                        const key_t_ *keys, size_t nkeys, const config_setting_t **set)
{
    if (group == NULL)
        return true;
    if (!expect_group(ctx, error, group))
        return false;
    namelist_t nl = {keys, nkeys, NULL};
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        size_t idx;
        const key_t_ *k = find_key(keys, nkeys, config_setting_name(m), &idx);
        if (k == NULL)
            return fail_unknown(ctx, error, m, &nl, "key");
        if (!check_value(ctx, error, m, k))
            return false;
        if (set != NULL)
            set[idx] = m;
    }
    return true;
}

/* Stores the value of each key (the winning setting, else the default). */
static bool apply_keys(const key_t_ *keys, size_t nkeys, const config_setting_t *const *set,
                       void *cfg_base, void *src_base)
{
    for (size_t i = 0; i < nkeys; i++) {
        const key_t_ *k = &keys[i];
        char *base = k->where == IN_CFG ? cfg_base : src_base;
        const config_setting_t *s = set[i];
        switch (k->type) {
        case KT_U32:
            *(uint32_t *)(void *)(base + k->off) =
                s != NULL ? (uint32_t)config_setting_get_int64(s) : k->def;
            break;
        case KT_BOOL:
            *(bool *)(void *)(base + k->off) = s != NULL ? config_setting_get_bool(s) != 0 : k->def != 0;
            break;
        case KT_STR: {
            const char *v = s != NULL ? config_setting_get_string(s) : NULL;
            if (v != NULL && *v == '\0')
                v = NULL;
            if (k->where == IN_SRC) {
                *(const char **)(void *)(base + k->off) = v;
            } else if (v != NULL) {
                char *copy = strdup(v);
                if (copy == NULL)
                    return false;
                *(char **)(void *)(base + k->off) = copy;
            }
            break;
        }
        case KT_ENUM_INT:
        case KT_ENUM_STR: {
            const choice_t *c = s != NULL ? find_choice(k->choices, config_setting_get_string(s))
                                          : &k->choices[k->def];
            if (k->type == KT_ENUM_INT) {
                *(int *)(void *)(base + k->off) = c->value;
            } else {
                char *copy = strdup(c->name);
                if (copy == NULL)
                    return false;
                *(char **)(void *)(base + k->off) = copy;
            }
            break;
        }
        }
    }
    return true;
}

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > MSUP_NAME_MAX - 1)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-')
            return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* The final URI (built with lib/strbuf.h)                                    */

static void uri_add_option(msup_strbuf_t *d, const char *name, const char *value)
{
    msup_strbuf_puts(d, msup_strbuf_last(d) == '?' ? "" : "&");
    msup_strbuf_puts(d, name);
    msup_strbuf_puts(d, "=");
    msup_strbuf_put_encoded(d, value, "/:");
}

/* ------------------------------------------------------------------------ */
/* Secrets                                                                    */

/* Reads a secret file: refuses a world-readable or non-regular file, strips
 * the trailing newline(s).  secret gets SECRET_MAX bytes. */
static bool read_secret_file(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *s,
                             const char *path, char *secret)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        return fail_at(ctx, error, s, "cannot open %s: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail_at(ctx, error, s, "%s is not a regular file", path);
    }
    if ((st.st_mode & S_IROTH) != 0) {
        close(fd);
        return fail_at(ctx, error, s, "%s is readable by everyone (mode %04o): refusing it; chmod o-r it",
                       path, (unsigned)(st.st_mode & 07777));
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, secret + len, SECRET_MAX - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return fail_at(ctx, error, s, "cannot read %s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == SECRET_MAX - 1) {
            close(fd);
            return fail_at(ctx, error, s, "%s is longer than %d bytes", path, SECRET_MAX - 2);
        }
    }
    close(fd);
    while (len > 0 && (secret[len - 1] == '\n' || secret[len - 1] == '\r'))
        len--;
    secret[len] = '\0';
    if (len == 0)
        return fail_at(ctx, error, s, "%s is empty", path);
    if (memchr(secret, '\0', len) != NULL)
        return fail_at(ctx, error, s, "%s contains a NUL byte", path);
    return true;
}

/* A secret from the variable named by env_key (when set and non-empty), else
 * from the file of file_key.  *found is false when neither is configured. */
static bool resolve_secret(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *cs,
                           const config_setting_t *env_set, const char *env_name,
                           const config_setting_t *file_set, const char *file_path, char *secret,
                           bool *found, char *how, size_t how_len)
{
    *found = false;
    if (env_name != NULL) {
        const char *v = getenv(env_name);
        if (v != NULL && *v != '\0') {
            if (strlen(v) >= SECRET_MAX)
                return fail_at(ctx, error, env_set, "$%s is longer than %d bytes", env_name, SECRET_MAX - 1);
            strcpy(secret, v);
            snprintf(how, how_len, "$%s", env_name);
            *found = true;
            return true;
        }
        if (file_path == NULL)
            return fail_at(ctx, error, env_set != NULL ? env_set : cs,
                           "environment variable %s is not set (and no file is configured)", env_name);
    }
    if (file_path != NULL) {
        if (!read_secret_file(ctx, error, file_set != NULL ? file_set : cs, file_path, secret))
            return false;
        snprintf(how, how_len, "file %s", file_path);
        *found = true;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* URI                                                                        */

static void lower_copy(char *out, size_t n, const char *in)
{
    size_t i = 0;
    for (; in[i] != '\0' && i + 1 < n; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

static void cluster_env_var(const char *cluster, char *out, size_t n)
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

/* Appends the URI options of the key table from the resolved values (all of
 * them, or for the display only those set in the file to a value other than
 * the built-in default), then the TLS key password. */
static void append_options(msup_strbuf_t *d, const msup_cluster_cfg_t *c, const config_setting_t *const *set,
                           bool only_explicit, bool tls_password)
{
    for (size_t i = 0; i < N_CLUSTER_KEYS; i++) {
        const key_t_ *k = &cluster_keys[i];
        if (k->uri_option == NULL || (only_explicit && set[i] == NULL))
            continue;
        const char *field = (const char *)c + k->off;
        char num[16];
        if (only_explicit && ((k->type == KT_U32 && *(const uint32_t *)(const void *)field == k->def) ||
                              (k->type == KT_BOOL && *(const bool *)(const void *)field == (k->def != 0))))
            continue;
        if (k->type == KT_U32) {
            snprintf(num, sizeof num, "%u", *(const uint32_t *)(const void *)field);
            uri_add_option(d, k->uri_option, num);
        } else if (k->type == KT_BOOL) {
            /* mongoc 1.23 turns TLS on when any tls* option is present, even
             * "false": leave a false TLS option out. */
            if (!*(const bool *)(const void *)field && strncmp(k->uri_option, "tls", 3) == 0)
                continue;
            uri_add_option(d, k->uri_option, *(const bool *)(const void *)field ? "true" : "false");
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
    return fail_at(ctx, error, cs, "%s %s (from %s): %s", what, shown, source, msg);
}

/* Builds c->uri from the raw URI, the password and the option keys. */
static bool resolve_uri(const load_ctx_t *ctx, mongosup_error_t *error, msup_cluster_cfg_t *c,
                        const config_setting_t *cs, const cluster_src_t *src,
                        const config_setting_t *const *set)
{
    /* 1. Which URI: file < uri_env < MONGOSUP_<CLUSTER>_URI. */
    const char *raw = NULL;
    char env_var[MSUP_NAME_MAX + 16];
    cluster_env_var(c->name, env_var, sizeof env_var);
    size_t mongo_uri_idx = ckey("mongo_uri");
    if (src->mongo_uri != NULL) {
        raw = src->mongo_uri;
        snprintf(c->uri_source, sizeof c->uri_source, "mongo_uri at %s:%u",
                 setting_file(ctx, set[mongo_uri_idx]), (unsigned)config_setting_source_line(set[mongo_uri_idx]));
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
            return fail_at(ctx, error, cs, "no URI: $%s (uri_env) and $%s are not set and there is no mongo_uri",
                           src->uri_env, env_var);
        return fail_at(ctx, error, cs, "no URI: set mongo_uri, uri_env or $%s", env_var);
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
        return fail_at(ctx, error, cs, "invalid URI %s (from %s): the user information has an unescaped '@' "
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
            return fail_at(ctx, error, cs,
                           "URI option %s (from %s) is not honoured by mongo-c-driver 1.23: remove it and "
                           "use the config key %s",
                           ignored[i].shown, c->uri_source, ignored[i].key);
        return fail_at(ctx, error, cs,
                       "URI option %s (from %s) is not supported: remove it (the wait is bounded by "
                       "wait_queue_timeout_ms)",
                       ignored[i].shown, c->uri_source);
    }

    /* 3. Option keys: explicit config key > URI option > built-in default. */
    const char *owned[N_CLUSTER_KEYS + 1];
    size_t nowned = 0;
    for (size_t i = 0; i < N_CLUSTER_KEYS; i++) {
        const key_t_ *k = &cluster_keys[i];
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
                    return fail_at(ctx, error, cs, "URI option %s=%d (from %s) is out of range %u..%u",
                                   k->uri_option, val, c->uri_source, k->min, k->max);
                }
                *(uint32_t *)(void *)field = (uint32_t)val;
            } else if (k->type == KT_BOOL) {
                *(bool *)(void *)field = mongoc_uri_get_option_as_bool(u, lc, false);
            } else {
                const char *sv = mongoc_uri_get_option_as_utf8(u, lc, NULL);
                if (sv != NULL && strlen(sv) > k->max) {
                    mongoc_uri_destroy(u);
                    return fail_at(ctx, error, cs, "URI option %s (from %s) is longer than %u bytes",
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
    size_t i_penv = ckey("password_env"), i_pfile = ckey("password_file");
    size_t i_tenv = ckey("tls_certificate_key_file_password_env");
    size_t i_tfile = ckey("tls_certificate_key_file_password_file");
    char password[SECRET_MAX];
    char tls_password[SECRET_MAX];
    char how[PATH_MAX + 8], tls_how[PATH_MAX + 8];
    bool have_pw, have_tls_pw;
    if (!resolve_secret(ctx, error, cs, set[i_penv], src->password_env, set[i_pfile], src->password_file,
                        password, &have_pw, how, sizeof how)) {
        explicit_bzero(password, sizeof password);
        return false;
    }
    if (have_pw && !uri_has_user) {
        explicit_bzero(password, sizeof password);
        return fail_at(ctx, error, cs, "a password is configured (%s) but the URI (from %s) has no user name",
                       how, c->uri_source);
    }
    if (!resolve_secret(ctx, error, cs, set[i_tenv], src->tls_password_env, set[i_tfile],
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
    append_options(&d, c, set, false, have_tls_pw);
    append_options(&disp, c, set, true, have_tls_pw);
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

/* ------------------------------------------------------------------------ */
/* Clusters, segment, supervisor                                              */

static bool resolve_cluster(const load_ctx_t *ctx, mongosup_error_t *error, msup_cluster_cfg_t *c,
                            const config_setting_t *file_defaults, const config_setting_t *env_defaults,
                            const config_setting_t *cs)
{
    const config_setting_t *set[N_CLUSTER_KEYS] = {0};
    if (!layer_group(ctx, error, file_defaults, cluster_keys, N_CLUSTER_KEYS, set) ||
        !layer_group(ctx, error, env_defaults, cluster_keys, N_CLUSTER_KEYS, set) ||
        !layer_group(ctx, error, cs, cluster_keys, N_CLUSTER_KEYS, set))
        return false;

    snprintf(c->name, sizeof c->name, "%s", config_setting_name(cs));
    snprintf(c->source_file, sizeof c->source_file, "%s", setting_file(ctx, cs));
    c->source_line = config_setting_source_line(cs);
    cluster_src_t src = {0};
    if (!apply_keys(cluster_keys, N_CLUSTER_KEYS, set, c, &src))
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    if (!resolve_uri(ctx, error, c, cs, &src, set))
        return false;

    /* Cross-field rules, reported at the setting that breaks them. */
    size_t i_min = ckey("min_pool_size"), i_conn = ckey("max_connecting");
    size_t i_tmo = ckey("check_timeout_ms"), i_len = ckey("appname");
    if (c->min_pool_size > c->max_pool_size)
        return fail_at(ctx, error, set[i_min] != NULL ? set[i_min] : cs,
                       "min_pool_size %u is larger than max_pool_size %u", c->min_pool_size, c->max_pool_size);
    if (c->max_connections != 0 && c->max_connecting != 0 && c->max_connecting > c->max_connections)
        return fail_at(ctx, error, set[i_conn] != NULL ? set[i_conn] : cs,
                       "max_connecting %u is larger than max_connections %u", c->max_connecting,
                       c->max_connections);
    if (c->check_timeout_ms >= c->check_interval_ms)
        return fail_at(ctx, error, set[i_tmo] != NULL ? set[i_tmo] : cs,
                       "check_timeout_ms %u must be smaller than check_interval_ms %u", c->check_timeout_ms,
                       c->check_interval_ms);
    if (c->appname != NULL && strlen(c->appname) > APPNAME_MAX)
        return fail_at(ctx, error, set[i_len] != NULL ? set[i_len] : cs, "appname is longer than %d bytes",
                       APPNAME_MAX);
    return true;
}

static bool parse_segment(const load_ctx_t *ctx, mongosup_error_t *error, mongosup_config_t *cfg,
                          const config_setting_t *seg, const config_setting_t **max_clusters_set)
{
    const config_setting_t *set[N_SEGMENT_KEYS] = {0};
    if (!layer_group(ctx, error, seg, segment_keys, N_SEGMENT_KEYS, set))
        return false;

    if (set[0] != NULL) {
        const char *name = config_setting_get_string(set[0]);
        if (name[0] != '/' || strchr(name + 1, '/') != NULL || name[1] == '\0')
            return fail_at(ctx, error, set[0], "\"%s\" must start with '/' and contain no other '/'", name);
        snprintf(cfg->segment_name, sizeof cfg->segment_name, "%s", name);
    } else if (snprintf(cfg->segment_name, sizeof cfg->segment_name, "/mongosup.%s", cfg->environment) >=
               (int)sizeof cfg->segment_name) {
        return msup_fail(error, CFG_E, "%s: segment.name: the default /mongosup.%s is too long: set a name",
                         ctx->path, cfg->environment);
    }

    cfg->segment_group = (gid_t)-1;
    if (set[2] != NULL && config_setting_get_string(set[2])[0] != '\0') {
        const char *g = config_setting_get_string(set[2]);
        char *end;
        errno = 0;
        unsigned long gid = strtoul(g, &end, 10);
        if (*end == '\0' && errno == 0 && gid < (gid_t)-1) {
            cfg->segment_group = (gid_t)gid;
        } else {
            char buf[4096];
            struct group gr, *res = NULL;
            int rc = getgrnam_r(g, &gr, buf, sizeof buf, &res);
            if (rc != 0 || res == NULL)
                return fail_at(ctx, error, set[2], "no such group \"%s\"", g);
            cfg->segment_group = gr.gr_gid;
        }
    }

    cfg->segment_mode = cfg->segment_group != (gid_t)-1 ? 0640 : 0600;
    if (set[1] != NULL) {
        const char *m = config_setting_get_string(set[1]);
        char *end;
        unsigned long mode = strtoul(m, &end, 8);
        if (m[0] == '\0' || *end != '\0' || strspn(m, "01234567") != strlen(m) || mode > 0777)
            return fail_at(ctx, error, set[1], "\"%s\" is not an octal mode like \"0600\" or \"0640\"", m);
        if ((mode & 0600) != 0600)
            return fail_at(ctx, error, set[1], "%s: the owner needs read and write (0600)", m);
        if ((mode & 0002) != 0)
            return fail_at(ctx, error, set[1], "%s: a world-writable segment lets anyone corrupt it", m);
        cfg->segment_mode = (mode_t)mode;
    }
    /* Another uid whose segments readers and workers accept (docs/security.md). */
    cfg->segment_owner = (uid_t)-1;
    if (set[5] != NULL && config_setting_get_string(set[5])[0] != '\0') {
        const char *o = config_setting_get_string(set[5]);
        char *end;
        errno = 0;
        unsigned long uid = strtoul(o, &end, 10);
        if (*end == '\0' && errno == 0 && uid < (uid_t)-1) {
            cfg->segment_owner = (uid_t)uid;
        } else {
            char buf[4096];
            struct passwd pw, *res = NULL;
            int rc = getpwnam_r(o, &pw, buf, sizeof buf, &res);
            if (rc != 0 || res == NULL)
                return fail_at(ctx, error, set[5], "no such user \"%s\"", o);
            cfg->segment_owner = pw.pw_uid;
        }
    }
    cfg->max_workers = set[3] != NULL ? (uint32_t)config_setting_get_int64(set[3]) : segment_keys[3].def;
    cfg->max_clusters = set[4] != NULL ? (uint32_t)config_setting_get_int64(set[4]) : 0;
    *max_clusters_set = set[4];
    return true;
}

static bool parse_supervisor(const load_ctx_t *ctx, mongosup_error_t *error, mongosup_config_t *cfg,
                             const config_setting_t *sup)
{
    const config_setting_t *set[N_SUPERVISOR_KEYS] = {0};
    if (!layer_group(ctx, error, sup, supervisor_keys, N_SUPERVISOR_KEYS, set))
        return false;
    msup_supervisor_cfg_t *s = &cfg->supervisor;
    if (!apply_keys(supervisor_keys, N_SUPERVISOR_KEYS, set, s, NULL))
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    if (s->heartbeat_timeout_ms <= s->heartbeat_interval_ms) {
        size_t i = 0;
        find_key(supervisor_keys, N_SUPERVISOR_KEYS, "heartbeat_timeout_ms", &i);
        return fail_at(ctx, error, set[i] != NULL ? set[i] : sup,
                       "heartbeat_timeout_ms %u must be larger than heartbeat_interval_ms %u",
                       s->heartbeat_timeout_ms, s->heartbeat_interval_ms);
    }
    if (s->metrics_listen != NULL) {
        size_t i = 0;
        find_key(supervisor_keys, N_SUPERVISOR_KEYS, "metrics_listen", &i);
        char host[256], port[8];
        mongosup_error_t why;
        if (!msup_listen_parse(s->metrics_listen, true, host, sizeof host, port, sizeof port, &why))
            return fail_at(ctx, error, set[i], "%s", why.message);
    }
    return true;
}

/* Lists the names of a group's members, for "valid: ..." messages. */
static void member_names(const config_setting_t *g, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; g != NULL && i < config_setting_length(g) && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", i > 0 ? ", " : "",
                                config_setting_name(config_setting_get_elem(g, (unsigned)i)));
}

/* Structure of one environment: known members, groups, valid cluster names
 * and values (every environment is checked, not only the chosen one). */
static bool check_environment(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *env)
{
    if (!valid_name(config_setting_name(env)))
        return fail_at(ctx, error, env, "environment names are 1 to %d of [A-Za-z0-9_-]", MSUP_NAME_MAX - 1);
    if (!expect_group(ctx, error, env))
        return false;
    namelist_t nl = {NULL, 0, env_names};
    for (int i = 0; i < config_setting_length(env); i++) {
        const config_setting_t *m = config_setting_get_elem(env, (unsigned)i);
        if (!name_in(env_names, config_setting_name(m)))
            return fail_unknown(ctx, error, m, &nl, "key");
    }
    const config_setting_t *defs = config_setting_get_member(env, "defaults");
    if (!layer_group(ctx, error, defs, cluster_keys, N_CLUSTER_KEYS, NULL))
        return false;
    const config_setting_t *clusters = config_setting_get_member(env, "clusters");
    if (clusters == NULL)
        return fail_at(ctx, error, env, "no clusters = { ... } group");
    if (!expect_group(ctx, error, clusters))
        return false;
    for (int i = 0; i < config_setting_length(clusters); i++) {
        const config_setting_t *cs = config_setting_get_elem(clusters, (unsigned)i);
        if (!valid_name(config_setting_name(cs)))
            return fail_at(ctx, error, cs, "cluster names are 1 to %d of [A-Za-z0-9_-]", MSUP_NAME_MAX - 1);
        if (!layer_group(ctx, error, cs, cluster_keys, N_CLUSTER_KEYS, NULL))
            return false;
    }
    return true;
}

static bool load_root(const load_ctx_t *ctx, mongosup_error_t *error, mongosup_config_t *cfg,
                      const config_setting_t *root, const char *environment)
{
    namelist_t nl = {NULL, 0, root_names};
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *m = config_setting_get_elem(root, (unsigned)i);
        if (!name_in(root_names, config_setting_name(m)))
            return fail_unknown(ctx, error, m, &nl, "top-level setting");
    }
    const config_setting_t *envs = config_setting_get_member(root, "environments");
    if (envs == NULL)
        return msup_fail(error, CFG_E, "%s: no environments = { ... } group", ctx->path);
    if (!expect_group(ctx, error, envs))
        return false;
    if (config_setting_length(envs) == 0)
        return fail_at(ctx, error, envs, "no environment is defined");
    for (int i = 0; i < config_setting_length(envs); i++)
        if (!check_environment(ctx, error, config_setting_get_elem(envs, (unsigned)i)))
            return false;
    const config_setting_t *file_defaults = config_setting_get_member(root, "defaults");
    if (!layer_group(ctx, error, file_defaults, cluster_keys, N_CLUSTER_KEYS, NULL))
        return false;

    char valid[320];
    member_names(envs, valid, sizeof valid);
    const config_setting_t *def_env = config_setting_get_member(root, "default_environment");
    if (def_env != NULL) {
        if (config_setting_type(def_env) != CONFIG_TYPE_STRING)
            return fail_at(ctx, error, def_env, "expected a string, got %s", type_name(config_setting_type(def_env)));
        if (config_setting_get_member(envs, config_setting_get_string(def_env)) == NULL)
            return fail_at(ctx, error, def_env, "unknown environment \"%s\"; valid: %s",
                           config_setting_get_string(def_env), valid);
    }

    /* The environment: argument > $MONGOSUP_ENV > default_environment. */
    const char *chosen = environment, *from = "the caller";
    if (chosen == NULL || *chosen == '\0') {
        chosen = getenv("MONGOSUP_ENV");
        from = "$MONGOSUP_ENV";
    }
    if (chosen == NULL || *chosen == '\0') {
        chosen = def_env != NULL ? config_setting_get_string(def_env) : NULL;
        from = "default_environment";
    }
    if (chosen == NULL)
        return msup_fail(error, CFG_E,
                         "%s: no environment chosen: pass one, set MONGOSUP_ENV or default_environment; valid: %s",
                         ctx->path, valid);
    const config_setting_t *env = config_setting_get_member(envs, chosen);
    if (env == NULL || !valid_name(chosen))
        return fail_at(ctx, error, envs, "unknown environment \"%.63s\" (from %s); valid: %s", chosen, from, valid);
    snprintf(cfg->environment, sizeof cfg->environment, "%s", chosen);

    const config_setting_t *max_clusters_set = NULL;
    const config_setting_t *seg = config_setting_get_member(root, "segment");
    if (!parse_segment(ctx, error, cfg, seg, &max_clusters_set))
        return false;
    if (!parse_supervisor(ctx, error, cfg, config_setting_get_member(root, "supervisor")))
        return false;

    const config_setting_t *env_defaults = config_setting_get_member(env, "defaults");
    const config_setting_t *clusters = config_setting_get_member(env, "clusters");
    size_t n = (size_t)config_setting_length(clusters);
    if (n == 0)
        return fail_at(ctx, error, clusters, "no cluster in environment %s", chosen);
    if (n > MSUP_MAX_CLUSTERS)
        return fail_at(ctx, error, clusters, "%zu clusters: at most %d", n, MSUP_MAX_CLUSTERS);
    if (cfg->max_clusters == 0)
        cfg->max_clusters = n > segment_keys[4].def ? (uint32_t)n : segment_keys[4].def;
    else if (n > cfg->max_clusters)
        return fail_at(ctx, error, max_clusters_set, "%u is smaller than the %zu clusters of environment %s",
                       cfg->max_clusters, n, chosen);
    cfg->clusters = calloc(n, sizeof *cfg->clusters);
    if (cfg->clusters == NULL)
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *cs = config_setting_get_elem(clusters, (unsigned)i);
        cfg->cluster_count = i + 1; /* so that destroy frees a half-made entry */
        if (!resolve_cluster(ctx, error, &cfg->clusters[i], file_defaults, env_defaults, cs))
            return false;
        char vi[MSUP_NAME_MAX + 16], vj[MSUP_NAME_MAX + 16];
        cluster_env_var(cfg->clusters[i].name, vi, sizeof vi);
        for (size_t j = 0; j < i; j++) {
            cluster_env_var(cfg->clusters[j].name, vj, sizeof vj);
            if (strcmp(vi, vj) == 0)
                return fail_at(ctx, error, cs, "clusters %s and %s would both read $%s: rename one",
                               cfg->clusters[j].name, cfg->clusters[i].name, vi);
        }
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                 */

mongosup_config_t *mongosup_config_load(const char *path, const char *environment, mongosup_error_t *error)
{
    if (path == NULL) {
        msup_fail(error, MONGOSUP_E_INVALID_ARG, "mongosup_config_load: path is NULL");
        return NULL;
    }
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        msup_fail_errno(error, CFG_E, "%s: cannot open", path);
        return NULL;
    }
    config_t lc;
    config_init(&lc);
    char *dir = strdup(path);
    if (dir != NULL) {
        char *slash = strrchr(dir, '/');
        if (slash != NULL) {
            slash[slash == dir ? 1 : 0] = '\0';
            config_set_include_dir(&lc, dir);
        }
    }
    int ok = config_read(&lc, f);
    fclose(f);
    mongosup_config_t *cfg = NULL;
    if (!ok) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            msup_fail(error, CFG_E, "%s: cannot read: %s", config_error_file(&lc) != NULL ? config_error_file(&lc) : path,
                      config_error_text(&lc));
        else
            msup_fail(error, CFG_E, "%s:%d: %s", config_error_file(&lc) != NULL ? config_error_file(&lc) : path,
                      config_error_line(&lc), config_error_text(&lc));
        goto out;
    }
    cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL || (cfg->path = strdup(path)) == NULL) {
        msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
        mongosup_config_destroy(&cfg);
        goto out;
    }
    load_ctx_t ctx = {path};
    if (!load_root(&ctx, error, cfg, config_root_setting(&lc), environment))
        mongosup_config_destroy(&cfg);
    else
        msup_error_clear(error);
out:
    config_destroy(&lc);
    free(dir);
    return cfg;
}

static void free_secret(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void mongosup_config_destroy(mongosup_config_t **config)
{
    if (config == NULL || *config == NULL)
        return;
    mongosup_config_t *cfg = *config;
    for (size_t i = 0; i < cfg->cluster_count; i++) {
        msup_cluster_cfg_t *c = &cfg->clusters[i];
        free_secret(c->uri);
        free(c->database_name);
        free(c->appname);
        free(c->tls_ca_file);
        free(c->tls_certificate_key_file);
        free_secret(c->tls_certificate_key_file_password);
    }
    free(cfg->clusters);
    free(cfg->supervisor.pidfile);
    free(cfg->supervisor.log);
    free(cfg->supervisor.escalate);
    free(cfg->supervisor.metrics_listen);
    free(cfg->path);
    free(cfg);
    *config = NULL;
}

const char *mongosup_config_environment(const mongosup_config_t *config)
{
    return config != NULL ? config->environment : NULL;
}

size_t mongosup_config_cluster_count(const mongosup_config_t *config)
{
    return config != NULL ? config->cluster_count : 0;
}

const char *mongosup_config_cluster_name(const mongosup_config_t *config, size_t i)
{
    return config != NULL && i < config->cluster_count ? config->clusters[i].name : NULL;
}

int msup_config_find_cluster(const mongosup_config_t *config, const char *name)
{
    if (config == NULL || name == NULL)
        return -1;
    for (size_t i = 0; i < config->cluster_count; i++)
        if (strcmp(config->clusters[i].name, name) == 0)
            return (int)i;
    return -1;
}

static void dump_string(FILE *out, const char *indent, const char *name, const char *v)
{
    fprintf(out, "%s%s = \"", indent, name);
    for (const char *p = v != NULL ? v : ""; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fputc('\\', out);
        fputc(*p, out);
    }
    fputs("\";\n", out);
}

static void dump_keys(FILE *out, const key_t_ *keys, size_t n, const void *base)
{
    for (size_t i = 0; i < n; i++) {
        const key_t_ *k = &keys[i];
        if (k->where != IN_CFG)
            continue;
        const char *field = (const char *)base + k->off;
        switch (k->type) {
        case KT_U32:
            fprintf(out, "    %s = %u;\n", k->name, *(const uint32_t *)(const void *)field);
            break;
        case KT_BOOL:
            fprintf(out, "    %s = %s;\n", k->name, *(const bool *)(const void *)field ? "true" : "false");
            break;
        case KT_STR:
        case KT_ENUM_STR:
            dump_string(out, "    ", k->name, *(char *const *)(const void *)field);
            break;
        case KT_ENUM_INT: {
            int v = *(const int *)(const void *)field;
            const char *name = "?";
            for (const choice_t *c = k->choices; c->name != NULL; c++)
                if (c->value == v)
                    name = c->name;
            dump_string(out, "    ", k->name, name);
            break;
        }
        }
    }
}

void msup_config_dump(const mongosup_config_t *config, FILE *out)
{
    if (config == NULL || out == NULL)
        return;
    fprintf(out, "# mongosup configuration from %s (URIs redacted)\n", config->path);
    dump_string(out, "", "environment", config->environment);
    fprintf(out, "segment = {\n");
    dump_string(out, "    ", "name", config->segment_name);
    fprintf(out, "    mode = \"%04o\";\n", (unsigned)config->segment_mode);
    if (config->segment_group == (gid_t)-1)
        fprintf(out, "    group = \"\";\n");
    else
        fprintf(out, "    group = \"%u\";\n", (unsigned)config->segment_group);
    if (config->segment_owner != (uid_t)-1)
        fprintf(out, "    owner = \"%u\";\n", (unsigned)config->segment_owner);
    fprintf(out, "    max_workers = %u;\n    max_clusters = %u;\n};\n", config->max_workers,
            config->max_clusters);
    fprintf(out, "supervisor = {\n");
    dump_keys(out, supervisor_keys, N_SUPERVISOR_KEYS, &config->supervisor);
    fprintf(out, "};\nclusters = {\n");
    for (size_t i = 0; i < config->cluster_count; i++) {
        const msup_cluster_cfg_t *c = &config->clusters[i];
        fprintf(out, "  %s = { # %s:%d\n", c->name, c->source_file, c->source_line);
        dump_string(out, "    ", "uri", c->uri_display);
        fprintf(out, "    # uri from %s%s\n", c->uri_source, c->is_replica_set ? "; replica set" : "");
        dump_keys(out, cluster_keys, N_CLUSTER_KEYS, c);
        if (c->tls_certificate_key_file_password != NULL)
            fprintf(out, "    tls_certificate_key_file_password = \"***\";\n");
        fprintf(out, "  };\n");
    }
    fprintf(out, "};\n");
}
