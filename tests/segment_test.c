/* segment_test.c: creating, adopting and validating segments, bad segments and random corruption. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "segment.h"
#include "slots.h"
#include "snapshot.h"
#include "stats.h"
#include "testmain.h"

static const msup_geometry_t geo4x2 = {.max_workers = 4, .max_clusters = 2, .mode = 0600, .group = (gid_t)-1,
                                       .environment = "test"};

static void test_create_basic(void)
{
    const char *name = msup_test_segment_name("create");
    msup_segment_t seg;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_segment_create(name, &geo4x2, &seg, &err));
    CU_ASSERT_EQUAL(seg.hdr->magic, MSUP_MAGIC);
    CU_ASSERT_EQUAL(seg.size, msup_layout_size(4, 2));
    CU_ASSERT_EQUAL(seg.max_workers, 4);
    CU_ASSERT_STRING_EQUAL(seg.hdr->environment, "test");
    CU_ASSERT_EQUAL(seg.hdr->phase, MSUP_PHASE_STARTING);
    CU_ASSERT_EQUAL((uintptr_t)seg.rows % MSUP_CACHE_LINE, 0);
    CU_ASSERT_EQUAL((uintptr_t)msup_slot_stats(&seg, 3, 1) % MSUP_CACHE_LINE, 0);
    CU_ASSERT_EQUAL((uint8_t *)msup_slot_stats(&seg, 3, 1) + sizeof(msup_stats_t), (uint8_t *)seg.base + seg.size);
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm%s", name);
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);

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
    snprintf(path, sizeof path, "/dev/shm%s", name);
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0640);
    msup_segment_close(&seg);
    msup_segment_unlink(name, NULL);
}

static void test_bad_name(void)
{
    msup_segment_t seg;
    mongosup_error_t err;
    CU_ASSERT_FALSE(msup_segment_create("noslash", &geo4x2, &seg, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "must start with '/'"));
    CU_ASSERT_FALSE(msup_segment_open_readonly("/a/b", &seg, &err));
    msup_geometry_t g = geo4x2;
    g.max_clusters = MSUP_MAX_CLUSTERS + 1;
    CU_ASSERT_FALSE(msup_segment_create("/msup-test-toolarge", &g, &seg, &err));
    CU_ASSERT_EQUAL(err.code, MONGOSUP_E_INVALID_ARG);
}

static void test_open_missing(void)
{
    msup_segment_t seg;
    mongosup_error_t err;
    CU_ASSERT_FALSE(msup_segment_open_readonly("/msup-test-does-not-exist", &seg, &err));
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
        printf("(not root: foreign owner needs chown, skipped) ");
        return;
    }
    const char *name = msup_test_segment_name("owner");
    msup_segment_t seg, adopted;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_segment_create(name, &geo4x2, &seg, &err));
    char path[128];
    snprintf(path, sizeof path, "/dev/shm%s", name);
    CU_ASSERT_EQUAL_FATAL(chown(path, 4242, 4242), 0);
    CU_ASSERT_FALSE(msup_segment_adopt(name, &geo4x2, &adopted, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "belongs to uid 4242"));
    /* A read-only monitor may still read it. */
    CU_ASSERT_TRUE(msup_segment_open_readonly(name, &adopted, &err));
    msup_segment_close(&adopted);
    msup_segment_close(&seg);
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
    bool ok = msup_segment_open_readonly(name, &seg, &err);
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

/* Makes a valid segment image in memory (a copy of a real one). */
static uint8_t *valid_image(size_t *len)
{
    const char *name = msup_test_segment_name("image");
    msup_segment_t seg;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_segment_create(name, &geo4x2, &seg, &err));
    msup_cluster_row_t *row = msup_segment_row(&seg, 0);
    snprintf(row->name, sizeof row->name, "users");
    atomic_store(&row->row_state, MSUP_ROW_ACTIVE);
    atomic_store(&seg.hdr->cluster_count, 1);
    int idx = msup_slot_claim(&seg, getpid(), "img", &err);
    CU_ASSERT_FATAL(idx >= 0);
    msup_stats_record_op(msup_slot_stats(&seg, (uint32_t)idx, 0), MSUP_OP_READ, 1234);
    msup_stats_record_failure(msup_slot_stats(&seg, (uint32_t)idx, 0), MSUP_FAIL_NETWORK, 2, 4, "boom");
    for (int i = 0; i < 3; i++) {
        msup_slowop_in_t op = {.command = "find", .database = "app", .collection = "orders", .server = "db:27017",
                               .duration_us = 500000, .slow = true};
        msup_slowlog_record(&msup_slot_stats(&seg, (uint32_t)idx, 0)->slowlog, &op);
    }
    *len = seg.size;
    uint8_t *copy = malloc(seg.size);
    memcpy(copy, seg.base, seg.size);
    msup_segment_close(&seg);
    msup_segment_unlink(name, NULL);
    return copy;
}

static void test_bad_segments(void)
{
    const char *name = msup_test_segment_name("bad");
    size_t len;
    uint8_t *img = valid_image(&len);
    msup_header_t *h = (msup_header_t *)img;

    write_raw(name, "hello", 5);
    expect_refused(name, "truncated");

    uint8_t *foreign = calloc(1, len);
    memcpy(foreign, "PGSQLSHM", 8);
    write_raw(name, foreign, len);
    expect_refused(name, "foreign");
    free(foreign);

    uint8_t *work = malloc(len);
    memcpy(work, img, len);
    ((msup_header_t *)work)->layout_version = 99;
    write_raw(name, work, len);
    expect_refused(name, "layout version 99");
    /* A segment of the previous release (version 1: no RECOVERING health, no
     * uri_mismatch) is refused with the reason, not read with the new meanings. */
    memcpy(work, img, len);
    ((msup_header_t *)work)->layout_version = 1;
    write_raw(name, work, len);
    expect_refused(name, "layout version 1, this build reads version 2: another mongosup release");

    memcpy(work, img, len);
    write_raw(name, work, len - 4096);
    expect_refused(name, "truncated");

    memcpy(work, img, len);
    ((msup_header_t *)work)->slot_off += 64;
    write_raw(name, work, len);
    expect_refused(name, "corrupted");

    memcpy(work, img, len);
    ((msup_header_t *)work)->max_clusters = 1000;
    write_raw(name, work, len);
    expect_refused(name, "out of range");

    memcpy(work, img, len);
    memset(((msup_header_t *)work)->environment, 'x', MSUP_NAME_MAX);
    write_raw(name, work, len);
    expect_refused(name, "unterminated");

    memcpy(work, img, len);
    atomic_store(&((msup_header_t *)work)->magic, 0);
    write_raw(name, work, len);
    expect_refused(name, "not initialised");

    /* The valid image opens. */
    write_raw(name, img, len);
    msup_segment_t seg;
    mongosup_error_t err;
    CU_ASSERT_TRUE(msup_segment_open_readonly(name, &seg, &err));
    msup_snapshot_t snap;
    CU_ASSERT_TRUE(msup_snapshot_take(&seg, &snap, &err));
    CU_ASSERT_EQUAL(snap.cluster_count, 1);
    CU_ASSERT_EQUAL(snap.clusters[0].totals.ops[MSUP_OP_READ], 1);
    CU_ASSERT_STRING_EQUAL(snap.clusters[0].last_error.message, "boom");
    CU_ASSERT_EQUAL(snap.slow_count, 3);
    CU_ASSERT_EQUAL(snap.clusters[0].totals.slow_ops, 3);
    msup_snapshot_free(&snap);
    msup_segment_close(&seg);
    (void)h;
    free(work);
    free(img);
    shm_unlink(name);
}

/* Flips random bytes of a valid image many times: opening and reading it
 * either fails with a message or succeeds; it never crashes or reads past
 * the map (the child would die of SIGSEGV, which the parent checks). */
static void test_random_corruption(void)
{
    size_t len;
    uint8_t *img = valid_image(&len);
    int rounds = msup_test_under_valgrind() ? 150 : 3000;
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        const char *name = msup_test_segment_name("fuzz");
        uint8_t *work = malloc(len);
        unsigned seed = 12345;
        int opened = 0;
        /* The first slot's slow-operation ring (valid_image claims slot 0). */
        const msup_header_t *h = (const msup_header_t *)img;
        size_t ring_at = h->slot_off + sizeof(msup_slot_t) + offsetof(msup_stats_t, slowlog);
        for (int r = 0; r < rounds; r++) {
            memcpy(work, img, len);
            int flips = 1 + (int)(rand_r(&seed) % 8);
            for (int f = 0; f < flips; f++) {
                /* A third of the flips hit the header, where the offsets live, a
                 * third the slow-operation ring (entries the snapshot copies). */
                unsigned where = (unsigned)rand_r(&seed) % 3;
                size_t at = where == 0   ? rand_r(&seed) % sizeof(msup_header_t)
                            : where == 1 ? ring_at + rand_r(&seed) % sizeof(msup_slowlog_t)
                                         : rand_r(&seed) % len;
                work[at] ^= (uint8_t)(1u << (rand_r(&seed) % 8));
            }
            size_t cut = (rand_r(&seed) % 10 == 0) ? rand_r(&seed) % len : len;
            write_raw(name, work, cut ? cut : 1);
            msup_segment_t seg;
            mongosup_error_t err;
            if (msup_segment_open_readonly(name, &seg, &err)) {
                opened++;
                msup_snapshot_t snap;
                if (msup_snapshot_take(&seg, &snap, &err))
                    msup_snapshot_free(&snap);
                msup_segment_close(&seg);
            } else if (err.message[0] == '\0' || strchr(err.message, '\n') != NULL) {
                _exit(3);
            }
        }
        shm_unlink(name);
        free(work);
        free(img);
        printf("(%d rounds, %d opened) ", rounds, opened);
        fflush(stdout);
        _exit(opened > 0 && opened < rounds ? 0 : 4);
    }
    int status = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(WIFEXITED(status));
    CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
    free(img);
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
    shm_unlink(name);
}

static void test_supervisor_alive(void)
{
    const char *name = msup_test_segment_name("alive");
    msup_segment_t seg;
    mongosup_error_t err;
    CU_ASSERT_FATAL(msup_segment_create(name, &geo4x2, &seg, &err));
    CU_ASSERT_FALSE(msup_supervisor_alive(&seg));
    atomic_store(&seg.hdr->supervisor_pid, getpid());
    atomic_store(&seg.hdr->heartbeat_mono_ns, msup_mono_ns());
    CU_ASSERT_TRUE(msup_supervisor_alive(&seg));
    atomic_store(&seg.hdr->heartbeat_mono_ns, msup_mono_ns() - 4000000000ull);
    CU_ASSERT_FALSE(msup_supervisor_alive(&seg));
    msup_segment_close(&seg);
    shm_unlink(name);
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
        {"/segment/validate/bad-segments", test_bad_segments},
        {"/segment/validate/random-corruption", test_random_corruption},
        {"/segment/open-or-create/race", test_open_or_create_race},
        {"/segment/supervisor/heartbeat", test_supervisor_alive},
        {NULL, NULL},
    };
    return msup_test_main("segment", tests, argc, argv);
}
