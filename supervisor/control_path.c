/* control_path.c: the default location of the control socket, computed the same way by mongosupd and mongosupctl. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control_path.h"
#include "error.h"

static bool fits(char *out, size_t n, bool creatable, bool *creatable_dir, mongosup_error_t *error, int len)
{
    if (len < 0 || (size_t)len >= n || (size_t)len >= MSUP_CONTROL_PATH_MAX)
        return msup_fail(error, MONGOSUP_E_CONFIG,
                         "control socket path '%s...' is longer than %d bytes: set supervisor.control_socket",
                         out, MSUP_CONTROL_PATH_MAX - 1);
    if (creatable_dir != NULL)
        *creatable_dir = creatable;
    return true;
}

bool msup_control_path_resolve(const char *configured, const char *pidfile, const char *segment, char *out,
                               size_t n, bool *creatable_dir, mongosup_error_t *error)
{
    const char *base = segment[0] == '/' ? segment + 1 : segment;
    if (configured != NULL)
        return fits(out, n, false, creatable_dir, error, snprintf(out, n, "%s", configured));
    if (pidfile != NULL) {
        const char *slash = strrchr(pidfile, '/');
        int dirlen = slash == NULL ? 1 : (int)(slash - pidfile); /* "/x.pid": "" then "/" */
        const char *dir = slash == NULL ? "." : pidfile;
        return fits(out, n, false, creatable_dir, error, snprintf(out, n, "%.*s/%s.sock", dirlen, dir, base));
    }
    /* The systemd unit's RuntimeDirectory belongs to the service user:
     * that user's mongosupd, root and that user's mongosupctl all land
     * there.  Other users get a directory of their own. */
    struct stat st;
    uid_t euid = geteuid();
    if (euid == 0 || (stat(MSUP_CONTROL_RUN_DIR, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == euid))
        return fits(out, n, euid == 0, creatable_dir, error,
                    snprintf(out, n, MSUP_CONTROL_RUN_DIR "/%s.sock", base));
    return fits(out, n, true, creatable_dir, error,
                snprintf(out, n, "/tmp/mongosup-%u/%s.sock", (unsigned)euid, base));
}
