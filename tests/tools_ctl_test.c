/* tools_ctl_test.c: each mongosupctl command changes what it should (seen in the segment or by a signalled child). */
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void test_status_codes(void)
{
    pid_t sup = setup();
    int st;
    /* users UP, orders DEGRADED, billing DOWN -> 2 */
    char *out = ctl("status", &st);
    CU_ASSERT_EQUAL(st, 2);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "billing"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "DOWN"));
    free(out);
    set_health(2, MSUP_HEALTH_UP);
    free(ctl("status", &st));
    CU_ASSERT_EQUAL(st, 1); /* one DEGRADED */
    set_health(1, MSUP_HEALTH_UP);
    out = ctl("status -q", &st);
    CU_ASSERT_EQUAL(st, 0); /* all UP */
    CU_ASSERT_PTR_NOT_NULL(out);
    CU_ASSERT_STRING_EQUAL(out, ""); /* -q prints nothing */
    free(out);
    set_health(0, MSUP_HEALTH_UNKNOWN);
    free(ctl("status", &st));
    CU_ASSERT_EQUAL(st, 2); /* UNKNOWN counts as down */
    set_health(0, MSUP_HEALTH_UP);
    /* A stale heartbeat: no supervisor. */
    atomic_store(&msup_segment_hdr(&seg)->heartbeat_mono_ns, msup_mono_ns() - 10ull * 1000000000ull);
    out = ctl("status", &st);
    CU_ASSERT_EQUAL(st, 3);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "no live supervisor"));
    free(out);
    /* A fresh heartbeat but the published process is gone. */
    fx_heartbeat(&seg);
    free(ctl("status", &st));
    CU_ASSERT_EQUAL(st, 0);
    reap(sup);
    free(ctl("status", &st));
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
                                      "shutdown --timeout", "shutdown --timeout x", "status -x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        free(ctl(bad[i], &st));
        CU_ASSERT_EQUAL(st, 64);
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "env -u MONGOSUP_SEGMENT %s status", fx_tool("mongosupctl"));
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 64);
}

static void test_reconnect(void)
{
    pid_t sup = setup();
    msup_cluster_row_t *users = msup_segment_row(&seg, 0);
    int st;
    char *out = ctl("reconnect users", &st);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "reconnect of cluster users requested"));
    free(out);
    CU_ASSERT_EQUAL(atomic_load(&users->reconnect_requests), 1);
    free(ctl("reconnect users", &st));
    CU_ASSERT_EQUAL(atomic_load(&users->reconnect_requests), 2);
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_row(&seg, 1)->reconnect_requests), 0);
    /* Unknown and removed clusters. */
    out = ctl("reconnect nosuch", &st);
    CU_ASSERT_EQUAL(st, 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "no cluster 'nosuch'"));
    free(out);
    free(ctl("reconnect legacy", &st));
    CU_ASSERT_EQUAL(st, 1);
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_row(&seg, 3)->reconnect_requests), 0);
    /* No live supervisor: refused, nothing written. */
    atomic_store(&msup_segment_hdr(&seg)->heartbeat_mono_ns, msup_mono_ns() - 10ull * 1000000000ull);
    free(ctl("reconnect users", &st));
    CU_ASSERT_EQUAL(st, 3);
    CU_ASSERT_EQUAL(atomic_load(&users->reconnect_requests), 2);
    teardown(sup);
}

static void test_reload(void)
{
    pid_t sup = setup();
    int st;
    /* A start time that does not match: a reused pid is never signalled. */
    atomic_store(&msup_segment_hdr(&seg)->supervisor_start_time, 12345);
    char *out = ctl("reload", &st);
    CU_ASSERT_EQUAL(st, 3);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "no supervisor runs"));
    free(out);
    CU_ASSERT_EQUAL(end_signal(sup, 200), 0);
    fx_set_supervisor(&seg, sup);
    out = ctl("reload", &st);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "SIGHUP"));
    free(out);
    CU_ASSERT_EQUAL(end_signal(sup, 3000), SIGHUP);
    /* The process is gone now. */
    free(ctl("reload", &st));
    CU_ASSERT_EQUAL(st, 3);
    msup_segment_close(&seg);
    msup_segment_unlink(seg_name, NULL);
}

static void test_shutdown_signal(void)
{
    pid_t sup = setup();
    int st;
    char *out = ctl("shutdown", &st);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "SIGTERM"));
    free(out);
    CU_ASSERT_EQUAL(end_signal(sup, 3000), SIGTERM);
    msup_segment_close(&seg);
    msup_segment_unlink(seg_name, NULL);
}

static volatile sig_atomic_t got_term;
static void on_term(int sig)
{
    (void)sig;
    got_term = 1;
}

/* A forked child plays a supervisor that drains on SIGTERM, then either
 * marks STOPPED or removes the segment (how = 0 / 1), or ignores it (2). */
static pid_t spawn_fake_supervisor(int how)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    signal(SIGTERM, how == 2 ? SIG_IGN : on_term);
    for (int i = 0; i < 3000 && !got_term; i++)
        sleep_ms(10);
    if (!got_term)
        _exit(2);
    sleep_ms(100);
    atomic_store(&msup_segment_hdr(&seg)->phase, MSUP_PHASE_DRAINING);
    sleep_ms(200);
    if (how == 0)
        atomic_store(&msup_segment_hdr(&seg)->phase, MSUP_PHASE_STOPPED);
    else
        msup_segment_unlink(seg_name, NULL);
    _exit(0);
}

static void test_shutdown_wait(void)
{
    for (int how = 0; how < 3; how++) {
        snprintf(seg_name, sizeof seg_name, "%s", msup_test_segment_name("ctlwait"));
        CU_ASSERT_FATAL(fx_create(seg_name, 0, getpid(), &seg));
        pid_t sup = spawn_fake_supervisor(how);
        sleep_ms(50); /* its start time is readable at once; the handler must be set */
        fx_set_supervisor(&seg, sup);
        int st;
        char *out = ctl(how == 2 ? "shutdown --wait --timeout 1" : "shutdown --wait --timeout 20", &st);
        if (how == 2) {
            CU_ASSERT_EQUAL(st, 1);
            CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "did not finish within 1 s"));
            kill(sup, SIGKILL);
        } else {
            CU_ASSERT_EQUAL(st, 0);
            CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "phase DRAINING"));
            CU_ASSERT_PTR_NOT_NULL(out && strstr(out, how == 0 ? "phase STOPPED" : "segment"));
        }
        if (out && st != (how == 2 ? 1 : 0))
            fprintf(stderr, "\nshutdown --wait (%d): %s\n", how, out);
        free(out);
        waitpid(sup, NULL, 0);
        msup_segment_close(&seg);
        msup_segment_unlink(seg_name, NULL);
    }
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
 * heartbeat, its lock held).  Every tool refuses it with one line naming the
 * owner and mode and a non-zero exit, and mongosupctl signals nothing. */
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
    const char *ctl_cmds[] = {"status", "workers", "reload", "shutdown", "reconnect users"};
    for (size_t i = 0; i < sizeof ctl_cmds / sizeof ctl_cmds[0]; i++) {
        int st;
        char *out = ctl(ctl_cmds[i], &st);
        CU_ASSERT_NOT_EQUAL(st, 0);
        CU_ASSERT_PTR_NOT_NULL(out && strstr(out, want));
        CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "refused"));
        CU_ASSERT(out && strchr(out, '\n') == out + strlen(out) - 1); /* one line */
        if (out == NULL || strstr(out, want) == NULL)
            fprintf(stderr, "\nmongosupctl %s: %s\n", ctl_cmds[i], out ? out : "(none)");
        free(out);
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
        {"/tools/ctl/squatted-by-another-uid", test_squatted_by_another_uid},
        {"/ctl/status/exit-codes", test_status_codes},
        {"/ctl/usage", test_usage},
        {"/ctl/reconnect", test_reconnect},
        {"/ctl/reload/sighup-checked-pid", test_reload},
        {"/ctl/shutdown/sigterm", test_shutdown_signal},
        {"/ctl/shutdown/wait", test_shutdown_wait},
        {"/ctl/workers", test_workers},
        {NULL, NULL},
    };
    return msup_test_main("tools_ctl", tests, argc, argv);
}
