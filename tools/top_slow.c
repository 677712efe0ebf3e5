/* top_slow.c: the slow-operation table of the live view, one row per ring entry of the snapshot. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "textsafe.h"
#include "top_state.h"

static void fmt_time(char *out, size_t cap, uint64_t ns)
{
    time_t t = (time_t)(ns / 1000000000ull);
    struct tm tm;
    char hms[16];
    localtime_r(&t, &tm);
    strftime(hms, sizeof hms, "%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03u", hms, (unsigned)(ns / 1000000ull % 1000));
}

bool top_slow_rows(top_table_rows_t *t, const msup_snapshot_t *snap)
{
    t->n = 0;
    if (!top_reserve_rows(t, snap->slow_count))
        return false;
    for (uint32_t i = 0; i < snap->slow_count; i++) {
        const msup_slowop_snap_t *e = &snap->slow_ops[i];
        msup_view_row_t *row = &t->rows[t->n++];
        memset(row, 0, sizeof *row);
        char (*cell)[MSUP_CELL_MAX] = row->cell;
        double *key = row->key;
        row->src = i;
        row->moved = true;
        msup_text_escape(cell[SL_CLUSTER], MSUP_CELL_MAX, snap->clusters[e->cluster].name,
                         sizeof snap->clusters[e->cluster].name);
        fmt_time(cell[SL_TIME], MSUP_CELL_MAX, e->op.time_ns);
        key[SL_TIME] = (double)e->op.time_ns;
        snprintf(cell[SL_SLOT], MSUP_CELL_MAX, "%u", e->slot);
        key[SL_SLOT] = e->slot;
        snprintf(cell[SL_PID], MSUP_CELL_MAX, "%d", (int)e->pid);
        key[SL_PID] = e->pid;
        msup_text_escape(cell[SL_COMMAND], MSUP_CELL_MAX, e->op.command[0] ? e->op.command : "-", sizeof e->op.command);
        msup_text_escape(cell[SL_DATABASE], MSUP_CELL_MAX, e->op.database[0] ? e->op.database : "-",
                         sizeof e->op.database);
        msup_text_escape(cell[SL_COLLECTION], MSUP_CELL_MAX, e->op.collection[0] ? e->op.collection : "-",
                         sizeof e->op.collection);
        msup_fmt_latency_us(cell[SL_DURATION], MSUP_CELL_MAX, e->op.duration_us);
        key[SL_DURATION] = (double)e->op.duration_us;
        msup_text_escape(cell[SL_SERVER], MSUP_CELL_MAX, e->op.server[0] ? e->op.server : "-", sizeof e->op.server);
        snprintf(cell[SL_OUTCOME], MSUP_CELL_MAX, "%s%s", msup_slowop_outcome_name(e->op.outcome),
                 e->op.slow ? "" : " (failed)");
    }
    return true;
}
