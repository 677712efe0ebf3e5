/* slowlog.h: the slow-operation ring of one (worker, cluster) stats block: lock-free writers, readers that never see a torn entry. */
#ifndef MONGOSUP_SLOWLOG_H
#define MONGOSUP_SLOWLOG_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Part of the segment's layout (msup_stats_t.slowlog, layout.h), so fixed
 * widths only.  What an entry holds is what the command monitoring event
 * tells about an operation, and never a document, a value or a filter:
 * the command name, the database, the collection (the string value of the
 * command's first key, which names the collection for CRUD commands), the
 * duration, the server address, the time and the outcome class.
 *
 * Writers: the threads of the slot's worker, several at once.  A writer
 * claims an ordinal with one fetch_add on `head`, takes the entry
 * ordinal % MSUP_SLOWLOG_ENTRIES with a CAS of its sequence from even to
 * odd (giving up, and counting it in `dropped`, when another writer still
 * holds it: the ring lapped a stalled writer), fills it and publishes the
 * sequence even again with release.  No lock, no wait, no allocation.
 *
 * Readers: copy an entry, re-read its sequence, keep the copy only when the
 * sequence was even and unchanged.  A reader never blocks a writer.
 */

#define MSUP_SLOWLOG_ENTRIES     8
#define MSUP_SLOWLOG_COMMAND_MAX 24 /* NUL included; longer names are cut on a character boundary */
#define MSUP_SLOWLOG_DB_MAX      32
#define MSUP_SLOWLOG_COLL_MAX    48
#define MSUP_SLOWLOG_SERVER_MAX  48 /* host:port */

/* Outcome of a logged operation: MSUP_SLOWOP_OK, or 1 + enum msup_fail_class. */
#define MSUP_SLOWOP_OK 0u

typedef struct msup_slowop {
    _Atomic uint32_t seq;      /* odd while a writer fills the entry; 0: never written */
    uint32_t outcome;          /* MSUP_SLOWOP_OK or 1 + enum msup_fail_class */
    uint64_t ordinal;          /* 1 for the ring's first record: the newest entry has the highest */
    uint64_t time_ns;          /* CLOCK_REALTIME when the operation ended */
    uint64_t duration_us;
    uint32_t slow;             /* 1: at or above slow_op_ms; 0: logged because it failed */
    uint32_t pad_;
    char command[MSUP_SLOWLOG_COMMAND_MAX];
    char database[MSUP_SLOWLOG_DB_MAX];
    char collection[MSUP_SLOWLOG_COLL_MAX];
    char server[MSUP_SLOWLOG_SERVER_MAX];
} msup_slowop_t;

typedef struct msup_slowlog {
    alignas(64) _Atomic uint64_t head; /* ordinals handed out (records attempted) */
    _Atomic uint64_t slow_ops;         /* operations at or above slow_op_ms (folded into the retired totals) */
    _Atomic uint64_t dropped;          /* records given up: the entry was still being written */
    alignas(64) msup_slowop_t entry[MSUP_SLOWLOG_ENTRIES];
} msup_slowlog_t;

_Static_assert(sizeof(msup_slowop_t) == 192, "slow-operation entry: three cache lines");
_Static_assert(sizeof(msup_slowlog_t) % 64 == 0, "slow-operation ring: whole cache lines");

/* What a writer records (the strings may be NULL: stored as ""). */
typedef struct msup_slowop_in {
    const char *command, *database, *collection, *server;
    uint64_t duration_us;
    uint32_t outcome;          /* MSUP_SLOWOP_OK or 1 + enum msup_fail_class */
    bool slow;
} msup_slowop_in_t;

/* Records one operation (never blocks; see above). */
void msup_slowlog_record(msup_slowlog_t *ring, const msup_slowop_in_t *op);

/* Copies the entries with an ordinal above `after` (0: all), oldest first,
 * into out[0..cap); returns how many.  Entries being written or torn by a
 * concurrent writer are retried a few times, then left out.  The strings of
 * the copies are NUL-terminated and valid UTF-8 whatever the segment holds,
 * and an outcome out of range reads as "other". */
uint32_t msup_slowlog_read(const msup_slowlog_t *ring, uint64_t after, msup_slowop_t *out, uint32_t cap);

/* The outcome's name: "ok", or the failure class's ("timeout", ...). */
const char *msup_slowop_outcome_name(uint32_t outcome);

#endif
