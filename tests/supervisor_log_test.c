/* supervisor_log_test.c: mongosupd's log lines: one line per event, names and messages escaped (supervisor/log.c). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "testmain.h"

/* Runs msup_log with stderr sent to a file and returns what it wrote. */
static char *logged(const char *name, const char *message)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/msup-test-%d-log.txt", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    msup_log(LOG_WARNING, "cluster %s: UP -> DOWN after 3 failed checks: %s", name, message);
    dup2(saved, STDERR_FILENO);
    close(saved);
    static char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    unlink(path);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void test_escaped(void)
{
    msup_log_open(false, LOG_INFO);
    const char *line = logged("ord\x1b[2J\r\x9b", "refused\nfake: notice: cluster x: DOWN -> UP \xc2\x9b" "1m");
    /* One line, ending in its newline, with no control or invalid byte. */
    const char *nl = strchr(line, '\n');
    CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
    CU_ASSERT_EQUAL(nl[1], '\0');
    for (const unsigned char *p = (const unsigned char *)line; *p != '\n'; p++)
        CU_ASSERT(*p >= 0x20 && *p < 0x7f);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, ": warning: cluster ord\\x1b[2J\\x0d\\x9b: UP -> DOWN"));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "refused\\x0afake: notice: cluster x: DOWN -> UP \\x9b1m"));
    /* Printable UTF-8 is kept as is. */
    line = logged("caf\xc3\xa9", "ok");
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "cluster caf\xc3\xa9: UP"));
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/supervisor/log/escaped", test_escaped},
        {NULL, NULL},
    };
    return msup_test_main("supervisor_log", tests, argc, argv);
}
