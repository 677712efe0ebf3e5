/* mod_mongosup.c: the Apache module: directives, configuration in the parent, attach/detach in each child, handlers. */
#include <httpd.h> /* first: the other Apache headers need its types */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_strings.h>
#include <http_config.h>
#include <http_log.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

#include "module.h"
#include "target.h"

msup_ap_process_t msup_ap;



/* ------------------------------------------------------------ directives */

static void *create_server_conf(apr_pool_t *p, server_rec *s)
{
    msup_ap_conf_t *c = apr_pcalloc(p, sizeof *c);
    c->drain_timeout_ms = MSUP_AP_DRAIN_DEFAULT_MS;
    c->retry_after_s = MSUP_AP_RETRY_AFTER_DEFAULT_S;
    return c;
}

static msup_ap_conf_t *conf_of(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &mongosup_module);
}

static const char *set_config(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err != NULL)
        return err;
    msup_ap_conf_t *c = conf_of(cmd);
    c->config_path = ap_server_root_relative(cmd->pool, arg);
    if (c->config_path == NULL)
        return apr_psprintf(cmd->pool, "MongosupConfig: invalid path '%s'", arg);
    c->config_where = apr_psprintf(cmd->pool, "line %d of %s", cmd->directive->line_num, cmd->directive->filename);
    return NULL;
}

static const char *set_environment(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err != NULL)
        return err;
    if (arg[0] == '\0')
        return "MongosupEnvironment: the name is empty";
    conf_of(cmd)->environment = arg;
    conf_of(cmd)->environment_where =
        apr_psprintf(cmd->pool, "line %d of %s", cmd->directive->line_num, cmd->directive->filename);
    return NULL;
}

/* A whole decimal number in lo..hi, or NULL. */
static bool parse_uint(const char *arg, unsigned long lo, unsigned long hi, unsigned *out)
{
    char *end;
    if (arg[0] < '0' || arg[0] > '9')
        return false;
    unsigned long v = strtoul(arg, &end, 10);
    if (*end != '\0' || v < lo || v > hi)
        return false;
    *out = (unsigned)v;
    return true;
}

static const char *set_drain_timeout(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err != NULL)
        return err;
    if (!parse_uint(arg, 0, 600000, &conf_of(cmd)->drain_timeout_ms))
        return apr_psprintf(cmd->pool, "MongosupDrainTimeout: '%s' is not a number of milliseconds in 0..600000",
                            arg);
    return NULL;
}

static const char *set_retry_after(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err != NULL)
        return err;
    if (!parse_uint(arg, 0, 86400, &conf_of(cmd)->retry_after_s))
        return apr_psprintf(cmd->pool, "MongosupRetryAfter: '%s' is not a number of seconds in 0..86400", arg);
    return NULL;
}

static const command_rec mongosup_cmds[] = {
    AP_INIT_TAKE1("MongosupConfig", set_config, NULL, RSRC_CONF,
                  "the mongosup configuration file (libconfig), loaded and validated by the parent"),
    AP_INIT_TAKE1("MongosupEnvironment", set_environment, NULL, RSRC_CONF,
                  "the environment of the configuration (default: $MONGOSUP_ENV, then default_environment)"),
    AP_INIT_TAKE1("MongosupDrainTimeout", set_drain_timeout, NULL, RSRC_CONF,
                  "milliseconds an exiting child waits for its checked-out clients (default 1000)"),
    AP_INIT_TAKE1("MongosupRetryAfter", set_retry_after, NULL, RSRC_CONF,
                  "seconds of the Retry-After header of a 503 (default 2)"),
    {NULL},
};

/* ------------------------------------------------------------ the parent */

/* pconf is cleared at every restart: the parent's configuration goes with
 * it.  A process that did not load it (a child) leaves it alone. */
static apr_status_t destroy_config(void *unused)
{
    if (msup_ap.cfg != NULL && msup_ap.cfg_owner == getpid())
        mongosup_config_destroy(&msup_ap.cfg);
    msup_ap.cfg = NULL;
    return APR_SUCCESS;
}

/* check_config runs in the parent at every start and restart, and for
 * `apache2 -t` (post_config does not): the mongosup configuration is loaded
 * and validated here, so that configtest reports its errors.  The parent
 * creates no pool and maps no segment: children attach after fork. */
static int check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    msup_ap_conf_t *c = ap_get_module_config(s->module_config, &mongosup_module);
    memset(&msup_ap, 0, sizeof msup_ap);
    msup_ap.conf = c;
    if (c->config_path == NULL) {
        if (c->environment != NULL)
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, s,
                         "mod_mongosup: MongosupEnvironment without MongosupConfig: the module is off");
        return OK;
    }
    mongosup_error_t err;
    mongosup_config_t *cfg = mongosup_config_load(c->config_path, c->environment, &err);
    msup_target_t target = {NULL, c->config_path, c->environment};
    if (cfg == NULL ||
        !msup_target_resolve(&target, msup_ap.segment, sizeof msup_ap.segment, &msup_ap.segment_owner, &err)) {
        /* The environment may be what is wrong ("unknown environment"):
         * its directive's line too, when it was set by one. */
        const char *env_where = c->environment != NULL
                                    ? apr_psprintf(ptemp, " with MongosupEnvironment %s on %s", c->environment,
                                                   c->environment_where)
                                    : "";
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, "mod_mongosup: MongosupConfig on %s%s: %s",
                     c->config_where, env_where, err.message);
        mongosup_config_destroy(&cfg);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    msup_ap.cfg = cfg;
    msup_ap.cfg_owner = getpid();
    apr_pool_cleanup_register(pconf, NULL, destroy_config, apr_pool_cleanup_null);
    return OK;
}

static int post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    /* Not in the first of the two passes Apache makes at start-up. */
    if (msup_ap.cfg != NULL && ap_state_query(AP_SQ_CONFIG_GEN) > 0)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "mod_mongosup: %s, environment %s, %d cluster(s), segment %s",
                     msup_ap.conf->config_path, mongosup_config_environment(msup_ap.cfg),
                     (int)mongosup_config_cluster_count(msup_ap.cfg), msup_ap.segment);
    return OK;
}

/* ------------------------------------------------------------- a child */

/* The child pool's cleanup: detach in the process that attached, never in
 * another (a fork of the child, mod_cgi's say, runs child cleanups only,
 * and this one registers none). */
static apr_status_t detach_child(void *unused)
{
    if (msup_ap.handle == NULL || msup_ap.handle_owner != getpid())
        return APR_SUCCESS;
    mongosup_detach(&msup_ap.handle, msup_ap.conf->drain_timeout_ms);
    return APR_SUCCESS;
}

static void child_init(apr_pool_t *pchild, server_rec *s)
{
    if (msup_ap.cfg == NULL)
        return;
    mongoc_init(); /* once per process; the parent never needs the driver's globals */
    msup_ap.handle = mongosup_attach(msup_ap.cfg, &msup_ap.attach_error);
    if (msup_ap.handle == NULL) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "mod_mongosup: child %d cannot attach: %s", (int)getpid(),
                     msup_ap.attach_error.message);
        return;
    }
    msup_ap.handle_owner = getpid();
    apr_pool_cleanup_register(pchild, NULL, detach_child, apr_pool_cleanup_null);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "mod_mongosup: child %d attached (slot %d)", (int)getpid(),
                 mongosup_worker_slot(msup_ap.handle));
}

mongosup_t *msup_ap_handle(mongosup_error_t *error)
{
    if (msup_ap.handle != NULL && msup_ap.handle_owner == getpid())
        return msup_ap.handle;
    if (error != NULL) {
        if (msup_ap.cfg == NULL) {
            memset(error, 0, sizeof *error);
            error->domain = MONGOSUP_ERROR_MONGOSUP;
            error->code = MONGOSUP_E_CONFIG;
            snprintf(error->message, sizeof error->message, "mod_mongosup: no MongosupConfig");
        } else {
            *error = msup_ap.attach_error;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ handlers */

static int handler(request_rec *r)
{
    if (r->handler == NULL)
        return DECLINED;
    if (strcmp(r->handler, "mongosup-status") == 0)
        return msup_ap_status_handler(r);
    if (strcmp(r->handler, "mongosup-demo") == 0)
        return msup_ap_demo_handler(r);
    return DECLINED;
}

static void register_hooks(apr_pool_t *p)
{
    msup_ap_register_request_api();
    ap_hook_check_config(check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(mongosup) = {
    STANDARD20_MODULE_STUFF,
    NULL,               /* per-directory config */
    NULL,               /* merge per-directory */
    create_server_conf, /* per-server config */
    NULL,               /* merge per-server: the directives are main-server only */
    mongosup_cmds,
    register_hooks,
    AP_MODULE_FLAG_NONE,
};
