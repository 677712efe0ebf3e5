/* apache_fixture.c: starts and drives Apache httpd (prefork) with mod_mongosup, mongosupd and the peer for apache_test. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <mongoc/mongoc.h>

#include "apache_fixture.h"
#include "testmain.h"

extern char **environ;

void ap_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

uint64_t ap_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *builddir(void)
{
    const char *d = getenv("MONGOSUP_TEST_BUILDDIR");
    return d != NULL ? d : MSUP_BUILDDIR;
}

static const char *built(const char *rel)
{
    static char path[4][1024];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", builddir(), rel);
    return p;
}

#define MODULE_SO "apache/.libs/mod_mongosup.so"
#define SETPRIV_BIN "/usr/bin/setpriv" /* util-linux: on every Debian system */

bool ap_available(const char *name)
{
    const char *why = NULL;
    char mpm[512];
    snprintf(mpm, sizeof mpm, "%s/mod_mpm_prefork.so", APACHE_LIBEXECDIR);
    if (APACHE2_BIN[0] == '\0' || access(APACHE2_BIN, X_OK) != 0)
        why = "apache2 not found (Debian: apache2)";
    else if (AB_BIN[0] == '\0' || access(AB_BIN, X_OK) != 0)
        why = "ab not found (Debian: apache2-utils)";
    else if (access(mpm, R_OK) != 0)
        why = "the prefork MPM module is missing";
    else if (access(built(MODULE_SO), R_OK) != 0)
        why = "mod_mongosup.so is not built";
    if (why != NULL)
        printf("SKIP %s: %s\n", name, why);
    return why == NULL;
}

bool ap_valgrind_available(const char *name)
{
    if (!ap_available(name))
        return false;
    if (VALGRIND_BIN[0] == '\0' || access(VALGRIND_BIN, X_OK) != 0) {
        printf("SKIP %s: valgrind not found\n", name);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ processes */

/* Apache's parent runs as root when we are root, and its children switch to
 * User.  mongosupd then runs as root, as in production, and gives the
 * segments that user's group: the children write the stats segment (mode
 * 0660) and read the control segment (0640), both owned by root, which
 * every party accepts; the tools run as that user too. */
static bool service_user(uid_t *uid, gid_t *gid, const char **name)
{
    if (geteuid() != 0)
        return false;
    struct passwd *pw = getpwnam("www-data");
    if (pw == NULL)
        pw = getpwnam("nobody");
    if (pw == NULL)
        return false;
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    if (name != NULL)
        *name = pw->pw_name;
    return true;
}

/* fork + exec argv with stdout and stderr into logpath (NULL: /dev/null),
 * dying with the test (PR_SET_PDEATHSIG). */
static pid_t spawn(const char *const *argv, const char *logpath, bool as_service_user)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(125);
    /* A process group of its own: Apache's parent signals its whole group
     * when it stops, which would otherwise include this test. */
    setpgid(0, 0);
    int fd = open(logpath ? logpath : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
    int in = open("/dev/null", O_RDONLY);
    if (fd < 0 || in < 0)
        _exit(124);
    dup2(in, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    /* The uid changes in setpriv, after exec: under check-valgrind a
     * forked child still runs in memcheck, which could no longer remove
     * its root-owned files in /tmp once it had dropped to another uid. */
    uid_t uid;
    gid_t gid;
    const char *run[32];
    int n = 0;
    char reuid[32], regid[32];
    if (as_service_user && service_user(&uid, &gid, NULL)) {
        snprintf(reuid, sizeof reuid, "--reuid=%u", (unsigned)uid);
        snprintf(regid, sizeof regid, "--regid=%u", (unsigned)gid);
        run[n++] = SETPRIV_BIN;
        run[n++] = reuid;
        run[n++] = regid;
        run[n++] = "--clear-groups";
    }
    for (int i = 0; argv[i] != NULL && n < 31; i++)
        run[n++] = argv[i];
    run[n] = NULL;
    execve(run[0], (char *const *)run, environ);
    _exit(127);
}

static int wait_pid(pid_t pid, unsigned ms)
{
    uint64_t end = ap_now_ms() + ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 || ap_now_ms() > end)
            return -1;
        ap_sleep_ms(10);
    }
}

/* Stops a child of ours: SIGTERM, then SIGKILL after ms. */
static void stop_pid(pid_t *pid, unsigned ms)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    if (wait_pid(*pid, ms) == -1) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
    }
    *pid = -1;
}

/* Runs argv to completion; returns its output (stdout + stderr), malloc'd. */
static char *run_capture(const char *const *argv, bool as_service_user, int *status)
{
    static atomic_uint runs; /* the sampler thread runs commands too: one file each */
    char path[128];
    snprintf(path, sizeof path, "/tmp/msup-apache-%d-run%u.out", (int)getpid(), atomic_fetch_add(&runs, 1));
    unlink(path);
    pid_t pid = spawn(argv, path, as_service_user);
    int st = -1;
    if (pid > 0)
        waitpid(pid, &st, 0);
    if (status != NULL)
        *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0;
    if (f != NULL) {
        FILE *out = open_memstream(&buf, &len);
        int ch;
        while ((ch = fgetc(f)) != EOF)
            fputc(ch, out);
        fclose(out);
        fclose(f);
    }
    unlink(path);
    return buf;
}

/* ------------------------------------------------------------- configs */

static int file_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, ch;
    while (f != NULL && (ch = fgetc(f)) != EOF)
        n += ch == '\n';
    if (f != NULL)
        fclose(f);
    return n;
}

bool ap_write_configs(ap_scen_t *s, const char *tag, const ap_opts_t *o, int mongo_port)
{
    memset(s, 0, sizeof *s);
    s->sup = s->httpd = -1;
    snprintf(s->dir, sizeof s->dir, "/tmp/msup-apache-XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        return false;
    snprintf(s->segment, sizeof s->segment, "%s", msup_test_segment_name(tag));
    snprintf(s->msconf, sizeof s->msconf, "%s/mongosup.conf", s->dir);
    snprintf(s->httpdconf, sizeof s->httpdconf, "%s/httpd.conf", s->dir);
    snprintf(s->errlog, sizeof s->errlog, "%s/error.log", s->dir);
    snprintf(s->suplog, sizeof s->suplog, "%s/mongosupd.log", s->dir);
    snprintf(s->vglog, sizeof s->vglog, "%s/valgrind.log", s->dir);
    s->single_under_valgrind = o->single_under_valgrind;
    s->port = msup_test_free_port();
    uid_t uid;
    gid_t gid;
    const char *user = NULL;
    bool switch_user = service_user(&uid, &gid, &user);
    if (switch_user && chown(s->dir, uid, gid) != 0)
        return false;

    FILE *f = fopen(s->msconf, "w");
    if (f == NULL)
        return false;
    char group[64] = "";
    if (switch_user)
        snprintf(group, sizeof group, " group = \"%u\"; mode = \"0660\";", (unsigned)gid);
    fprintf(f,
            "# mongosup configuration of an apache_test scenario\n"
            "segment = { name = \"%s\"; max_workers = %u;%s };\n"
            "supervisor = { drain_timeout_ms = %u; escalate = \"none\"; reap_interval_ms = 50;\n"
            "  heartbeat_interval_ms = 100; heartbeat_timeout_ms = %u; };\n"
            "default_environment = \"test\";\n"
            "defaults = { check_interval_ms = %u; check_timeout_ms = %u; check_fastinter_ms = 100;\n"
            "  check_downinter_ms = 100; rise = 1; fall = %u; reconnect_window_ms = 200;\n"
            "  reconnect_min_interval_ms = 0; server_selection_timeout_ms = %u; connect_timeout_ms = %u;\n"
            "  wait_queue_timeout_ms = %u; %s };\n"
            "environments = { test = { clusters = {\n"
            "  users = { mongo_uri = \"mongodb://127.0.0.1:%d/demo\"; };\n"
            "  analytics = { mongo_uri = \"mongodb://127.0.0.1:%d/demo\"; };\n"
            "}; }; };\n",
            s->segment, o->max_workers ? o->max_workers : 32u, group, o->drain_timeout_ms ? o->drain_timeout_ms : 3000u,
            AP_HEARTBEAT_TIMEOUT_MS, AP_CHECK_INTERVAL_MS, AP_CHECK_TIMEOUT_MS, AP_CHECK_FALL, AP_SELECTION_TIMEOUT_MS, AP_CONNECT_TIMEOUT_MS,
            AP_SELECTION_TIMEOUT_MS, o->cluster_extra ? o->cluster_extra : "", mongo_port, mongo_port);
    if (fclose(f) != 0 || (switch_user && chown(s->msconf, uid, gid) != 0))
        return false;

    f = fopen(s->httpdconf, "w");
    if (f == NULL)
        return false;
    fprintf(f,
            "# httpd.conf of an apache_test scenario\n"
            "ServerRoot \"%s\"\n"
            "DefaultRuntimeDir \"%s\"\n"
            "LoadModule mpm_prefork_module %s/mod_mpm_prefork.so\n"
            "LoadModule authz_core_module %s/mod_authz_core.so\n"
            "LoadModule mongosup_module %s\n"
            "Listen 127.0.0.1:%d\n"
            "ServerName 127.0.0.1\n"
            "PidFile \"%s/httpd.pid\"\n"
            "ErrorLog \"%s\"\n"
            "LogLevel warn mongosup:info\n",
            s->dir, s->dir, APACHE_LIBEXECDIR, APACHE_LIBEXECDIR, built(MODULE_SO), s->port, s->dir, s->errlog);
    if (switch_user)
        fprintf(f, "User %s\nGroup #%u\n", user, (unsigned)gid);
    fputs("StartServers 2\nMinSpareServers 2\nMaxSpareServers 4\nServerLimit 8\nMaxRequestWorkers 4\n"
          "GracefulShutdownTimeout 15\nMongosupDrainTimeout 1000\nMongosupRetryAfter 3\n", f);
    fputs(o->httpd_extra ? o->httpd_extra : "", f);
    fputs("\n", f);
    if (fclose(f) != 0)
        return false;
    /* MongosupConfig's line is remembered: configtest must name it. */
    s->config_line = file_lines(s->httpdconf) + 1;
    f = fopen(s->httpdconf, "a");
    if (f == NULL)
        return false;
    fprintf(f,
            "MongosupConfig \"%s\"\n"
            "<Location \"/\">\n  SetHandler mongosup-demo\n</Location>\n"
            "<Location \"/mongosup-status\">\n  SetHandler mongosup-status\n</Location>\n",
            s->msconf);
    return fclose(f) == 0;
}

/* ------------------------------------------------------------ lifecycle */

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static bool port_answers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

bool ap_httpd_start(ap_scen_t *s)
{
    const char *argv[] = {APACHE2_BIN, "-f", s->httpdconf, "-DFOREGROUND", NULL};
    /* -X: Apache serves in its one process (child_init included), which
     * memcheck can follow without tracing a fork. */
    char logopt[160];
    snprintf(logopt, sizeof logopt, "--log-file=%s", s->vglog);
    const char *vgargv[] = {VALGRIND_BIN, "--error-exitcode=99", "--leak-check=full",
                            "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
                            "--num-callers=30", "--fair-sched=yes", "--vgdb=no", "--suppressions=" VALGRIND_SUPP, logopt,
                            APACHE2_BIN, "-X", "-f", s->httpdconf, NULL};
    s->httpd = spawn(s->single_under_valgrind ? vgargv : argv, s->errlog, false);
    /* Memcheck starting apache2, the driver and the module took over 60 s
     * at load 90 on two cores: deadlines, not expected times. */
    uint64_t end = ap_now_ms() + (s->single_under_valgrind ? 300000 : 30000);
    while (ap_now_ms() < end) {
        if (port_answers(s->port))
            return true;
        if (waitpid(s->httpd, NULL, WNOHANG) == s->httpd) {
            s->httpd = -1;
            return false;
        }
        ap_sleep_ms(20);
    }
    return false;
}

int ap_httpd_ctl(const ap_scen_t *s, const char *action)
{
    const char *argv[] = {APACHE2_BIN, "-f", s->httpdconf, "-k", action, NULL};
    int st = -1;
    free(run_capture(argv, false, &st));
    return st;
}

int ap_httpd_wait(ap_scen_t *s, unsigned ms)
{
    int st = wait_pid(s->httpd, ms);
    if (st != -1)
        s->httpd = -1;
    return st;
}

bool ap_seed_user(const ap_scen_t *s, long id, const char *name)
{
    char *uri = test_peer_uri_with(s->peer, "serverSelectionTimeoutMS=2000");
    mongoc_client_t *c = mongoc_client_new(uri);
    free(uri);
    if (c == NULL)
        return false;
    mongoc_collection_t *coll = mongoc_client_get_collection(c, "demo", "users");
    bson_t *doc = BCON_NEW("_id", BCON_INT64(id), "name", BCON_UTF8(name));
    bson_error_t err;
    bool ok = mongoc_collection_insert_one(coll, doc, NULL, NULL, &err);
    if (!ok)
        fprintf(stderr, "seed: %s\n", err.message);
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(c);
    return ok;
}

static bool start_supervisor(ap_scen_t *s)
{
    const char *argv[] = {built("supervisor/mongosupd"), "-c", s->msconf, NULL};
    s->sup = spawn(argv, s->suplog, false); /* root: see service_user */
    return s->sup > 0 && ap_wait_state(s, "users", "UP", 10000) && ap_wait_state(s, "analytics", "UP", 10000);
}

bool ap_start(ap_scen_t *s, const char *tag, const ap_opts_t *o)
{
    unsigned failures_at_start = CU_get_number_of_failures();
    test_peer_t *peer = test_peer_start("standalone", 1, NULL);
    CU_ASSERT_PTR_NOT_NULL(peer);
    if (peer == NULL)
        return false;
    bool ok = ap_write_configs(s, tag, o, test_peer_port(peer, 0)); /* clears *s */
    s->failures_at_start = failures_at_start;
    s->peer = peer;
    CU_ASSERT(ok);
    ok = ok && ap_seed_user(s, 1, "ada");
    CU_ASSERT(ok);
    if (ok && !o->no_supervisor) {
        ok = start_supervisor(s);
        CU_ASSERT(ok);
        if (!ok)
            fprintf(stderr, "mongosupd did not mark the clusters UP (log %s)\n", s->suplog);
    }
    if (ok) {
        ok = ap_httpd_start(s);
        CU_ASSERT(ok);
        if (!ok)
            fprintf(stderr, "apache2 did not start (log %s)\n", s->errlog);
    }
    if (ok) {
        ok = ap_wait_attached(s, o->single_under_valgrind ? 1 : 2, o->single_under_valgrind ? 120000 : 30000);
        CU_ASSERT(ok);
    }
    if (!ok)
        ap_stop(s);
    return ok;
}

/* The last lines of a log, to stderr: a scenario that failed in CI leaves
 * nothing else behind to read. */
static void show_tail(const char *path, int lines)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char *ring[64] = {0};
    char buf[512];
    int n = 0;
    lines = lines > 64 ? 64 : lines;
    while (fgets(buf, sizeof buf, f) != NULL) {
        free(ring[n % lines]);
        ring[n % lines] = strdup(buf);
        n++;
    }
    fclose(f);
    fprintf(stderr, "---- last lines of %s\n", path);
    for (int i = n > lines ? n - lines : 0; i < n; i++)
        fputs(ring[i % lines] ? ring[i % lines] : "", stderr);
    for (int i = 0; i < lines; i++)
        free(ring[i]);
}

void ap_stop(ap_scen_t *s)
{
    if (getenv("MONGOSUP_TEST_KEEP") != NULL)
        fprintf(stderr, "kept %s\n", s->dir);
    if (CU_get_number_of_failures() > s->failures_at_start) {
        show_tail(s->errlog, 30);
        show_tail(s->suplog, 30);
    }
    stop_pid(&s->httpd, 10000);
    stop_pid(&s->sup, 10000);
    test_peer_stop(&s->peer);
    char name[80];
    shm_unlink(s->segment);
    snprintf(name, sizeof name, "%s.stats", s->segment);
    shm_unlink(name);
    if (s->dir[0] != '\0' && getenv("MONGOSUP_TEST_KEEP") == NULL)
        remove_tree(s->dir);
}

/* ------------------------------------------------------------- segment */

json_object *ap_snapshot(const ap_scen_t *s)
{
    const char *argv[] = {built("tools/mongosup-top"), "-n", s->segment, "--json", NULL};
    int st = -1;
    char *out = run_capture(argv, true, &st);
    json_object *o = st == 0 && out != NULL ? json_tokener_parse(out) : NULL;
    free(out);
    return o;
}

static json_object *cluster_of(json_object *snap, const char *name)
{
    json_object *clusters;
    if (snap == NULL || !json_object_object_get_ex(snap, "clusters", &clusters))
        return NULL;
    for (size_t i = 0; i < json_object_array_length(clusters); i++) {
        json_object *c = json_object_array_get_idx(clusters, i), *n;
        if (json_object_object_get_ex(c, "name", &n) && strcmp(json_object_get_string(n), name) == 0)
            return c;
    }
    return NULL;
}

int64_t ap_cluster_num(json_object *snap, const char *cluster, const char *path)
{
    json_object *o = cluster_of(snap, cluster);
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *key = strtok_r(buf, ".", &save); o != NULL && key != NULL;
         key = strtok_r(NULL, ".", &save))
        if (!json_object_object_get_ex(o, key, &o))
            o = NULL;
    return o != NULL ? json_object_get_int64(o) : -1;
}

int64_t ap_slots_reaped(json_object *snap)
{
    json_object *sup, *n;
    return snap != NULL && json_object_object_get_ex(snap, "supervisor", &sup) &&
                   json_object_object_get_ex(sup, "slots_reaped", &n)
               ? json_object_get_int64(n)
               : -1;
}

const char *ap_cluster_state(json_object *snap, const char *cluster)
{
    json_object *c = cluster_of(snap, cluster), *st;
    return c != NULL && json_object_object_get_ex(c, "state", &st) ? json_object_get_string(st) : "";
}

bool ap_wait_state(const ap_scen_t *s, const char *cluster, const char *state, unsigned ms)
{
    uint64_t end = ap_now_ms() + ms;
    do {
        json_object *snap = ap_snapshot(s);
        bool ok = snap != NULL && strcmp(ap_cluster_state(snap, cluster), state) == 0;
        json_object_put(snap);
        if (ok)
            return true;
        ap_sleep_ms(50);
    } while (ap_now_ms() < end);
    return false;
}

int ap_worker_pids(json_object *snap, const char *state, pid_t *pids, int max)
{
    json_object *workers;
    int n = 0;
    if (snap == NULL || !json_object_object_get_ex(snap, "workers", &workers))
        return 0;
    for (size_t i = 0; i < json_object_array_length(workers); i++) {
        json_object *w = json_object_array_get_idx(workers, i), *st, *pid;
        if (json_object_object_get_ex(w, "state", &st) &&
            (state == NULL || strcmp(json_object_get_string(st), state) == 0) &&
            json_object_object_get_ex(w, "pid", &pid) && n < max)
            pids[n++] = (pid_t)json_object_get_int(pid);
    }
    return n;
}

int ap_children(const ap_scen_t *s, pid_t *pids, int max)
{
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        const char *close_paren = strrchr(buf, ')');
        char state;
        int ppid;
        if (close_paren != NULL && sscanf(close_paren + 1, " %c %d", &state, &ppid) == 2 && ppid == s->httpd &&
            state != 'Z' && n < max)
            pids[n++] = (pid_t)atoi(e->d_name);
    }
    if (d != NULL)
        closedir(d);
    return n;
}

static bool same_set(const pid_t *a, int na, const pid_t *b, int nb)
{
    if (na != nb)
        return false;
    for (int i = 0; i < na; i++) {
        bool found = false;
        for (int j = 0; j < nb && !found; j++)
            found = a[i] == b[j];
        if (!found)
            return false;
    }
    return true;
}

bool ap_wait_attached(const ap_scen_t *s, int min, unsigned ms)
{
    uint64_t end = ap_now_ms() + ms;
    do {
        pid_t kids[64], slots[64];
        int nk = s->single_under_valgrind ? 1 : ap_children(s, kids, 64);
        kids[0] = s->single_under_valgrind ? s->httpd : kids[0];
        json_object *snap = ap_snapshot(s);
        int na = ap_worker_pids(snap, "ACTIVE", slots, 64);
        int ns = ap_worker_pids(snap, NULL, slots, 64); /* na == ns: no EXITED or REAPING slot left */
        json_object_put(snap);
        if (nk >= min && na == ns && same_set(kids, nk, slots, ns))
            return true;
        ap_sleep_ms(50);
    } while (ap_now_ms() < end);
    return false;
}

/* ------------------------------------------------------------------ ab */

static long ab_field(const char *out, const char *label)
{
    const char *p = out ? strstr(out, label) : NULL;
    return p != NULL ? strtol(p + strlen(label), NULL, 10) : 0;
}

/* "  99%    12" / " 100%    15 (longest request)" in ab's percentile table. */
static long ab_percentile(const char *out, const char *pct)
{
    char label[16];
    snprintf(label, sizeof label, "%s ", pct);
    for (const char *p = out; p != NULL && (p = strstr(p, label)) != NULL; p++) {
        const char *q = p;
        while (q > out && q[-1] == ' ')
            q--;
        if (q == out || q[-1] == '\n')
            return strtol(p + strlen(label), NULL, 10);
    }
    return -1;
}

static void ab_argv(const ap_scen_t *s, long n, int c, const char *path, bool post, const char **argv, char *nbuf,
                    char *cbuf, char *url, char *body)
{
    snprintf(nbuf, 24, "%ld", n);
    snprintf(cbuf, 24, "%d", c);
    snprintf(url, 256, "http://127.0.0.1:%d%s", s->port, path);
    snprintf(body, 160, "%s/event.json", s->dir);
    int i = 0;
    argv[i++] = AB_BIN;
    argv[i++] = "-q";
    argv[i++] = "-r"; /* count socket errors instead of giving up */
    argv[i++] = "-s";
    argv[i++] = "20";
    argv[i++] = "-n";
    argv[i++] = nbuf;
    argv[i++] = "-c";
    argv[i++] = cbuf;
    if (post) {
        FILE *f = fopen(body, "w");
        if (f != NULL) {
            fputs("{\"kind\":\"click\"}\n", f);
            fclose(f);
        }
        argv[i++] = "-p";
        argv[i++] = body;
        argv[i++] = "-T";
        argv[i++] = "application/json";
    }
    argv[i++] = url;
    argv[i] = NULL;
}

static void ab_parse(const char *out, int status, ab_result_t *r)
{
    r->status = status;
    r->complete = ab_field(out, "Complete requests:");
    r->failed = ab_field(out, "Failed requests:");
    r->non2xx = ab_field(out, "Non-2xx responses:");
    r->p50_ms = ab_percentile(out, "50%");
    r->p99_ms = ab_percentile(out, "99%");
    r->max_ms = ab_percentile(out, "100%");
    if (status != 0 || r->complete == 0)
        fprintf(stderr, "ab (exit %d):\n%s\n", status, out ? out : "(no output)");
}

bool ap_ab(const ap_scen_t *s, long n, int c, const char *path, bool post, ab_result_t *r)
{
    const char *argv[20];
    char nbuf[24], cbuf[24], url[256], body[160];
    ab_argv(s, n, c, path, post, argv, nbuf, cbuf, url, body);
    int st = -1;
    char *out = run_capture(argv, false, &st);
    ab_parse(out, st, r);
    free(out);
    return st == 0;
}

pid_t ap_ab_start(const ap_scen_t *s, long n, int c, const char *path, bool post, const char *outfile)
{
    const char *argv[20];
    char nbuf[24], cbuf[24], url[256], body[160];
    ab_argv(s, n, c, path, post, argv, nbuf, cbuf, url, body);
    unlink(outfile);
    return spawn(argv, outfile, false);
}

bool ap_ab_finish(pid_t pid, const char *outfile, ab_result_t *r)
{
    int st = -1;
    waitpid(pid, &st, 0);
    FILE *f = fopen(outfile, "r");
    char *buf = NULL;
    size_t len = 0;
    if (f != NULL) {
        FILE *out = open_memstream(&buf, &len);
        int ch;
        while ((ch = fgetc(f)) != EOF)
            fputc(ch, out);
        fclose(out);
        fclose(f);
    }
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    ab_parse(buf, status, r);
    free(buf);
    return status == 0;
}

/* ---------------------------------------------------------------- http */

int ap_http(const ap_scen_t *s, const char *method, const char *path, char **resp, long *elapsed_ms)
{
    uint64_t t0 = ap_now_ms();
    if (resp != NULL)
        *resp = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {60, 0}; /* a deadline: memcheck's first request at a high load */
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[512];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n", method, path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    char chunk[4096];
    ssize_t got;
    while ((got = read(fd, chunk, sizeof chunk)) > 0)
        fwrite(chunk, 1, (size_t)got, out);
    fclose(out);
    close(fd);
    int status = -1;
    if (buf != NULL && sscanf(buf, "HTTP/%*s %d", &status) != 1)
        status = -1;
    if (elapsed_ms != NULL)
        *elapsed_ms = (long)(ap_now_ms() - t0);
    if (resp != NULL)
        *resp = buf;
    else
        free(buf);
    return status;
}

bool ap_header(const char *resp, const char *name, char *out, size_t n)
{
    char needle[64];
    snprintf(needle, sizeof needle, "\r\n%s: ", name);
    const char *p = resp ? strstr(resp, needle) : NULL;
    if (p == NULL)
        return false;
    p += strlen(needle);
    size_t len = strcspn(p, "\r\n");
    snprintf(out, n, "%.*s", (int)len, p);
    return true;
}
