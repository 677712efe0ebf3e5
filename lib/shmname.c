/* shmname.c: the one validator of shared-memory segment names, and the names derived from them. */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "layout.h"
#include "shmname.h"

/* Copies name into out with every byte outside printable ASCII as \xHH, so
 * that an error message never carries a control sequence. */
static void escape_name(const char *name, char *out, size_t n)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0' && o + 5 < n; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\')
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", *p);
    }
    out[o < n ? o : n - 1] = '\0';
}

bool msup_shm_name_check(const char *name, mongosup_error_t *error)
{
    if (name == NULL)
        return msup_fail(error, MONGOSUP_E_INVALID_ARG, "segment name is missing");
    char shown[3 * MSUP_NAME_MAX];
    escape_name(name, shown, sizeof shown);
    size_t len = strlen(name);
    size_t max = MSUP_NAME_MAX - sizeof MSUP_STATS_SUFFIX; /* room for the suffix and the NUL */
    if (name[0] != '/' || strchr(name + 1, '/') != NULL || len < 2)
        return msup_fail(error, MONGOSUP_E_INVALID_ARG,
                         "segment name \"%s\" is invalid: it must be '/' followed by a name without '/'", shown);
    if (strcmp(name, "/.") == 0 || strcmp(name, "/..") == 0)
        return msup_fail(error, MONGOSUP_E_INVALID_ARG,
                         "segment name \"%s\" is invalid: \".\" and \"..\" name directories", shown);
    for (const unsigned char *p = (const unsigned char *)name + 1; *p != '\0'; p++) {
        if (*p <= 0x20 || *p >= 0x7f)
            return msup_fail(error, MONGOSUP_E_INVALID_ARG,
                             "segment name \"%s\" is invalid: only printable ASCII without spaces", shown);
    }
    if (len > max)
        return msup_fail(error, MONGOSUP_E_INVALID_ARG,
                         "segment name \"%s\" is invalid: %zu bytes, at most %zu (the stats segment adds \"%s\")",
                         shown, len, max, MSUP_STATS_SUFFIX);
    return true;
}

bool msup_shm_stats_name(const char *name, char *out, size_t n)
{
    int w = snprintf(out, n, "%s%s", name, MSUP_STATS_SUFFIX);
    return w > 0 && (size_t)w < n;
}
