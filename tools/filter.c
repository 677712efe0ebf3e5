/* filter.c: the live view's row filter (filter.h). */
#include <ctype.h>
#include <string.h>

#include "filter.h"

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0)
        return true;
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return false;
}

bool msup_filter_match(const msup_row_filter_t *f, const msup_view_row_t *row, bool worker)
{
    if (f->hide_idle && !row->moved)
        return false;
    if (!worker)
        return contains_nocase(row->cell[MSUP_CCOL_NAME], f->text);
    return contains_nocase(row->cell[MSUP_WCOL_APPNAME], f->text) || contains_nocase(row->cell[MSUP_WCOL_PID], f->text);
}

uint32_t msup_filter_rows(const msup_row_filter_t *f, msup_view_row_t *rows, uint32_t n, bool worker)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!msup_filter_match(f, &rows[i], worker))
            continue;
        if (kept != i)
            rows[kept] = rows[i];
        kept++;
    }
    return kept;
}
