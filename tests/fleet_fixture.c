/* fleet_fixture.c: etcd started and stopped on free loopback ports, mongosupd hosts and their workers, for tests/fleet_test. */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "fleet_fixture.h"
#include "mongosup.h"
#include "testmain.h"

char tmpdir[64];
char prefix[64];

/* What a failed (FATAL) assertion would leave behind: children still
 * running, etcd's data, segments.  Cleaned at exit. */
static pid_t children[64];
static int nchildren;
static char etcd_dirs[8][PATH_MAX];
static int netcd_dirs;

static void remember_child(pid_t pid)
{
    if (pid > 0 && nchildren < (int)(sizeof children / sizeof children[0]))
        children[nchildren++] = pid;
}

void cleanup_at_exit(void)
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
    if (tmpdir[0] != '\0' && getenv("MSUP_FLEET_TEST_KEEP") == NULL) {
        char cmd[sizeof tmpdir + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir); /* after a fatal assertion: remove_dir did not run */
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
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

unsigned slack(unsigned ms)
{
    return msup_test_under_valgrind() || daemon_under_valgrind() ? ms * 4 + 3000 : ms;
}

const char *build_path(const char *rel)
{
    static char bufs[4][PATH_MAX];
    static int next;
    char *p = bufs[next++ % 4];
    const char *b = getenv("MONGOSUP_TEST_BUILDDIR");
    snprintf(p, PATH_MAX, "%s/%s", b != NULL && b[0] != '\0' ? b : MONGOSUP_BUILDDIR, rel);
    return p;
}

long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

bool file_has_from(const char *path, long from, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    if (from > 0 && fseek(f, from, SEEK_SET) != 0) {
        fclose(f);
        return false;
    }
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

bool file_has(const char *path, const char *needle)
{
    return file_has_from(path, 0, needle);
}

/* ---- etcd: a single member on free loopback ports, data in tmpdir ---- */


bool have_etcd(void)
{
    if (access(ETCD_BIN, X_OK) == 0)
        return true;
    printf("\n    SKIP: %s is not installed (Debian: apt-get install etcd-server; scripts/install-deps.sh) ", ETCD_BIN);
    return false;
}

fixture_tls_t fixture_tls;
bool fixture_tls_on;

/* A client of the test's own, to read and write records like a host. */
msup_etcd_t *test_client(const char *endpoint)
{
    static char ep[64];
    snprintf(ep, sizeof ep, "%s", endpoint);
    char *eps[2] = {ep, NULL};
    /* A TLS handshake under memcheck takes far longer than 500 ms. */
    msup_fleet_cfg_t fc = {.enabled = true, .endpoints = eps, .request_timeout_ms = msup_test_under_valgrind() ? 5000 : 500};
    if (fixture_tls_on) {
        fc.tls_ca_file = fixture_tls.ca;
        fc.tls_cert_file = fixture_tls.client_cert;
        fc.tls_key_file = fixture_tls.client_key;
    }
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

/* Ports, data directory and endpoint of a member that never ran. */
static void etcd_prepare(etcd_proc_t *e, const char *name)
{
    snprintf(e->name, sizeof e->name, "%s", name);
    e->client_port = msup_test_free_port();
    e->peer_port = msup_test_free_port();
    /* On tmpfs when there is one: etcd fsyncs every write, which takes
     * seconds on a loaded disk and would time the hosts' requests out. */
    char shm[] = "/dev/shm/mongosup-fleet-etcd.XXXXXX";
    if (mkdtemp(shm) != NULL)
        snprintf(e->dir, sizeof e->dir, "%s", shm);
    else
        snprintf(e->dir, sizeof e->dir, "%s/etcd-%s", tmpdir, name);
    if (netcd_dirs < (int)(sizeof etcd_dirs / sizeof etcd_dirs[0]))
        snprintf(etcd_dirs[netcd_dirs++], PATH_MAX, "%s", e->dir);
    snprintf(e->endpoint, sizeof e->endpoint, "%s://127.0.0.1:%d", e->tls ? "https" : "http", e->client_port);
}

static void etcd_spawn(etcd_proc_t *e, const char *cluster)
{
    char client[64], peer_url[64], log[PATH_MAX + 32];
    snprintf(client, sizeof client, "%s", e->endpoint);
    snprintf(peer_url, sizeof peer_url, "http://127.0.0.1:%d", e->peer_port);
    snprintf(log, sizeof log, "%s/etcd-%s.log", tmpdir, e->name);
    e->pid = fork();
    CU_ASSERT_FATAL(e->pid >= 0);
    if (e->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        /* Fast elections: a member killed costs the others well under a lease. */
        if (e->tls)
            execl(ETCD_BIN, ETCD_BIN, "--name", e->name, "--data-dir", e->dir, "--listen-client-urls", client,
                  "--advertise-client-urls", client, "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls",
                  peer_url, "--initial-cluster", cluster, "--heartbeat-interval", "50", "--election-timeout", "500",
                  "--log-level", "warn", "--cert-file", fixture_tls.server_cert, "--key-file",
                  fixture_tls.server_key, "--trusted-ca-file", fixture_tls.ca, "--client-cert-auth", (char *)NULL);
        else
            execl(ETCD_BIN, ETCD_BIN, "--name", e->name, "--data-dir", e->dir, "--listen-client-urls", client,
                  "--advertise-client-urls", client, "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls",
                  peer_url, "--initial-cluster", cluster, "--heartbeat-interval", "50", "--election-timeout", "500",
                  "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    remember_child(e->pid);
}

static bool etcd_wait(etcd_proc_t *e)
{
    for (unsigned waited = 0; waited < slack(10000); waited += 50) {
        if (etcd_answers(e->endpoint))
            return true;
        if (waitpid(e->pid, NULL, WNOHANG) == e->pid) {
            fprintf(stderr, "\n  etcd %s exited at start: see %s/etcd-%s.log\n", e->name, tmpdir, e->name);
            e->pid = 0;
            return false;
        }
        msup_test_sleep_ms(50);
    }
    return false;
}

/* Starts etcd (again, on the same ports and data when it ran before). */
bool etcd_start(etcd_proc_t *e)
{
    if (e->client_port == 0)
        etcd_prepare(e, "fleettest");
    char cluster[128];
    snprintf(cluster, sizeof cluster, "%s=http://127.0.0.1:%d", e->name, e->peer_port);
    etcd_spawn(e, cluster);
    return etcd_wait(e);
}

bool etcd_cluster_start(etcd_proc_t *m, int n)
{
    char cluster[512] = "";
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        etcd_prepare(&m[i], name);
        len += (size_t)snprintf(cluster + len, sizeof cluster - len, "%s%s=http://127.0.0.1:%d", i > 0 ? "," : "",
                                name, m[i].peer_port);
    }
    for (int i = 0; i < n; i++)
        etcd_spawn(&m[i], cluster);
    bool ok = true;
    for (int i = 0; i < n; i++)
        ok = etcd_wait(&m[i]) && ok;
    return ok;
}

void etcd_stop(etcd_proc_t *e)
{
    if (e->pid <= 0)
        return;
    kill(e->pid, SIGTERM);
    waitpid(e->pid, NULL, 0);
    e->pid = 0;
}

/* A JSON string member's value ("leader":"123") copied into out. */
static bool json_str(const char *body, const char *name, char *out, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", name);
    const char *p = strstr(body, pat);
    if (p == NULL)
        return false;
    p += strlen(pat);
    const char *q = strchr(p, '"');
    if (q == NULL || (size_t)(q - p) >= len)
        return false;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return true;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg);

int etcd_leader(const etcd_proc_t *m, int n)
{
    for (int i = 0; i < n; i++) {
        if (m[i].pid <= 0)
            continue;
        char url[96], *body = calloc(1, 65536);
        snprintf(url, sizeof url, "%s/v3/maintenance/status", m[i].endpoint);
        CURL *c = curl_easy_init();
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
        char member[32], leader[32];
        bool ok = curl_easy_perform(c) == CURLE_OK && json_str(body, "member_id", member, sizeof member) &&
                  json_str(body, "leader", leader, sizeof leader) && strcmp(member, leader) == 0;
        curl_easy_cleanup(c);
        free(body);
        if (ok)
            return i;
    }
    return -1;
}

/* Stops etcd and removes its data. */
void etcd_remove(etcd_proc_t *e)
{
    etcd_stop(e);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

/* ---- hosts: one mongosupd each, its own segment, config, host id ---- */



host_t hosts[HOSTS];
test_peer_t *peer;
ctl_t *ctl;
static char ctl_path[PATH_MAX];
char extra_fleet_keys[4 * PATH_MAX]; /* more keys of the next host's fleet group */
char extra_cluster_keys[256];        /* more keys of the next host's cluster main */
unsigned conf_fleet_max = FLEET_MAX, conf_floor = FLOOR, conf_ttl_s = TTL_S;

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
            "  circuit_breaker = false; check_timeout_ms = 3000; check_interval_ms = 5000;\n"
            "  fleet_max_connections = %d; fleet_floor = %d; %s }; }; }; };\n",
            h->seg_name, tmpdir, h->id, h->metrics_listen, endpoint, h->id, prefix, conf_ttl_s, HOSTS, extra_fleet_keys,
            test_peer_uri(peer), conf_fleet_max, conf_floor, extra_cluster_keys);
    fclose(f);
}

pid_t spawn_daemon(const char *conf, const char *log, bool valgrind)
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

void host_rewrite_conf(host_t *h, const char *endpoint)
{
    write_host_conf(h, endpoint);
}

bool host_start(host_t *h, int idx, const char *endpoint, bool metrics)
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
    /* A host started again appends to its log: only what this start wrote counts. */
    long log_from = file_size(h->log);
    h->pid = spawn_daemon(h->conf, h->log, idx == 0 && daemon_under_valgrind());
    CU_ASSERT_FATAL(h->pid > 0);
    for (unsigned waited = 0; waited < slack(10000); waited += 20) {
        mongosup_error_t err;
        if (!h->mapped && msup_segment_open_readonly(h->seg_name, (uid_t)-1, &h->seg, &err))
            h->mapped = true;
        /* Its own RUNNING: an adopted segment says RUNNING (and holds the
         * dead supervisor's cap) before this one has applied its floor, and
         * the log of the host's earlier start says running already. */
        if (h->mapped && atomic_load(&msup_segment_hdr(&h->seg)->phase) == MSUP_PHASE_RUNNING &&
            atomic_load(&msup_segment_hdr(&h->seg)->supervisor_pid) == h->pid &&
            file_has_from(h->log, log_from, "running: environment") &&
            msup_segment_find_cluster(&h->seg, "main") >= 0) {
            atomic_store(&h->alive, true);
            return true;
        }
        msup_test_sleep_ms(20);
    }
    fprintf(stderr, "\n  %s did not start: see %s\n", h->id, h->log);
    return false;
}

uint32_t host_cap(const host_t *h)
{
    int row = msup_segment_find_cluster(&h->seg, "main");
    return row < 0 ? 0 : atomic_load(&msup_segment_row(&h->seg, (uint32_t)row)->limits.max_connections);
}

/* A worker of host h: `threads` threads pinging (the peer delays each
 * ping) until ctl->stop. */
static void *worker_thread(void *arg)
{
    mongosup_t *m = ((void **)arg)[0];
    int idx = (int)(intptr_t)((void **)arg)[1];
    while (!atomic_load(&ctl->stop)) {
        if (atomic_load(&ctl->idle[idx])) {
            msup_test_sleep_ms(20);
            continue;
        }
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

/* The worker: a process of its own (re-executed, so that under valgrind
 * it runs natively: check-valgrind does not trace children), `threads`
 * threads pinging until ctl->stop; ctl is a file mapped by both. */
int fleet_worker_main(int argc, char **argv)
{
    if (argc != 6)
        return 64;
    const char *conf = argv[2], *ctl_file = argv[3];
    int idx = atoi(argv[4]), threads = atoi(argv[5]);
    int fd = open(ctl_file, O_RDWR | O_CLOEXEC);
    ctl = fd >= 0 ? mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (fd >= 0)
        close(fd);
    if (ctl == MAP_FAILED || threads < 1 || threads > 16 || idx < 0 || idx >= HOSTS)
        return 2;
    mongosup_error_t err;
    mongosup_config_t *cfg = mongosup_config_load(conf, NULL, &err);
    mongosup_t *m = cfg != NULL ? mongosup_attach(cfg, &err) : NULL;
    if (m == NULL)
        return 2;
    pthread_t th[16];
    void *arg[2] = {m, (void *)(intptr_t)idx};
    for (int t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, worker_thread, arg);
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    bool detached = mongosup_detach(&m, 10000);
    mongosup_config_destroy(&cfg);
    return detached ? 0 : 3;
}

ctl_t *ctl_create(void)
{
    snprintf(ctl_path, sizeof ctl_path, "%s/ctl", tmpdir);
    int fd = open(ctl_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(ftruncate(fd, sizeof *ctl) == 0);
    ctl_t *c = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    CU_ASSERT_FATAL(c != MAP_FAILED);
    return c;
}

void host_add_workers(host_t *h, int workers, int threads)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CU_ASSERT_FATAL(n > 0);
    self[n] = '\0';
    char idx[8], nthreads[8];
    snprintf(idx, sizeof idx, "%d", h->idx);
    snprintf(nthreads, sizeof nthreads, "%d", threads);
    for (int w = 0; w < workers; w++) {
        pid_t pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
            execl(self, self, "--worker", h->conf, ctl_path, idx, nthreads, (char *)NULL);
            _exit(127);
        }
        h->workers[h->nworkers++] = pid;
        remember_child(pid);
    }
}

void host_kill(host_t *h)
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
int host_stop(host_t *h)
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

char *ctl_fleet(const host_t *h, int *status)
{
    return ctl_command(h, "fleet", status);
}

uint64_t ctl_fleet_counter(const host_t *h, const char *name)
{
    int st = -1;
    char *out = ctl_fleet(h, &st);
    char key[64];
    snprintf(key, sizeof key, "%s ", name);
    const char *at = strstr(out, key);
    uint64_t n = at != NULL ? strtoull(at + strlen(key), NULL, 10) : 0;
    free(out);
    return n;
}

char *ctl_command(const host_t *h, const char *command, int *status)
{
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "'%s' -c '%s' %s 2>&1", build_path("tools/mongosupctl"), h->conf, command);
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
char *scrape(const host_t *h)
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


/* Waits until pred holds (polling every 10 ms); returns the time it took, or -1. */
long wait_ms(bool (*pred)(void), unsigned timeout_ms)
{
    uint64_t t0 = msup_test_now_ms();
    while (msup_test_now_ms() - t0 < timeout_ms) {
        if (pred())
            return (long)(msup_test_now_ms() - t0);
        msup_test_sleep_ms(10);
    }
    return pred() ? (long)timeout_ms : -1;
}

void setup_dir(void)
{
    /* What a fatal assertion of the test before left running: its hosts
     * would hold the segments this test's hosts claim. */
    for (int i = 0; i < HOSTS; i++) {
        if (hosts[i].pid > 0)
            host_kill(&hosts[i]);
        if (hosts[i].mapped)
            msup_segment_close(&hosts[i].seg);
        hosts[i].mapped = false;
    }
    fixture_tls_on = false;
    extra_fleet_keys[0] = extra_cluster_keys[0] = '\0';
    conf_fleet_max = FLEET_MAX;
    conf_floor = FLOOR;
    conf_ttl_s = TTL_S;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mongosup-fleet-test.XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tmpdir));
    snprintf(prefix, sizeof prefix, "/msup-test-%d", (int)getpid());
}

void remove_dir(void)
{
    if (getenv("MSUP_FLEET_TEST_KEEP") != NULL) { /* for a post-mortem */
        printf("\n    kept %s ", tmpdir);
        return;
    }
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

bool etcdctl(const etcd_proc_t *e, const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ETCDCTL_API=3 etcdctl --endpoints %s %s >> '%s/etcdctl.log' 2>&1", e->endpoint, args,
             tmpdir);
    return system(cmd) == 0;
}

/* openssl req/x509 in tmpdir/tls: a CA, etcd's certificate for 127.0.0.1
 * (also a client certificate: etcd 3.4's JSON gateway dials its own gRPC
 * port with it, which client-cert-auth checks), a client certificate, and
 * a second CA that signed nothing here. */
bool tls_make_certs(void)
{
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        printf("\n    SKIP: openssl is not installed (Debian: openssl; scripts/install-deps.sh) ");
        return false;
    }
    char dir[sizeof tmpdir + 8];
    snprintf(dir, sizeof dir, "%s/tls", tmpdir);
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0);
    fixture_tls_t *t = &fixture_tls;
    snprintf(t->ca, sizeof t->ca, "%s/ca.pem", dir);
    snprintf(t->other_ca, sizeof t->other_ca, "%s/other-ca.pem", dir);
    snprintf(t->server_cert, sizeof t->server_cert, "%s/etcd.pem", dir);
    snprintf(t->server_key, sizeof t->server_key, "%s/etcd.key", dir);
    snprintf(t->client_cert, sizeof t->client_cert, "%s/client.pem", dir);
    snprintf(t->client_key, sizeof t->client_key, "%s/client.key", dir);
    char cmd[2048];
    /* EC keys: fast to make, on a loaded machine too. */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
             "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' > etcd.ext && "
             "printf 'extendedKeyUsage=clientAuth\\n' > client.ext && "
             "openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 -subj /CN=mongosup-test-ca && "
             "openssl req -x509 $K -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=mongosup-other-ca && "
             "openssl req $K -keyout etcd.key -out etcd.csr -subj /CN=127.0.0.1 && "
             "openssl x509 -req -in etcd.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile etcd.ext "
             "-out etcd.pem && "
             "openssl req $K -keyout client.key -out client.csr -subj /CN=mongosup-host && "
             "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext "
             "-out client.pem",
             dir);
    char full[sizeof cmd + 2 * sizeof dir];
    snprintf(full, sizeof full, "( %s ) > '%s/openssl.log' 2>&1", cmd, dir);
    bool ok = system(full) == 0;
    if (!ok)
        fprintf(stderr, "\n  openssl failed: see %s/openssl.log\n", dir);
    return ok;
}
