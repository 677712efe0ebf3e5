/* config_files_test.c: the loader never hangs or exits on the files it is given (FIFOs, directories, devices, symlinks, @include), segment names, and mongosupd keeping its environment across a reload. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "../lib/config.h" /* not autoconf's config.h */
#include "segment.h"
#include "testmain.h"

static char tmpdir[64];

/* ------------------------------------------------------------------ */
/* Fixtures                                                             */

static const char *path_in(const char *name)
{
    static char paths[16][PATH_MAX];
    static unsigned next;
    char *p = paths[next++ % 16];
    snprintf(p, PATH_MAX, "%s/%s", tmpdir, name);
    return p;
}

static void write_text(const char *path, mode_t mode, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void write_text(const char *path, mode_t mode, const char *fmt, ...)
{
    unlink(path);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
    CU_ASSERT_FATAL(chmod(path, mode) == 0);
}

/* A configuration with one cluster "users" whose block holds extra (for
 * example a password_file), and the given segment block. */
static void write_conf(const char *path, const char *segment, const char *extra)
{
    write_text(path, 0600,
               "%s\n"
               "default_environment = \"dev\";\n"
               "environments = { dev = { clusters = { users = {\n"
               "  mongo_uri = \"mongodb://svc@127.0.0.1:1/\";\n"
               "  %s\n"
               "}; }; }; };\n",
               segment != NULL ? segment : "", extra != NULL ? extra : "");
}

/* The time a load may take: a second natively, more under valgrind. */
static unsigned load_bound_ms(void)
{
    return msup_test_under_valgrind() ? 15000 : 1000;
}

typedef enum { LOAD_OK, LOAD_ERROR, LOAD_HUNG, LOAD_DIED } load_outcome_t;

/*
 * Runs mongosup_config_load in a forked child, so that a regression (a hang
 * in open(2), libconfig's exit(2)) fails the test instead of hanging or
 * ending it: an alarm kills a child that does not return in time.  The
 * error message comes back through a pipe; *ms is how long the load took.
 */
static load_outcome_t load_in_child(const char *path, char *msg, size_t msg_len, uint64_t *ms)
{
    int fds[2];
    CU_ASSERT_FATAL(pipe(fds) == 0);
    uint64_t t0 = msup_test_now_ms();
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        alarm((load_bound_ms() + 999) / 1000 + 1);
        mongosup_error_t err;
        mongosup_config_t *cfg = mongosup_config_load(path, NULL, &err);
        char out[sizeof err.message + 1];
        snprintf(out, sizeof out, "%c%s", cfg != NULL ? '+' : '-', cfg != NULL ? "" : err.message);
        mongosup_config_destroy(&cfg);
        ssize_t w = write(fds[1], out, strlen(out));
        _exit(w > 0 ? 0 : 3);
    }
    close(fds[1]);
    char buf[600];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0 || (r < 0 && errno == EINTR))
        len += r > 0 ? (size_t)r : 0;
    close(fds[0]);
    buf[len] = '\0';
    int st = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
    *ms = msup_test_now_ms() - t0;
    snprintf(msg, msg_len, "%s", len > 0 ? buf + 1 : "");
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
        return LOAD_HUNG;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || len == 0)
        return LOAD_DIED;
    return buf[0] == '+' ? LOAD_OK : LOAD_ERROR;
}

/* The load fails in time, in one line, and the message holds each needle. */
static void expect_refused(const char *path, const char *needle1, const char *needle2)
{
    char msg[600];
    uint64_t ms = 0;
    load_outcome_t o = load_in_child(path, msg, sizeof msg, &ms);
    if (o != LOAD_ERROR || strstr(msg, needle1) == NULL || (needle2 != NULL && strstr(msg, needle2) == NULL))
        fprintf(stderr, "\n    %s: outcome %d after %llu ms, want an error with \"%s\"%s%s: %s", path, (int)o,
                (unsigned long long)ms, needle1, needle2 ? " and " : "", needle2 ? needle2 : "", msg);
    CU_ASSERT_EQUAL(o, LOAD_ERROR);
    CU_ASSERT(ms < load_bound_ms());
    CU_ASSERT_PTR_NULL(strchr(msg, '\n'));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle1));
    if (needle2 != NULL)
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle2));
}

static void expect_loaded(const char *path)
{
    char msg[600];
    uint64_t ms = 0;
    load_outcome_t o = load_in_child(path, msg, sizeof msg, &ms);
    if (o != LOAD_OK)
        fprintf(stderr, "\n    %s: outcome %d, want a configuration: %s", path, (int)o, msg);
    CU_ASSERT_EQUAL(o, LOAD_OK);
}

/* The line of the password_file setting in write_conf's layout. */
#define PASSWORD_LINE ":5: environments.dev.clusters.users.password_file: "

/* ------------------------------------------------------------------ */
/* The configuration path                                               */

static void test_config_fifo(void)
{
    const char *fifo = path_in("fifo.conf");
    unlink(fifo);
    CU_ASSERT_FATAL(mkfifo(fifo, 0600) == 0);
    expect_refused(fifo, "fifo.conf is a FIFO, not a regular file", NULL);
    unlink(fifo);
}

static void test_config_directory(void)
{
    const char *dir = path_in("dir.conf");
    mkdir(dir, 0700);
    expect_refused(dir, "dir.conf is a directory, not a regular file", NULL);
    rmdir(dir);
}

static void test_config_device(void)
{
    expect_refused("/dev/null", "/dev/null is a character device, not a regular file", NULL);
}

/* /etc layouts often link the configuration (alternatives, config
 * management): a symlink to a regular file is read, one to a FIFO is not. */
static void test_config_symlink(void)
{
    const char *real = path_in("real.conf"), *link = path_in("link.conf");
    write_conf(real, NULL, NULL);
    unlink(link);
    CU_ASSERT_FATAL(symlink(real, link) == 0);
    expect_loaded(link);

    const char *fifo = path_in("fifo-target");
    unlink(fifo);
    CU_ASSERT_FATAL(mkfifo(fifo, 0600) == 0);
    unlink(link);
    CU_ASSERT_FATAL(symlink(fifo, link) == 0);
    expect_refused(link, "link.conf is a FIFO, not a regular file", NULL);

    unlink(link);
    CU_ASSERT_FATAL(symlink(path_in("nowhere"), link) == 0);
    expect_refused(link, "cannot open ", "link.conf: No such file or directory");
    unlink(link);
    unlink(fifo);
    unlink(real);
}

/* A binary file, or one far larger than any configuration: one line each
 * (libconfig would stop at the NUL and read a truncated file). */
static void test_config_not_text(void)
{
    const char *conf = path_in("nul.conf");
    write_conf(conf, NULL, NULL);
    FILE *f = fopen(conf, "a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fwrite("x = 1;\0garbage", 1, 15, f);
    fclose(f);
    expect_refused(conf, "nul.conf contains a NUL byte", NULL);
    CU_ASSERT_FATAL(truncate(conf, 5 << 20) == 0); /* sparse: 5 MiB of zeros */
    expect_refused(conf, "nul.conf is longer than 4194304 bytes", NULL);
    unlink(conf);
}

/* libconfig 1.5 would open an @include'd path itself (fopen: blocks on a
 * FIFO; a directory makes its scanner exit): refused, with the line. */
static void test_config_include(void)
{
    const char *conf = path_in("inc.conf"), *dir = path_in("inc.d");
    mkdir(dir, 0700);
    write_text(conf, 0600,
               "# settings\n"
               "default_environment = \"dev\";\n"
               "  @include \"%s\"\n"
               "environments = { dev = { clusters = { users = { mongo_uri = \"mongodb://h/\"; }; }; }; };\n",
               dir);
    expect_refused(conf, "inc.conf:3: @include is not supported", NULL);
    rmdir(dir);

    /* Where libconfig would not read it as a directive, it is no directive. */
    write_text(conf, 0600,
               "# @include \"/dev/null\"\n"
               "/* a comment\n"
               "@include \"/dev/null\" */\n"
               "default_environment = \"dev\";\n"
               "environments = { dev = { clusters = { users = {\n"
               "  appname = \"x\n"
               "@include y\";\n"
               "  mongo_uri = \"mongodb://h/\"; }; }; }; };\n");
    expect_loaded(conf);
    unlink(conf);
}

/* ------------------------------------------------------------------ */
/* password_file                                                        */

static void conf_with_password_file(const char *conf, const char *pw)
{
    char extra[PATH_MAX + 32];
    snprintf(extra, sizeof extra, "password_file = \"%s\";", pw);
    write_conf(conf, NULL, extra);
}

static void test_password_fifo(void)
{
    const char *conf = path_in("pwfifo.conf"), *fifo = path_in("pw.fifo");
    unlink(fifo);
    CU_ASSERT_FATAL(mkfifo(fifo, 0600) == 0);
    conf_with_password_file(conf, fifo);
    expect_refused(conf, PASSWORD_LINE, "pw.fifo is a FIFO, not a regular file");
    unlink(fifo);
    unlink(conf);
}

static void test_password_directory_and_device(void)
{
    const char *conf = path_in("pwdir.conf"), *dir = path_in("pw.d");
    mkdir(dir, 0700);
    conf_with_password_file(conf, dir);
    expect_refused(conf, PASSWORD_LINE, "pw.d is a directory, not a regular file");
    rmdir(dir);
    conf_with_password_file(conf, "/dev/null");
    expect_refused(conf, PASSWORD_LINE, "/dev/null is a character device, not a regular file");
    unlink(conf);
}

/* Secrets mounted by Kubernetes or Docker are symlinks: accepted, and the
 * rules (regular file, not readable by everyone) apply to the target. */
static void test_password_symlink(void)
{
    const char *conf = path_in("pwlink.conf"), *secret = path_in("secret"), *link = path_in("secret.link");
    write_text(secret, 0600, "s3cret\n");
    unlink(link);
    CU_ASSERT_FATAL(symlink(secret, link) == 0);
    conf_with_password_file(conf, link);
    mongosup_error_t err;
    mongosup_config_t *cfg = mongosup_config_load(conf, NULL, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_PTR_NOT_NULL(strstr(cfg->clusters[0].uri, "mongodb://svc:s3cret@127.0.0.1:1/"));
    mongosup_config_destroy(&cfg);

    CU_ASSERT_FATAL(chmod(secret, 0644) == 0);
    expect_refused(conf, PASSWORD_LINE, "secret.link is readable by everyone (mode 0644)");
    unlink(link);
    unlink(secret);
    unlink(conf);
}

/* The driver opens the TLS files when a worker's pool is made: a FIFO there
 * would block that worker, so the loader refuses one (a missing file is
 * left to the driver: it may come later). */
static void test_tls_files(void)
{
    const char *conf = path_in("tls.conf"), *fifo = path_in("ca.fifo");
    unlink(fifo);
    CU_ASSERT_FATAL(mkfifo(fifo, 0600) == 0);
    char extra[PATH_MAX + 64];
    snprintf(extra, sizeof extra, "tls_ca_file = \"%s\";", fifo);
    write_conf(conf, NULL, extra);
    expect_refused(conf, ":5: environments.dev.clusters.users.tls_ca_file: ", "ca.fifo is a FIFO, not a regular file");
    snprintf(extra, sizeof extra, "tls_certificate_key_file = \"%s\";", tmpdir);
    write_conf(conf, NULL, extra);
    expect_refused(conf, "tls_certificate_key_file: ", "is a directory, not a regular file");
    snprintf(extra, sizeof extra, "tls_ca_file = \"%s/not-yet-there.pem\";", tmpdir);
    write_conf(conf, NULL, extra);
    expect_loaded(conf);
    unlink(fifo);
    unlink(conf);
}

/* ------------------------------------------------------------------ */
/* mongosupd --check-config                                             */

static const char *daemon_path(void)
{
    static char path[PATH_MAX];
    const char *b = getenv("MONGOSUP_TEST_BUILDDIR");
    snprintf(path, sizeof path, "%s/supervisor/mongosupd", b != NULL && b[0] != '\0' ? b : MONGOSUP_BUILDDIR);
    return path;
}

/* Starts mongosupd with args (NULL-terminated), output into log. */
static pid_t spawn_daemon(const char *log, const char *const *args)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        const char *argv[8] = {daemon_path()};
        for (int i = 0; args[i] != NULL && i < 6; i++)
            argv[i + 1] = args[i];
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Exit status within timeout_ms, or -1 (the process is then killed). */
static int wait_exit(pid_t pid, unsigned timeout_ms)
{
    uint64_t deadline = msup_test_now_ms() + timeout_ms;
    int st;
    for (;;) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (msup_test_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        msup_test_sleep_ms(10);
    }
}

static char *slurp(const char *path)
{
    static char text[4096];
    text[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = '\0';
        fclose(f);
    }
    return text;
}

/* mongosupd --check-config on conf: one line "mongosupd: ...needle...", exit 1, in time. */
static void expect_check_config_fails(const char *conf, const char *needle)
{
    const char *log = path_in("check.log");
    const char *args[] = {"--check-config", "-c", conf, NULL};
    int rc = wait_exit(spawn_daemon(log, args), load_bound_ms() + 2000);
    const char *text = slurp(log);
    const char *nl = strchr(text, '\n');
    bool one_line = nl != NULL && nl[1] == '\0';
    if (rc != 1 || !one_line || strstr(text, needle) == NULL || strncmp(text, "mongosupd: ", 11) != 0)
        fprintf(stderr, "\n    --check-config %s: exit %d, want 1 and one line with \"%s\": %s", conf, rc, needle, text);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_TRUE(one_line);
    CU_ASSERT_EQUAL(strncmp(text, "mongosupd: ", 11), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, needle));
}

static void test_check_config_files(void)
{
    const char *fifo = path_in("cc.fifo"), *dir = path_in("cc.d"), *conf = path_in("cc.conf");
    unlink(fifo);
    CU_ASSERT_FATAL(mkfifo(fifo, 0600) == 0);
    mkdir(dir, 0700);
    expect_check_config_fails(fifo, "cc.fifo is a FIFO, not a regular file");
    expect_check_config_fails(dir, "cc.d is a directory, not a regular file");
    expect_check_config_fails("/dev/null", "/dev/null is a character device");
    conf_with_password_file(conf, fifo);
    expect_check_config_fails(conf, "cc.conf" PASSWORD_LINE);
    conf_with_password_file(conf, dir);
    expect_check_config_fails(conf, "cc.d is a directory");
    conf_with_password_file(conf, "/dev/null");
    expect_check_config_fails(conf, "/dev/null is a character device");
    unlink(fifo);
    rmdir(dir);
    unlink(conf);
}

static void test_check_config_segment_names(void)
{
    static const struct {
        const char *name, *want;
    } bad[] = {
        {"/.", "segment name \"/.\" is invalid"},
        {"/..", "segment name \"/..\" is invalid"},
        {"/a b", "only printable ASCII without spaces"},
        {"/a\\tb", "segment name \"/a\\x09b\" is invalid"},
        {"/\\x1b]0;owned\\x07", "segment name \"/\\x1b]0;owned\\x07\" is invalid"},
        {"/0123456789012345678901234567890123456789012345678901234567", "at most 57"},
    };
    char conf[PATH_MAX];
    snprintf(conf, sizeof conf, "%s", path_in("seg.conf"));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char segment[160];
        snprintf(segment, sizeof segment, "segment = { name = \"%s\"; };", bad[i].name);
        write_conf(conf, segment, NULL);
        expect_check_config_fails(conf, bad[i].want);
        CU_ASSERT_PTR_NOT_NULL(strstr(slurp(path_in("check.log")), "seg.conf:1: segment.name: "));
        CU_ASSERT_PTR_NULL(strchr(slurp(path_in("check.log")), '\x1b')); /* no escape reaches the terminal */
    }
    unlink(conf);
}

/* ------------------------------------------------------------------ */
/* Reload keeps the environment chosen at start                         */

static void write_two_envs(const char *path, const char *segment, const char *default_env, unsigned check_ms)
{
    write_text(path, 0600,
               "segment = { name = \"%s\"; max_workers = 4; max_clusters = 4; };\n"
               "supervisor = { heartbeat_interval_ms = 100; };\n"
               "default_environment = \"%s\";\n"
               "defaults = { check_interval_ms = %u; check_timeout_ms = 200; };\n"
               "environments = {\n"
               "  first = { clusters = { alpha = { mongo_uri = \"mongodb://127.0.0.1:1/\"; }; }; };\n"
               "  second = { clusters = { beta = { mongo_uri = \"mongodb://127.0.0.1:2/\"; }; }; };\n"
               "};\n",
               segment, default_env, check_ms);
}

static bool open_running(const char *name, msup_segment_t *seg, unsigned timeout_ms)
{
    uint64_t deadline = msup_test_now_ms() + timeout_ms;
    mongosup_error_t err;
    while (msup_test_now_ms() < deadline) {
        if (msup_segment_open_readonly(name, (uid_t)-1, seg, &err)) {
            if (msup_segment_control(seg) == NULL) { /* mongosupd has not claimed it yet */
                msup_segment_close(seg);
                msup_test_sleep_ms(10);
                continue;
            }
            while (msup_test_now_ms() < deadline && atomic_load(&msup_segment_hdr(seg)->phase) != MSUP_PHASE_RUNNING)
                msup_test_sleep_ms(10);
            if (atomic_load(&msup_segment_hdr(seg)->phase) == MSUP_PHASE_RUNNING)
                return true;
            msup_segment_close(seg);
            return false;
        }
        msup_test_sleep_ms(10);
    }
    return false;
}

static void test_reload_keeps_environment(void)
{
    unsetenv("MONGOSUP_ENV");
    const char *seg_name = msup_test_segment_name("reload-env");
    const char *conf = path_in("envs.conf"), *log = path_in("envs.log");
    write_two_envs(conf, seg_name, "first", 1000);
    const char *args[] = {"-c", conf, NULL}; /* no -e: default_environment chooses */
    pid_t sup = spawn_daemon(log, args);
    msup_segment_t seg;
    /* A start-up deadline, not a bound: on a loaded machine mongosupd's
     * start-up alone has taken 17 s (supervisor_daemon_test's start_deadline_ms). */
    bool up = open_running(seg_name, &seg, msup_test_under_valgrind() ? 120000 : 30000);
    CU_ASSERT_FATAL(up);
    CU_ASSERT_STRING_EQUAL(msup_segment_hdr(&seg)->environment, "first");
    CU_ASSERT(msup_segment_find_cluster(&seg, "alpha") >= 0);
    uint64_t gen = atomic_load(&msup_segment_hdr(&seg)->config_generation);

    /* Another default, and a changed setting of the running environment. */
    write_two_envs(conf, seg_name, "second", 1500);
    CU_ASSERT_EQUAL(kill(sup, SIGHUP), 0);
    uint64_t deadline = msup_test_now_ms() + (msup_test_under_valgrind() ? 20000 : 5000);
    while (atomic_load(&msup_segment_hdr(&seg)->config_generation) == gen && msup_test_now_ms() < deadline)
        msup_test_sleep_ms(10);
    CU_ASSERT(atomic_load(&msup_segment_hdr(&seg)->config_generation) > gen);
    CU_ASSERT_STRING_EQUAL(msup_segment_hdr(&seg)->environment, "first");
    CU_ASSERT(msup_segment_find_cluster(&seg, "alpha") >= 0);
    CU_ASSERT(msup_segment_find_cluster(&seg, "beta") < 0);
    /* The log line follows the generation bump: waited for, not 100 ms. */
    const char *text = slurp(log);
    for (deadline = msup_test_now_ms() + (msup_test_under_valgrind() ? 20000 : 5000);
         strstr(text, "0 added, 0 removed, 1 changed") == NULL && msup_test_now_ms() < deadline;
         text = slurp(log))
        msup_test_sleep_ms(10);
    if (strstr(text, "0 added, 0 removed, 1 changed") == NULL)
        fprintf(stderr, "\n    log: %s", text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "0 added, 0 removed, 1 changed"));
    msup_segment_close(&seg);

    CU_ASSERT_EQUAL(kill(sup, SIGTERM), 0);
    CU_ASSERT_EQUAL(wait_exit(sup, msup_test_under_valgrind() ? 20000 : 5000), 0);
    unlink(conf);
    unlink(log);
}

/* ------------------------------------------------------------------ */

static void remove_tmpdir(void)
{
    unlink(path_in("check.log"));
    if (rmdir(tmpdir) != 0)
        fprintf(stderr, "config_files_test: cannot remove %s: %s\n", tmpdir, strerror(errno));
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/config/files/config-fifo", test_config_fifo},
        {"/config/files/config-directory", test_config_directory},
        {"/config/files/config-device", test_config_device},
        {"/config/files/config-symlink", test_config_symlink},
        {"/config/files/include-refused", test_config_include},
        {"/config/files/not-text", test_config_not_text},
        {"/config/files/password-fifo", test_password_fifo},
        {"/config/files/password-directory-and-device", test_password_directory_and_device},
        {"/config/files/password-symlink", test_password_symlink},
        {"/config/files/tls-files", test_tls_files},
        {"/config/files/check-config/files", test_check_config_files},
        {"/config/files/check-config/segment-names", test_check_config_segment_names},
        {"/config/files/reload-keeps-environment", test_reload_keeps_environment},
        {NULL, NULL},
    };
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mongosup-config-files.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    int rc = msup_test_main("config_files", tests, argc, argv);
    remove_tmpdir();
    return rc;
}
