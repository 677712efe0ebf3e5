/* supervisor_daemon_test.c: mongosupd as a real process against the test peer: health, reaper, reload, shutdown. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <mongoc/mongoc.h>

#include "../lib/config.h" /* not autoconf's config.h */
#include "ctlclient.h"
#include "mongosup.h"
#include "peer/peer.h"
#include "segment.h"
#include "segment_fixture.h"
#include "slots.h"
#include "snapshot.h"
#include "stats.h"
#include "testmain.h"

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static char self_exe[4096];
static char tmpdir[64];

/* Time bounds widen under valgrind (the test binary runs slower; the
 * daemon itself runs natively unless MONGOSUP_VALGRIND_DAEMON is set). */
static bool daemon_under_valgrind(void)
{
    const char *v = getenv("MONGOSUP_VALGRIND_DAEMON");
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

static unsigned slack(unsigned ms)
{
    return msup_test_under_valgrind() || daemon_under_valgrind() ? ms * 3 + 2000 : ms;
}

static const char *daemon_path(void)
{
    static char path[4096];
    const char *b = getenv("MONGOSUP_TEST_BUILDDIR");
    if (b != NULL && b[0] != '\0')
        snprintf(path, sizeof path, "%s/supervisor/mongosupd", b);
    else
        snprintf(path, sizeof path, "%s", MONGOSUPD_PATH);
    return path;
}

static char *path_in_tmp(const char *name)
{
    static char bufs[64][600]; /* a ring: callers keep a few paths at once */
    static int next;
    char *p = bufs[next++ % 64];
    snprintf(p, 600, "%s/%s", tmpdir, name);
    return p;
}

static bool file_contains(const char *path, const char *needle)
{
    char *text = msup_test_read_file(path);
    bool found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

/* A log line may follow the state the test saw: give it timeout_ms. */
static bool wait_log_within(const char *path, const char *needle, unsigned timeout_ms)
{
    uint64_t deadline = msup_test_now_ms() + timeout_ms;
    while (!file_contains(path, needle)) {
        if (msup_test_now_ms() >= deadline)
            return false;
        msup_test_sleep_ms(10);
    }
    return true;
}

/* ... a moment, for a line that follows an event the test saw. */
static bool wait_log(const char *path, const char *needle)
{
    return wait_log_within(path, needle, slack(1000));
}

static void write_file(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_file(const char *path, const char *fmt, ...)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

/* The control socket write_config gives a segment's supervisor. */
static const char *control_socket_of(const char *segment)
{
    char name[128];
    snprintf(name, sizeof name, "%s.sock", segment + 1);
    return path_in_tmp(name);
}

/* A request on the supervisor's control socket, as mongosupctl sends it;
 * true when the verdict is "ok". */
static bool control_request(const char *segment, const char *line)
{
    msup_ctl_answer_t answer;
    mongosup_error_t err;
    msup_ctl_status_t st = msup_ctl_request(control_socket_of(segment), line, slack(5000), &answer, &err);
    if (st != MSUP_CTL_ANSWER_OK)
        fprintf(stderr, "\n%s: %s\n", line, st == MSUP_CTL_ANSWER_ERROR ? answer.verdict : err.message);
    msup_ctl_answer_free(&answer);
    return st == MSUP_CTL_ANSWER_OK;
}

/* A configuration: one segment, fast checks, and the given cluster blocks. */
static void write_config(const char *path, const char *segment, const char *supervisor_extra, const char *clusters)
{
    write_file(path,
               "segment = { name = \"%s\"; max_workers = 16; max_clusters = 4; };\n"
               "supervisor = { log_level = \"info\"; heartbeat_interval_ms = 100; reap_interval_ms = 200;\n"
               "               control_socket = \"%s\"; %s };\n"
               "default_environment = \"test\";\n"
               "defaults = { check_interval_ms = 400; check_fastinter_ms = 200; check_downinter_ms = 300;\n"
               "             check_timeout_ms = 300; rise = 2; fall = 3; reconnect_window_ms = 500;\n"
               "             reconnect_min_interval_ms = 0; wait_queue_timeout_ms = 2000;\n"
               "             server_selection_timeout_ms = 1000; connect_timeout_ms = 1000;\n"
               "             socket_timeout_ms = 1000; heartbeat_frequency_ms = 500; };\n"
               "environments = { test = { clusters = { %s }; }; };\n",
               segment, control_socket_of(segment), supervisor_extra ? supervisor_extra : "", clusters);
}

/* What the daemon sees in a private mount namespace (root only): syslog(3)
 * talks to /dev/log, and the resolver reads /etc/resolv.conf, both fixed
 * paths; a namespace points them at the test's own socket and file without
 * touching the machine's. */
typedef struct isolation {
    const char *dev_log;     /* /dev/log becomes a symlink to this socket path */
    const char *resolv_conf; /* bind-mounted over /etc/resolv.conf */
} isolation_t;

static bool bind_file(const char *from, const char *to)
{
    int fd = open(to, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return false;
    close(fd);
    return mount(from, to, "none", MS_BIND, NULL) == 0;
}

/* In the child, before exec: false when the namespace cannot be made. */
static bool isolate(const isolation_t *iso)
{
    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0)
        return false;
    if (iso->resolv_conf != NULL && mount(iso->resolv_conf, "/etc/resolv.conf", "none", MS_BIND, NULL) != 0)
        return false;
    if (iso->dev_log != NULL) {
        /* A small /dev: the devices mongosupd uses, the real /dev/shm (the
         * segment), and log -> the test's socket. */
        char dev[640], path[700];
        snprintf(dev, sizeof dev, "%s/nsdev", tmpdir);
        mkdir(dev, 0755);
        if (mount("tmpfs", dev, "tmpfs", 0, "mode=755") != 0)
            return false;
        static const char *const nodes[] = {"null", "zero", "random", "urandom"};
        for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
            char from[64];
            snprintf(from, sizeof from, "/dev/%s", nodes[i]);
            snprintf(path, sizeof path, "%s/%s", dev, nodes[i]);
            if (!bind_file(from, path))
                return false;
        }
        snprintf(path, sizeof path, "%s/shm", dev);
        if (mkdir(path, 01777) != 0 || mount("/dev/shm", path, "none", MS_BIND | MS_REC, NULL) != 0)
            return false;
        snprintf(path, sizeof path, "%s/fd", dev);
        if (symlink("/proc/self/fd", path) != 0)
            return false;
        snprintf(path, sizeof path, "%s/log", dev);
        if (symlink(iso->dev_log, path) != 0 || mount(dev, "/dev", "none", MS_MOVE, NULL) != 0)
            return false;
    }
    return true;
}

#define ISOLATION_FAILED 126

/* Whether isolate() works here (root, namespaces allowed).  As root it
 * must (CI runs as root), unless MONGOSUP_TEST_NO_NAMESPACES=1 says this
 * machine forbids them: a test that silently skipped would prove nothing. */
static bool isolation_available(void)
{
    static int known = -1;
    const char *no = getenv("MONGOSUP_TEST_NO_NAMESPACES");
    if (no != NULL && strcmp(no, "1") == 0)
        return false;
    if (known < 0) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(unshare(CLONE_NEWNS) == 0 && mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == 0 ? 0 : 1);
        int st = 0;
        known = pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (!known && geteuid() == 0)
            fprintf(stderr, "\n    a mount namespace cannot be made as root: set MONGOSUP_TEST_NO_NAMESPACES=1 "
                            "to skip what needs one ");
        CU_ASSERT_TRUE(known || geteuid() != 0);
    }
    return known == 1;
}

/* Starts mongosupd with stdout+stderr into logpath (in a namespace when iso
 * is not NULL).  args: NULL-terminated. */
static pid_t spawn_isolated(const char *logpath, const char *const *args, const isolation_t *iso)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (iso != NULL && !isolate(iso))
            _exit(ISOLATION_FAILED);
        const char *argv[32];
        int n = 0;
        if (daemon_under_valgrind()) {
            argv[n++] = "valgrind";
            argv[n++] = "--error-exitcode=1";
            argv[n++] = "--leak-check=full";
            argv[n++] = "--errors-for-leak-kinds=definite,indirect";
            argv[n++] = "-q";
            argv[n++] = "--fair-sched=yes"; /* as make check-valgrind: no thread starves */
            argv[n++] = "--suppressions=" VALGRIND_SUPP;
        }
        argv[n++] = daemon_path();
        for (int i = 0; args[i] != NULL && n < 30; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static pid_t spawn(const char *logpath, const char *const *args)
{
    return spawn_isolated(logpath, args, NULL);
}

static pid_t start_daemon(const char *conf, const char *logpath)
{
    const char *args[] = {"-c", conf, NULL};
    return spawn(logpath, args);
}

/* Exit status of pid within timeout_ms, or -1 (then it is killed). */
static int wait_exit(pid_t pid, unsigned timeout_ms)
{
    uint64_t deadline = msup_test_now_ms() + timeout_ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (msup_test_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        msup_test_sleep_ms(10);
    }
}

/* Runs the daemon with args to completion; its output lands in logpath. */
static int run_daemon(const char *logpath, const char *const *args)
{
    unlink(logpath);
    return wait_exit(spawn(logpath, args), slack(5000));
}

static int count_lines(const char *path)
{
    char *text = msup_test_read_file(path);
    int n = 0;
    for (char *p = text; *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

/* Maps the segment as soon as it exists and a supervisor runs it. */
/* How long mongosupd may take to publish its segment: a deadline, not a
 * bound.  Under memcheck on a loaded machine its start-up alone took 17 s
 * and 57 s (the config written at 18:24:00.6, its first log line at
 * 18:24:17.9), past the 11 s that slack(3000) allowed. */
static unsigned start_deadline_ms(void)
{
    return msup_test_under_valgrind() || daemon_under_valgrind() ? 120000 : 30000;
}

static bool open_segment(const char *name, msup_segment_t *seg, unsigned timeout_ms)
{
    uint64_t start = msup_test_now_ms(), deadline = start + timeout_ms;
    mongosup_error_t err = {0};
    while (msup_test_now_ms() < deadline) {
        if (msup_segment_open_readonly(name, (uid_t)-1, seg, &err)) {
            while (msup_test_now_ms() < deadline) {
                if (atomic_load(&msup_segment_hdr(seg)->phase) == MSUP_PHASE_RUNNING)
                    return true;
                msup_test_sleep_ms(10);
            }
            printf("\n    segment %s: phase %u, not RUNNING, after %u ms ", name,
                   (unsigned)atomic_load(&msup_segment_hdr(seg)->phase), timeout_ms);
            msup_segment_close(seg);
            return false;
        }
        msup_test_sleep_ms(10);
    }
    printf("\n    segment %s not opened in %u ms: %s ", name, timeout_ms, err.message);
    return false;
}

static msup_cluster_row_t *row_named(const msup_segment_t *seg, const char *name)
{
    int i = msup_segment_find_cluster(seg, name);
    return i < 0 ? NULL : msup_segment_row(seg, (uint32_t)i);
}

/* Milliseconds until the cluster's health is `want`, or -1 after timeout. */
static long wait_health(const msup_segment_t *seg, const char *cluster, uint32_t want, unsigned timeout_ms)
{
    uint64_t start = msup_test_now_ms(), deadline = start + timeout_ms;
    while (msup_test_now_ms() < deadline) {
        msup_cluster_row_t *row = row_named(seg, cluster);
        if (row != NULL && atomic_load(&row->health) == want)
            return (long)(msup_test_now_ms() - start);
        msup_test_sleep_ms(5);
    }
    return -1;
}

/* Sum of an op class over retired + live slots for a cluster row. */
static uint64_t total_ops(const msup_segment_t *seg, uint32_t row, enum msup_op_class cls)
{
    msup_snapshot_t snap;
    mongosup_error_t err;
    if (!msup_snapshot_take(seg, &snap, &err))
        return 0;
    uint64_t v = 0;
    for (uint32_t i = 0; i < snap.cluster_count; i++)
        if (snap.clusters[i].index == row)
            v = snap.clusters[i].totals.ops[cls];
    msup_snapshot_free(&snap);
    return v;
}

static int slot_of_pid(const msup_segment_t *seg, pid_t pid)
{
    for (uint32_t i = 0; i < seg->max_workers; i++) {
        msup_slot_t *s = msup_segment_slot(seg, i);
        uint32_t st = atomic_load(&s->state);
        if ((st == MSUP_SLOT_ACTIVE || st == MSUP_SLOT_EXITED) && s->pid == pid)
            return (int)i;
    }
    return -1;
}

static int wait_slot_of_pid(const msup_segment_t *seg, pid_t pid, unsigned timeout_ms)
{
    uint64_t deadline = msup_test_now_ms() + timeout_ms;
    int s;
    while ((s = slot_of_pid(seg, pid)) < 0 && msup_test_now_ms() < deadline)
        msup_test_sleep_ms(10);
    return s;
}

/* ------------------------------------------------------------------ */
/* Worker processes: this binary re-executed with --worker MODE, so that   */
/* under valgrind they run natively (trace-children=no) and never share    */
/* the test's driver state.                                                */

static volatile sig_atomic_t worker_stop;
static void on_term(int sig)
{
    (void)sig;
    worker_stop = 1;
}

/* --worker MODE CONFIG CLUSTER RESULTFILE
 *  ping:     checkout + ping + checkin every 20 ms until SIGTERM or draining;
 *  find:     the same with a find (the supervisor's checks never run one);
 *            writes "ok fail circuit maxfail_us" at the end.
 *  insert:   inserts (each one slow: the peer delays them) until draining;
 *            writes the number of acknowledged inserts.
 *  stubborn: attaches, ignores SIGTERM and draining, never detaches;
 *  usr1:     attaches and ignores draining; SIGUSR1 (the supervisor's
 *            shutdown_signal) makes it detach, write "SIGUSR1" and exit. */
static int worker_main(int argc, char **argv)
{
    if (argc < 6)
        return 2;
    const char *mode = argv[2], *conf = argv[3], *cluster = argv[4], *result = argv[5];
    mongoc_init();
    mongosup_error_t err;
    mongosup_config_t *cfg = mongosup_config_load(conf, NULL, &err);
    if (cfg == NULL) {
        fprintf(stderr, "worker: %s\n", err.message);
        return 3;
    }
    if (strcmp(mode, "usr1") == 0)
        signal(SIGUSR1, on_term); /* before the slot shows: the test signals once it sees it */
    mongosup_t *h = mongosup_attach(cfg, &err);
    if (h == NULL) {
        fprintf(stderr, "worker: %s\n", err.message);
        return 4;
    }
    if (strcmp(mode, "stubborn") == 0) {
        signal(SIGTERM, SIG_IGN);
        for (;;)
            pause();
    }
    if (strcmp(mode, "usr1") == 0) {
        while (!worker_stop)
            msup_test_sleep_ms(10);
        mongosup_detach(&h, 5000);
        FILE *f = fopen(result, "w");
        if (f != NULL) {
            fputs("SIGUSR1\n", f);
            fclose(f);
        }
        mongosup_config_destroy(&cfg);
        mongoc_cleanup();
        return 0;
    }
    signal(SIGTERM, on_term);
    unsigned long ok = 0, fail = 0, circuit = 0, max_fail_us = 0;
    int n = 0;
    while (!worker_stop && !mongosup_draining(h)) {
        uint64_t t0 = msup_mono_ns();
        mongoc_client_t *c = mongosup_checkout(h, cluster, &err);
        if (c == NULL) {
            fail++;
            /* The slowest refusal by the open circuit.  (A checkout that
             * passed the gate before the verdict may re-check its client's
             * connection, which a hung server holds up to the driver's
             * timeouts: a driver error, not a refusal.) */
            unsigned long us = (unsigned long)((msup_mono_ns() - t0) / 1000u);
            if (err.code == MONGOSUP_E_CIRCUIT_OPEN) {
                circuit++;
                if (us > max_fail_us)
                    max_fail_us = us;
            }
            if (err.code == MONGOSUP_E_SHUTTING_DOWN)
                break;
            msup_test_sleep_ms(20);
            continue;
        }
        bson_error_t berr;
        bool done;
        if (strcmp(mode, "insert") == 0) {
            /* The cluster's database_name (a run's own on a real deployment), else "test". */
            const char *db = mongosup_client_database(h, c);
            mongoc_collection_t *coll = mongoc_client_get_collection(c, db && *db ? db : "test", "ops");
            bson_t *doc = BCON_NEW("pid", BCON_INT32((int32_t)getpid()), "n", BCON_INT32(n));
            done = mongoc_collection_insert_one(coll, doc, NULL, NULL, &berr);
            bson_destroy(doc);
            mongoc_collection_destroy(coll);
        } else if (strcmp(mode, "find") == 0) {
            mongoc_collection_t *coll = mongoc_client_get_collection(c, "test", "ops");
            bson_t filter = BSON_INITIALIZER;
            mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, NULL, NULL);
            const bson_t *doc;
            while (mongoc_cursor_next(cur, &doc))
                ;
            done = !mongoc_cursor_error(cur, &berr);
            mongoc_cursor_destroy(cur);
            bson_destroy(&filter);
            mongoc_collection_destroy(coll);
        } else {
            bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
            done = mongoc_client_command_simple(c, "admin", cmd, NULL, NULL, &berr);
            bson_destroy(cmd);
        }
        mongosup_checkin(h, c, done ? NULL : &berr);
        if (done) {
            ok++;
            n++;
        } else {
            fail++;
        }
        if (strcmp(mode, "insert") != 0)
            msup_test_sleep_ms(20);
    }
    mongosup_detach(&h, 5000);
    FILE *f = fopen(result, "w");
    if (f != NULL) {
        if (strcmp(mode, "insert") == 0)
            fprintf(f, "%lu\n", ok);
        else
            fprintf(f, "%lu %lu %lu %lu\n", ok, fail, circuit, max_fail_us);
        fclose(f);
    }
    mongosup_config_destroy(&cfg);
    mongoc_cleanup();
    return 0;
}

static pid_t start_worker(const char *mode, const char *conf, const char *cluster, const char *result)
{
    unlink(result);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(path_in_tmp("workers.log"), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execl(self_exe, self_exe, "--worker", mode, conf, cluster, result, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void read_ping_result(const char *path, unsigned long *ok, unsigned long *fail, unsigned long *circuit,
                             unsigned long *max_fail_us)
{
    *ok = *fail = *circuit = *max_fail_us = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fscanf(f, "%lu %lu %lu %lu", ok, fail, circuit, max_fail_us) != 4)
        *ok = 0;
    fclose(f);
}

/* ------------------------------------------------------------------ */
/* Scenario set-up and tear-down shared by the daemon tests              */

/* A running mongosupd with its configuration, log and mapped segment. */
typedef struct scenario {
    char seg_name[64];
    char conf[600];
    char log[600];
    pid_t sup;
    msup_segment_t seg;
} scenario_t;

/* Writes TAG.conf for segment TAG, starts mongosupd logging to TAG.log and maps its segment. */
static void scenario_start(scenario_t *s, const char *tag, const char *supervisor_extra, const char *clusters)
{
    char name[64];
    snprintf(s->seg_name, sizeof s->seg_name, "%s", msup_test_segment_name(tag));
    snprintf(name, sizeof name, "%s.conf", tag);
    snprintf(s->conf, sizeof s->conf, "%s", path_in_tmp(name));
    write_config(s->conf, s->seg_name, supervisor_extra, clusters);
    snprintf(name, sizeof name, "%s.log", tag);
    snprintf(s->log, sizeof s->log, "%s", path_in_tmp(name));
    unlink(s->log);
    s->sup = start_daemon(s->conf, s->log);
    if (!open_segment(s->seg_name, &s->seg, start_deadline_ms())) {
        /* Our own child, not yet reaped: a failed start must not leave it
         * running after the test (18 were left by one loaded run). */
        kill(s->sup, SIGKILL);
        waitpid(s->sup, NULL, 0);
        CU_FAIL_FATAL("open_segment(s->seg_name, &s->seg, start_deadline_ms())");
    }
}

/* Sends SIGTERM and asserts pid exits 0 within timeout_ms. */
static void terminate_ok(pid_t pid, unsigned timeout_ms)
{
    kill(pid, SIGTERM);
    CU_ASSERT_EQUAL(wait_exit(pid, timeout_ms), 0);
}

/* Stops mongosupd cleanly (exit 0) and unmaps the segment. */
static void scenario_stop(scenario_t *s)
{
    terminate_ok(s->sup, slack(5000));
    msup_segment_close(&s->seg);
}

/* SIGKILLs pid and asserts it died of it. */
static void kill_hard(pid_t pid)
{
    kill(pid, SIGKILL);
    CU_ASSERT_EQUAL(wait_exit(pid, 2000), 128 + SIGKILL);
}

/* Waits until mongosupd's heartbeat in seg is past `hb` (it beats every
 * 100 ms here: a deadline, since a loaded machine may not run it for a
 * while); true when it moved. */
static bool wait_heartbeat_past(const msup_segment_t *seg, uint64_t hb, unsigned timeout_ms)
{
    uint64_t t0 = msup_test_now_ms();
    while (atomic_load(&msup_segment_hdr(seg)->heartbeat_mono_ns) <= hb && msup_test_now_ms() - t0 < timeout_ms)
        msup_test_sleep_ms(10);
    return atomic_load(&msup_segment_hdr(seg)->heartbeat_mono_ns) > hb;
}

/* Sends SIGTERM to mongosupd; its exit status, the time it took in *took_ms. */
static int term_and_time(pid_t sup, unsigned timeout_ms, long *took_ms)
{
    uint64_t t0 = msup_test_now_ms();
    kill(sup, SIGTERM);
    int rc = wait_exit(sup, timeout_ms);
    *took_ms = (long)(msup_test_now_ms() - t0);
    return rc;
}

/* A standalone test peer (the test stops if none starts). */
static test_peer_t *start_standalone_peer(void)
{
    test_peer_t *peer = test_peer_start("standalone", 1, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
    return peer;
}

/* "main = { mongo_uri = <the peer>; };" into buf. */
static void main_cluster_on(char *buf, size_t len, const test_peer_t *peer)
{
    snprintf(buf, len, "main = { mongo_uri = \"%s\"; };", test_peer_uri(peer));
}

/* A scenario whose one cluster "main" is the peer, waited UP. */
static void scenario_start_on_peer(scenario_t *s, const char *tag, const char *supervisor_extra, test_peer_t *peer)
{
    char clusters[512];
    main_cluster_on(clusters, sizeof clusters, peer);
    scenario_start(s, tag, supervisor_extra, clusters);
}

/* Asserts the cluster comes UP within timeout_ms. */
static void expect_up(const scenario_t *s, const char *cluster, unsigned timeout_ms)
{
    CU_ASSERT_TRUE(wait_health(&s->seg, cluster, MSUP_HEALTH_UP, timeout_ms) >= 0);
}

/* Starts a worker of this binary and waits for its slot (the test stops without one); the slot index. */
static int start_attached_worker(const scenario_t *s, const char *mode, const char *cluster, const char *result,
                                 pid_t *pid)
{
    *pid = start_worker(mode, s->conf, cluster, result);
    int slot = wait_slot_of_pid(&s->seg, *pid, slack(3000));
    CU_ASSERT_FATAL(slot >= 0);
    return slot;
}

/* The "stubborn" worker of a scenario (result file TAG.w): never leaves unless killed. */
static pid_t start_stubborn_worker(const scenario_t *s, const char *tag)
{
    char name[64];
    snprintf(name, sizeof name, "%s.w", tag);
    pid_t pid;
    start_attached_worker(s, "stubborn", "main", path_in_tmp(name), &pid);
    return pid;
}

/* A scenario whose cluster refuses connections, with one stubborn worker attached. */
static pid_t scenario_start_stubborn(scenario_t *s, const char *tag, const char *supervisor_extra)
{
    scenario_start(s, tag, supervisor_extra, "main = { mongo_uri = \"mongodb://127.0.0.1:1/\"; };");
    return start_stubborn_worker(s, tag);
}

/* Whether the segment file is still in /dev/shm. */
/* Whether either object of the name (control or stats) exists. */
static bool segment_file_exists(const char *seg_name)
{
    char path[128], stats[128];
    snprintf(path, sizeof path, "/dev/shm%s", seg_name);
    snprintf(stats, sizeof stats, "/dev/shm%s.stats", seg_name);
    return access(path, F_OK) == 0 || access(stats, F_OK) == 0;
}

/* Stops a ping worker (exit 0) and asserts it completed some pings; fail count in *fail. */
static void stop_ping_worker(pid_t worker, const char *result, unsigned long *fail)
{
    terminate_ok(worker, slack(5000));
    unsigned long ok, circuit, max_fail_us;
    read_ping_result(result, &ok, fail, &circuit, &max_fail_us);
    CU_ASSERT_TRUE(ok > 0);
}

/* What mongosupctl reconnect does: asks on the control socket. */
static void request_reconnect(const char *seg_name, const char *cluster)
{
    char line[128];
    snprintf(line, sizeof line, "reconnect %s", cluster);
    CU_ASSERT(control_request(seg_name, line));
}

/* Waits until the row's reconnect generation is no longer `from` (or timeout_ms since `since`). */
static uint64_t wait_generation_past(const msup_cluster_row_t *row, uint64_t from, uint64_t since, unsigned timeout_ms,
                                     unsigned poll_ms)
{
    while (atomic_load(&row->reconnect_generation) == from && msup_test_now_ms() - since < timeout_ms)
        msup_test_sleep_ms(poll_ms);
    return atomic_load(&row->reconnect_generation);
}

/* Waits (up to timeout_ms from `since`) for the worker in slot to ack generation gen of "main"; its stats there. */
static msup_stats_t *wait_reconnect_ack(const msup_segment_t *seg, int slot, uint64_t gen, uint64_t since,
                                        unsigned timeout_ms)
{
    msup_stats_t *st = msup_slot_stats(seg, (uint32_t)slot, (uint32_t)msup_segment_find_cluster(seg, "main"));
    while (atomic_load(&st->reconnect_ack) < gen && msup_test_now_ms() - since < timeout_ms)
        msup_test_sleep_ms(10);
    return st;
}

/* Rewrites the scenario's configuration with these clusters and sends SIGHUP. */
static void reload_with(const scenario_t *s, const char *clusters)
{
    write_config(s->conf, s->seg_name, NULL, clusters);
    kill(s->sup, SIGHUP);
}

/* Waits for cluster "main" to leave the map; asserts row 0 is REMOVED and the configuration generation is `gen`
 * (bumped after the rows are written: wait for both, or a slow supervisor is caught in between). */
static void expect_main_removed(const scenario_t *s, uint64_t gen)
{
    uint64_t t0 = msup_test_now_ms();
    while ((row_named(&s->seg, "main") != NULL ||
            atomic_load(&msup_segment_hdr(&s->seg)->config_generation) != gen) &&
           msup_test_now_ms() - t0 < slack(2000))
        msup_test_sleep_ms(10);
    CU_ASSERT_PTR_NULL(row_named(&s->seg, "main"));
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_row(&s->seg, 0)->row_state), MSUP_ROW_REMOVED);
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&s->seg)->config_generation), gen);
}

/* Starts a victim and a survivor ping worker (results r1, r2) and waits for both slots; the victim's slot. */
static int start_victim_and_survivor(const scenario_t *s, const char *r1, const char *r2, pid_t *victim,
                                     pid_t *survivor)
{
    *victim = start_worker("ping", s->conf, "main", r1);
    *survivor = start_worker("ping", s->conf, "main", r2);
    int vslot = wait_slot_of_pid(&s->seg, *victim, slack(3000));
    CU_ASSERT_FATAL(vslot >= 0);
    CU_ASSERT_FATAL(wait_slot_of_pid(&s->seg, *survivor, slack(3000)) >= 0);
    return vslot;
}

/* Waits until the worker in slot has counted a command on row (it started a
 * moment ago: a loaded machine may take a while to run its first ping). */
static void wait_slot_ops(const msup_segment_t *seg, int slot, uint32_t row)
{
    const msup_stats_t *st = msup_slot_stats(seg, (uint32_t)slot, row);
    uint64_t t0 = msup_test_now_ms();
    while (atomic_load(&st->ops[MSUP_OP_COMMAND]) == 0 && msup_test_now_ms() - t0 < slack(10000))
        msup_test_sleep_ms(10);
}

/* SIGKILLs the victim, asserts it is reaped in time with its counts retired (*monotonic: totals never fell). */
static void kill_and_expect_reaped(const scenario_t *s, pid_t victim, int vslot, uint32_t row, uint64_t victim_ops,
                                   uint64_t before, bool *monotonic)
{
    kill_hard(victim);
    uint64_t t0 = msup_test_now_ms();
    uint64_t last = before;
    msup_slot_t *vs = msup_segment_slot(&s->seg, (uint32_t)vslot);
    /* Reaped = FREE again (REAPING is the fold in progress). */
    while (atomic_load(&vs->state) != MSUP_SLOT_FREE && msup_test_now_ms() - t0 < slack(3000)) {
        if (monotonic != NULL) {
            uint64_t v = total_ops(&s->seg, row, MSUP_OP_COMMAND);
            *monotonic = *monotonic && v >= last;
            last = v;
        }
        msup_test_sleep_ms(5);
    }
    long reap_ms = (long)(msup_test_now_ms() - t0);
    fprintf(stderr, "\n    SIGKILLed worker reaped in %ld ms ", reap_ms);
    CU_ASSERT_TRUE(slot_of_pid(&s->seg, victim) < 0);
    CU_ASSERT_TRUE(reap_ms <= (long)slack(1200));
    msup_stats_t *retired = msup_retired_stats(&s->seg, atomic_load(&s->seg.retired->active) & 1u, row);
    CU_ASSERT_TRUE(atomic_load(&retired->ops[MSUP_OP_COMMAND]) >= victim_ops);
    CU_ASSERT_TRUE(wait_log(s->log, "process died without detaching"));
}

/* SIGKILLs mongosupd, asserts workers go on alone and that a new mongosupd adopts the segment intact. */
static void crash_and_restart_supervisor(scenario_t *s, uint32_t row)
{
    kill_hard(s->sup);
    uint64_t ops_at_crash = total_ops(&s->seg, row, MSUP_OP_COMMAND);
    uint64_t restarts = atomic_load(&msup_segment_hdr(&s->seg)->supervisor_restarts);
    /* A second without a supervisor, then the workers' progress (waited
     * for: a loaded machine may not have run a worker in that second). */
    msup_test_sleep_ms(1000);
    uint64_t t_alone = msup_test_now_ms();
    while (total_ops(&s->seg, row, MSUP_OP_COMMAND) <= ops_at_crash && msup_test_now_ms() - t_alone < slack(5000))
        msup_test_sleep_ms(10);
    uint64_t ops_alone = total_ops(&s->seg, row, MSUP_OP_COMMAND);
    CU_ASSERT_TRUE(ops_alone > ops_at_crash); /* workers never blocked */
    s->sup = start_daemon(s->conf, s->log);
    uint64_t t1 = msup_test_now_ms();
    while (atomic_load(&msup_segment_hdr(&s->seg)->supervisor_pid) != s->sup && msup_test_now_ms() - t1 < slack(3000))
        msup_test_sleep_ms(10);
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&s->seg)->supervisor_pid), s->sup);
    /* The pid is published with the lock, before the restart count and
     * long before RUNNING: wait for both rather than a fixed 300 ms. */
    uint64_t t2 = msup_test_now_ms();
    while ((atomic_load(&msup_segment_hdr(&s->seg)->supervisor_restarts) == restarts ||
            atomic_load(&msup_segment_hdr(&s->seg)->phase) != MSUP_PHASE_RUNNING) &&
           msup_test_now_ms() - t2 < slack(5000))
        msup_test_sleep_ms(10);
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&s->seg)->supervisor_restarts), restarts + 1);
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&s->seg)->phase), MSUP_PHASE_RUNNING);
    CU_ASSERT_TRUE(total_ops(&s->seg, row, MSUP_OP_COMMAND) >= ops_alone);
}

/* ------------------------------------------------------------------ */
/* Command line and configuration errors                                */

/* One line on stderr, "mongosupd: ..." with needle, and the exit status
 * mongosupd(8) documents: 2 for a bad command line, 1 for the rest. */
static void expect_one_line_error(const char *const *args, int want_rc, const char *needle)
{
    const char *log = path_in_tmp("cli.log");
    int rc = run_daemon(log, args);
    char *text = msup_test_read_file(log);
    if (rc != want_rc || count_lines(log) != 1 || strstr(text, needle) == NULL)
        fprintf(stderr, "\n    %s%s: exit %d (want %d), want one line with '%s': %s", args[0] ? args[0] : "",
                args[0] && args[1] ? " ..." : "", rc, want_rc, needle, text);
    CU_ASSERT_EQUAL(rc, want_rc);
    CU_ASSERT_EQUAL(count_lines(log), 1);
    CU_ASSERT_EQUAL(strncmp(text, "mongosupd: ", 11), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, needle));
    CU_ASSERT_PTR_NULL(strstr(text, "Segmentation"));
    free(text);
}

#define USAGE 2
#define FAILURE 1

static void test_cli_errors(void)
{
    const char *good = path_in_tmp("good.conf");
    write_config(good, msup_test_segment_name("cli"), NULL, "a = { mongo_uri = \"mongodb://127.0.0.1:1/\"; };");
    const char *broken = path_in_tmp("broken.conf");
    write_file(broken, "segment = { name = \"/x\"; };\nsupervisor = { log_level = \"loud\"; };\n"
                       "default_environment = \"e\";\n"
                       "environments = { e = { clusters = { a = { mongo_uri = \"mongodb://h/\"; }; }; }; };\n");
    const char *syntax = path_in_tmp("syntax.conf");
    write_file(syntax, "segment = { name = \"/x\" \n this is not libconfig\n");
    const char *badpw = path_in_tmp("badpw.conf");
    write_config(badpw, msup_test_segment_name("cli"), NULL,
                 "a = { mongo_uri = \"mongodb://alice:s3cretPW@127.0.0.1:notaport/\"; };");

    /* Usage errors: 2. */
    const char *none[] = {NULL};
    expect_one_line_error(none, USAGE, "-c FILE");
    const char *unknown[] = {"-c", good, "-x", NULL};
    expect_one_line_error(unknown, USAGE, "unknown option '-x'");
    const char *unknown_long[] = {"--frobnicate", NULL};
    expect_one_line_error(unknown_long, USAGE, "unknown or ambiguous option '--frobnicate'");
    const char *ambiguous[] = {"--c", good, NULL}; /* --config or --check-config */
    expect_one_line_error(ambiguous, USAGE, "'--c'");
    const char *with_arg[] = {"--help=yes", NULL};
    expect_one_line_error(with_arg, USAGE, "option takes no argument '--help=yes'");
    const char *missing[] = {"-c", NULL};
    expect_one_line_error(missing, USAGE, "missing argument for option '-c'");
    const char *missing_long[] = {"-c", good, "--pidfile", NULL};
    expect_one_line_error(missing_long, USAGE, "missing argument for option '--pidfile'");
    const char *extra[] = {"-c", good, "stray", NULL};
    expect_one_line_error(extra, USAGE, "unexpected argument 'stray'");
    const char *empty[] = {"-c", "", NULL};
    expect_one_line_error(empty, USAGE, "empty argument for option '-c'");
    const char *empty_env[] = {"-c", good, "-e", "", NULL};
    expect_one_line_error(empty_env, USAGE, "empty argument for option '-e'");
    const char *empty_pid[] = {"-c", good, "--pidfile", "", NULL};
    expect_one_line_error(empty_pid, USAGE, "empty argument for option '-p'");

    /* Everything else: 1. */
    const char *nofile[] = {"-c", path_in_tmp("does-not-exist.conf"), NULL};
    expect_one_line_error(nofile, FAILURE, "does-not-exist.conf");
    const char *bad_value[] = {"-c", broken, NULL};
    expect_one_line_error(bad_value, FAILURE, "broken.conf:2");
    const char *bad_syntax[] = {"-c", syntax, "--check-config", NULL};
    expect_one_line_error(bad_syntax, FAILURE, "syntax.conf:");
    const char *bad_env[] = {"-c", good, "-e", "nowhere", NULL};
    expect_one_line_error(bad_env, FAILURE, "nowhere");
    const char *bad_uri[] = {"-c", badpw, NULL};
    expect_one_line_error(bad_uri, FAILURE, "badpw.conf:");
    CU_ASSERT_FALSE(file_contains(path_in_tmp("cli.log"), "s3cretPW"));
    /* Start-up failures after the configuration: one line too (the log
     * line and the plain one used to both reach stderr). */
    const char *no_dir[] = {"-c", good, "--pidfile", path_in_tmp("no/such/dir/x.pid"), NULL};
    expect_one_line_error(no_dir, FAILURE, "cannot open pidfile");

    /* -h and -V: 0, on stdout. */
    const char *version[] = {"-V", NULL};
    const char *log = path_in_tmp("cli.log");
    CU_ASSERT_EQUAL(run_daemon(log, version), 0);
    char expect[64];
    snprintf(expect, sizeof expect, "mongosupd %s\n", mongosup_version());
    char *text = msup_test_read_file(log);
    CU_ASSERT_STRING_EQUAL(text, expect);
    free(text);
    const char *help[] = {"--help", NULL};
    CU_ASSERT_EQUAL(run_daemon(log, help), 0);
    CU_ASSERT_TRUE(file_contains(log, "usage: mongosupd -c FILE"));
}

static void test_check_config(void)
{
    const char *conf = path_in_tmp("check.conf");
    write_config(conf, msup_test_segment_name("check"), NULL,
                 "a = { mongo_uri = \"mongodb://alice:s3cretPW@127.0.0.1:1/\"; };");
    const char *log = path_in_tmp("check.log");
    const char *args[] = {"-c", conf, "--check-config", NULL};
    CU_ASSERT_EQUAL(run_daemon(log, args), 0);
    CU_ASSERT_TRUE(wait_log(log, "alice"));
    CU_ASSERT_TRUE(wait_log(log, "check_interval_ms = 400"));
    CU_ASSERT_FALSE(file_contains(log, "s3cretPW"));
    /* --check-config never touches the segment */
    CU_ASSERT_FALSE(segment_file_exists(msup_test_segment_name("check")));
}

/* ------------------------------------------------------------------ */
/* Single instance                                                      */

static void test_single_instance(void)
{
    const char *seg_name = msup_test_segment_name("single");
    const char *conf = path_in_tmp("single.conf");
    write_config(conf, seg_name, NULL, "a = { mongo_uri = \"mongodb://127.0.0.1:1/\"; };");
    const char *pidfile = path_in_tmp("single.pid");
    /* A stale pidfile (its writer is gone) is taken over. */
    write_file(pidfile, "999999\n");
    const char *log1 = path_in_tmp("single1.log");
    unlink(log1);
    const char *args1[] = {"-c", conf, "--pidfile", pidfile, NULL};
    pid_t first = spawn(log1, args1);
    msup_segment_t seg;
    CU_ASSERT_FATAL(open_segment(seg_name, &seg, start_deadline_ms()));
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&seg)->supervisor_pid), first);
    char *pidtext = msup_test_read_file(pidfile);
    CU_ASSERT_EQUAL(atoi(pidtext), first);
    free(pidtext);
    CU_ASSERT_TRUE(wait_log(log1, "stale pidfile"));

    /* Same pidfile: refused by the lock. */
    const char *log2 = path_in_tmp("single2.log");
    char expect[128];
    snprintf(expect, sizeof expect, "another mongosupd (pid %d) holds the pidfile", (int)first);
    CU_ASSERT_EQUAL(run_daemon(log2, args1), 1);
    CU_ASSERT_TRUE(wait_log(log2, expect));

    /* No pidfile: refused by the control segment's lock. */
    const char *args3[] = {"-c", conf, NULL};
    CU_ASSERT_EQUAL(run_daemon(log2, args3), 1);
    snprintf(expect, sizeof expect, "another mongosupd (pid %d) holds %s", (int)first, seg_name);
    CU_ASSERT_TRUE(wait_log(log2, expect));
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&seg)->supervisor_pid), first);

    terminate_ok(first, slack(5000));
    CU_ASSERT_NOT_EQUAL(access(pidfile, F_OK), 0); /* removed on exit */
    msup_segment_close(&seg);
}

/* Eight mongosupd started at the same moment on one segment, no pidfile:
 * exactly one runs, the others exit 1 at once naming it (the old pid CAS
 * had a window between the CAS and the start time and heartbeat). */
static void test_startup_race(void)
{
    const char *seg_name = msup_test_segment_name("srace");
    const char *conf = path_in_tmp("srace.conf");
    write_config(conf, seg_name, NULL, "a = { mongo_uri = \"mongodb://127.0.0.1:1/\"; };");
    enum { N = 8 };
    pid_t sups[N];
    char logs[N][600];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "srace%d.log", i);
        snprintf(logs[i], sizeof logs[i], "%s", path_in_tmp(name));
        unlink(logs[i]);
    }
    for (int i = 0; i < N; i++)
        sups[i] = start_daemon(conf, logs[i]);
    /* The losers exit at once; the winner runs on (killed afterwards: -1).
     * Who won, the logs say ("running").  One deadline for all of them:
     * with the daemons under memcheck, eight starts share two cores and a
     * loser may reach the claim seconds after the others (in a loaded
     * check-valgrind none had ended within the 32 s allowed before: a
     * single memcheck'd start took up to 57 s there).  A deadline costs
     * nothing when they end. */
    int rc[N];
    bool ended[N] = {false};
    int ended_n = 0;
    uint64_t deadline = msup_test_now_ms() + start_deadline_ms() * (daemon_under_valgrind() ? 2 : 1);
    while (ended_n < N - 1 && msup_test_now_ms() < deadline) {
        for (int i = 0; i < N; i++) {
            int st;
            if (!ended[i] && waitpid(sups[i], &st, WNOHANG) == sups[i]) {
                ended[i] = true;
                ended_n++;
                rc[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
        }
        msup_test_sleep_ms(10);
    }
    int refused = 0, killed = 0;
    for (int i = 0; i < N; i++) {
        if (!ended[i])
            rc[i] = wait_exit(sups[i], 0); /* still running: killed, -1 */
        refused += rc[i] == 1;
        killed += rc[i] == -1;
    }
    CU_ASSERT_EQUAL(killed, 1);
    int winners = 0;
    pid_t winner = 0;
    for (int i = 0; i < N; i++) {
        if (file_contains(logs[i], "running: environment")) {
            winners++;
            winner = sups[i];
        }
    }
    CU_ASSERT_EQUAL(winners, 1);
    CU_ASSERT_EQUAL(refused, N - 1);
    char want[128];
    snprintf(want, sizeof want, "another mongosupd (pid %d) holds %s", (int)winner, seg_name);
    int naming = 0;
    for (int i = 0; i < N; i++)
        naming += file_contains(logs[i], want);
    CU_ASSERT_EQUAL(naming, N - 1);
    fprintf(stderr, "\n    %d simultaneous starts: %d ran, %d refused naming pid %d ", N, winners, naming, (int)winner);
    msup_segment_unlink(seg_name, NULL);
}

/* A supervisor stopped (SIGSTOP) longer than the heartbeat timeout still
 * holds its lock: a second one is refused meanwhile, and after SIGCONT the
 * first carries on alone. */
static void test_stopped_supervisor(void)
{
    scenario_t s;
    scenario_start(&s, "sstop", NULL, "a = { mongo_uri = \"mongodb://127.0.0.1:1/\"; };");
    kill(s.sup, SIGSTOP);
    msup_test_sleep_ms(3300); /* past heartbeat_timeout_ms (3000): the old check took the segment over */
    CU_ASSERT_FALSE(msup_supervisor_alive(&s.seg));
    CU_ASSERT_EQUAL(msup_supervisor_liveness(&s.seg), MSUP_SUPERVISOR_STALLED);
    const char *log2 = path_in_tmp("sstop2.log");
    const char *args[] = {"-c", s.conf, NULL};
    CU_ASSERT_EQUAL(run_daemon(log2, args), 1);
    char want[128];
    snprintf(want, sizeof want, "another mongosupd (pid %d) holds %s", (int)s.sup, s.seg_name);
    CU_ASSERT_TRUE(file_contains(log2, want));
    uint64_t hb = atomic_load(&msup_segment_hdr(&s.seg)->heartbeat_mono_ns);
    kill(s.sup, SIGCONT);
    CU_ASSERT_TRUE(wait_heartbeat_past(&s.seg, hb, slack(5000)));
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&s.seg)->supervisor_pid), s.sup);
    CU_ASSERT_EQUAL(msup_supervisor_liveness(&s.seg), MSUP_SUPERVISOR_ALIVE);
    CU_ASSERT_EQUAL(waitpid(s.sup, NULL, WNOHANG), 0);
    scenario_stop(&s);
}

/* A slot forged (by anyone who can write the stats segment) to name a
 * process that is not a worker of this segment: escalate = kill signals
 * the real straggler and never the forged pid. */
static void test_forged_slot_not_signalled(void)
{
    scenario_t s;
    pid_t stubborn = scenario_start_stubborn(&s, "forged", "drain_timeout_ms = 300; escalate = \"kill\";");
    pid_t victim = fork();
    CU_ASSERT_FATAL(victim >= 0);
    if (victim == 0) {
        execlp("sleep", "sleep", "60", (char *)NULL);
        _exit(127);
    }
    /* Exec done: the victim maps nothing of ours (a fixed 100 ms was not
     * always enough on a loaded machine, and a victim still mapping the
     * segment would be a worker to mongosupd). */
    CU_ASSERT_FATAL(msup_test_wait_exec(victim, "sleep", slack(10000)));
    msup_segment_t rw;
    CU_ASSERT_FATAL(msup_test_segment_open_rw(s.seg_name, &rw));
    mongosup_error_t err;
    int forged = msup_slot_claim(&rw, victim, "forged", &err);
    CU_ASSERT_FATAL(forged >= 0);
    CU_ASSERT_EQUAL(msup_segment_slot(&rw, (uint32_t)forged)->start_time, msup_proc_start_time(victim));
    msup_segment_close(&rw);
    long took;
    CU_ASSERT_EQUAL(term_and_time(s.sup, slack(5000), &took), 0);
    CU_ASSERT_EQUAL(wait_exit(stubborn, 2000), 128 + SIGKILL);
    CU_ASSERT_EQUAL(waitpid(victim, NULL, WNOHANG), 0); /* alive: never signalled */
    char want[160];
    snprintf(want, sizeof want, "names pid %d, which is not a worker of segment", (int)victim);
    CU_ASSERT_TRUE(file_contains(s.log, want));
    kill(victim, SIGKILL);
    waitpid(victim, NULL, 0);
    msup_segment_close(&s.seg);
    msup_segment_unlink(s.seg_name, NULL);
}

/* A deploy: every worker of a full segment exits and as many new ones
 * attach at once (each as soon as its predecessor is gone, as a prefork
 * master does).  A worker frees its slot itself: no attach waits for the
 * reaper, none fails with NO_SLOT; every detach is counted once. */
static void test_mass_replacement(void)
{
    scenario_t s;
    scenario_start(&s, "mass", NULL, "main = { mongo_uri = \"mongodb://127.0.0.1:1/\"; };");
    enum { N = 16 }; /* write_config: max_workers = 16 */
    pid_t old[N], fresh[N];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "mass-old%d", i);
        start_attached_worker(&s, "usr1", "main", path_in_tmp(name), &old[i]);
    }
    uint32_t active = atomic_load(&s.seg.retired->active) & 1u;
    uint64_t reaped0 = atomic_load(&s.seg.retired->slots_reaped[active]);
    uint64_t t0 = msup_test_now_ms();
    for (int i = 0; i < N; i++)
        kill(old[i], SIGUSR1);
    int attach_failures = 0;
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(wait_exit(old[i], slack(5000)), 0);
        char name[32];
        snprintf(name, sizeof name, "mass-new%d", i);
        fresh[i] = start_worker("usr1", s.conf, "main", path_in_tmp(name));
    }
    for (int i = 0; i < N; i++)
        attach_failures += wait_slot_of_pid(&s.seg, fresh[i], slack(3000)) < 0;
    long took = (long)(msup_test_now_ms() - t0);
    fprintf(stderr, "\n    %d workers replaced in %ld ms, %d attach failures ", N, took, attach_failures);
    CU_ASSERT_EQUAL(attach_failures, 0);
    CU_ASSERT_FALSE(file_contains(path_in_tmp("workers.log"), "worker slots are taken"));
    active = atomic_load(&s.seg.retired->active) & 1u;
    CU_ASSERT_EQUAL(atomic_load(&s.seg.retired->slots_reaped[active]), reaped0 + N);
    for (int i = 0; i < N; i++) {
        kill(fresh[i], SIGUSR1);
        CU_ASSERT_EQUAL(wait_exit(fresh[i], slack(5000)), 0);
    }
    active = atomic_load(&s.seg.retired->active) & 1u;
    CU_ASSERT_EQUAL(atomic_load(&s.seg.retired->slots_reaped[active]), reaped0 + 2 * N);
    scenario_stop(&s);
}

/* ------------------------------------------------------------------ */
/* Health: peer killed, peer hung, replica set                           */

/* A DOWN must come within: the next check (inter) + fall-1 fast checks,
 * each bounded by check_timeout; plus scheduling margin. */
#define INTER 400u
#define FASTINTER 200u
#define DOWNINTER 300u
#define TIMEOUT 300u
#define RISE 2u
#define FALL 3u
#define MARGIN 500u

/* Started with stdin, stdout and stderr closed (CI, `mongosupd <&- >&- 2>&-`):
 * the files it opens must not take descriptors 0-2, or its log lines would
 * land in the segment or in a control client's answer. */
static void test_closed_stdio(void)
{
    char seg_name[64], conf[256];
    snprintf(seg_name, sizeof seg_name, "%s", msup_test_segment_name("stdio"));
    snprintf(conf, sizeof conf, "%s", path_in_tmp("stdio.conf"));
    char clusters[128];
    snprintf(clusters, sizeof clusters, "main = { mongo_uri = \"mongodb://127.0.0.1:%d/\"; };", msup_test_free_port());
    write_config(conf, seg_name, NULL, clusters);
    pid_t sup = fork();
    if (sup == 0) {
        close(0);
        close(1);
        close(2);
        execl(daemon_path(), daemon_path(), "-c", conf, (char *)NULL);
        _exit(127);
    }
    msup_segment_t seg;
    CU_ASSERT_FATAL(open_segment(seg_name, &seg, start_deadline_ms()));
    /* Nothing listens on the port: DOWN is logged, and so is each request. */
    CU_ASSERT(wait_health(&seg, "main", MSUP_HEALTH_DOWN, slack(5000)) >= 0);
    for (int i = 0; i < 5; i++) {
        /* ping and reload answer with their verdict alone: any line before
         * it is a log line that went into the client's connection. */
        static const char *const requests[] = {"ping", "reload"};
        for (int r = 0; r < 2; r++) {
            msup_ctl_answer_t answer;
            mongosup_error_t err;
            msup_ctl_status_t st =
                msup_ctl_request(control_socket_of(seg_name), requests[r], slack(5000), &answer, &err);
            CU_ASSERT_EQUAL(st, MSUP_CTL_ANSWER_OK);
            CU_ASSERT(answer.lines == NULL || answer.lines[0] == '\0');
            if (answer.lines != NULL && answer.lines[0] != '\0')
                fprintf(stderr, "\n%s answered with extra lines: %s", requests[r], answer.lines);
            msup_ctl_answer_free(&answer);
        }
    }
    msup_segment_close(&seg);
    CU_ASSERT(open_segment(seg_name, &seg, slack(1000)));
    CU_ASSERT_PTR_NOT_NULL(row_named(&seg, "main"));
    msup_segment_close(&seg);
    terminate_ok(sup, slack(5000));
}

static void test_health_down_up_reconnect(void)
{
    test_peer_t *peer = start_standalone_peer();
    scenario_t s;
    scenario_start_on_peer(&s, "downup", NULL, peer);
    expect_up(&s, "main", slack(3000));
    msup_cluster_row_t *row = row_named(&s.seg, "main");
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    pid_t worker;
    int slot = start_attached_worker(&s, "ping", "main", path_in_tmp("downup.worker"), &worker);
    msup_test_sleep_ms(200);

    uint64_t gen0 = atomic_load(&row->reconnect_generation);
    test_peer_kill(peer, SIGKILL);
    long down_ms = wait_health(&s.seg, "main", MSUP_HEALTH_DOWN, slack(INTER + FALL * (FASTINTER + TIMEOUT) + MARGIN));
    unsigned bound = INTER + (FALL - 1) * FASTINTER + TIMEOUT + MARGIN;
    fprintf(stderr, "\n    peer killed -> DOWN in %ld ms (bound %u ms) ", down_ms, bound);
    CU_ASSERT_TRUE(down_ms >= 0 && (unsigned)down_ms <= slack(bound));

    /* Restarted on the same port: UP within a down interval + (rise-1) fast ones. */
    CU_ASSERT_FATAL(test_peer_restart(peer));
    long up_ms = wait_health(&s.seg, "main", MSUP_HEALTH_UP, slack(5000));
    unsigned up_bound = DOWNINTER + (RISE - 1) * FASTINTER + TIMEOUT + MARGIN;
    fprintf(stderr, "peer back -> UP in %ld ms (bound %u) ", up_ms, up_bound);
    CU_ASSERT_TRUE(up_ms >= 0 && (unsigned)up_ms <= slack(up_bound));

    /* DOWN -> UP bumps the generation; the worker rebuilds within the window. */
    uint64_t t_up = msup_test_now_ms();
    uint64_t gen1 = wait_generation_past(row, gen0, t_up, slack(1000), 5);
    CU_ASSERT_TRUE(gen1 > gen0);
    msup_stats_t *st = wait_reconnect_ack(&s.seg, slot, gen1, t_up, slack(500 + 1500));
    fprintf(stderr, "worker acked generation %llu in %llu ms ", (unsigned long long)gen1,
            (unsigned long long)(msup_test_now_ms() - t_up));
    CU_ASSERT_TRUE(atomic_load(&st->reconnect_ack) >= gen1);
    CU_ASSERT_TRUE(wait_log(s.log, "cause: cluster came back up"));

    /* A manual request (mongosupctl reconnect) bumps it too. */
    request_reconnect(s.seg_name, "main");
    CU_ASSERT_EQUAL(wait_generation_past(row, gen1, msup_test_now_ms(), slack(2000), 10), gen1 + 1);
    msup_test_sleep_ms(100);
    CU_ASSERT_TRUE(wait_log(s.log, "cause: manual request"));

    terminate_ok(worker, slack(5000));
    scenario_stop(&s);
    CU_ASSERT_TRUE(wait_log(s.log, "UP -> DOWN"));
    CU_ASSERT_TRUE(wait_log(s.log, "DOWN -> RECOVERING")); /* half-open on the first good check */
    CU_ASSERT_TRUE(wait_log(s.log, "RECOVERING -> UP"));
    test_peer_stop(&peer);
}

static void test_health_hung_peer(void)
{
    test_peer_t *peer = start_standalone_peer();
    scenario_t s;
    /* inter 600 > heartbeat_frequency_ms 500: the checker's client rescans
     * the server at every check, so the first failing check always costs
     * two timeouts (below) and the worst case is met every run. */
    enum { HUNG_INTER = 600 };
    char clusters[512];
    snprintf(clusters, sizeof clusters, "main = { mongo_uri = \"%s\"; check_interval_ms = %d; };",
             test_peer_uri(peer), HUNG_INTER);
    scenario_start(&s, "hung", NULL, clusters);
    expect_up(&s, "main", slack(3000));
    const char *result = path_in_tmp("hung.worker");
    pid_t worker;
    start_attached_worker(&s, "ping", "main", result, &worker);
    msup_test_sleep_ms(200);

    /* docs/operations.md: from the moment a server hangs, DOWN within
     * inter + (fall-1) x fastinter + (fall+1) x check_timeout.  The extra
     * timeout: when the first failing check rescans the server (as here,
     * every check does), the driver's hello on the known server times out
     * and is retried once on a new connection (the SDAM spec's retry of a
     * server that was known), which times out too; later checks find it
     * Unknown and take one timeout each, fastinter apart.  The hang starts
     * right after a check passed: the worst case, which the measurement
     * must meet without exceeding (plus scheduling slack). */
    const msup_cluster_row_t *row = row_named(&s.seg, "main");
    uint64_t last = atomic_load(&row->last_check_ns), t0 = msup_test_now_ms();
    while (atomic_load(&row->last_check_ns) == last && msup_test_now_ms() - t0 < slack(2000))
        msup_test_sleep_ms(1);
    uint64_t passed_ns = atomic_load(&row->last_check_ns); /* a pass at or before the last one before the hang */
    test_peer_kill(peer, SIGSTOP);
    long down_ms = wait_health(&s.seg, "main", MSUP_HEALTH_DOWN, slack(5000));
    unsigned formula = HUNG_INTER + (FALL - 1) * FASTINTER + (FALL + 1) * TIMEOUT;
    unsigned bound = msup_test_under_valgrind() || daemon_under_valgrind() ? slack(formula) : formula + 250;
    /* The lower bound by mongosupd's own clock, from the last check that
     * passed to the DOWN verdict: a test that was slow to send SIGSTOP
     * after seeing the check would shorten down_ms (measured from the
     * SIGSTOP, which the upper bound is about), not this span. */
    uint64_t since_ns = atomic_load(&row->health_since_ns);
    long span_ms = since_ns > passed_ns ? (long)((since_ns - passed_ns) / 1000000u) : -1;
    fprintf(stderr, "\n    peer SIGSTOPped right after a check -> DOWN in %ld ms, %ld ms after that check "
            "(formula %u ms, bound %u ms) ", down_ms, span_ms, formula, bound);
    CU_ASSERT_TRUE(down_ms >= 0 && (unsigned)down_ms <= bound);
    CU_ASSERT_TRUE(span_ms >= (long)formula - 150); /* the formula is not pessimistic */
    /* While DOWN, the worker's checkouts fail at once (circuit open); its
     * operation in flight when the peer hung ends at socketTimeoutMS. */
    msup_test_sleep_ms(2500);
    terminate_ok(worker, slack(8000));
    unsigned long ok, fail, circuit, max_fail_us;
    read_ping_result(result, &ok, &fail, &circuit, &max_fail_us);
    fprintf(stderr, "worker: %lu ok, %lu failed, %lu circuit-open, slowest circuit-open refusal %lu us ", ok, fail,
            circuit, max_fail_us);
    CU_ASSERT_TRUE(ok > 0);
    CU_ASSERT_TRUE(circuit > 10);
    CU_ASSERT_TRUE(max_fail_us < 100000u * (msup_test_under_valgrind() ? 5 : 1));
    test_peer_kill(peer, SIGCONT);
    long up_ms = wait_health(&s.seg, "main", MSUP_HEALTH_UP, slack(5000));
    fprintf(stderr, "SIGCONT -> UP in %ld ms ", up_ms);
    CU_ASSERT_TRUE(up_ms >= 0);
    scenario_stop(&s);
    test_peer_stop(&peer);
}

static void test_health_replica_set(void)
{
    test_peer_t *peer = test_peer_start("rs", 3, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
    char clusters[512];
    snprintf(clusters, sizeof clusters, "rs = { mongo_uri = \"%s\"; };", test_peer_uri(peer));
    scenario_t s;
    scenario_start(&s, "rs", NULL, clusters);
    expect_up(&s, "rs", slack(4000));
    msup_cluster_row_t *row = row_named(&s.seg, "rs");
    CU_ASSERT_EQUAL(atomic_load(&row->has_primary), 1);

    CU_ASSERT_TRUE(test_peer_command(peer, "{\"cmd\":\"no_primary\"}", NULL, 0));
    long degraded_ms = wait_health(&s.seg, "rs", MSUP_HEALTH_DEGRADED, slack(4000));
    fprintf(stderr, "\n    no primary -> DEGRADED in %ld ms ", degraded_ms);
    CU_ASSERT_TRUE(degraded_ms >= 0);
    CU_ASSERT_EQUAL(atomic_load(&row->has_primary), 0);
    CU_ASSERT_TRUE(wait_log(s.log, "no primary"));

    CU_ASSERT_TRUE(test_peer_command(peer, "{\"cmd\":\"primary\",\"member\":1}", NULL, 0));
    long up_ms = wait_health(&s.seg, "rs", MSUP_HEALTH_UP, slack(4000));
    fprintf(stderr, "election -> UP in %ld ms ", up_ms);
    CU_ASSERT_TRUE(up_ms >= 0);
    CU_ASSERT_EQUAL(atomic_load(&row->has_primary), 1);

    /* A step-down leaves the set without a primary for a moment at most:
     * never DOWN. */
    CU_ASSERT_TRUE(test_peer_command(peer, "{\"cmd\":\"stepdown\"}", NULL, 0));
    msup_test_sleep_ms(600);
    CU_ASSERT_NOT_EQUAL(atomic_load(&row->health), MSUP_HEALTH_DOWN);
    scenario_stop(&s);
    test_peer_stop(&peer);
}

/* Workers fail on the network while the checks pass: their pools hold
 * broken connections.  The supervisor bumps the generation, rate limited. */
static void test_reconnect_on_worker_failures(void)
{
    test_peer_t *peer = start_standalone_peer();
    char clusters[512];
    snprintf(clusters, sizeof clusters,
             "main = { mongo_uri = \"%s\"; reconnect_network_errors_per_s = 2; reconnect_min_interval_ms = 1500; };",
             test_peer_uri(peer));
    scenario_t s;
    scenario_start(&s, "netfail", NULL, clusters);
    expect_up(&s, "main", slack(3000));
    msup_cluster_row_t *row = row_named(&s.seg, "main");
    /* Each failed find costs the driver a rescan: three workers make a burst. */
    pid_t workers[3];
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "netfail.w%d", i);
        start_attached_worker(&s, "find", "main", path_in_tmp(name), &workers[i]);
    }
    msup_test_sleep_ms(1500); /* a quiet second: no bump */
    uint64_t gen0 = atomic_load(&row->reconnect_generation);
    CU_ASSERT_EQUAL(gen0, 0);

    /* Every find now has its connection closed under it; ping and hello
     * (the supervisor's checks) are untouched. */
    CU_ASSERT_TRUE(test_peer_command(peer, "{\"cmd\":\"hangup\",\"mode\":\"before\",\"command\":\"find\",\"times\":null}", NULL, 0));
    uint64_t t0 = msup_test_now_ms();
    wait_generation_past(row, gen0, t0, slack(4000), 10);
    long bump_ms = (long)(msup_test_now_ms() - t0);
    fprintf(stderr, "\n    worker network failures -> generation bump in %ld ms ", bump_ms);
    CU_ASSERT_TRUE(atomic_load(&row->reconnect_generation) > gen0);
    CU_ASSERT_EQUAL(atomic_load(&row->health), MSUP_HEALTH_UP);
    CU_ASSERT_TRUE(wait_log(s.log, "cause: worker network failures"));
    /* Rate limit: at most one bump per 1500 ms while the failures go on. */
    uint64_t g1 = atomic_load(&row->reconnect_generation);
    uint64_t t1 = msup_test_now_ms();
    msup_test_sleep_ms(2000);
    uint64_t g2 = atomic_load(&row->reconnect_generation);
    uint64_t span = msup_test_now_ms() - t1;
    fprintf(stderr, "%llu more bumps in %llu ms ", (unsigned long long)(g2 - g1), (unsigned long long)span);
    CU_ASSERT_TRUE(g2 - g1 <= span / 1500 + 1);
    CU_ASSERT_TRUE(test_peer_command(peer, "{\"cmd\":\"clear\"}", NULL, 0));

    for (int i = 0; i < 3; i++)
        terminate_ok(workers[i], slack(5000));
    scenario_stop(&s);
    test_peer_stop(&peer);
}

/* ------------------------------------------------------------------ */
/* Reaper and supervisor restart                                         */

static void test_reap_killed_worker_and_restart(void)
{
    test_peer_t *peer = start_standalone_peer();
    scenario_t s;
    scenario_start_on_peer(&s, "reap", NULL, peer);
    expect_up(&s, "main", slack(3000));
    uint32_t row = (uint32_t)msup_segment_find_cluster(&s.seg, "main");

    const char *r1 = path_in_tmp("reap.w1"), *r2 = path_in_tmp("reap.w2");
    pid_t victim, survivor;
    int vslot = start_victim_and_survivor(&s, r1, r2, &victim, &survivor);
    msup_test_sleep_ms(500);
    wait_slot_ops(&s.seg, vslot, row);
    /* Catch the victim in the middle of an operation: pings now take 2 s. */
    CU_ASSERT_TRUE(test_peer_command(peer, "{\"cmd\":\"delay\",\"ms\":2000,\"command\":\"ping\"}", NULL, 0));
    msup_test_sleep_ms(300);
    uint64_t before = total_ops(&s.seg, row, MSUP_OP_COMMAND);
    uint64_t victim_ops = atomic_load(&msup_slot_stats(&s.seg, (uint32_t)vslot, row)->ops[MSUP_OP_COMMAND]);
    CU_ASSERT_TRUE(victim_ops > 0);
    bool monotonic = true;
    kill_and_expect_reaped(&s, victim, vslot, row, victim_ops, before, &monotonic);
    CU_ASSERT_TRUE(monotonic);
    CU_ASSERT_TRUE(total_ops(&s.seg, row, MSUP_OP_COMMAND) >= before);
    msup_stats_t *retired = msup_retired_stats(&s.seg, atomic_load(&s.seg.retired->active) & 1u, row);
    CU_ASSERT_TRUE(test_peer_command(peer, "{\"cmd\":\"clear\"}", NULL, 0));

    /* The supervisor dies; the survivor keeps working; a new supervisor
     * adopts the segment with every counter intact.  (First let the
     * survivor's delayed ping end.) */
    msup_test_sleep_ms(2200);
    crash_and_restart_supervisor(&s, row);
    CU_ASSERT_TRUE(atomic_load(&retired->ops[MSUP_OP_COMMAND]) >= victim_ops ||
                   atomic_load(&msup_retired_stats(&s.seg, atomic_load(&s.seg.retired->active) & 1u, row)
                                    ->ops[MSUP_OP_COMMAND]) >= victim_ops);
    CU_ASSERT_TRUE(wait_log(s.log, "adopted segment"));
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_row(&s.seg, row)->health), MSUP_HEALTH_UP);

    unsigned long fail;
    stop_ping_worker(survivor, r2, &fail);
    scenario_stop(&s);
    test_peer_stop(&peer);
}

/* ------------------------------------------------------------------ */
/* Reload                                                               */

static void test_reload(void)
{
    test_peer_t *peer = start_standalone_peer();
    char clusters[1024];
    main_cluster_on(clusters, sizeof clusters, peer);
    scenario_t s;
    scenario_start(&s, "reload", NULL, clusters);
    expect_up(&s, "main", slack(3000));
    uint64_t gen = atomic_load(&msup_segment_hdr(&s.seg)->config_generation);

    /* Broken file: logged with file:line, nothing changes. */
    write_file(s.conf, "segment = { name = \"%s\"; max_workers = 16; max_clusters = 4; };\n"
                       "environments = { test = { clusters = { main = { mongo_uri = 42; }; }; }; };\n",
               s.seg_name);
    kill(s.sup, SIGHUP);
    msup_test_sleep_ms(slack(500));
    CU_ASSERT_TRUE(wait_log(s.log, "reload rejected"));
    CU_ASSERT_TRUE(wait_log(s.log, "reload.conf:2"));
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&s.seg)->config_generation), gen);
    CU_ASSERT_PTR_NOT_NULL(row_named(&s.seg, "main"));
    CU_ASSERT_EQUAL(atomic_load(&row_named(&s.seg, "main")->health), MSUP_HEALTH_UP);

    /* Geometry change: refused with the restart it needs. */
    write_file(s.conf, "segment = { name = \"%s\"; max_workers = 32; max_clusters = 4; };\n"
                       "default_environment = \"test\";\n"
                       "environments = { test = { clusters = { %s }; }; };\n",
               s.seg_name, clusters);
    kill(s.sup, SIGHUP);
    msup_test_sleep_ms(slack(500));
    CU_ASSERT_TRUE(wait_log(s.log, "full restart is needed"));
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&s.seg)->config_generation), gen);

    /* A cluster added: it appears and is checked. */
    snprintf(clusters, sizeof clusters, "main = { mongo_uri = \"%s\"; }; extra = { mongo_uri = \"%s\"; };",
             test_peer_uri(peer), test_peer_uri(peer));
    reload_with(&s, clusters);
    long up_ms = wait_health(&s.seg, "extra", MSUP_HEALTH_UP, slack(4000));
    fprintf(stderr, "\n    added cluster UP %ld ms after SIGHUP ", up_ms);
    CU_ASSERT_TRUE(up_ms >= 0);
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&s.seg)->config_generation), gen + 1);
    CU_ASSERT_TRUE(atomic_load(&row_named(&s.seg, "extra")->checks_passed) > 0);
    CU_ASSERT_EQUAL(atomic_load(&row_named(&s.seg, "main")->health), MSUP_HEALTH_UP);

    /* And removed again: its row is REMOVED, not reused. */
    snprintf(clusters, sizeof clusters, "extra = { mongo_uri = \"%s\"; };", test_peer_uri(peer));
    reload_with(&s, clusters);
    expect_main_removed(&s, gen + 2);

    /* Added back, now somewhere that refuses: its old row again, and not
     * the UP it had when it was removed (that would keep workers' circuit
     * closed on a dead cluster until the new checks decide). */
    snprintf(clusters, sizeof clusters,
             "extra = { mongo_uri = \"%s\"; }; main = { mongo_uri = \"mongodb://127.0.0.1:1/\"; };",
             test_peer_uri(peer));
    reload_with(&s, clusters);
    uint64_t t0 = msup_test_now_ms();
    while (atomic_load(&msup_segment_hdr(&s.seg)->config_generation) != gen + 3 && msup_test_now_ms() - t0 < slack(2000))
        msup_test_sleep_ms(1);
    CU_ASSERT_EQUAL(msup_segment_find_cluster(&s.seg, "main"), 0);
    CU_ASSERT_NOT_EQUAL(atomic_load(&msup_segment_row(&s.seg, 0)->health), MSUP_HEALTH_UP);
    CU_ASSERT_TRUE(wait_health(&s.seg, "main", MSUP_HEALTH_DOWN, slack(3000)) >= 0);

    scenario_stop(&s);
    test_peer_stop(&peer);
}

/* A reload that changes only settings (here max_pool_size, then the check
 * interval) keeps the cluster's health: a health endpoint built on
 * `mongosupctl status -q` must not flap through UNKNOWN.  The row is polled
 * every millisecond from the SIGHUP until the reload was applied and a few
 * checks later. */
static void test_reload_keeps_health(void)
{
    test_peer_t *peer = start_standalone_peer();
    scenario_t s;
    scenario_start_on_peer(&s, "rkeep", NULL, peer);
    expect_up(&s, "main", slack(3000));
    static const char *const changes[] = {"max_pool_size = 7;", "max_pool_size = 9; check_interval_ms = 500;"};
    for (int i = 0; i < 2; i++) {
        uint64_t gen = atomic_load(&msup_segment_hdr(&s.seg)->config_generation);
        uint64_t transitions = atomic_load(&row_named(&s.seg, "main")->transitions);
        char clusters[512];
        snprintf(clusters, sizeof clusters, "main = { mongo_uri = \"%s\"; %s };", test_peer_uri(peer), changes[i]);
        reload_with(&s, clusters);
        uint64_t t0 = msup_test_now_ms(), applied_at = 0;
        unsigned polls = 0, not_up = 0;
        while (msup_test_now_ms() - t0 < slack(3000) && (applied_at == 0 || msup_test_now_ms() - applied_at < 1000)) {
            const msup_cluster_row_t *row = row_named(&s.seg, "main");
            not_up += row == NULL || atomic_load(&row->health) != MSUP_HEALTH_UP;
            if (applied_at == 0 && atomic_load(&msup_segment_hdr(&s.seg)->config_generation) > gen)
                applied_at = msup_test_now_ms();
            polls++;
            msup_test_sleep_ms(1);
        }
        fprintf(stderr, "\n    reload '%s': %u polls, %u not UP ", changes[i], polls, not_up);
        CU_ASSERT_TRUE(applied_at != 0);
        CU_ASSERT_EQUAL(not_up, 0);
        CU_ASSERT_EQUAL(atomic_load(&row_named(&s.seg, "main")->transitions), transitions);
        CU_ASSERT_EQUAL(atomic_load(&row_named(&s.seg, "main")->max_pool_size), i == 0 ? 7u : 9u);
    }
    CU_ASSERT_TRUE(wait_log(s.log, "cluster main changed: settings updated"));
    /* Another address is another deployment: its health starts afresh. */
    uint64_t gen = atomic_load(&msup_segment_hdr(&s.seg)->config_generation);
    reload_with(&s, "main = { mongo_uri = \"mongodb://127.0.0.1:1/\"; max_pool_size = 9; };");
    uint64_t t0 = msup_test_now_ms();
    while (atomic_load(&msup_segment_hdr(&s.seg)->config_generation) == gen && msup_test_now_ms() - t0 < slack(2000))
        msup_test_sleep_ms(1);
    CU_ASSERT_NOT_EQUAL(atomic_load(&row_named(&s.seg, "main")->health), MSUP_HEALTH_UP);
    CU_ASSERT_TRUE(wait_log(s.log, "cluster main changed: now mongodb://127.0.0.1:1/"));
    scenario_stop(&s);
    test_peer_stop(&peer);
}

/* Occurrences of needle in the text of path. */
static int count_in_file(const char *path, const char *needle)
{
    char *text = msup_test_read_file(path);
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(text);
    return n;
}

/* A worker whose environment lacks the supervisor's MONGOSUP_MAIN_URI uses
 * the file's URI: it is flagged (uri_mismatch) and warns once; a worker
 * with the same environment is not.  The flag survives a reload without a
 * second warning. */
static void test_worker_uri_mismatch(void)
{
    test_peer_t *peer = start_standalone_peer();
    scenario_t s;
    setenv("MONGOSUP_MAIN_URI", test_peer_uri(peer), 1); /* the supervisor's environment */
    scenario_start(&s, "urimis", NULL, "main = { mongo_uri = \"mongodb://127.0.0.1:1/\"; };");
    expect_up(&s, "main", slack(3000));
    pid_t same, other;
    int same_slot = start_attached_worker(&s, "ping", "main", path_in_tmp("urimis.same"), &same);
    unsetenv("MONGOSUP_MAIN_URI");
    int other_slot = start_attached_worker(&s, "ping", "main", path_in_tmp("urimis.other"), &other);
    uint32_t row = (uint32_t)msup_segment_find_cluster(&s.seg, "main");
    const msup_stats_t *st_same = msup_slot_stats(&s.seg, (uint32_t)same_slot, row);
    const msup_stats_t *st_other = msup_slot_stats(&s.seg, (uint32_t)other_slot, row);
    uint64_t t0 = msup_test_now_ms();
    while (atomic_load(&st_other->uri_mismatch) == 0 && msup_test_now_ms() - t0 < slack(3000))
        msup_test_sleep_ms(10);
    CU_ASSERT_EQUAL(atomic_load(&st_other->uri_mismatch), 1);
    CU_ASSERT_EQUAL(atomic_load(&st_same->uri_mismatch), 0);

    /* The monitor's view: one worker of main, and which one. */
    msup_snapshot_t snap;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_snapshot_take(&s.seg, &snap, &err));
    CU_ASSERT_EQUAL(snap.cluster_count, 1);
    CU_ASSERT_EQUAL(snap.clusters[0].workers_uri_mismatch, 1);
    for (uint32_t i = 0; i < snap.worker_count; i++)
        CU_ASSERT_EQUAL(snap.workers[i].uri_mismatch, snap.workers[i].pid == other);
    msup_snapshot_free(&snap);

    /* A reload (same file): both remap; the flag stays, no second warning. */
    uint64_t gen = atomic_load(&msup_segment_hdr(&s.seg)->config_generation);
    kill(s.sup, SIGHUP);
    t0 = msup_test_now_ms();
    while ((atomic_load(&st_other->config_generation_seen) <= gen ||
            atomic_load(&st_same->config_generation_seen) <= gen) && msup_test_now_ms() - t0 < slack(3000))
        msup_test_sleep_ms(10);
    CU_ASSERT_TRUE(atomic_load(&st_other->config_generation_seen) > gen);
    CU_ASSERT_EQUAL(atomic_load(&st_other->uri_mismatch), 1);
    CU_ASSERT_EQUAL(atomic_load(&st_same->uri_mismatch), 0);
    char warned[128];
    snprintf(warned, sizeof warned, "mongosup[%d]: warning: cluster main: this worker connects to mongodb://127.0.0.1:1/",
             (int)other);
    CU_ASSERT_EQUAL(count_in_file(path_in_tmp("workers.log"), warned), 1);
    snprintf(warned, sizeof warned, "mongosup[%d]: warning: cluster main", (int)same);
    CU_ASSERT_EQUAL(count_in_file(path_in_tmp("workers.log"), warned), 0);

    /* What the flag is about: main is UP, and every ping of that worker failed. */
    unsigned long fail;
    stop_ping_worker(same, path_in_tmp("urimis.same"), &fail);
    terminate_ok(other, slack(5000));
    unsigned long ok, circuit, max_fail_us;
    read_ping_result(path_in_tmp("urimis.other"), &ok, &fail, &circuit, &max_fail_us);
    CU_ASSERT_EQUAL(ok, 0);
    CU_ASSERT_TRUE(fail > 0);
    scenario_stop(&s);
    test_peer_stop(&peer);
}

static bool mongoc_shm_exists(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/mongoc-%d", (int)pid);
    return access(path, F_OK) == 0;
}

/* libmongoc (Debian's build) creates /dev/shm/mongoc-<pid> for its counters
 * in a load-time constructor, before main: nothing libmongosup does at
 * attach can prevent it, so the documented setup is MONGOC_DISABLE_SHM=1 in
 * the environment the server starts with (docs/operations.md).  A worker
 * started without it and SIGKILLed leaves its file (shown, then removed
 * here); one started with it leaves none. */
static void test_killed_worker_mongoc_shm(void)
{
    scenario_t s;
    pid_t without, with;
    scenario_start(&s, "mshm", NULL, "main = { mongo_uri = \"mongodb://127.0.0.1:1/\"; };");
    const char *saved = getenv("MONGOC_DISABLE_SHM");
    char keep[16] = "";
    if (saved != NULL)
        snprintf(keep, sizeof keep, "%s", saved);
    unsetenv("MONGOC_DISABLE_SHM");
    start_attached_worker(&s, "stubborn", "main", path_in_tmp("mshm.without"), &without);
    setenv("MONGOC_DISABLE_SHM", "1", 1);
    start_attached_worker(&s, "stubborn", "main", path_in_tmp("mshm.with"), &with);
    if (saved != NULL)
        setenv("MONGOC_DISABLE_SHM", keep, 1);
    else
        unsetenv("MONGOC_DISABLE_SHM");
    bool left_without = mongoc_shm_exists(without);
    CU_ASSERT_FALSE(mongoc_shm_exists(with));
    kill_hard(without);
    kill_hard(with);
    left_without = left_without && mongoc_shm_exists(without);
    fprintf(stderr, "\n    SIGKILLed worker without MONGOC_DISABLE_SHM left /dev/shm/mongoc-%d: %s; with it: %s ",
            (int)without, left_without ? "yes" : "no", mongoc_shm_exists(with) ? "yes" : "no");
    CU_ASSERT_FALSE(mongoc_shm_exists(with));
    if (left_without) { /* our own child's file: verified pid, nobody else's */
        char name[32];
        snprintf(name, sizeof name, "/mongoc-%d", (int)without);
        shm_unlink(name);
    }
    scenario_stop(&s);
}

/* ------------------------------------------------------------------ */
/* Graceful shutdown                                                    */

#define N_WORKERS 8
#define OP_MS 300u

/* Starts N_WORKERS "insert" workers, results in TAG.w0 .. TAG.w7. */
static void start_insert_workers(const scenario_t *s, const char *tag, pid_t *workers, char (*results)[64])
{
    for (int i = 0; i < N_WORKERS; i++) {
        snprintf(results[i], sizeof results[i], "%s.w%d", tag, i);
        workers[i] = start_worker("insert", s->conf, "main", path_in_tmp(results[i]));
    }
}

/* Waits for every insert worker to exit 0; the sum of the inserts they counted as acknowledged. */
static long collect_acked(const pid_t *workers, char (*results)[64])
{
    long acked = 0;
    for (int i = 0; i < N_WORKERS; i++) {
        CU_ASSERT_EQUAL(wait_exit(workers[i], slack(5000)), 0);
        char *text = msup_test_read_file(path_in_tmp(results[i]));
        CU_ASSERT_NOT_EQUAL(text[0], '\0');
        acked += atol(text);
        free(text);
    }
    return acked;
}

/* Asserts a kept segment is STOPPED with `acked` writes and every slot FREE; then unmaps and removes it. */
static void expect_drained_and_unlink(scenario_t *s, uint32_t row, long acked)
{
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&s->seg)->phase), MSUP_PHASE_STOPPED);
    CU_ASSERT_EQUAL(total_ops(&s->seg, row, MSUP_OP_WRITE), (uint64_t)acked);
    CU_ASSERT_TRUE(wait_log(s->log, "final: cluster main"));
    for (uint32_t i = 0; i < s->seg.max_workers; i++)
        CU_ASSERT_EQUAL(atomic_load(&msup_segment_slot(&s->seg, i)->state), MSUP_SLOT_FREE);
    msup_segment_close(&s->seg);
    mongosup_error_t err;
    CU_ASSERT_TRUE(msup_segment_unlink(s->seg_name, &err)); /* keep_segment = true */
}

static void test_graceful_shutdown(void)
{
    test_peer_t *peer = start_standalone_peer();
    scenario_t s;
    scenario_start_on_peer(&s, "drain", "keep_segment = true;", peer);
    expect_up(&s, "main", slack(3000));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "{\"cmd\":\"delay\",\"ms\":%u,\"command\":\"insert\"}", OP_MS);
    CU_ASSERT_TRUE(test_peer_command(peer, cmd, NULL, 0));

    pid_t workers[N_WORKERS];
    char results[N_WORKERS][64];
    start_insert_workers(&s, "drain", workers, results);
    uint32_t row = (uint32_t)msup_segment_find_cluster(&s.seg, "main");
    /* Every worker has acknowledged at least one insert: all are busy. */
    uint64_t t0 = msup_test_now_ms();
    while (test_peer_count(peer, "test", "ops") < 2 * N_WORKERS && msup_test_now_ms() - t0 < slack(8000))
        msup_test_sleep_ms(50);
    msup_test_sleep_ms(OP_MS / 2);

    long took;
    int rc = term_and_time(s.sup, slack(OP_MS + 1000 + 500), &took);
    fprintf(stderr, "\n    graceful shutdown of %d busy workers: exit %d in %ld ms (bound %u ms) ", N_WORKERS, rc, took,
            OP_MS + 1000);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(took <= (long)slack(OP_MS + 1000));

    long acked = collect_acked(workers, results);
    long stored = test_peer_count(peer, "test", "ops");
    fprintf(stderr, "peer stored %ld, workers counted %ld ", stored, acked);
    CU_ASSERT_EQUAL(stored, acked);
    CU_ASSERT_TRUE(acked >= 2 * N_WORKERS);
    expect_drained_and_unlink(&s, row, acked);
    test_peer_stop(&peer);
}

static void test_shutdown_escalates(void)
{
    test_peer_t *peer = start_standalone_peer();
    scenario_t s;
    scenario_start_on_peer(&s, "escalate", "drain_timeout_ms = 500; escalate = \"term-kill\"; escalate_grace_ms = 300;",
                           peer);
    pid_t stubborn = start_stubborn_worker(&s, "escalate");

    /* mongosupctl shutdown's way: the control socket. */
    uint64_t t0 = msup_test_now_ms();
    CU_ASSERT(control_request(s.seg_name, "shutdown"));
    int rc = wait_exit(s.sup, slack(500 + 300 + 2000));
    long took = (long)(msup_test_now_ms() - t0);
    fprintf(stderr, "\n    stubborn worker: supervisor exit %d in %ld ms ", rc, took);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(took >= 500 + 300);
    CU_ASSERT_EQUAL(wait_exit(stubborn, 2000), 128 + SIGKILL);
    CU_ASSERT_TRUE(wait_log(s.log, "mongosupctl shutdown"));
    CU_ASSERT_TRUE(wait_log(s.log, "sent SIGKILL"));
    /* The segment was unlinked (keep_segment false). */
    CU_ASSERT_FALSE(segment_file_exists(s.seg_name));
    msup_segment_close(&s.seg);
    test_peer_stop(&peer);
}

/* A second SIGTERM during the drain: no more waiting, stragglers killed. */
static void test_shutdown_second_signal(void)
{
    scenario_t s;
    pid_t stubborn = scenario_start_stubborn(&s, "twice", "drain_timeout_ms = 20000; escalate_grace_ms = 20000;");
    kill(s.sup, SIGTERM);
    uint64_t t0 = msup_test_now_ms();
    while (atomic_load(&msup_segment_hdr(&s.seg)->phase) != MSUP_PHASE_DRAINING && msup_test_now_ms() - t0 < slack(2000))
        msup_test_sleep_ms(5);
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&s.seg)->phase), MSUP_PHASE_DRAINING);
    CU_ASSERT_TRUE(atomic_load(&msup_segment_hdr(&s.seg)->drain_deadline_mono_ns) > msup_mono_ns());
    msup_test_sleep_ms(300);
    kill(s.sup, SIGTERM);
    int rc = wait_exit(s.sup, slack(3000));
    long took = (long)(msup_test_now_ms() - t0);
    fprintf(stderr, "\n    second SIGTERM: exit %d %ld ms after the first ", rc, took);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(took < (long)slack(2500));
    CU_ASSERT_EQUAL(wait_exit(stubborn, 2000), 128 + SIGKILL);
    CU_ASSERT_TRUE(wait_log(s.log, "stopping now"));
    msup_segment_close(&s.seg);
}

/* shutdown_signal: every registered worker gets it on drain.  The worker
 * ignores the draining phase, so only the signal can make it leave. */
static void test_shutdown_signal(void)
{
    scenario_t s;
    scenario_start(&s, "usr1", "drain_timeout_ms = 5000; shutdown_signal = \"USR1\";",
                   "main = { mongo_uri = \"mongodb://127.0.0.1:1/\"; };");
    const char *results[2] = {path_in_tmp("usr1.w0"), path_in_tmp("usr1.w1")};
    pid_t workers[2];
    for (int i = 0; i < 2; i++)
        start_attached_worker(&s, "usr1", "main", results[i], &workers[i]);
    long took;
    int rc = term_and_time(s.sup, slack(3000), &took);
    fprintf(stderr, "\n    shutdown_signal USR1: 2 workers left, supervisor exit %d in %ld ms (drain_timeout 5000) ",
            rc, took);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(took < 2500); /* the workers left: no wait for the deadline */
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(wait_exit(workers[i], slack(3000)), 0);
        char *text = msup_test_read_file(results[i]);
        CU_ASSERT_STRING_EQUAL(text, "SIGUSR1\n");
        free(text);
        char expect[96];
        snprintf(expect, sizeof expect, "sent SIGUSR1 to worker pid %d", (int)workers[i]);
        CU_ASSERT_TRUE(file_contains(s.log, expect));
    }
    CU_ASSERT_TRUE(file_contains(s.log, "sent SIGUSR1 to 2 workers"));
    CU_ASSERT_TRUE(file_contains(s.log, "0 workers left attached"));
    CU_ASSERT_FALSE(file_contains(s.log, "sent SIGKILL"));
    msup_segment_close(&s.seg);
}

/* escalate = "kill": SIGKILL at the deadline, no SIGTERM, no grace. */
static void test_shutdown_escalate_kill(void)
{
    scenario_t s;
    pid_t stubborn =
        scenario_start_stubborn(&s, "esckill", "drain_timeout_ms = 400; escalate = \"kill\"; escalate_grace_ms = 20000;");
    long took;
    int rc = term_and_time(s.sup, slack(3000), &took);
    fprintf(stderr, "\n    escalate kill: supervisor exit %d in %ld ms (drain 400, grace 20000 unused) ", rc, took);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(took >= 400 && took < (long)slack(2000));
    CU_ASSERT_EQUAL(wait_exit(stubborn, 2000), 128 + SIGKILL);
    CU_ASSERT_TRUE(file_contains(s.log, "sent SIGKILL"));
    CU_ASSERT_FALSE(file_contains(s.log, "sent SIGTERM"));
    CU_ASSERT_TRUE(file_contains(s.log, "0 workers left attached"));
    msup_segment_close(&s.seg);
}

/* escalate = "none": the worker is left alone, mongosupd still exits 0 with
 * a final summary that says so, and keeps the segment: the next
 * supervisor adopts it and reaps the worker once it is gone. */
static void test_shutdown_escalate_none(void)
{
    scenario_t s;
    pid_t stubborn = scenario_start_stubborn(&s, "escnone", "drain_timeout_ms = 400; escalate = \"none\";");
    long took;
    int rc = term_and_time(s.sup, slack(3000), &took);
    fprintf(stderr, "\n    escalate none: supervisor exit %d in %ld ms, worker left running ", rc, took);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(took >= 400 && took < (long)slack(2000));
    CU_ASSERT_EQUAL(waitpid(stubborn, NULL, WNOHANG), 0); /* still running */
    CU_ASSERT_TRUE(file_contains(s.log, "leaving 1 workers attached (escalate = none)"));
    CU_ASSERT_TRUE(file_contains(s.log, "1 workers left attached"));
    CU_ASSERT_TRUE(file_contains(s.log, "kept: 1 workers still attached"));
    CU_ASSERT_FALSE(file_contains(s.log, "sent SIG"));
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&s.seg)->phase), MSUP_PHASE_STOPPED);
    CU_ASSERT_TRUE(segment_file_exists(s.seg_name));

    /* The worker goes; the next supervisor adopts the segment and reaps it. */
    kill_hard(stubborn);
    const char *log2 = path_in_tmp("escnone2.log");
    unlink(log2);
    pid_t sup = start_daemon(s.conf, log2);
    /* Its start and first reap round: 17-57 s under memcheck on a loaded
     * machine (seen in CI-like runs: 5 s was missed once). */
    CU_ASSERT_TRUE(wait_log_within(log2, "process died without detaching", start_deadline_ms()));
    CU_ASSERT_TRUE(file_contains(log2, "adopted segment"));
    terminate_ok(sup, slack(5000));
    CU_ASSERT_TRUE(file_contains(log2, "0 workers left attached"));
    CU_ASSERT_FALSE(segment_file_exists(s.seg_name)); /* nobody left: removed */
    msup_segment_close(&s.seg);
}

/* Reads the daemon's syslog datagrams as they come: a unix datagram queue
 * holds few messages (net.unix.max_dgram_qlen), and syslog(3) blocks on a
 * full one as it would on a stalled syslogd. */
typedef struct syslog_reader {
    int sock;
    atomic_bool stop;
    FILE *out;
    int count;
} syslog_reader_t;

static void *syslog_reader_main(void *arg)
{
    syslog_reader_t *r = arg;
    char msg[2048];
    for (;;) {
        ssize_t n = recv(r->sock, msg, sizeof msg - 1, 0);
        if (n > 0) {
            msg[n] = '\0';
            fprintf(r->out, "%s\n", msg);
            r->count++;
        } else if (atomic_load(&r->stop)) {
            return NULL;
        } else {
            msup_test_sleep_ms(5);
        }
    }
}

/* log = "syslog": nothing on stderr; with a private /dev/log (a mount
 * namespace, root only) the messages themselves are read and checked. */
static void test_log_syslog(void)
{
    const char *seg_name = msup_test_segment_name("syslog");
    const char *conf = path_in_tmp("syslog.conf");
    write_config(conf, seg_name, "log = \"syslog\";",
                 "main = { mongo_uri = \"mongodb://alice:s3cretPW@127.0.0.1:1/\"; };");
    const char *log = path_in_tmp("syslog.stderr");
    unlink(log);
    bool isolated = isolation_available();
    const char *sock_path = path_in_tmp("syslog.sock");
    int sock = -1;
    if (isolated) {
        unlink(sock_path);
        sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
        CU_ASSERT_FATAL(sock >= 0 && bind(sock, (struct sockaddr *)&sa, sizeof sa) == 0);
    } else {
        fprintf(stderr, "\n    (no mount namespace here: syslog content not checked, stderr only) ");
    }
    char *all = NULL;
    size_t all_len = 0;
    syslog_reader_t reader = {.sock = sock, .out = open_memstream(&all, &all_len)};
    pthread_t reader_thread;
    if (sock >= 0)
        CU_ASSERT_FATAL(pthread_create(&reader_thread, NULL, syslog_reader_main, &reader) == 0);
    isolation_t iso = {.dev_log = sock_path};
    const char *args[] = {"-c", conf, NULL};
    pid_t sup = spawn_isolated(log, args, isolated ? &iso : NULL);
    msup_segment_t seg;
    bool running = open_segment(seg_name, &seg, start_deadline_ms());
    CU_ASSERT_TRUE(running);
    if (running) {
        CU_ASSERT_TRUE(wait_health(&seg, "main", MSUP_HEALTH_DOWN, slack(3000)) >= 0);
        msup_segment_close(&seg);
    }
    kill(sup, SIGHUP); /* a reload keeps the syslog target */
    msup_test_sleep_ms(300);
    kill(sup, SIGTERM);
    int rc = wait_exit(sup, slack(5000));
    if (rc != 0)
        fprintf(stderr, "\n    mongosupd with log = syslog: exit %d ", rc);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(count_lines(log), 0);
    if (sock >= 0) {
        atomic_store(&reader.stop, true);
        pthread_join(reader_thread, NULL);
        close(sock);
        unlink(sock_path);
    }
    fclose(reader.out);
    if (sock < 0) {
        free(all);
        return;
    }
    int count = reader.count;
    char ident[64];
    snprintf(ident, sizeof ident, "mongosupd[%d]: ", (int)sup);
    fprintf(stderr, "\n    %d syslog messages ", count);
    CU_ASSERT_TRUE(count >= 4);
    CU_ASSERT_PTR_NOT_NULL(strstr(all, ident));
    /* facility daemon (3): notice = <29>, warning = <28> */
    CU_ASSERT_PTR_NOT_NULL(strstr(all, "<29>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(all, "<28>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(all, "running: environment test"));
    CU_ASSERT_PTR_NOT_NULL(strstr(all, "UNKNOWN -> DOWN"));
    CU_ASSERT_PTR_NOT_NULL(strstr(all, "SIGHUP: reloading"));
    CU_ASSERT_PTR_NOT_NULL(strstr(all, "STOPPED after"));
    CU_ASSERT_PTR_NOT_NULL(strstr(all, "alice")); /* the redacted URI is there... */
    CU_ASSERT_PTR_NULL(strstr(all, "s3cretPW"));  /* ...its password is not */
    free(all);
}

/* A round trip above degraded_rtt_ms: UP -> DEGRADED, and back UP once the
 * delay is gone. */
static void test_health_degraded_rtt(void)
{
    test_peer_t *peer = start_standalone_peer();
    char clusters[512];
    snprintf(clusters, sizeof clusters, "main = { mongo_uri = \"%s\"; degraded_rtt_ms = 100; };", test_peer_uri(peer));
    scenario_t s;
    scenario_start(&s, "rtt", NULL, clusters);
    expect_up(&s, "main", slack(3000));
    msup_cluster_row_t *row = row_named(&s.seg, "main");
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    CU_ASSERT_TRUE(atomic_load(&row->last_rtt_us) < 100000u);

    /* 180 ms pings: over degraded_rtt_ms, under check_timeout_ms (300). */
    CU_ASSERT_TRUE(test_peer_command(peer, "{\"cmd\":\"delay\",\"ms\":180,\"command\":\"ping\"}", NULL, 0));
    long degraded_ms = wait_health(&s.seg, "main", MSUP_HEALTH_DEGRADED, slack(3000));
    unsigned bound = INTER + (FALL - 1) * FASTINTER + FALL * 180 + MARGIN;
    fprintf(stderr, "\n    ping delayed 180 ms -> DEGRADED in %ld ms (bound %u) ", degraded_ms, bound);
    CU_ASSERT_TRUE(degraded_ms >= 0 && (unsigned)degraded_ms <= slack(bound));
    CU_ASSERT_TRUE(atomic_load(&row->last_rtt_us) >= 150000u);
    CU_ASSERT_PTR_NOT_NULL(strstr(row->last_check_error.message, "above degraded_rtt_ms 100"));
    CU_ASSERT_TRUE(wait_log(s.log, "UP -> DEGRADED after 3 degraded or failed checks"));

    CU_ASSERT_TRUE(test_peer_command(peer, "{\"cmd\":\"clear\"}", NULL, 0));
    long up_ms = wait_health(&s.seg, "main", MSUP_HEALTH_UP, slack(3000));
    fprintf(stderr, "delay cleared -> UP in %ld ms ", up_ms);
    CU_ASSERT_TRUE(up_ms >= 0 && (unsigned)up_ms <= slack(FASTINTER + RISE * (FASTINTER + 180) + MARGIN));
    /* The count is the OK streak that made it UP (rise), not every check
     * that reached the cluster since it went DEGRADED. */
    CU_ASSERT_TRUE(wait_log(s.log, "DEGRADED -> UP after 2 good checks"));
    CU_ASSERT_TRUE(atomic_load(&row->last_rtt_us) < 100000u);
    CU_ASSERT_TRUE(wait_log(s.log, "DEGRADED -> UP"));
    scenario_stop(&s);
    test_peer_stop(&peer);
}

/* The watchdog, against a check the driver cannot bound: name resolution
 * against a resolver that never answers (a UDP socket on 127.0.0.77:53 that
 * the test holds, named by a private /etc/resolv.conf).  Then a reload that
 * replaces that cluster while its check hangs, and a shutdown with a check
 * hanging. */
/* How long the resolver itself would wait: DOWN must come before it.  Under
 * valgrind mongosupd's own start-up takes seconds of that, so the resolver
 * waits longer there (the watchdog's bound is scaled by slack() already). */
#define RESOLVER_TIMEOUT_S (msup_test_under_valgrind() ? 10 : 4)
static void test_health_watchdog(void)
{
    if (!isolation_available()) {
        fprintf(stderr, "\n    SKIPPED: needs a mount namespace (root) to point the resolver at a silent server ");
        return;
    }
    int dns = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
    inet_pton(AF_INET, "127.0.0.77", &sa.sin_addr);
    if (dns < 0 || bind(dns, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "\n    SKIPPED: cannot bind 127.0.0.77:53 (%s) ", strerror(errno));
        if (dns >= 0)
            close(dns);
        return;
    }
    const char *resolv = path_in_tmp("resolv.conf");
    write_file(resolv, "nameserver 127.0.0.77\noptions timeout:%d attempts:1\n", RESOLVER_TIMEOUT_S);
    test_peer_t *peer = start_standalone_peer();
    const char *seg_name = msup_test_segment_name("watchdog");
    const char *conf = path_in_tmp("watchdog.conf");
    char clusters[512];
    snprintf(clusters, sizeof clusters,
             "main = { mongo_uri = \"%s\"; }; lookup = { mongo_uri = \"mongodb://db.hang.invalid:27017/\"; };",
             test_peer_uri(peer));
    write_config(conf, seg_name, NULL, clusters);
    const char *log = path_in_tmp("watchdog.log");
    unlink(log);
    isolation_t iso = {.resolv_conf = resolv};
    const char *args[] = {"-c", conf, NULL};
    pid_t sup = spawn_isolated(log, args, &iso);
    msup_segment_t seg;
    CU_ASSERT_FATAL(open_segment(seg_name, &seg, start_deadline_ms()));
    /* First check at start, stuck in the lookup: failed at timeout + margin,
     * then once per fast interval while it stays stuck.  Timed from the
     * row's creation (its checks start then) to the verdict, both in
     * mongosupd's clock: timed from the spawn it counted the daemon's own
     * start-up under memcheck (11807 ms at load 40). */
    msup_cluster_row_t *lookup_row = row_named(&seg, "lookup");
    CU_ASSERT_PTR_NOT_NULL_FATAL(lookup_row);
    uint64_t created_ns = atomic_load(&lookup_row->health_since_ns);
    long down_ms = wait_health(&seg, "lookup", MSUP_HEALTH_DOWN, slack(RESOLVER_TIMEOUT_S * 1000));
    down_ms = down_ms < 0 ? -1 : (long)((atomic_load(&lookup_row->health_since_ns) - created_ns) / 1000000u);
    unsigned bound = TIMEOUT + 500 + (FALL - 1) * FASTINTER + MARGIN;
    fprintf(stderr, "\n    lookup hung -> DOWN by the watchdog %ld ms after its row appeared (bound %u; resolver: %d s) ", down_ms,
            bound, RESOLVER_TIMEOUT_S);
    CU_ASSERT_TRUE(down_ms >= 0 && (unsigned)down_ms <= slack(bound) + 500);
    CU_ASSERT_TRUE(down_ms < RESOLVER_TIMEOUT_S * 1000);
    msup_cluster_row_t *row = row_named(&seg, "lookup");
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    CU_ASSERT_TRUE(atomic_load(&row->checks_failed) >= FALL);
    CU_ASSERT_PTR_NOT_NULL(strstr(row->last_check_error.message, "watchdog"));
    CU_ASSERT_TRUE(wait_log(log, "UNKNOWN -> DOWN after 3 failed checks: check still running after"));
    CU_ASSERT_EQUAL(atomic_load(&row_named(&seg, "main")->health), MSUP_HEALTH_UP);

    /* Reload while the check hangs: "lookup" now points at the peer.  The
     * main loop does not wait for the stuck thread (heartbeat keeps going),
     * the new checker brings the row UP, and the old check's late return
     * is dropped. */
    snprintf(clusters, sizeof clusters, "main = { mongo_uri = \"%s\"; }; lookup = { mongo_uri = \"%s\"; };",
             test_peer_uri(peer), test_peer_uri(peer));
    write_config(conf, seg_name, NULL, clusters);
    uint64_t t_hup = msup_test_now_ms();
    kill(sup, SIGHUP);
    uint64_t max_gap = 0, last_hb = atomic_load(&msup_segment_hdr(&seg)->heartbeat_mono_ns);
    while (atomic_load(&row->health) != MSUP_HEALTH_UP && msup_test_now_ms() - t_hup < slack(3000)) {
        uint64_t hb = atomic_load(&msup_segment_hdr(&seg)->heartbeat_mono_ns);
        if (hb != last_hb) {
            if (hb - last_hb > max_gap)
                max_gap = hb - last_hb;
            last_hb = hb;
        }
        msup_test_sleep_ms(5);
    }
    long up_ms = (long)(msup_test_now_ms() - t_hup);
    fprintf(stderr, "reload during the hung check -> UP in %ld ms, longest heartbeat gap %llu ms ", up_ms,
            (unsigned long long)(max_gap / 1000000u));
    CU_ASSERT_EQUAL(atomic_load(&row->health), MSUP_HEALTH_UP);
    CU_ASSERT_TRUE(up_ms <= (long)slack(FASTINTER * RISE + MARGIN));
    CU_ASSERT_TRUE(max_gap / 1000000u <= slack(300));
    uint64_t failed = atomic_load(&row->checks_failed);
    CU_ASSERT_TRUE(wait_log(log, "checker stopped during a check running for"));
    /* The old lookup ends at the resolver's timeout: its result is dropped. */
    uint64_t t_wait = msup_test_now_ms();
    while (!file_contains(log, "a check of a stopped checker returned after") &&
           msup_test_now_ms() - t_wait < slack(RESOLVER_TIMEOUT_S * 1000 + 2000))
        msup_test_sleep_ms(20);
    CU_ASSERT_TRUE(file_contains(log, "a check of a stopped checker returned after"));
    msup_test_sleep_ms(100);
    CU_ASSERT_EQUAL(atomic_load(&row->health), MSUP_HEALTH_UP);
    CU_ASSERT_EQUAL(atomic_load(&row->checks_failed), failed);

    /* A shutdown while a lookup hangs: bounded, exit 0. */
    snprintf(clusters, sizeof clusters,
             "main = { mongo_uri = \"%s\"; }; lookup = { mongo_uri = \"%s\"; }; "
             "again = { mongo_uri = \"mongodb://db2.hang.invalid:27017/\"; };",
             test_peer_uri(peer), test_peer_uri(peer));
    write_config(conf, seg_name, NULL, clusters);
    kill(sup, SIGHUP);
    uint64_t t_add = msup_test_now_ms();
    while (row_named(&seg, "again") == NULL && msup_test_now_ms() - t_add < slack(2000))
        msup_test_sleep_ms(10);
    msup_test_sleep_ms(200); /* its first check is in the lookup */
    long took;
    int rc = term_and_time(sup, slack(3000), &took);
    fprintf(stderr, "shutdown with a hung lookup: exit %d in %ld ms ", rc, took);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(took <= (long)slack(TIMEOUT + 500 + 700));
    CU_ASSERT_TRUE(file_contains(log, "still stuck in a call"));
    CU_ASSERT_TRUE(file_contains(log, "STOPPED after"));
    msup_segment_close(&seg);
    test_peer_stop(&peer);
    close(dns);
}

/* The segment corrupted, then removed, under a running supervisor. */
static void test_segment_under_it(void)
{
    test_peer_t *peer = start_standalone_peer();
    scenario_t s;
    scenario_start_on_peer(&s, "corrupt", NULL, peer);
    expect_up(&s, "main", slack(3000));
    msup_segment_t rw;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_test_segment_open_rw(s.seg_name, &rw));

    /* A wrong magic and a cluster name without its terminator. */
    uint64_t magic = atomic_load(&msup_segment_hdr(&rw)->magic);
    atomic_store(&msup_segment_hdr(&rw)->magic, 0x0badc0ffee0ddf00ull);
    msup_cluster_row_t *row = msup_segment_row(&rw, 0);
    char name_saved[sizeof row->name];
    memcpy(name_saved, row->name, sizeof name_saved);
    memset(row->name, 'X', sizeof row->name);
    CU_ASSERT_TRUE(wait_log(s.log, "segment is foreign: bad magic"));
    uint64_t hb = atomic_load(&msup_segment_hdr(&s.seg)->heartbeat_mono_ns);
    CU_ASSERT_TRUE(wait_heartbeat_past(&s.seg, hb, slack(5000))); /* still supervising */
    CU_ASSERT_EQUAL(waitpid(s.sup, NULL, WNOHANG), 0);
    memcpy(row->name, name_saved, sizeof name_saved);
    atomic_store(&msup_segment_hdr(&rw)->magic, magic);
    CU_ASSERT_TRUE(wait_log(s.log, "layout is valid again"));
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_row(&s.seg, 0)->health), MSUP_HEALTH_UP);
    msup_segment_close(&rw);

    /* Removed under it: it stops (status 1, for a restart onto the new
     * segment) and never unlinks a segment by that name. */
    uint64_t t0 = msup_test_now_ms();
    CU_ASSERT_TRUE(msup_segment_unlink(s.seg_name, &err));
    int rc = wait_exit(s.sup, slack(3000));
    long took = (long)(msup_test_now_ms() - t0);
    fprintf(stderr, "\n    segment removed under mongosupd: exit %d after %ld ms ", rc, took);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_TRUE(took <= (long)slack(1500));
    CU_ASSERT_TRUE(file_contains(s.log, "was removed or replaced under mongosupd"));
    CU_ASSERT_FALSE(file_contains(s.log, "Segmentation"));
    msup_segment_close(&s.seg);
    test_peer_stop(&peer);
}

/* ------------------------------------------------------------------ */
/* The same scenarios against $MONGOSUP_TEST_URI (a real deployment)     */
/* Only what needs no fault and no counter of the peer; each run uses a  */
/* database of its own ("mongosup_test_<pid>") and drops it at the end.  */

static const char *real_database(void)
{
    static char name[64];
    snprintf(name, sizeof name, "mongosup_test_%d", (int)getpid());
    return name;
}

/* "name = { mongo_uri = ...; database_name = ...; };" on the real deployment. */
static void real_cluster(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s = { mongo_uri = \"%s\"; database_name = \"%s\"; };", name, test_peer_real_uri(),
             real_database());
}

/* Documents in the run's ops collection (-1 on error). */
static long real_count_ops(void)
{
    mongoc_client_t *client = mongoc_client_new(test_peer_real_uri());
    if (client == NULL)
        return -1;
    mongoc_collection_t *coll = mongoc_client_get_collection(client, real_database(), "ops");
    bson_t filter = BSON_INITIALIZER;
    long n = (long)mongoc_collection_count_documents(coll, &filter, NULL, NULL, NULL, NULL);
    bson_destroy(&filter);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
    return n;
}

static void real_drop_database(void)
{
    mongoc_client_t *client = mongoc_client_new(test_peer_real_uri());
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    mongoc_database_t *db = mongoc_client_get_database(client, real_database());
    bson_error_t error;
    bool dropped = mongoc_database_drop(db, &error);
    if (!dropped)
        fprintf(stderr, "could not drop database %s: %s\n", real_database(), error.message);
    CU_ASSERT_TRUE(dropped);
    mongoc_database_destroy(db);
    mongoc_client_destroy(client);
}

static bool real_wanted(const char *name)
{
    if (test_peer_real_deployment())
        return true;
    printf("\n  SKIP %s: MONGOSUP_TEST_URI is not set ", name);
    fflush(stdout);
    return false;
}

static void skip_needs_peer(const char *name)
{
    printf("\n  SKIP %s: needs the test peer (MONGOSUP_TEST_URI is a real deployment) ", name);
    fflush(stdout);
}

/* A scenario whose one cluster "main" is the real deployment (the run's own database). */
static void scenario_start_real(scenario_t *s, const char *tag, const char *supervisor_extra)
{
    char clusters[1024];
    real_cluster(clusters, sizeof clusters, "main");
    scenario_start(s, tag, supervisor_extra, clusters);
}

/* UP detection, a worker at work, a manual reconnect it follows. */
static void test_real_health_up(void)
{
    if (!real_wanted("/real/supervisor/health/up-and-manual-reconnect"))
        return;
    skip_needs_peer("/real/supervisor/health/up-and-manual-reconnect: killing and restarting the server (DOWN, DOWN -> UP)");
    scenario_t s;
    scenario_start_real(&s, "rup", NULL);
    long up_ms = wait_health(&s.seg, "main", MSUP_HEALTH_UP, slack(5000));
    fprintf(stderr, "\n    real deployment UP in %ld ms ", up_ms);
    CU_ASSERT_TRUE(up_ms >= 0);
    msup_cluster_row_t *row = row_named(&s.seg, "main");
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    CU_ASSERT_TRUE(atomic_load(&row->checks_passed) >= RISE);
    const char *result = path_in_tmp("rup.worker");
    pid_t worker;
    int slot = start_attached_worker(&s, "ping", "main", result, &worker);
    msup_test_sleep_ms(200);

    /* A manual request (mongosupctl reconnect) bumps the
     * generation; the worker rebuilds its pool within the window. */
    uint64_t gen0 = atomic_load(&row->reconnect_generation);
    request_reconnect(s.seg_name, "main");
    uint64_t t0 = msup_test_now_ms();
    uint64_t gen1 = wait_generation_past(row, gen0, t0, slack(2000), 10);
    CU_ASSERT_EQUAL(gen1, gen0 + 1);
    msup_stats_t *st = wait_reconnect_ack(&s.seg, slot, gen1, t0, slack(500 + 2000));
    CU_ASSERT_TRUE(atomic_load(&st->reconnect_ack) >= gen1);
    CU_ASSERT_TRUE(wait_log(s.log, "cause: manual request"));

    unsigned long fail;
    stop_ping_worker(worker, result, &fail);
    CU_ASSERT_EQUAL(fail, 0);
    scenario_stop(&s);
    CU_ASSERT_FALSE(file_contains(s.log, "UP -> DOWN"));
    real_drop_database();
}

/* A SIGKILLed worker is reaped with its counts kept; the supervisor is
 * SIGKILLed, the survivor keeps working, a new one adopts the segment. */
static void test_real_reap_and_restart(void)
{
    if (!real_wanted("/real/supervisor/reaper/killed-worker-and-restart"))
        return;
    skip_needs_peer("/real/supervisor/reaper/killed-worker-and-restart: catching the victim inside a slow operation");
    scenario_t s;
    scenario_start_real(&s, "rreap", NULL);
    expect_up(&s, "main", slack(5000));
    uint32_t row = (uint32_t)msup_segment_find_cluster(&s.seg, "main");

    const char *r1 = path_in_tmp("rreap.w1"), *r2 = path_in_tmp("rreap.w2");
    pid_t victim, survivor;
    int vslot = start_victim_and_survivor(&s, r1, r2, &victim, &survivor);
    msup_test_sleep_ms(500);
    wait_slot_ops(&s.seg, vslot, row);
    uint64_t victim_ops = atomic_load(&msup_slot_stats(&s.seg, (uint32_t)vslot, row)->ops[MSUP_OP_COMMAND]);
    CU_ASSERT_TRUE(victim_ops > 0);
    kill_and_expect_reaped(&s, victim, vslot, row, victim_ops, 0, NULL);

    crash_and_restart_supervisor(&s, row);
    CU_ASSERT_TRUE(wait_log(s.log, "adopted segment"));
    expect_up(&s, "main", slack(3000));

    unsigned long fail;
    stop_ping_worker(survivor, r2, &fail);
    scenario_stop(&s);
    real_drop_database();
}

/* SIGHUP adds a cluster (checked, UP) and removes one (row REMOVED). */
static void test_real_reload(void)
{
    if (!real_wanted("/real/supervisor/reload"))
        return;
    char main_block[1024], extra_block[1024], clusters[2048];
    real_cluster(main_block, sizeof main_block, "main");
    real_cluster(extra_block, sizeof extra_block, "extra");
    scenario_t s;
    scenario_start(&s, "rreload", NULL, main_block);
    expect_up(&s, "main", slack(5000));
    uint64_t gen = atomic_load(&msup_segment_hdr(&s.seg)->config_generation);

    snprintf(clusters, sizeof clusters, "%s %s", main_block, extra_block);
    reload_with(&s, clusters);
    long up_ms = wait_health(&s.seg, "extra", MSUP_HEALTH_UP, slack(5000));
    fprintf(stderr, "\n    added cluster UP %ld ms after SIGHUP ", up_ms);
    CU_ASSERT_TRUE(up_ms >= 0);
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&s.seg)->config_generation), gen + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(row_named(&s.seg, "extra"));
    CU_ASSERT_TRUE(atomic_load(&row_named(&s.seg, "extra")->checks_passed) > 0);
    CU_ASSERT_EQUAL(atomic_load(&row_named(&s.seg, "main")->health), MSUP_HEALTH_UP);

    reload_with(&s, extra_block);
    expect_main_removed(&s, gen + 2);

    scenario_stop(&s);
    real_drop_database();
}

/* SIGTERM while 8 workers insert: every worker drains and exits, and what
 * they counted as acknowledged is what the deployment stored. */
static void test_real_graceful_shutdown(void)
{
    if (!real_wanted("/real/supervisor/shutdown/graceful"))
        return;
    skip_needs_peer("/real/supervisor/shutdown/graceful: inserts slowed to 300 ms each (the drain bound)");
    scenario_t s;
    scenario_start_real(&s, "rdrain", "keep_segment = true;");
    expect_up(&s, "main", slack(5000));

    pid_t workers[N_WORKERS];
    char results[N_WORKERS][64];
    start_insert_workers(&s, "rdrain", workers, results);
    uint32_t row = (uint32_t)msup_segment_find_cluster(&s.seg, "main");
    uint64_t t0 = msup_test_now_ms();
    while (real_count_ops() < 2 * N_WORKERS && msup_test_now_ms() - t0 < slack(8000))
        msup_test_sleep_ms(50);

    long took;
    int rc = term_and_time(s.sup, slack(OP_MS + 1000 + 500), &took);
    fprintf(stderr, "\n    graceful shutdown of %d busy workers: exit %d in %ld ms ", N_WORKERS, rc, took);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(took <= (long)slack(OP_MS + 1000));
    long acked = collect_acked(workers, results);
    long stored = real_count_ops();
    fprintf(stderr, "stored %ld, workers counted %ld ", stored, acked);
    CU_ASSERT_EQUAL(stored, acked);
    CU_ASSERT_TRUE(acked >= 2 * N_WORKERS);
    expect_drained_and_unlink(&s, row, acked);
    real_drop_database();
}

static void test_real_peer_only(void)
{
    static const char *const peer_only[] = {
        "/real/supervisor/health/hung-peer", "/real/supervisor/health/replica-set",
        "/real/supervisor/health/degraded-rtt", "/real/supervisor/health/watchdog",
        "/real/supervisor/reconnect/worker-network-failures", "/real/supervisor/shutdown/escalate",
        "/real/supervisor/segment/corrupted-and-removed", NULL,
    };
    if (!real_wanted("/real/supervisor/needs-peer"))
        return;
    for (int i = 0; peer_only[i] != NULL; i++)
        skip_needs_peer(peer_only[i]);
    CU_PASS("peer-only tests listed");
}

static const msup_test_t tests[] = {
    {"/supervisor/cli/errors", test_cli_errors},
    {"/supervisor/cli/check-config", test_check_config},
    {"/supervisor/single-instance", test_single_instance},
    {"/supervisor/start/closed-stdio", test_closed_stdio},
    {"/supervisor/single-instance/simultaneous-starts", test_startup_race},
    {"/supervisor/single-instance/stopped-supervisor", test_stopped_supervisor},
    {"/supervisor/shutdown/forged-slot-not-signalled", test_forged_slot_not_signalled},
    {"/supervisor/slots/mass-replacement", test_mass_replacement},
    {"/supervisor/health/down-up-reconnect", test_health_down_up_reconnect},
    {"/supervisor/health/hung-peer", test_health_hung_peer},
    {"/supervisor/health/replica-set", test_health_replica_set},
    {"/supervisor/health/degraded-rtt", test_health_degraded_rtt},
    {"/supervisor/health/watchdog", test_health_watchdog},
    {"/supervisor/reconnect/worker-network-failures", test_reconnect_on_worker_failures},
    {"/supervisor/reaper/killed-worker-and-restart", test_reap_killed_worker_and_restart},
    {"/supervisor/reload", test_reload},
    {"/supervisor/reload/keeps-health", test_reload_keeps_health},
    {"/supervisor/worker/uri-mismatch", test_worker_uri_mismatch},
    {"/supervisor/worker/killed-leaves-no-mongoc-shm", test_killed_worker_mongoc_shm},
    {"/supervisor/shutdown/graceful", test_graceful_shutdown},
    {"/supervisor/shutdown/escalate", test_shutdown_escalates},
    {"/supervisor/shutdown/second-signal", test_shutdown_second_signal},
    {"/supervisor/shutdown/signal-workers", test_shutdown_signal},
    {"/supervisor/shutdown/escalate-kill", test_shutdown_escalate_kill},
    {"/supervisor/shutdown/escalate-none", test_shutdown_escalate_none},
    {"/supervisor/log/syslog", test_log_syslog},
    {"/supervisor/segment/corrupted-and-removed", test_segment_under_it},
    /* The same against $MONGOSUP_TEST_URI, when it names a real deployment. */
    {"/real/supervisor/health/up-and-manual-reconnect", test_real_health_up},
    {"/real/supervisor/reaper/killed-worker-and-restart", test_real_reap_and_restart},
    {"/real/supervisor/reload", test_real_reload},
    {"/real/supervisor/shutdown/graceful", test_real_graceful_shutdown},
    {"/real/supervisor/needs-peer", test_real_peer_only},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--worker") == 0)
        return worker_main(argc, argv);
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n <= 0)
        return 2;
    self_exe[n] = '\0';
    snprintf(tmpdir, sizeof tmpdir, "/tmp/msup-suptest-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    int rc = msup_test_main("supervisor_daemon", tests, argc, argv);
    if (rc == 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    } else {
        fprintf(stderr, "logs kept in %s\n", tmpdir);
    }
    return rc;
}
