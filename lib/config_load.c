/* config_load.c: reads the configuration file, checks its structure, chooses the environment and layers defaults, environment defaults and cluster groups into the resolved configuration. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "error.h"
#include "listen.h"
#include "segment.h"
#include "shmname.h"

/* Largest configuration file read (a generous bound, so that a huge file
 * given by mistake fails with a message instead of exhausting memory). */
#define CONFIG_FILE_MAX (4u << 20)

static bool resolve_cluster(const load_ctx_t *ctx, mongosup_error_t *error, const mongosup_config_t *cfg,
                            msup_cluster_cfg_t *c, const config_setting_t *file_defaults, const config_setting_t *env_defaults,
                            const config_setting_t *cs)
{
    const config_setting_t *set[MSUP_CFG_N_CLUSTER_KEYS] = {0};
    if (!msup_cfg_layer_group(ctx, error, file_defaults, msup_cfg_cluster_keys, MSUP_CFG_N_CLUSTER_KEYS, set) ||
        !msup_cfg_layer_group(ctx, error, env_defaults, msup_cfg_cluster_keys, MSUP_CFG_N_CLUSTER_KEYS, set) ||
        !msup_cfg_layer_group(ctx, error, cs, msup_cfg_cluster_keys, MSUP_CFG_N_CLUSTER_KEYS, set))
        return false;

    snprintf(c->name, sizeof c->name, "%s", config_setting_name(cs));
    snprintf(c->source_file, sizeof c->source_file, "%s", msup_cfg_setting_file(ctx, cs));
    c->source_line = config_setting_source_line(cs);
    cluster_src_t src = {0};
    if (!msup_cfg_apply_keys(msup_cfg_cluster_keys, MSUP_CFG_N_CLUSTER_KEYS, set, c, &src))
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    if (!msup_cfg_resolve_uri(ctx, error, c, cs, &src, set))
        return false;
    const struct {
        const char *key, *path;
    } driver_files[] = {{"tls_ca_file", c->tls_ca_file}, {"tls_certificate_key_file", c->tls_certificate_key_file}};
    for (size_t i = 0; i < sizeof driver_files / sizeof driver_files[0]; i++) {
        char why[PATH_MAX + 96];
        const config_setting_t *s = set[msup_cfg_ckey(driver_files[i].key)];
        if (driver_files[i].path != NULL && !msup_cfg_check_not_special(driver_files[i].path, why, sizeof why))
            return msup_cfg_fail_at(ctx, error, s != NULL ? s : cs, "%s", why);
    }

    /* Cross-field rules, reported at the setting that breaks them. */
    size_t i_min = msup_cfg_ckey("min_pool_size"), i_conn = msup_cfg_ckey("max_connecting");
    size_t i_tmo = msup_cfg_ckey("check_timeout_ms"), i_len = msup_cfg_ckey("appname");
    if (c->min_pool_size > c->max_pool_size)
        return msup_cfg_fail_at(ctx, error, set[i_min] != NULL ? set[i_min] : cs,
                       "min_pool_size %u is larger than max_pool_size %u", c->min_pool_size, c->max_pool_size);
    if (c->max_connections != 0 && c->max_connecting != 0 && c->max_connecting > c->max_connections)
        return msup_cfg_fail_at(ctx, error, set[i_conn] != NULL ? set[i_conn] : cs,
                       "max_connecting %u is larger than max_connections %u", c->max_connecting,
                       c->max_connections);
    if (c->check_timeout_ms >= c->check_interval_ms)
        return msup_cfg_fail_at(ctx, error, set[i_tmo] != NULL ? set[i_tmo] : cs,
                       "check_timeout_ms %u must be smaller than check_interval_ms %u", c->check_timeout_ms,
                       c->check_interval_ms);
    if (c->appname != NULL && strlen(c->appname) > APPNAME_MAX)
        return msup_cfg_fail_at(ctx, error, set[i_len] != NULL ? set[i_len] : cs, "appname is longer than %d bytes",
                       APPNAME_MAX);
    return msup_cfg_check_cluster_fleet(ctx, error, cfg, c, cs, set);
}

/* segment.owner: another uid whose segments readers and workers accept
 * (docs/security.md), as a user name or a uid; (uid_t)-1 when unset. */
static bool parse_owner(const load_ctx_t *ctx, mongosup_error_t *error, mongosup_config_t *cfg,
                        const config_setting_t *set)
{
    cfg->segment_owner = (uid_t)-1;
    if (set == NULL || config_setting_get_string(set)[0] == '\0')
        return true;
    const char *o = config_setting_get_string(set);
    char *end;
    errno = 0;
    unsigned long uid = strtoul(o, &end, 10);
    if (*end == '\0' && errno == 0 && o[0] != '-' && uid < (uid_t)-1) {
        cfg->segment_owner = (uid_t)uid;
        return true;
    }
    char buf[4096];
    struct passwd pw, *res = NULL;
    int rc = getpwnam_r(o, &pw, buf, sizeof buf, &res);
    if (rc != 0 || res == NULL)
        return msup_cfg_fail_at(ctx, error, set, "no such user \"%s\"", o);
    cfg->segment_owner = pw.pw_uid;
    return true;
}

static bool parse_segment(const load_ctx_t *ctx, mongosup_error_t *error, mongosup_config_t *cfg,
                          const config_setting_t *seg, const config_setting_t **max_clusters_set)
{
    const config_setting_t *set[MSUP_CFG_N_SEGMENT_KEYS] = {0};
    if (!msup_cfg_layer_group(ctx, error, seg, msup_cfg_segment_keys, MSUP_CFG_N_SEGMENT_KEYS, set))
        return false;

    /* The configured name, else one derived from the environment: both must
     * pass the one segment-name rule (lib/shmname.c). */
    mongosup_error_t why;
    if (set[SEG_NAME] != NULL) {
        const char *name = config_setting_get_string(set[SEG_NAME]);
        if (!msup_shm_name_check(name, &why))
            return msup_cfg_fail_at(ctx, error, set[SEG_NAME], "%s", why.message);
        snprintf(cfg->segment_name, sizeof cfg->segment_name, "%s", name);
    } else {
        char name[MSUP_NAME_MAX + 16];
        snprintf(name, sizeof name, "/mongosup.%s", cfg->environment);
        if (!msup_shm_name_check(name, &why))
            return msup_fail(error, CFG_E, "%s: segment.name: the default %s: set a name", ctx->path, why.message);
        memcpy(cfg->segment_name, name, strlen(name) + 1); /* checked: it fits */
    }

    cfg->segment_group = (gid_t)-1;
    if (set[SEG_GROUP] != NULL && config_setting_get_string(set[SEG_GROUP])[0] != '\0') {
        const char *g = config_setting_get_string(set[SEG_GROUP]);
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
                return msup_cfg_fail_at(ctx, error, set[SEG_GROUP], "no such group \"%s\"", g);
            cfg->segment_group = gr.gr_gid;
        }
    }

    cfg->segment_mode = cfg->segment_group != (gid_t)-1 ? 0640 : 0600;
    if (set[SEG_MODE] != NULL) {
        const char *m = config_setting_get_string(set[SEG_MODE]);
        char *end;
        unsigned long mode = strtoul(m, &end, 8);
        if (m[0] == '\0' || *end != '\0' || strspn(m, "01234567") != strlen(m) || mode > 0777)
            return msup_cfg_fail_at(ctx, error, set[SEG_MODE], "\"%s\" is not an octal mode like \"0600\" or \"0640\"", m);
        if ((mode & 0600) != 0600)
            return msup_cfg_fail_at(ctx, error, set[SEG_MODE], "%s: the owner needs read and write (0600)", m);
        if ((mode & 0002) != 0)
            return msup_cfg_fail_at(ctx, error, set[SEG_MODE], "%s: a world-writable segment lets anyone corrupt it", m);
        cfg->segment_mode = (mode_t)mode;
    }
    if (!parse_owner(ctx, error, cfg, set[SEG_OWNER]))
        return false;
    cfg->max_workers = set[SEG_MAX_WORKERS] != NULL ? (uint32_t)config_setting_get_int64(set[SEG_MAX_WORKERS]) : msup_cfg_segment_keys[SEG_MAX_WORKERS].def;
    cfg->max_clusters = set[SEG_MAX_CLUSTERS] != NULL ? (uint32_t)config_setting_get_int64(set[SEG_MAX_CLUSTERS]) : 0;
    *max_clusters_set = set[SEG_MAX_CLUSTERS];
    return true;
}

static bool parse_supervisor(const load_ctx_t *ctx, mongosup_error_t *error, mongosup_config_t *cfg,
                             const config_setting_t *sup)
{
    const config_setting_t *set[MSUP_CFG_N_SUPERVISOR_KEYS] = {0};
    if (!msup_cfg_layer_group(ctx, error, sup, msup_cfg_supervisor_keys, MSUP_CFG_N_SUPERVISOR_KEYS, set))
        return false;
    msup_supervisor_cfg_t *s = &cfg->supervisor;
    if (!msup_cfg_apply_keys(msup_cfg_supervisor_keys, MSUP_CFG_N_SUPERVISOR_KEYS, set, s, NULL))
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    if (s->heartbeat_timeout_ms <= s->heartbeat_interval_ms) {
        size_t i = 0;
        msup_cfg_find_key(msup_cfg_supervisor_keys, MSUP_CFG_N_SUPERVISOR_KEYS, "heartbeat_timeout_ms", &i);
        return msup_cfg_fail_at(ctx, error, set[i] != NULL ? set[i] : sup,
                       "heartbeat_timeout_ms %u must be larger than heartbeat_interval_ms %u",
                       s->heartbeat_timeout_ms, s->heartbeat_interval_ms);
    }
    if (s->metrics_listen != NULL) {
        size_t i = 0;
        msup_cfg_find_key(msup_cfg_supervisor_keys, MSUP_CFG_N_SUPERVISOR_KEYS, "metrics_listen", &i);
        char host[256], port[8];
        mongosup_error_t why;
        if (!msup_listen_parse(s->metrics_listen, true, host, sizeof host, port, sizeof port, &why))
            return msup_cfg_fail_at(ctx, error, set[i], "%s", why.message);
    }
    if (s->control_socket != NULL && s->control_socket[0] != '/') {
        size_t i = 0;
        msup_cfg_find_key(msup_cfg_supervisor_keys, MSUP_CFG_N_SUPERVISOR_KEYS, "control_socket", &i);
        return msup_cfg_fail_at(ctx, error, set[i], "control_socket '%s' must be an absolute path", s->control_socket);
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
    if (!msup_cfg_valid_name(config_setting_name(env)))
        return msup_cfg_fail_at(ctx, error, env, "environment names are 1 to %d of [A-Za-z0-9_-]", MSUP_NAME_MAX - 1);
    if (!msup_cfg_expect_group(ctx, error, env))
        return false;
    namelist_t nl = {NULL, 0, msup_cfg_env_names};
    for (int i = 0; i < config_setting_length(env); i++) {
        const config_setting_t *m = config_setting_get_elem(env, (unsigned)i);
        if (!msup_cfg_name_in(msup_cfg_env_names, config_setting_name(m)))
            return msup_cfg_fail_unknown(ctx, error, m, &nl, "key");
    }
    const config_setting_t *defs = config_setting_get_member(env, "defaults");
    if (!msup_cfg_layer_group(ctx, error, defs, msup_cfg_cluster_keys, MSUP_CFG_N_CLUSTER_KEYS, NULL))
        return false;
    const config_setting_t *clusters = config_setting_get_member(env, "clusters");
    if (clusters == NULL)
        return msup_cfg_fail_at(ctx, error, env, "no clusters = { ... } group");
    if (!msup_cfg_expect_group(ctx, error, clusters))
        return false;
    for (int i = 0; i < config_setting_length(clusters); i++) {
        const config_setting_t *cs = config_setting_get_elem(clusters, (unsigned)i);
        if (!msup_cfg_valid_name(config_setting_name(cs)))
            return msup_cfg_fail_at(ctx, error, cs, "cluster names are 1 to %d of [A-Za-z0-9_-]", MSUP_NAME_MAX - 1);
        if (!msup_cfg_layer_group(ctx, error, cs, msup_cfg_cluster_keys, MSUP_CFG_N_CLUSTER_KEYS, NULL))
            return false;
    }
    return true;
}

static bool load_root(const load_ctx_t *ctx, mongosup_error_t *error, mongosup_config_t *cfg,
                      const config_setting_t *root, const char *environment)
{
    namelist_t nl = {NULL, 0, msup_cfg_root_names};
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *m = config_setting_get_elem(root, (unsigned)i);
        if (!msup_cfg_name_in(msup_cfg_root_names, config_setting_name(m)))
            return msup_cfg_fail_unknown(ctx, error, m, &nl, "top-level setting");
    }
    const config_setting_t *envs = config_setting_get_member(root, "environments");
    if (envs == NULL)
        return msup_fail(error, CFG_E, "%s: no environments = { ... } group", ctx->path);
    if (!msup_cfg_expect_group(ctx, error, envs))
        return false;
    if (config_setting_length(envs) == 0)
        return msup_cfg_fail_at(ctx, error, envs, "no environment is defined");
    for (int i = 0; i < config_setting_length(envs); i++)
        if (!check_environment(ctx, error, config_setting_get_elem(envs, (unsigned)i)))
            return false;
    const config_setting_t *file_defaults = config_setting_get_member(root, "defaults");
    if (!msup_cfg_layer_group(ctx, error, file_defaults, msup_cfg_cluster_keys, MSUP_CFG_N_CLUSTER_KEYS, NULL))
        return false;

    char valid[320];
    member_names(envs, valid, sizeof valid);
    const config_setting_t *def_env = config_setting_get_member(root, "default_environment");
    if (def_env != NULL) {
        if (config_setting_type(def_env) != CONFIG_TYPE_STRING)
            return msup_cfg_fail_at(ctx, error, def_env, "expected a string, got %s", msup_cfg_type_name(config_setting_type(def_env)));
        if (config_setting_get_member(envs, config_setting_get_string(def_env)) == NULL)
            return msup_cfg_fail_at(ctx, error, def_env, "unknown environment \"%s\"; valid: %s",
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
    if (env == NULL || !msup_cfg_valid_name(chosen))
        return msup_cfg_fail_at(ctx, error, envs, "unknown environment \"%.63s\" (from %s); valid: %s", chosen, from, valid);
    snprintf(cfg->environment, sizeof cfg->environment, "%s", chosen);

    const config_setting_t *max_clusters_set = NULL;
    const config_setting_t *seg = config_setting_get_member(root, "segment");
    if (!parse_segment(ctx, error, cfg, seg, &max_clusters_set))
        return false;
    if (!parse_supervisor(ctx, error, cfg, config_setting_get_member(root, "supervisor")))
        return false;
    if (!msup_cfg_parse_fleet(ctx, error, cfg, config_setting_get_member(root, "fleet")))
        return false;

    const config_setting_t *env_defaults = config_setting_get_member(env, "defaults");
    const config_setting_t *clusters = config_setting_get_member(env, "clusters");
    size_t n = (size_t)config_setting_length(clusters);
    if (n == 0)
        return msup_cfg_fail_at(ctx, error, clusters, "no cluster in environment %s", chosen);
    if (n > MSUP_MAX_CLUSTERS)
        return msup_cfg_fail_at(ctx, error, clusters, "%zu clusters: at most %d", n, MSUP_MAX_CLUSTERS);
    if (cfg->max_clusters == 0)
        cfg->max_clusters = n > msup_cfg_segment_keys[SEG_MAX_CLUSTERS].def ? (uint32_t)n : msup_cfg_segment_keys[SEG_MAX_CLUSTERS].def;
    else if (n > cfg->max_clusters)
        return msup_cfg_fail_at(ctx, error, max_clusters_set, "%u is smaller than the %zu clusters of environment %s",
                       cfg->max_clusters, n, chosen);
    cfg->clusters = calloc(n, sizeof *cfg->clusters);
    if (cfg->clusters == NULL)
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *cs = config_setting_get_elem(clusters, (unsigned)i);
        cfg->cluster_count = i + 1; /* so that destroy frees a half-made entry */
        if (!resolve_cluster(ctx, error, cfg, &cfg->clusters[i], file_defaults, env_defaults, cs))
            return false;
        char vi[MSUP_NAME_MAX + 16], vj[MSUP_NAME_MAX + 16];
        msup_cfg_cluster_env_var(cfg->clusters[i].name, vi, sizeof vi);
        for (size_t j = 0; j < i; j++) {
            msup_cfg_cluster_env_var(cfg->clusters[j].name, vj, sizeof vj);
            if (strcmp(vi, vj) == 0)
                return msup_cfg_fail_at(ctx, error, cs, "clusters %s and %s would both read $%s: rename one",
                               cfg->clusters[j].name, cfg->clusters[i].name, vi);
        }
    }
    return true;
}

mongosup_config_t *mongosup_config_load(const char *path, const char *environment, mongosup_error_t *error)
{
    if (path == NULL) {
        msup_fail(error, MONGOSUP_E_INVALID_ARG, "mongosup_config_load: path is NULL");
        return NULL;
    }
    /* Before the file is read: a supervisor that applies a configuration
     * after this moment may have read a newer file (worker.c, attach). */
    uint64_t started_ns = msup_mono_ns(); /* the clock the supervisor stamps config_applied_mono_ns with */
    /* libconfig gets the text, never the path: given a directory its scanner
     * calls exit(2), given a FIFO fopen(3) blocks (lib/config_file.c). */
    msup_cfg_file_t file;
    char why[PATH_MAX + 96];
    if (!msup_cfg_read_file(path, CONFIG_FILE_MAX, &file, why, sizeof why)) {
        msup_fail(error, CFG_E, "%s", why);
        return NULL;
    }
    if (memchr(file.data, '\0', file.len) != NULL) { /* libconfig would stop reading there */
        msup_cfg_file_free(&file);
        msup_fail(error, CFG_E, "%s contains a NUL byte: not a text file", path);
        return NULL;
    }
    int include_line = msup_cfg_find_include(file.data);
    if (include_line > 0) {
        msup_cfg_file_free(&file);
        msup_fail(error, CFG_E, "%s:%d: @include is not supported: put the settings in this file", path,
                  include_line);
        return NULL;
    }
    config_t lc;
    config_init(&lc);
    int ok = config_read_string(&lc, file.data);
    msup_cfg_file_free(&file);
    mongosup_config_t *cfg = NULL;
    if (!ok) {
        msup_fail(error, CFG_E, "%s:%d: %s", path, config_error_line(&lc), config_error_text(&lc));
        goto out;
    }
    cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL || (cfg->path = strdup(path)) == NULL) {
        msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
        mongosup_config_destroy(&cfg);
        goto out;
    }
    cfg->loaded_mono_ns = started_ns;
    load_ctx_t ctx = {path};
    if (!load_root(&ctx, error, cfg, config_root_setting(&lc), environment))
        mongosup_config_destroy(&cfg);
    else
        msup_error_clear(error);
out:
    config_destroy(&lc);
    return cfg;
}

void msup_cfg_free_secret(char *s)
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
        msup_cfg_free_secret(c->uri);
        free(c->database_name);
        free(c->appname);
        free(c->tls_ca_file);
        free(c->tls_certificate_key_file);
        msup_cfg_free_secret(c->tls_certificate_key_file_password);
    }
    free(cfg->clusters);
    free(cfg->supervisor.pidfile);
    free(cfg->supervisor.log);
    free(cfg->supervisor.escalate);
    free(cfg->supervisor.metrics_listen);
    free(cfg->supervisor.control_socket);
    msup_cfg_free_fleet(&cfg->fleet);
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
