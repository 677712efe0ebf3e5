/* hostcap.h: the one place mongosupd writes a host's connection caps into a cluster's row (configuration or fleet share). */
#ifndef MONGOSUPD_HOSTCAP_H
#define MONGOSUPD_HOSTCAP_H

#include <stdint.h>

#include "supervisor.h"

/* Writes the limits into the row (the fleet thread calls it too). */
void msup_hostcap_apply(msup_cluster_row_t *row, uint32_t max_connections, uint32_t max_connecting);

/* Start and reload: the row of cc gets the configuration's max_connections,
 * or, for a cluster with a fleet_max_connections, the cap the fleet thread
 * enforces now (its floor when the fleet does not manage it: before the
 * thread starts, or a cluster added by a reload). */
void msup_hostcap_publish(msup_sup_t *sup, msup_cluster_row_t *row, const msup_cluster_cfg_t *cc);

#endif
