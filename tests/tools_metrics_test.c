/* tools_metrics_test.c: mongosupd's /metrics endpoint (libmicrohttpd) fetched with curl while a worker records. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "testmain.h"
#include "tools_fixture.h"
#include "tools_promcheck.h"

/* supervisor/metrics.c's MSUP_METRICS_REQUEST_DEADLINE_S: a waiting
 * connection older than this is ended when another one arrives. */
#define MSUP_METRICS_TEST_DEADLINE_S 3u

static char seg_name[64];
static msup_segment_t seg;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *curl(const char *args, int *status)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "curl -sS --max-time 10 %s", args);
    return fx_run(cmd, false, status);
}

static uint64_t series_u64(const char *text, const char *series)
{
    const char *v = prom_value(text, series);
    return v ? strtoull(v, NULL, 10) : 0;
}

static void test_scrape_while_recording(void)
{
    if (access("/usr/bin/curl", X_OK) != 0) {
        fprintf(stderr, "\ncurl missing: skipped\n");
        return;
    }
    snprintf(seg_name, sizeof seg_name, "%s", msup_test_segment_name("metrics"));
    CU_ASSERT_FATAL(fx_create(seg_name, getpid(), getpid(), &seg));
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_metrics_start("127.0.0.1:0", &seg, &err));
    unsigned port = msup_metrics_port();
    CU_ASSERT_FATAL(port != 0);
    CU_ASSERT_FALSE(msup_metrics_start("127.0.0.1:0", &seg, &err)); /* one server per process */

    /* A worker that keeps recording into its slot while we scrape. */
    pid_t worker = fork();
    if (worker == 0) {
        msup_stats_t *s = msup_slot_stats(&seg, 1, 0);
        for (;;) {
            for (int i = 0; i < 100; i++)
                msup_stats_record_op(s, MSUP_OP_WRITE, 1000 + (uint64_t)i);
            sleep_ms(1);
        }
    }
    CU_ASSERT_FATAL(worker > 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/metrics", port);
    /* Each scrape after the first waits until the worker has recorded
     * since the previous one ended (the counter read after that scrape is
     * at least what it saw): "totals move forward" is then asserted of the
     * endpoint, not of how soon a loaded machine schedules the worker. */
    const _Atomic uint64_t *worker_writes = &msup_slot_stats(&seg, 1, 0)->ops[MSUP_OP_WRITE];
    uint64_t last = 0, recorded = 0;
    for (int round = 0; round < 3; round++) {
        uint64_t deadline = msup_test_now_ms() + msup_test_slack_ms(10000);
        while (round > 0 && atomic_load(worker_writes) <= recorded && msup_test_now_ms() < deadline)
            sleep_ms(5);
        CU_ASSERT(round == 0 || atomic_load(worker_writes) > recorded);
        fx_heartbeat(&seg);
        int st;
        char *body = curl(url, &st);
        CU_ASSERT_EQUAL(st, 0);
        CU_ASSERT_FATAL(body != NULL);
        char why[512] = "";
        bool ok = prom_check(body, why, sizeof why);
        if (!ok)
            fprintf(stderr, "\n/metrics: %s\n", why);
        CU_ASSERT(ok);
        CU_ASSERT_STRING_EQUAL(prom_value(body, "mongosup_up"), "1");
        CU_ASSERT_STRING_EQUAL(prom_value(body, "mongosup_cluster_state{cluster=\"orders\",state=\"degraded\"}"),
                               "1");
        uint64_t writes = series_u64(body, "mongosup_operations_total{cluster=\"users\",class=\"write\"}");
        uint64_t count = series_u64(body, "mongosup_operation_duration_seconds_count{cluster=\"users\"}");
        CU_ASSERT(writes >= 300); /* the fixture's 300, plus the worker's */
        CU_ASSERT(writes > last);  /* totals move forward while the worker runs */
        CU_ASSERT(count >= 1100);
        last = writes;
        recorded = atomic_load(worker_writes);
        free(body);
    }
    kill(worker, SIGKILL);
    waitpid(worker, NULL, 0);

    int st;
    char args[256];
    snprintf(args, sizeof args, "-o /dev/null -w '%%{http_code} %%{content_type}' %s", url);
    char *out = curl(args, &st);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "200 text/plain; version=0.0.4"));
    free(out);
    snprintf(args, sizeof args, "-o /dev/null -w '%%{http_code}' http://127.0.0.1:%u/nothing", port);
    out = curl(args, &st);
    CU_ASSERT_PTR_NOT_NULL(out && strcmp(out, "404") == 0);
    free(out);
    snprintf(args, sizeof args, "-o /dev/null -w '%%{http_code}' -X POST -d x=1 %s", url);
    out = curl(args, &st);
    CU_ASSERT_PTR_NOT_NULL(out && strcmp(out, "405") == 0);
    free(out);

    /* A segment that turned corrupted: 503 with the reason, no crash. */
    msup_segment_hdr(&seg)->layout_version = 99;
    snprintf(args, sizeof args, "-w ' %%{http_code}' %s", url);
    out = curl(args, &st);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "layout version 99") && strstr(out, " 503"));
    free(out);
    msup_segment_hdr(&seg)->layout_version = MSUP_LAYOUT_VERSION;

    msup_metrics_stop();
    CU_ASSERT_EQUAL(msup_metrics_port(), 0);
    out = curl(url, &st);
    CU_ASSERT_NOT_EQUAL(st, 0); /* nobody listens any more */
    free(out);
    msup_metrics_stop(); /* harmless twice */
    msup_segment_close(&seg);
    msup_segment_unlink(seg_name, NULL);
}

static void test_listen_strings(void)
{
    snprintf(seg_name, sizeof seg_name, "%s", msup_test_segment_name("listen"));
    CU_ASSERT_FATAL(fx_create(seg_name, getpid(), getpid(), &seg));
    mongosup_error_t err;
    static const char *const bad[] = {"", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:http", "::1:80",
                                      "[::1]", "no-such-host.invalid:9216"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_FALSE(msup_metrics_start(bad[i], &seg, &err));
        CU_ASSERT(strlen(err.message) > 0);
    }
    /* ":0" and a bare port mean loopback. */
    CU_ASSERT_TRUE(msup_metrics_start(":0", &seg, &err));
    CU_ASSERT(msup_metrics_port() != 0);
    msup_metrics_stop();
    CU_ASSERT_TRUE(msup_metrics_start("0", &seg, &err));
    msup_metrics_stop();
    if (msup_metrics_start("[::1]:0", &seg, &err)) /* IPv6 may be off in a container */
        msup_metrics_stop();
    msup_segment_close(&seg);
    msup_segment_unlink(seg_name, NULL);
}

static int connect_port(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* A client that never finishes its request is ended once it is older than
 * the request deadline (3 s) and another connection arrives, which is
 * answered; then every connection is released. */
static void test_request_deadline(void)
{
    if (access("/usr/bin/curl", X_OK) != 0) {
        fprintf(stderr, "\ncurl missing: skipped\n");
        return;
    }
    snprintf(seg_name, sizeof seg_name, "%s", msup_test_segment_name("deadline"));
    CU_ASSERT_FATAL(fx_create(seg_name, getpid(), getpid(), &seg));
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_metrics_start("127.0.0.1:0", &seg, &err));
    unsigned port = msup_metrics_port();
    uint64_t evicted = msup_metrics_conns().evicted;
    int slow = connect_port(port);
    CU_ASSERT_FATAL(slow >= 0);
    static const char partial[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: a";
    CU_ASSERT_EQUAL(send(slow, partial, sizeof partial - 1, MSG_NOSIGNAL), (ssize_t)(sizeof partial - 1));
    /* The request deadline counts from the server's accept, which a loaded
     * machine (or memcheck) can delay: the 3.2 s are measured from the
     * moment the connection is seen open, which is after the accept. */
    uint64_t deadline = msup_test_now_ms() + msup_test_slack_ms(10000);
    while (msup_metrics_conns().open == 0 && msup_test_now_ms() < deadline)
        sleep_ms(5);
    CU_ASSERT_EQUAL_FATAL(msup_metrics_conns().open, 1);
    uint64_t accepted = msup_test_now_ms();
    while (msup_test_now_ms() - accepted < (MSUP_METRICS_TEST_DEADLINE_S * 1000u + 200u)) {
        sleep_ms(100); /* a byte every 100 ms: libmicrohttpd's idle timeout never fires */
        CU_ASSERT_EQUAL(send(slow, "a", 1, MSG_NOSIGNAL), 1);
    }
    CU_ASSERT_EQUAL(msup_metrics_conns().open, 1);
    CU_ASSERT_EQUAL(msup_metrics_conns().evicted, evicted); /* nothing arrived yet to trigger it */
    char url[128];
    snprintf(url, sizeof url, "-o /dev/null -w '%%{http_code}' http://127.0.0.1:%u/metrics", port);
    int st;
    char *out = curl(url, &st);
    CU_ASSERT_PTR_NOT_NULL(out && strcmp(out, "200") == 0);
    free(out);
    CU_ASSERT_EQUAL(msup_metrics_conns().evicted, evicted + 1);
    /* The slow client sees the end of the stream. */
    struct pollfd p = {.fd = slow, .events = POLLIN};
    char buf[64];
    CU_ASSERT_EQUAL(poll(&p, 1, (int)msup_test_slack_ms(5000)), 1);
    CU_ASSERT(recv(slow, buf, sizeof buf, 0) <= 0);
    close(slow);
    deadline = msup_test_now_ms() + msup_test_slack_ms(10000);
    while (msup_metrics_conns().open > 0 && msup_test_now_ms() < deadline)
        sleep_ms(20);
    CU_ASSERT_EQUAL(msup_metrics_conns().open, 0); /* every connection released */
    msup_metrics_stop();
    msup_segment_close(&seg);
    msup_segment_unlink(seg_name, NULL);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/metrics/scrape-while-recording", test_scrape_while_recording},
        {"/metrics/listen-strings", test_listen_strings},
        {"/metrics/request-deadline", test_request_deadline},
        {NULL, NULL},
    };
    return msup_test_main("tools_metrics", tests, argc, argv);
}
