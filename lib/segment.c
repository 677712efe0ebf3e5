/* segment.c: create, adopt, open and validate the shared-memory segment. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "segment.h"

uint64_t msup_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t msup_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t msup_proc_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: count
     * fields from the last ')'. Field 3 (state) follows it; we want 22. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    if (p[1] == ' ' && p[2] == 'Z')
        return 0; /* a zombie has exited: its slot is dead */
    int field = 2;
    for (; *p != '\0'; p++) {
        if (*p == ' ' && ++field == 22)
            return strtoull(p + 1, NULL, 10);
    }
    return 0;
}

static bool valid_name(const char *name, mongosup_error_t *error)
{
    if (name == NULL || name[0] != '/' || strchr(name + 1, '/') != NULL || strlen(name) < 2 ||
        strlen(name) >= MSUP_NAME_MAX)
        return msup_fail(error, MONGOSUP_E_SEGMENT,
                         "segment name '%s' is invalid: it must start with '/', contain no other '/' "
                         "and be shorter than %d bytes",
                         name ? name : "(null)", MSUP_NAME_MAX);
    return true;
}

/* Offsets of the tables for a geometry (the single place that lays them out). */
static void compute_offsets(uint32_t max_clusters, uint64_t *cluster_off, uint64_t *retired_off,
                            uint64_t *slot_off)
{
    *cluster_off = sizeof(msup_header_t);
    *retired_off = *cluster_off + (uint64_t)max_clusters * sizeof(msup_cluster_row_t);
    *slot_off = *retired_off + sizeof(msup_retired_hdr_t) + 2ull * max_clusters * sizeof(msup_stats_t);
}

bool msup_layout_validate(const void *base, size_t size, mongosup_error_t *error)
{
    const msup_header_t *h = base;
    if (size < sizeof(msup_header_t))
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is truncated: %zu bytes, the header alone needs %zu",
                         size, sizeof(msup_header_t));
    uint64_t magic = atomic_load_explicit(&((msup_header_t *)h)->magic, memory_order_acquire);
    if (magic == 0)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is not initialised (its creator has not finished)");
    if (magic != MSUP_MAGIC)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is foreign: bad magic 0x%016llx",
                         (unsigned long long)magic);
    if (h->layout_version != MSUP_LAYOUT_VERSION)
        return msup_fail(error, MONGOSUP_E_SEGMENT,
                         "segment has layout version %u, this build reads version %u: another mongosup release "
                         "made it; stop its processes and remove the segment",
                         h->layout_version, MSUP_LAYOUT_VERSION);
    if (h->header_size != sizeof(msup_header_t) || h->stats_size != sizeof(msup_stats_t) ||
        h->cluster_row_size != sizeof(msup_cluster_row_t) || h->hist_buckets != MSUP_HIST_BUCKETS)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is corrupted: record sizes do not match this build");
    if (h->max_clusters == 0 || h->max_clusters > MSUP_MAX_CLUSTERS || h->max_workers == 0 ||
        h->max_workers > MSUP_MAX_WORKERS)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is corrupted: %u workers x %u clusters is out of range",
                         h->max_workers, h->max_clusters);
    if (h->slot_size != sizeof(msup_slot_t) + (uint64_t)h->max_clusters * sizeof(msup_stats_t))
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is corrupted: bad slot size %u", h->slot_size);
    uint64_t c_off, r_off, s_off;
    compute_offsets(h->max_clusters, &c_off, &r_off, &s_off);
    if (h->cluster_off != c_off || h->retired_off != r_off || h->slot_off != s_off)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is corrupted: table offsets do not match its geometry");
    uint64_t want = msup_layout_size(h->max_workers, h->max_clusters);
    if (h->total_size != want)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is corrupted: size field %llu, geometry needs %llu",
                         (unsigned long long)h->total_size, (unsigned long long)want);
    if (size < want)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is truncated: %zu bytes of %llu", size,
                         (unsigned long long)want);
    if (memchr(h->segment_name, '\0', sizeof h->segment_name) == NULL ||
        memchr(h->environment, '\0', sizeof h->environment) == NULL)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is corrupted: unterminated name");
    uint32_t count = atomic_load_explicit(&((msup_header_t *)h)->cluster_count, memory_order_acquire);
    if (count > h->max_clusters)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is corrupted: %u clusters in a table of %u", count,
                         h->max_clusters);
    return true;
}

static void bind_tables(msup_segment_t *seg)
{
    msup_header_t *h = seg->base;
    seg->hdr = h;
    seg->rows = (msup_cluster_row_t *)((uint8_t *)seg->base + h->cluster_off);
    seg->retired = (msup_retired_hdr_t *)((uint8_t *)seg->base + h->retired_off);
    seg->slots = (uint8_t *)seg->base + h->slot_off;
    seg->max_workers = h->max_workers;
    seg->max_clusters = h->max_clusters;
    seg->slot_size = h->slot_size;
}

static bool geometry_ok(const char *name, const msup_header_t *h, const msup_geometry_t *geo,
                        mongosup_error_t *error)
{
    if (geo == NULL)
        return true;
    if (h->max_workers != geo->max_workers || h->max_clusters != geo->max_clusters)
        return msup_fail(error, MONGOSUP_E_SEGMENT,
                         "%s: segment was created for %u workers x %u clusters, the configuration asks for %u x %u: "
                         "stop every process that uses it and remove it (or restart the supervisor after a drain)",
                         name, h->max_workers, h->max_clusters, geo->max_workers, geo->max_clusters);
    return true;
}

/* Maps an open descriptor after checking its size, owner and layout. */
static bool map_fd(int fd, const char *name, bool writable, bool check_owner, msup_segment_t *seg,
                   mongosup_error_t *error)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return msup_fail_errno(error, MONGOSUP_E_SEGMENT, "segment %s: fstat", name);
    if (check_owner && st.st_uid != geteuid())
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment %s belongs to uid %u, not to us (uid %u): refused",
                         name, (unsigned)st.st_uid, (unsigned)geteuid());
    if ((size_t)st.st_size < sizeof(msup_header_t))
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment %s is truncated: %lld bytes", name,
                         (long long)st.st_size);
    void *base = mmap(NULL, (size_t)st.st_size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return msup_fail_errno(error, MONGOSUP_E_SEGMENT, "segment %s: mmap", name);
    mongosup_error_t why;
    if (!msup_layout_validate(base, (size_t)st.st_size, &why)) {
        munmap(base, (size_t)st.st_size);
        return msup_fail(error, MONGOSUP_E_SEGMENT, "%s: %s", name, why.message);
    }
    memset(seg, 0, sizeof *seg);
    seg->base = base;
    seg->size = (size_t)st.st_size;
    seg->writable = writable;
    seg->ino = st.st_ino;
    seg->dev = st.st_dev;
    snprintf(seg->name, sizeof seg->name, "%s", name);
    bind_tables(seg);
    if (check_owner && seg->hdr->owner_uid != (uint32_t)geteuid()) {
        msup_segment_close(seg);
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment %s was created by uid %u, not by us: refused", name,
                         seg->hdr->owner_uid);
    }
    return true;
}

bool msup_segment_create(const char *name, const msup_geometry_t *geo, msup_segment_t *seg,
                         mongosup_error_t *error)
{
    if (!valid_name(name, error))
        return false;
    if (geo->max_workers == 0 || geo->max_workers > MSUP_MAX_WORKERS || geo->max_clusters == 0 ||
        geo->max_clusters > MSUP_MAX_CLUSTERS)
        return msup_fail(error, MONGOSUP_E_INVALID_ARG, "segment geometry %u workers x %u clusters is out of range",
                         geo->max_workers, geo->max_clusters);
    mode_t mode = geo->mode ? geo->mode : 0600;
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot create segment %s", name);
    /* shm_open honours the umask: set the configured mode exactly. */
    uint64_t size = msup_layout_size(geo->max_workers, geo->max_clusters);
    if (fchmod(fd, mode) != 0 || (geo->group != (gid_t)-1 && fchown(fd, (uid_t)-1, geo->group) != 0) ||
        ftruncate(fd, (off_t)size) != 0) {
        msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot set up segment %s", name);
        close(fd);
        shm_unlink(name);
        return false;
    }
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    struct stat st;
    int fst = fstat(fd, &st);
    close(fd);
    if (base == MAP_FAILED || fst != 0) {
        msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot map segment %s", name);
        if (base != MAP_FAILED)
            munmap(base, size);
        shm_unlink(name);
        return false;
    }
    /* ftruncate gave us zeroes: FREE slots, UNUSED rows, STARTING phase. */
    msup_header_t *h = base;
    h->layout_version = MSUP_LAYOUT_VERSION;
    h->header_size = sizeof(msup_header_t);
    h->total_size = size;
    h->owner_uid = (uint32_t)geteuid();
    h->max_workers = geo->max_workers;
    h->max_clusters = geo->max_clusters;
    h->cluster_row_size = sizeof(msup_cluster_row_t);
    h->stats_size = sizeof(msup_stats_t);
    h->slot_size = (uint32_t)(sizeof(msup_slot_t) + (uint64_t)geo->max_clusters * sizeof(msup_stats_t));
    h->hist_buckets = MSUP_HIST_BUCKETS;
    compute_offsets(geo->max_clusters, &h->cluster_off, &h->retired_off, &h->slot_off);
    h->created_ns = msup_now_ns();
    h->creator_pid = (uint32_t)getpid();
    snprintf(h->segment_name, sizeof h->segment_name, "%s", name);
    snprintf(h->environment, sizeof h->environment, "%s", geo->environment ? geo->environment : "");
    atomic_store_explicit(&h->heartbeat_timeout_ms, 3000, memory_order_relaxed);
    atomic_store_explicit(&h->magic, MSUP_MAGIC, memory_order_release);

    memset(seg, 0, sizeof *seg);
    seg->base = base;
    seg->size = size;
    seg->writable = true;
    seg->ino = st.st_ino;
    seg->dev = st.st_dev;
    snprintf(seg->name, sizeof seg->name, "%s", name);
    bind_tables(seg);
    return true;
}

static bool open_existing(const char *name, bool writable, bool check_owner, msup_segment_t *seg,
                          mongosup_error_t *error)
{
    if (!valid_name(name, error))
        return false;
    int fd = shm_open(name, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
    if (fd < 0) {
        if (errno == ENOENT)
            return msup_fail(error, MONGOSUP_E_SEGMENT, "segment %s does not exist (is mongosupd running?)", name);
        return msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot open segment %s", name);
    }
    bool ok = map_fd(fd, name, writable, check_owner, seg, error);
    close(fd);
    return ok;
}

bool msup_segment_adopt(const char *name, const msup_geometry_t *geo, msup_segment_t *seg,
                        mongosup_error_t *error)
{
    if (!open_existing(name, true, true, seg, error))
        return false;
    if (!geometry_ok(name, seg->hdr, geo, error)) {
        msup_segment_close(seg);
        return false;
    }
    return true;
}

bool msup_segment_open_readonly(const char *name, msup_segment_t *seg, mongosup_error_t *error)
{
    return open_existing(name, false, false, seg, error);
}

bool msup_segment_open_or_create(const char *name, const msup_geometry_t *geo, msup_segment_t *seg,
                                 bool *created, mongosup_error_t *error)
{
    *created = false;
    for (int attempt = 0; attempt < 100; attempt++) {
        if (msup_segment_create(name, geo, seg, error)) {
            *created = true;
            return true;
        }
        if (error && error->driver_code != EEXIST)
            return false;
        if (msup_segment_adopt(name, geo, seg, error))
            return true;
        /* Another process is between O_EXCL and publishing the magic, or
         * unlinked it meanwhile: wait a little and try again. */
        if (error && strstr(error->message, "not initialised") == NULL &&
            strstr(error->message, "does not exist") == NULL && strstr(error->message, "truncated") == NULL)
            return false;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

void msup_segment_close(msup_segment_t *seg)
{
    if (seg->base != NULL)
        munmap(seg->base, seg->size);
    memset(seg, 0, sizeof *seg);
}

bool msup_segment_unlink(const char *name, mongosup_error_t *error)
{
    if (shm_unlink(name) != 0 && errno != ENOENT)
        return msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot remove segment %s", name);
    return true;
}

bool msup_segment_replaced(const msup_segment_t *seg)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm%s", seg->name);
    if (stat(path, &st) != 0)
        return true;
    return (uint64_t)st.st_ino != seg->ino || (uint64_t)st.st_dev != seg->dev;
}

int msup_segment_find_cluster(const msup_segment_t *seg, const char *name)
{
    for (uint32_t i = 0; i < seg->max_clusters; i++) {
        const msup_cluster_row_t *row = &seg->rows[i];
        if (atomic_load_explicit(&row->row_state, memory_order_acquire) == MSUP_ROW_ACTIVE &&
            strncmp(row->name, name, MSUP_NAME_MAX) == 0)
            return (int)i;
    }
    return -1;
}

bool msup_supervisor_alive(const msup_segment_t *seg)
{
    const msup_header_t *h = seg->hdr;
    if (atomic_load_explicit(&h->supervisor_pid, memory_order_acquire) == 0)
        return false;
    uint64_t hb = atomic_load_explicit(&h->heartbeat_mono_ns, memory_order_acquire);
    uint64_t timeout_ms = atomic_load_explicit(&h->heartbeat_timeout_ms, memory_order_relaxed);
    uint64_t now = msup_mono_ns();
    return hb != 0 && now >= hb && now - hb <= timeout_ms * 1000000ull;
}
