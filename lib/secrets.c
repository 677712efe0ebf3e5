/* secrets.c: passwords from environment variables and password files (never world-readable), for the URI builder. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_int.h"

/* Reads a secret file (lib/config_file.c: regular files only, never
 * blocking), refuses a world-readable one, strips the trailing newline(s).
 * secret gets SECRET_MAX bytes; s is the setting named in messages. */
static bool read_secret_file(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *s,
                             const char *path, char *secret)
{
    msup_cfg_file_t f;
    char why[PATH_MAX + 96];
    if (!msup_cfg_read_file(path, SECRET_MAX - 2, &f, why, sizeof why))
        return msup_cfg_fail_at(ctx, error, s, "%s", why);
    mode_t mode = f.mode;
    if ((mode & S_IROTH) != 0) {
        msup_cfg_file_free(&f);
        return msup_cfg_fail_at(ctx, error, s, "%s is readable by everyone (mode %04o): refusing it; chmod o-r it",
                                path, (unsigned)(mode & 07777));
    }
    size_t len = f.len;
    memcpy(secret, f.data, len);
    msup_cfg_file_free(&f);
    while (len > 0 && (secret[len - 1] == '\n' || secret[len - 1] == '\r'))
        len--;
    secret[len] = '\0';
    if (len == 0)
        return msup_cfg_fail_at(ctx, error, s, "%s is empty", path);
    if (memchr(secret, '\0', len) != NULL)
        return msup_cfg_fail_at(ctx, error, s, "%s contains a NUL byte", path);
    return true;
}

/* A secret from the variable named by env_key (when set and non-empty), else
 * from the file of file_key.  *found is false when neither is configured. */
bool msup_cfg_resolve_secret(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *cs,
                           const config_setting_t *env_set, const char *env_name,
                           const config_setting_t *file_set, const char *file_path, char *secret,
                           bool *found, char *how, size_t how_len)
{
    *found = false;
    if (env_name != NULL) {
        const char *v = getenv(env_name);
        if (v != NULL && *v != '\0') {
            if (strlen(v) >= SECRET_MAX)
                return msup_cfg_fail_at(ctx, error, env_set, "$%s is longer than %d bytes", env_name, SECRET_MAX - 1);
            strcpy(secret, v);
            snprintf(how, how_len, "$%s", env_name);
            *found = true;
            return true;
        }
        if (file_path == NULL)
            return msup_cfg_fail_at(ctx, error, env_set != NULL ? env_set : cs,
                           "environment variable %s is not set (and no file is configured)", env_name);
    }
    if (file_path != NULL) {
        if (!read_secret_file(ctx, error, file_set != NULL ? file_set : cs, file_path, secret))
            return false;
        snprintf(how, how_len, "file %s", file_path);
        *found = true;
    }
    return true;
}
