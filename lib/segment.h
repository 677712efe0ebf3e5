/* segment.h: create, adopt, open and validate the shared-memory segment. */
#ifndef MONGOSUP_SEGMENT_H
#define MONGOSUP_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layout.h"
#include "mongosup.h"

typedef struct msup_segment {
    void *base;
    size_t size;
    bool writable;
    char name[MSUP_NAME_MAX];
    msup_header_t *hdr;
    msup_cluster_row_t *rows;   /* max_clusters */
    msup_retired_hdr_t *retired;
    uint8_t *slots;             /* max_workers x slot_size */
    uint32_t max_workers;
    uint32_t max_clusters;
    size_t slot_size;
    /* st_ino/st_dev of the object when opened: tells a recreated segment */
    uint64_t ino;
    uint64_t dev;
} msup_segment_t;

typedef struct msup_geometry {
    uint32_t max_workers;
    uint32_t max_clusters;
    mode_t mode;          /* 0600 by default */
    gid_t group;          /* (gid_t)-1: keep the creator's */
    const char *environment;
} msup_geometry_t;

/* Creates a new segment (O_CREAT|O_EXCL), fills the header and publishes the
 * magic last.  Fails with EEXIST in driver_code when one exists already. */
bool msup_segment_create(const char *name, const msup_geometry_t *geo, msup_segment_t *seg,
                         mongosup_error_t *error);

/* Opens an existing segment for a worker or a supervisor restart: read-write,
 * same owner uid as us, valid layout.  When geo is not NULL the geometry must
 * match too (the reason is in the error otherwise). */
bool msup_segment_adopt(const char *name, const msup_geometry_t *geo, msup_segment_t *seg,
                        mongosup_error_t *error);

/* Opens an existing segment read-only (the monitor). */
bool msup_segment_open_readonly(const char *name, msup_segment_t *seg, mongosup_error_t *error);

/* Adopts the segment, or creates it when there is none (race-safe: whoever
 * loses the O_EXCL race adopts, waiting up to 1 s for the creator's magic).
 * *created tells which happened. */
bool msup_segment_open_or_create(const char *name, const msup_geometry_t *geo, msup_segment_t *seg,
                                 bool *created, mongosup_error_t *error);

void msup_segment_close(msup_segment_t *seg);
bool msup_segment_unlink(const char *name, mongosup_error_t *error);

/* True when the name now refers to another object than the one mapped
 * (the supervisor recreated it) or to none. */
bool msup_segment_replaced(const msup_segment_t *seg);

/* Validates a mapped image of `size` bytes: magic, version, sizes, every
 * offset and count.  Pure: used on live maps and in the corruption tests. */
bool msup_layout_validate(const void *base, size_t size, mongosup_error_t *error);

static inline msup_cluster_row_t *msup_segment_row(const msup_segment_t *seg, uint32_t i)
{
    return &seg->rows[i];
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

/* Cluster row index for a name among ACTIVE rows, or -1. */
int msup_segment_find_cluster(const msup_segment_t *seg, const char *name);

/* Clock helpers used with the segment's timestamps. */
uint64_t msup_now_ns(void);       /* CLOCK_REALTIME */
uint64_t msup_mono_ns(void);      /* CLOCK_MONOTONIC */

/* Start time of a process (field 22 of /proc/<pid>/stat), 0 if it is gone. */
uint64_t msup_proc_start_time(pid_t pid);

/* True when a supervisor heartbeat is fresh enough to trust. */
bool msup_supervisor_alive(const msup_segment_t *seg);

#endif
