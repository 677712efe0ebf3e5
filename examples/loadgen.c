/* loadgen.c: drives the prefork demo server at a set request rate and reports per-second outcomes. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port;
static double rate = 200;        /* requests per second, all threads together */
static double duration = 10;     /* seconds */
static int threads = 4;
static int write_percent = 30;   /* POST /events; the rest GET /users/ID */
static volatile sig_atomic_t stopping; /* SIGINT/SIGTERM: stop early and print the totals */

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

/* Outcome counters, reset every second by the reporter. */
static _Atomic long ok_count, not_found, unavailable, server_error, conn_error;
static _Atomic long total_ok, total_unavailable, total_failed;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One request on a new connection; returns the HTTP status or -1. */
static int request(const char *line)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    int status = -1;
    char buf[512];
    if (write(fd, line, strlen(line)) == (ssize_t)strlen(line)) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n > 12) {
            buf[n] = '\0';
            sscanf(buf, "HTTP/1.%*d %d", &status);
        }
    }
    close(fd);
    return status;
}

static void *client(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 17;
    double interval = threads / rate, next = now_s(), end = next + duration;
    while (next < end && !stopping) {
        double now = now_s();
        if (now < next) {
            struct timespec ts = {0, (long)((next - now) * 1e9)};
            nanosleep(&ts, NULL);
        }
        next += interval;
        char line[128];
        if ((int)(rand_r(&seed) % 100) < write_percent)
            snprintf(line, sizeof line, "POST /events HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
        else
            snprintf(line, sizeof line, "GET /users/%u HTTP/1.0\r\n\r\n", rand_r(&seed) % 100);
        int status = request(line);
        switch (status) {
        case 200: atomic_fetch_add(&ok_count, 1); atomic_fetch_add(&total_ok, 1); break;
        case 404: atomic_fetch_add(&not_found, 1); atomic_fetch_add(&total_ok, 1); break;
        case 503: atomic_fetch_add(&unavailable, 1); atomic_fetch_add(&total_unavailable, 1); break;
        case -1: atomic_fetch_add(&conn_error, 1); atomic_fetch_add(&total_failed, 1); break;
        default: atomic_fetch_add(&server_error, 1); atomic_fetch_add(&total_failed, 1); break;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int opt;
    bool quiet = false;
    while ((opt = getopt(argc, argv, "p:r:d:t:w:q")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'w': write_percent = atoi(optarg); break;
        case 'q': quiet = true; break;
        default:
            fprintf(stderr, "usage: mongosup-demo-load -p PORT [-r RATE] [-d SECONDS] [-t THREADS] [-w WRITE%%] [-q]\n");
            return 64;
        }
    }
    if (port <= 0 || port > 65535 || rate <= 0 || duration <= 0 || threads < 1 || threads > 256) {
        fprintf(stderr, "mongosup-demo-load: -p PORT is required; rate, duration and threads must be positive\n");
        return 64;
    }
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pthread_t tids[256];
    for (int i = 0; i < threads; i++)
        pthread_create(&tids[i], NULL, client, (void *)(uintptr_t)i);
    double start = now_s();
    int second = 0;
    while (now_s() - start < duration && !stopping) {
        sleep(1);
        second++;
        long ok = atomic_exchange(&ok_count, 0), nf = atomic_exchange(&not_found, 0),
             un = atomic_exchange(&unavailable, 0), se = atomic_exchange(&server_error, 0),
             ce = atomic_exchange(&conn_error, 0);
        if (!quiet)
            printf("load t=%3ds  ok %4ld  404 %4ld  503 %4ld  500 %4ld  conn-err %4ld\n", second, ok, nf, un, se, ce);
        fflush(stdout);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    printf("load total: served %ld, unavailable (503, fail-fast) %ld, failed %ld\n", atomic_load(&total_ok),
           atomic_load(&total_unavailable), atomic_load(&total_failed));
    return 0;
}
