/* config_schema.c: the key tables of the configuration (types, ranges, defaults, URI options) and the type checks that layer a group onto them. */
#include <ctype.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "config_int.h"
#include "error.h"

#define C_(f) offsetof(msup_cluster_cfg_t, f)
#define S_(f) offsetof(cluster_src_t, f)
#define U32(n, min, max, def, opt) {#n, KT_U32, IN_CFG, C_(n), min, max, def, opt, NULL}
#define BOOL(n, def, opt) {#n, KT_BOOL, IN_CFG, C_(n), 0, 1, def, opt, NULL}
#define STR(n, len, opt) {#n, KT_STR, IN_CFG, C_(n), 0, len, 0, opt, NULL}
#define SRC(n, f, len) {#n, KT_STR, IN_SRC, S_(f), 0, len, 0, NULL, NULL}

const key_t_ msup_cfg_cluster_keys[MSUP_CFG_N_CLUSTER_KEYS] = {
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
    U32(slow_op_ms, 0, 3600000, 0, NULL),
    BOOL(log_failed_ops, 0, NULL),
    U32(fleet_max_connections, 0, 10000000, 0, NULL),
    U32(fleet_floor, 0, 1000000, 0, NULL),
};
_Static_assert(sizeof msup_cfg_cluster_keys / sizeof msup_cfg_cluster_keys[0] == MSUP_CFG_N_CLUSTER_KEYS, "MSUP_CFG_N_CLUSTER_KEYS in config_int.h");

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

const key_t_ msup_cfg_supervisor_keys[MSUP_CFG_N_SUPERVISOR_KEYS] = {
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
    {"control_socket", KT_STR, IN_CFG, V_(control_socket), 0, 107, 0, NULL, NULL}, /* sun_path */
};
_Static_assert(sizeof msup_cfg_supervisor_keys / sizeof msup_cfg_supervisor_keys[0] == MSUP_CFG_N_SUPERVISOR_KEYS, "MSUP_CFG_N_SUPERVISOR_KEYS in config_int.h");

/* The segment block is small and every key has its own rule: names only. */
const key_t_ msup_cfg_segment_keys[MSUP_CFG_N_SEGMENT_KEYS] = {
    {"name", KT_STR, IN_CFG, 0, 0, MSUP_NAME_MAX - 1, 0, NULL, NULL},
    {"mode", KT_STR, IN_CFG, 0, 0, 8, 0, NULL, NULL},
    {"group", KT_STR, IN_CFG, 0, 0, 255, 0, NULL, NULL},
    {"max_workers", KT_U32, IN_CFG, 0, 1, MSUP_MAX_WORKERS, 64, NULL, NULL},
    {"max_clusters", KT_U32, IN_CFG, 0, 1, MSUP_MAX_CLUSTERS, 8, NULL, NULL},
    {"owner", KT_STR, IN_CFG, 0, 0, 255, 0, NULL, NULL},
};
_Static_assert(sizeof msup_cfg_segment_keys / sizeof msup_cfg_segment_keys[0] == MSUP_CFG_N_SEGMENT_KEYS, "MSUP_CFG_N_SEGMENT_KEYS in config_int.h");

const char *const msup_cfg_root_names[] = {"segment", "supervisor", "fleet", "default_environment", "defaults",
                                         "environments", NULL};
const char *const msup_cfg_env_names[] = {"defaults", "clusters", NULL};
const key_t_ *msup_cfg_find_key(const key_t_ *keys, size_t n, const char *name, size_t *idx)
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
size_t msup_cfg_ckey(const char *name)
{
    size_t idx = 0;
    if (msup_cfg_find_key(msup_cfg_cluster_keys, MSUP_CFG_N_CLUSTER_KEYS, name, &idx) == NULL)
        abort();
    return idx;
}

bool msup_cfg_name_in(const char *const *names, const char *name)
{
    for (; *names != NULL; names++)
        if (strcmp(*names, name) == 0)
            return true;
    return false;
}

const choice_t *msup_cfg_find_choice(const choice_t *c, const char *name)
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
            return msup_cfg_fail_at(ctx, error, s, "expected an integer, got %s", msup_cfg_type_name(t));
        long long v = config_setting_get_int64(s);
        if (v < (long long)k->min || v > (long long)k->max)
            return msup_cfg_fail_at(ctx, error, s, "%lld is out of range %u..%u", v, k->min, k->max);
        return true;
    }
    case KT_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            return msup_cfg_fail_at(ctx, error, s, "expected true or false, got %s", msup_cfg_type_name(t));
        return true;
    case KT_STR:
        if (t != CONFIG_TYPE_STRING)
            return msup_cfg_fail_at(ctx, error, s, "expected a string, got %s", msup_cfg_type_name(t));
        if (strlen(config_setting_get_string(s)) > k->max)
            return msup_cfg_fail_at(ctx, error, s, "longer than %u bytes", k->max);
        return true;
    case KT_STRLIST: {
        if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY)
            return msup_cfg_fail_at(ctx, error, s, "expected a list of strings like [\"a\", \"b\"], got %s",
                                    msup_cfg_type_name(t));
        if (config_setting_length(s) == 0)
            return msup_cfg_fail_at(ctx, error, s, "the list is empty");
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            if (config_setting_type(e) != CONFIG_TYPE_STRING)
                return msup_cfg_fail_at(ctx, error, s, "element %d: expected a string, got %s", i + 1,
                                        msup_cfg_type_name(config_setting_type(e)));
            size_t len = strlen(config_setting_get_string(e));
            if (len == 0 || len > k->max)
                return msup_cfg_fail_at(ctx, error, s, "element %d: 1 to %u bytes", i + 1, k->max);
        }
        return true;
    }
    case KT_ENUM_INT:
    case KT_ENUM_STR: {
        if (t != CONFIG_TYPE_STRING)
            return msup_cfg_fail_at(ctx, error, s, "expected a string, got %s", msup_cfg_type_name(t));
        const char *v = config_setting_get_string(s);
        if (msup_cfg_find_choice(k->choices, v) != NULL)
            return true;
        char list[160];
        size_t len = 0;
        list[0] = '\0';
        for (const choice_t *c = k->choices; c->name != NULL && len < sizeof list; c++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s\"%s\"", len > 0 ? ", " : "", c->name);
        return msup_cfg_fail_at(ctx, error, s, "\"%s\" is not one of %s", v, list);
    }
    }
    return false;
}

/* Validates every member of a group against a key table; records which
 * setting provides each key (later groups override earlier ones). */
bool msup_cfg_layer_group(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *group,
                        const key_t_ *keys, size_t nkeys, const config_setting_t **set)
{
    if (group == NULL)
        return true;
    if (!msup_cfg_expect_group(ctx, error, group))
        return false;
    namelist_t nl = {keys, nkeys, NULL};
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        size_t idx;
        const key_t_ *k = msup_cfg_find_key(keys, nkeys, config_setting_name(m), &idx);
        if (k == NULL)
            return msup_cfg_fail_unknown(ctx, error, m, &nl, "key");
        if (!check_value(ctx, error, m, k))
            return false;
        if (set != NULL)
            set[idx] = m;
    }
    return true;
}

/* Stores the value of each key (the winning setting, else the default). */
bool msup_cfg_apply_keys(const key_t_ *keys, size_t nkeys, const config_setting_t *const *set,
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
        case KT_STRLIST: {
            if (s == NULL)
                break;
            int n = config_setting_length(s);
            char **list = calloc((size_t)n + 1, sizeof *list);
            if (list == NULL)
                return false;
            *(char ***)(void *)(base + k->off) = list; /* owned by cfg from here: freed with it */
            for (int j = 0; j < n; j++)
                if ((list[j] = strdup(config_setting_get_string(config_setting_get_elem(s, (unsigned)j)))) == NULL)
                    return false;
            break;
        }
        case KT_ENUM_INT:
        case KT_ENUM_STR: {
            const choice_t *c = s != NULL ? msup_cfg_find_choice(k->choices, config_setting_get_string(s))
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

bool msup_cfg_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > MSUP_NAME_MAX - 1)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-')
            return false;
    return true;
}
