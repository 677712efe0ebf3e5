/* testmain.c: a tiny CUnit runner shared by every test binary, and the clock helpers the tests share. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testmain.h"

#include "stdio_guard.h"

bool msup_test_under_valgrind(void)
{
    const char *v = getenv("MONGOSUP_UNDER_VALGRIND");
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

unsigned msup_test_slack_ms(unsigned ms)
{
    return msup_test_under_valgrind() ? ms * 4u + 2000u : ms;
}

const char *msup_test_segment_name(const char *tag)
{
    static char name[64];
    snprintf(name, sizeof name, "/msup-test-%d-%s", (int)getpid(), tag);
    return name;
}

/* Test segments are named after the test process (/msup-test-PID-TAG): a
 * test killed before its cleanup leaves its objects in /dev/shm, and pids
 * wrap (pid_max is 32768 here), so a later test binary with that pid would
 * find its own name taken.  Objects whose pid no longer runs are removed;
 * a live pid (even another user's: EPERM) keeps its objects. */
static void remove_dead_tests_segments(void)
{
    DIR *d = opendir("/dev/shm");
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        static const char prefix[] = "msup-test-";
        if (strncmp(e->d_name, prefix, sizeof prefix - 1) != 0)
            continue;
        char *end;
        long pid = strtol(e->d_name + sizeof prefix - 1, &end, 10);
        if (pid <= 0 || *end != '-' || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            char name[300];
            snprintf(name, sizeof name, "/%s", e->d_name);
            shm_unlink(name);
        }
    }
    closedir(d);
}

int msup_test_main(const char *suite_name, const msup_test_t *tests, int argc, char **argv)
{
    remove_dead_tests_segments();
    const char *filter = argc > 1 ? argv[1] : NULL;
    /* CI runs the tests with stdin closed: the first file a test opened
     * would become descriptor 0 (peer_test covers that case on purpose). */
    if (!msup_stdio_guard())
        return 2;
    /* Whole lines, in order with stderr: a log holds CUnit's "Test: NAME
     * ...FAILED" and its numbered assertion lines intact, not split by a
     * worker's warning at a 4 KB buffer boundary, so that
     * scripts/show-failures.sh finds them. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite suite = CU_add_suite(suite_name, NULL, NULL);
    for (const msup_test_t *t = tests; suite != NULL && t->name != NULL; t++) {
        if (filter == NULL || strstr(t->name, filter) != NULL)
            CU_add_test(suite, t->name, t->fn);
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (ran == 0) {
        fprintf(stderr, "%s: no test ran\n", suite_name);
        return 1;
    }
    return failed == 0 ? 0 : 1;
}

uint64_t msup_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void msup_test_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

bool msup_test_wait_exec(pid_t pid, const char *comm, unsigned timeout_ms)
{
    char path[64], want[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    snprintf(want, sizeof want, "%s\n", comm);
    uint64_t deadline = msup_test_now_ms() + timeout_ms;
    for (;;) {
        char *now = msup_test_read_file(path);
        bool execed = strcmp(now, want) == 0;
        free(now);
        if (execed || msup_test_now_ms() >= deadline)
            return execed;
        msup_test_sleep_ms(5);
    }
}

int msup_test_free_port(void)
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

char *msup_test_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (m == NULL) {
        if (f != NULL)
            fclose(f);
        return strdup("");
    }
    char chunk[4096];
    size_t n;
    while (f != NULL && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    if (f != NULL)
        fclose(f);
    fclose(m);
    return buf;
}
