/* filter.h: which rows of the live view's tables are shown: a typed filter and "hide rows that never moved". */
#ifndef MONGOSUP_TOOLS_FILTER_H
#define MONGOSUP_TOOLS_FILTER_H

#include <stdbool.h>
#include <stdint.h>

#include "export.h"

typedef struct msup_row_filter {
    char text[64];  /* case-insensitive substring; "" matches every row */
    bool hide_idle; /* hide rows whose counters never moved */
} msup_row_filter_t;

/* A cluster row matches on its name; a worker row on its appname or pid.
 * The text is compared with what the table shows (escaped names). */
bool msup_filter_match(const msup_row_filter_t *f, const msup_view_row_t *row, bool worker);

/* Keeps the matching rows, in order, at the front; returns their number. */
uint32_t msup_filter_rows(const msup_row_filter_t *f, msup_view_row_t *rows, uint32_t n, bool worker);

#endif
