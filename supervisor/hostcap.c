/* hostcap.c: the one place mongosupd writes a host's connection caps into a cluster's row: the configuration's, or the fleet's share. */
#include "budget.h"
#include "../fleet/fleet.h"
#include "hostcap.h"
#include "log.h"

void msup_hostcap_apply(msup_cluster_row_t *row, uint32_t max_connections, uint32_t max_connecting)
{
    msup_budget_apply_limits(&row->limits, max_connections, max_connecting);
}

void msup_hostcap_publish(msup_sup_t *sup, msup_cluster_row_t *row, const msup_cluster_cfg_t *cc)
{
    /* A cluster the fleet manages stays with it until the next start, even
     * when the reload took its fleet_max_connections away (logged there). */
    if (msup_fleet_reapply(sup->fleet, cc, row))
        return;
    if (cc->fleet_max_connections == 0) {
        msup_hostcap_apply(row, cc->max_connections, cc->max_connecting);
        return;
    }
    /* The floor is this host's by configuration (floors x max_hosts fit in
     * the total): safe whatever the other hosts hold. */
    if (sup->fleet != NULL)
        msup_log(LOG_WARNING, "fleet: cluster %s joins the fleet at the next start of mongosupd; until then it keeps "
                 "its floor of %u connections", cc->name, cc->fleet_floor);
    msup_hostcap_apply(row, cc->fleet_floor, cc->max_connecting);
}
