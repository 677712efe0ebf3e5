/* stdio_guard.h: makes sure descriptors 0, 1 and 2 are open before a mongosup program opens anything else. */
#ifndef MONGOSUP_STDIO_GUARD_H
#define MONGOSUP_STDIO_GUARD_H

#include <stdbool.h>

/*
 * A program started with stdin, stdout or stderr closed (a CI runner, a
 * careless init script, `cmd <&- 2>&-`) gets descriptor 0, 1 or 2 for the
 * first file it opens: the segment, the control socket, a client's
 * connection.  Every later message to stderr would then be written into the
 * shared-memory segment or sent to a control client.  Like nginx and
 * HAProxy do, each closed one of the three is opened on /dev/null first.
 * Returns false (errno set) when /dev/null cannot be opened.  Programs only:
 * the library never touches the descriptors of the process it is linked in.
 */
bool msup_stdio_guard(void);

#endif
