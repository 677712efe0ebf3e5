/* tools_ctl_test.c: mongosupctl's commands against a hand-filled segment and a scripted control socket. */
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testmain.h"
#include "tools_fixture.h"

static char seg_name[64];
static msup_segment_t seg;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A `sleep` child plays the supervisor process: a live pid with a start time. */
static pid_t spawn_sleep(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void reap(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* How a child ended: its terminating signal, or 0 when it still runs after wait_ms. */
static int end_signal(pid_t pid, int wait_ms)
{
    int st;
    for (int i = 0; i < wait_ms / 10; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFSIGNALED(st) ? WTERMSIG(st) : 1000 + WEXITSTATUS(st);
        sleep_ms(10);
    }
    return 0;
}

static pid_t setup(void)
{
    snprintf(seg_name, sizeof seg_name, "%s", msup_test_segment_name("ctl"));
    pid_t sup = spawn_sleep();
    CU_ASSERT_FATAL(sup > 0);
    CU_ASSERT_FATAL(fx_create(seg_name, sup, getpid(), &seg));
    return sup;
}

static void teardown(pid_t sup)
{
    if (sup > 0)
        reap(sup);
    msup_segment_close(&seg);
    msup_segment_unlink(seg_name, NULL);
}

static char *ctl(const char *args, int *status)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s -n %s %s", fx_tool("mongosupctl"), seg_name, args);
    return fx_run(cmd, true, status);
}

static void set_health(uint32_t row, uint32_t h)
{
    atomic_store(&msup_segment_row(&seg, row)->health, h);
}

/* mongosupctl status with a fresh heartbeat: the verdicts below are about
 * the clusters, and the fixture's beat turns stale 3 s after fx_create,
 * which a few tool runs on a loaded machine (or memcheck) can outlast. */
static char *status_alive(const char *args, int *status)
{
    fx_heartbeat(&seg);
    return ctl(args, status);
}

static void test_status_codes(void)
{
    pid_t sup = setup();
    int st;
    /* users UP, orders DEGRADED, billing DOWN -> 2 */
    char *out = status_alive("status", &st);
    CU_ASSERT_EQUAL(st, 2);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "billing"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "DOWN"));
    free(out);
    set_health(2, MSUP_HEALTH_UP);
    free(status_alive("status", &st));
    CU_ASSERT_EQUAL(st, 1); /* one DEGRADED */
    set_health(1, MSUP_HEALTH_UP);
    out = status_alive("status -q", &st);
    CU_ASSERT_EQUAL(st, 0); /* all UP */
    CU_ASSERT_PTR_NOT_NULL(out);
    CU_ASSERT_STRING_EQUAL(out, ""); /* -q prints nothing */
    free(out);
    set_health(0, MSUP_HEALTH_UNKNOWN);
    free(status_alive("status", &st));
    CU_ASSERT_EQUAL(st, 2); /* UNKNOWN counts as down */
    set_health(0, MSUP_HEALTH_UP);
    /* A stale heartbeat: no supervisor. */
    atomic_store(&msup_segment_hdr(&seg)->heartbeat_mono_ns, msup_mono_ns() - 10ull * 1000000000ull);
    out = ctl("status", &st);
    CU_ASSERT_EQUAL(st, 3);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "no live supervisor"));
    free(out);
    /* A fresh heartbeat but the published process is gone. */
    free(status_alive("status", &st));
    CU_ASSERT_EQUAL(st, 0);
    reap(sup);
    free(status_alive("status", &st));
    CU_ASSERT_EQUAL(st, 3);
    teardown(0);
    /* No segment at all. */
    out = ctl("status", &st);
    CU_ASSERT_EQUAL(st, 3);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "does not exist"));
    free(out);
}

static void test_usage(void)
{
    int st;
    static const char *const bad[] = {"", "frobnicate", "reconnect", "reconnect a b", "reload now",
                                      "shutdown --timeout", "shutdown --timeout x", "status -x", "ping x",
                                      "-s relative reload", "-t x reload", "-t 0 reload"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        free(ctl(bad[i], &st));
        CU_ASSERT_EQUAL(st, 64);
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "env -u MONGOSUP_SEGMENT %s status", fx_tool("mongosupctl"));
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 64);
}

/* No control socket: the requests fail with exit 3, write nothing into
 * the segment and signal nothing, whatever process the segment names. */
static void test_requests_without_socket(void)
{
    pid_t sup = setup();
    const msup_ctlseg_t *c = msup_segment_control(&seg);
    void *before = malloc(seg.size), *ctl_before = malloc(c->size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(before && ctl_before);
    memcpy(before, seg.base, seg.size);
    memcpy(ctl_before, c->base, c->size);
    static const char *const cmds[] = {"reconnect users", "reload", "shutdown", "ping"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int st;
        char *out = ctl(cmds[i], &st);
        CU_ASSERT_EQUAL(st, 3);
        CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "no control socket at"));
        free(out);
    }
    CU_ASSERT_EQUAL(memcmp(before, seg.base, seg.size), 0); /* not a byte written, in either segment */
    CU_ASSERT_EQUAL(memcmp(ctl_before, c->base, c->size), 0);
    free(before);
    free(ctl_before);
    /* The live process the segment names as supervisor got nothing. */
    CU_ASSERT_EQUAL(end_signal(sup, 300), 0);
    teardown(sup);
}

static char sock_path[108];

/* A scripted mongosupd: answers each request line with `answers` (the
 * text after the request's first word is ignored); on "shutdown" plays a
 * drain in the segment afterwards: DRAINING, then STOPPED (how 0), the
 * segment removed (1), or nothing more (2). */
static pid_t spawn_fake_control(const char *answer, int how)
{
    snprintf(sock_path, sizeof sock_path, "/tmp/msup-ctltest-%d.sock", (int)getpid());
    unlink(sock_path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
    CU_ASSERT_FATAL(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 8) == 0);
    pid_t pid = fork();
    if (pid != 0) {
        close(fd);
        return pid;
    }
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0)
            _exit(1);
        char req[256];
        ssize_t n = read(c, req, sizeof req - 1);
        req[n > 0 ? n : 0] = '\0';
        if (write(c, answer, strlen(answer)) < 0)
            _exit(1);
        close(c);
        if (strncmp(req, "shutdown", 8) != 0 || how < 0)
            continue;
        sleep_ms(100);
        atomic_store(&msup_segment_hdr(&seg)->phase, MSUP_PHASE_DRAINING);
        sleep_ms(200);
        if (how == 0)
            atomic_store(&msup_segment_hdr(&seg)->phase, MSUP_PHASE_STOPPED);
        else if (how == 1)
            msup_segment_unlink(seg_name, NULL);
        if (how != 2)
            _exit(0);
    }
}

static void stop_fake_control(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    unlink(sock_path);
}

static char *ctl_sock(const char *args, int *status)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s -n %s -s %s %s", fx_tool("mongosupctl"), seg_name, sock_path, args);
    return fx_run(cmd, true, status);
}

/* What the supervisor answers is what the operator reads, escaped, and
 * the verdict line decides the exit status. */
static void test_answers(void)
{
    pid_t sup = setup();
    pid_t fake = spawn_fake_control("cluster users UP\nbad \033[2J name\nok generation 7\n", -1);
    int st;
    char *out = ctl_sock("reload", &st);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "cluster users UP\n"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "bad \\x1b[2J name"));
    CU_ASSERT_PTR_NULL(out && strchr(out, '\033'));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "reload: generation 7"));
    free(out);
    stop_fake_control(fake);
    fake = spawn_fake_control("error /etc/mongosup.conf:12: syntax error\n", -1);
    out = ctl_sock("reload", &st);
    CU_ASSERT_EQUAL(st, 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "mongosupctl: reload: /etc/mongosup.conf:12: syntax error"));
    free(out);
    out = ctl_sock("reconnect users", &st);
    CU_ASSERT_EQUAL(st, 1);
    free(out);
    stop_fake_control(fake);
    /* A connection that ends without a verdict is a failure, not a yes. */
    fake = spawn_fake_control("cluster users UP\n", -1);
    out = ctl_sock("reload", &st);
    CU_ASSERT_EQUAL(st, 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "no verdict"));
    free(out);
    stop_fake_control(fake);
    CU_ASSERT_EQUAL(end_signal(sup, 100), 0);
    teardown(sup);
}

static void test_shutdown_wait(void)
{
    for (int how = 0; how < 4; how++) {
        snprintf(seg_name, sizeof seg_name, "%s", msup_test_segment_name("ctlwait"));
        CU_ASSERT_FATAL(fx_create(seg_name, getpid(), getpid(), &seg));
        /* how 3: the supervisor refuses; nothing is waited for. */
        pid_t fake = spawn_fake_control(how == 3 ? "error shutting down (phase DRAINING): nope\n"
                                                 : "ok DRAINING (drain_timeout_ms 500)\n",
                                        how);
        int st;
        char *out = ctl_sock(how == 2 ? "shutdown --wait --timeout 1" : "shutdown --wait --timeout 20", &st);
        if (how >= 2) {
            CU_ASSERT_EQUAL(st, 1);
            CU_ASSERT_PTR_NOT_NULL(out && strstr(out, how == 2 ? "did not finish within 1 s" : "nope"));
        } else {
            CU_ASSERT_EQUAL(st, 0);
            CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "shutdown: DRAINING (drain_timeout_ms 500)"));
            CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "phase DRAINING"));
            CU_ASSERT_PTR_NOT_NULL(out && strstr(out, how == 0 ? "phase STOPPED" : "segment"));
        }
        if (out && st != (how >= 2 ? 1 : 0))
            fprintf(stderr, "\nshutdown --wait (%d): %s\n", how, out);
        free(out);
        stop_fake_control(fake);
        msup_segment_close(&seg);
        msup_segment_unlink(seg_name, NULL);
    }
    /* --wait with only -s: the segment it would watch is unknown. */
    char cmd[512];
    int st;
    snprintf(cmd, sizeof cmd, "env -u MONGOSUP_SEGMENT %s -s /tmp/x.sock shutdown --wait", fx_tool("mongosupctl"));
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 64);
}

static void test_workers(void)
{
    pid_t sup = setup();
    int st;
    char *out = ctl("workers", &st);
    CU_ASSERT_EQUAL(st, 0);
    char want[64];
    snprintf(want, sizeof want, "%d", (int)getpid());
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "SLOT  PID"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, want));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "web-0"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "4242"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "EXITED"));
    CU_ASSERT_PTR_NULL(out && strstr(out, "CLUSTER"));
    free(out);
    teardown(sup);
}

/* Name squatting: another uid (nobody) creates the segment's names before
 * any supervisor, with a convincing image (a live "supervisor" pid, a fresh
 * heartbeat, its lock held).  Every tool that reads the segment refuses it
 * with one line naming the owner and mode and a non-zero exit; the requests
 * go to the control socket only, and nothing is signalled. */
static void test_squatted_by_another_uid(void)
{
    if (geteuid() != 0) {
        printf("SKIP (not root: cannot create objects as another uid) ");
        return;
    }
    struct passwd *pw = getpwnam("nobody");
    if (pw == NULL) {
        printf("SKIP (no user nobody) ");
        return;
    }
    uid_t nobody = pw->pw_uid;
    gid_t nogroup = pw->pw_gid;
    snprintf(seg_name, sizeof seg_name, "%s", msup_test_segment_name("squat"));
    msup_segment_unlink(seg_name, NULL);
    pid_t victim = spawn_sleep(); /* the pid the squatter publishes as its "supervisor" */
    int ready[2];
    CU_ASSERT_FATAL(pipe(ready) == 0);
    pid_t squatter = fork();
    CU_ASSERT_FATAL(squatter >= 0);
    if (squatter == 0) {
        close(ready[0]);
        if (setgroups(0, NULL) != 0 || setgid(nogroup) != 0 || setuid(nobody) != 0)
            _exit(2);
        msup_segment_t fake;
        if (!fx_create(seg_name, victim, getpid(), &fake))
            _exit(3);
        if (write(ready[1], "r", 1) != 1)
            _exit(4);
        for (;;) {
            fx_heartbeat(&fake);
            sleep_ms(50);
        }
    }
    close(ready[1]);
    char byte = 0;
    CU_ASSERT_EQUAL_FATAL(read(ready[0], &byte, 1), 1);
    close(ready[0]);
    char want[96];
    snprintf(want, sizeof want, "is owned by uid %u (mode 0600)", (unsigned)nobody);
    const char *ctl_cmds[] = {"status", "status -q", "workers"};
    for (size_t i = 0; i < sizeof ctl_cmds / sizeof ctl_cmds[0]; i++) {
        int st;
        char *out = ctl(ctl_cmds[i], &st);
        CU_ASSERT_EQUAL(st, 3);
        CU_ASSERT_PTR_NOT_NULL(out && strstr(out, want));
        CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "refused"));
        CU_ASSERT(out && strchr(out, '\n') == out + strlen(out) - 1); /* one line */
        if (out == NULL || strstr(out, want) == NULL)
            fprintf(stderr, "\nmongosupctl %s: %s\n", ctl_cmds[i], out ? out : "(none)");
        free(out);
    }
    const char *requests[] = {"reload", "shutdown", "reconnect users"};
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        int st;
        free(ctl(requests[i], &st));
        CU_ASSERT_NOT_EQUAL(st, 0);
    }
    const char *top_modes[] = {"--once", "--json", "--prometheus"};
    for (size_t i = 0; i < sizeof top_modes / sizeof top_modes[0]; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%s -n %s %s", fx_tool("mongosup-top"), seg_name, top_modes[i]);
        int st;
        char *out = fx_run(cmd, true, &st);
        CU_ASSERT_EQUAL(st, 1);
        CU_ASSERT_PTR_NOT_NULL(out && strstr(out, want));
        free(out);
    }
    CU_ASSERT_EQUAL(end_signal(victim, 300), 0); /* never signalled: still sleeping */
    reap(victim);
    reap(squatter);
    msup_segment_unlink(seg_name, NULL);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/ctl/squatted-by-another-uid", test_squatted_by_another_uid},
        {"/ctl/status/exit-codes", test_status_codes},
        {"/ctl/usage", test_usage},
        {"/ctl/requests/no-socket-no-signal", test_requests_without_socket},
        {"/ctl/requests/answers", test_answers},
        {"/ctl/shutdown/wait", test_shutdown_wait},
        {"/ctl/workers", test_workers},
        {NULL, NULL},
    };
    return msup_test_main("tools_ctl", tests, argc, argv);
}
