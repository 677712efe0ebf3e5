/* config_test.c: CUnit tests of the configuration loader (lib/config_*.c, lib/secrets.c, lib/uri_build.c) and the redaction helpers (lib/redact.c). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <CUnit/Basic.h>

/* Relative to this file: automake's -I. would otherwise find the generated
 * autoconf config.h in the build directory first. */
#include "../lib/config.h"
#include "../lib/redact.h"
#include "../lib/strbuf.h"

static char tmpdir[64];
static char conf_path[PATH_MAX];
static char created[32][PATH_MAX]; /* files to remove at the end */
static size_t ncreated;
static char msg[512];              /* the last error message */

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                   */

static const char *write_file(const char *name, const char *text, mode_t mode)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    size_t len = strlen(text);
    CU_ASSERT_FATAL(write(fd, text, len) == (ssize_t)len);
    CU_ASSERT_FATAL(fchmod(fd, mode) == 0);
    close(fd);
    bool known = false;
    for (size_t i = 0; i < ncreated; i++)
        if (strcmp(created[i], path) == 0)
            known = true;
    if (!known && ncreated < sizeof created / sizeof created[0])
        snprintf(created[ncreated++], PATH_MAX, "%s", path);
    return path;
}

static const char *write_conf(const char *text)
{
    snprintf(conf_path, sizeof conf_path, "%s", write_file("mongosup.conf", text, 0600));
    return conf_path;
}

static mongosup_config_t *load_ok(const char *text, const char *env)
{
    mongosup_error_t err;
    memset(&err, 0, sizeof err);
    mongosup_config_t *cfg = mongosup_config_load(write_conf(text), env, &err);
    if (cfg == NULL)
        fprintf(stderr, "\n  unexpected error: %s\n", err.message);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(err.code, MONGOSUP_OK);
    return cfg;
}

/* Loads text that must fail; the message is left in msg. */
static void load_bad(const char *text, const char *env)
{
    mongosup_error_t err;
    memset(&err, 0, sizeof err);
    mongosup_config_t *cfg = mongosup_config_load(write_conf(text), env, &err);
    CU_ASSERT_PTR_NULL(cfg);
    mongosup_config_destroy(&cfg);
    CU_ASSERT_EQUAL(err.domain, MONGOSUP_ERROR_MONGOSUP);
    CU_ASSERT_EQUAL(err.code, MONGOSUP_E_CONFIG);
    CU_ASSERT(strchr(err.message, '\n') == NULL); /* one line */
    snprintf(msg, sizeof msg, "%s", err.message);
}

static bool has(const char *hay, const char *needle)
{
    if (hay != NULL && strstr(hay, needle) != NULL)
        return true;
    fprintf(stderr, "\n  expected \"%s\" in \"%s\"\n", needle, hay != NULL ? hay : "(null)");
    return false;
}

static bool lacks(const char *hay, const char *needle)
{
    if (hay == NULL || strstr(hay, needle) == NULL)
        return true;
    fprintf(stderr, "\n  did not expect \"%s\" in \"%s\"\n", needle, hay);
    return false;
}

/* What --check-config prints for cfg (malloc'd). */
static char *dump_of(const mongosup_config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    msup_config_dump(cfg, out);
    fclose(out);
    return buf;
}

/* "FILE:LINE: " of the fixture, for exact messages. */
static const char *at_line(int line)
{
    static char buf[PATH_MAX + 16];
    snprintf(buf, sizeof buf, "%s:%d: ", conf_path, line);
    return buf;
}

/* One environment "dev" with one cluster "users" made of the given keys (one line). */
static const char *one(const char *keys)
{
    static char buf[16384];
    snprintf(buf, sizeof buf,
             "default_environment = \"dev\"; environments = { dev = { clusters = { users = { %s }; }; }; };\n",
             keys);
    return buf;
}

static const char *one_uri(const char *keys)
{
    static char buf[16384];
    char k[12000];
    snprintf(k, sizeof k, "mongo_uri = \"mongodb://db1.example.net:27017/app\"; %s", keys);
    snprintf(buf, sizeof buf, "%s", one(k));
    return buf;
}

static const char *env_vars[] = {"MONGOSUP_ENV", "MONGOSUP_USERS_URI", "MONGOSUP_ANALYTICS_URI",
                                 "MONGOSUP_MY_DB_URI", "TEST_USERS_URI", "TEST_PW", "TEST_TLS_PW", NULL};

static void clean_env(void)
{
    for (const char **v = env_vars; *v != NULL; v++)
        unsetenv(*v);
}

static const char ENVS[] =
    "default_environment = \"development\";\n"                                 /* 1 */
    "environments = {\n"                                                       /* 2 */
    "  development = {\n"                                                      /* 3 */
    "    clusters = {\n"                                                       /* 4 */
    "      users = { mongo_uri = \"mongodb://localhost:27017/app\"; };\n"      /* 5 */
    "    };\n"                                                                 /* 6 */
    "  };\n"                                                                   /* 7 */
    "  staging = { clusters = { users = { mongo_uri = \"mongodb://stage:27017/app\"; }; }; };\n"
    "  production = {\n"                                                       /* 9 */
    "    clusters = {\n"                                                       /* 10 */
    "      users = { mongo_uri = \"mongodb://prod:27017/app\"; };\n"           /* 11 */
    "      analytics = { mongo_uri = \"mongodb://a1,a2,a3/stats?replicaSet=rs0\"; };\n"
    "    };\n"
    "  };\n"
    "};\n";

/* ------------------------------------------------------------------------ */
/* Good files                                                                 */

static void test_good_minimal(void)
{
    mongosup_config_t *cfg = load_ok(one_uri(""), NULL);
    CU_ASSERT_STRING_EQUAL(mongosup_config_environment(cfg), "dev");
    CU_ASSERT_STRING_EQUAL(cfg->segment_name, "/mongosup.dev");
    CU_ASSERT_EQUAL(cfg->segment_mode, 0600);
    CU_ASSERT_EQUAL(cfg->segment_group, (gid_t)-1);
    CU_ASSERT_EQUAL(cfg->max_workers, 64);
    CU_ASSERT_EQUAL(cfg->max_clusters, 8);
    const msup_supervisor_cfg_t *s = &cfg->supervisor;
    CU_ASSERT_PTR_NULL(s->pidfile);
    CU_ASSERT_STRING_EQUAL(s->log, "stderr");
    CU_ASSERT_EQUAL(s->log_level, LOG_INFO);
    CU_ASSERT_EQUAL(s->heartbeat_interval_ms, 250);
    CU_ASSERT_EQUAL(s->heartbeat_timeout_ms, 3000);
    CU_ASSERT_EQUAL(s->reap_interval_ms, 500);
    CU_ASSERT_EQUAL(s->drain_timeout_ms, 30000);
    CU_ASSERT_EQUAL(s->shutdown_signal, 0);
    CU_ASSERT_STRING_EQUAL(s->escalate, "term-kill");
    CU_ASSERT_EQUAL(s->escalate_grace_ms, 2000);
    CU_ASSERT_FALSE(s->keep_segment);
    CU_ASSERT_PTR_NULL(s->metrics_listen);

    CU_ASSERT_EQUAL_FATAL(mongosup_config_cluster_count(cfg), 1);
    const msup_cluster_cfg_t *c = &cfg->clusters[0];
    CU_ASSERT_STRING_EQUAL(c->name, "users");
    CU_ASSERT_STRING_EQUAL(c->database_name, "app"); /* from the URI */
    CU_ASSERT_PTR_NULL(c->appname);
    CU_ASSERT_FALSE(c->is_replica_set);
    CU_ASSERT_EQUAL(c->max_pool_size, 100);
    CU_ASSERT_EQUAL(c->min_pool_size, 0);
    CU_ASSERT_EQUAL(c->max_idle_time_ms, 0);
    CU_ASSERT_EQUAL(c->wait_queue_timeout_ms, 5000);
    CU_ASSERT_EQUAL(c->connect_timeout_ms, 10000);
    CU_ASSERT_EQUAL(c->socket_timeout_ms, 300000);
    /* Not the driver's 30000: follows the checks (2000 + 3 x 1000 + 2 x 500 + 500). */
    CU_ASSERT_EQUAL(c->server_selection_timeout_ms, 6500);
    CU_ASSERT_EQUAL(c->heartbeat_frequency_ms, 10000);
    CU_ASSERT_TRUE(c->retry_writes);
    CU_ASSERT_TRUE(c->retry_reads);
    CU_ASSERT_FALSE(c->tls_allow_invalid_hostnames);
    CU_ASSERT_EQUAL(c->check_interval_ms, 2000);
    CU_ASSERT_EQUAL(c->check_fastinter_ms, 500);
    CU_ASSERT_EQUAL(c->check_downinter_ms, 1000);
    CU_ASSERT_EQUAL(c->check_timeout_ms, 1000);
    CU_ASSERT_EQUAL(c->rise, 2);
    CU_ASSERT_EQUAL(c->fall, 3);
    CU_ASSERT_EQUAL(c->degraded_rtt_ms, 0);
    CU_ASSERT_TRUE(c->circuit_breaker);
    CU_ASSERT_EQUAL(c->reconnect_window_ms, 2000);
    CU_ASSERT_EQUAL(c->reconnect_min_interval_ms, 5000);
    CU_ASSERT_EQUAL(c->reconnect_network_errors_per_s, 0);
    CU_ASSERT_EQUAL(c->retry_max_attempts, 3);
    CU_ASSERT_EQUAL(c->retry_deadline_ms, 10000);
    CU_ASSERT_EQUAL(c->retry_backoff_ms, 50);
    CU_ASSERT_EQUAL(c->max_connections, 0);
    CU_ASSERT_EQUAL(c->max_connecting, 0);
    CU_ASSERT_EQUAL(c->source_line, 1);
    /* Only what differs from the driver's defaults (the checkout bound, the
     * selection timeout that follows the health checks: failfast.c), and
     * heartbeatFrequencyMS, whose default depends on the kind of client. */
    CU_ASSERT_STRING_EQUAL(c->uri, "mongodb://db1.example.net:27017/app?waitQueueTimeoutMS=5000&serverSelectionTimeoutMS=6500&heartbeatFrequencyMS=10000");
    CU_ASSERT(has(c->uri_source, "mongo_uri at"));
    mongosup_config_destroy(&cfg);
    CU_ASSERT_PTR_NULL(cfg);
}

static void test_good_example_file(void)
{
    const char *srcdir = getenv("srcdir");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/etc/mongosup.conf.example", srcdir != NULL ? srcdir : ".");
    if (access(path, R_OK) != 0) {
        snprintf(path, sizeof path, "%s/../etc/mongosup.conf.example", srcdir != NULL ? srcdir : ".");
        if (access(path, R_OK) != 0) {
            fprintf(stderr, "\n  skipped: no etc/mongosup.conf.example (set srcdir)\n");
            return;
        }
    }
    static const char *const names[] = {"development", "staging", "production"};
    setenv("MONGOSUP_USERS_PASSWORD", "example-secret", 1);
    setenv("MONGOSUP_ANALYTICS_PASSWORD", "example-secret", 1);
    for (size_t i = 0; i < 3; i++) {
        mongosup_error_t err;
        mongosup_config_t *cfg = mongosup_config_load(path, names[i], &err);
        if (cfg == NULL)
            fprintf(stderr, "\n  %s: %s\n", names[i], err.message);
        CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
        CU_ASSERT_EQUAL(mongosup_config_cluster_count(cfg), 2);
        CU_ASSERT(msup_config_find_cluster(cfg, "users") >= 0);
        int a = msup_config_find_cluster(cfg, "analytics");
        CU_ASSERT_FATAL(a >= 0);
        CU_ASSERT_TRUE(cfg->clusters[a].is_replica_set);
        mongosup_config_destroy(&cfg);
    }
    mongosup_error_t err;
    mongosup_config_t *cfg = mongosup_config_load(path, NULL, &err);
    CU_ASSERT_PTR_NOT_NULL(cfg);
    if (cfg != NULL)
        CU_ASSERT_STRING_EQUAL(mongosup_config_environment(cfg), "development");
    mongosup_config_destroy(&cfg);
    unsetenv("MONGOSUP_USERS_PASSWORD");
    unsetenv("MONGOSUP_ANALYTICS_PASSWORD");
}

/* The selection-timeout default follows the health checks; a key or a URI
 * option set by the user wins; the formula never exceeds the driver's 30 s. */
static void test_selection_timeout_follows_checks(void)
{
    mongosup_config_t *cfg = load_ok(one_uri("check_interval_ms = 200; check_fastinter_ms = 100; "
                                             "check_timeout_ms = 100; fall = 2;"), NULL);
    CU_ASSERT_EQUAL(cfg->clusters[0].server_selection_timeout_ms, 200 + 2 * 100 + 100 + 100);
    CU_ASSERT_TRUE(strstr(cfg->clusters[0].uri, "serverSelectionTimeoutMS=600") != NULL);
    mongosup_config_destroy(&cfg);
    cfg = load_ok(one_uri("fall = 1; server_selection_timeout_ms = 1234;"), NULL);
    CU_ASSERT_EQUAL(cfg->clusters[0].server_selection_timeout_ms, 1234);
    mongosup_config_destroy(&cfg);
    cfg = load_ok(one("mongo_uri = \"mongodb://db1.example.net:27017/app?serverSelectionTimeoutMS=4321\";"), NULL);
    CU_ASSERT_EQUAL(cfg->clusters[0].server_selection_timeout_ms, 4321);
    mongosup_config_destroy(&cfg);
    cfg = load_ok(one_uri("check_interval_ms = 60000; fall = 5;"), NULL);
    CU_ASSERT_EQUAL(cfg->clusters[0].server_selection_timeout_ms, 30000);
    mongosup_config_destroy(&cfg);
}

static void test_layers_precedence(void)
{
    static const char text[] =
        "defaults = { max_pool_size = 10; rise = 5; };\n"
        "environments = {\n"
        "  a = {\n"
        "    defaults = { max_pool_size = 20; fall = 7; };\n"
        "    clusters = {\n"
        "      own = { mongo_uri = \"mongodb://h/\"; max_pool_size = 30; fall = 1; };\n"
        "      inherits = { mongo_uri = \"mongodb://h/\"; };\n"
        "    };\n"
        "  };\n"
        "  b = { clusters = { plain = { mongo_uri = \"mongodb://h/\"; }; }; };\n"
        "};\n";
    mongosup_config_t *cfg = load_ok(text, "a");
    int own = msup_config_find_cluster(cfg, "own"), inh = msup_config_find_cluster(cfg, "inherits");
    CU_ASSERT_FATAL(own >= 0 && inh >= 0);
    CU_ASSERT_EQUAL(cfg->clusters[own].max_pool_size, 30);
    CU_ASSERT_EQUAL(cfg->clusters[own].fall, 1);
    CU_ASSERT_EQUAL(cfg->clusters[own].rise, 5);
    CU_ASSERT_EQUAL(cfg->clusters[inh].max_pool_size, 20);
    CU_ASSERT_EQUAL(cfg->clusters[inh].fall, 7);
    CU_ASSERT_EQUAL(cfg->clusters[inh].check_interval_ms, 2000); /* built-in */
    CU_ASSERT(has(cfg->clusters[own].uri, "maxPoolSize=30"));
    mongosup_config_destroy(&cfg);

    cfg = load_ok(text, "b");
    CU_ASSERT_EQUAL(cfg->clusters[0].max_pool_size, 10);
    CU_ASSERT_EQUAL(cfg->clusters[0].fall, 3);
    CU_ASSERT_EQUAL(cfg->clusters[0].rise, 5);
    mongosup_config_destroy(&cfg);
}

/* ------------------------------------------------------------------------ */
/* Environments                                                               */

static void test_env_precedence(void)
{
    mongosup_config_t *cfg = load_ok(ENVS, NULL); /* default_environment */
    CU_ASSERT_STRING_EQUAL(mongosup_config_environment(cfg), "development");
    mongosup_config_destroy(&cfg);

    setenv("MONGOSUP_ENV", "production", 1); /* beats default_environment */
    cfg = load_ok(ENVS, NULL);
    CU_ASSERT_STRING_EQUAL(mongosup_config_environment(cfg), "production");
    CU_ASSERT_EQUAL(mongosup_config_cluster_count(cfg), 2);
    mongosup_config_destroy(&cfg);

    cfg = load_ok(ENVS, "staging"); /* the argument beats MONGOSUP_ENV */
    CU_ASSERT_STRING_EQUAL(mongosup_config_environment(cfg), "staging");
    CU_ASSERT(has(cfg->clusters[0].uri, "mongodb://stage:27017/app"));
    mongosup_config_destroy(&cfg);

    setenv("MONGOSUP_ENV", "", 1); /* empty: as if unset */
    cfg = load_ok(ENVS, "");
    CU_ASSERT_STRING_EQUAL(mongosup_config_environment(cfg), "development");
    mongosup_config_destroy(&cfg);
}

static void test_env_unknown(void)
{
    load_bad(ENVS, "prod");
    CU_ASSERT(has(msg, at_line(2)));
    CU_ASSERT(has(msg, "unknown environment \"prod\" (from the caller)"));
    CU_ASSERT(has(msg, "valid: development, staging, production"));

    setenv("MONGOSUP_ENV", "qa", 1);
    load_bad(ENVS, NULL);
    CU_ASSERT(has(msg, "unknown environment \"qa\" (from $MONGOSUP_ENV)"));
}

static void test_env_unknown_default(void)
{
    load_bad("default_environment = \"prod\";\n"
             "environments = { production = { clusters = { u = { mongo_uri = \"mongodb://h/\"; }; }; }; };\n",
             "production");
    CU_ASSERT(has(msg, at_line(1)));
    CU_ASSERT(has(msg, "default_environment: unknown environment \"prod\"; valid: production"));
}

static void test_env_none_chosen(void)
{
    load_bad("environments = { dev = { clusters = { u = { mongo_uri = \"mongodb://h/\"; }; }; };\n"
             "                 prod = { clusters = { u = { mongo_uri = \"mongodb://h/\"; }; }; }; };\n",
             NULL);
    CU_ASSERT(has(msg, "no environment chosen"));
    CU_ASSERT(has(msg, "valid: dev, prod"));
}

/* ------------------------------------------------------------------------ */
/* URIs                                                                       */

static void test_uri_env(void)
{
    const char *text = one_uri("uri_env = \"TEST_USERS_URI\";");
    mongosup_config_t *cfg = load_ok(text, NULL);
    CU_ASSERT(has(cfg->clusters[0].uri, "db1.example.net"));
    mongosup_config_destroy(&cfg);

    setenv("TEST_USERS_URI", "", 1); /* empty: ignored */
    cfg = load_ok(text, NULL);
    CU_ASSERT(has(cfg->clusters[0].uri, "db1.example.net"));
    mongosup_config_destroy(&cfg);

    setenv("TEST_USERS_URI", "mongodb://fromenv:27018/envdb", 1);
    cfg = load_ok(text, NULL);
    CU_ASSERT(has(cfg->clusters[0].uri, "mongodb://fromenv:27018/envdb?"));
    CU_ASSERT(has(cfg->clusters[0].uri_source, "$TEST_USERS_URI (uri_env)"));
    CU_ASSERT_STRING_EQUAL(cfg->clusters[0].database_name, "envdb");
    mongosup_config_destroy(&cfg);

    /* uri_env alone, no mongo_uri in the file. */
    cfg = load_ok(one("uri_env = \"TEST_USERS_URI\";"), NULL);
    CU_ASSERT(has(cfg->clusters[0].uri, "fromenv"));
    mongosup_config_destroy(&cfg);
}

static void test_uri_cluster_env(void)
{
    setenv("TEST_USERS_URI", "mongodb://fromuri_env/", 1);
    setenv("MONGOSUP_USERS_URI", "mongodb://fromcluster_env/", 1);
    mongosup_config_t *cfg = load_ok(one_uri("uri_env = \"TEST_USERS_URI\";"), NULL);
    CU_ASSERT(has(cfg->clusters[0].uri, "mongodb://fromcluster_env/"));
    CU_ASSERT_STRING_EQUAL(cfg->clusters[0].uri_source, "$MONGOSUP_USERS_URI");
    mongosup_config_destroy(&cfg);

    /* Upper-cased, non-alphanumerics as '_'. */
    setenv("MONGOSUP_MY_DB_URI", "mongodb://mangled/", 1);
    cfg = load_ok("default_environment = \"dev\"; environments = { dev = { clusters = { my-db = { mongo_uri = \"mongodb://h/\"; }; }; }; };", NULL);
    CU_ASSERT(has(cfg->clusters[0].uri, "mongodb://mangled/"));
    mongosup_config_destroy(&cfg);

    /* Enough for a cluster with no mongo_uri at all. */
    cfg = load_ok(one(""), NULL);
    CU_ASSERT(has(cfg->clusters[0].uri, "fromcluster_env"));
    mongosup_config_destroy(&cfg);
}

static void test_uri_missing(void)
{
    load_bad("environments = {\n"
             "  dev = {\n"
             "    clusters = {\n"
             "      users = { max_pool_size = 5; };\n"
             "    };\n"
             "  };\n"
             "};\n",
             "dev");
    CU_ASSERT(has(msg, at_line(4)));
    CU_ASSERT(has(msg, "environments.dev.clusters.users: no URI"));
    CU_ASSERT(has(msg, "MONGOSUP_USERS_URI"));

    load_bad(one("uri_env = \"TEST_USERS_URI\";"), NULL);
    CU_ASSERT(has(msg, "$TEST_USERS_URI (uri_env)"));
}

static void test_uri_explicit_key_wins(void)
{
    mongosup_config_t *cfg = load_ok(
        one("mongo_uri = \"mongodb://h/?maxPoolSize=7&connectTimeoutMS=1234&RETRYWRITES=false&w=majority\"; "
            "max_pool_size = 9;"),
        NULL);
    const msup_cluster_cfg_t *c = &cfg->clusters[0];
    CU_ASSERT_EQUAL(c->max_pool_size, 9);         /* explicit key > URI */
    CU_ASSERT_EQUAL(c->connect_timeout_ms, 1234); /* URI > built-in */
    CU_ASSERT_FALSE(c->retry_writes);
    CU_ASSERT(has(c->uri, "maxPoolSize=9"));
    CU_ASSERT(lacks(c->uri, "maxPoolSize=7"));
    CU_ASSERT(has(c->uri, "connectTimeoutMS=1234"));
    CU_ASSERT(has(c->uri, "w=majority")); /* other options kept */
    CU_ASSERT(has(c->uri, "retryWrites=false"));
    CU_ASSERT(lacks(c->uri, "RETRYWRITES"));
    bson_error_t be;
    mongoc_uri_t *u = mongoc_uri_new_with_error(c->uri, &be);
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    CU_ASSERT_EQUAL(mongoc_uri_get_option_as_int32(u, MONGOC_URI_MAXPOOLSIZE, 0), 9);
    CU_ASSERT_EQUAL(mongoc_uri_get_option_as_int32(u, MONGOC_URI_WAITQUEUETIMEOUTMS, 0), 5000);
    mongoc_uri_destroy(u);
    mongosup_config_destroy(&cfg);

    /* A key at the file defaults level is explicit too. */
    cfg = load_ok("defaults = { max_pool_size = 11; };\n"
                  "default_environment = \"dev\"; environments = { dev = { clusters = { users = { mongo_uri = \"mongodb://h/?maxPoolSize=7\"; }; }; }; };\n",
                  NULL);
    CU_ASSERT_EQUAL(cfg->clusters[0].max_pool_size, 11);
    mongosup_config_destroy(&cfg);
}

/* The value the driver uses for an option: the URI's, else mongoc 1.23's
 * default (the header's constants where it has them). */
static int32_t effective_int(const mongoc_uri_t *u, const char *option, int32_t driver_default)
{
    return mongoc_uri_has_option(u, option) ? mongoc_uri_get_option_as_int32(u, option, 0) : driver_default;
}

static bool effective_bool(const mongoc_uri_t *u, const char *option, bool driver_default)
{
    return mongoc_uri_has_option(u, option) ? mongoc_uri_get_option_as_bool(u, option, false) : driver_default;
}

/* The URI used to spell out every option with the resolved value; now it
 * holds only those that differ from the driver's defaults.  What the driver
 * ends up using must be the resolved values, as before. */
static void expect_effective(const msup_cluster_cfg_t *c)
{
    bson_error_t be;
    mongoc_uri_t *u = mongoc_uri_new_with_error(c->uri, &be);
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    CU_ASSERT_EQUAL(effective_int(u, MONGOC_URI_MAXPOOLSIZE, 100), (int32_t)c->max_pool_size);
    CU_ASSERT_EQUAL(effective_int(u, MONGOC_URI_WAITQUEUETIMEOUTMS, 0), (int32_t)c->wait_queue_timeout_ms);
    CU_ASSERT_EQUAL(effective_int(u, MONGOC_URI_CONNECTTIMEOUTMS, MONGOC_DEFAULT_CONNECTTIMEOUTMS),
                    (int32_t)c->connect_timeout_ms);
    CU_ASSERT_EQUAL(effective_int(u, MONGOC_URI_SOCKETTIMEOUTMS, MONGOC_DEFAULT_SOCKETTIMEOUTMS),
                    (int32_t)c->socket_timeout_ms);
    CU_ASSERT_EQUAL(effective_int(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 30000),
                    (int32_t)c->server_selection_timeout_ms);
    /* Always written: the pooled default (10000) is not the single-threaded one (60000). */
    CU_ASSERT_TRUE(mongoc_uri_has_option(u, MONGOC_URI_HEARTBEATFREQUENCYMS));
    CU_ASSERT_EQUAL(effective_int(u, MONGOC_URI_HEARTBEATFREQUENCYMS, 10000), (int32_t)c->heartbeat_frequency_ms);
    CU_ASSERT_EQUAL(effective_bool(u, MONGOC_URI_RETRYWRITES, true), c->retry_writes);
    CU_ASSERT_EQUAL(effective_bool(u, MONGOC_URI_RETRYREADS, true), c->retry_reads);
    CU_ASSERT_EQUAL(effective_bool(u, MONGOC_URI_TLSALLOWINVALIDHOSTNAMES, false), c->tls_allow_invalid_hostnames);
    mongoc_uri_destroy(u);
}

static void test_uri_effective_options(void)
{
    /* Built-in defaults. */
    mongosup_config_t *cfg = load_ok(one_uri(""), NULL);
    expect_effective(&cfg->clusters[0]);
    mongosup_config_destroy(&cfg);

    /* Every option away from the driver's default: all written. */
    cfg = load_ok(one_uri("max_pool_size = 7; wait_queue_timeout_ms = 0; connect_timeout_ms = 1234; "
                          "socket_timeout_ms = 4321; server_selection_timeout_ms = 999; "
                          "heartbeat_frequency_ms = 600; retry_writes = false; retry_reads = false;"),
                  NULL);
    const msup_cluster_cfg_t *c = &cfg->clusters[0];
    CU_ASSERT_STRING_EQUAL(c->uri, "mongodb://db1.example.net:27017/app?maxPoolSize=7&connectTimeoutMS=1234"
                                   "&socketTimeoutMS=4321&serverSelectionTimeoutMS=999&heartbeatFrequencyMS=600"
                                   "&retryWrites=false&retryReads=false");
    expect_effective(c);
    mongosup_config_destroy(&cfg);

    /* Keys set to the driver's defaults win over other values in the URI
     * text: the text's options go, the default needs no option. */
    cfg = load_ok(one("mongo_uri = \"mongodb://h/?connectTimeoutMS=5&maxPoolSize=3&socketTimeoutMS=300000&w=1\"; "
                      "connect_timeout_ms = 10000; max_pool_size = 100;"),
                  NULL);
    c = &cfg->clusters[0];
    CU_ASSERT_EQUAL(c->connect_timeout_ms, 10000);
    CU_ASSERT_EQUAL(c->max_pool_size, 100);
    CU_ASSERT_EQUAL(c->socket_timeout_ms, 300000);
    CU_ASSERT_STRING_EQUAL(c->uri, "mongodb://h/?w=1&waitQueueTimeoutMS=5000&serverSelectionTimeoutMS=6500&heartbeatFrequencyMS=10000");
    expect_effective(c);
    mongosup_config_destroy(&cfg);
}

static void test_uri_option_out_of_range(void)
{
    load_bad(one("mongo_uri = \"mongodb://h/?maxPoolSize=20000\";"), NULL);
    CU_ASSERT(has(msg, "URI option maxPoolSize=20000"));
    CU_ASSERT(has(msg, "out of range 1..10000"));
}

static void test_uri_unsupported_options(void)
{
    load_bad(one("mongo_uri = \"mongodb://h/?minPoolSize=5\";"), NULL);
    CU_ASSERT(has(msg, at_line(1)));
    CU_ASSERT(has(msg, "minPoolSize"));
    CU_ASSERT(has(msg, "use the config key min_pool_size"));
    load_bad(one("mongo_uri = \"mongodb://h/?maxidletimems=5\";"), NULL);
    CU_ASSERT(has(msg, "use the config key max_idle_time_ms"));
    load_bad(one("mongo_uri = \"mongodb://h/?waitQueueMultiple=2\";"), NULL);
    CU_ASSERT(has(msg, "waitQueueMultiple"));
    setenv("MONGOSUP_USERS_URI", "mongodb://h/?minPoolSize=1", 1);
    load_bad(one_uri(""), NULL);
    CU_ASSERT(has(msg, "from $MONGOSUP_USERS_URI"));
}

static void test_uri_invalid_redacted(void)
{
    static const char *const bad[] = {
        "mongo_uri = \"mongodb://bob:s3cretpw@host:notaport/\";",
        "mongo_uri = \"http://bob:s3cretpw@host/\";",
        "mongo_uri = \"mongodb://bob:s3cretpw@\";",
        "mongo_uri = \"mongodb://bob:s3cret@pw@host/\";",
        "mongo_uri = \"bob:s3cretpw@host\";",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        load_bad(one(bad[i]), NULL);
        CU_ASSERT(has(msg, "invalid URI"));
        CU_ASSERT(lacks(msg, "s3cret"));
    }
    /* Also when the password comes from a variable. */
    setenv("MONGOSUP_USERS_URI", "mongodb://bob:s3cretpw@host:99999/", 1);
    load_bad(one(""), NULL);
    CU_ASSERT(has(msg, "invalid URI"));
    CU_ASSERT(lacks(msg, "s3cret"));
}

static void test_uri_replica_set(void)
{
    mongosup_config_t *cfg = load_ok(ENVS, "production");
    int u = msup_config_find_cluster(cfg, "users"), a = msup_config_find_cluster(cfg, "analytics");
    CU_ASSERT_FATAL(u >= 0 && a >= 0);
    CU_ASSERT_FALSE(cfg->clusters[u].is_replica_set);
    CU_ASSERT_TRUE(cfg->clusters[a].is_replica_set);
    CU_ASSERT(has(cfg->clusters[a].uri, "mongodb://a1,a2,a3/stats?replicaSet=rs0&"));
    CU_ASSERT_EQUAL(cfg->clusters[a].source_line, 12);
    mongosup_config_destroy(&cfg);
}

static void test_uri_tls_options(void)
{
    mongosup_config_t *cfg = load_ok(one_uri("tls_ca_file = \"/etc/ssl/my ca&x=1.pem\"; "
                                             "tls_certificate_key_file = \"/etc/ssl/client.pem\"; "
                                             "tls_allow_invalid_hostnames = true;"),
                                     NULL);
    const msup_cluster_cfg_t *c = &cfg->clusters[0];
    CU_ASSERT_STRING_EQUAL(c->tls_ca_file, "/etc/ssl/my ca&x=1.pem");
    CU_ASSERT_TRUE(c->tls_allow_invalid_hostnames);
    bson_error_t be;
    mongoc_uri_t *u = mongoc_uri_new_with_error(c->uri, &be);
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    CU_ASSERT_STRING_EQUAL(mongoc_uri_get_option_as_utf8(u, MONGOC_URI_TLSCAFILE, ""), "/etc/ssl/my ca&x=1.pem");
    CU_ASSERT_STRING_EQUAL(mongoc_uri_get_option_as_utf8(u, MONGOC_URI_TLSCERTIFICATEKEYFILE, ""),
                           "/etc/ssl/client.pem");
    CU_ASSERT_TRUE(mongoc_uri_get_option_as_bool(u, MONGOC_URI_TLSALLOWINVALIDHOSTNAMES, false));
    mongoc_uri_destroy(u);
    mongosup_config_destroy(&cfg);
}

static void test_uri_appname(void)
{
    mongosup_config_t *cfg = load_ok(one_uri("appname = \"my app\";"), NULL);
    CU_ASSERT_STRING_EQUAL(cfg->clusters[0].appname, "my app");
    CU_ASSERT(has(cfg->clusters[0].uri, "appname=my%20app"));
    mongosup_config_destroy(&cfg);

    cfg = load_ok(one("mongo_uri = \"mongodb://h/?appName=fromuri\";"), NULL);
    CU_ASSERT_STRING_EQUAL(cfg->clusters[0].appname, "fromuri");
    mongosup_config_destroy(&cfg);

    char keys[256], name[130];
    memset(name, 'a', 129);
    name[129] = '\0';
    snprintf(keys, sizeof keys, "appname = \"%s\";", name);
    load_bad(one_uri(keys), NULL);
    CU_ASSERT(has(msg, "appname: longer than 128 bytes"));
    name[128] = '\0';
    snprintf(keys, sizeof keys, "appname = \"%s\";", name);
    cfg = load_ok(one_uri(keys), NULL);
    mongosup_config_destroy(&cfg);
}

static void test_uri_srv(void)
{
    setenv("TEST_PW", "srv-secret", 1);
    mongosup_config_t *cfg =
        load_ok(one("mongo_uri = \"mongodb+srv://alice@cluster0.example.com/db?authSource=admin\"; "
                    "password_env = \"TEST_PW\";"),
                NULL);
    const msup_cluster_cfg_t *c = &cfg->clusters[0];
    CU_ASSERT(has(c->uri, "mongodb+srv://alice:srv-secret@cluster0.example.com/db?authSource=admin&"));
    CU_ASSERT(has(c->uri_display, "mongodb+srv://alice:***@cluster0.example.com/db?authSource=admin"));
    CU_ASSERT(lacks(c->uri_display, "srv-secret"));
    mongosup_config_destroy(&cfg);
}

/* ------------------------------------------------------------------------ */
/* Passwords                                                                  */

static void check_password(const msup_cluster_cfg_t *c, const char *user, const char *password)
{
    bson_error_t be;
    mongoc_uri_t *u = mongoc_uri_new_with_error(c->uri, &be);
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    CU_ASSERT_STRING_EQUAL(mongoc_uri_get_username(u), user);
    CU_ASSERT_STRING_EQUAL(mongoc_uri_get_password(u), password);
    mongoc_uri_destroy(u);
    CU_ASSERT(lacks(c->uri_display, password));
    CU_ASSERT(has(c->uri_display, ":***@"));
    CU_ASSERT(lacks(c->uri_source, password));
}

static void test_password_env(void)
{
    setenv("TEST_PW", "p@ss:w/rd%?&=#", 1);
    mongosup_config_t *cfg =
        load_ok(one("mongo_uri = \"mongodb://app%40corp:old@h1,h2/app\"; password_env = \"TEST_PW\";"), NULL);
    check_password(&cfg->clusters[0], "app@corp", "p@ss:w/rd%?&=#");
    CU_ASSERT(has(cfg->clusters[0].uri_source, "password from $TEST_PW"));
    CU_ASSERT(lacks(cfg->clusters[0].uri, "old"));

    char *buf = dump_of(cfg);
    CU_ASSERT(lacks(buf, "p@ss"));
    CU_ASSERT(lacks(buf, "w/rd"));
    free(buf);
    mongosup_config_destroy(&cfg);

    unsetenv("TEST_PW");
    load_bad(one("mongo_uri = \"mongodb://u@h/\"; password_env = \"TEST_PW\";"), NULL);
    CU_ASSERT(has(msg, "password_env: environment variable TEST_PW is not set"));
}

static void test_password_file_modes(void)
{
    char keys[PATH_MAX + 128];
    const char *pw = write_file("pw", "hunter2-secret\n", 0600);
    snprintf(keys, sizeof keys, "mongo_uri = \"mongodb://svc@h/\"; password_file = \"%s\";", pw);
    mongosup_config_t *cfg = load_ok(one(keys), NULL);
    check_password(&cfg->clusters[0], "svc", "hunter2-secret");
    mongosup_config_destroy(&cfg);

    write_file("pw", "hunter2-secret\r\n\n", 0640); /* group-readable is fine */
    cfg = load_ok(one(keys), NULL);
    check_password(&cfg->clusters[0], "svc", "hunter2-secret");
    mongosup_config_destroy(&cfg);

    write_file("pw", "hunter2-secret\n", 0644);
    load_bad(one(keys), NULL);
    CU_ASSERT(has(msg, at_line(1)));
    CU_ASSERT(has(msg, "password_file: "));
    CU_ASSERT(has(msg, "readable by everyone (mode 0644)"));
    CU_ASSERT(lacks(msg, "hunter2"));

    write_file("pw", "\n", 0600);
    load_bad(one(keys), NULL);
    CU_ASSERT(has(msg, "is empty"));

    /* password_env wins when set; the file is the fallback. */
    write_file("pw", "from-file\n", 0600);
    snprintf(keys, sizeof keys,
             "mongo_uri = \"mongodb://svc@h/\"; password_env = \"TEST_PW\"; password_file = \"%s\";", pw);
    cfg = load_ok(one(keys), NULL);
    check_password(&cfg->clusters[0], "svc", "from-file");
    mongosup_config_destroy(&cfg);
    setenv("TEST_PW", "from-env", 1);
    cfg = load_ok(one(keys), NULL);
    check_password(&cfg->clusters[0], "svc", "from-env");
    mongosup_config_destroy(&cfg);
}

static void test_password_file_missing(void)
{
    char keys[PATH_MAX + 128];
    snprintf(keys, sizeof keys, "mongo_uri = \"mongodb://svc@h/\"; password_file = \"%s/nope\";", tmpdir);
    load_bad(one(keys), NULL);
    CU_ASSERT(has(msg, "password_file: cannot open"));
    CU_ASSERT(has(msg, "/nope: No such file or directory"));
}

static void test_password_no_user(void)
{
    setenv("TEST_PW", "secret-x", 1);
    load_bad(one_uri("password_env = \"TEST_PW\";"), NULL);
    CU_ASSERT(has(msg, "has no user name"));
    CU_ASSERT(lacks(msg, "secret-x"));
}

static void test_password_in_defaults(void)
{
    /* A password source in the defaults applies to every cluster. */
    setenv("TEST_PW", "shared-pw", 1);
    mongosup_config_t *cfg = load_ok("defaults = { password_env = \"TEST_PW\"; };\n"
                                     "default_environment = \"dev\"; environments = { dev = { clusters = {\n"
                                     "  a = { mongo_uri = \"mongodb://ua@h/\"; };\n"
                                     "  b = { mongo_uri = \"mongodb://ub@h2/\"; };\n"
                                     "}; }; };\n",
                                     NULL);
    check_password(&cfg->clusters[0], "ua", "shared-pw");
    check_password(&cfg->clusters[1], "ub", "shared-pw");
    mongosup_config_destroy(&cfg);
}

static void test_tls_password(void)
{
    char keys[PATH_MAX + 256];
    const char *f = write_file("tlspw", "tls-file-secret\n", 0600);
    snprintf(keys, sizeof keys,
             "tls_certificate_key_file = \"/etc/c.pem\"; tls_certificate_key_file_password_file = \"%s\";", f);
    mongosup_config_t *cfg = load_ok(one_uri(keys), NULL);
    const msup_cluster_cfg_t *c = &cfg->clusters[0];
    CU_ASSERT_STRING_EQUAL(c->tls_certificate_key_file_password, "tls-file-secret");
    CU_ASSERT(has(c->uri, "tlsCertificateKeyFilePassword=tls-file-secret"));
    CU_ASSERT(has(c->uri_display, "tlsCertificateKeyFilePassword=***"));
    CU_ASSERT(lacks(c->uri_display, "tls-file-secret"));
    mongosup_config_destroy(&cfg);

    setenv("TEST_TLS_PW", "tls env&secret", 1);
    cfg = load_ok(one("mongo_uri = \"mongodb://h/?tlsCertificateKeyFilePassword=inuri\"; "
                      "tls_certificate_key_file_password_env = \"TEST_TLS_PW\";"),
                  NULL);
    c = &cfg->clusters[0];
    CU_ASSERT_STRING_EQUAL(c->tls_certificate_key_file_password, "tls env&secret");
    CU_ASSERT(lacks(c->uri, "inuri"));
    bson_error_t be;
    mongoc_uri_t *u = mongoc_uri_new_with_error(c->uri, &be);
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    CU_ASSERT_STRING_EQUAL(mongoc_uri_get_option_as_utf8(u, MONGOC_URI_TLSCERTIFICATEKEYFILEPASSWORD, ""),
                           "tls env&secret");
    mongoc_uri_destroy(u);
    CU_ASSERT(lacks(c->uri_display, "secret"));
    mongosup_config_destroy(&cfg);

    write_file("tlspw", "tls-file-secret\n", 0604);
    load_bad(one_uri(keys), NULL);
    CU_ASSERT(has(msg, "readable by everyone"));
}

/* ------------------------------------------------------------------------ */
/* Bad files                                                                  */

static void test_bad_unknown_key(void)
{
    load_bad("environments = {\n"
             "  dev = {\n"
             "    clusters = {\n"
             "      users = {\n"
             "        mongo_uri = \"mongodb://h/\";\n"
             "        max_pol_size = 5;\n"
             "      };\n"
             "    };\n"
             "  };\n"
             "};\n",
             "dev");
    CU_ASSERT(has(msg, at_line(6)));
    CU_ASSERT(has(msg, "environments.dev.clusters.users.max_pol_size: unknown key (did you mean max_pool_size?)"));
    CU_ASSERT(has(msg, "valid: mongo_uri, uri_env, database_name, appname, max_pool_size"));

    load_bad("defaults = { colour = 1; };\n" "default_environment = \"dev\"; environments = { dev = { clusters = { u = { mongo_uri = \"mongodb://h/\"; }; }; }; };\n",
             NULL);
    CU_ASSERT(has(msg, "defaults.colour: unknown key; valid: mongo_uri"));
}

static void test_bad_unknown_key_levels(void)
{
    load_bad("segments = { };\n" "default_environment = \"dev\"; environments = { dev = { clusters = { u = { mongo_uri = \"mongodb://h/\"; }; }; }; };\n", NULL);
    CU_ASSERT(has(msg, at_line(1)));
    CU_ASSERT(has(msg, "segments: unknown top-level setting (did you mean segment?); valid: segment, supervisor, "
                       "fleet, default_environment, defaults, environments"));

    load_bad("default_environment = \"dev\"; environments = { dev = { cluster = { }; }; };\n", NULL);
    CU_ASSERT(has(msg, "environments.dev.cluster: unknown key (did you mean clusters?); valid: defaults, clusters"));

    load_bad("segment = { nam = \"/x\"; };\n" "default_environment = \"dev\"; environments = { dev = { clusters = { u = { mongo_uri = \"mongodb://h/\"; }; }; }; };\n", NULL);
    CU_ASSERT(has(msg, "segment.nam: unknown key (did you mean name?); valid: name, mode, group, max_workers, max_clusters, owner"));

    load_bad("supervisor = { loglevel = \"info\"; };\n" "default_environment = \"dev\"; environments = { dev = { clusters = { u = { mongo_uri = \"mongodb://h/\"; }; }; }; };\n", NULL);
    CU_ASSERT(has(msg, "supervisor.loglevel: unknown key (did you mean log_level?); valid: pidfile, log, log_level"));

    /* A typo in another environment is found too. */
    load_bad("environments = {\n"
             "  dev = { clusters = { u = { mongo_uri = \"mongodb://h/\"; }; }; };\n"
             "  prod = { clusters = { u = { mongo_uri = \"mongodb://h/\"; rize = 2; }; }; };\n"
             "};\n",
             "dev");
    CU_ASSERT(has(msg, at_line(3)));
    CU_ASSERT(has(msg, "environments.prod.clusters.u.rize: unknown key (did you mean rise?)"));
}

static void test_bad_types(void)
{
    load_bad(one_uri("max_pool_size = \"10\";"), NULL);
    CU_ASSERT(has(msg, "max_pool_size: expected an integer, got a string"));
    load_bad(one_uri("retry_writes = 1;"), NULL);
    CU_ASSERT(has(msg, "retry_writes: expected true or false, got an integer"));
    load_bad(one("mongo_uri = 5;"), NULL);
    CU_ASSERT(has(msg, "mongo_uri: expected a string, got an integer"));
    load_bad(one_uri("rise = 1.5;"), NULL);
    CU_ASSERT(has(msg, "rise: expected an integer, got a float"));
    load_bad("default_environment = \"dev\"; environments = { dev = 3; };\n", NULL);
    CU_ASSERT(has(msg, "environments.dev: expected a group"));
    load_bad(one_uri("max_pool_size = 5000000000L;"), NULL);
    CU_ASSERT(has(msg, "5000000000 is out of range 1..10000"));
}

static void test_bad_range(void)
{
    load_bad("environments = {\n"
             "  dev = {\n"
             "    clusters = {\n"
             "      users = { mongo_uri = \"mongodb://h/\";\n"
             "                max_pool_size = 0; };\n"
             "    };\n"
             "  };\n"
             "};\n",
             "dev");
    char want[PATH_MAX + 128];
    snprintf(want, sizeof want, "%s:5: environments.dev.clusters.users.max_pool_size: 0 is out of range 1..10000",
             conf_path);
    CU_ASSERT_STRING_EQUAL(msg, want);

    load_bad(one_uri("heartbeat_frequency_ms = 499;"), NULL);
    CU_ASSERT(has(msg, "heartbeat_frequency_ms: 499 is out of range 500..3600000"));
    load_bad(one_uri("rise = 0;"), NULL);
    CU_ASSERT(has(msg, "rise: 0 is out of range 1..1000"));
    load_bad(one_uri("fall = 0;"), NULL);
    CU_ASSERT(has(msg, "fall: 0 is out of range 1..1000"));
    load_bad(one_uri("connect_timeout_ms = -1;"), NULL);
    CU_ASSERT(has(msg, "-1 is out of range"));
}

/* The slow-operation log: off by default, a threshold in range, file:line on a bad value. */
static void test_slow_op_keys(void)
{
    mongosup_config_t *cfg = load_ok(one_uri(""), NULL);
    CU_ASSERT_EQUAL(cfg->clusters[0].slow_op_ms, 0);
    CU_ASSERT_FALSE(cfg->clusters[0].log_failed_ops);
    mongosup_config_destroy(&cfg);
    cfg = load_ok(one_uri("slow_op_ms = 250; log_failed_ops = true;"), NULL);
    CU_ASSERT_EQUAL(cfg->clusters[0].slow_op_ms, 250);
    CU_ASSERT_TRUE(cfg->clusters[0].log_failed_ops);
    mongosup_config_destroy(&cfg);
    load_bad("environments = {\n"
             "  dev = {\n"
             "    clusters = {\n"
             "      users = { mongo_uri = \"mongodb://h/\";\n"
             "                slow_op_ms = 3600001; };\n"
             "    };\n"
             "  };\n"
             "};\n",
             "dev");
    char want[PATH_MAX + 128];
    snprintf(want, sizeof want, "%s:5: environments.dev.clusters.users.slow_op_ms: 3600001 is out of range 0..3600000",
             conf_path);
    CU_ASSERT_STRING_EQUAL(msg, want);
    load_bad(one_uri("slow_op_ms = \"fast\";"), NULL);
    CU_ASSERT(has(msg, "slow_op_ms: expected an integer, got a string"));
    load_bad(one_uri("log_failed_ops = 1;"), NULL);
    CU_ASSERT(has(msg, "log_failed_ops: expected true or false, got an integer"));
}

static void test_bad_cross_fields(void)
{
    load_bad(one_uri("max_pool_size = 10; min_pool_size = 11;"), NULL);
    CU_ASSERT(has(msg, "min_pool_size: min_pool_size 11 is larger than max_pool_size 10"));
    /* max_pool_size from the URI counts too. */
    load_bad(one("mongo_uri = \"mongodb://h/?maxPoolSize=4\"; min_pool_size = 5;"), NULL);
    CU_ASSERT(has(msg, "larger than max_pool_size 4"));
    load_bad(one_uri("max_connections = 10; max_connecting = 11;"), NULL);
    CU_ASSERT(has(msg, "max_connecting 11 is larger than max_connections 10"));
    mongosup_config_t *cfg = load_ok(one_uri("max_connecting = 11;"), NULL); /* unlimited connections */
    mongosup_config_destroy(&cfg);
    load_bad(one_uri("check_interval_ms = 1000; check_timeout_ms = 1000;"), NULL);
    CU_ASSERT(has(msg, "check_timeout_ms 1000 must be smaller than check_interval_ms 1000"));
}

static void test_bad_cluster_names(void)
{
    load_bad("default_environment = \"dev\"; environments = { dev = { clusters = { a*b = { mongo_uri = \"mongodb://h/\"; }; }; }; };\n", NULL);
    CU_ASSERT(has(msg, "a*b: cluster names are 1 to 63 of [A-Za-z0-9_-]"));
    char text[512], name[65];
    memset(name, 'c', 64);
    name[64] = '\0';
    snprintf(text, sizeof text, "default_environment = \"dev\"; environments = { dev = { clusters = { %s = { mongo_uri = \"mongodb://h/\"; }; }; }; };\n", name);
    load_bad(text, NULL);
    CU_ASSERT(has(msg, "cluster names are"));
    name[63] = '\0';
    snprintf(text, sizeof text, "default_environment = \"dev\"; environments = { dev = { clusters = { %s = { mongo_uri = \"mongodb://h/\"; }; }; }; };\n", name);
    mongosup_config_t *cfg = load_ok(text, NULL);
    CU_ASSERT_STRING_EQUAL(mongosup_config_cluster_name(cfg, 0), name);
    mongosup_config_destroy(&cfg);

    load_bad("default_environment = \"dev\"; environments = { dev = { clusters = {\n"
             "  a-b = { mongo_uri = \"mongodb://h/\"; };\n"
             "  a_b = { mongo_uri = \"mongodb://h/\"; };\n"
             "}; }; };\n",
             NULL);
    CU_ASSERT(has(msg, at_line(3)));
    CU_ASSERT(has(msg, "clusters a-b and a_b would both read $MONGOSUP_A_B_URI"));
}

static void test_bad_no_clusters(void)
{
    load_bad("default_environment = \"dev\"; environments = { dev = { clusters = { }; }; };\n", NULL);
    CU_ASSERT(has(msg, "environments.dev.clusters: no cluster in environment dev"));
    load_bad("default_environment = \"dev\"; environments = { dev = { }; };\n", NULL);
    CU_ASSERT(has(msg, "environments.dev: no clusters = { ... } group"));
    load_bad("environments = { };\n", NULL);
    CU_ASSERT(has(msg, "no environment is defined"));
    load_bad("segment = { };\n", NULL);
    CU_ASSERT(has(msg, "no environments = { ... } group"));
}

static void test_max_clusters(void)
{
    char text[4096];
    size_t len = (size_t)snprintf(text, sizeof text, "default_environment = \"dev\"; environments = { dev = { clusters = {\n");
    for (int i = 0; i < 9; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "  c%d = { mongo_uri = \"mongodb://h/\"; };\n", i);
    snprintf(text + len, sizeof text - len, "}; }; };\n");
    mongosup_config_t *cfg = load_ok(text, NULL);
    CU_ASSERT_EQUAL(cfg->max_clusters, 9); /* max(8, count) */
    CU_ASSERT_EQUAL(mongosup_config_cluster_count(cfg), 9);
    mongosup_config_destroy(&cfg);

    char text2[4200];
    snprintf(text2, sizeof text2, "segment = { max_clusters = 4; };\n%s", text);
    load_bad(text2, NULL);
    CU_ASSERT(has(msg, at_line(1)));
    CU_ASSERT(has(msg, "segment.max_clusters: 4 is smaller than the 9 clusters of environment dev"));
    snprintf(text2, sizeof text2, "segment = { max_clusters = 65; };\n%s", text);
    load_bad(text2, NULL);
    CU_ASSERT(has(msg, "65 is out of range 1..64"));
    snprintf(text2, sizeof text2, "segment = { max_clusters = 20; };\n%s", text);
    cfg = load_ok(text2, NULL);
    CU_ASSERT_EQUAL(cfg->max_clusters, 20);
    mongosup_config_destroy(&cfg);
}

static const char *with_top(const char *top)
{
    static char buf[2048];
    snprintf(buf, sizeof buf, "%s\ndefault_environment = \"dev\"; environments = { dev = { clusters = { u = { mongo_uri = \"mongodb://h/\"; }; }; }; };\n", top);
    return buf;
}

static void test_segment(void)
{
    mongosup_config_t *cfg =
        load_ok(with_top("segment = { name = \"/mongosup.app\"; mode = \"0640\"; group = \"0\"; max_workers = 128; };"), NULL);
    CU_ASSERT_STRING_EQUAL(cfg->segment_name, "/mongosup.app");
    CU_ASSERT_EQUAL(cfg->segment_mode, 0640);
    CU_ASSERT_EQUAL(cfg->segment_group, 0);
    CU_ASSERT_EQUAL(cfg->max_workers, 128);
    mongosup_config_destroy(&cfg);

    /* 57 bytes: the longest name that leaves room for ".stats". */
    cfg = load_ok(with_top("segment = { name = \"/01234567890123456789012345678901234567890123456789012345\"; };"), NULL);
    CU_ASSERT_EQUAL(strlen(cfg->segment_name), 57);
    mongosup_config_destroy(&cfg);

    /* The default name derived from the environment passes the same rule. */
    load_bad("default_environment = \"e0123456789012345678901234567890123456789012345678\";\n"
             "environments = { e0123456789012345678901234567890123456789012345678 = { clusters = { u = { "
             "mongo_uri = \"mongodb://h/\"; }; }; }; };\n",
             NULL);
    CU_ASSERT(has(msg, "segment.name: the default segment name \"/mongosup.e0123"));
    CU_ASSERT(has(msg, "60 bytes, at most 57"));
    CU_ASSERT(has(msg, "set a name"));

    cfg = load_ok(with_top("segment = { group = \"root\"; };"), NULL);
    CU_ASSERT_EQUAL(cfg->segment_group, 0);
    CU_ASSERT_EQUAL(cfg->segment_mode, 0640); /* a group implies 0640 */
    CU_ASSERT_EQUAL(cfg->segment_owner, (uid_t)-1); /* no other owner accepted */
    mongosup_config_destroy(&cfg);

    /* segment.owner: a user name or a uid (docs/security.md). */
    cfg = load_ok(with_top("segment = { owner = \"root\"; };"), NULL);
    CU_ASSERT_EQUAL(cfg->segment_owner, 0);
    mongosup_config_destroy(&cfg);
    cfg = load_ok(with_top("segment = { owner = \"4242\"; };"), NULL);
    CU_ASSERT_EQUAL(cfg->segment_owner, 4242);
    mongosup_config_destroy(&cfg);

    static const struct {
        const char *top, *want;
    } bad[] = {
        {"segment = { name = \"mongosup\"; };",
         "segment.name: segment name \"mongosup\" is invalid: it must be '/' followed by a name without '/'"},
        {"segment = { name = \"/a/b\"; };", "must be '/' followed by a name without '/'"},
        {"segment = { name = \"/\"; };", "must be '/' followed by a name without '/'"},
        {"segment = { name = \"/.\"; };", "segment.name: segment name \"/.\" is invalid: \".\" and \"..\" name directories"},
        {"segment = { name = \"/..\"; };", "segment name \"/..\" is invalid: \".\" and \"..\" name directories"},
        {"segment = { name = \"/a b\"; };", "only printable ASCII without spaces"},
        {"segment = { name = \"/a\\tb\"; };", "segment name \"/a\\x09b\" is invalid: only printable ASCII"},
        {"segment = { name = \"/\\x1b[2Jx\"; };", "segment name \"/\\x1b[2Jx\" is invalid"},
        {"segment = { name = \"/012345678901234567890123456789012345678901234567890123456\"; };",
         "58 bytes, at most 57 (the stats segment adds \".stats\")"},
        {"segment = { name = \"/0123456789012345678901234567890123456789012345678901234567890123\"; };",
         "segment.name: longer than 63 bytes"},
        {"segment = { mode = \"0644x\"; };", "segment.mode: \"0644x\" is not an octal mode"},
        {"segment = { mode = \"0400\"; };", "the owner needs read and write"},
        {"segment = { mode = \"0666\"; };", "world-writable"},
        {"segment = { mode = 600; };", "segment.mode: expected a string, got an integer"},
        {"segment = { mode = \"1777\"; };", "is not an octal mode"},
        {"segment = { group = \"no-such-group-xyz\"; };", "segment.group: no such group \"no-such-group-xyz\""},
        {"segment = { owner = \"no-such-user-xyz\"; };", "segment.owner: no such user \"no-such-user-xyz\""},
        {"segment = { owner = 7; };", "segment.owner: expected a string"},
        {"segment = { max_workers = 0; };", "segment.max_workers: 0 is out of range 1..65536"},
        {"segment = 5;", "segment: expected a group"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        load_bad(with_top(bad[i].top), NULL);
        CU_ASSERT(has(msg, at_line(1)));
        CU_ASSERT(has(msg, bad[i].want));
    }
}

static void test_supervisor(void)
{
    mongosup_config_t *cfg = load_ok(
        with_top("supervisor = { pidfile = \"/run/mongosupd.pid\"; log = \"syslog\"; log_level = \"debug\";\n"
                 " heartbeat_interval_ms = 100; heartbeat_timeout_ms = 1000; reap_interval_ms = 200;\n"
                 " drain_timeout_ms = 0; shutdown_signal = \"USR1\"; escalate = \"none\"; escalate_grace_ms = 0;\n"
                 " keep_segment = true; metrics_listen = \"[::1]:9216\"; };"),
        NULL);
    const msup_supervisor_cfg_t *s = &cfg->supervisor;
    CU_ASSERT_STRING_EQUAL(s->pidfile, "/run/mongosupd.pid");
    CU_ASSERT_STRING_EQUAL(s->log, "syslog");
    CU_ASSERT_EQUAL(s->log_level, LOG_DEBUG);
    CU_ASSERT_EQUAL(s->heartbeat_interval_ms, 100);
    CU_ASSERT_EQUAL(s->heartbeat_timeout_ms, 1000);
    CU_ASSERT_EQUAL(s->reap_interval_ms, 200);
    CU_ASSERT_EQUAL(s->drain_timeout_ms, 0);
    CU_ASSERT_EQUAL(s->shutdown_signal, SIGUSR1);
    CU_ASSERT_STRING_EQUAL(s->escalate, "none");
    CU_ASSERT_TRUE(s->keep_segment);
    CU_ASSERT_STRING_EQUAL(s->metrics_listen, "[::1]:9216");
    mongosup_config_destroy(&cfg);

    static const struct {
        const char *top, *want;
    } bad[] = {
        {"supervisor = { log_level = \"verbose\"; };",
         "supervisor.log_level: \"verbose\" is not one of \"error\", \"warning\", \"notice\", \"info\", \"debug\""},
        {"supervisor = { log = \"file\"; };", "\"file\" is not one of \"stderr\", \"syslog\""},
        {"supervisor = { shutdown_signal = \"KILL\"; };", "is not one of \"none\", \"TERM\""},
        {"supervisor = { escalate = \"always\"; };", "is not one of \"term-kill\", \"kill\", \"none\""},
        {"supervisor = { heartbeat_interval_ms = 500; heartbeat_timeout_ms = 500; };",
         "heartbeat_timeout_ms 500 must be larger than heartbeat_interval_ms 500"},
        {"supervisor = { metrics_listen = \"9216\"; };", "supervisor.metrics_listen: \"9216\" is not HOST:PORT"},
        {"supervisor = { metrics_listen = \"localhost:0\"; };", "is not HOST:PORT"},
        {"supervisor = { keep_segment = \"yes\"; };", "expected true or false, got a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        load_bad(with_top(bad[i].top), NULL);
        CU_ASSERT(has(msg, at_line(1)));
        CU_ASSERT(has(msg, bad[i].want));
    }
}

static void test_bad_syntax(void)
{
    load_bad("environments = {\n"
             "  dev = {\n"
             "    clusters = { users = { mongo_uri = = \"mongodb://h/\"; }; };\n"
             "  };\n"
             "};\n",
             NULL);
    CU_ASSERT(has(msg, at_line(3)));
    CU_ASSERT(has(msg, "syntax error"));

    load_bad("default_environment = \"dev\"; environments = { dev = { clusters = { u = { max_pool_size = 1; max_pool_size = 2; }; }; }; };\n", NULL);
    CU_ASSERT(has(msg, at_line(1)));
}

static void test_bad_missing_file(void)
{
    mongosup_error_t err;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/does-not-exist.conf", tmpdir);
    mongosup_config_t *cfg = mongosup_config_load(path, NULL, &err);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(err.code, MONGOSUP_E_CONFIG);
    CU_ASSERT(has(err.message, "cannot open "));
    CU_ASSERT(has(err.message, "does-not-exist.conf: No such file or directory"));
    cfg = mongosup_config_load(NULL, NULL, &err);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(err.code, MONGOSUP_E_INVALID_ARG);
    CU_ASSERT_PTR_NULL(mongosup_config_load(path, NULL, NULL)); /* error may be NULL */
}

static void test_api_accessors(void)
{
    mongosup_config_t *cfg = load_ok(ENVS, "production");
    CU_ASSERT_EQUAL(mongosup_config_cluster_count(cfg), 2);
    CU_ASSERT_STRING_EQUAL(mongosup_config_cluster_name(cfg, 0), "users");
    CU_ASSERT_STRING_EQUAL(mongosup_config_cluster_name(cfg, 1), "analytics");
    CU_ASSERT_PTR_NULL(mongosup_config_cluster_name(cfg, 2));
    CU_ASSERT_EQUAL(msup_config_find_cluster(cfg, "analytics"), 1);
    CU_ASSERT_EQUAL(msup_config_find_cluster(cfg, "nope"), -1);
    CU_ASSERT_EQUAL(msup_config_find_cluster(cfg, NULL), -1);
    CU_ASSERT_STRING_EQUAL(cfg->path, conf_path);
    mongosup_config_destroy(&cfg);
    CU_ASSERT_PTR_NULL(mongosup_config_environment(NULL));
    CU_ASSERT_EQUAL(mongosup_config_cluster_count(NULL), 0);
    CU_ASSERT_PTR_NULL(mongosup_config_cluster_name(NULL, 0));
    CU_ASSERT_EQUAL(msup_config_find_cluster(NULL, "users"), -1);
    mongosup_config_destroy(&cfg); /* NULL: no-op */
    mongosup_config_destroy(NULL);
}

static void test_dump(void)
{
    setenv("TEST_PW", "dump-secret", 1);
    const char *f = write_file("tlspw", "tls-dump-secret\n", 0600);
    char keys[PATH_MAX + 256];
    snprintf(keys, sizeof keys,
             "mongo_uri = \"mongodb://bob@h/?replicaSet=rs0\"; password_env = \"TEST_PW\"; "
             "tls_certificate_key_file_password_file = \"%s\"; appname = \"say \\\"hi\\\"\";",
             f);
    mongosup_config_t *cfg = load_ok(one(keys), NULL);
    char *buf = dump_of(cfg);
    CU_ASSERT(has(buf, "environment = \"dev\";"));
    CU_ASSERT(has(buf, "name = \"/mongosup.dev\";"));
    CU_ASSERT(has(buf, "mode = \"0600\";"));
    CU_ASSERT(has(buf, "log_level = \"info\";"));
    CU_ASSERT(has(buf, "shutdown_signal = \"none\";"));
    CU_ASSERT(has(buf, "users = { #"));
    CU_ASSERT(has(buf, "uri = \"mongodb://bob:***@h:27017/?replicaSet=rs0&appname=say%20%22hi%22&tlsCertificateKeyFilePassword=***\";"));
    CU_ASSERT(has(buf, "# uri from mongo_uri at"));
    CU_ASSERT(has(buf, "password from $TEST_PW; replica set"));
    CU_ASSERT(has(buf, "max_pool_size = 100;"));
    CU_ASSERT(has(buf, "retry_reads = true;"));
    CU_ASSERT(has(buf, "appname = \"say \\\"hi\\\"\";"));
    CU_ASSERT(has(buf, "tls_certificate_key_file_password = \"***\";"));
    CU_ASSERT(lacks(buf, "dump-secret"));
    free(buf);
    msup_config_dump(NULL, stdout); /* no-op */
    mongosup_config_destroy(&cfg);
}

/* ------------------------------------------------------------------------ */
/* Redaction                                                                  */

static const char *redact(const char *uri)
{
    static char out[MSUP_URI_DISPLAY_MAX];
    mongosup_error_t err;
    CU_ASSERT_TRUE(mongosup_uri_redact(uri, out, sizeof out, &err));
    return out;
}

static void test_redact_uri_shapes(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"mongodb://localhost", "mongodb://localhost:27017"},
        {"mongodb://h1:27017,h2:27018/app?replicaSet=rs0", "mongodb://h1:27017,h2:27018/app?replicaSet=rs0"},
        {"mongodb://bob:pa55word@h/app", "mongodb://bob:***@h:27017/app"},
        {"mongodb://bob@h/?authMechanism=MONGODB-X509", "mongodb://bob@h:27017/?authMechanism=MONGODB-X509"},
        {"mongodb://us%40er:p%40ss@h/", "mongodb://us%40er:***@h:27017"},
        {"mongodb+srv://bob:pa55word@cluster0.example.com/db?authSource=admin",
         "mongodb+srv://bob:***@cluster0.example.com/db?authSource=admin"},
        {"mongodb://h/?tls=true&tlsCertificateKeyFilePassword=pa55word&appname=x",
         "mongodb://h:27017/?tls=true&tlsCertificateKeyFilePassword=***&appname=x"},
        {"mongodb://bob@h/?authMechanism=GSSAPI&authMechanismProperties=SERVICE_NAME:pa55word,CANONICALIZE_HOST_NAME:true",
         "mongodb://bob@h:27017/?authMechanism=GSSAPI&authMechanismProperties=***"},
        {"mongodb://bob:pa55word@[::1]:27017/", "mongodb://bob:***@[::1]:27017"},
        {"mongodb://bob:pa55word@%2Ftmp%2Fmongodb-27017.sock/db", "mongodb://bob:***@%2Ftmp%2Fmongodb-27017.sock/db"},
        /* Rejected by mongoc: textual masking up to the last '@'. */
        {"mongodb://bob:pa55word@host:notaport/", "mongodb://***@host:notaport/"},
        {"mongodb://bob:pa55@word@host/", "mongodb://***@host/"},
        {"mongodb://bob:pa55@word@host/?appname=a@b", "mongodb://***@b"},
        {"http://bob:pa55word@host/?sslClientCertificateKeyPassword=pa55word",
         "http://***@host/?sslClientCertificateKeyPassword=***"},
        {"mongodb://bob:pa55word@", "mongodb://***@"},
        {"bob:pa55word@host", "bob:***@host"},
        {"", ""},
        {"not a uri at all", "not a uri at all"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = redact(cases[i].in);
        if (strcmp(got, cases[i].want) != 0)
            fprintf(stderr, "\n  redact(%s) = %s, want %s\n", cases[i].in, got, cases[i].want);
        CU_ASSERT_STRING_EQUAL(got, cases[i].want);
        CU_ASSERT(lacks(got, "pa55"));
    }
}

static void test_redact_uri_truncation(void)
{
    char uri[1024], out[40];
    snprintf(uri, sizeof uri, "mongodb://bob:pa55word@h/?appname=");
    size_t len = strlen(uri);
    memset(uri + len, 'x', 600);
    uri[len + 600] = '\0';
    CU_ASSERT_TRUE(mongosup_uri_redact(uri, out, sizeof out, NULL));
    CU_ASSERT_EQUAL(strlen(out), sizeof out - 1);
    CU_ASSERT(has(out, "..."));
    CU_ASSERT(lacks(out, "pa55"));
    CU_ASSERT_TRUE(mongosup_uri_redact("mongodb://h", out, 1, NULL));
    CU_ASSERT_STRING_EQUAL(out, "");

    mongosup_error_t err;
    CU_ASSERT_FALSE(mongosup_uri_redact(NULL, out, sizeof out, &err));
    CU_ASSERT_EQUAL(err.code, MONGOSUP_E_INVALID_ARG);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_FALSE(mongosup_uri_redact("mongodb://h", NULL, 10, &err));
    CU_ASSERT_FALSE(mongosup_uri_redact("mongodb://h", out, 0, NULL));
}

static void test_redact_text(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"Failed to connect to mongodb://bob:pa55word@db1:27017/app: timeout",
         "Failed to connect to mongodb://bob:***@db1:27017/app: timeout"},
        {"auth failed for 'bob:pa55word@db1'", "auth failed for 'bob:***@db1'"},
        {"uri=mongodb://bob:pa55word@h/?tlsCertificateKeyFilePassword=pa55word&x=1",
         "uri=mongodb://bob:***@h/?tlsCertificateKeyFilePassword=***&x=1"},
        {"option authMechanismProperties=SERVICE_NAME:pa55word,X:Y rejected",
         "option authMechanismProperties=*** rejected"},
        {"mail bob@example.com about host:27017", "mail bob@example.com about host:27017"},
        {"No suitable servers found (`serverSelectionTryOnce` set): [connection refused calling hello on 'h:27017']",
         "No suitable servers found (`serverSelectionTryOnce` set): [connection refused calling hello on 'h:27017']"},
        {"mongodb://bob:pa55@word@h/", "mongodb://bob:***@h/"},
        {"", ""},
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msup_redact_text(cases[i].in, out, sizeof out);
        if (strcmp(out, cases[i].want) != 0)
            fprintf(stderr, "\n  redact_text(%s) = %s, want %s\n", cases[i].in, out, cases[i].want);
        CU_ASSERT_STRING_EQUAL(out, cases[i].want);
        CU_ASSERT(lacks(out, "pa55"));
    }
    char small[16];
    msup_redact_text("mongodb://bob:pa55word@host/very/long/text", small, sizeof small);
    CU_ASSERT_EQUAL(strlen(small), sizeof small - 1);
    CU_ASSERT(lacks(small, "pa55"));
    msup_redact_text(NULL, small, sizeof small);
    CU_ASSERT_STRING_EQUAL(small, "");
    msup_redact_text("x", small, 0); /* no-op */
}

/* ------------------------------------------------------------------------ */

static void remove_fixtures(void)
{
    for (size_t i = 0; i < ncreated; i++)
        unlink(created[i]);
    if (tmpdir[0] != '\0' && rmdir(tmpdir) != 0)
        fprintf(stderr, "config_test: cannot remove %s: %s\n", tmpdir, strerror(errno));
}

/* The string builder both the loader and the redaction use. */
static void test_strbuf(void)
{
    msup_strbuf_t g = MSUP_STRBUF_GROWING;
    CU_ASSERT_EQUAL(msup_strbuf_last(&g), '\0');
    msup_strbuf_puts(&g, "mongodb://u:");
    msup_strbuf_put_encoded(&g, "p@ss/w rd~", NULL);
    msup_strbuf_puts(&g, "@h/?");
    CU_ASSERT_STRING_EQUAL(g.p, "mongodb://u:p%40ss%2Fw%20rd~@h/?");
    CU_ASSERT_EQUAL(msup_strbuf_last(&g), '?');
    msup_strbuf_put_encoded(&g, "/a:b", "/:");
    CU_ASSERT_STRING_EQUAL(g.p + g.len - 4, "/a:b");
    for (int i = 0; i < 100; i++) /* grows past its first allocation */
        msup_strbuf_puts(&g, "0123456789");
    CU_ASSERT_EQUAL(g.len, strlen(g.p));
    CU_ASSERT_FALSE(g.oom);
    msup_strbuf_wipe(&g);
    CU_ASSERT_PTR_NULL(g.p);

    char buf[8];
    msup_strbuf_t f;
    msup_strbuf_init_fixed(&f, buf, sizeof buf);
    msup_strbuf_puts(&f, "abc");
    CU_ASSERT_FALSE(f.truncated);
    msup_strbuf_put_encoded(&f, "d e", NULL); /* "d%20e" does not fit whole */
    CU_ASSERT_TRUE(f.truncated);
    CU_ASSERT_STRING_EQUAL(buf, "abcd%20");
    msup_strbuf_wipe(&f); /* the caller's buffer stays */
    CU_ASSERT_STRING_EQUAL(buf, "abcd%20");
}

/* ---- the fleet group (issue 13) ---------------------------------------- */

/* A fleet group (one line, first line of the file) and one cluster. */
static const char *fleet_conf(const char *fleet, const char *cluster_keys)
{
    static char buf[40960];
    snprintf(buf, sizeof buf, "fleet = { %s };\n%s", fleet, one_uri(cluster_keys));
    return buf;
}

static void test_fleet_absent_changes_nothing(void)
{
    mongosup_config_t *cfg = load_ok(one_uri(""), NULL);
    CU_ASSERT_FALSE(cfg->fleet.enabled);
    CU_ASSERT_EQUAL(cfg->clusters[0].fleet_max_connections, 0);
    CU_ASSERT_EQUAL(cfg->clusters[0].fleet_floor, 0);
    mongosup_config_destroy(&cfg);
}

static void test_fleet_defaults_and_floor(void)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    mongosup_config_t *cfg =
        load_ok(fleet_conf("endpoints = [\"http://127.0.0.1:2379\", \"http://127.0.0.2:2379\"]; max_hosts = 4;",
                           "fleet_max_connections = 100;"),
                NULL);
    const msup_fleet_cfg_t *f = &cfg->fleet;
    CU_ASSERT_TRUE(f->enabled);
    CU_ASSERT_STRING_EQUAL(f->endpoints[0], "http://127.0.0.1:2379");
    CU_ASSERT_STRING_EQUAL(f->endpoints[1], "http://127.0.0.2:2379");
    CU_ASSERT_PTR_NULL(f->endpoints[2]);
    CU_ASSERT_STRING_EQUAL(f->prefix, "/mongosup/fleet");
    CU_ASSERT_STRING_EQUAL(f->host_id, host);
    CU_ASSERT_EQUAL(f->lease_ttl_s, 10);
    CU_ASSERT_EQUAL(f->max_hosts, 4);
    CU_ASSERT_EQUAL(cfg->clusters[0].fleet_max_connections, 100);
    CU_ASSERT_EQUAL(cfg->clusters[0].fleet_floor, 25); /* 100 / max_hosts */
    mongosup_config_destroy(&cfg);

    cfg = load_ok(fleet_conf("endpoints = [\"http://e:2379\"]; host_id = \"web-3.dc1\"; prefix = \"/x/y\"; "
                             "lease_ttl_s = 2; poll_interval_ms = 100; request_timeout_ms = 500;",
                             "fleet_max_connections = 100; fleet_floor = 5;"),
                  NULL);
    CU_ASSERT_STRING_EQUAL(cfg->fleet.host_id, "web-3.dc1");
    CU_ASSERT_STRING_EQUAL(cfg->fleet.prefix, "/x/y");
    CU_ASSERT_EQUAL(cfg->clusters[0].fleet_floor, 5);
    mongosup_config_destroy(&cfg);
}

static void test_fleet_password(void)
{
    setenv("MSUP_TEST_ETCD_PW", "etcd-s3cret", 1);
    mongosup_config_t *cfg = load_ok(
        fleet_conf("endpoints = [\"https://e:2379\"]; username = \"msup\"; password_env = \"MSUP_TEST_ETCD_PW\";", ""),
        NULL);
    CU_ASSERT_STRING_EQUAL(cfg->fleet.password, "etcd-s3cret");
    char *dump = dump_of(cfg);
    CU_ASSERT(has(dump, "password = \"***\""));
    CU_ASSERT(has(dump, "endpoints = [\"https://e:2379\"]"));
    CU_ASSERT(lacks(dump, "etcd-s3cret"));
    free(dump);
    mongosup_config_destroy(&cfg);
    unsetenv("MSUP_TEST_ETCD_PW");

    char pw[PATH_MAX];
    snprintf(pw, sizeof pw, "%s", write_file("etcd.pw", "from-file\n", 0600));
    char fleet[PATH_MAX + 128];
    snprintf(fleet, sizeof fleet, "endpoints = [\"http://e:2379\"]; username = \"u\"; password_file = \"%s\";", pw);
    cfg = load_ok(fleet_conf(fleet, ""), NULL);
    CU_ASSERT_STRING_EQUAL(cfg->fleet.password, "from-file");
    mongosup_config_destroy(&cfg);
    write_file("etcd.pw", "from-file\n", 0644);
    load_bad(fleet_conf(fleet, ""), NULL);
    CU_ASSERT(has(msg, "is readable by everyone"));
    CU_ASSERT(lacks(msg, "from-file"));
}

static void test_fleet_bad(void)
{
    const char *ep = "endpoints = [\"http://e:2379\"]; max_hosts = 4;";
    struct {
        const char *fleet, *cluster, *expect;
    } cases[] = {
        {"max_hosts = 4;", "", "fleet: no endpoints"},
        {"endpoints = [];", "", "fleet.endpoints: the list is empty"},
        {"endpoints = \"http://e:2379\";", "", "fleet.endpoints: expected a list of strings"},
        {"endpoints = [\"e:2379\"];", "", "is not an http:// or https:// URL"},
        {"endpoints = [\"http://user:pw@e:2379\"];", "", "without user information"},
        {"endpoints = [\"http://e\"]; host_id = \"a b\";", "", "fleet.host_id: \"a b\" is not 1 to 63"},
        {"endpoints = [\"http://e\"]; prefix = \"nope\";", "", "fleet.prefix: \"nope\" is not a key prefix"},
        {"endpoints = [\"http://e\"]; lease_ttl_s = 1;", "", "fleet.lease_ttl_s: 1 is out of range 2..3600"},
        {"endpoints = [\"http://e\"]; lease_ttl_s = 2; request_timeout_ms = 1000;", "",
         "request_timeout_ms 1000 must be at most a quarter of lease_ttl_s"},
        {"endpoints = [\"http://e\"]; lease_ttl_s = 2; poll_interval_ms = 1500; request_timeout_ms = 500;", "",
         "poll_interval_ms 1500 must be at most half"},
        {"endpoints = [\"http://e\"]; username = \"u\";", "", "username without password_env or password_file"},
        {"endpoints = [\"http://e\"]; password_env = \"X\";", "", "a password without a username"},
        {"endpoints = [\"http://e\"]; tls_cert_file = \"/c\";", "", "tls_cert_file and tls_key_file go together"},
        {"endpoints = [\"http://e\"]; colour = 1;", "", "fleet.colour: unknown key"},
        {"endpoints = [\"https://a\", \"http://e\"]; tls_ca_file = \"/ca\";", "",
         "element 2: \"http://e\" is http:// but the group sets TLS files: use https://"},
        {ep, "fleet_max_connections = 100; fleet_floor = 26;",
         "fleet_floor 26 x fleet.max_hosts 4 = 104 is more than fleet_max_connections 100"},
        {ep, "fleet_max_connections = 3;", "leaves no floor for each of fleet.max_hosts 4 hosts"},
        {ep, "fleet_floor = 3;", "fleet_floor without fleet_max_connections"},
        {ep, "fleet_max_connections = 100; max_connections = 10;",
         "max_connections 10 (this host's ceiling) is below its fleet_floor 25"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        load_bad(fleet_conf(cases[i].fleet, cases[i].cluster), NULL);
        CU_ASSERT(has(msg, cases[i].expect));
        CU_ASSERT(has(msg, conf_path)); /* every message names the file and line */
    }
    /* A cluster in the fleet without a fleet group: the key's line. */
    load_bad(one_uri("fleet_max_connections = 100;"), NULL);
    CU_ASSERT(has(msg, at_line(1)));
    CU_ASSERT(has(msg, "fleet_max_connections needs a fleet = {"));
    load_bad(fleet_conf(ep, "fleet_max_connections = 100; fleet_floor = 26;"), NULL);
    CU_ASSERT(has(msg, at_line(2)));
    load_bad(fleet_conf("endpoints = [\"http://e\"]; lease_ttl_s = 1;", ""), NULL);
    CU_ASSERT(has(msg, at_line(1)));
}

int main(void)
{
    static const struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"/config/good/minimal", test_good_minimal},
        {"/config/strbuf/growing-and-fixed", test_strbuf},
        {"/config/good/example-file", test_good_example_file},
        {"/config/layers/precedence", test_layers_precedence},
        {"/config/defaults/selection-timeout-follows-checks", test_selection_timeout_follows_checks},
        {"/config/env/precedence", test_env_precedence},
        {"/config/env/unknown", test_env_unknown},
        {"/config/env/unknown-default", test_env_unknown_default},
        {"/config/env/none-chosen", test_env_none_chosen},
        {"/config/uri/uri-env", test_uri_env},
        {"/config/uri/cluster-env", test_uri_cluster_env},
        {"/config/uri/missing", test_uri_missing},
        {"/config/uri/explicit-key-wins", test_uri_explicit_key_wins},
        {"/config/uri/effective-options", test_uri_effective_options},
        {"/config/uri/option-out-of-range", test_uri_option_out_of_range},
        {"/config/uri/unsupported-options", test_uri_unsupported_options},
        {"/config/uri/invalid-redacted", test_uri_invalid_redacted},
        {"/config/uri/replica-set", test_uri_replica_set},
        {"/config/uri/tls-options", test_uri_tls_options},
        {"/config/uri/appname", test_uri_appname},
        {"/config/uri/srv", test_uri_srv},
        {"/config/password/env", test_password_env},
        {"/config/password/file-modes", test_password_file_modes},
        {"/config/password/file-missing", test_password_file_missing},
        {"/config/password/no-user", test_password_no_user},
        {"/config/password/in-defaults", test_password_in_defaults},
        {"/config/password/tls", test_tls_password},
        {"/config/bad/unknown-key", test_bad_unknown_key},
        {"/config/bad/unknown-key-levels", test_bad_unknown_key_levels},
        {"/config/bad/types", test_bad_types},
        {"/config/bad/range", test_bad_range},
        {"/config/slow-op-keys", test_slow_op_keys},
        {"/config/bad/cross-fields", test_bad_cross_fields},
        {"/config/fleet/absent", test_fleet_absent_changes_nothing},
        {"/config/fleet/defaults-and-floor", test_fleet_defaults_and_floor},
        {"/config/fleet/password", test_fleet_password},
        {"/config/fleet/bad", test_fleet_bad},
        {"/config/bad/cluster-names", test_bad_cluster_names},
        {"/config/bad/no-clusters", test_bad_no_clusters},
        {"/config/segment/max-clusters", test_max_clusters},
        {"/config/segment/keys", test_segment},
        {"/config/supervisor/keys", test_supervisor},
        {"/config/bad/syntax", test_bad_syntax},
        {"/config/bad/missing-file", test_bad_missing_file},
        {"/config/api/accessors", test_api_accessors},
        {"/config/dump", test_dump},
        {"/redact/uri/shapes", test_redact_uri_shapes},
        {"/redact/uri/truncation-and-args", test_redact_uri_truncation},
        {"/redact/text", test_redact_text},
    };

    mongoc_init();
    mongoc_log_set_handler(NULL, NULL); /* unknown-option warnings are expected */
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mongosup-config-test.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    clean_env();

    int rc = 1;
    if (CU_initialize_registry() != CUE_SUCCESS)
        goto out;
    CU_pSuite suite = CU_add_suite_with_setup_and_teardown("config", NULL, NULL, clean_env, clean_env);
    if (suite == NULL)
        goto out_registry;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (CU_add_test(suite, tests[i].name, tests[i].fn) == NULL)
            goto out_registry;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    rc = CU_get_number_of_failures() != 0 || CU_get_number_of_tests_failed() != 0 ? 1 : 0;
out_registry:
    CU_cleanup_registry();
out:
    remove_fixtures();
    mongoc_cleanup();
    return rc;
}
