/* top.h: the live curses view of mongosup-top. */
#ifndef MONGOSUP_TOOLS_TOP_H
#define MONGOSUP_TOOLS_TOP_H

#include <sys/types.h>

/* Runs the live view of a segment until the user quits (q) or a signal
 * (INT, TERM) arrives.  The segment may be missing (the view waits for it)
 * or be recreated (it re-attaches).  Returns the process exit status. */
int msup_top_live(const char *segment_name, uid_t owner, double interval_s);

#endif
