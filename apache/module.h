/* module.h: what mod_mongosup's files share (directives, the process's state); not for other modules. */
#ifndef MOD_MONGOSUP_MODULE_H
#define MOD_MONGOSUP_MODULE_H

#include <stdbool.h>
#include <sys/types.h>

#include <httpd.h>
#include <http_config.h>

#include "mod_mongosup.h"

/* The directives (main server only: there is one mongosup per process). */
typedef struct msup_ap_conf {
    const char *config_path;   /* MongosupConfig, ServerRoot-relative resolved */
    const char *config_where;  /* "line N of FILE", for messages */
    const char *environment;   /* MongosupEnvironment; NULL: $MONGOSUP_ENV, then the file's default */
    const char *environment_where; /* "line N of FILE" of MongosupEnvironment */
    unsigned drain_timeout_ms; /* MongosupDrainTimeout */
    unsigned retry_after_s;    /* MongosupRetryAfter */
} msup_ap_conf_t;

#define MSUP_AP_DRAIN_DEFAULT_MS 1000u
#define MSUP_AP_RETRY_AFTER_DEFAULT_S 2u

/* The state of one process.  The parent fills cfg and segment at each
 * (re)configuration; a child inherits them through fork and fills handle in
 * child_init.  Nothing here is ever shared between processes at run time. */
typedef struct msup_ap_process {
    const msup_ap_conf_t *conf;    /* the main server's directives */
    mongosup_config_t *cfg;        /* loaded and validated by the parent; NULL: module off */
    pid_t cfg_owner;               /* the process that loaded cfg (only it destroys it) */
    char segment[64];              /* the segment name cfg selects, for the status page */
    uid_t segment_owner;           /* cfg's segment.owner ((uid_t)-1: none), for the status page */
    mongosup_t *handle;            /* this child's, attached in child_init */
    pid_t handle_owner;            /* the process that attached handle */
    mongosup_error_t attach_error; /* why handle is NULL in a child */
} msup_ap_process_t;

extern msup_ap_process_t msup_ap;
extern module AP_MODULE_DECLARE_DATA mongosup_module;

/* The handle of this process, or NULL with the reason in *error. */
mongosup_t *msup_ap_handle(mongosup_error_t *error);

/* Registers the optional functions of mod_mongosup.h (request.c). */
void msup_ap_register_request_api(void);

/* SetHandler mongosup-status (status.c) and mongosup-demo (demo.c). */
int msup_ap_status_handler(request_rec *r);
int msup_ap_demo_handler(request_rec *r);

#endif
