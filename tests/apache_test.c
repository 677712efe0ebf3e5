/* apache_test.c: mod_mongosup in a real Apache httpd (prefork MPM) against the test peer and mongosupd, loaded by ab. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "apache_fixture.h"
#include "testmain.h"

#define MAX_PIDS 256

/* Figures printed under valgrind are the same scenarios with smaller loads. */
static long scaled(long n)
{
    return msup_test_under_valgrind() ? n / 4 : n;
}

static bool contains(const char *text, const char *needle)
{
    return text != NULL && strstr(text, needle) != NULL;
}

/* Runs `apache2 -t -f CONF` and returns its output; *status its exit. */
static char *configtest(const ap_scen_t *s, int *status)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s -t -f '%s' 2>&1", APACHE2_BIN, s->httpdconf);
    FILE *p = popen(cmd, "r");
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    int ch;
    while (p != NULL && (ch = fgetc(p)) != EOF)
        fputc(ch, out);
    fclose(out);
    int st = p != NULL ? pclose(p) : -1;
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return buf;
}

static void rewrite_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs(text, f);
    fclose(f);
}

/* configtest: mongosup's errors with both locations, Apache's for a bad
 * directive value, and the parent never creates the segment. */
static void test_configtest(void)
{
    if (!ap_available("/apache/configtest"))
        return;
    ap_scen_t s;
    ap_opts_t o = {0};
    CU_ASSERT_FATAL(ap_write_configs(&s, "cfgtest", &o, 1));
    int st;
    char *out = configtest(&s, &st);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT(contains(out, "Syntax OK"));
    free(out);
    char dev[128];
    snprintf(dev, sizeof dev, "/dev/shm%s", s.segment);
    CU_ASSERT_NOT_EQUAL(access(dev, F_OK), 0); /* validated only: no segment, no pool */

    /* An environment the file does not have: the MongosupEnvironment line
     * is named as well as MongosupConfig's. */
    char *good_httpd = msup_test_read_file(s.httpdconf);
    int env_line = s.config_line + 1;
    FILE *f = fopen(s.httpdconf, "w");
    CU_ASSERT_FATAL(f != NULL);
    for (int line = 1, i = 0; good_httpd[i] != '\0'; i++) {
        if (line == env_line && (i == 0 || good_httpd[i - 1] == '\n'))
            fputs("MongosupEnvironment staging\n", f);
        fputc(good_httpd[i], f);
        line += good_httpd[i] == '\n';
    }
    fclose(f);
    out = configtest(&s, &st);
    CU_ASSERT_NOT_EQUAL(st, 0);
    char env_where[300];
    snprintf(env_where, sizeof env_where, "MongosupEnvironment staging on line %d of %s", env_line, s.httpdconf);
    CU_ASSERT(contains(out, env_where));
    CU_ASSERT(contains(out, "unknown environment \"staging\""));
    if (!contains(out, env_where))
        fprintf(stderr, "\nconfigtest said:\n%s\n", out ? out : "");
    free(out);
    rewrite_file(s.httpdconf, good_httpd);
    free(good_httpd);

    /* A mongosup error on line 3 of its file. */
    rewrite_file(s.msconf, "default_environment = \"test\";\n"
                           "environments = { test = { clusters = {\n"
                           "  users = { mongo_uri = \"mongodb://127.0.0.1:1/\"; max_pool_size = 0; };\n"
                           "}; }; };\n");
    out = configtest(&s, &st);
    CU_ASSERT_NOT_EQUAL(st, 0);
    char where[300], file_line[200];
    snprintf(where, sizeof where, "line %d of %s", s.config_line, s.httpdconf);
    snprintf(file_line, sizeof file_line, "%s:3:", s.msconf);
    CU_ASSERT(contains(out, where));
    CU_ASSERT(contains(out, file_line));
    CU_ASSERT(contains(out, "max_pool_size"));
    if (!contains(out, where) || !contains(out, file_line))
        fprintf(stderr, "\nconfigtest said:\n%s\n", out ? out : "");
    free(out);

    /* A missing file is refused the same way. */
    unlink(s.msconf);
    out = configtest(&s, &st);
    CU_ASSERT_NOT_EQUAL(st, 0);
    CU_ASSERT(contains(out, where));
    CU_ASSERT(contains(out, s.msconf));
    free(out);

    /* Apache's own check of a directive value, with its line. */
    f = fopen(s.httpdconf, "a");
    CU_ASSERT_FATAL(f != NULL);
    fputs("MongosupDrainTimeout soon\n", f);
    fclose(f);
    out = configtest(&s, &st);
    CU_ASSERT_NOT_EQUAL(st, 0);
    CU_ASSERT(contains(out, "Syntax error on line"));
    CU_ASSERT(contains(out, "MongosupDrainTimeout: 'soon' is not a number"));
    free(out);
    ap_stop(&s);
}

/* The same keys, recursively (arrays: their first elements), in both. */
static bool same_schema(json_object *a, json_object *b, char *why, size_t n)
{
    if (a == NULL || b == NULL)
        return true; /* null last_error against an object: values, not schema */
    if (json_object_get_type(a) == json_type_object && json_object_get_type(b) == json_type_object) {
        if (json_object_object_length(a) != json_object_object_length(b)) {
            snprintf(why, n, "objects of %d and %d keys", json_object_object_length(a), json_object_object_length(b));
            return false;
        }
        json_object_object_foreach(a, key, va) {
            json_object *vb;
            if (!json_object_object_get_ex(b, key, &vb)) {
                snprintf(why, n, "key %s missing", key);
                return false;
            }
            if (!same_schema(va, vb, why, n))
                return false;
        }
        return true;
    }
    if (json_object_get_type(a) == json_type_array && json_object_get_type(b) == json_type_array) {
        if (json_object_array_length(a) == 0 || json_object_array_length(b) == 0)
            return true;
        return same_schema(json_object_array_get_idx(a, 0), json_object_array_get_idx(b, 0), why, n);
    }
    return true;
}

static const char *body_of(const char *resp)
{
    const char *p = resp ? strstr(resp, "\r\n\r\n") : NULL;
    return p ? p + 4 : "";
}

/* Under load: one slot per live child, totals equal what ab completed, and
 * the status page (JSON from mongosup-top's code, HTML escaped). */
static void test_load_totals_status(void)
{
    if (!ap_available("/apache/load"))
        return;
    ap_scen_t s;
    ap_opts_t o = {.cluster_extra = "appname = \"ap<b>&\\\"x\";"};
    if (!ap_start(&s, "load", &o))
        return;
    long gets = scaled(800), posts = scaled(200);
    ab_result_t r;
    CU_ASSERT(ap_ab(&s, gets, 4, "/users/1", false, &r));
    CU_ASSERT_EQUAL(r.complete, gets);
    CU_ASSERT_EQUAL(r.failed, 0);
    CU_ASSERT_EQUAL(r.non2xx, 0);
    CU_ASSERT(ap_ab(&s, posts, 4, "/events", true, &r));
    CU_ASSERT_EQUAL(r.complete, posts);
    CU_ASSERT_EQUAL(r.failed, 0);
    CU_ASSERT_EQUAL(r.non2xx, 0);
    /* The explicit checkin (mongosup_request_checkin): the request pool's
     * cleanup must then not give the same client back a second time. */
    long early = scaled(200);
    CU_ASSERT(ap_ab(&s, early, 4, "/users/1?checkin", false, &r));
    CU_ASSERT_EQUAL(r.complete, early);
    CU_ASSERT_EQUAL(r.non2xx, 0);
    gets += early;

    /* One find per GET, one insert per POST: the checkins follow the answers. */
    int64_t reads = -1, writes = -1, checkouts = -1, out = -1;
    for (uint64_t end = ap_now_ms() + 5000; ap_now_ms() < end; ap_sleep_ms(50)) {
        json_object *snap = ap_snapshot(&s);
        reads = ap_cluster_num(snap, "users", "ops.read");
        checkouts = ap_cluster_num(snap, "users", "pool.checkouts");
        writes = ap_cluster_num(snap, "analytics", "ops.write");
        out = ap_cluster_num(snap, "users", "pool.in_use");
        json_object_put(snap);
        if (reads == gets && writes == posts && checkouts == gets && out == 0)
            break;
    }
    CU_ASSERT_EQUAL(reads, gets);
    CU_ASSERT_EQUAL(checkouts, gets);
    CU_ASSERT_EQUAL(out, 0); /* each client given back once: none leaked, none twice */
    CU_ASSERT_EQUAL(writes, posts);
    CU_ASSERT_EQUAL(test_peer_count(s.peer, "demo", "events"), posts);
    printf("\n  ab: %ld GET /users/1 (%ld of them checked in by the handler) + %ld POST /events; segment: users read "
           "%lld, checkouts %lld, analytics write %lld\n",
           gets, early, posts, (long long)reads, (long long)checkouts, (long long)writes);
    CU_ASSERT(ap_wait_attached(&s, 2, 5000)); /* one ACTIVE slot per live child, no other */

    /* The JSON of the status handler parses and has mongosup-top's schema. */
    char *resp = NULL;
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/mongosup-status?json", &resp, NULL), 200);
    char type[128] = "";
    CU_ASSERT(ap_header(resp, "Content-Type", type, sizeof type) && strcmp(type, "application/json") == 0);
    json_object *mine = json_tokener_parse(body_of(resp));
    json_object *top = ap_snapshot(&s);
    CU_ASSERT_PTR_NOT_NULL(mine);
    CU_ASSERT_PTR_NOT_NULL(top);
    char why[200] = "";
    CU_ASSERT(same_schema(mine, top, why, sizeof why) && same_schema(top, mine, why, sizeof why));
    if (why[0] != '\0')
        fprintf(stderr, "\nschema differs: %s\n", why);
    json_object *schema;
    CU_ASSERT(json_object_object_get_ex(mine, "schema", &schema) &&
              strcmp(json_object_get_string(schema), "mongosup/1") == 0);
    CU_ASSERT_EQUAL(ap_cluster_num(mine, "users", "ops.read"), gets);
    json_object_put(mine);
    json_object_put(top);
    free(resp);

    /* The HTML page escapes what the segment holds (the appname here). */
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/mongosup-status", &resp, NULL), 200);
    CU_ASSERT(contains(resp, "Content-Type: text/html"));
    CU_ASSERT(contains(resp, "ap&lt;b&gt;&amp;&quot;x"));
    CU_ASSERT(!contains(resp, "ap<b>"));
    CU_ASSERT(contains(resp, "child, generation 0"));
    free(resp);
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/mongosup-status?text", &resp, NULL), 200);
    CU_ASSERT(contains(resp, "Content-Type: text/plain"));
    CU_ASSERT(contains(resp, "CLUSTER"));
    CU_ASSERT(contains(resp, "analytics"));
    free(resp);
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/users/2", NULL, NULL), 404);
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/nothing", NULL, NULL), 400);
    ap_stop(&s);
}

/* Samples the segment while a load runs: the most ACTIVE slots seen, and
 * whether users' read total ever went down. */
typedef struct sampler {
    const ap_scen_t *s;
    volatile int stop;
    int max_active, samples;
    bool decreased;
    int64_t last_reads;
    pthread_t tid;
} sampler_t;

static void *sample_loop(void *p)
{
    sampler_t *sm = p;
    while (!sm->stop) {
        json_object *snap = ap_snapshot(sm->s);
        if (snap != NULL) {
            pid_t pids[MAX_PIDS];
            int n = ap_worker_pids(snap, "ACTIVE", pids, MAX_PIDS);
            int64_t reads = ap_cluster_num(snap, "users", "ops.read");
            if (n > sm->max_active)
                sm->max_active = n;
            if (reads < sm->last_reads)
                sm->decreased = true;
            sm->last_reads = reads;
            sm->samples++;
            json_object_put(snap);
        }
        ap_sleep_ms(20);
    }
    return NULL;
}

static void sampler_start(sampler_t *sm, const ap_scen_t *s)
{
    memset(sm, 0, sizeof *sm);
    sm->s = s;
    CU_ASSERT_FATAL(pthread_create(&sm->tid, NULL, sample_loop, sm) == 0);
}

static void sampler_stop(sampler_t *sm)
{
    sm->stop = 1;
    pthread_join(sm->tid, NULL);
}

/* Waits until users' read total reaches want; returns the last value. */
static int64_t wait_reads(const ap_scen_t *s, int64_t want, unsigned ms)
{
    int64_t reads = -1;
    for (uint64_t end = ap_now_ms() + ms; ap_now_ms() < end; ap_sleep_ms(50)) {
        json_object *snap = ap_snapshot(s);
        reads = ap_cluster_num(snap, "users", "ops.read");
        json_object_put(snap);
        if (reads >= want)
            break;
    }
    return reads;
}

/* True once no slot (in any state) belongs to one of the pids. */
static bool wait_slots_gone(const ap_scen_t *s, const pid_t *gone, int n, unsigned ms)
{
    for (uint64_t end = ap_now_ms() + ms; ap_now_ms() < end; ap_sleep_ms(50)) {
        json_object *snap = ap_snapshot(s);
        pid_t pids[MAX_PIDS];
        int na = ap_worker_pids(snap, "ACTIVE", pids, MAX_PIDS);
        int ne = ap_worker_pids(snap, "EXITED", pids + na, MAX_PIDS - na);
        json_object_put(snap);
        bool any = false;
        for (int i = 0; i < na + ne && !any; i++)
            for (int j = 0; j < n && !any; j++)
                any = pids[i] == gone[j];
        if (!any)
            return true;
    }
    return false;
}

/* Lines of a file that contain needle. */
static int count_lines(const char *path, const char *needle)
{
    char *text = msup_test_read_file(path);
    int n = 0;
    for (const char *p = text; p != NULL && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(text);
    return n;
}

/* Waits until every child that ever attached and is gone now was folded
 * exactly once (slots_reaped = attached - live) and the slots in use are
 * the live children; returns the last slots_reaped, *attached and *live. */
static int64_t wait_all_folded(const ap_scen_t *s, int *attached, int *live, unsigned ms)
{
    int64_t reaped = -1;
    for (uint64_t end = ap_now_ms() + ms; ap_now_ms() < end; ap_sleep_ms(100)) {
        pid_t kids[MAX_PIDS];
        *attached = count_lines(s->errlog, "attached (slot");
        *live = ap_children(s, kids, MAX_PIDS);
        json_object *snap = ap_snapshot(s);
        reaped = ap_slots_reaped(snap);
        json_object_put(snap);
        if (reaped == *attached - *live && ap_wait_attached(s, 1, 0))
            return reaped;
    }
    return reaped;
}

/* MaxConnectionsPerChild: children churn many times through fewer slots
 * than children; slots in use never exceed MaxRequestWorkers, every exited
 * child is folded exactly once (each child's attach is logged at debug),
 * no slot leaks, totals never go down and equal what ab completed.  Then a
 * child killed with SIGKILL (it cannot detach) is reaped by mongosupd and
 * its counts survive. */
static void test_recycle(void)
{
    if (!ap_available("/apache/recycle"))
        return;
    ap_scen_t s;
    ap_opts_t o = {.httpd_extra = "MaxConnectionsPerChild 20\nLogLevel warn mongosup:debug\n", .max_workers = 16};
    if (!ap_start(&s, "recycle", &o))
        return;
    long n = scaled(1200);
    sampler_t sm;
    sampler_start(&sm, &s);
    ab_result_t r;
    CU_ASSERT(ap_ab(&s, n, 4, "/users/1", false, &r));
    int64_t reads = wait_reads(&s, n, 10000);
    sampler_stop(&sm);
    CU_ASSERT_EQUAL(r.complete, n);
    CU_ASSERT_EQUAL(r.failed, 0);
    CU_ASSERT_EQUAL(r.non2xx, 0);
    CU_ASSERT_EQUAL(reads, n);
    CU_ASSERT(sm.samples > 3);
    CU_ASSERT(sm.max_active <= 4); /* MaxRequestWorkers */
    CU_ASSERT(!sm.decreased);
    int attached = 0, live = 0;
    int64_t reaped = wait_all_folded(&s, &attached, &live, 10000);
    printf("\n  %ld requests, MaxConnectionsPerChild 20: %d children attached, %d live, %lld slots folded, "
           "at most %d ACTIVE of 16 slots (%d samples)\n",
           n, attached, live, (long long)reaped, sm.max_active, sm.samples);
    CU_ASSERT(attached >= n / 20); /* each child served at most 20 connections */
    CU_ASSERT_EQUAL(reaped, attached - live);
    CU_ASSERT(ap_wait_attached(&s, 1, 5000)); /* no slot leaked: the slots in use are the live children */

    /* A child that dies without detaching: only mongosupd's reaper frees
     * its slot.  The pid is one of our Apache parent's children (from
     * /proc), idle now that ab is done. */
    pid_t kids[MAX_PIDS];
    CU_ASSERT_FATAL(ap_children(&s, kids, MAX_PIDS) >= 1);
    pid_t victim = kids[0];
    CU_ASSERT_EQUAL(kill(victim, SIGKILL), 0);
    CU_ASSERT(wait_slots_gone(&s, &victim, 1, 10000));
    char line[96];
    snprintf(line, sizeof line, "of worker pid %d (process died without detaching)", (int)victim);
    bool by_reaper = false;
    for (uint64_t end = ap_now_ms() + 5000; ap_now_ms() < end && !by_reaper; ap_sleep_ms(50))
        by_reaper = count_lines(s.suplog, line) == 1;
    CU_ASSERT(by_reaper);
    int64_t after = wait_all_folded(&s, &attached, &live, 10000);
    CU_ASSERT_EQUAL(after, attached - live);
    CU_ASSERT(after >= reaped + 1);
    CU_ASSERT_EQUAL(wait_reads(&s, n, 1000), n); /* the killed child's reads are in the retired totals */
    printf("  child %d killed with SIGKILL: reaped by mongosupd, reads still %ld\n", (int)victim, n);
    ap_stop(&s);
}

/* apachectl graceful under load: no failed request, the old generation's
 * slots are reaped, the new one attaches, totals never decrease. */
static void test_graceful_restart(void)
{
    if (!ap_available("/apache/graceful-restart"))
        return;
    ap_scen_t s;
    ap_opts_t o = {0};
    if (!ap_start(&s, "graceful", &o))
        return;
    pid_t old[MAX_PIDS];
    long n = scaled(2000);
    char out[200];
    snprintf(out, sizeof out, "%s/ab.out", s.dir);
    sampler_t sm;
    sampler_start(&sm, &s);
    pid_t ab = ap_ab_start(&s, n, 4, "/users/1", false, out);
    CU_ASSERT_FATAL(ab > 0);
    wait_reads(&s, n / 4, 20000);
    int nold = ap_children(&s, old, MAX_PIDS); /* the generation serving now */
    CU_ASSERT_EQUAL(ap_httpd_ctl(&s, "graceful"), 0);
    ab_result_t r;
    CU_ASSERT(ap_ab_finish(ab, out, &r));
    int64_t reads = wait_reads(&s, n, 5000);
    sampler_stop(&sm);
    CU_ASSERT_EQUAL(r.complete, n);
    CU_ASSERT_EQUAL(r.failed, 0);
    CU_ASSERT_EQUAL(r.non2xx, 0);
    CU_ASSERT_EQUAL(reads, n);
    CU_ASSERT(!sm.decreased);
    CU_ASSERT(wait_slots_gone(&s, old, nold, 10000));
    CU_ASSERT(ap_wait_attached(&s, 2, 5000));
    pid_t now[MAX_PIDS];
    int nnow = ap_children(&s, now, MAX_PIDS);
    for (int i = 0; i < nnow; i++)
        for (int j = 0; j < nold; j++)
            CU_ASSERT_NOT_EQUAL(now[i], old[j]);
    char *resp = NULL;
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/mongosup-status", &resp, NULL), 200);
    CU_ASSERT(contains(resp, "child, generation 1"));
    free(resp);
    printf("\n  graceful restart under %ld requests: %d old children replaced, %ld failed\n", n, nold, r.failed);
    ap_stop(&s);
}

/* Refusals that did not wait for the database, from ab's percentiles: a
 * checkout that went on to server selection would take the whole
 * AP_SELECTION_TIMEOUT_MS (5000 ms) before failing, so none may come near
 * it, and nearly all (p99) must be far below it.  The bounds are that far
 * from the figures seen (p99 0-5 ms) so that a loaded machine's scheduling
 * delays cannot fail them; only waiting on the database can. */
static void assert_refused_at_once(const ab_result_t *r, const char *what)
{
    CU_ASSERT(r->p99_ms >= 0 && r->p99_ms < (long)AP_SELECTION_TIMEOUT_MS / 4);
    CU_ASSERT(r->max_ms >= 0 && r->max_ms < (long)AP_SELECTION_TIMEOUT_MS / 2);
    printf("\n  %s: %ld requests, all 503, p50 %ld ms, p99 %ld ms, max %ld ms (a wait for selection: %u ms)\n", what,
           r->complete, r->p50_ms, r->p99_ms, r->max_ms, AP_SELECTION_TIMEOUT_MS);
}

/* The peer killed: the supervisor marks users DOWN and every request gets a
 * fast 503 with Retry-After; the peer back: 200s again, and every child
 * acknowledges the reconnect. */
static void test_down_up(void)
{
    if (!ap_available("/apache/down-up"))
        return;
    ap_scen_t s;
    ap_opts_t o = {0};
    if (!ap_start(&s, "downup", &o))
        return;
    ab_result_t r;
    CU_ASSERT(ap_ab(&s, 100, 4, "/users/1", false, &r));
    CU_ASSERT_EQUAL(r.non2xx, 0);
    long up_p50 = r.p50_ms, up_p99 = r.p99_ms;
    json_object *snap = ap_snapshot(&s);
    int64_t gen0 = ap_cluster_num(snap, "users", "reconnect.generation");
    json_object_put(snap);

    test_peer_kill(s.peer, SIGKILL);
    CU_ASSERT_FATAL(ap_wait_state(&s, "users", "DOWN", 10000));
    char *resp = NULL;
    long took = -1;
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/users/1", &resp, &took), 503);
    char retry[32] = "";
    CU_ASSERT(ap_header(resp, "Retry-After", retry, sizeof retry) && strcmp(retry, "3") == 0);
    CU_ASSERT(took < (long)AP_SELECTION_TIMEOUT_MS / 4);
    free(resp);
    long n = scaled(400);
    CU_ASSERT(ap_ab(&s, n, 4, "/users/1", false, &r));
    CU_ASSERT_EQUAL(r.complete, n);
    CU_ASSERT_EQUAL(r.failed, 0);
    CU_ASSERT_EQUAL(r.non2xx, n);
    assert_refused_at_once(&r, "cluster DOWN");
    printf("  (the same children UP before: p50 %ld ms, p99 %ld ms)\n", up_p50, up_p99);
    /* analytics is on the same peer; its own checker marks it DOWN too. */
    CU_ASSERT_FATAL(ap_wait_state(&s, "analytics", "DOWN", 10000));
    CU_ASSERT_EQUAL(ap_http(&s, "POST", "/events", &resp, NULL), 503);
    CU_ASSERT(ap_header(resp, "Retry-After", retry, sizeof retry));
    free(resp);

    CU_ASSERT_FATAL(test_peer_restart(s.peer));
    CU_ASSERT_FATAL(ap_seed_user(&s, 1, "ada")); /* a restarted peer starts empty */
    CU_ASSERT_FATAL(ap_wait_state(&s, "users", "UP", 10000));
    /* Load while the children pick the new generation up (each at its own
     * delay within reconnect_window_ms, at its next checkout). */
    bool acked = false;
    int64_t gen = -1, live = -1, ack = -1;
    for (uint64_t end = ap_now_ms() + 20000; ap_now_ms() < end && !acked;) {
        ap_ab(&s, 40, 4, "/users/1", false, &r);
        snap = ap_snapshot(&s);
        gen = ap_cluster_num(snap, "users", "reconnect.generation");
        live = ap_cluster_num(snap, "users", "reconnect.workers_live");
        ack = ap_cluster_num(snap, "users", "reconnect.workers_acked");
        json_object_put(snap);
        acked = gen > gen0 && live > 0 && ack == live;
    }
    CU_ASSERT(acked);
    printf("  cluster UP again: generation %lld, %lld of %lld children acknowledged\n", (long long)gen,
           (long long)ack, (long long)live);
    CU_ASSERT(ap_ab(&s, 200, 4, "/users/1", false, &r));
    CU_ASSERT_EQUAL(r.complete, 200);
    CU_ASSERT_EQUAL(r.non2xx, 0);
    CU_ASSERT_EQUAL(r.failed, 0);
    ap_stop(&s);
}

/* mongosupd shuts down while Apache runs: the children answer 503 with
 * Retry-After at once while it drains. */
static void test_supervisor_drain(void)
{
    if (!ap_available("/apache/supervisor-drain"))
        return;
    ap_scen_t s;
    ap_opts_t o = {.drain_timeout_ms = 5000};
    if (!ap_start(&s, "drain", &o))
        return;
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/users/1", NULL, NULL), 200);
    kill(s.sup, SIGTERM);
    bool draining = false;
    for (uint64_t end = ap_now_ms() + 3000; ap_now_ms() < end && !draining; ap_sleep_ms(20)) {
        json_object *snap = ap_snapshot(&s), *sup, *phase;
        draining = json_object_object_get_ex(snap, "supervisor", &sup) &&
                   json_object_object_get_ex(sup, "phase", &phase) &&
                   strcmp(json_object_get_string(phase), "DRAINING") == 0;
        json_object_put(snap);
    }
    CU_ASSERT_FATAL(draining);
    char *resp = NULL;
    long took = -1;
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/users/1", &resp, &took), 503);
    char retry[32] = "";
    CU_ASSERT(ap_header(resp, "Retry-After", retry, sizeof retry) && strcmp(retry, "3") == 0);
    CU_ASSERT(took < (long)AP_SELECTION_TIMEOUT_MS / 4);
    free(resp);
    ab_result_t r;
    CU_ASSERT(ap_ab(&s, 100, 4, "/events", true, &r));
    CU_ASSERT_EQUAL(r.complete, 100);
    CU_ASSERT_EQUAL(r.non2xx, 100);
    assert_refused_at_once(&r, "supervisor draining");
    ap_stop(&s);
}

typedef struct inflight {
    const ap_scen_t *s;
    int status;
    pthread_t tid;
} inflight_t;

static void *one_request(void *p)
{
    inflight_t *f = p;
    f->status = ap_http(f->s, "GET", "/users/1", NULL, NULL);
    return NULL;
}

/* apachectl graceful-stop with requests in flight (the peer answers finds
 * after 800 ms): all complete with 200, then every child detaches.  No
 * supervisor runs, so no reaper frees a slot: a child that exited without
 * detaching would leave its slot ACTIVE. */
static void test_graceful_stop(void)
{
    if (!ap_available("/apache/graceful-stop"))
        return;
    ap_scen_t s;
    ap_opts_t o = {.httpd_extra = "StartServers 4\nMinSpareServers 4\nMaxSpareServers 4\n", .no_supervisor = true};
    if (!ap_start(&s, "gstop", &o))
        return;
    CU_ASSERT_FATAL(ap_wait_attached(&s, 4, 10000));
    CU_ASSERT(test_peer_commandf(s.peer, "{\"cmd\":\"delay\",\"ms\":800,\"command\":\"find\"}"));
    inflight_t f[4];
    for (int i = 0; i < 4; i++) {
        f[i].s = &s;
        f[i].status = 0;
        CU_ASSERT_FATAL(pthread_create(&f[i].tid, NULL, one_request, &f[i]) == 0);
    }
    ap_sleep_ms(300);
    json_object *snap = ap_snapshot(&s);
    int64_t in_use = ap_cluster_num(snap, "users", "pool.in_use");
    int64_t reaped_before = ap_slots_reaped(snap);
    json_object_put(snap);
    CU_ASSERT(in_use >= 1); /* requests are inside the handler, clients out */
    CU_ASSERT(reaped_before >= 0);
    CU_ASSERT_EQUAL(ap_httpd_ctl(&s, "graceful-stop"), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(f[i].tid, NULL);
        CU_ASSERT_EQUAL(f[i].status, 200);
    }
    int st = ap_httpd_wait(&s, 15000);
    CU_ASSERT(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* Every child detached on its way out and freed its own slot (its
     * counters folded into the retired totals): none ACTIVE, 4+ folds. */
    pid_t pids[MAX_PIDS];
    snap = ap_snapshot(&s);
    CU_ASSERT_PTR_NOT_NULL(snap);
    CU_ASSERT_EQUAL(ap_worker_pids(snap, "ACTIVE", pids, MAX_PIDS), 0);
    CU_ASSERT(ap_slots_reaped(snap) >= reaped_before + 4);
    json_object_put(snap);
    printf("\n  graceful-stop with %lld clients out: 4 of 4 in-flight requests answered 200\n", (long long)in_use);
    ap_stop(&s);
}

/* The module's own code under memcheck: apache2 -X (one process: attach in
 * child_init, requests, the status page, detach at exit) with the
 * suppressions of tests/valgrind.supp, which name Apache and APR internals
 * only.  Any error or definite/indirect leak fails. */
static void test_single_process_valgrind(void)
{
    if (!ap_valgrind_available("/apache/valgrind-single-process"))
        return;
    ap_scen_t s;
    ap_opts_t o = {.single_under_valgrind = true, .no_supervisor = true};
    if (!ap_start(&s, "vg", &o))
        return;
    pid_t pid = s.httpd;
    for (int i = 0; i < 10; i++) {
        CU_ASSERT_EQUAL(ap_http(&s, "GET", "/users/1", NULL, NULL), 200);
        CU_ASSERT_EQUAL(ap_http(&s, "POST", "/events", NULL, NULL), 200);
    }
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/users/9", NULL, NULL), 404);
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/nothing", NULL, NULL), 400);
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/mongosup-status", NULL, NULL), 200);
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/mongosup-status?json", NULL, NULL), 200);
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/mongosup-status?text", NULL, NULL), 200);
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/users/1?checkin", NULL, NULL), 200);
    test_peer_kill(s.peer, SIGKILL); /* failed finds: the outcome paths, at the cleanup and at an explicit checkin */
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/users/1", NULL, NULL), 500);
    CU_ASSERT_EQUAL(ap_http(&s, "GET", "/users/1?checkin", NULL, NULL), 500);
    kill(pid, SIGTERM);
    int st = ap_httpd_wait(&s, 300000); /* memcheck's leak check at exit, at any load */
    CU_ASSERT(st != -1 && WIFEXITED(st));
    char *log = msup_test_read_file(s.vglog);
    bool clean = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 99 && contains(log, "ERROR SUMMARY: 0 errors");
    CU_ASSERT(clean);
    if (!clean)
        fprintf(stderr, "\nmemcheck of apache2 -X (exit %d):\n%s\n", st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                log ? log : "(no log)");
    /* The process detached on its way out and, with no supervisor to reap
     * it, freed and folded its own slot. */
    pid_t pids[MAX_PIDS];
    json_object *snap = ap_snapshot(&s);
    CU_ASSERT_EQUAL(ap_slots_reaped(snap), 1);
    CU_ASSERT_EQUAL(ap_worker_pids(snap, "ACTIVE", pids, MAX_PIDS), 0);
    /* Both failing requests were counted (a read can count twice: its
     * command's failure and its retry's server selection). */
    int64_t failures = ap_cluster_num(snap, "users", "failures.total");
    printf("\n  apache2 -X under memcheck: users failures %lld after 2 failing requests\n", (long long)failures);
    CU_ASSERT(failures >= 2);
    json_object_put(snap);
    free(log);
    ap_stop(&s);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    mongoc_init();
    static const msup_test_t tests[] = {
        {"/apache/configtest", test_configtest},
        {"/apache/load", test_load_totals_status},
        {"/apache/recycle", test_recycle},
        {"/apache/graceful-restart", test_graceful_restart},
        {"/apache/down-up", test_down_up},
        {"/apache/supervisor-drain", test_supervisor_drain},
        {"/apache/graceful-stop", test_graceful_stop},
        {"/apache/valgrind-single-process", test_single_process_valgrind},
        {NULL, NULL},
    };
    int rc = msup_test_main("apache", tests, argc, argv);
    mongoc_cleanup();
    return rc;
}
