/* worker_hotpath_test.c: checkout/checkin of an idle client makes no syscall (counted by strace, thread by thread). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testmain.h"
#include "worker_fixture.h"

#define PAIRS 10000
#define BEGIN_MARK "/msup-hotpath-begin"
#define END_MARK "/msup-hotpath-end"

/* The traced child: attach, one checkout that creates and connects the
 * client, then PAIRS checkout/checkin pairs of that idle client between
 * two marker syscalls the parent finds in the trace. */
static int hotpath_child(const char *conf_path)
{
    mongosup_error_t error;
    mongosup_config_t *cfg = mongosup_config_load(conf_path, NULL, &error);
    mongosup_t *h = cfg != NULL ? mongosup_attach(cfg, &error) : NULL;
    if (h == NULL) {
        fprintf(stderr, "hotpath child: %s\n", error.message);
        return 2;
    }
    mongoc_client_t *client = mongosup_checkout(h, "main", &error);
    if (client == NULL || !wfix_ping(client, NULL)) {
        fprintf(stderr, "hotpath child: first checkout failed\n");
        return 2;
    }
    mongosup_checkin(h, client, NULL);
    int bad = 0;
    (void)access(BEGIN_MARK, F_OK);
    for (int i = 0; i < PAIRS; i++) {
        mongoc_client_t *c = mongosup_checkout(h, "main", &error);
        if (c == NULL) {
            bad++;
            continue;
        }
        mongosup_checkin(h, c, NULL);
    }
    (void)access(END_MARK, F_OK);
    mongosup_detach(&h, 1000);
    mongosup_config_destroy(&cfg);
    return bad == 0 ? 0 : 3;
}

/* Syscalls of the thread that wrote the begin marker, between the markers
 * (strace -f prefixes each line with the thread id; a call another thread
 * interrupts shows as "<unfinished ...>" then "resumed": counted once). */
static long count_between_markers(const char *trace_path, long *others)
{
    FILE *fp = fopen(trace_path, "r");
    if (fp == NULL)
        return -1;
    char line[4096];
    long tid = -1, count = 0;
    bool inside = false, done = false;
    *others = 0;
    while (!done && fgets(line, sizeof line, fp) != NULL) {
        char *rest;
        long who = strtol(line, &rest, 10);
        if (!inside) {
            if (strstr(line, BEGIN_MARK) != NULL) {
                tid = who;
                inside = true;
            }
            continue;
        }
        if (who == tid && strstr(line, END_MARK) != NULL) {
            done = true;
        } else if (strstr(line, "resumed>") != NULL || strstr(rest, " --- ") == rest || strstr(rest, " +++ ") == rest) {
            continue;
        } else if (who == tid) {
            count++;
            fprintf(stderr, "    hot path syscall: %s", line);
        } else {
            (*others)++;
        }
    }
    fclose(fp);
    return done ? count : -1;
}

static void test_idle_pairs_make_no_syscall(void)
{
    if (access("/usr/bin/strace", X_OK) != 0) {
        printf("\n    SKIPPED: strace is not installed (apt-get install strace) ");
        return;
    }
    wfix_t f;
    /* A capped budget: the checkin must not look at it either. */
    CU_ASSERT_FATAL(wfix_start(&f, "hotpath", "max_pool_size = 4; max_connections = 50;", NULL));
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CU_ASSERT_FATAL(n > 0);
    self[n] = '\0';
    char trace[96];
    snprintf(trace, sizeof trace, "/tmp/msup-hotpath-%d.trace", (int)getpid());

    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        /* LeakSanitizer cannot run under ptrace: an ASan build's child
         * would fail at exit for that reason alone. */
        setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
        execl("/usr/bin/strace", "strace", "-f", "-qq", "-o", trace, "--", self, "--hotpath-child", f.conf_path,
              (char *)NULL);
        _exit(127);
    }
    int status = 0;
    CU_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    long others = 0;
    long count = count_between_markers(trace, &others);
    printf("\n    %d idle checkout/checkin pairs: %ld syscalls on their thread (%.4f a pair), %ld on the "
           "driver's threads meanwhile ",
           PAIRS, count, (double)count / PAIRS, others);
    CU_ASSERT(count >= 0);
    CU_ASSERT((double)count / PAIRS < 0.01);
    unlink(trace);
    wfix_stop(&f);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--hotpath-child") == 0)
        return hotpath_child(argv[2]);
    static const msup_test_t tests[] = {
        {"/worker/hotpath/idle-pairs-no-syscall", test_idle_pairs_make_no_syscall},
        {NULL, NULL},
    };
    return msup_test_main("worker_hotpath", tests, argc, argv);
}
