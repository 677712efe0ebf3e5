/* apache_fixture.h: a real Apache httpd (prefork) with mod_mongosup, the test peer and mongosupd, for apache_test. */
#ifndef MONGOSUP_TESTS_APACHE_FIXTURE_H
#define MONGOSUP_TESTS_APACHE_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "peer/peer.h"

/* The supervisor's settings in every scenario.  No scenario wants a DOWN it
 * did not cause: under a loaded 2-core CI machine the Python test peer
 * sometimes answers a ping after 250-850 ms, and checks of 250 ms with
 * fall = 1 turned such a stall into DOWN, 503s and failed runs
 * (/apache/recycle).  A verdict now needs three checks in a row that each
 * wait 800 ms.  A killed peer refuses connections at once, so DOWN still
 * comes within one interval plus two fastinters.  The request timeouts and
 * the heartbeat's are generous for the same reason: a request that waited
 * on them would only be slower, and the tests measure refusals against
 * AP_SELECTION_TIMEOUT_MS (a refusal that waited for selection would take it). */
#define AP_CHECK_INTERVAL_MS 1000u
#define AP_CHECK_TIMEOUT_MS 800u
#define AP_CHECK_FALL 3u
#define AP_SELECTION_TIMEOUT_MS 5000u
#define AP_CONNECT_TIMEOUT_MS 5000u
#define AP_HEARTBEAT_TIMEOUT_MS 5000u

/* What a scenario changes from the defaults. */
typedef struct ap_opts {
    const char *httpd_extra;      /* more httpd.conf lines (MaxConnectionsPerChild 20, ...) */
    const char *cluster_extra;    /* more keys in the mongosup config's defaults block */
    unsigned max_workers;         /* segment slots (default 32) */
    unsigned drain_timeout_ms;    /* mongosupd's drain deadline (default 3000) */
    bool no_supervisor;           /* start no mongosupd */
    bool single_under_valgrind;   /* apache2 -X (one process) under memcheck, log in vglog */
} ap_opts_t;

typedef struct ap_scen {
    char dir[64];                 /* the temporary ServerRoot */
    char segment[64];
    char msconf[128], httpdconf[128], errlog[128], suplog[128], vglog[128];
    bool single_under_valgrind;
    int port;
    int config_line;              /* line of MongosupConfig in httpd.conf */
    test_peer_t *peer;
    pid_t sup;                    /* mongosupd, or -1 */
    pid_t httpd;                  /* the Apache parent (-DFOREGROUND), or -1 */
    unsigned failures_at_start;   /* CUnit's failure count when the scenario started */
} ap_scen_t;

/* True when apache2, ab, the prefork MPM and the built module are all
 * there; otherwise prints "SKIP <name>: <why>" and returns false. */
bool ap_available(const char *name);
/* The same, and valgrind too. */
bool ap_valgrind_available(const char *name);

/* Writes the mongosup config and httpd.conf (no process started). */
bool ap_write_configs(ap_scen_t *s, const char *tag, const ap_opts_t *o, int mongo_port);

/* Peer + seeded user {_id: 1} + mongosupd (users and analytics UP) +
 * Apache with its StartServers children attached.  CU_FAIL and false on
 * any failure (the scenario is then stopped). */
bool ap_start(ap_scen_t *s, const char *tag, const ap_opts_t *o);
/* Stops whatever runs (Apache, mongosupd, the peer) and removes the files
 * and the segment. */
void ap_stop(ap_scen_t *s);

/* Starts / stops only Apache (the rest keeps running). */
bool ap_httpd_start(ap_scen_t *s);
/* `apache2 -f CONF -k ACTION` (graceful, graceful-stop); its exit status. */
int ap_httpd_ctl(const ap_scen_t *s, const char *action);
/* Waits up to ms for the Apache parent to exit; its wait status or -1. */
int ap_httpd_wait(ap_scen_t *s, unsigned ms);

/* Inserts {_id: id, name: name} into demo.users on the peer. */
bool ap_seed_user(const ap_scen_t *s, long id, const char *name);

/* `mongosup-top -n SEGMENT --json`, parsed (as the segment's user); NULL
 * when it fails.  json_object_put it. */
json_object *ap_snapshot(const ap_scen_t *s);
/* A number from a snapshot: cluster `name`, then a dotted path
 * ("ops.read", "reconnect.workers_acked"), or -1. */
int64_t ap_cluster_num(json_object *snap, const char *cluster, const char *path);
const char *ap_cluster_state(json_object *snap, const char *cluster);
/* Waits up to ms until cluster is in state ("UP", "DOWN"). */
bool ap_wait_state(const ap_scen_t *s, const char *cluster, const char *state, unsigned ms);
/* Slots folded into the retired totals so far (supervisor.slots_reaped), or -1. */
int64_t ap_slots_reaped(json_object *snap);
/* The pids of the worker slots in state `state` ("ACTIVE"; NULL: any state,
 * i.e. every slot in use); returns count. */
int ap_worker_pids(json_object *snap, const char *state, pid_t *pids, int max);

/* The live children of the Apache parent (from /proc). */
int ap_children(const ap_scen_t *s, pid_t *pids, int max);
/* Waits until the slots in use are exactly the live children (the process
 * itself under -X), at least `min` of them, all ACTIVE. */
bool ap_wait_attached(const ap_scen_t *s, int min, unsigned ms);

/* An ab run's figures. */
typedef struct ab_result {
    long complete, failed, non2xx;
    long p50_ms, p99_ms, max_ms;
    int status;
} ab_result_t;

/* ab -r -n N -c C [-p body] URL-PATH; returns false when ab did not run. */
bool ap_ab(const ap_scen_t *s, long n, int c, const char *path, bool post, ab_result_t *r);
/* The same in the background: returns ab's pid; ap_ab_finish waits. */
pid_t ap_ab_start(const ap_scen_t *s, long n, int c, const char *path, bool post, const char *outfile);
bool ap_ab_finish(pid_t pid, const char *outfile, ab_result_t *r);

/* One HTTP/1.0 request; the status (or -1), the response in *resp
 * (malloc'd, may be NULL) and how long it took. */
int ap_http(const ap_scen_t *s, const char *method, const char *path, char **resp, long *elapsed_ms);
/* The value of a response header ("Retry-After") into out, or false. */
bool ap_header(const char *resp, const char *name, char *out, size_t n);

void ap_sleep_ms(long ms);
uint64_t ap_now_ms(void);

#endif
