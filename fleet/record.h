/* record.h: what one host publishes per cluster under the fleet prefix (a small JSON object), encoded and checked. */
#ifndef MONGOSUP_FLEET_RECORD_H
#define MONGOSUP_FLEET_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MSUP_FLEET_RECORD_VERSION 1

typedef struct msup_fleet_record {
    char host[64];
    uint32_t floor;
    uint32_t demand;
    uint32_t cap;          /* the cap this host may enforce (it never enforces more) */
    uint32_t fleet_max;    /* the host's configuration, to notice hosts that disagree */
    uint32_t max_hosts;
} msup_fleet_record_t;

/* {"v":1,"host":...,"floor":...,...}; false when out does not hold it. */
bool msup_fleet_record_encode(const msup_fleet_record_t *r, char *out, size_t n);

/* Parses and checks a record found at key host `key_host`: a JSON object of
 * version 1 whose host matches the key, counts within 0..10,000,000 and
 * cap <= fleet_max.  False with a one-line reason otherwise (a corrupt or
 * foreign record: the caller ignores it and never trusts it to raise a cap). */
bool msup_fleet_record_decode(const char *text, const char *key_host, msup_fleet_record_t *r, char *why,
                              size_t why_len);

#endif
