/* segment.c: create, adopt, open, lock and validate the control and stats segments. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "segment.h"
#include "shmname.h"

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

bool msup_proc_maps_segment(pid_t pid, uint64_t start_time, const msup_segment_t *seg)
{
    if (pid <= 0 || start_time == 0 || msup_proc_start_time(pid) != start_time)
        return false;
    char path[64], want[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    /* A maps line: "start-end perms offset MAJ:MIN inode path". */
    snprintf(want, sizeof want, " %02x:%02x %llu ", major((dev_t)seg->dev), minor((dev_t)seg->dev),
             (unsigned long long)seg->ino);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return false;
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, want) != NULL;
    fclose(f);
    /* The start time again: the pid may have been reused while we read. */
    return found && msup_proc_start_time(pid) == start_time;
}

/* ---- owners and modes ---- */

bool msup_owner_accepted(const char *name, uid_t st_uid, mode_t st_mode, uid_t owner, bool control,
                         mongosup_error_t *error)
{
    const char *what = control ? "control segment" : "segment";
    unsigned mode = (unsigned)(st_mode & 07777);
    if (st_uid != geteuid() && st_uid != 0 && (owner == (uid_t)-1 || st_uid != owner)) {
        char owner_text[48] = "";
        if (owner != (uid_t)-1)
            snprintf(owner_text, sizeof owner_text, " (uid %u)", (unsigned)owner);
        return msup_fail(error, MONGOSUP_E_SEGMENT,
                         "%s %s is owned by uid %u (mode %04o), not by uid %u, root or the configured owner%s: refused",
                         what, name, (unsigned)st_uid, mode, (unsigned)geteuid(), owner_text);
    }
    if (st_mode & S_IWOTH)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "%s %s is writable by others (owner uid %u, mode %04o): refused",
                         what, name, (unsigned)st_uid, mode);
    if (control && (st_mode & S_IWGRP))
        return msup_fail(error, MONGOSUP_E_SEGMENT, "%s %s is group-writable (owner uid %u, mode %04o): refused", what,
                         name, (unsigned)st_uid, mode);
    return true;
}

/* ---- validation ---- */

static void stats_offsets(uint32_t max_clusters, uint64_t *reg_off, uint64_t *retired_off, uint64_t *slot_off)
{
    *reg_off = sizeof(msup_stats_header_t);
    *retired_off = *reg_off + (uint64_t)max_clusters * sizeof(msup_reg_row_t);
    *slot_off = *retired_off + sizeof(msup_retired_hdr_t) + 2ull * max_clusters * sizeof(msup_stats_t);
}

static bool names_terminated(const char *a, size_t na, const char *b, size_t nb)
{
    return memchr(a, '\0', na) != NULL && memchr(b, '\0', nb) != NULL;
}

/* What both segments' headers check alike: the size field against the
 * geometry, the mapping against the size, terminated names, the cluster
 * count within the table.  what: "segment" or "control segment". */
static bool validate_extent(const char *what, uint64_t total_size, uint64_t want, size_t size, const char *name,
                            size_t name_size, const char *environment, size_t environment_size, uint32_t count,
                            uint32_t max_clusters, mongosup_error_t *error)
{
    if (total_size != want)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "%s is corrupted: size field %llu, geometry needs %llu", what,
                         (unsigned long long)total_size, (unsigned long long)want);
    if (size < want)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "%s is truncated: %zu bytes of %llu", what, size,
                         (unsigned long long)want);
    if (!names_terminated(name, name_size, environment, environment_size))
        return msup_fail(error, MONGOSUP_E_SEGMENT, "%s is corrupted: unterminated name", what);
    if (count > max_clusters)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "%s is corrupted: %u clusters in a table of %u", what, count,
                         max_clusters);
    return true;
}

static bool validate_control(const msup_header_t *h, size_t size, mongosup_error_t *error)
{
    if (h->header_size != sizeof(msup_header_t) || h->cluster_row_size != sizeof(msup_cluster_row_t))
        return msup_fail(error, MONGOSUP_E_SEGMENT, "control segment is corrupted: record sizes do not match this build");
    if (h->max_clusters == 0 || h->max_clusters > MSUP_MAX_CLUSTERS)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "control segment is corrupted: %u clusters is out of range",
                         h->max_clusters);
    if (h->cluster_off != sizeof(msup_header_t))
        return msup_fail(error, MONGOSUP_E_SEGMENT, "control segment is corrupted: table offset does not match");
    return validate_extent("control segment", h->total_size, msup_ctlseg_size(h->max_clusters), size, h->segment_name,
                           sizeof h->segment_name, h->environment, sizeof h->environment,
                           atomic_load_explicit(&((msup_header_t *)h)->cluster_count, memory_order_acquire),
                           h->max_clusters, error);
}

static bool validate_stats(const msup_stats_header_t *h, size_t size, mongosup_error_t *error)
{
    if (h->header_size != sizeof(msup_stats_header_t) || h->stats_size != sizeof(msup_stats_t) ||
        h->reg_row_size != sizeof(msup_reg_row_t) || h->hist_buckets != MSUP_HIST_BUCKETS)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is corrupted: record sizes do not match this build");
    if (h->max_clusters == 0 || h->max_clusters > MSUP_MAX_CLUSTERS || h->max_workers == 0 ||
        h->max_workers > MSUP_MAX_WORKERS)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is corrupted: %u workers x %u clusters is out of range",
                         h->max_workers, h->max_clusters);
    if (h->slot_size != sizeof(msup_slot_t) + (uint64_t)h->max_clusters * sizeof(msup_stats_t))
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is corrupted: bad slot size %u", h->slot_size);
    uint64_t g_off, r_off, s_off;
    stats_offsets(h->max_clusters, &g_off, &r_off, &s_off);
    if (h->reg_off != g_off || h->retired_off != r_off || h->slot_off != s_off)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is corrupted: table offsets do not match its geometry");
    return validate_extent("segment", h->total_size, msup_layout_size(h->max_workers, h->max_clusters), size,
                           h->segment_name, sizeof h->segment_name, h->environment, sizeof h->environment,
                           atomic_load_explicit(&((msup_stats_header_t *)h)->cluster_count, memory_order_acquire),
                           h->max_clusters, error);
}

static bool version_refused(uint32_t version, mongosup_error_t *error)
{
    return msup_fail(error, MONGOSUP_E_SEGMENT,
                     "segment has layout version %u, this build reads version %u: another mongosup release made it; "
                     "stop its processes and remove the segment",
                     version, MSUP_LAYOUT_VERSION);
}

bool msup_layout_validate(const void *base, size_t size, mongosup_error_t *error)
{
    /* Both headers start with magic, version, header size: read those first. */
    if (size < sizeof(msup_header_t) || size < sizeof(msup_stats_header_t))
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is truncated: %zu bytes, the header alone needs %zu",
                         size, sizeof(msup_header_t));
    const msup_header_t *h = base;
    uint64_t magic = atomic_load_explicit(&((msup_header_t *)h)->magic, memory_order_acquire);
    if (magic == 0)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is not initialised (its creator has not finished)");
    /* Layouts 1 and 2 (one segment, MSUP_LEGACY_MAGIC) keep the version at
     * the same offset: they get the version message, not "foreign". */
    if (magic != MSUP_CTL_MAGIC && magic != MSUP_STATS_MAGIC && magic != MSUP_LEGACY_MAGIC)
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment is foreign: bad magic 0x%016llx",
                         (unsigned long long)magic);
    if (magic == MSUP_LEGACY_MAGIC || h->layout_version != MSUP_LAYOUT_VERSION)
        return version_refused(h->layout_version, error);
    return magic == MSUP_CTL_MAGIC ? validate_control(h, size, error) : validate_stats(base, size, error);
}

/* The magic an image carries (0 when too short to tell). */
static uint64_t image_magic(const void *base, size_t size)
{
    return size >= sizeof(uint64_t) ? atomic_load_explicit(&((msup_header_t *)base)->magic, memory_order_acquire) : 0;
}

/* ---- mapping ---- */

static void bind_stats(msup_segment_t *seg)
{
    msup_stats_header_t *h = seg->base;
    seg->shdr = h;
    seg->reg = (msup_reg_row_t *)((uint8_t *)seg->base + h->reg_off);
    seg->retired = (msup_retired_hdr_t *)((uint8_t *)seg->base + h->retired_off);
    seg->slots = (uint8_t *)seg->base + h->slot_off;
    seg->max_workers = h->max_workers;
    seg->max_clusters = h->max_clusters;
    seg->slot_size = h->slot_size;
}

static bool geometry_ok(const char *name, uint32_t workers, uint32_t clusters, const msup_geometry_t *geo,
                        mongosup_error_t *error)
{
    if (geo == NULL)
        return true;
    if ((workers != 0 && workers != geo->max_workers) || clusters != geo->max_clusters)
        return msup_fail(error, MONGOSUP_E_SEGMENT,
                         "%s: segment was created for %u workers x %u clusters, the configuration asks for %u x %u: "
                         "stop every process that uses it and remove it (or restart the supervisor after a drain)",
                         name, workers ? workers : geo->max_workers, clusters, geo->max_workers, geo->max_clusters);
    return true;
}

/* Both names of a configured name, checked by the one validator. */
static bool names_of(const char *name, msup_segment_t *seg, mongosup_error_t *error)
{
    if (!msup_shm_name_check(name, error))
        return false;
    snprintf(seg->name, sizeof seg->name, "%s", name);
    msup_shm_stats_name(name, seg->stats_name, sizeof seg->stats_name);
    return true;
}

/* An open object, checked and mapped: owner, mode, size, layout and kind. */
typedef struct mapped {
    void *base;
    size_t size;
    uint64_t ino, dev;
} mapped_t;

static bool map_checked(int fd, const char *name, bool writable, uid_t owner, bool control, mapped_t *m,
                        mongosup_error_t *error)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return msup_fail_errno(error, MONGOSUP_E_SEGMENT, "segment %s: fstat", name);
    if (!msup_owner_accepted(name, st.st_uid, st.st_mode, owner, control, error))
        return false;
    if (!S_ISREG(st.st_mode))
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment %s is not a shared-memory object: refused", name);
    if ((size_t)st.st_size < sizeof(msup_header_t))
        return msup_fail(error, MONGOSUP_E_SEGMENT, "segment %s is truncated: %lld bytes", name,
                         (long long)st.st_size);
    void *base = mmap(NULL, (size_t)st.st_size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return msup_fail_errno(error, MONGOSUP_E_SEGMENT, "segment %s: mmap", name);
    mongosup_error_t why;
    bool ok = msup_layout_validate(base, (size_t)st.st_size, &why);
    if (ok && image_magic(base, (size_t)st.st_size) != (control ? MSUP_CTL_MAGIC : MSUP_STATS_MAGIC)) {
        ok = false;
        snprintf(why.message, sizeof why.message, "segment is foreign: it is a %s segment, a %s one was expected",
                 control ? "stats" : "control", control ? "control" : "stats");
    }
    if (!ok) {
        munmap(base, (size_t)st.st_size);
        return msup_fail(error, MONGOSUP_E_SEGMENT, "%s: %s", name, why.message);
    }
    m->base = base;
    m->size = (size_t)st.st_size;
    m->ino = (uint64_t)st.st_ino;
    m->dev = (uint64_t)st.st_dev;
    return true;
}

/* Opens an existing object; ENOENT is reported as "does not exist". */
static int open_object(const char *name, bool writable, mongosup_error_t *error)
{
    int fd = shm_open(name, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW, 0);
    if (fd < 0) {
        if (errno == ENOENT)
            msup_fail(error, MONGOSUP_E_SEGMENT, "segment %s does not exist (is mongosupd running?)", name);
        else
            msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot open segment %s", name);
    }
    return fd;
}

bool msup_segment_create(const char *name, const msup_geometry_t *geo, msup_segment_t *seg,
                         mongosup_error_t *error)
{
    memset(seg, 0, sizeof *seg);
    if (!names_of(name, seg, error))
        return false;
    if (geo->max_workers == 0 || geo->max_workers > MSUP_MAX_WORKERS || geo->max_clusters == 0 ||
        geo->max_clusters > MSUP_MAX_CLUSTERS)
        return msup_fail(error, MONGOSUP_E_INVALID_ARG, "segment geometry %u workers x %u clusters is out of range",
                         geo->max_workers, geo->max_clusters);
    mode_t mode = geo->mode ? geo->mode : 0600;
    if (mode & S_IWOTH)
        return msup_fail(error, MONGOSUP_E_INVALID_ARG, "segment %s: mode %04o is writable by others: refused",
                         seg->stats_name, (unsigned)mode);
    const char *sname = seg->stats_name;
    int fd = shm_open(sname, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot create segment %s", sname);
    /* shm_open honours the umask: set the configured mode exactly. */
    uint64_t size = msup_layout_size(geo->max_workers, geo->max_clusters);
    if (fchmod(fd, mode) != 0 || (geo->group != (gid_t)-1 && fchown(fd, (uid_t)-1, geo->group) != 0) ||
        ftruncate(fd, (off_t)size) != 0) {
        msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot set up segment %s", sname);
        close(fd);
        shm_unlink(sname);
        return false;
    }
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    struct stat st;
    int fst = fstat(fd, &st);
    close(fd);
    if (base == MAP_FAILED || fst != 0) {
        msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot map segment %s", sname);
        if (base != MAP_FAILED)
            munmap(base, size);
        shm_unlink(sname);
        return false;
    }
    /* ftruncate gave us zeroes: FREE slots, UNUSED rows, no fold lock. */
    msup_stats_header_t *h = base;
    h->layout_version = MSUP_LAYOUT_VERSION;
    h->header_size = sizeof(msup_stats_header_t);
    h->total_size = size;
    h->owner_uid = (uint32_t)geteuid();
    h->max_workers = geo->max_workers;
    h->max_clusters = geo->max_clusters;
    h->reg_row_size = sizeof(msup_reg_row_t);
    h->stats_size = sizeof(msup_stats_t);
    h->slot_size = (uint32_t)(sizeof(msup_slot_t) + (uint64_t)geo->max_clusters * sizeof(msup_stats_t));
    h->hist_buckets = MSUP_HIST_BUCKETS;
    stats_offsets(geo->max_clusters, &h->reg_off, &h->retired_off, &h->slot_off);
    h->created_ns = msup_now_ns();
    h->creator_pid = (uint32_t)getpid();
    snprintf(h->segment_name, sizeof h->segment_name, "%s", name);
    snprintf(h->environment, sizeof h->environment, "%s", geo->environment ? geo->environment : "");
    atomic_store_explicit(&h->magic, MSUP_STATS_MAGIC, memory_order_release);

    seg->base = base;
    seg->size = size;
    seg->writable = true;
    seg->ino = st.st_ino;
    seg->dev = st.st_dev;
    seg->owner = geo->owner;
    bind_stats(seg);
    return true;
}

static bool open_stats(const char *name, bool writable, uid_t owner, msup_segment_t *seg, mongosup_error_t *error)
{
    memset(seg, 0, sizeof *seg);
    if (!names_of(name, seg, error))
        return false;
    int fd = open_object(seg->stats_name, writable, error);
    if (fd < 0)
        return false;
    mapped_t m;
    bool ok = map_checked(fd, seg->stats_name, writable, owner, false, &m, error);
    close(fd);
    if (!ok)
        return false;
    seg->base = m.base;
    seg->size = m.size;
    seg->ino = m.ino;
    seg->dev = m.dev;
    seg->writable = writable;
    seg->owner = owner;
    bind_stats(seg);
    return true;
}

bool msup_segment_adopt(const char *name, const msup_geometry_t *geo, msup_segment_t *seg,
                        mongosup_error_t *error)
{
    if (!open_stats(name, true, geo ? geo->owner : (uid_t)-1, seg, error))
        return false;
    if (!geometry_ok(seg->stats_name, seg->max_workers, seg->max_clusters, geo, error)) {
        msup_segment_close(seg);
        return false;
    }
    return true;
}

msup_geometry_t msup_geometry_of(const mongosup_config_t *cfg)
{
    return (msup_geometry_t){.max_workers = cfg->max_workers,
                             .max_clusters = cfg->max_clusters,
                             .mode = cfg->segment_mode,
                             .group = cfg->segment_group,
                             .owner = cfg->segment_owner,
                             .environment = cfg->environment};
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

/* ---- the control segment ---- */

static void bind_control(msup_ctlseg_t *c, const mapped_t *m, bool writable, int fd)
{
    memset(c, 0, sizeof *c);
    c->base = m->base;
    c->size = m->size;
    c->ino = m->ino;
    c->dev = m->dev;
    c->writable = writable;
    c->fd = fd;
    c->hdr = m->base;
    c->rows = (msup_cluster_row_t *)((uint8_t *)m->base + c->hdr->cluster_off);
    c->max_clusters = c->hdr->max_clusters;
}

/* Opens and checks the control segment read-only; *absent when there is none. */
static msup_ctlseg_t *open_control(const msup_segment_t *seg, bool keep_fd, bool *absent, mongosup_error_t *error)
{
    *absent = false;
    int fd = shm_open(seg->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
    if (fd < 0) {
        *absent = errno == ENOENT;
        msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot open control segment %s", seg->name);
        return NULL;
    }
    mapped_t m;
    msup_ctlseg_t *c = NULL;
    if (map_checked(fd, seg->name, false, seg->owner, true, &m, error)) {
        const msup_header_t *h = m.base;
        if (h->max_clusters != seg->max_clusters)
            msup_fail(error, MONGOSUP_E_SEGMENT,
                      "control segment %s has %u clusters, its stats segment %u: not trusted", seg->name,
                      h->max_clusters, seg->max_clusters);
        else if (strncmp(h->segment_name, seg->name, sizeof h->segment_name) != 0)
            msup_fail(error, MONGOSUP_E_SEGMENT, "control segment %s names itself %.64s: not trusted", seg->name,
                      h->segment_name);
        else if ((c = calloc(1, sizeof *c)) == NULL)
            msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
        if (c == NULL)
            munmap(m.base, m.size);
        else
            bind_control(c, &m, false, keep_fd ? fd : -1);
    }
    if (c == NULL || !keep_fd)
        close(fd);
    return c;
}

/* Makes c the current control of seg; the one it replaces stays mapped. */
static void install_control(msup_segment_t *seg, msup_ctlseg_t *c)
{
    c->older = msup_segment_control(seg);
    atomic_store_explicit(&seg->ctl, c, memory_order_release);
}

bool msup_segment_bind_control(msup_segment_t *seg, mongosup_error_t *error)
{
    bool absent;
    msup_ctlseg_t *c = open_control(seg, false, &absent, error);
    if (c == NULL)
        return false;
    install_control(seg, c);
    return true;
}

/* True (with the version message) when fd is a segment of layout 1 or 2:
 * one object at the configured name and no stats object beside it, so a
 * reader would otherwise only say that the stats segment does not exist. */
static bool legacy_refused(int fd, const struct stat *st, const char *name, mongosup_error_t *error)
{
    size_t len = sizeof(msup_header_t);
    if ((uint64_t)st->st_size < len)
        return false;
    void *base = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return false;
    const msup_header_t *h = base;
    bool legacy = image_magic(base, len) == MSUP_LEGACY_MAGIC;
    mongosup_error_t why;
    if (legacy) {
        version_refused(h->layout_version, &why);
        msup_fail(error, MONGOSUP_E_SEGMENT, "%s: %s", name, why.message);
    }
    munmap(base, len);
    return legacy;
}

bool msup_segment_open_readonly(const char *name, uid_t owner, msup_segment_t *seg, mongosup_error_t *error)
{
    /* The control segment first: a squatted name is refused with its owner
     * even when the stats name does not exist. */
    msup_segment_t probe;
    memset(&probe, 0, sizeof probe);
    if (!names_of(name, &probe, error))
        return false;
    int fd = shm_open(probe.name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
    if (fd >= 0) {
        struct stat st;
        bool ok = fstat(fd, &st) == 0 && msup_owner_accepted(probe.name, st.st_uid, st.st_mode, owner, true, error) &&
                  !legacy_refused(fd, &st, probe.name, error);
        close(fd);
        if (!ok)
            return false;
    }
    if (!open_stats(name, false, owner, seg, error))
        return false;
    bool absent;
    mongosup_error_t why;
    msup_ctlseg_t *c = open_control(seg, true, &absent, &why);
    if (c == NULL && !absent) {
        msup_segment_close(seg);
        return msup_fail(error, MONGOSUP_E_SEGMENT, "%s", why.message);
    }
    if (c != NULL)
        install_control(seg, c);
    return true;
}

/* The pid of the supervisor that holds the lock on fd, as its header says
 * once it has written it (a fresh holder: up to 500 ms); 0 if unknown. */
static pid_t lock_holder(int fd)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        struct stat st;
        pid_t pid = 0;
        if (fstat(fd, &st) == 0 && (size_t)st.st_size >= sizeof(msup_header_t)) {
            msup_header_t *h = mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, fd, 0);
            if (h != MAP_FAILED) {
                pid = atomic_load_explicit(&h->supervisor_pid, memory_order_acquire);
                uint64_t start = atomic_load_explicit(&h->supervisor_start_time, memory_order_acquire);
                if (pid > 0 && (start == 0 || msup_proc_start_time(pid) != start))
                    pid = 0; /* a predecessor's pid: the holder has not written its own yet */
                munmap(h, sizeof *h);
            }
        }
        if (pid > 0)
            return pid;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void init_control(msup_header_t *h, const char *name, const msup_geometry_t *geo)
{
    h->layout_version = MSUP_LAYOUT_VERSION;
    h->header_size = sizeof(msup_header_t);
    h->total_size = msup_ctlseg_size(geo->max_clusters);
    h->owner_uid = (uint32_t)geteuid();
    h->max_clusters = geo->max_clusters;
    h->cluster_row_size = sizeof(msup_cluster_row_t);
    h->creator_pid = (uint32_t)getpid();
    h->cluster_off = sizeof(msup_header_t);
    h->created_ns = msup_now_ns();
    snprintf(h->segment_name, sizeof h->segment_name, "%s", name);
    snprintf(h->environment, sizeof h->environment, "%s", geo->environment ? geo->environment : "");
    atomic_store_explicit(&h->heartbeat_timeout_ms, 3000, memory_order_relaxed);
    atomic_store_explicit(&h->magic, MSUP_CTL_MAGIC, memory_order_release);
}

msup_ctlseg_t *msup_ctlseg_claim(const char *name, const msup_geometry_t *geo, bool *created,
                                   mongosup_error_t *error)
{
    *created = false;
    if (!msup_shm_name_check(name, error))
        return NULL;
    if (geo->max_clusters == 0 || geo->max_clusters > MSUP_MAX_CLUSTERS) {
        msup_fail(error, MONGOSUP_E_INVALID_ARG, "segment geometry: %u clusters is out of range", geo->max_clusters);
        return NULL;
    }
    /* Only the supervisor writes it: never group- or other-writable. */
    mode_t mode = (geo->mode ? geo->mode : 0600) & ~(mode_t)022;
    int fd = shm_open(name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        struct stat st;
        char path[128];
        snprintf(path, sizeof path, "/dev/shm%s", name);
        if (errno == EACCES && stat(path, &st) == 0 &&
            !msup_owner_accepted(name, st.st_uid, st.st_mode, geo->owner, true, error))
            return NULL;
        msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot open control segment %s", name);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        msup_fail_errno(error, MONGOSUP_E_SEGMENT, "control segment %s: fstat", name);
        return NULL;
    }
    /* Someone else's object (a squatter), or one others may write: not a
     * byte written, not locked. */
    bool ok = true;
    if (st.st_uid != geteuid())
        ok = msup_fail(error, MONGOSUP_E_SEGMENT, "control segment %s is owned by uid %u (mode %04o), not by us (uid %u): refused",
                       name, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), (unsigned)geteuid());
    else if (!S_ISREG(st.st_mode))
        ok = msup_fail(error, MONGOSUP_E_SEGMENT, "control segment %s is not a shared-memory object: refused", name);
    else
        ok = msup_owner_accepted(name, st.st_uid, st.st_mode, geo->owner, true, error);
    if (!ok) {
        close(fd);
        return NULL;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
        bool busy = errno == EAGAIN || errno == EACCES;
        if (busy) {
            pid_t holder = lock_holder(fd);
            if (holder > 0)
                msup_fail(error, MONGOSUP_E_SEGMENT, "another mongosupd (pid %d) holds %s", (int)holder, name);
            else
                msup_fail(error, MONGOSUP_E_SEGMENT, "another mongosupd (pid unknown yet) holds %s", name);
        } else {
            msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot lock control segment %s", name);
        }
        close(fd);
        return NULL;
    }
    /* Ours alone from here on.  Re-read: the size may have changed before we locked. */
    uint64_t want = msup_ctlseg_size(geo->max_clusters);
    bool fresh = fstat(fd, &st) != 0 || st.st_size == 0;
    if (!fresh && (size_t)st.st_size >= sizeof(msup_header_t)) {
        /* An object whose creator died before publishing it is ours to redo. */
        msup_header_t *peek = mmap(NULL, sizeof *peek, PROT_READ, MAP_SHARED, fd, 0);
        if (peek != MAP_FAILED) {
            fresh = atomic_load_explicit(&peek->magic, memory_order_acquire) == 0;
            munmap(peek, sizeof *peek);
        }
    }
    if (fresh && (fchmod(fd, mode) != 0 || ftruncate(fd, (off_t)want) != 0)) {
        msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot set up control segment %s", name);
        close(fd);
        return NULL;
    }
    /* The group reads it (workers of another uid, monitors); nobody but us writes. */
    if (geo->group != (gid_t)-1 && fchown(fd, (uid_t)-1, geo->group) != 0) {
        msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot set the group of control segment %s", name);
        close(fd);
        return NULL;
    }
    if (!fresh && fchmod(fd, mode) != 0) {
        msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot set the mode of control segment %s", name);
        close(fd);
        return NULL;
    }
    mapped_t m;
    if (fresh) {
        void *base = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED || fstat(fd, &st) != 0) {
            msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot map control segment %s", name);
            if (base != MAP_FAILED)
                munmap(base, want);
            close(fd);
            return NULL;
        }
        memset(base, 0, want); /* a dead creator may have left a half-written header */
        init_control(base, name, geo);
        m = (mapped_t){.base = base, .size = want, .ino = (uint64_t)st.st_ino, .dev = (uint64_t)st.st_dev};
    } else if (!map_checked(fd, name, true, geo->owner, true, &m, error)) {
        close(fd);
        return NULL;
    } else if (!geometry_ok(name, 0, ((msup_header_t *)m.base)->max_clusters, geo, error)) {
        munmap(m.base, m.size);
        close(fd);
        return NULL;
    }
    msup_ctlseg_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        munmap(m.base, m.size);
        close(fd);
        msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
        return NULL;
    }
    bind_control(c, &m, true, fd);
    /* Who holds it, first of all: a loser names us. */
    atomic_store_explicit(&c->hdr->supervisor_start_time, msup_proc_start_time(getpid()), memory_order_relaxed);
    atomic_store_explicit(&c->hdr->supervisor_pid, (int32_t)getpid(), memory_order_release);
    snprintf(c->hdr->environment, sizeof c->hdr->environment, "%s", geo->environment ? geo->environment : "");
    *created = fresh;
    return c;
}

void msup_ctlseg_close(msup_ctlseg_t *ctl)
{
    while (ctl != NULL) {
        msup_ctlseg_t *older = ctl->older;
        munmap(ctl->base, ctl->size);
        if (ctl->fd >= 0)
            close(ctl->fd); /* releases the supervisor's lock */
        free(ctl);
        ctl = older;
    }
}

void msup_segment_set_control(msup_segment_t *seg, msup_ctlseg_t *ctl)
{
    install_control(seg, ctl);
}

/* ---- closing, removal, replacement ---- */

void msup_segment_close(msup_segment_t *seg)
{
    msup_ctlseg_close(msup_segment_control(seg));
    if (seg->base != NULL)
        munmap(seg->base, seg->size);
    memset(seg, 0, sizeof *seg);
}

bool msup_segment_unlink(const char *name, mongosup_error_t *error)
{
    char stats[MSUP_NAME_MAX + sizeof MSUP_STATS_SUFFIX];
    snprintf(stats, sizeof stats, "%s%s", name, MSUP_STATS_SUFFIX);
    bool ok = true;
    if (shm_unlink(stats) != 0 && errno != ENOENT)
        ok = msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot remove segment %s", stats);
    if (shm_unlink(name) != 0 && errno != ENOENT)
        ok = msup_fail_errno(error, MONGOSUP_E_SEGMENT, "cannot remove segment %s", name);
    return ok;
}

static bool name_moved(const char *name, uint64_t ino, uint64_t dev)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm%s", name);
    if (stat(path, &st) != 0)
        return true;
    return (uint64_t)st.st_ino != ino || (uint64_t)st.st_dev != dev;
}

bool msup_segment_replaced(const msup_segment_t *seg)
{
    return name_moved(seg->stats_name, seg->ino, seg->dev);
}

bool msup_ctlseg_replaced(const msup_segment_t *seg)
{
    const msup_ctlseg_t *c = msup_segment_control(seg);
    return c != NULL && name_moved(seg->name, c->ino, c->dev);
}

/* ---- lookups ---- */

int msup_segment_find_cluster(const msup_segment_t *seg, const char *name)
{
    for (uint32_t i = 0; i < seg->max_clusters; i++) {
        const msup_reg_row_t *row = &seg->reg[i];
        if (atomic_load_explicit(&row->row_state, memory_order_acquire) == MSUP_ROW_ACTIVE &&
            strncmp(row->name, name, MSUP_NAME_MAX) == 0)
            return (int)i;
    }
    return -1;
}

msup_cluster_row_t *msup_segment_trusted_row(const msup_segment_t *seg, uint32_t i)
{
    msup_ctlseg_t *c = msup_segment_control(seg);
    if (c == NULL || i >= c->max_clusters || i >= seg->max_clusters)
        return NULL;
    msup_cluster_row_t *row = &c->rows[i];
    if (atomic_load_explicit(&row->row_state, memory_order_acquire) != MSUP_ROW_ACTIVE)
        return NULL;
    /* Copy the worker-writable name before comparing: it may change under us. */
    char reg_name[MSUP_NAME_MAX];
    memcpy(reg_name, seg->reg[i].name, sizeof reg_name);
    reg_name[sizeof reg_name - 1] = '\0';
    return strncmp(row->name, reg_name, MSUP_NAME_MAX) == 0 ? row : NULL;
}

uint32_t msup_segment_phase(const msup_segment_t *seg)
{
    msup_ctlseg_t *c = msup_segment_control(seg);
    return c != NULL ? atomic_load_explicit(&c->hdr->phase, memory_order_acquire) : MSUP_PHASE_RUNNING;
}

uint64_t msup_segment_config_generation(const msup_segment_t *seg)
{
    msup_ctlseg_t *c = msup_segment_control(seg);
    return c != NULL ? atomic_load_explicit(&c->hdr->config_generation, memory_order_acquire) : 0;
}

uint64_t msup_segment_config_applied_ns(const msup_segment_t *seg)
{
    msup_ctlseg_t *c = msup_segment_control(seg);
    return c != NULL ? atomic_load_explicit(&c->hdr->config_applied_mono_ns, memory_order_relaxed) : 0;
}

/* ---- liveness ---- */

static bool heartbeat_fresh(const msup_header_t *h_c)
{
    msup_header_t *h = (msup_header_t *)h_c;
    if (atomic_load_explicit(&h->supervisor_pid, memory_order_acquire) == 0)
        return false;
    uint64_t hb = atomic_load_explicit(&h->heartbeat_mono_ns, memory_order_acquire);
    uint64_t timeout_ms = atomic_load_explicit(&h->heartbeat_timeout_ms, memory_order_relaxed);
    uint64_t now = msup_mono_ns();
    return hb != 0 && now >= hb && now - hb <= timeout_ms * 1000000ull;
}

bool msup_supervisor_alive(const msup_segment_t *seg)
{
    msup_ctlseg_t *c = msup_segment_control(seg);
    return c != NULL && heartbeat_fresh(c->hdr);
}

msup_liveness_t msup_supervisor_liveness(const msup_segment_t *seg)
{
    msup_ctlseg_t *c = msup_segment_control(seg);
    if (c == NULL)
        return MSUP_SUPERVISOR_GONE;
    bool held;
    if (c->writable) {
        held = true; /* our own lock: F_OFD_GETLK would not report it to us */
    } else if (c->fd >= 0) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        held = fcntl(c->fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    } else {
        held = heartbeat_fresh(c->hdr);
    }
    if (!held)
        return MSUP_SUPERVISOR_GONE;
    return heartbeat_fresh(c->hdr) ? MSUP_SUPERVISOR_ALIVE : MSUP_SUPERVISOR_STALLED;
}

const char *msup_liveness_name(msup_liveness_t l)
{
    return l == MSUP_SUPERVISOR_ALIVE ? "alive" : l == MSUP_SUPERVISOR_STALLED ? "stalled" : "gone";
}
