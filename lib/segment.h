/* segment.h: create, adopt, open, lock and validate the control and stats segments. */
#ifndef MONGOSUP_SEGMENT_H
#define MONGOSUP_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layout.h"
#include "mongosup.h"

/* One mapping of the control segment.  Replaced mappings stay mapped (a
 * worker's threads may hold pointers into them) until the segment closes. */
typedef struct msup_ctlseg {
    void *base;
    size_t size;
    bool writable;
    int fd;                     /* -1, or kept open: the supervisor's lock, a reader's liveness test */
    uint64_t ino, dev;
    msup_header_t *hdr;
    msup_cluster_row_t *rows;   /* max_clusters */
    uint32_t max_clusters;
    struct msup_ctlseg *older; /* mappings this one replaced */
} msup_ctlseg_t;

/*
 * The two segments of one configured name, as one process maps them: the
 * stats segment (always, read-write for workers and the supervisor) and the
 * control segment (when there is a valid one of an accepted owner; NULL
 * otherwise, and for a worker that started before any supervisor).
 */
typedef struct msup_segment {
    void *base;                 /* the stats segment */
    size_t size;
    bool writable;
    char name[MSUP_NAME_MAX];       /* the configured (control) name */
    char stats_name[MSUP_NAME_MAX]; /* name + MSUP_STATS_SUFFIX */
    msup_stats_header_t *shdr;
    msup_reg_row_t *reg;        /* max_clusters */
    msup_retired_hdr_t *retired;
    uint8_t *slots;             /* max_workers x slot_size */
    uint32_t max_workers;
    uint32_t max_clusters;
    size_t slot_size;
    /* st_ino/st_dev of the stats object when opened: tells a recreated one */
    uint64_t ino;
    uint64_t dev;
    uid_t owner;                /* the configured segment.owner, or (uid_t)-1 */
    _Atomic(msup_ctlseg_t *) ctl;
} msup_segment_t;

typedef struct msup_geometry {
    uint32_t max_workers;
    uint32_t max_clusters;
    mode_t mode;          /* 0600 by default */
    gid_t group;          /* (gid_t)-1: keep the creator's */
    uid_t owner;          /* segment.owner: another accepted owner, (uid_t)-1 for none */
    const char *environment;
} msup_geometry_t;

/* The geometry a loaded configuration gives the segment (its environment
 * string stays cfg's). */
msup_geometry_t msup_geometry_of(const mongosup_config_t *cfg);

/* ---- owners and modes (docs/security.md "Who is accepted as owner") ---- */

/* True when an object of this owner and mode may be trusted: owned by our
 * euid, root, or `owner`, and not o+w (the control segment: not g+w
 * either).  Otherwise one line naming the owner and the mode. */
bool msup_owner_accepted(const char *name, uid_t st_uid, mode_t st_mode, uid_t owner, bool control,
                         mongosup_error_t *error);

/* ---- the stats segment ---- */

/* Creates a new stats segment (O_CREAT|O_EXCL), fills the header and
 * publishes the magic last.  Fails with EEXIST in driver_code when one
 * exists already.  `name` is the configured name. */
bool msup_segment_create(const char *name, const msup_geometry_t *geo, msup_segment_t *seg,
                         mongosup_error_t *error);

/* Opens an existing stats segment read-write (a worker, the supervisor):
 * accepted owner and mode, valid layout; when geo is not NULL the geometry
 * must match too (the reason is in the error otherwise). */
bool msup_segment_adopt(const char *name, const msup_geometry_t *geo, msup_segment_t *seg,
                        mongosup_error_t *error);

/* Adopts the stats segment, or creates it when there is none (race-safe:
 * whoever loses the O_EXCL race adopts, waiting up to 1 s for the
 * creator's magic).  *created tells which happened. */
bool msup_segment_open_or_create(const char *name, const msup_geometry_t *geo, msup_segment_t *seg,
                                 bool *created, mongosup_error_t *error);

/* Readers (tools, the exporter): both segments read-only, owner and mode
 * checked, the control segment's descriptor kept for the liveness test.
 * A missing control segment is not an error (no supervisor ever ran: ctl
 * stays NULL); a refused or invalid one is. */
bool msup_segment_open_readonly(const char *name, uid_t owner, msup_segment_t *seg, mongosup_error_t *error);

/* Workers: maps the control segment read-only when it exists and is
 * acceptable (owner, mode, layout, same number of clusters as the stats
 * segment); keeps an older mapping reachable.  False (and ctl unchanged)
 * with the reason otherwise. */
bool msup_segment_bind_control(msup_segment_t *seg, mongosup_error_t *error);

/* Unmaps everything (stats and every control mapping, closing the
 * supervisor's lock descriptor). */
void msup_segment_close(msup_segment_t *seg);

/* Removes both names (configured name: control and stats). */
bool msup_segment_unlink(const char *name, mongosup_error_t *error);

/* True when the stats name now refers to another object than the one
 * mapped (recreated) or to none. */
bool msup_segment_replaced(const msup_segment_t *seg);

/* True when a control segment is mapped and its name now refers to
 * another object or to none; false when none is mapped. */
bool msup_ctlseg_replaced(const msup_segment_t *seg);

/* ---- the control segment (mongosupd) ---- */

/*
 * Opens the control segment `name` read-write, creating it when missing
 * (never adopting an object another owner made, nor a group- or
 * other-writable one), takes the exclusive OFD lock before writing a byte,
 * then initialises it when it is new or was never published, or checks its
 * layout and geometry.  A second supervisor fails at once: "another
 * mongosupd (pid N) holds NAME".  The lock is held until the control is
 * closed (msup_ctlseg_close, or msup_segment_close once it is bound with
 * msup_segment_set_control).  *created tells whether it was new.
 */
msup_ctlseg_t *msup_ctlseg_claim(const char *name, const msup_geometry_t *geo, bool *created,
                                   mongosup_error_t *error);
void msup_ctlseg_close(msup_ctlseg_t *ctl);

/* Binds a claimed control to the stats segment of the same name (seg owns it from now on). */
void msup_segment_set_control(msup_segment_t *seg, msup_ctlseg_t *ctl);

/* ---- validation ---- */

/* Validates a mapped image of `size` bytes of either segment (the magic
 * tells which): magic, version, sizes, every offset and count.  Pure: used
 * on live maps and in the corruption tests. */
bool msup_layout_validate(const void *base, size_t size, mongosup_error_t *error);

/* ---- liveness ---- */

typedef enum msup_liveness {
    MSUP_SUPERVISOR_GONE = 0,    /* no lock held (or no control segment) */
    MSUP_SUPERVISOR_ALIVE = 1,   /* lock held and heartbeat fresh */
    MSUP_SUPERVISOR_STALLED = 2, /* lock held, heartbeat old: stopped or wedged */
} msup_liveness_t;

/* The one verdict every tool uses: F_OFD_GETLK on the control segment
 * (takes nothing) and the heartbeat.  Needs a reader's mapping (its
 * descriptor); without one it judges by the heartbeat alone. */
msup_liveness_t msup_supervisor_liveness(const msup_segment_t *seg);
const char *msup_liveness_name(msup_liveness_t l); /* "alive", "stalled", "gone" */

/* Workers: true when a control segment is mapped and its heartbeat is
 * fresh enough to trust (no syscall: the hot path calls it). */
bool msup_supervisor_alive(const msup_segment_t *seg);

/* ---- accessors ---- */

static inline msup_ctlseg_t *msup_segment_control(const msup_segment_t *seg)
{
    return atomic_load_explicit(&((msup_segment_t *)seg)->ctl, memory_order_acquire);
}

/* The control header / row; the caller knows a control is mapped (the
 * supervisor, or a reader that checked msup_segment_control). */
static inline msup_header_t *msup_segment_hdr(const msup_segment_t *seg)
{
    return msup_segment_control(seg)->hdr;
}

static inline msup_cluster_row_t *msup_segment_row(const msup_segment_t *seg, uint32_t i)
{
    return &msup_segment_control(seg)->rows[i];
}

static inline msup_reg_row_t *msup_segment_reg(const msup_segment_t *seg, uint32_t i)
{
    return &seg->reg[i];
}

static inline msup_slot_t *msup_segment_slot(const msup_segment_t *seg, uint32_t i)
{
    return (msup_slot_t *)(seg->slots + (size_t)i * seg->slot_size);
}

static inline msup_stats_t *msup_slot_stats(const msup_segment_t *seg, uint32_t slot, uint32_t cluster)
{
    return (msup_stats_t *)((uint8_t *)msup_segment_slot(seg, slot) + sizeof(msup_slot_t)) + cluster;
}

/* copy is 0 or 1 (see the retired-totals rule in layout.h). */
static inline msup_stats_t *msup_retired_stats(const msup_segment_t *seg, uint32_t copy, uint32_t cluster)
{
    return (msup_stats_t *)((uint8_t *)seg->retired + sizeof(msup_retired_hdr_t)) +
           (size_t)copy * seg->max_clusters + cluster;
}

/* Registry index of a cluster name among ACTIVE registry rows, or -1. */
int msup_segment_find_cluster(const msup_segment_t *seg, const char *name);

/* The control row a process may believe for registry index i: the mapped
 * control's row i when it is ACTIVE and has the same name as registry row
 * i; NULL otherwise. */
msup_cluster_row_t *msup_segment_trusted_row(const msup_segment_t *seg, uint32_t i);

/* The phase and configuration generation a worker obeys: the control
 * segment's, or RUNNING and 0 when none is mapped. */
uint32_t msup_segment_phase(const msup_segment_t *seg);
uint64_t msup_segment_config_generation(const msup_segment_t *seg);
/* CLOCK_MONOTONIC of the supervisor's last applied configuration, 0 if none. */
uint64_t msup_segment_config_applied_ns(const msup_segment_t *seg);

/* Clock helpers used with the segment's timestamps. */
uint64_t msup_now_ns(void);       /* CLOCK_REALTIME */
uint64_t msup_mono_ns(void);      /* CLOCK_MONOTONIC */

/* Start time of a process (field 22 of /proc/<pid>/stat), 0 if it is gone. */
uint64_t msup_proc_start_time(pid_t pid);

/* True when process pid still has start time `start_time` and maps the
 * stats segment of seg itself (/proc/<pid>/maps lists the object's device
 * and inode): the check before any signal to a pid read from a slot. */
bool msup_proc_maps_segment(pid_t pid, uint64_t start_time, const msup_segment_t *seg);

#endif
