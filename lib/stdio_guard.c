/* stdio_guard.c: opens /dev/null on whichever of descriptors 0, 1 and 2 is closed at a program's start. */
#include "stdio_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

bool msup_stdio_guard(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        /* The lowest free descriptor is fd itself: the ones below are open. */
        int got = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (got < 0)
            return false;
        if (got != fd) {
            close(got);
            errno = EBADF;
            return false;
        }
    }
    return true;
}
