/* pidfile.c: single instance by pidfile: fcntl write lock held for the daemon's life. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "pidfile.h"

static long read_pid(int fd)
{
    char buf[32] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    return n > 0 ? strtol(buf, NULL, 10) : 0;
}

/* True when fd is still the file at path: a predecessor unlinks its pidfile
 * while holding the lock, so a lock taken on a file opened just before
 * that unlink is a lock on a file nobody will look at again. */
static bool still_at_path(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

bool msup_pidfile_acquire(msup_pidfile_t *pf, const char *path, mongosup_error_t *error)
{
    pf->fd = -1;
    pf->path = NULL;
    int fd = -1;
    for (int attempt = 0;; attempt++) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return msup_fail_errno(error, MONGOSUP_E_SYSTEM, "cannot open pidfile %s", path);
        /* fcntl locks vanish with their process: a lock we cannot take means a
         * live holder, a lock we can take over a non-empty file means a stale one. */
        struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fcntl(fd, F_SETLK, &lk) != 0) {
            int saved = errno;
            long holder = read_pid(fd);
            if (fcntl(fd, F_GETLK, &lk) == 0 && lk.l_type != F_UNLCK)
                holder = lk.l_pid;
            close(fd);
            if (saved == EAGAIN || saved == EACCES)
                return msup_fail(error, MONGOSUP_E_SYSTEM, "another mongosupd (pid %ld) holds the pidfile %s", holder,
                                 path);
            errno = saved;
            return msup_fail_errno(error, MONGOSUP_E_SYSTEM, "cannot lock pidfile %s", path);
        }
        if (still_at_path(fd, path))
            break;
        close(fd);
        if (attempt == 3)
            return msup_fail(error, MONGOSUP_E_SYSTEM, "pidfile %s keeps being replaced while we lock it", path);
    }
    long stale = read_pid(fd);
    if (stale > 0 && stale != (long)getpid())
        msup_log(LOG_NOTICE, "pidfile %s: taking over a stale pidfile (pid %ld is gone)", path, stale);
    char text[32];
    int n = snprintf(text, sizeof text, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
        msup_fail_errno(error, MONGOSUP_E_SYSTEM, "cannot write pidfile %s", path);
        close(fd);
        return false;
    }
    pf->fd = fd;
    pf->path = strdup(path);
    return true;
}

void msup_pidfile_release(msup_pidfile_t *pf)
{
    if (pf->fd >= 0) {
        /* Unlink while still holding the lock, so a successor never sees our file. */
        unlink(pf->path);
        close(pf->fd);
    }
    free(pf->path);
    pf->fd = -1;
    pf->path = NULL;
}
