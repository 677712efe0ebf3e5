/* snapshot_read.c: one snapshot of a segment by name, for a reader that keeps no mapping (the Apache status page). */
#include "export.h"

bool msup_snapshot_read(const char *name, uid_t owner, msup_snapshot_t *snap, mongosup_error_t *error)
{
    msup_segment_t seg;
    if (!msup_segment_open_readonly(name, owner, &seg, error))
        return false;
    /* The snapshot holds copies: the mapping is not needed once it is taken. */
    bool ok = msup_snapshot_take(&seg, snap, error);
    msup_segment_close(&seg);
    return ok;
}
