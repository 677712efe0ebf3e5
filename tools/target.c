/* target.c: resolves the segment a tool talks to from its options, a configuration file or the environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/config.h" /* not autoconf's config.h, which -I. finds first */
#include "error.h"
#include "shmname.h"
#include "target.h"

bool msup_target_resolve(const msup_target_t *target, char *out, size_t n, uid_t *owner, mongosup_error_t *error)
{
    *owner = (uid_t)-1;
    if (target->segment != NULL) {
        if (!msup_shm_name_check(target->segment, error))
            return false;
        snprintf(out, n, "%s", target->segment);
        return true;
    }
    if (target->config_path != NULL) {
        mongosup_config_t *cfg = mongosup_config_load(target->config_path, target->environment, error);
        if (cfg == NULL)
            return false;
        snprintf(out, n, "%s", cfg->segment_name);
        *owner = cfg->segment_owner;
        mongosup_config_destroy(&cfg);
        return true;
    }
    const char *env = getenv("MONGOSUP_SEGMENT");
    if (env != NULL && env[0] != '\0') {
        if (!msup_shm_name_check(env, error)) {
            char why[sizeof error->message];
            snprintf(why, sizeof why, "%s", error->message);
            return msup_fail(error, MONGOSUP_E_INVALID_ARG, "MONGOSUP_SEGMENT: %s", why);
        }
        snprintf(out, n, "%s", env);
        return true;
    }
    return msup_fail(error, MONGOSUP_E_INVALID_ARG,
                     "no segment given: use -n /NAME, -c CONFIG [-e ENV], or set MONGOSUP_SEGMENT");
}
