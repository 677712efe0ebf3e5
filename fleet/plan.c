/* plan.c: one round's decision of the fleet protocol from the records read; the invariant lives here (docs/fleet.md). */
#include "plan.h"

#define PLAN_MAX_HOSTS 4096

/* Demand is republished when it moved by more than a tenth (at least 1):
 * every write makes the others' pending transactions retry. */
static bool demand_moved(uint32_t now, uint32_t before)
{
    uint32_t d = now > before ? now - before : before - now;
    return d > 0 && d > before / 10;
}

void msup_plan_round(const msup_plan_input_t *in, msup_plan_t *out)
{
    const msup_share_params_t *p = &in->share;
    /* Without a record: the floor the others reserve for us. */
    uint32_t fallback = in->fallback_floor != 0 && in->fallback_floor < p->floor ? in->fallback_floor : p->floor;
    *out = (msup_plan_t){.kind = MSUP_PLAN_NOTHING, .target = p->floor, .enforce_now = in->enforced,
                         .lowering_since_ns = in->lowering_since_ns};
    if (in->published == 0 || in->mine < 0) {
        if (in->published != 0) {
            out->kind = MSUP_PLAN_LOST;
            out->enforce_now = fallback;
            return;
        }
        /* Not joined: the floor is ours while fewer than max_hosts other
         * hosts have records (they keep it free for us).  A record of ours
         * from a lease we gave up is not another host: our put replaces it. */
        out->enforce_now = fallback;
        out->lowering_since_ns = 0;
        if (in->n - (in->mine >= 0 ? 1 : 0) >= p->max_hosts) {
            out->kind = MSUP_PLAN_FULL;
            return;
        }
        out->kind = MSUP_PLAN_JOIN;
        out->publish_cap = fallback;
        out->guarded = true;
        return;
    }
    if (in->n == 0 || in->n > PLAN_MAX_HOSTS || (size_t)in->mine >= in->n)
        return;
    uint32_t targets[PLAN_MAX_HOSTS];
    msup_share_compute(p, in->hosts, in->n, targets);
    uint32_t target = targets[in->mine];
    if (in->ceiling != 0 && target > in->ceiling)
        target = in->ceiling;
    if (target < p->floor)
        target = p->floor;
    out->target = target;

    if (target < in->published) {
        /* Lower: the row now; the record once the host is under it. */
        out->enforce_now = target;
        if (in->enforced > target || in->lowering_since_ns == 0)
            out->lowering_since_ns = in->now_ns;
        bool waited_enough = in->now_ns - out->lowering_since_ns >= in->lower_wait_ns;
        if (in->in_use > target && !waited_enough) {
            out->kind = MSUP_PLAN_WAIT;
            return;
        }
        /* After the bound, what is really open (never more than before):
         * the others' room stays honest while clients in use come back. */
        out->kind = MSUP_PLAN_PUBLISH;
        out->publish_cap = in->in_use > target ? (in->in_use < in->published ? (uint32_t)in->in_use : in->published)
                                               : target;
        out->lowering_done = out->publish_cap == target;
        return;
    }
    out->lowering_since_ns = 0;
    if (in->enforced < in->published)
        out->enforce_now = in->published; /* room our record holds already (target >= published here) */
    if (target > in->published) {
        uint32_t room = msup_share_room(p, in->n, in->others_caps);
        uint32_t cap = target < room ? target : room;
        if (cap > in->published) {
            out->kind = MSUP_PLAN_RAISE;
            out->publish_cap = cap;
            out->guarded = true;
            return;
        }
    }
    if (demand_moved(in->demand, in->published_demand)) {
        out->kind = MSUP_PLAN_PUBLISH;
        out->publish_cap = in->published;
    }
}
