/* segment_test.c: the control and stats segments: create, adopt, lock, owners and modes, liveness, corruption. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "segment.h"
#include "segment_fixture.h"
#include "slots.h"
#include "snapshot.h"
#include "stats.h"
#include "testmain.h"

static const msup_geometry_t geo4x2 = {.max_workers = 4, .max_clusters = 2, .mode = 0600, .group = (gid_t)-1,
                                       .owner = (uid_t)-1, .environment = "test"};

static void shm_path(const char *name, const char *suffix, char *out, size_t n)
{
    snprintf(out, n, "/dev/shm%s%s", name, suffix);
}

static void test_create_basic(void)
{
    const char *name = msup_test_segment_name("create");
    msup_segment_t seg;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_segment_create(name, &geo4x2, &seg, &err));
    CU_ASSERT_EQUAL(seg.shdr->magic, MSUP_STATS_MAGIC);
    CU_ASSERT_EQUAL(seg.shdr->layout_version, 4);
    CU_ASSERT_EQUAL(seg.size, msup_layout_size(4, 2));
    CU_ASSERT_EQUAL(seg.max_workers, 4);
    CU_ASSERT_STRING_EQUAL(seg.shdr->environment, "test");
    CU_ASSERT_STRING_EQUAL(seg.shdr->segment_name, name);
    CU_ASSERT_PTR_NULL(msup_segment_control(&seg)); /* only mongosupd creates the control segment */
    CU_ASSERT_EQUAL(msup_segment_phase(&seg), MSUP_PHASE_RUNNING); /* none: a worker fails open */
    CU_ASSERT_EQUAL((uintptr_t)seg.reg % MSUP_CACHE_LINE, 0);
    CU_ASSERT_EQUAL((uintptr_t)msup_slot_stats(&seg, 3, 1) % MSUP_CACHE_LINE, 0);
    CU_ASSERT_EQUAL((uint8_t *)msup_slot_stats(&seg, 3, 1) + sizeof(msup_stats_t), (uint8_t *)seg.base + seg.size);
    char path[128];
    struct stat st;
    shm_path(name, ".stats", path, sizeof path);
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    shm_path(name, "", path, sizeof path);
    CU_ASSERT_NOT_EQUAL(stat(path, &st), 0);

    msup_segment_t again;
    CU_ASSERT_FALSE(msup_segment_create(name, &geo4x2, &again, &err));
    CU_ASSERT_EQUAL(err.driver_code, EEXIST);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, name));
    msup_segment_close(&seg);
    CU_ASSERT(msup_segment_unlink(name, &err));
}

static void test_create_mode(void)
{
    const char *name = msup_test_segment_name("mode");
    msup_geometry_t g = geo4x2;
    g.mode = 0640;
    msup_segment_t seg;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_segment_create(name, &g, &seg, &err));
    char path[128];
    struct stat st;
    shm_path(name, ".stats", path, sizeof path);
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0640);
    msup_segment_close(&seg);
    msup_segment_unlink(name, NULL);
    /* Never world-writable, whatever the caller asks. */
    g.mode = 0666;
    CU_ASSERT_FALSE(msup_segment_create(name, &g, &seg, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "writable by others"));
    CU_ASSERT_NOT_EQUAL(stat(path, &st), 0);
}

static void test_bad_name(void)
{
    msup_segment_t seg;
    mongosup_error_t err;
    CU_ASSERT_FALSE(msup_segment_create("noslash", &geo4x2, &seg, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "must be '/' followed by a name"));
    CU_ASSERT_FALSE(msup_segment_open_readonly("/a/b", (uid_t)-1, &seg, &err));
    CU_ASSERT_FALSE(msup_segment_open_readonly("/..", (uid_t)-1, &seg, &err));
    bool created;
    CU_ASSERT_PTR_NULL(msup_ctlseg_claim("/.", &geo4x2, &created, &err));
    msup_geometry_t g = geo4x2;
    g.max_clusters = MSUP_MAX_CLUSTERS + 1;
    CU_ASSERT_FALSE(msup_segment_create("/msup-test-toolarge", &g, &seg, &err));
    CU_ASSERT_EQUAL(err.code, MONGOSUP_E_INVALID_ARG);
}

static void test_open_missing(void)
{
    msup_segment_t seg;
    mongosup_error_t err;
    CU_ASSERT_FALSE(msup_segment_open_readonly("/msup-test-does-not-exist", (uid_t)-1, &seg, &err));
    CU_ASSERT_EQUAL(err.code, MONGOSUP_E_SEGMENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "does not exist"));
}

static void test_adopt_same(void)
{
    const char *name = msup_test_segment_name("adopt");
    msup_segment_t seg, adopted;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_segment_create(name, &geo4x2, &seg, &err));
    msup_stats_count(&msup_slot_stats(&seg, 1, 1)->checkouts, 42);
    CU_ASSERT_FATAL(msup_segment_adopt(name, &geo4x2, &adopted, &err));
    CU_ASSERT_EQUAL(msup_slot_stats(&adopted, 1, 1)->checkouts, 42);
    CU_ASSERT_FALSE(msup_segment_replaced(&adopted));
    msup_segment_close(&adopted);

    msup_geometry_t bigger = geo4x2;
    bigger.max_workers = 8;
    CU_ASSERT_FALSE(msup_segment_adopt(name, &bigger, &adopted, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "4 workers x 2 clusters"));
    /* A recreated segment is noticed by whoever still maps the old one. */
    msup_segment_unlink(name, NULL);
    CU_ASSERT_TRUE(msup_segment_replaced(&seg));
    msup_segment_t fresh;
    CU_ASSERT_FATAL(msup_segment_create(name, &geo4x2, &fresh, &err));
    CU_ASSERT_TRUE(msup_segment_replaced(&seg));
    CU_ASSERT_FALSE(msup_segment_replaced(&fresh));
    msup_segment_close(&fresh);
    msup_segment_close(&seg);
    msup_segment_unlink(name, NULL);
}

static void test_adopt_foreign_owner(void)
{
    if (geteuid() != 0) {
        printf("SKIP (not root: a foreign owner needs chown) ");
        return;
    }
    const char *name = msup_test_segment_name("owner");
    msup_segment_t seg, adopted;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_segment_create(name, &geo4x2, &seg, &err));
    char path[128];
    shm_path(name, ".stats", path, sizeof path);
    CU_ASSERT_EQUAL_FATAL(chown(path, 4242, 4242), 0);
    CU_ASSERT_FALSE(msup_segment_adopt(name, &geo4x2, &adopted, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "is owned by uid 4242 (mode 0600)"));
    /* A reader refuses it too, with the same one line. */
    CU_ASSERT_FALSE(msup_segment_open_readonly(name, (uid_t)-1, &adopted, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "is owned by uid 4242"));
    CU_ASSERT_PTR_NULL(strchr(err.message, '\n'));
    /* Unless 4242 is the configured segment.owner. */
    msup_geometry_t g = geo4x2;
    g.owner = 4242;
    CU_ASSERT_TRUE(msup_segment_adopt(name, &g, &adopted, &err));
    msup_segment_close(&adopted);
    CU_ASSERT_TRUE(msup_segment_open_readonly(name, 4242, &adopted, &err));
    msup_segment_close(&adopted);
    /* A control segment another uid made (a squatter) is never claimed. */
    shm_path(name, "", path, sizeof path);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0644);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(fchown(fd, 4242, 4242), 0);
    close(fd);
    bool created;
    CU_ASSERT_PTR_NULL(msup_ctlseg_claim(name, &geo4x2, &created, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "owned by uid 4242"));
    struct stat st;
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_size, 0); /* not a byte written */
    msup_segment_close(&seg);
    msup_segment_unlink(name, NULL);
}

/* Nothing adopts or reads a world-writable object; the control segment
 * may not be group-writable either. */
static void test_writable_modes_refused(void)
{
    const char *name = msup_test_segment_name("wmode");
    msup_segment_t seg, other;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_test_segment_setup("wmode", 4, 2, NULL, &seg));
    char stats[128], ctl[128];
    shm_path(name, ".stats", stats, sizeof stats);
    shm_path(name, "", ctl, sizeof ctl);
    struct stat st;
    CU_ASSERT_EQUAL(stat(ctl, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);

    CU_ASSERT_EQUAL(chmod(stats, 0666), 0);
    CU_ASSERT_FALSE(msup_segment_adopt(name, &geo4x2, &other, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "is writable by others"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "mode 0666"));
    CU_ASSERT_FALSE(msup_segment_open_readonly(name, (uid_t)-1, &other, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "is writable by others"));
    /* Group-writable stats are fine (workers of the group write them). */
    CU_ASSERT_EQUAL(chmod(stats, 0660), 0);
    CU_ASSERT_TRUE(msup_segment_open_readonly(name, (uid_t)-1, &other, &err));
    msup_segment_close(&other);
    /* A group-writable control segment is not: a group member could forge DOWN. */
    CU_ASSERT_EQUAL(chmod(ctl, 0660), 0);
    CU_ASSERT_FALSE(msup_segment_open_readonly(name, (uid_t)-1, &other, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "control segment"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "is group-writable"));
    CU_ASSERT_FATAL(msup_segment_adopt(name, &geo4x2, &other, &err));
    CU_ASSERT_FALSE(msup_segment_bind_control(&other, &err));
    CU_ASSERT_PTR_NULL(msup_segment_control(&other));
    msup_segment_close(&other);
    msup_test_segment_teardown(&seg);
}

/* The control segment: created with the configured mode minus group and
 * other write bits, initialised once, locked: a second claim fails at once
 * naming the holder, and succeeds once the holder is gone. */
static void test_control_claim_lock(void)
{
    const char *name = msup_test_segment_name("claim");
    msup_segment_unlink(name, NULL);
    msup_geometry_t g = geo4x2;
    g.mode = 0660;
    bool created;
    mongosup_error_t err;
    int go[2], done[2];
    CU_ASSERT_FATAL(pipe(go) == 0 && pipe(done) == 0);
    pid_t holder = fork();
    CU_ASSERT_FATAL(holder >= 0);
    if (holder == 0) {
        msup_ctlseg_t *c = msup_ctlseg_claim(name, &g, &created, &err);
        char byte = c != NULL && created ? 'y' : 'n';
        if (write(done[1], &byte, 1) != 1 || read(go[0], &byte, 1) != 1)
            _exit(2);
        _exit(c != NULL ? 0 : 1);
    }
    char byte = 0;
    CU_ASSERT_EQUAL_FATAL(read(done[0], &byte, 1), 1);
    CU_ASSERT_EQUAL(byte, 'y');
    char path[128];
    struct stat st;
    shm_path(name, "", path, sizeof path);
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0640);
    CU_ASSERT_EQUAL((uint64_t)st.st_size, msup_ctlseg_size(2));
    msup_ctlseg_t *c = msup_ctlseg_claim(name, &g, &created, &err);
    CU_ASSERT_PTR_NULL(c);
    char want[96];
    snprintf(want, sizeof want, "another mongosupd (pid %d) holds %s", (int)holder, name);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, want));
    CU_ASSERT_EQUAL(write(go[1], "x", 1), 1);
    int status;
    waitpid(holder, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The kernel dropped the lock with its holder: adopted, not recreated. */
    c = msup_ctlseg_claim(name, &g, &created, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FALSE(created);
    CU_ASSERT_EQUAL(atomic_load(&c->hdr->supervisor_pid), getpid());
    /* Another geometry is refused, with the reason. */
    msup_geometry_t g3 = geo4x2;
    g3.max_clusters = 3;
    msup_ctlseg_close(c);
    CU_ASSERT_PTR_NULL(msup_ctlseg_claim(name, &g3, &created, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "2 clusters"));
    for (int i = 0; i < 2; i++) {
        close(go[i]);
        close(done[i]);
    }
    msup_segment_unlink(name, NULL);
}

/* Many claims at the same moment: exactly one wins, every other names it. */
static void test_control_claim_race(void)
{
    const char *name = msup_test_segment_name("crace");
    msup_segment_unlink(name, NULL);
    enum { N = 8 };
    pid_t kids[N];
    int report[2], go[2], release[2];
    CU_ASSERT_FATAL(pipe(report) == 0 && pipe(go) == 0 && pipe(release) == 0);
    for (int i = 0; i < N; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            close(go[1]);
            close(release[1]);
            char byte;
            if (read(go[0], &byte, 1) != 0) /* all start when the parent closes it */
                _exit(5);
            mongosup_error_t err;
            bool created;
            msup_ctlseg_t *c = msup_ctlseg_claim(name, &geo4x2, &created, &err);
            char line[160];
            int n = snprintf(line, sizeof line, "%d %s\n", (int)getpid(), c ? "WON" : err.message);
            if (write(report[1], line, (size_t)n) != n)
                _exit(4);
            close(report[1]); /* the parent's read ends when every child has written or gone */
            /* The winner holds the lock until every other has tried (the
             * parent closes `release` once all N reported): a fixed hold
             * let a loser that a loaded machine scheduled late claim it
             * after the winner's exit. */
            if (c != NULL && read(release[0], &byte, 1) != 0)
                _exit(5);
            _exit(c != NULL ? 0 : 1);
        }
    }
    close(go[0]);
    close(go[1]);
    close(report[1]);
    close(release[0]);
    /* One line from each child (a child that dies without one ends the
     * stream when all have gone). */
    char all[4096];
    size_t len = 0;
    for (int lines = 0; lines < N && len < sizeof all - 1;) {
        ssize_t n = read(report[0], all + len, sizeof all - 1 - len);
        if (n <= 0)
            break;
        for (ssize_t k = 0; k < n; k++)
            lines += all[len + (size_t)k] == '\n';
        len += (size_t)n;
    }
    all[len] = '\0';
    close(report[0]);
    close(release[1]);
    int winners = 0, losers = 0;
    for (int i = 0; i < N; i++) {
        int status;
        waitpid(kids[i], &status, 0);
        winners += WIFEXITED(status) && WEXITSTATUS(status) == 0;
        losers += WIFEXITED(status) && WEXITSTATUS(status) == 1;
    }
    CU_ASSERT_EQUAL(winners, 1);
    CU_ASSERT_EQUAL(losers, N - 1);
    int won_pid = 0;
    char *w = strstr(all, " WON");
    if (w != NULL) {
        while (w > all && w[-1] != '\n')
            w--;
        won_pid = atoi(w);
    }
    char want[96];
    snprintf(want, sizeof want, "another mongosupd (pid %d) holds", won_pid);
    int naming = 0;
    for (char *p = strstr(all, want); p != NULL; p = strstr(p + 1, want))
        naming++;
    CU_ASSERT_EQUAL(naming, N - 1);
    if (naming != N - 1)
        fprintf(stderr, "\n%s", all);
    msup_segment_unlink(name, NULL);
}

/* Writes raw bytes as a segment named name. */
static void write_raw(const char *name, const void *bytes, size_t len)
{
    shm_unlink(name);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, bytes, len) == (ssize_t)len);
    close(fd);
}

/* Opens name read-only and expects a refusal whose message contains want. */
static void expect_refused(const char *name, const char *want)
{
    msup_segment_t seg;
    mongosup_error_t err;
    bool ok = msup_segment_open_readonly(name, (uid_t)-1, &seg, &err);
    CU_ASSERT_FALSE(ok);
    if (ok) {
        msup_segment_close(&seg);
        return;
    }
    CU_ASSERT_EQUAL(err.code, MONGOSUP_E_SEGMENT);
    CU_ASSERT_PTR_NULL(strchr(err.message, '\n'));
    if (strstr(err.message, want) == NULL)
        fprintf(stderr, "\nwanted '%s' in: %s\n", want, err.message);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, want));
}

/* Valid images of both segments in memory (copies of real ones). */
static void valid_images(uint8_t **stats, size_t *stats_len, uint8_t **ctl, size_t *ctl_len)
{
    static const char *const names[] = {"users", NULL};
    msup_segment_t seg;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_test_segment_setup("image", 4, 2, names, &seg));
    msup_cluster_row_t *row = msup_segment_row(&seg, 0);
    atomic_store(&row->health, MSUP_HEALTH_UP);
    msup_last_error_write(&row->last_check_error, MSUP_FAIL_NETWORK, 2, 5, "refused");
    int idx = msup_slot_claim(&seg, getpid(), "img", &err);
    CU_ASSERT_FATAL(idx >= 0);
    msup_stats_record_op(msup_slot_stats(&seg, (uint32_t)idx, 0), MSUP_OP_READ, 1234);
    msup_stats_record_failure(msup_slot_stats(&seg, (uint32_t)idx, 0), MSUP_FAIL_NETWORK, 2, 4, "boom");
    for (int i = 0; i < 3; i++) {
        msup_slowop_in_t op = {.command = "find", .database = "app", .collection = "orders", .server = "db:27017",
                               .duration_us = 500000, .slow = true};
        msup_slowlog_record(&msup_slot_stats(&seg, (uint32_t)idx, 0)->slowlog, &op);
    }
    const msup_ctlseg_t *c = msup_segment_control(&seg);
    *stats_len = seg.size;
    *stats = malloc(seg.size);
    memcpy(*stats, seg.base, seg.size);
    *ctl_len = c->size;
    *ctl = malloc(c->size);
    memcpy(*ctl, c->base, c->size);
    msup_test_segment_teardown(&seg);
}

/* Writes both objects of `name` from images. */
static void write_pair(const char *name, const uint8_t *stats, size_t stats_len, const uint8_t *ctl, size_t ctl_len)
{
    char sname[MSUP_NAME_MAX + 8];
    snprintf(sname, sizeof sname, "%s.stats", name);
    write_raw(sname, stats, stats_len);
    write_raw(name, ctl, ctl_len);
}

static void test_bad_segments(void)
{
    size_t slen, clen;
    uint8_t *simg, *cimg;
    valid_images(&simg, &slen, &cimg, &clen);
    const char *name = msup_test_segment_name("image"); /* the name the images carry */
    uint8_t *work = malloc(slen > clen ? slen : clen);

    /* The stats segment, with a valid control segment beside it. */
    write_pair(name, (const uint8_t *)"hello", 5, cimg, clen);
    expect_refused(name, "truncated");

    uint8_t *foreign = calloc(1, slen);
    memcpy(foreign, "PGSQLSHM", 8);
    write_pair(name, foreign, slen, cimg, clen);
    expect_refused(name, "foreign");
    free(foreign);

    memcpy(work, simg, slen);
    ((msup_stats_header_t *)work)->layout_version = 99;
    write_pair(name, work, slen, cimg, clen);
    expect_refused(name, "layout version 99, this build reads version 4");
    memcpy(work, cimg, clen);
    ((msup_header_t *)work)->layout_version = 2; /* the split's own magic, an older version */
    write_pair(name, simg, slen, work, clen);
    expect_refused(name, "layout version 2, this build reads version 4");
    /* Version 3: the same two objects and record sizes, without the header's
     * config_applied_mono_ns.  Only the version tells it apart: refused with
     * the reason, whichever object says so. */
    memcpy(work, cimg, clen);
    ((msup_header_t *)work)->layout_version = 3;
    write_pair(name, simg, slen, work, clen);
    expect_refused(name, "layout version 3, this build reads version 4: another mongosup release");
    memcpy(work, simg, slen);
    ((msup_stats_header_t *)work)->layout_version = 3;
    write_pair(name, work, slen, cimg, clen);
    expect_refused(name, "layout version 3, this build reads version 4: another mongosup release");
    /* Segments of the previous releases (layouts 1 and 2: one object at the
     * configured name, magic "MSUPSHM1", no stats object) are refused with
     * the reason and what to do, not reported as missing or foreign. */
    char sname[MSUP_NAME_MAX + 8];
    snprintf(sname, sizeof sname, "%s.stats", name);
    for (uint32_t v = 1; v <= 2; v++) {
        char want[128];
        snprintf(want, sizeof want, "layout version %u, this build reads version 4: another mongosup release", v);
        memcpy(work, simg, slen);
        atomic_store(&((msup_header_t *)work)->magic, MSUP_LEGACY_MAGIC);
        ((msup_header_t *)work)->layout_version = v;
        write_raw(name, work, slen);
        shm_unlink(sname);
        expect_refused(name, want);
        /* And so does the supervisor, before it writes a byte. */
        msup_geometry_t g = {.max_workers = 4, .max_clusters = 2, .mode = 0600, .group = (gid_t)-1, .owner = (uid_t)-1};
        bool created;
        mongosup_error_t err;
        CU_ASSERT_PTR_NULL(msup_ctlseg_claim(name, &g, &created, &err));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, want));
        expect_refused(name, want); /* left as it was */
    }

    write_pair(name, simg, slen - 4096, cimg, clen);
    expect_refused(name, "truncated");

    memcpy(work, simg, slen);
    ((msup_stats_header_t *)work)->slot_off += 64;
    write_pair(name, work, slen, cimg, clen);
    expect_refused(name, "corrupted");

    memcpy(work, simg, slen);
    ((msup_stats_header_t *)work)->max_clusters = 1000;
    write_pair(name, work, slen, cimg, clen);
    expect_refused(name, "out of range");

    memcpy(work, simg, slen);
    memset(((msup_stats_header_t *)work)->environment, 'x', MSUP_NAME_MAX);
    write_pair(name, work, slen, cimg, clen);
    expect_refused(name, "unterminated");

    memcpy(work, simg, slen);
    atomic_store(&((msup_stats_header_t *)work)->magic, 0);
    write_pair(name, work, slen, cimg, clen);
    expect_refused(name, "not initialised");

    /* A control image where the stats one belongs, and the reverse. */
    write_pair(name, cimg, clen, cimg, clen);
    expect_refused(name, "a stats one was expected");
    write_pair(name, simg, slen, simg, slen);
    expect_refused(name, "a control one was expected");

    /* The control segment. */
    memcpy(work, cimg, clen);
    ((msup_header_t *)work)->max_clusters = 3;
    write_pair(name, simg, slen, work, clen);
    expect_refused(name, "corrupted");
    memcpy(work, cimg, clen);
    ((msup_header_t *)work)->cluster_row_size = 12;
    write_pair(name, simg, slen, work, clen);
    expect_refused(name, "record sizes");
    write_pair(name, simg, slen, cimg, clen - 64);
    expect_refused(name, "truncated");
    memcpy(work, cimg, clen);
    snprintf(((msup_header_t *)work)->segment_name, MSUP_NAME_MAX, "/elsewhere");
    write_pair(name, simg, slen, work, clen);
    expect_refused(name, "names itself /elsewhere");

    /* The valid images open; the registry row is described by its control row. */
    write_pair(name, simg, slen, cimg, clen);
    msup_segment_t seg;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_segment_open_readonly(name, (uid_t)-1, &seg, &err));
    msup_snapshot_t snap;
    CU_ASSERT_TRUE(msup_snapshot_take(&seg, &snap, &err));
    CU_ASSERT_EQUAL(snap.cluster_count, 1);
    CU_ASSERT_TRUE(snap.clusters[0].supervised);
    CU_ASSERT_EQUAL(snap.clusters[0].health, MSUP_HEALTH_UP);
    CU_ASSERT_STRING_EQUAL(snap.clusters[0].last_check_error.message, "refused");
    CU_ASSERT_EQUAL(snap.clusters[0].totals.ops[MSUP_OP_READ], 1);
    CU_ASSERT_STRING_EQUAL(snap.clusters[0].last_error.message, "boom");
    /* Nobody holds the lock of this copy: gone, whatever its heartbeat says. */
    CU_ASSERT_EQUAL(snap.liveness, MSUP_SUPERVISOR_GONE);
    CU_ASSERT_EQUAL(snap.slow_count, 3);
    CU_ASSERT_EQUAL(snap.clusters[0].totals.slow_ops, 3);
    msup_snapshot_free(&snap);
    msup_segment_close(&seg);
    /* Without a control segment: readable, nobody supervises. */
    shm_unlink(name);
    CU_ASSERT_FATAL(msup_segment_open_readonly(name, (uid_t)-1, &seg, &err));
    CU_ASSERT_TRUE(msup_snapshot_take(&seg, &snap, &err));
    CU_ASSERT_FALSE(snap.has_control);
    CU_ASSERT_FALSE(snap.clusters[0].supervised);
    CU_ASSERT_EQUAL(snap.clusters[0].health, MSUP_HEALTH_UNKNOWN);
    msup_snapshot_free(&snap);
    msup_segment_close(&seg);
    free(work);
    free(simg);
    free(cimg);
    msup_segment_unlink(name, NULL);
}

/* Flips random bytes of a valid image many times: opening and reading it
 * either fails with a message or succeeds; it never crashes or reads past
 * the map (the child would die of SIGSEGV, which the parent checks).  Run
 * against each layout, the other object staying valid. */
static void corrupt_rounds(bool control)
{
    size_t slen, clen;
    uint8_t *simg, *cimg;
    valid_images(&simg, &slen, &cimg, &clen);
    uint8_t *img = control ? cimg : simg;
    size_t len = control ? clen : slen;
    size_t hdr = control ? sizeof(msup_header_t) : sizeof(msup_stats_header_t);
    int rounds = msup_test_under_valgrind() ? 150 : 3000;
    char name[MSUP_NAME_MAX];
    snprintf(name, sizeof name, "%s", msup_test_segment_name("image")); /* the name the images carry */
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        uint8_t *work = malloc(len);
        unsigned seed = control ? 777 : 12345;
        int opened = 0;
        /* The first slot's slow-operation ring (valid_images claims slot 0). */
        const msup_stats_header_t *sh = (const msup_stats_header_t *)simg;
        size_t ring_at = sh->slot_off + sizeof(msup_slot_t) + offsetof(msup_stats_t, slowlog);
        for (int r = 0; r < rounds; r++) {
            memcpy(work, img, len);
            int flips = 1 + (int)(rand_r(&seed) % 8);
            for (int f = 0; f < flips; f++) {
                /* A third of the flips hit the header, where the offsets live, a
                 * third (of the stats image) the slow-operation ring (entries the
                 * snapshot copies). */
                unsigned where = (unsigned)rand_r(&seed) % 3;
                size_t at = where == 0                 ? rand_r(&seed) % hdr
                            : where == 1 && !control ? ring_at + rand_r(&seed) % sizeof(msup_slowlog_t)
                                                       : rand_r(&seed) % len;
                work[at] ^= (uint8_t)(1u << (rand_r(&seed) % 8));
            }
            size_t cut = (rand_r(&seed) % 10 == 0) ? rand_r(&seed) % len : len;
            if (control)
                write_pair(name, simg, slen, work, cut ? cut : 1);
            else
                write_pair(name, work, cut ? cut : 1, cimg, clen);
            msup_segment_t seg;
            mongosup_error_t err;
            if (msup_segment_open_readonly(name, (uid_t)-1, &seg, &err)) {
                opened++;
                msup_snapshot_t snap;
                if (msup_snapshot_take(&seg, &snap, &err))
                    msup_snapshot_free(&snap);
                msup_segment_close(&seg);
            } else if (err.message[0] == '\0' || strchr(err.message, '\n') != NULL) {
                _exit(3);
            }
        }
        msup_segment_unlink(name, NULL);
        free(work);
        free(simg);
        free(cimg);
        printf("(%s: %d rounds, %d opened) ", control ? "control" : "stats", rounds, opened);
        fflush(stdout);
        _exit(opened > 0 && opened < rounds ? 0 : 4);
    }
    int status = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(WIFEXITED(status));
    CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
    free(simg);
    free(cimg);
}

static void test_random_corruption_stats(void)
{
    corrupt_rounds(false);
}

static void test_random_corruption_control(void)
{
    corrupt_rounds(true);
}

static void test_open_or_create_race(void)
{
    const char *base = msup_test_segment_name("race");
    char name[64];
    snprintf(name, sizeof name, "%s", base);
    enum { N = 8 };
    pid_t kids[N];
    for (int i = 0; i < N; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            msup_segment_t seg;
            mongosup_error_t err;
            bool created;
            if (!msup_segment_open_or_create(name, &geo4x2, &seg, &created, &err))
                _exit(2);
            msup_segment_close(&seg);
            _exit(created ? 10 : 11);
        }
    }
    int creators = 0, adopters = 0;
    for (int i = 0; i < N; i++) {
        int status;
        waitpid(kids[i], &status, 0);
        CU_ASSERT_TRUE(WIFEXITED(status));
        creators += WEXITSTATUS(status) == 10;
        adopters += WEXITSTATUS(status) == 11;
    }
    CU_ASSERT_EQUAL(creators, 1);
    CU_ASSERT_EQUAL(adopters, N - 1);
    msup_segment_unlink(name, NULL);
}

static void test_supervisor_alive(void)
{
    msup_segment_t seg;
    CU_ASSERT_FATAL(msup_test_segment_setup("alive", 4, 2, NULL, &seg));
    msup_header_t *h = msup_segment_hdr(&seg);
    atomic_store(&h->supervisor_pid, 0);
    CU_ASSERT_FALSE(msup_supervisor_alive(&seg));
    atomic_store(&h->supervisor_pid, getpid());
    atomic_store(&h->heartbeat_mono_ns, msup_mono_ns());
    CU_ASSERT_TRUE(msup_supervisor_alive(&seg));
    CU_ASSERT_EQUAL(msup_supervisor_liveness(&seg), MSUP_SUPERVISOR_ALIVE);
    atomic_store(&h->heartbeat_mono_ns, msup_mono_ns() - 4000000000ull);
    CU_ASSERT_FALSE(msup_supervisor_alive(&seg));
    CU_ASSERT_EQUAL(msup_supervisor_liveness(&seg), MSUP_SUPERVISOR_STALLED);
    msup_test_segment_teardown(&seg);
}

/* The one verdict: a lock held by a live process with a fresh heartbeat is
 * alive; the moment the holder dies it is gone, heartbeat fresh or not
 * (the old heartbeat-only answer said "alive" for 3 more seconds). */
static void test_liveness_follows_lock(void)
{
    char name[MSUP_NAME_MAX];
    snprintf(name, sizeof name, "%s", msup_test_segment_name("live"));
    msup_segment_unlink(name, NULL);
    int ready[2];
    CU_ASSERT_FATAL(pipe(ready) == 0);
    pid_t sup = fork();
    CU_ASSERT_FATAL(sup >= 0);
    if (sup == 0) {
        msup_segment_t mine;
        mongosup_error_t err;
        bool created;
        msup_ctlseg_t *c = msup_segment_open_or_create(name, &geo4x2, &mine, &created, &err)
                                ? msup_ctlseg_claim(name, &geo4x2, &created, &err)
                                : NULL;
        if (c == NULL)
            _exit(2);
        atomic_store(&c->hdr->heartbeat_timeout_ms, 3000);
        atomic_store(&c->hdr->heartbeat_mono_ns, msup_mono_ns());
        if (write(ready[1], "r", 1) != 1)
            _exit(3);
        for (;;) {
            atomic_store(&c->hdr->heartbeat_mono_ns, msup_mono_ns());
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    char byte;
    CU_ASSERT_EQUAL_FATAL(read(ready[0], &byte, 1), 1);
    msup_segment_t seg;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_segment_open_readonly(name, (uid_t)-1, &seg, &err));
    /* The test keeps the heartbeat young itself (a writable mapping of the
     * control segment, without its lock) right before each verdict: the
     * child's own beat could be seconds old by then on a loaded machine,
     * and the verdicts are about the lock, not about the beat's age. */
    msup_segment_t beat;
    CU_ASSERT_FATAL(msup_test_segment_open_rw(name, &beat));
    CU_ASSERT_PTR_NOT_NULL_FATAL(msup_segment_control(&beat));
    _Atomic uint64_t *heartbeat = &msup_segment_hdr(&beat)->heartbeat_mono_ns;
    CU_ASSERT_EQUAL(msup_supervisor_liveness(&seg), MSUP_SUPERVISOR_ALIVE);
    kill(sup, SIGSTOP);
    atomic_store(heartbeat, msup_mono_ns());
    CU_ASSERT_EQUAL(msup_supervisor_liveness(&seg), MSUP_SUPERVISOR_ALIVE); /* stopped, heartbeat still young */
    kill(sup, SIGKILL);
    int status;
    waitpid(sup, &status, 0);
    atomic_store(heartbeat, msup_mono_ns());
    CU_ASSERT_TRUE(msup_supervisor_alive(&seg)); /* the heartbeat alone would still say alive */
    CU_ASSERT_EQUAL(msup_supervisor_liveness(&seg), MSUP_SUPERVISOR_GONE);
    msup_snapshot_t snap;
    CU_ASSERT_TRUE(msup_snapshot_take(&seg, &snap, &err));
    CU_ASSERT_FALSE(snap.supervisor_alive);
    msup_snapshot_free(&snap);
    msup_segment_close(&beat);
    msup_segment_close(&seg);
    close(ready[0]);
    close(ready[1]);
    msup_segment_unlink(name, NULL);
}

/* A group member (another uid in the segment's group, as a worker of
 * another user is): it may write the stats segment, but it can open the
 * control segment read-only only, so it cannot forge health or phase. */
static void test_group_member_cannot_write_control(void)
{
    if (geteuid() != 0) {
        printf("SKIP (not root: needs a child of another uid) ");
        return;
    }
    struct passwd *pw = getpwnam("nobody");
    if (pw == NULL) {
        printf("SKIP (no user nobody) ");
        return;
    }
    char name[MSUP_NAME_MAX];
    snprintf(name, sizeof name, "%s", msup_test_segment_name("group"));
    msup_segment_unlink(name, NULL);
    msup_geometry_t g = geo4x2;
    g.mode = 0660;
    g.group = pw->pw_gid;
    msup_segment_t seg;
    mongosup_error_t err;
    bool created;
    CU_ASSERT_FATAL(msup_segment_create(name, &g, &seg, &err));
    msup_ctlseg_t *ctl = msup_ctlseg_claim(name, &g, &created, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctl);
    msup_segment_set_control(&seg, ctl);
    char path[128];
    struct stat st;
    shm_path(name, "", path, sizeof path);
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0640); /* the configured 0660 minus group write */
    CU_ASSERT_EQUAL(st.st_gid, pw->pw_gid);
    pid_t child = fork();
    CU_ASSERT_FATAL(child >= 0);
    if (child == 0) {
        if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
            _exit(2);
        if (shm_open(name, O_RDWR, 0) >= 0 || errno != EACCES)
            _exit(3); /* the control segment: not writable by the group */
        msup_segment_t w;
        mongosup_error_t e;
        if (!msup_segment_adopt(name, &g, &w, &e)) /* the stats segment: writable (root owns it: accepted) */
            _exit(4);
        if (!msup_segment_bind_control(&w, &e))
            _exit(5); /* read-only, trusted */
        msup_segment_close(&w);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        fprintf(stderr, "\ngroup member child: step %d failed\n", WEXITSTATUS(status));
    msup_segment_close(&seg);
    msup_segment_unlink(name, NULL);
}

/* A worker believes a control row only for the same index and name: a
 * forged registry name finds no trusted row. */
static void test_trusted_row_needs_same_name(void)
{
    static const char *const names[] = {"users", "orders", NULL};
    msup_segment_t seg;
    CU_ASSERT_FATAL(msup_test_segment_setup("trust", 4, 2, names, &seg));
    CU_ASSERT_PTR_EQUAL(msup_segment_trusted_row(&seg, 0), msup_segment_row(&seg, 0));
    snprintf(seg.reg[0].name, sizeof seg.reg[0].name, "orders"); /* a group member rewrites the registry */
    CU_ASSERT_PTR_NULL(msup_segment_trusted_row(&seg, 0));
    CU_ASSERT_PTR_NOT_NULL(msup_segment_trusted_row(&seg, 1));
    atomic_store(&msup_segment_row(&seg, 1)->row_state, MSUP_ROW_REMOVED);
    CU_ASSERT_PTR_NULL(msup_segment_trusted_row(&seg, 1));
    msup_test_segment_teardown(&seg);
}

/* The check before any signal: the pid still has the slot's start time and
 * maps this very stats segment. */
static void test_proc_maps_segment(void)
{
    msup_segment_t seg;
    CU_ASSERT_FATAL(msup_test_segment_setup("maps", 4, 2, NULL, &seg));
    uint64_t me = msup_proc_start_time(getpid());
    CU_ASSERT_TRUE(msup_proc_maps_segment(getpid(), me, &seg));
    CU_ASSERT_FALSE(msup_proc_maps_segment(getpid(), me + 1, &seg)); /* a reused pid */
    pid_t child = fork();
    CU_ASSERT_FATAL(child >= 0);
    if (child == 0) {
        execlp("sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    uint64_t start = msup_proc_start_time(child);
    CU_ASSERT_FATAL(start != 0);
    /* Once the exec is done the inherited mapping is gone (a fixed 100 ms
     * was not always enough on a loaded machine). */
    CU_ASSERT(msup_test_wait_exec(child, "sleep", msup_test_slack_ms(10000)));
    CU_ASSERT_EQUAL(msup_proc_start_time(child), start); /* the same process, after its exec */
    CU_ASSERT_FALSE(msup_proc_maps_segment(child, start, &seg));
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    CU_ASSERT_FALSE(msup_proc_maps_segment(child, start, &seg)); /* gone */
    msup_test_segment_teardown(&seg);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/segment/create/basic", test_create_basic},
        {"/segment/create/mode", test_create_mode},
        {"/segment/create/bad-name", test_bad_name},
        {"/segment/open/missing", test_open_missing},
        {"/segment/adopt/same-owner-and-geometry", test_adopt_same},
        {"/segment/adopt/foreign-owner", test_adopt_foreign_owner},
        {"/segment/owner/writable-modes-refused", test_writable_modes_refused},
        {"/segment/control/claim-lock", test_control_claim_lock},
        {"/segment/control/claim-race", test_control_claim_race},
        {"/segment/validate/bad-segments", test_bad_segments},
        {"/segment/validate/random-corruption-stats", test_random_corruption_stats},
        {"/segment/validate/random-corruption-control", test_random_corruption_control},
        {"/segment/open-or-create/race", test_open_or_create_race},
        {"/segment/supervisor/heartbeat", test_supervisor_alive},
        {"/segment/supervisor/liveness-follows-lock", test_liveness_follows_lock},
        {"/segment/trust/same-index-and-name", test_trusted_row_needs_same_name},
        {"/segment/trust/group-member-cannot-write-control", test_group_member_cannot_write_control},
        {"/segment/signal/proc-maps-segment", test_proc_maps_segment},
        {NULL, NULL},
    };
    return msup_test_main("segment", tests, argc, argv);
}
