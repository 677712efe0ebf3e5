/* config_int.h: what the loader's files share (key tables, locations, messages); not a public API. */
#ifndef MONGOSUP_CONFIG_INT_H
#define MONGOSUP_CONFIG_INT_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "strbuf.h"

#define CFG_E MONGOSUP_E_CONFIG
#define SECRET_MAX 1024      /* longest password read from a file */
#define APPNAME_MAX 128      /* mongoc's limit */

/* ---- The key tables (lib/config_schema.c) -------------------------------
 * One row per setting drives validation, defaults, the URI options and the
 * dump (docs/configuration.md mirrors them). */

/* KT_STRLIST: a non-empty list or array of strings (each at most max bytes),
 * stored as a NULL-terminated char ** (IN_CFG only). */
typedef enum { KT_U32, KT_BOOL, KT_STR, KT_ENUM_INT, KT_ENUM_STR, KT_STRLIST } key_type_t;

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

/* Row counts, checked against the tables at compile time. */
#define MSUP_CFG_N_CLUSTER_KEYS 41
#define MSUP_CFG_N_SUPERVISOR_KEYS 13
#define MSUP_CFG_N_SEGMENT_KEYS 6

/* Rows of msup_cfg_segment_keys, which parse_segment reads by position. */
enum { SEG_NAME, SEG_MODE, SEG_GROUP, SEG_MAX_WORKERS, SEG_MAX_CLUSTERS, SEG_OWNER };

extern const key_t_ msup_cfg_cluster_keys[MSUP_CFG_N_CLUSTER_KEYS];
extern const key_t_ msup_cfg_supervisor_keys[MSUP_CFG_N_SUPERVISOR_KEYS];
extern const key_t_ msup_cfg_segment_keys[MSUP_CFG_N_SEGMENT_KEYS];
extern const char *const msup_cfg_root_names[];  /* NULL-terminated */
extern const char *const msup_cfg_env_names[];   /* NULL-terminated */

const key_t_ *msup_cfg_find_key(const key_t_ *keys, size_t n, const char *name, size_t *idx);
/* Index of a cluster key that the code names (a missing one is a bug: abort). */
size_t msup_cfg_ckey(const char *name);
bool msup_cfg_name_in(const char *const *names, const char *name);
const choice_t *msup_cfg_find_choice(const choice_t *c, const char *name);
/* Environment and cluster names: 1 to MSUP_NAME_MAX - 1 of [A-Za-z0-9_-]. */
bool msup_cfg_valid_name(const char *name);

/* ---- Locations and messages (lib/config_diag.c) ------------------------- */

typedef struct {
    const char *path; /* the file given to mongosup_config_load */
} load_ctx_t;

/* The file a setting came from (an @include'd one, or the main file). */
const char *msup_cfg_setting_file(const load_ctx_t *ctx, const config_setting_t *s);

/* "FILE:LINE: a.b.c: message"; returns false. */
bool msup_cfg_fail_at(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *s,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Names of a list (from a key table or a NULL-terminated array). */
typedef struct {
    const key_t_ *keys;
    size_t nkeys;
    const char *const *names;
} namelist_t;

/* "unknown WHAT (did you mean X?); valid: a, b, ..." at s; returns false. */
bool msup_cfg_fail_unknown(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *s,
                           const namelist_t *nl, const char *what);
const char *msup_cfg_type_name(int type);
bool msup_cfg_expect_group(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *s);

/* ---- Layering (lib/config_schema.c) ------------------------------------- */

/* Validates every member of a group against a key table; records in set[]
 * which setting provides each key (later groups override earlier ones). */
bool msup_cfg_layer_group(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *group,
                          const key_t_ *keys, size_t nkeys, const config_setting_t **set);

/* Stores the value of each key (the winning setting, else the default);
 * false when out of memory. */
bool msup_cfg_apply_keys(const key_t_ *keys, size_t nkeys, const config_setting_t *const *set,
                         void *cfg_base, void *src_base);

/* ---- The fleet group (lib/config_fleet.c) ------------------------------ */

/* Parses the optional `fleet` group into cfg->fleet (fleet == NULL: disabled). */
bool msup_cfg_parse_fleet(const load_ctx_t *ctx, mongosup_error_t *error, mongosup_config_t *cfg,
                          const config_setting_t *fleet);

/* Cross-checks one resolved cluster's fleet keys against the fleet group
 * (resolves a fleet_floor of 0 to fleet_max_connections / max_hosts). */
bool msup_cfg_check_cluster_fleet(const load_ctx_t *ctx, mongosup_error_t *error, const mongosup_config_t *cfg,
                                  msup_cluster_cfg_t *c, const config_setting_t *cs,
                                  const config_setting_t *const *set);

/* Prints the IN_CFG keys of a table, one "    name = value;" line each (lib/config_dump.c). */
void msup_cfg_dump_keys(FILE *out, const key_t_ *keys, size_t n, const void *base);

/* Prints the fleet group (secrets as "***"), for --check-config. */
void msup_cfg_dump_fleet(const msup_fleet_cfg_t *fleet, FILE *out);

/* Zeroes and frees a secret string (NULL: nothing) (lib/config_load.c). */
void msup_cfg_free_secret(char *s);

/* Frees what msup_cfg_parse_fleet allocated (the password wiped). */
void msup_cfg_free_fleet(msup_fleet_cfg_t *fleet);

/* ---- Secrets (lib/secrets.c) -------------------------------------------- */

/* A secret (SECRET_MAX bytes) from the variable env_name (when set and
 * non-empty), else from the file file_path (a regular file, never
 * world-readable).  *found is false when neither is configured;
 * how gets "$VAR" or "file PATH" (never the secret). */
bool msup_cfg_resolve_secret(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *cs,
                             const config_setting_t *env_set, const char *env_name,
                             const config_setting_t *file_set, const char *file_path, char *secret,
                             bool *found, char *how, size_t how_len);

/* ---- The files the loader reads (lib/config_file.c) --------------------- */

typedef struct {
    char *data;   /* NUL-terminated; may hold a secret: msup_cfg_file_free wipes it */
    size_t len;   /* without the NUL */
    mode_t mode;  /* of the file read */
} msup_cfg_file_t;

/* Reads a whole regular file of at most max bytes without ever blocking:
 * FIFOs, directories, devices and sockets are refused before a byte is read.
 * False with a one-line reason naming the path in why otherwise. */
bool msup_cfg_read_file(const char *path, size_t max, msup_cfg_file_t *out, char *why, size_t why_len);
void msup_cfg_file_free(msup_cfg_file_t *f);

/* For files that the driver opens later (the TLS CA and key files): false
 * with a reason when path exists and is not a regular file (a FIFO there
 * would block the worker's first checkout).  A missing file is left to the
 * driver: it may be provisioned after the configuration is checked. */
bool msup_cfg_check_not_special(const char *path, char *why, size_t why_len);

/* "a FIFO", "a directory", ... for a st_mode. */
const char *msup_cfg_file_kind(mode_t mode);

/* Line (1-based) of the first @include directive that libconfig would
 * honour in text, or 0 when there is none. */
int msup_cfg_find_include(const char *text);

/* ---- URIs (lib/uri_build.c) --------------------------------------------- */

/* "MONGOSUP_<CLUSTER>_URI": upper-cased, non-alphanumerics as '_'. */
void msup_cfg_cluster_env_var(const char *cluster, char *out, size_t n);

/* Resolves c->uri (what the driver gets: password included, only the options
 * that differ from the driver's defaults) and c->uri_display (redacted)
 * from the sources, the environment and the option keys in set[]. */
bool msup_cfg_resolve_uri(const load_ctx_t *ctx, mongosup_error_t *error, msup_cluster_cfg_t *c,
                          const config_setting_t *cs, const cluster_src_t *src,
                          const config_setting_t *const *set);

#endif
