/* fleet_test.c: the fleet-wide budget end to end: 4 mongosupd "hosts" with their own segments against a real etcd and the test peer; the sum of the caps is sampled throughout. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../fleet/etcd.h"
#include "../fleet/record.h"
#include "../fleet/share.h"
#include "config.h"
#include "mongosup.h"
#include "peer/peer.h"
#include "segment.h"
#include "testmain.h"
#include "tools_promcheck.h"

#include <curl/curl.h>

#define HOSTS 4
#define FLEET_MAX 40
#define FLOOR 4
#define TTL_S 3
#define ETCD_BIN "/usr/bin/etcd"

static char tmpdir[64];
static char prefix[64];

/* What a failed (FATAL) assertion would leave behind: children still
 * running, etcd's data, segments.  Cleaned at exit. */
static pid_t children[64];
static int nchildren;
static char etcd_dirs[4][PATH_MAX];
static int netcd_dirs;

static void remember_child(pid_t pid)
{
    if (pid > 0 && nchildren < (int)(sizeof children / sizeof children[0]))
        children[nchildren++] = pid;
}

static void cleanup_at_exit(void)
{
    for (int i = 0; i < nchildren; i++) {
        /* Only our own children that were never reaped: the pid is still theirs. */
        if (waitpid(children[i], NULL, WNOHANG) == 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
        }
    }
    for (int i = 0; i < netcd_dirs; i++) {
        char cmd[sizeof etcd_dirs + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", etcd_dirs[i]);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", etcd_dirs[i]);
    }
    char tag[16];
    for (int i = 0; i < 4; i++) {
        snprintf(tag, sizeof tag, "fleet%d", i);
        msup_segment_unlink(msup_test_segment_name(tag), NULL); /* gone already after a clean stop */
    }
}

static bool daemon_under_valgrind(void)
{
    const char *v = getenv("MONGOSUP_VALGRIND_DAEMON");
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

static unsigned slack(unsigned ms)
{
    return msup_test_under_valgrind() || daemon_under_valgrind() ? ms * 4 + 3000 : ms;
}

static const char *build_path(const char *rel)
{
    static char bufs[4][PATH_MAX];
    static int next;
    char *p = bufs[next++ % 4];
    const char *b = getenv("MONGOSUP_TEST_BUILDDIR");
    snprintf(p, PATH_MAX, "%s/%s", b != NULL && b[0] != '\0' ? b : MONGOSUP_BUILDDIR, rel);
    return p;
}

static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* ---- etcd: a single member on free loopback ports, data in tmpdir ---- */

typedef struct etcd_proc {
    pid_t pid;
    int client_port, peer_port;
    char dir[PATH_MAX];
    char endpoint[64];
} etcd_proc_t;

static bool have_etcd(void)
{
    if (access(ETCD_BIN, X_OK) == 0)
        return true;
    printf("\n    SKIP: %s is not installed (Debian: apt-get install etcd-server; scripts/install-deps.sh) ", ETCD_BIN);
    return false;
}

/* A client of the test's own, to read and write records like a host. */
static msup_etcd_t *test_client(const char *endpoint)
{
    static char ep[64];
    snprintf(ep, sizeof ep, "%s", endpoint);
    char *eps[2] = {ep, NULL};
    msup_fleet_cfg_t fc = {.enabled = true, .endpoints = eps, .request_timeout_ms = 500};
    char why[128];
    msup_etcd_t *e = msup_etcd_new(&fc, why, sizeof why);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    return e;
}

static bool etcd_answers(const char *endpoint)
{
    msup_etcd_t *e = test_client(endpoint);
    msup_etcd_range_t r;
    bool ok = msup_etcd_range_prefix(e, "/probe", &r) == MSUP_ETCD_OK;
    if (ok)
        msup_etcd_range_free(&r);
    msup_etcd_free(e);
    return ok;
}

/* Starts etcd (again, on the same ports and data when e->pid was set before). */
static bool etcd_start(etcd_proc_t *e)
{
    if (e->client_port == 0) {
        e->client_port = msup_test_free_port();
        e->peer_port = msup_test_free_port();
        /* On tmpfs when there is one: etcd fsyncs every write, which takes
         * seconds on a loaded disk and would time the hosts' requests out. */
        char shm[] = "/dev/shm/mongosup-fleet-etcd.XXXXXX";
        if (mkdtemp(shm) != NULL)
            snprintf(e->dir, sizeof e->dir, "%s", shm);
        else
            snprintf(e->dir, sizeof e->dir, "%s/etcd", tmpdir);
        if (netcd_dirs < 4)
            snprintf(etcd_dirs[netcd_dirs++], PATH_MAX, "%s", e->dir);
        snprintf(e->endpoint, sizeof e->endpoint, "http://127.0.0.1:%d", e->client_port);
    }
    char client[64], peer[64], cluster[96], log[PATH_MAX + 16];
    snprintf(client, sizeof client, "http://127.0.0.1:%d", e->client_port);
    snprintf(peer, sizeof peer, "http://127.0.0.1:%d", e->peer_port);
    snprintf(cluster, sizeof cluster, "fleettest=%s", peer);
    snprintf(log, sizeof log, "%s/etcd.log", tmpdir);
    e->pid = fork();
    CU_ASSERT_FATAL(e->pid >= 0);
    if (e->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(ETCD_BIN, ETCD_BIN, "--name", "fleettest", "--data-dir", e->dir, "--listen-client-urls", client,
              "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
              "--initial-cluster", cluster, "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    remember_child(e->pid);
    for (unsigned waited = 0; waited < slack(10000); waited += 50) {
        if (etcd_answers(e->endpoint))
            return true;
        if (waitpid(e->pid, NULL, WNOHANG) == e->pid) {
            fprintf(stderr, "\n  etcd exited at start: see %s\n", log);
            e->pid = 0;
            return false;
        }
        msup_test_sleep_ms(50);
    }
    return false;
}

static void etcd_stop(etcd_proc_t *e)
{
    if (e->pid <= 0)
        return;
    kill(e->pid, SIGTERM);
    waitpid(e->pid, NULL, 0);
    e->pid = 0;
}

/* Stops etcd and removes its data. */
static void etcd_remove(etcd_proc_t *e)
{
    etcd_stop(e);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

/* ---- hosts: one mongosupd each, its own segment, config, host id ---- */

typedef struct ctl {
    _Atomic int stop;
    _Atomic long ok[HOSTS];
    _Atomic long failed[HOSTS];
    char last_error[512];
} ctl_t;

typedef struct host {
    int idx;
    char id[16];
    char conf[PATH_MAX];
    char log[PATH_MAX];
    char seg_name[64];
    char metrics_listen[32]; /* "": no /metrics */
    pid_t pid;
    pid_t workers[4];
    int nworkers;
    msup_segment_t seg;
    bool mapped;
    _Atomic bool alive;      /* counted by the sampler */
} host_t;

static host_t hosts[HOSTS];
static test_peer_t *peer;
static ctl_t *ctl;
static char extra_fleet_keys[PATH_MAX + 128]; /* more keys of the next host's fleet group */

static void write_host_conf(host_t *h, const char *endpoint)
{
    FILE *f = fopen(h->conf, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f,
            "segment = { name = \"%s\"; max_workers = 16; };\n"
            "supervisor = { control_socket = \"%s/%s.sock\"; heartbeat_interval_ms = 100; reap_interval_ms = 100;\n"
            "               metrics_listen = \"%s\"; };\n"
            "fleet = { endpoints = [\"%s\"]; host_id = \"%s\"; prefix = \"%s\"; lease_ttl_s = %d; max_hosts = %d;\n"
            "          poll_interval_ms = 100; request_timeout_ms = 700; lower_wait_ms = 1000; %s };\n"
            "default_environment = \"test\";\n"
            "environments = { test = { clusters = { main = {\n"
            "  mongo_uri = \"%s\"; max_pool_size = 10; wait_queue_timeout_ms = 120000;\n"
            "  fleet_max_connections = %d; fleet_floor = %d; }; }; }; };\n",
            h->seg_name, tmpdir, h->id, h->metrics_listen, endpoint, h->id, prefix, TTL_S, HOSTS, extra_fleet_keys,
            test_peer_uri(peer), FLEET_MAX, FLOOR);
    fclose(f);
}

static pid_t spawn_daemon(const char *conf, const char *log, bool valgrind)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        const char *d = build_path("supervisor/mongosupd");
        if (valgrind)
            execlp("valgrind", "valgrind", "--error-exitcode=1", "--leak-check=full",
                   "--errors-for-leak-kinds=definite,indirect", "-q", "--fair-sched=yes",
                   "--suppressions=" VALGRIND_SUPP, d, "-c", conf, (char *)NULL);
        else
            execl(d, d, "-c", conf, (char *)NULL);
        _exit(127);
    }
    remember_child(pid);
    return pid;
}

static bool host_start(host_t *h, int idx, const char *endpoint, bool metrics)
{
    memset(h, 0, sizeof *h);
    h->idx = idx;
    if (metrics)
        snprintf(h->metrics_listen, sizeof h->metrics_listen, "127.0.0.1:%d", msup_test_free_port());
    snprintf(h->id, sizeof h->id, "h%d", idx);
    snprintf(h->conf, sizeof h->conf, "%s/%s.conf", tmpdir, h->id);
    snprintf(h->log, sizeof h->log, "%s/%s.log", tmpdir, h->id);
    char tag[16];
    snprintf(tag, sizeof tag, "fleet%d", idx);
    snprintf(h->seg_name, sizeof h->seg_name, "%s", msup_test_segment_name(tag));
    write_host_conf(h, endpoint);
    h->pid = spawn_daemon(h->conf, h->log, idx == 0 && daemon_under_valgrind());
    CU_ASSERT_FATAL(h->pid > 0);
    for (unsigned waited = 0; waited < slack(10000); waited += 20) {
        mongosup_error_t err;
        if (!h->mapped && msup_segment_open_readonly(h->seg_name, &h->seg, &err))
            h->mapped = true;
        /* Its own RUNNING: an adopted segment says RUNNING (and holds the
         * dead supervisor's cap) before this one has applied its floor. */
        if (h->mapped && atomic_load(&h->seg.hdr->phase) == MSUP_PHASE_RUNNING &&
            atomic_load(&h->seg.hdr->supervisor_pid) == h->pid && file_has(h->log, "running: environment") &&
            msup_segment_find_cluster(&h->seg, "main") >= 0) {
            atomic_store(&h->alive, true);
            return true;
        }
        msup_test_sleep_ms(20);
    }
    fprintf(stderr, "\n  %s did not start: see %s\n", h->id, h->log);
    return false;
}

static uint32_t host_cap(const host_t *h)
{
    int row = msup_segment_find_cluster(&h->seg, "main");
    return row < 0 ? 0 : atomic_load(&msup_segment_row(&h->seg, (uint32_t)row)->max_connections);
}

/* A worker of host h: `threads` threads pinging (the peer delays each
 * ping) until ctl->stop. */
static void *worker_thread(void *arg)
{
    mongosup_t *m = ((void **)arg)[0];
    int idx = (int)(intptr_t)((void **)arg)[1];
    while (!atomic_load(&ctl->stop)) {
        mongosup_error_t error;
        mongoc_client_t *c = mongosup_checkout(m, "main", &error);
        if (c == NULL) {
            atomic_fetch_add(&ctl->failed[idx], 1);
            snprintf(ctl->last_error, sizeof ctl->last_error, "%s", error.message);
            msup_test_sleep_ms(10);
            continue;
        }
        bson_t cmd = BSON_INITIALIZER;
        BSON_APPEND_INT32(&cmd, "ping", 1);
        bson_error_t berr;
        bool ok = mongoc_client_command_simple(c, "admin", &cmd, NULL, NULL, &berr);
        bson_destroy(&cmd);
        mongosup_checkin(m, c, ok ? NULL : &berr);
        atomic_fetch_add(ok ? &ctl->ok[idx] : &ctl->failed[idx], 1);
    }
    return NULL;
}

static void host_add_workers(host_t *h, int workers, int threads)
{
    for (int w = 0; w < workers; w++) {
        pid_t pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
            mongosup_error_t err;
            mongosup_config_t *cfg = mongosup_config_load(h->conf, NULL, &err);
            mongosup_t *m = cfg != NULL ? mongosup_attach(cfg, &err) : NULL;
            if (m == NULL)
                _exit(2);
            pthread_t th[16];
            void *arg[2] = {m, (void *)(intptr_t)h->idx};
            for (int t = 0; t < threads; t++)
                pthread_create(&th[t], NULL, worker_thread, arg);
            for (int t = 0; t < threads; t++)
                pthread_join(th[t], NULL);
            bool detached = mongosup_detach(&m, 10000);
            mongosup_config_destroy(&cfg);
            _exit(detached ? 0 : 3);
        }
        h->workers[h->nworkers++] = pid;
        remember_child(pid);
    }
}

static void host_kill(host_t *h)
{
    atomic_store(&h->alive, false);
    for (int w = 0; w < h->nworkers; w++)
        kill(h->workers[w], SIGKILL);
    kill(h->pid, SIGKILL);
    for (int w = 0; w < h->nworkers; w++)
        waitpid(h->workers[w], NULL, 0);
    waitpid(h->pid, NULL, 0);
    h->nworkers = 0;
    h->pid = 0;
}

/* Stops workers (ctl->stop) and the daemon (SIGTERM, exit 0 expected). */
static int host_stop(host_t *h)
{
    int status = -1;
    for (int w = 0; w < h->nworkers; w++)
        waitpid(h->workers[w], NULL, 0);
    h->nworkers = 0;
    if (h->pid > 0) {
        kill(h->pid, SIGTERM);
        waitpid(h->pid, &status, 0);
        status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    atomic_store(&h->alive, false);
    h->pid = 0;
    if (h->mapped)
        msup_segment_close(&h->seg);
    h->mapped = false;
    return status;
}

/* `mongosupctl -c CONF fleet`: its output (malloc'd) and exit status. */
static char *ctl_fleet(const host_t *h, int *status)
{
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "'%s' -c '%s' fleet 2>&1", build_path("tools/mongosupctl"), h->conf);
    FILE *p = popen(cmd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char *out = calloc(1, 16384);
    size_t n = fread(out, 1, 16383, p);
    out[n] = '\0';
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    char *buf = arg;
    size_t have = strlen(buf), add = size * n;
    if (have + add >= 65536)
        add = 65535 - have;
    memcpy(buf + have, data, add);
    buf[have + add] = '\0';
    return size * n;
}

/* GET /metrics of host h (malloc'd body). */
static char *scrape(const host_t *h)
{
    char url[64];
    snprintf(url, sizeof url, "http://%s/metrics", h->metrics_listen);
    char *body = calloc(1, 65536);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    CU_ASSERT_EQUAL(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    return body;
}

/* ---- the referee: every live host's enforced cap, summed every 2 ms;
 * the caps published in etcd, summed every 50 ms ---- */

typedef struct sampler {
    pthread_t thread;
    _Atomic bool stop;
    _Atomic uint32_t max_sum;          /* of the enforced caps */
    _Atomic uint32_t max_published;    /* of the caps in etcd */
    _Atomic long samples;
    msup_etcd_t *etcd;       /* made by the main thread: no CUnit assertion in the sampler */
} sampler_t;

static uint32_t published_sum(msup_etcd_t *e)
{
    msup_etcd_range_t r;
    if (msup_etcd_range_prefix(e, prefix, &r) != MSUP_ETCD_OK)
        return 0;
    uint32_t sum = 0;
    for (size_t i = 0; i < r.count; i++) {
        const char *host = strrchr(r.kvs[i].key, '/');
        msup_fleet_record_t rec;
        char why[128];
        if (host != NULL && msup_fleet_record_decode(r.kvs[i].value, host + 1, &rec, why, sizeof why))
            sum += rec.cap;
    }
    msup_etcd_range_free(&r);
    return sum;
}

static void *sample(void *arg)
{
    sampler_t *s = arg;
    msup_etcd_t *e = s->etcd;
    for (long n = 0; !atomic_load(&s->stop); n++) {
        uint32_t sum = 0;
        for (int i = 0; i < HOSTS; i++)
            if (atomic_load(&hosts[i].alive))
                sum += host_cap(&hosts[i]);
        if (sum > atomic_load(&s->max_sum))
            atomic_store(&s->max_sum, sum);
        if (n % 25 == 0) {
            uint32_t p = published_sum(e);
            if (p > atomic_load(&s->max_published))
                atomic_store(&s->max_published, p);
        }
        atomic_fetch_add(&s->samples, 1);
        msup_test_sleep_ms(2);
    }
    return NULL;
}

/* Waits until pred holds (polling every 10 ms); returns the time it took, or -1. */
static long wait_ms(bool (*pred)(void), unsigned timeout_ms)
{
    uint64_t t0 = msup_test_now_ms();
    while (msup_test_now_ms() - t0 < timeout_ms) {
        if (pred())
            return (long)(msup_test_now_ms() - t0);
        msup_test_sleep_ms(10);
    }
    return pred() ? (long)timeout_ms : -1;
}

static uint32_t live_sum(void)
{
    uint32_t s = 0;
    for (int i = 0; i < HOSTS; i++)
        if (atomic_load(&hosts[i].alive))
            s += host_cap(&hosts[i]);
    return s;
}

/* Hosts 0 and 3 saturate their pools, 1 and 2 are idle: the busy ones
 * split the room above the floors. */
static bool split_busy_idle(void)
{
    uint32_t c0 = host_cap(&hosts[0]), c1 = host_cap(&hosts[1]), c2 = host_cap(&hosts[2]), c3 = host_cap(&hosts[3]);
    return live_sum() == FLEET_MAX && c1 == FLOOR && c2 == FLOOR && c0 == c3 && c0 == (FLEET_MAX - 2 * FLOOR) / 2;
}

static const char *sampler_endpoint;

/* Every live host enforces the share that msup_share_compute gives it from
 * the records in etcd now (the split every host computes alike). */
static bool caps_match_records(void)
{
    msup_etcd_t *e = test_client(sampler_endpoint);
    msup_etcd_range_t r;
    bool ok = msup_etcd_range_prefix(e, prefix, &r) == MSUP_ETCD_OK;
    msup_fleet_record_t recs[HOSTS];
    msup_share_host_t in[HOSTS];
    size_t n = 0;
    for (size_t i = 0; ok && i < r.count && n < HOSTS; i++) {
        const char *host = strrchr(r.kvs[i].key, '/');
        char why[128];
        if (host != NULL && msup_fleet_record_decode(r.kvs[i].value, host + 1, &recs[n], why, sizeof why)) {
            in[n] = (msup_share_host_t){recs[n].host, FLOOR, recs[n].demand};
            n++;
        }
    }
    if (ok)
        msup_etcd_range_free(&r);
    msup_etcd_free(e);
    msup_share_params_t p = {.fleet_max = FLEET_MAX, .max_hosts = HOSTS, .floor = FLOOR};
    uint32_t targets[HOSTS];
    msup_share_compute(&p, in, n, targets);
    size_t live = 0;
    for (int h = 0; ok && h < HOSTS; h++) {
        if (!atomic_load(&hosts[h].alive))
            continue;
        live++;
        bool found = false;
        for (size_t i = 0; i < n; i++)
            if (strcmp(recs[i].host, hosts[h].id) == 0) {
                found = true;
                ok = recs[i].cap == targets[i] && host_cap(&hosts[h]) == targets[i];
            }
        ok = ok && found;
    }
    return ok && live == n;
}

/* Host 3 is gone: its floor stays reserved (it may come back), the rest of
 * its room is the others'. */
static bool room_returned(void)
{
    return live_sum() == FLEET_MAX - FLOOR;
}

static bool shared_by_three(void)
{
    return room_returned() && caps_match_records() && host_cap(&hosts[0]) > host_cap(&hosts[1]);
}

static bool all_at_floor(void)
{
    for (int i = 0; i < 3; i++)
        if (host_cap(&hosts[i]) != FLOOR)
            return false;
    return true;
}

static void setup_dir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mongosup-fleet-test.XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tmpdir));
    snprintf(prefix, sizeof prefix, "/msup-test-%d", (int)getpid());
}

static void remove_dir(void)
{
    if (getenv("MSUP_FLEET_TEST_KEEP") != NULL) { /* for a post-mortem */
        printf("\n    kept %s ", tmpdir);
        return;
    }
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

/* The whole life of a fleet: converge, demand, a corrupt record, a host
 * SIGKILLed, etcd stopped and back; the referee throughout. */
static void test_fleet_lifecycle(void)
{
    if (!have_etcd())
        return;
    setup_dir();
    etcd_proc_t etcd = {0};
    CU_ASSERT_FATAL(etcd_start(&etcd));
    peer = test_peer_start("standalone", 1, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
    CU_ASSERT(test_peer_command(peer, "{\"cmd\":\"delay\",\"ms\":20,\"command\":\"ping\"}", NULL, 0));
    ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(ctl != MAP_FAILED);
    memset(ctl, 0, sizeof *ctl);

    for (int i = 0; i < HOSTS; i++)
        CU_ASSERT_FATAL(host_start(&hosts[i], i, etcd.endpoint, i == 1));
    /* Workers first: no child inherits the sampler thread. */
    /* 2 workers x (8 clients + 1 monitor) = 18 tokens: more than the 16
     * each busy host gets, so they stay at their caps and ask for more. */
    host_add_workers(&hosts[0], 2, 8);
    host_add_workers(&hosts[3], 2, 8);
    sampler_t s = {.etcd = test_client(etcd.endpoint)};
    sampler_endpoint = etcd.endpoint;
    pthread_create(&s.thread, NULL, sample, &s);

    /* 1. Demand: the busy hosts split the room above the floors. */
    long took = wait_ms(split_busy_idle, slack(30000));
    CU_ASSERT(took >= 0);
    printf("\n    busy/idle split %u/%u/%u/%u after %ld ms ", host_cap(&hosts[0]), host_cap(&hosts[1]),
           host_cap(&hosts[2]), host_cap(&hosts[3]), took);
    CU_ASSERT(test_peer_command(peer, "{\"cmd\":\"reset_stats\"}", NULL, 0));

    /* What the host shows: mongosupctl fleet and /metrics. */
    int st = -1;
    char *out = ctl_fleet(&hosts[1], &st);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT(strstr(out, "host h1 lease held last-etcd-contact ") != NULL);
    CU_ASSERT(strstr(out, "cluster main cap 4 target 4 floor 4 fleet-max 40 hosts 4 demand 0") != NULL);
    CU_ASSERT(strstr(out, "  host h0 floor 4 demand ") != NULL);
    CU_ASSERT(strstr(out, "  host h1 floor 4 demand 0 cap 4 (this host)") != NULL);
    CU_ASSERT(strstr(out, "fleet: fleet of host h1") != NULL);
    if (strstr(out, "cluster main cap 4") == NULL)
        fprintf(stderr, "\n  mongosupctl fleet said:\n%s\n", out);
    free(out);
    char *metrics = scrape(&hosts[1]), why[256] = "";
    CU_ASSERT(prom_check(metrics, why, sizeof why));
    if (why[0] != '\0')
        fprintf(stderr, "\n  /metrics: %s\n", why);
    const char *v = prom_value(metrics, "mongosup_fleet_cap_connections{cluster=\"main\"}");
    CU_ASSERT(v != NULL && strcmp(v, "4") == 0);
    v = prom_value(metrics, "mongosup_fleet_hosts{cluster=\"main\"}");
    CU_ASSERT(v != NULL && strcmp(v, "4") == 0);
    v = prom_value(metrics, "mongosup_fleet_max_connections{cluster=\"main\"}");
    CU_ASSERT(v != NULL && strcmp(v, "40") == 0);
    v = prom_value(metrics, "mongosup_budget_max_connections{cluster=\"main\"}");
    CU_ASSERT(v != NULL && strcmp(v, "4") == 0); /* the segment's budget is the fleet's cap */
    v = prom_value(metrics, "mongosup_fleet_lease_held");
    CU_ASSERT(v != NULL && strcmp(v, "1") == 0);
    free(metrics);

    /* etcd requests per host per second in the steady state (figure). */
    char *o1 = ctl_fleet(&hosts[2], &st);
    uint64_t t1 = msup_test_now_ms();
    msup_test_sleep_ms(2000);
    char *o2 = ctl_fleet(&hosts[2], &st);
    uint64_t t2 = msup_test_now_ms();
    const char *r1 = strstr(o1, "etcd-requests "), *r2 = strstr(o2, "etcd-requests ");
    CU_ASSERT(r1 != NULL && r2 != NULL);
    if (r1 != NULL && r2 != NULL)
        printf("\n    steady state: %.1f etcd requests/s on an idle host (poll 100 ms, TTL %d s) ",
               (double)(strtoull(r2 + 14, NULL, 10) - strtoull(r1 + 14, NULL, 10)) * 1000.0 / (double)(t2 - t1), TTL_S);
    free(o1);
    free(o2);

    /* 2. A corrupt record and a foreign one claiming a huge cap: ignored,
     * logged, nobody's cap moves. */
    msup_etcd_t *e = test_client(etcd.endpoint);
    int64_t lease = 0;
    bool applied = false;
    CU_ASSERT_EQUAL(msup_etcd_lease_grant(e, 30, &lease), MSUP_ETCD_OK);
    char key[128];
    snprintf(key, sizeof key, "%s/main/garbage", prefix);
    CU_ASSERT_EQUAL(msup_etcd_put(e, key, "{not json", lease, NULL, 0, &applied), MSUP_ETCD_OK);
    snprintf(key, sizeof key, "%s/main/other", prefix);
    CU_ASSERT_EQUAL(msup_etcd_put(e, key, "{\"v\":1,\"host\":\"spoof\",\"floor\":0,\"demand\":0,\"cap\":0,"
                                          "\"fleet_max\":1000,\"max_hosts\":1}", lease, NULL, 0, &applied),
                    MSUP_ETCD_OK);
    msup_test_sleep_ms(slack(600));
    CU_ASSERT(wait_ms(split_busy_idle, slack(3000)) >= 0);
    CU_ASSERT(file_has(hosts[1].log, "ignoring the record at "));
    CU_ASSERT(file_has(hosts[1].log, "/main/garbage"));
    CU_ASSERT(file_has(hosts[1].log, "its host does not match its key"));
    CU_ASSERT_EQUAL(msup_etcd_lease_revoke(e, lease), MSUP_ETCD_OK);
    msup_etcd_free(e);

    /* 3. Host 3 SIGKILLed with its workers: its lease expires, host 0
     * takes its room within TTL + 1 s (plus the poll and the raise). */
    long peer_max = -1;
    char reply[4096];
    if (test_peer_command(peer, "{\"cmd\":\"stats\"}", reply, sizeof reply)) {
        const char *m = strstr(reply, "\"max\":");
        peer_max = m != NULL ? strtol(m + 6, NULL, 10) : -1;
    }
    host_kill(&hosts[3]);
    took = wait_ms(room_returned, slack(10000));
    printf("\n    host killed: its room back with the others after %ld ms (TTL %d s); peer conn.max %ld before ", took,
           TTL_S, peer_max);
    CU_ASSERT(took >= 0);
    CU_ASSERT(took <= (long)slack(TTL_S * 1000 + 1500));
    took = wait_ms(shared_by_three, slack(5000));
    printf("\n    then the split of 3 hosts %u/%u/%u after %ld ms more ", host_cap(&hosts[0]), host_cap(&hosts[1]),
           host_cap(&hosts[2]), took);
    CU_ASSERT(took >= 0);
    /* The referee: every socket the workers opened was under a cap; the
     * supervisors' own health checks (one socket each) are outside the budget. */
    CU_ASSERT(peer_max > 0);
    CU_ASSERT(peer_max <= FLEET_MAX + HOSTS);

    /* 4. etcd stopped: every host falls to its floor before its lease could
     * expire on the server, and keeps serving. */
    long ops_before = atomic_load(&ctl->ok[0]);
    uint64_t t_stop = msup_test_now_ms();
    etcd_stop(&etcd);
    took = wait_ms(all_at_floor, slack(TTL_S * 1000));
    printf("\n    etcd stopped: hosts at their floors after %ld ms ", took);
    CU_ASSERT(took >= 0);
    CU_ASSERT(took < (long)slack(TTL_S * 1000));
    msup_test_sleep_ms(slack(500));
    CU_ASSERT(all_at_floor());
    CU_ASSERT(atomic_load(&ctl->ok[0]) > ops_before); /* still serving, within the floor */
    CU_ASSERT(file_has(hosts[0].log, "falls back to its floor"));
    (void)t_stop;

    /* 5. etcd back: the hosts rejoin and share again. */
    CU_ASSERT_FATAL(etcd_start(&etcd));
    took = wait_ms(shared_by_three, slack(10000));
    printf("\n    etcd back: shares restored after %ld ms ", took);
    CU_ASSERT(took >= 0);

    /* 6. Host 3 comes back (a new mongosupd adopts its segment) with busy
     * workers: it joins at its floor, and the split of 4 returns. */
    msup_segment_close(&hosts[3].seg);
    CU_ASSERT_FATAL(host_start(&hosts[3], 3, etcd.endpoint, false));
    host_add_workers(&hosts[3], 2, 8);
    took = wait_ms(split_busy_idle, slack(30000));
    printf("\n    host 3 rejoined: split %u/%u/%u/%u after %ld ms ", host_cap(&hosts[0]), host_cap(&hosts[1]),
           host_cap(&hosts[2]), host_cap(&hosts[3]), took);
    CU_ASSERT(took >= 0);

    atomic_store(&s.stop, true);
    pthread_join(s.thread, NULL);
    msup_etcd_free(s.etcd);
    printf("\n    referee: %ld samples, highest sum of enforced caps %u, of published caps %u (fleet max %d) ",
           atomic_load(&s.samples), atomic_load(&s.max_sum), atomic_load(&s.max_published), FLEET_MAX);
    CU_ASSERT(atomic_load(&s.samples) > 100);
    CU_ASSERT(atomic_load(&s.max_sum) <= FLEET_MAX);
    CU_ASSERT(atomic_load(&s.max_published) <= FLEET_MAX);
    CU_ASSERT(atomic_load(&s.max_published) > 0);

    atomic_store(&ctl->stop, 1);
    CU_ASSERT_EQUAL(atomic_load(&ctl->failed[0]), 0);
    if (atomic_load(&ctl->failed[0]) != 0)
        fprintf(stderr, "\n  last failure: %s\n", ctl->last_error);
    for (int i = 0; i < HOSTS; i++)
        CU_ASSERT_EQUAL(host_stop(&hosts[i]), 0);
    etcd_remove(&etcd);
    test_peer_stop(&peer);
    munmap(ctl, sizeof *ctl);
    remove_dir();
}

/* No etcd answers at start: the host starts, holds its floor and says so. */
static void test_unreachable_at_start(void)
{
    setup_dir();
    peer = test_peer_start("standalone", 1, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", msup_test_free_port()); /* nobody listens */
    host_t *h = &hosts[0];
    CU_ASSERT_FATAL(host_start(h, 0, endpoint, false));
    msup_test_sleep_ms(slack(1000));
    CU_ASSERT_EQUAL(host_cap(h), FLOOR);
    CU_ASSERT(file_has(h->log, "fleet: lease grant: http://127.0.0.1:"));
    CU_ASSERT_EQUAL(kill(h->pid, 0), 0); /* still running */
    CU_ASSERT_EQUAL(host_stop(h), 0);
    test_peer_stop(&peer);
    remove_dir();
}

static bool etcdctl(const etcd_proc_t *e, const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ETCDCTL_API=3 etcdctl --endpoints %s %s >> '%s/etcdctl.log' 2>&1", e->endpoint, args,
             tmpdir);
    return system(cmd) == 0;
}

static bool h0_above_floor(void)
{
    return host_cap(&hosts[0]) == FLEET_MAX - (HOSTS - 1) * FLOOR;
}

/* etcd with authentication: the right password joins, a wrong one is
 * refused (logged without the password) and that host keeps its floor. */
static void test_credentials(void)
{
    if (!have_etcd())
        return;
    if (access("/usr/bin/etcdctl", X_OK) != 0) {
        printf("\n    SKIP: /usr/bin/etcdctl is not installed (Debian: etcd-client; scripts/install-deps.sh) ");
        return;
    }
    setup_dir();
    etcd_proc_t etcd = {0};
    CU_ASSERT_FATAL(etcd_start(&etcd));
    char grant[160];
    snprintf(grant, sizeof grant, "role grant-permission fleet --prefix=true readwrite %s/", prefix);
    CU_ASSERT_FATAL(etcdctl(&etcd, "user add root:rootpw") && etcdctl(&etcd, "user grant-role root root") &&
                    etcdctl(&etcd, "user add msup:good-pw") &&
                    etcdctl(&etcd, "role add fleet") && etcdctl(&etcd, grant) &&
                    etcdctl(&etcd, "user grant-role msup fleet") && etcdctl(&etcd, "auth enable"));
    peer = test_peer_start("standalone", 1, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
    char pw[PATH_MAX];
    snprintf(pw, sizeof pw, "%s/etcd.pw", tmpdir);
    FILE *f = fopen(pw, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("good-pw\n", f);
    fclose(f);
    chmod(pw, 0600);
    snprintf(extra_fleet_keys, sizeof extra_fleet_keys, "username = \"msup\"; password_file = \"%s\";", pw);
    CU_ASSERT_FATAL(host_start(&hosts[0], 0, etcd.endpoint, false));
    setenv("MSUP_FLEET_TEST_PW", "wrong-pw-123", 1);
    snprintf(extra_fleet_keys, sizeof extra_fleet_keys, "username = \"msup\"; password_env = \"MSUP_FLEET_TEST_PW\";");
    CU_ASSERT_FATAL(host_start(&hosts[1], 1, etcd.endpoint, false));
    unsetenv("MSUP_FLEET_TEST_PW");
    extra_fleet_keys[0] = '\0';
    long took = wait_ms(h0_above_floor, slack(5000));
    CU_ASSERT(took >= 0);
    msup_test_sleep_ms(slack(300));
    CU_ASSERT_EQUAL(host_cap(&hosts[1]), FLOOR);
    CU_ASSERT(file_has(hosts[1].log, "etcd refused the credentials of user msup"));
    CU_ASSERT_FALSE(file_has(hosts[1].log, "wrong-pw-123"));
    CU_ASSERT_FALSE(file_has(hosts[0].log, "good-pw"));
    printf("\n    with authentication: h0 at %u after %ld ms, h1 (wrong password) at %u ", host_cap(&hosts[0]), took,
           host_cap(&hosts[1]));
    CU_ASSERT_EQUAL(host_stop(&hosts[0]), 0);
    CU_ASSERT_EQUAL(host_stop(&hosts[1]), 0);
    test_peer_stop(&peer);
    etcd_remove(&etcd);
    remove_dir();
}

/* A bad fleet group: mongosupd refuses to start, one line with file:line. */
static void test_bad_config(void)
{
    setup_dir();
    char conf[PATH_MAX], log[PATH_MAX], expect[PATH_MAX + 32];
    snprintf(conf, sizeof conf, "%s/bad.conf", tmpdir);
    snprintf(log, sizeof log, "%s/bad.log", tmpdir);
    FILE *f = fopen(conf, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "default_environment = \"t\";\n"
               "fleet = { endpoints = [\"http://127.0.0.1:1\"]; max_hosts = 4; };\n"
               "environments = { t = { clusters = { main = { mongo_uri = \"mongodb://127.0.0.1:1/\";\n"
               "  fleet_max_connections = 10; fleet_floor = 3; }; }; }; };\n");
    fclose(f);
    pid_t pid = spawn_daemon(conf, log, false);
    int status = 0;
    waitpid(pid, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    snprintf(expect, sizeof expect, "mongosupd: %s:4: ", conf);
    CU_ASSERT(file_has(log, expect));
    CU_ASSERT(file_has(log, "fleet_floor 3 x fleet.max_hosts 4 = 12 is more than fleet_max_connections 10"));
    remove_dir();
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/fleet/bad-config", test_bad_config},
        {"/fleet/unreachable-at-start", test_unreachable_at_start},
        {"/fleet/credentials", test_credentials},
        {"/fleet/lifecycle", test_fleet_lifecycle},
        {NULL, NULL},
    };
    /* As make check does: the driver's per-process counters stay in the heap
     * (killed hosts and workers would leave /dev/shm/mongoc-PID files). */
    setenv("MONGOC_DISABLE_SHM", "1", 1);
    atexit(cleanup_at_exit);
    return msup_test_main("fleet", tests, argc, argv);
}
