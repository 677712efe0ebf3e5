/* record.c: encodes and strictly decodes a host's fleet record (json-c). */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "record.h"

#define COUNT_MAX 10000000

bool msup_fleet_record_encode(const msup_fleet_record_t *r, char *out, size_t n)
{
    int w = snprintf(out, n,
                     "{\"v\":%d,\"host\":\"%s\",\"floor\":%u,\"demand\":%u,\"cap\":%u,\"fleet_max\":%u,"
                     "\"max_hosts\":%u}",
                     MSUP_FLEET_RECORD_VERSION, r->host, r->floor, r->demand, r->cap, r->fleet_max, r->max_hosts);
    return w > 0 && (size_t)w < n;
}

static bool count_member(json_object *o, const char *name, uint32_t *v, char *why, size_t why_len)
{
    json_object *m = NULL;
    if (!json_object_object_get_ex(o, name, &m) || !json_object_is_type(m, json_type_int)) {
        snprintf(why, why_len, "no integer \"%s\"", name);
        return false;
    }
    int64_t x = json_object_get_int64(m);
    if (x < 0 || x > COUNT_MAX) {
        snprintf(why, why_len, "\"%s\" %lld is out of range 0..%d", name, (long long)x, COUNT_MAX);
        return false;
    }
    *v = (uint32_t)x;
    return true;
}

bool msup_fleet_record_decode(const char *text, const char *key_host, msup_fleet_record_t *r, char *why,
                              size_t why_len)
{
    memset(r, 0, sizeof *r);
    json_object *o = json_tokener_parse(text);
    bool ok = false;
    uint32_t version = 0;
    json_object *host = NULL;
    if (o == NULL || !json_object_is_type(o, json_type_object))
        snprintf(why, why_len, "not a JSON object");
    else if (!count_member(o, "v", &version, why, why_len))
        ;
    else if (version != MSUP_FLEET_RECORD_VERSION)
        snprintf(why, why_len, "record version %u, this mongosupd reads %d", version, MSUP_FLEET_RECORD_VERSION);
    else if (!json_object_object_get_ex(o, "host", &host) || !json_object_is_type(host, json_type_string) ||
             strcmp(json_object_get_string(host), key_host) != 0)
        snprintf(why, why_len, "its host does not match its key");
    else if (count_member(o, "floor", &r->floor, why, why_len) && count_member(o, "demand", &r->demand, why, why_len) &&
             count_member(o, "cap", &r->cap, why, why_len) &&
             count_member(o, "fleet_max", &r->fleet_max, why, why_len) &&
             count_member(o, "max_hosts", &r->max_hosts, why, why_len)) {
        if (r->cap > r->fleet_max)
            snprintf(why, why_len, "cap %u is above its fleet_max %u", r->cap, r->fleet_max);
        else
            ok = true;
        snprintf(r->host, sizeof r->host, "%s", key_host);
    }
    json_object_put(o);
    return ok;
}
