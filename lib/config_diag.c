/* config_diag.c: where a setting is (file, line, dotted path) and the one-line messages that name it. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config_int.h"
#include "error.h"

#define MSG_MAX 496          /* sizeof mongosup_error_t.message */

static void setting_path(const config_setting_t *s, char *buf, size_t n)
{
    const config_setting_t *chain[32];
    size_t depth = 0;
    for (const config_setting_t *p = s; p != NULL && depth < 32; p = config_setting_parent(p))
        if (config_setting_name(p) != NULL)
            chain[depth++] = p;
    buf[0] = '\0';
    size_t len = 0;
    while (depth > 0 && len + 1 < n) {
        const config_setting_t *p = chain[--depth];
        int w = snprintf(buf + len, n - len, "%s%s", len > 0 ? "." : "", config_setting_name(p));
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

const char *msup_cfg_setting_file(const load_ctx_t *ctx, const config_setting_t *s)
{
    const char *f = config_setting_source_file(s);
    return f != NULL ? f : ctx->path;
}

bool msup_cfg_fail_at(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *s,
                    const char *fmt, ...)
{
    char where[128];
    char msg[MSG_MAX];
    setting_path(s, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return msup_fail(error, CFG_E, "%s:%u: %s%s%s", msup_cfg_setting_file(ctx, s),
                     (unsigned)config_setting_source_line(s), where, where[0] != '\0' ? ": " : "", msg);
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static size_t nl_count(const namelist_t *nl)
{
    if (nl->keys != NULL)
        return nl->nkeys;
    size_t n = 0;
    while (nl->names[n] != NULL)
        n++;
    return n;
}

static const char *nl_name(const namelist_t *nl, size_t i)
{
    return nl->keys != NULL ? nl->keys[i].name : nl->names[i];
}

/* "unknown key (did you mean X?); valid keys: a, b, ..." fitted in a message. */
bool msup_cfg_fail_unknown(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *s,
                         const namelist_t *nl, const char *what)
{
    const char *bad = config_setting_name(s);
    size_t n = nl_count(nl);
    const char *near = NULL;
    size_t near_d = 4;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(bad, nl_name(nl, i));
        if (d < near_d) {
            near_d = d;
            near = nl_name(nl, i);
        }
    }
    char list[360];
    size_t len = 0;
    list[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *name = nl_name(nl, i);
        if (len + strlen(name) + 7 >= sizeof list) {
            snprintf(list + len, sizeof list - len, ", ...");
            break;
        }
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i > 0 ? ", " : "", name);
    }
    char hint[96] = "";
    if (near != NULL)
        snprintf(hint, sizeof hint, " (did you mean %s?)", near);
    return msup_cfg_fail_at(ctx, error, s, "unknown %s%s; valid: %s", what, hint, list);
}

const char *msup_cfg_type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP: return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64: return "an integer";
    case CONFIG_TYPE_FLOAT: return "a float";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL: return "a boolean";
    case CONFIG_TYPE_ARRAY: return "an array";
    case CONFIG_TYPE_LIST: return "a list";
    default: return "something else";
    }
}

bool msup_cfg_expect_group(const load_ctx_t *ctx, mongosup_error_t *error, const config_setting_t *s)
{
    if (config_setting_type(s) == CONFIG_TYPE_GROUP)
        return true;
    return msup_cfg_fail_at(ctx, error, s, "expected a group { ... }, got %s", msup_cfg_type_name(config_setting_type(s)));
}
