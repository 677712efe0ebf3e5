/* control_bench.c: round trips on mongosupd's control socket alone, then under 100 idle clients and a slowloris; the heartbeat meanwhile. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctlclient.h"
#include "segment.h"

#define PHASE_MS 2000 /* each phase lasts this long: the heartbeat is watched over many intervals */
#define MAX_ROUNDS 200000
#define IDLE 100

static char dir[64], conf[96], sock[108], seg[64];

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static const char *daemon_path(void)
{
    static char path[4096];
    const char *b = getenv("MONGOSUP_TEST_BUILDDIR");
    snprintf(path, sizeof path, "%s/supervisor/mongosupd", b && b[0] ? b : MONGOSUP_BUILDDIR);
    return path;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The heartbeat's age, sampled every 5 ms while a phase runs. */
typedef struct watch {
    volatile bool stop;
    uint64_t max_age_us;
} watch_t;

static void *watch_main(void *arg)
{
    watch_t *w = arg;
    msup_segment_t s;
    mongosup_error_t err;
    if (!msup_segment_open_readonly(seg, (uid_t)-1, &s, &err))
        return NULL;
    if (msup_segment_control(&s) == NULL) { /* no supervisor has published its heartbeat */
        msup_segment_close(&s);
        return NULL;
    }
    while (!w->stop) {
        uint64_t now = msup_mono_ns(), hb = atomic_load(&msup_segment_hdr(&s)->heartbeat_mono_ns);
        uint64_t age = now > hb ? (now - hb) / 1000u : 0;
        if (age > w->max_age_us)
            w->max_age_us = age;
        sleep_ms(5);
    }
    msup_segment_close(&s);
    return NULL;
}

/* One byte a second, never a newline, reconnecting when closed. */
static volatile bool slow_stop;
static void *slowloris_main(void *arg)
{
    (void)arg;
    while (!slow_stop) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            while (!slow_stop && send(fd, "p", 1, MSG_NOSIGNAL) == 1)
                sleep_ms(100);
        close(fd);
    }
    return NULL;
}

static uint64_t us[MAX_ROUNDS];

/* Back-to-back requests for PHASE_MS: their latencies, and the heartbeat. */
static void phase(const char *name, const char *request)
{
    watch_t w = {0};
    pthread_t wt;
    pthread_create(&wt, NULL, watch_main, &w);
    int failed = 0, n = 0;
    uint64_t end = msup_mono_ns() + (uint64_t)PHASE_MS * 1000000u;
    while (n < MAX_ROUNDS && msup_mono_ns() < end) {
        msup_ctl_answer_t a;
        mongosup_error_t err;
        uint64_t t0 = msup_mono_ns();
        failed += msup_ctl_request(sock, request, 10000, &a, &err) != MSUP_CTL_ANSWER_OK;
        us[n++] = (msup_mono_ns() - t0) / 1000u;
        msup_ctl_answer_free(&a);
    }
    w.stop = true;
    pthread_join(wt, NULL);
    qsort(us, (size_t)n, sizeof us[0], cmp_u64);
    printf("| %s | `%s` | %d | %llu | %llu | %llu | %.1f | %d |\n", name, request, n,
           (unsigned long long)us[n / 2], (unsigned long long)us[n * 99 / 100], (unsigned long long)us[n - 1],
           w.max_age_us / 1000.0, failed);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/msup-ctlbench-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 2;
    snprintf(conf, sizeof conf, "%s/b.conf", dir);
    snprintf(sock, sizeof sock, "%s/b.sock", dir);
    snprintf(seg, sizeof seg, "/msup-ctlbench-%d", (int)getpid());
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        return 2;
    fprintf(f, "segment = { name = \"%s\"; max_workers = 8; };\n"
               "supervisor = { control_socket = \"%s\"; log_level = \"warning\"; heartbeat_interval_ms = 100; };\n"
               "default_environment = \"bench\";\n"
               "environments = { bench = { clusters = { c0 = { mongo_uri = \"mongodb://127.0.0.1:1/\"; }; }; }; };\n",
            seg, sock);
    fclose(f);
    pid_t d = fork();
    if (d == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        execl(daemon_path(), "mongosupd", "-c", conf, (char *)NULL);
        _exit(127);
    }
    msup_ctl_answer_t a;
    mongosup_error_t err;
    int tries = 0;
    while (msup_ctl_request(sock, "ping", 1000, &a, &err) != MSUP_CTL_ANSWER_OK && tries++ < 200) {
        msup_ctl_answer_free(&a);
        sleep_ms(20);
    }
    msup_ctl_answer_free(&a);

    printf("## Control socket (back-to-back requests for %d ms each; mongosupd heartbeat_interval_ms 100)\n\n",
           PHASE_MS);
    printf("| other clients | request | requests | median us | p99 us | max us | heartbeat max age ms | failed |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    phase("none (baseline)", "ping");
    phase("none (baseline)", "reload");

    int idle[IDLE];
    for (int i = 0; i < IDLE; i++) {
        idle[i] = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
        if (connect(idle[i], (struct sockaddr *)&sa, sizeof sa) != 0)
            fprintf(stderr, "idle connect %d: %s\n", i, strerror(errno));
    }
    pthread_t slow;
    pthread_create(&slow, NULL, slowloris_main, NULL);
    sleep_ms(100);
    phase("100 idle + slowloris", "ping");
    phase("100 idle + slowloris", "reload");
    slow_stop = true;
    pthread_join(slow, NULL);
    for (int i = 0; i < IDLE; i++)
        close(idle[i]);
    printf("\nThe idle clients connected once (mongosupd evicts them as new clients come,\n"
           "oldest first, or closes them at their 2 s deadline); the slowloris writes a\n"
           "byte every 100 ms and reconnects when it is closed.\n");

    kill(d, SIGTERM);
    waitpid(d, NULL, 0);
    unlink(conf);
    rmdir(dir);
    return 0;
}
