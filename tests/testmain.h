/* testmain.h: a tiny CUnit runner shared by every test binary (names read like paths). */
#ifndef MONGOSUP_TESTMAIN_H
#define MONGOSUP_TESTMAIN_H

#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct msup_test {
    const char *name;       /* "/segment/adopt/foreign-owner" */
    void (*fn)(void);
} msup_test_t;

/* Runs the tests (an array ended by {NULL, NULL}) in one CUnit suite and
 * returns the process exit status: 0 when all passed.  argv[1], if given,
 * runs only the tests whose name contains it. */
int msup_test_main(const char *suite, const msup_test_t *tests, int argc, char **argv);

/* True when the binary runs under valgrind (check-valgrind sets it): tests
 * scale their loop counts down, never their assertions. */
bool msup_test_under_valgrind(void);

/* A deadline for waiting on a condition (or a bound on an elapsed time),
 * ms natively, stretched under valgrind (x4 + 2 s): the CPU is shared by
 * memcheck and by the other tests of a `make -j2 check`. */
unsigned msup_test_slack_ms(unsigned ms);

/* A unique segment name for this process and tag: "/msup-test-<pid>-<tag>". */
const char *msup_test_segment_name(const char *tag);

/* CLOCK_MONOTONIC in milliseconds, for the bounds the tests measure. */
uint64_t msup_test_now_ms(void);

/* Sleeps ms milliseconds, resuming after a signal interrupts it. */
void msup_test_sleep_ms(unsigned ms);

/* Waits up to timeout_ms until the child pid, which calls exec, runs the
 * program named comm ("sleep"): the kernel renames it only after replacing
 * its address space, so it no longer maps anything of this process. */
bool msup_test_wait_exec(pid_t pid, const char *comm, unsigned timeout_ms);

/* A loopback TCP port that was free a moment ago (the caller's server binds
 * it right after), or -1. */
int msup_test_free_port(void);

/* The whole file at path, malloc'd (the caller frees it); "" when it cannot
 * be read.  For logs and /proc files the tests look into. */
char *msup_test_read_file(const char *path);

#endif
