/* plan.h: one host's decision in one round of the fleet protocol, from what it read (pure): join, lower the row first, publish, or raise by transaction. */
#ifndef MONGOSUP_FLEET_PLAN_H
#define MONGOSUP_FLEET_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "share.h"

typedef struct msup_plan_input {
    msup_share_params_t share;     /* fleet_max, max_hosts, floor (the same on every host) */
    uint32_t ceiling;              /* this host's max_connections, 0: none */
    uint32_t fallback_floor;       /* the cap without a record (0: share.floor); below it after a reload raised the floor */
    uint32_t published;            /* the cap in our record; 0: no record under the current lease */
    uint32_t published_demand;
    uint32_t enforced;             /* the row's cap now */
    uint64_t in_use;               /* tokens the host's workers hold now */
    uint32_t demand;               /* this host's demand now */
    uint64_t now_ns, lower_wait_ns;
    uint64_t lowering_since_ns;    /* 0: no lowering waiting to be published */
    /* The records read (valid ones), this host's at index mine (-1: absent). */
    const msup_share_host_t *hosts;
    size_t n;
    int mine;
    uint64_t others_caps;          /* the sum of the other records' caps */
} msup_plan_input_t;

typedef enum {
    MSUP_PLAN_NOTHING,  /* the record says it all */
    MSUP_PLAN_LOST,     /* our record is gone while we held it: treat the lease as lost */
    MSUP_PLAN_FULL,     /* max_hosts hosts have records: stay at the floor without one */
    MSUP_PLAN_JOIN,     /* publish the floor (guarded: the host count may not grow past max_hosts meanwhile) */
    MSUP_PLAN_WAIT,     /* the row is lowered; wait for clients in use to come back before publishing */
    MSUP_PLAN_PUBLISH,  /* plain put of publish_cap (never above the published cap) */
    MSUP_PLAN_RAISE,    /* guarded put of publish_cap; on success the row gets it */
} msup_plan_kind_t;

typedef struct msup_plan {
    msup_plan_kind_t kind;
    uint32_t target;               /* this host's share, within [floor, ceiling] */
    uint32_t enforce_now;          /* the row's cap before anything is published */
    uint32_t publish_cap;          /* JOIN, PUBLISH, RAISE */
    bool guarded;                  /* compare on the read revision */
    bool lowering_done;            /* PUBLISH ends the lowering (publish_cap == target) */
    uint64_t lowering_since_ns;    /* to keep for the next round */
} msup_plan_t;

/* The rules that keep the sum of the enforced caps within fleet_max:
 * a cap is lowered in the row before the record (and the record only once
 * the host is under it, or lower_wait_ns has passed: then what is really in
 * use, never more than before), and raised in the record first, by a
 * transaction, and only into the room the others' records and the unseen
 * hosts' floors leave. */
void msup_plan_round(const msup_plan_input_t *in, msup_plan_t *out);

#endif
