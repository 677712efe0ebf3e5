/* export_text.c: --once, the live view's tables as aligned plain text for scripts. */
#include <string.h>

#include "export.h"

/* Prints one table: titles, then rows, each column as wide as its widest cell. */
static void print_table(FILE *out, const char *const *titles, int ncols, const msup_view_row_t *rows, uint32_t n)
{
    int width[MSUP_VIEW_COLS];
    for (int c = 0; c < ncols; c++) {
        width[c] = (int)strlen(titles[c]);
        for (uint32_t r = 0; r < n; r++) {
            int w = (int)strlen(rows[r].cell[c]);
            if (w > width[c])
                width[c] = w;
        }
    }
    for (int c = 0; c + 1 < ncols; c++)
        fprintf(out, "%-*s  ", width[c], titles[c]);
    fprintf(out, "%s\n", titles[ncols - 1]);
    for (uint32_t r = 0; r < n; r++) {
        for (int c = 0; c + 1 < ncols; c++)
            fprintf(out, "%-*s  ", width[c], rows[r].cell[c]);
        fprintf(out, "%s\n", rows[r].cell[ncols - 1]);
    }
}

bool msup_export_text(const msup_view_t *view, FILE *out)
{
    for (uint32_t i = 0; i < view->header_lines; i++)
        fprintf(out, "%s\n", view->header[i]);
    fputc('\n', out);
    if (view->cluster_rows == 0)
        fprintf(out, "no cluster configured yet\n");
    else
        print_table(out, msup_cluster_col_title, MSUP_CCOL__COUNT, view->clusters, view->cluster_rows);
    fputc('\n', out);
    return msup_export_text_workers(view, out);
}

bool msup_export_text_workers(const msup_view_t *view, FILE *out)
{
    if (view->worker_rows == 0)
        fprintf(out, "no worker attached\n");
    else
        print_table(out, msup_worker_col_title, MSUP_WCOL__COUNT, view->workers, view->worker_rows);
    return !ferror(out);
}
