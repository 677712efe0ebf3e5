/* control_socket_test.c: mongosupctl and a real mongosupd over the control socket: verdicts, credentials, overload, unsafe paths. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "ctlclient.h"
#include "segment_fixture.h"
#include "testmain.h"
#include "tools_fixture.h"

#define NOBODY 65534u

static char tmpdir[64];

/* Bounds widen under valgrind (the test process is slow, not mongosupd). */
static unsigned slack(unsigned ms)
{
    return msup_test_under_valgrind() ? ms * 3 + 2000 : ms;
}

static const char *daemon_path(void)
{
    static char path[1024];
    const char *dir = getenv("MONGOSUP_TEST_BUILDDIR");
    snprintf(path, sizeof path, "%s/supervisor/mongosupd", dir ? dir : MSUP_BUILDDIR);
    return path;
}

static bool wait_file_contains(const char *path, const char *needle, unsigned timeout_ms)
{
    uint64_t deadline = msup_test_now_ms() + timeout_ms;
    for (;;) {
        char *text = msup_test_read_file(path);
        bool found = text != NULL && strstr(text, needle) != NULL;
        free(text);
        if (found || msup_test_now_ms() >= deadline)
            return found;
        msup_test_sleep_ms(20);
    }
}

/* ------------------------------------------------------------------ */
/* A mongosupd of its own for each test                                 */

typedef struct daemon {
    char seg[64];
    char conf[128];
    char log[128];
    char sock[108]; /* sun_path */
    pid_t pid;
} daemon_t;

static void write_conf(const daemon_t *d, const char *segment_extra, const char *clusters)
{
    FILE *f = fopen(d->conf, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f,
            "segment = { name = \"%s\"; max_workers = 8; max_clusters = 4; %s };\n"
            "supervisor = { control_socket = \"%s\"; heartbeat_interval_ms = 100; drain_timeout_ms = 2000;\n"
            "               reap_interval_ms = 100; };\n"
            "default_environment = \"test\";\n"
            "defaults = { check_interval_ms = 500; check_timeout_ms = 200; reconnect_min_interval_ms = 0; };\n"
            "environments = { test = { clusters = { %s }; }; };\n",
            d->seg, segment_extra ? segment_extra : "", d->sock, clusters);
    fclose(f);
}

static const char *const ONE_CLUSTER = "users = { mongo_uri = \"mongodb://127.0.0.1:1/\"; };";

static void daemon_init(daemon_t *d, const char *tag)
{
    memset(d, 0, sizeof *d);
    snprintf(d->seg, sizeof d->seg, "%s", msup_test_segment_name(tag));
    snprintf(d->conf, sizeof d->conf, "%s/%s.conf", tmpdir, tag);
    snprintf(d->log, sizeof d->log, "%s/%s.log", tmpdir, tag);
    snprintf(d->sock, sizeof d->sock, "%s/%s.sock", tmpdir, tag);
}

static pid_t spawn_daemon(const daemon_t *d)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        execl(daemon_path(), "mongosupd", "-c", d->conf, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Exit status of pid within timeout_ms, or -1 (then it is killed). */
static int wait_exit(pid_t pid, unsigned timeout_ms)
{
    uint64_t deadline = msup_test_now_ms() + timeout_ms;
    int st;
    while (msup_test_now_ms() < deadline) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        msup_test_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* One request with the client library; the verdict into out. */
static msup_ctl_status_t ask(const char *sock, const char *line, char *out, size_t n)
{
    msup_ctl_answer_t a;
    mongosup_error_t err;
    msup_ctl_status_t st = msup_ctl_request(sock, line, slack(3000), &a, &err);
    snprintf(out, n, "%s", st == MSUP_CTL_ANSWER_OK || st == MSUP_CTL_ANSWER_ERROR ? a.verdict : err.message);
    msup_ctl_answer_free(&a);
    return st;
}

/* Waits until a mongosupd just spawned answers a ping on sock; the last
 * failure's reason in why.  A start-up deadline, not a bound: on a loaded
 * machine mongosupd's start-up alone has taken 17 s (supervisor_daemon_test's
 * start_deadline_ms). */
static bool wait_answering(const char *sock, char *why, size_t n)
{
    uint64_t deadline = msup_test_now_ms() + slack(30000);
    while (ask(sock, "ping", why, n) != MSUP_CTL_ANSWER_OK && msup_test_now_ms() < deadline)
        msup_test_sleep_ms(20);
    return ask(sock, "ping", why, n) == MSUP_CTL_ANSWER_OK;
}

/* Starts mongosupd and waits for its socket to answer. */
static void daemon_start(daemon_t *d, const char *tag, const char *segment_extra)
{
    daemon_init(d, tag);
    write_conf(d, segment_extra, ONE_CLUSTER);
    d->pid = spawn_daemon(d);
    CU_ASSERT_FATAL(d->pid > 0);
    char why[512] = "";
    if (!wait_answering(d->sock, why, sizeof why)) {
        char *log = msup_test_read_file(d->log);
        fprintf(stderr, "\nmongosupd did not answer on %s: %s\n%s\n", d->sock, why, log ? log : "");
        free(log);
        CU_FAIL_FATAL("mongosupd did not start");
    }
}

static void daemon_stop(daemon_t *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        CU_ASSERT_EQUAL(wait_exit(d->pid, slack(10000)), 0);
        d->pid = 0;
    }
    msup_segment_unlink(d->seg, NULL);
    unlink(d->conf);
    unlink(d->log);
    unlink(d->sock);
}

/* mongosupctl ARGS against d (with -c), stdout and stderr together. */
static char *ctl(const daemon_t *d, const char *args, int *status)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s -c %s %s", fx_tool("mongosupctl"), d->conf, args);
    return fx_run(cmd, true, status);
}

static uint64_t generation(const daemon_t *d)
{
    msup_segment_t seg;
    mongosup_error_t err;
    if (!msup_segment_open_readonly(d->seg, (uid_t)-1, &seg, &err))
        return 0;
    if (msup_segment_control(&seg) == NULL) {
        msup_segment_close(&seg);
        return 0;
    }
    uint64_t g = atomic_load(&msup_segment_hdr(&seg)->config_generation);
    msup_segment_close(&seg);
    return g;
}

/* ------------------------------------------------------------------ */
/* Verdicts                                                             */

static void test_reload_good(void)
{
    daemon_t d;
    daemon_start(&d, "rgood", NULL);
    uint64_t g0 = generation(&d);
    CU_ASSERT(g0 >= 1);
    /* A second cluster: the new file is applied, and the answer says so. */
    write_conf(&d, NULL, "users = { mongo_uri = \"mongodb://127.0.0.1:1/\"; };\n"
                         "orders = { mongo_uri = \"mongodb://127.0.0.1:2/\"; };");
    int st;
    char *out = ctl(&d, "reload", &st);
    CU_ASSERT_EQUAL(st, 0);
    char want[64];
    snprintf(want, sizeof want, "reload: generation %llu", (unsigned long long)(g0 + 1));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, want));
    if (st != 0 || out == NULL || strstr(out, want) == NULL)
        fprintf(stderr, "\nreload: %s (want %s)\n", out ? out : "", want);
    free(out);
    CU_ASSERT_EQUAL(generation(&d), g0 + 1);
    out = ctl(&d, "status", &st);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "orders"));
    free(out);
    /* SIGHUP still reloads, for systemd's ExecReload and operators. */
    kill(d.pid, SIGHUP);
    uint64_t deadline = msup_test_now_ms() + slack(3000);
    while (generation(&d) != g0 + 2 && msup_test_now_ms() < deadline)
        msup_test_sleep_ms(20);
    CU_ASSERT_EQUAL(generation(&d), g0 + 2);
    daemon_stop(&d);
}

static void test_reload_bad(void)
{
    daemon_t d;
    daemon_start(&d, "rbad", NULL);
    uint64_t g0 = generation(&d);
    FILE *f = fopen(d.conf, "a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("supervisor_typo = ;\n", f); /* line 7: a syntax error */
    fclose(f);
    int st;
    char *out = ctl(&d, "-s ", &st); /* usage: -s needs a path */
    CU_ASSERT_EQUAL(st, 64);
    free(out);
    char args[256];
    snprintf(args, sizeof args, "-s %s reload", d.sock); /* -s: the file cannot be read by the client here */
    out = ctl(&d, args, &st);
    CU_ASSERT_EQUAL(st, 1);
    char want[256];
    snprintf(want, sizeof want, "mongosupctl: reload: %s:7:", d.conf);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, want));
    if (out == NULL || strstr(out, want) == NULL)
        fprintf(stderr, "\nbad reload said: %s (want %s)\n", out ? out : "", want);
    free(out);
    /* With -c, mongosupctl reads the same file to find the socket: the same
     * reason, and a failure, not "no supervisor". */
    out = ctl(&d, "reload", &st);
    CU_ASSERT_EQUAL(st, 1);
    snprintf(want, sizeof want, "%s:7:", d.conf);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, want));
    free(out);
    /* The running configuration stays, and the supervisor with it. */
    CU_ASSERT_EQUAL(generation(&d), g0);
    char why[512];
    CU_ASSERT_EQUAL(ask(d.sock, "ping", why, sizeof why), MSUP_CTL_ANSWER_OK);
    CU_ASSERT(wait_file_contains(d.log, "reload rejected, the running configuration stays", slack(1000)));
    daemon_stop(&d);
}

static void test_shutdown(void)
{
    daemon_t d;
    daemon_start(&d, "shut", NULL);
    int st;
    char *out = ctl(&d, "shutdown --wait --timeout 20", &st);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "shutdown: DRAINING"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "the supervisor has stopped"));
    CU_ASSERT_PTR_NULL(out && strstr(out, "phase RUNNING"));
    free(out);
    CU_ASSERT_EQUAL(wait_exit(d.pid, slack(5000)), 0);
    d.pid = 0;
    CU_ASSERT(wait_file_contains(d.log, "shutdown (mongosupctl shutdown (uid", 1000));
    struct stat sb;
    CU_ASSERT_EQUAL(lstat(d.sock, &sb), -1); /* the socket went with it */
    out = ctl(&d, "reload", &st);
    CU_ASSERT_EQUAL(st, 3);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "no control socket at"));
    free(out);
    daemon_stop(&d);
}

static void test_reconnect(void)
{
    daemon_t d;
    daemon_start(&d, "recon", NULL);
    msup_segment_t seg;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_segment_open_readonly(d.seg, (uid_t)-1, &seg, &err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(msup_segment_control(&seg));
    int idx = msup_segment_find_cluster(&seg, "users");
    CU_ASSERT_FATAL(idx >= 0);
    const msup_cluster_row_t *row = msup_segment_row(&seg, (uint32_t)idx);
    uint64_t g0 = atomic_load(&row->reconnect_generation);
    int st;
    char *out = ctl(&d, "reconnect users", &st);
    CU_ASSERT_EQUAL(st, 0);
    char want[64];
    snprintf(want, sizeof want, "cluster users: generation %llu", (unsigned long long)(g0 + 1));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, want));
    free(out);
    CU_ASSERT_EQUAL(atomic_load(&row->reconnect_generation), g0 + 1); /* done when answered */
    out = ctl(&d, "reconnect nosuch", &st);
    CU_ASSERT_EQUAL(st, 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "no cluster 'nosuch'"));
    free(out);
    CU_ASSERT_EQUAL(atomic_load(&row->reconnect_generation), g0 + 1);
    msup_segment_close(&seg);
    daemon_stop(&d);
}

/* Raw protocol: what a hand-written client gets. */
static void raw_exchange(const char *sock, const char *send_bytes, size_t len, bool half_close, char *out, size_t n)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
    out[0] = '\0';
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (write(fd, send_bytes, len) != (ssize_t)len)
        fprintf(stderr, "\nshort write\n");
    if (half_close)
        shutdown(fd, SHUT_WR);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < n && (r = read(fd, out + got, n - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(fd);
}

static void test_protocol(void)
{
    daemon_t d;
    daemon_start(&d, "proto", NULL);
    struct stat sb;
    CU_ASSERT_FATAL(lstat(d.sock, &sb) == 0);
    CU_ASSERT(S_ISSOCK(sb.st_mode));
    CU_ASSERT_EQUAL(sb.st_mode & 07777, 0600);
    CU_ASSERT_EQUAL(sb.st_uid, geteuid());
    char out[4096];
    raw_exchange(d.sock, "frobnicate\n", 11, false, out, sizeof out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "error unknown command 'frobnicate'"));
    raw_exchange(d.sock, "reload now\n", 11, false, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "error reload takes no argument\n");
    raw_exchange(d.sock, "reconnect\n", 10, false, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "error reconnect needs an argument\n");
    raw_exchange(d.sock, "ping", 4, true, out, sizeof out); /* no newline, then EOF */
    CU_ASSERT_EQUAL(strncmp(out, "ok mongosupd ", 13), 0);
    char big[400];
    memset(big, 'x', sizeof big);
    raw_exchange(d.sock, big, sizeof big, false, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "error request longer than 255 bytes\n");
    raw_exchange(d.sock, "status\r\n", 8, false, out, sizeof out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "cluster users "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\nok 1 clusters, phase RUNNING"));
    /* A control character sent back is escaped: one answer, one line. */
    raw_exchange(d.sock, "x\033[2J\n", 6, false, out, sizeof out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "'x\\x1b[2J'"));
    daemon_stop(&d);
}

/* ------------------------------------------------------------------ */
/* mongosupctl never signals what the segment names                     */

static void test_never_signals_segment_pid(void)
{
    daemon_t d;
    daemon_start(&d, "forge", NULL);
    pid_t victim = fork();
    if (victim == 0) {
        execl("/bin/sleep", "sleep", "60", (char *)NULL);
        _exit(127);
    }
    CU_ASSERT_FATAL(victim > 0);
    /* Exec done: the victim is a plain `sleep` that maps nothing of ours
     * (a fixed 50 ms could leave it a copy of this process). */
    CU_ASSERT(msup_test_wait_exec(victim, "sleep", slack(10000)));
    /* What a writer of the control segment (the supervisor's uid) could
     * do: name another process, with its start time, as the supervisor. */
    msup_segment_t rw;
    CU_ASSERT_FATAL(msup_test_segment_open_rw(d.seg, &rw));
    CU_ASSERT_PTR_NOT_NULL_FATAL(msup_segment_control(&rw));
    atomic_store(&msup_segment_hdr(&rw)->supervisor_start_time, msup_proc_start_time(victim));
    atomic_store(&msup_segment_hdr(&rw)->supervisor_pid, victim);
    msup_segment_close(&rw);
    int st;
    free(ctl(&d, "reload", &st));
    CU_ASSERT_EQUAL(st, 0);
    char *out = ctl(&d, "shutdown --wait --timeout 20", &st);
    CU_ASSERT_EQUAL(st, 0);
    free(out);
    CU_ASSERT_EQUAL(wait_exit(d.pid, slack(5000)), 0); /* the real supervisor got the request */
    d.pid = 0;
    msup_test_sleep_ms(100);
    CU_ASSERT_EQUAL(waitpid(victim, NULL, WNOHANG), 0); /* SIGHUP or SIGTERM would have ended it */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)victim);
    char *status = msup_test_read_file(path);
    CU_ASSERT_PTR_NOT_NULL(status && strstr(status, "SigPnd:\t0000000000000000"));
    CU_ASSERT_PTR_NOT_NULL(status && strstr(status, "ShdPnd:\t0000000000000000"));
    free(status);
    kill(victim, SIGKILL);
    waitpid(victim, NULL, 0);
    daemon_stop(&d);
}

/* ------------------------------------------------------------------ */
/* Credentials                                                          */

static bool skip_unless_root(const char *name)
{
    if (geteuid() == 0)
        return false;
    fprintf(stderr, "\n%s: SKIP: needs root to switch a child to uid %u (nobody)\n", name, NOBODY);
    return true;
}

static void become_nobody(void)
{
    if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
        _exit(126);
}

/* Runs mongosupctl -s sock ARGS as nobody; its output in out. */
static int ctl_as_nobody(const char *sock, const char *cmd, char *out, size_t n)
{
    char outpath[128];
    snprintf(outpath, sizeof outpath, "%s/nobody.out", tmpdir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        become_nobody();
        execl(fx_tool("mongosupctl"), "mongosupctl", "-s", sock, cmd, (char *)NULL);
        _exit(127);
    }
    int rc = wait_exit(pid, slack(10000));
    char *text = msup_test_read_file(outpath);
    snprintf(out, n, "%s", text ? text : "");
    free(text);
    unlink(outpath);
    return rc;
}

/* A socket that a careless chmod opened to everyone: the peer check still
 * refuses a stranger, whatever the command. */
static void test_credentials_stranger(void)
{
    if (skip_unless_root("/control/credentials/stranger"))
        return;
    daemon_t d;
    daemon_start(&d, "cstranger", NULL);
    uint64_t g0 = generation(&d);
    char out[1024];
    /* Mode 0600: the file system refuses first. */
    CU_ASSERT_EQUAL(ctl_as_nobody(d.sock, "reload", out, sizeof out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "permission denied on"));
    CU_ASSERT_EQUAL(chmod(d.sock, 0666), 0);
    static const char *const cmds[] = {"reload", "shutdown", "ping"};
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(ctl_as_nobody(d.sock, cmds[i], out, sizeof out), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "refused: uid 65534 may not use this socket"));
        if (strstr(out, "refused: uid 65534") == NULL)
            fprintf(stderr, "\n%s as nobody: %s\n", cmds[i], out);
    }
    /* Nothing happened: same generation, still running. */
    CU_ASSERT_EQUAL(generation(&d), g0);
    char why[512];
    CU_ASSERT_EQUAL(ask(d.sock, "ping", why, sizeof why), MSUP_CTL_ANSWER_OK);
    CU_ASSERT(wait_file_contains(d.log, "connection from uid 65534", 1000));
    daemon_stop(&d);
}

/* The segment's group may ask ping and status, never change anything. */
static void test_credentials_group(void)
{
    if (skip_unless_root("/control/credentials/group"))
        return;
    struct group *g = getgrgid(NOBODY);
    if (g == NULL) {
        fprintf(stderr, "\n/control/credentials/group: SKIP: no group %u\n", NOBODY);
        return;
    }
    char extra[128];
    snprintf(extra, sizeof extra, "mode = \"0640\"; group = \"%s\";", g->gr_name);
    daemon_t d;
    daemon_start(&d, "cgroup", extra);
    struct stat sb;
    CU_ASSERT_FATAL(lstat(d.sock, &sb) == 0);
    CU_ASSERT_EQUAL(sb.st_mode & 07777, 0660);
    CU_ASSERT_EQUAL(sb.st_gid, NOBODY);
    uint64_t g0 = generation(&d);
    char out[1024];
    CU_ASSERT_EQUAL(ctl_as_nobody(d.sock, "ping", out, sizeof out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "ping: mongosupd"));
    CU_ASSERT_EQUAL(ctl_as_nobody(d.sock, "reload", out, sizeof out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "reload: refused: reload needs uid 0 or root, not uid 65534"));
    CU_ASSERT_EQUAL(ctl_as_nobody(d.sock, "shutdown", out, sizeof out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "refused: shutdown needs uid 0"));
    CU_ASSERT_EQUAL(generation(&d), g0);
    char why[512];
    CU_ASSERT_EQUAL(ask(d.sock, "ping", why, sizeof why), MSUP_CTL_ANSWER_OK); /* not shutting down */
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "phase RUNNING"));
    daemon_stop(&d);
}

/* A socket in a directory anyone may write, answered by a stranger: the
 * client does not believe it. */
static void test_client_distrusts_stranger(void)
{
    if (skip_unless_root("/control/client/untrusted-peer"))
        return;
    char dir[80], sock[108];
    snprintf(dir, sizeof dir, "%s/open", tmpdir);
    CU_ASSERT_FATAL(mkdir(dir, 0755) == 0 && chmod(dir, 01777) == 0);
    snprintf(sock, sizeof sock, "%s/fake.sock", dir);
    int ready[2];
    CU_ASSERT_FATAL(pipe(ready) == 0);
    pid_t fake = fork();
    if (fake == 0) {
        become_nobody();
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0)
            _exit(1);
        if (write(ready[1], "r", 1) != 1)
            _exit(1);
        for (;;) {
            int c = accept(fd, NULL, NULL);
            if (c >= 0 && write(c, "ok generation 99\n", 17) == 17)
                close(c);
        }
    }
    char r;
    CU_ASSERT_FATAL(read(ready[0], &r, 1) == 1);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s -s %s reload", fx_tool("mongosupctl"), sock);
    int st;
    char *out = fx_run(cmd, true, &st);
    CU_ASSERT_EQUAL(st, 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "runs as uid 65534"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "not trusted"));
    CU_ASSERT_PTR_NULL(out && strstr(out, "generation 99"));
    free(out);
    kill(fake, SIGKILL);
    waitpid(fake, NULL, 0);
    close(ready[0]);
    close(ready[1]);
    unlink(sock);
    rmdir(dir);
}

/* ------------------------------------------------------------------ */
/* Client errors                                                        */

static int listen_at(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void test_client_errors(void)
{
    char sock[108], cmd[512];
    int st;
    snprintf(sock, sizeof sock, "%s/none.sock", tmpdir);
    snprintf(cmd, sizeof cmd, "%s -s %s reload", fx_tool("mongosupctl"), sock);
    char *out = fx_run(cmd, true, &st);
    CU_ASSERT_EQUAL(st, 3);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "no control socket at"));
    free(out);
    /* A socket nobody listens on any more. */
    int fd = listen_at(sock);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    out = fx_run(cmd, true, &st);
    CU_ASSERT_EQUAL(st, 3);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "nothing listens on"));
    free(out);
    unlink(sock);
    /* Someone who accepts (the backlog does) and never answers. */
    fd = listen_at(sock);
    CU_ASSERT_FATAL(fd >= 0);
    snprintf(cmd, sizeof cmd, "%s -s %s -t 0.3 reload", fx_tool("mongosupctl"), sock);
    uint64_t t0 = msup_test_now_ms();
    out = fx_run(cmd, true, &st);
    uint64_t took = msup_test_now_ms() - t0;
    CU_ASSERT_EQUAL(st, 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "no answer from mongosupd on"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "within 300 ms"));
    CU_ASSERT(took >= 300);
    free(out);
    close(fd);
    unlink(sock);
    /* Usage. */
    snprintf(cmd, sizeof cmd, "%s -s relative.sock reload", fx_tool("mongosupctl"));
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 64);
    snprintf(cmd, sizeof cmd, "%s -s %s -t 0 reload", fx_tool("mongosupctl"), sock);
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 64);
}

/* ------------------------------------------------------------------ */
/* Overload: idle and slow clients                                      */

typedef struct watch {
    const char *seg;
    volatile bool stop;
    uint64_t max_age_ms;
    uint64_t samples;
} watch_t;

static void *watch_heartbeat(void *arg)
{
    watch_t *w = arg;
    msup_segment_t seg;
    mongosup_error_t err;
    if (!msup_segment_open_readonly(w->seg, (uid_t)-1, &seg, &err))
        return NULL;
    if (msup_segment_control(&seg) == NULL) {
        msup_segment_close(&seg);
        return NULL;
    }
    while (!w->stop) {
        uint64_t hb = atomic_load(&msup_segment_hdr(&seg)->heartbeat_mono_ns);
        uint64_t now = msup_mono_ns();
        uint64_t age = now > hb ? (now - hb) / 1000000u : 0;
        if (age > w->max_age_ms)
            w->max_age_ms = age;
        w->samples++;
        msup_test_sleep_ms(10);
    }
    msup_segment_close(&seg);
    return NULL;
}

typedef struct slowloris {
    const char *sock;
    volatile bool stop;
    _Atomic long closed_after_ms; /* -1: never saw the close (yet) */
} slowloris_t;

/* One byte every 100 ms, never a newline, until the server hangs up. */
static void *slowloris_main(void *arg)
{
    slowloris_t *s = arg;
    s->closed_after_ms = -1;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->sock);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return NULL;
    uint64_t t0 = msup_test_now_ms();
    while (!s->stop) {
        if (send(fd, "p", 1, MSG_NOSIGNAL) != 1) {
            s->closed_after_ms = (long)(msup_test_now_ms() - t0);
            break;
        }
        msup_test_sleep_ms(100);
    }
    close(fd);
    return NULL;
}

/* Waits until the slowloris has seen the server hang up, or the deadline
 * (a msup_test_now_ms() instant) has passed. */
static void wait_slowloris_closed(const slowloris_t *s, uint64_t deadline)
{
    while (atomic_load(&s->closed_after_ms) < 0 && msup_test_now_ms() < deadline)
        msup_test_sleep_ms(10);
}

#define IDLE_CLIENTS 100

static void test_idle_and_slow_clients(void)
{
    daemon_t d;
    daemon_start(&d, "flood", NULL);
    watch_t w = {.seg = d.seg};
    pthread_t wt, st_thread;
    CU_ASSERT_FATAL(pthread_create(&wt, NULL, watch_heartbeat, &w) == 0);
    slowloris_t slow = {.sock = d.sock, .closed_after_ms = -1};
    CU_ASSERT_FATAL(pthread_create(&st_thread, NULL, slowloris_main, &slow) == 0);

    int idle[IDLE_CLIENTS];
    int connected = 0;
    uint64_t last_connected = 0;
    for (int i = 0; i < IDLE_CLIENTS; i++) {
        idle[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", d.sock);
        uint64_t deadline = msup_test_now_ms() + slack(2000);
        int rc;
        while ((rc = connect(idle[i], (struct sockaddr *)&sa, sizeof sa)) != 0 && errno == EAGAIN &&
               msup_test_now_ms() < deadline)
            msup_test_sleep_ms(1); /* a full backlog: mongosupd accepts them in its next pass */
        connected += rc == 0;
        last_connected = msup_test_now_ms();
    }
    CU_ASSERT_EQUAL(connected, IDLE_CLIENTS);
    msup_test_sleep_ms(200);

    /* An operator's request while they all hang on. */
    uint64_t t0 = msup_test_now_ms();
    int st;
    char *out = ctl(&d, "reload", &st);
    uint64_t took = msup_test_now_ms() - t0;
    fprintf(stderr, "\n    reload with %d idle clients and a slowloris: %llu ms ", IDLE_CLIENTS,
            (unsigned long long)took);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "reload: generation"));
    free(out);
    /* Below the per-connection deadline: it never waited for one to expire. */
    CU_ASSERT(took < slack(MSUP_CONTROL_DEADLINE_MS));

    /* Past the deadline every idle connection has been closed by mongosupd.
     * Each deadline counts from its accept, which the backlog and a loaded
     * machine delay: the wait ends at a deadline from the last connect
     * rather than after a fixed sleep. */
    int closed = 0;
    uint64_t close_deadline = last_connected + slack(MSUP_CONTROL_DEADLINE_MS + 2000);
    for (int i = 0; i < IDLE_CLIENTS; i++) {
        char buf[256];
        ssize_t n;
        for (;;) {
            while ((n = recv(idle[i], buf, sizeof buf, MSG_DONTWAIT)) > 0)
                ;
            if (n == 0 || msup_test_now_ms() >= close_deadline)
                break;
            msup_test_sleep_ms(10);
        }
        closed += n == 0;
        close(idle[i]);
    }
    CU_ASSERT_EQUAL(closed, IDLE_CLIENTS);
    /* The slowloris sees its close at its next byte (100 ms apart), maybe
     * after the idle ones (its thread may have connected last). */
    wait_slowloris_closed(&slow, close_deadline);
    slow.stop = true;
    pthread_join(st_thread, NULL);
    fprintf(stderr, "slowloris closed after %ld ms ", slow.closed_after_ms);
    CU_ASSERT(slow.closed_after_ms >= 0 && slow.closed_after_ms <= (long)slack(MSUP_CONTROL_DEADLINE_MS + 500));

    /* Alone (nobody evicts it), a slow writer lasts its deadline, no more. */
    slowloris_t alone = {.sock = d.sock, .closed_after_ms = -1};
    CU_ASSERT_FATAL(pthread_create(&st_thread, NULL, slowloris_main, &alone) == 0);
    /* Until it sees the close (the bound is asserted below), not a fixed
     * DEADLINE + 800 ms that a slowly scheduled thread could overrun. */
    wait_slowloris_closed(&alone, msup_test_now_ms() + slack(MSUP_CONTROL_DEADLINE_MS * 3));
    alone.stop = true;
    pthread_join(st_thread, NULL);
    fprintf(stderr, "a lone slowloris closed after %ld ms ", alone.closed_after_ms);
    CU_ASSERT(alone.closed_after_ms >= MSUP_CONTROL_DEADLINE_MS - 200);
    CU_ASSERT(alone.closed_after_ms >= 0 && alone.closed_after_ms <= (long)slack(MSUP_CONTROL_DEADLINE_MS + 600));
    w.stop = true;
    pthread_join(wt, NULL);
    fprintf(stderr, "heartbeat max age %llu ms over %llu samples ", (unsigned long long)w.max_age_ms,
            (unsigned long long)w.samples);
    /* heartbeat_interval_ms = 100; workers distrust it past 3000. */
    CU_ASSERT(w.samples > 100);
    CU_ASSERT(w.max_age_ms < slack(500));
    daemon_stop(&d);
}

/* ------------------------------------------------------------------ */
/* What may already be at the path                                      */

/* Starts mongosupd on d's files and expects it to refuse with one line. */
static void expect_refused(daemon_t *d, const char *needle)
{
    pid_t pid = spawn_daemon(d);
    CU_ASSERT_EQUAL(wait_exit(pid, slack(5000)), 1);
    char *log = msup_test_read_file(d->log);
    CU_ASSERT_PTR_NOT_NULL(log && strstr(log, needle));
    int lines = 0;
    for (const char *p = log; p && *p; p++)
        lines += *p == '\n';
    CU_ASSERT_EQUAL(lines, 1);
    if (log == NULL || strstr(log, needle) == NULL || lines != 1)
        fprintf(stderr, "\nwanted one line with '%s', got:\n%s\n", needle, log ? log : "");
    free(log);
    /* It let go of the segment: no supervisor recorded, nothing started. */
    msup_segment_t seg;
    mongosup_error_t err;
    if (msup_segment_open_readonly(d->seg, (uid_t)-1, &seg, &err)) {
        if (msup_segment_control(&seg) != NULL) {
            CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&seg)->supervisor_pid), 0);
            CU_ASSERT_EQUAL(atomic_load(&msup_segment_hdr(&seg)->config_generation), 0);
        }
        msup_segment_close(&seg);
    }
    msup_segment_unlink(d->seg, NULL);
}

static void test_path_not_a_socket(void)
{
    daemon_t d;
    daemon_init(&d, "notsock");
    write_conf(&d, NULL, ONE_CLUSTER);
    FILE *f = fopen(d.sock, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("precious\n", f);
    fclose(f);
    expect_refused(&d, "exists and is not a socket");
    char *kept = msup_test_read_file(d.sock);
    CU_ASSERT_PTR_NOT_NULL(kept && strcmp(kept, "precious\n") == 0);
    free(kept);
    unlink(d.sock);
    /* A live listener: someone answers there. */
    int fd = listen_at(d.sock);
    CU_ASSERT_FATAL(fd >= 0);
    expect_refused(&d, "another process answers on the control socket");
    close(fd);
    unlink(d.sock);
    /* A socket of another user's. */
    if (geteuid() == 0) {
        fd = listen_at(d.sock);
        close(fd);
        CU_ASSERT_EQUAL(chown(d.sock, NOBODY, NOBODY), 0);
        expect_refused(&d, "is owned by uid 65534");
        unlink(d.sock);
    }
    /* A directory others may write. */
    char dir[80];
    snprintf(dir, sizeof dir, "%s/shared", tmpdir);
    CU_ASSERT_FATAL(mkdir(dir, 0755) == 0 && chmod(dir, 0777) == 0);
    snprintf(d.sock, sizeof d.sock, "%s/x.sock", dir);
    write_conf(&d, NULL, ONE_CLUSTER);
    expect_refused(&d, "is writable by group or others (mode 0777)");
    rmdir(dir);
    daemon_stop(&d);
}

static void test_stale_socket(void)
{
    daemon_t d;
    daemon_init(&d, "stale");
    /* What a SIGKILLed mongosupd leaves: its socket, nobody behind it. */
    int fd = listen_at(d.sock);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    daemon_t started;
    daemon_start(&started, "stale", NULL);
    CU_ASSERT(wait_file_contains(started.log, "removed a stale socket", 1000));
    struct stat sb;
    CU_ASSERT(lstat(started.sock, &sb) == 0 && S_ISSOCK(sb.st_mode) && (sb.st_mode & 07777) == 0600);
    /* And the way it is left now: SIGKILL, then a new start. */
    kill(started.pid, SIGKILL);
    waitpid(started.pid, NULL, 0);
    started.pid = spawn_daemon(&started);
    char why[512] = "";
    CU_ASSERT(wait_answering(started.sock, why, sizeof why));
    daemon_stop(&started);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/control/reload/good-file", test_reload_good},
        {"/control/reload/bad-file", test_reload_bad},
        {"/control/shutdown", test_shutdown},
        {"/control/reconnect", test_reconnect},
        {"/control/protocol", test_protocol},
        {"/control/never-signals-segment-pid", test_never_signals_segment_pid},
        {"/control/credentials/stranger", test_credentials_stranger},
        {"/control/credentials/group", test_credentials_group},
        {"/control/client/untrusted-peer", test_client_distrusts_stranger},
        {"/control/client/errors", test_client_errors},
        {"/control/overload/idle-and-slowloris", test_idle_and_slow_clients},
        {"/control/path/refused", test_path_not_a_socket},
        {"/control/path/stale-socket", test_stale_socket},
        {NULL, NULL},
    };
    snprintf(tmpdir, sizeof tmpdir, "/tmp/msup-ctltest-XXXXXX");
    if (mkdtemp(tmpdir) == NULL || chmod(tmpdir, 0755) != 0) {
        perror("mkdtemp");
        return 2;
    }
    int rc = msup_test_main("control_socket", tests, argc, argv);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
