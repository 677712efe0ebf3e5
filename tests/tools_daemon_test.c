/* tools_daemon_test.c: mongosup-top, mongosupctl and /metrics against a real mongosupd (cluster unreachable: DOWN). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "slots.h"
#include "segment_fixture.h"
#include "testmain.h"
#include "tools_fixture.h"
#include "tools_promcheck.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A port that was free a moment ago (the daemon binds it right after). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static const char *daemon_path(void)
{
    static char path[1024];
    const char *dir = getenv("MONGOSUP_TEST_BUILDDIR");
    snprintf(path, sizeof path, "%s/supervisor/mongosupd", dir ? dir : MSUP_BUILDDIR);
    return path;
}

static void test_daemon_end_to_end(void)
{
    if (access(daemon_path(), X_OK) != 0 || access("/usr/bin/curl", X_OK) != 0) {
        fprintf(stderr, "\nmongosupd or curl missing: skipped\n");
        return;
    }
    char seg_name[64], cfg[128], logf[128], cmd[2048];
    snprintf(seg_name, sizeof seg_name, "%s", msup_test_segment_name("daemon"));
    snprintf(cfg, sizeof cfg, "/tmp/msup-test-%d-daemon.cfg", (int)getpid());
    snprintf(logf, sizeof logf, "/tmp/msup-test-%d-daemon.log", (int)getpid());
    int port = free_port();
    CU_ASSERT_FATAL(port > 0);
    FILE *f = fopen(cfg, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f,
            "segment = { name = \"%s\"; max_workers = 8; };\n"
            "supervisor = { metrics_listen = \"127.0.0.1:%d\"; };\n"
            "default_environment = \"test\";\n"
            "environments = { test = { clusters = { users = { mongo_uri = \"mongodb://127.0.0.1:1/\";\n"
            "  check_timeout_ms = 200; check_interval_ms = 500; }; }; }; };\n",
            seg_name, port);
    fclose(f);

    pid_t d = fork();
    if (d == 0) {
        FILE *lf = freopen(logf, "w", stderr);
        (void)lf;
        execl(daemon_path(), "mongosupd", "-c", cfg, (char *)NULL);
        _exit(127);
    }
    CU_ASSERT_FATAL(d > 0);

    /* Wait for the segment and a DOWN verdict (three failed checks). */
    msup_segment_t seg;
    mongosup_error_t err;
    bool attached = false;
    for (int i = 0; i < 100 && !attached; i++) {
        /* Both segments: mongosupd creates the control one first. */
        attached = msup_test_segment_open_rw(seg_name, &seg);
        if (attached && msup_segment_control(&seg) == NULL) {
            msup_segment_close(&seg);
            attached = false;
        }
        if (!attached)
            sleep_ms(50);
    }
    CU_ASSERT_FATAL(attached);
    int st = -1;
    int idx = -1;
    for (int i = 0; i < 100 && (idx < 0 || atomic_load(&msup_segment_row(&seg, (uint32_t)idx)->health) !=
                                               MSUP_HEALTH_DOWN); i++) {
        idx = msup_segment_find_cluster(&seg, "users");
        sleep_ms(100);
    }
    CU_ASSERT_FATAL(idx >= 0);
    CU_ASSERT_EQUAL(atomic_load(&msup_segment_row(&seg, (uint32_t)idx)->health), MSUP_HEALTH_DOWN);
    snprintf(cmd, sizeof cmd, "%s -n %s status", fx_tool("mongosupctl"), seg_name);
    char *status = fx_run(cmd, true, &st);
    CU_ASSERT_EQUAL(st, 2); /* supervisor alive, users DOWN */
    CU_ASSERT_PTR_NOT_NULL(status && strstr(status, "DOWN"));
    free(status);

    /* This process plays a worker: a slot with traffic. */
    int slot = msup_slot_claim(&seg, getpid(), "itest", &err);
    CU_ASSERT_FATAL(slot >= 0);
    msup_stats_t *s = msup_slot_stats(&seg, (uint32_t)slot, 0);
    for (int i = 0; i < 250; i++)
        msup_stats_record_op(s, MSUP_OP_READ, 700);

    char url[128];
    snprintf(url, sizeof url, "curl -sS --max-time 10 http://127.0.0.1:%d/metrics", port);
    char *body = fx_run(url, false, &st);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT_FATAL(body != NULL);
    char why[512] = "";
    bool ok = prom_check(body, why, sizeof why);
    if (!ok)
        fprintf(stderr, "\n/metrics: %s\n", why);
    CU_ASSERT(ok);
    const char *v = prom_value(body, "mongosup_up");
    CU_ASSERT(v && strcmp(v, "1") == 0);
    v = prom_value(body, "mongosup_cluster_state{cluster=\"users\",state=\"down\"}");
    CU_ASSERT(v && strcmp(v, "1") == 0);
    v = prom_value(body, "mongosup_operations_total{cluster=\"users\",class=\"read\"}");
    CU_ASSERT(v && strcmp(v, "250") == 0);
    v = prom_value(body, "mongosup_operation_duration_seconds_bucket{cluster=\"users\",le=\"0.001\"}");
    CU_ASSERT(v && strcmp(v, "250") == 0);
    free(body);

    /* mongosup-top sees the same. */
    snprintf(cmd, sizeof cmd, "%s -n %s --once", fx_tool("mongosup-top"), seg_name);
    char *out = fx_run(cmd, false, &st);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "(alive)"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "itest"));
    free(out);

    /* reconnect: the supervisor picks the request up. */
    snprintf(cmd, sizeof cmd, "%s -n %s reconnect users", fx_tool("mongosupctl"), seg_name);
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 0);
    msup_cluster_row_t *row = msup_segment_row(&seg, (uint32_t)idx);
    bool seen = false;
    for (int i = 0; i < 60 && !seen; i++) {
        seen = atomic_load(&row->reconnect_requests_seen) >= 1;
        if (!seen)
            sleep_ms(50);
    }
    CU_ASSERT(seen);

    /* reload: SIGHUP, the configuration generation moves. */
    uint64_t gen = atomic_load(&msup_segment_hdr(&seg)->config_generation);
    snprintf(cmd, sizeof cmd, "%s -n %s reload", fx_tool("mongosupctl"), seg_name);
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 0);
    bool moved = false;
    for (int i = 0; i < 60 && !moved; i++) {
        moved = atomic_load(&msup_segment_hdr(&seg)->config_generation) > gen;
        if (!moved)
            sleep_ms(50);
    }
    CU_ASSERT(moved);

    /* shutdown --wait: the worker leaves, the supervisor stops and removes the segment. */
    msup_slot_release(&seg, (uint32_t)slot);
    snprintf(cmd, sizeof cmd, "%s -n %s shutdown --wait --timeout 30", fx_tool("mongosupctl"), seg_name);
    out = fx_run(cmd, true, &st);
    CU_ASSERT_EQUAL(st, 0);
    if (st != 0)
        fprintf(stderr, "\nshutdown: %s\n", out ? out : "");
    free(out);
    int dst = 0;
    CU_ASSERT_EQUAL(waitpid(d, &dst, 0), d);
    CU_ASSERT(WIFEXITED(dst) && WEXITSTATUS(dst) == 0);
    msup_segment_close(&seg);
    snprintf(cmd, sizeof cmd, "%s -n %s status", fx_tool("mongosupctl"), seg_name);
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 3); /* no segment any more */
    msup_segment_unlink(seg_name, NULL);
    unlink(cfg);
    unlink(logf);
}

/* What each tool says about the supervisor, as one word. */
static void verdicts(const char *seg_name, bool *ctl_alive, bool *json_alive, bool *prom_up, bool *text_alive)
{
    char cmd[1024];
    int st;
    snprintf(cmd, sizeof cmd, "%s -n %s status", fx_tool("mongosupctl"), seg_name);
    free(fx_run(cmd, true, &st));
    *ctl_alive = st != 3;
    snprintf(cmd, sizeof cmd, "%s -n %s --json", fx_tool("mongosup-top"), seg_name);
    char *out = fx_run(cmd, false, &st);
    *json_alive = out && (strstr(out, "\"alive\":true") || strstr(out, "\"alive\": true"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s -n %s --prometheus", fx_tool("mongosup-top"), seg_name);
    out = fx_run(cmd, false, &st);
    const char *v = out ? prom_value(out, "mongosup_up") : NULL;
    *prom_up = v && strcmp(v, "1") == 0;
    free(out);
    snprintf(cmd, sizeof cmd, "%s -n %s --once", fx_tool("mongosup-top"), seg_name);
    out = fx_run(cmd, false, &st);
    *text_alive = out && strstr(out, "(alive)");
    free(out);
}

/* One liveness verdict: right after mongosupd is SIGKILLed (its heartbeat
 * still fresh for ~3 s) every tool says it is gone, at once. */
static void test_liveness_agrees_after_kill(void)
{
    if (access(daemon_path(), X_OK) != 0) {
        fprintf(stderr, "\nmongosupd missing: skipped\n");
        return;
    }
    char seg_name[64], cfg[128], logf[128];
    snprintf(seg_name, sizeof seg_name, "%s", msup_test_segment_name("killed"));
    snprintf(cfg, sizeof cfg, "/tmp/msup-test-%d-killed.cfg", (int)getpid());
    snprintf(logf, sizeof logf, "/tmp/msup-test-%d-killed.log", (int)getpid());
    FILE *f = fopen(cfg, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f,
            "segment = { name = \"%s\"; max_workers = 8; };\n"
            "default_environment = \"test\";\n"
            "environments = { test = { clusters = { users = { mongo_uri = \"mongodb://127.0.0.1:1/\"; }; }; }; };\n",
            seg_name);
    fclose(f);
    pid_t d = fork();
    if (d == 0) {
        FILE *lf = freopen(logf, "w", stderr);
        (void)lf;
        execl(daemon_path(), "mongosupd", "-c", cfg, (char *)NULL);
        _exit(127);
    }
    CU_ASSERT_FATAL(d > 0);
    bool c = false, j = false, p = false, t = false;
    for (int i = 0; i < 100 && !(c && j && p && t); i++) {
        sleep_ms(50);
        verdicts(seg_name, &c, &j, &p, &t);
    }
    CU_ASSERT(c && j && p && t);
    kill(d, SIGKILL);
    waitpid(d, NULL, 0);
    uint64_t t0 = msup_mono_ns();
    verdicts(seg_name, &c, &j, &p, &t);
    uint64_t took_ms = (msup_mono_ns() - t0) / 1000000u;
    fprintf(stderr, "\n    after SIGKILL (%llu ms to ask all four): status %s, json %s, metrics %s, text %s ",
            (unsigned long long)took_ms, c ? "alive" : "gone", j ? "alive" : "gone", p ? "up" : "down",
            t ? "alive" : "gone");
    CU_ASSERT_FALSE(c);
    CU_ASSERT_FALSE(j);
    CU_ASSERT_FALSE(p);
    CU_ASSERT_FALSE(t);
    /* The heartbeat is still fresh now: "gone" came from the lock, not from its age. */
    msup_segment_t seg;
    mongosup_error_t err;
    if (msup_segment_open_readonly(seg_name, (uid_t)-1, &seg, &err)) {
        CU_ASSERT_TRUE(msup_supervisor_alive(&seg));
        CU_ASSERT_EQUAL(msup_supervisor_liveness(&seg), MSUP_SUPERVISOR_GONE);
        msup_segment_close(&seg);
    } else {
        CU_FAIL("segment left by the killed supervisor not readable");
    }
    msup_segment_unlink(seg_name, NULL);
    unlink(cfg);
    unlink(logf);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/tools/daemon/end-to-end", test_daemon_end_to_end},
        {"/tools/daemon/liveness-agrees-after-kill", test_liveness_agrees_after_kill},
        {NULL, NULL},
    };
    return msup_test_main("tools_daemon", tests, argc, argv);
}
