/* show.c: what the fleet thread shows: `mongosupctl fleet` lines and the mongosup_fleet_* Prometheus families. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fleet_int.h"

static double contact_age_s(const msup_fleet_t *f)
{
    uint64_t last = atomic_load(&f->last_contact_ns), now = msup_now_ns();
    return last == 0 ? -1 : (double)(now > last ? now - last : 0) / 1e9;
}

void msup_fleet_describe(msup_fleet_t *f, void (*emit)(void *arg, const char *line), void *arg, size_t max_lines)
{
    char line[256], ago[32] = "never";
    if (f == NULL || max_lines < 2)
        return;
    double age = contact_age_s(f);
    if (age >= 0)
        snprintf(ago, sizeof ago, "%.1fs ago", age);
    snprintf(line, sizeof line, "host %s lease %s last-etcd-contact %s lease-losses %" PRIu64 " etcd-requests %" PRIu64,
             f->host_id, atomic_load(&f->has_lease) ? "held" : "none", ago, atomic_load(&f->lease_losses),
             msup_etcd_requests(f->etcd));
    emit(arg, line);
    size_t lines = 1, left_out = 0;
    pthread_mutex_lock(&f->view_mu);
    for (size_t i = 0; i < f->count; i++) {
        const fleet_cluster_t *c = &f->clusters[i];
        if (lines + 1 < max_lines) {
            snprintf(line, sizeof line, "cluster %s cap %u target %u floor %u fleet-max %u hosts %zu demand %u", c->name,
                     atomic_load(&c->enforced), atomic_load(&c->target), c->floor, c->fleet_max, c->seen_count,
                     atomic_load(&c->demand));
            emit(arg, line);
            lines++;
        } else {
            left_out++;
        }
        for (size_t j = 0; j < c->shown_count; j++) {
            if (lines + 1 >= max_lines) {
                left_out++;
                continue;
            }
            snprintf(line, sizeof line, "  host %s floor %u demand %u cap %u%s", c->shown[j].host, c->shown[j].floor,
                     c->shown[j].demand, c->shown[j].cap, strcmp(c->shown[j].host, f->host_id) == 0 ? " (this host)" : "");
            emit(arg, line);
            lines++;
        }
        left_out += c->seen_count - c->shown_count;
    }
    pthread_mutex_unlock(&f->view_mu);
    if (left_out > 0) {
        snprintf(line, sizeof line, "(%zu more lines left out)", left_out);
        emit(arg, line);
    }
}

static void gauge(FILE *out, const char *name, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

bool msup_fleet_prometheus(FILE *out, void *arg)
{
    msup_fleet_t *f = arg;
    struct {
        const char *name, *help;
        int what;
    } per_cluster[] = {
        {"mongosup_fleet_cap_connections", "This host's cap for the cluster, from the fleet share (also the budget's max).", 0},
        {"mongosup_fleet_target_connections", "This host's share computed from the last read of etcd.", 1},
        {"mongosup_fleet_floor_connections", "This host's floor: the cap it keeps without etcd.", 2},
        {"mongosup_fleet_max_connections", "fleet_max_connections: the total of every host's cap.", 3},
        {"mongosup_fleet_hosts", "Hosts with a record for the cluster in the last read of etcd.", 4},
        {"mongosup_fleet_demand_connections", "The demand this host publishes: recent peak use, more when at its cap.", 5},
    };
    for (size_t k = 0; k < sizeof per_cluster / sizeof per_cluster[0]; k++) {
        gauge(out, per_cluster[k].name, per_cluster[k].help);
        for (size_t i = 0; i < f->count; i++) {
            const fleet_cluster_t *c = &f->clusters[i];
            uint32_t v = per_cluster[k].what == 0   ? atomic_load(&c->enforced)
                         : per_cluster[k].what == 1 ? atomic_load(&c->target)
                         : per_cluster[k].what == 2 ? c->floor
                         : per_cluster[k].what == 3 ? c->fleet_max
                         : per_cluster[k].what == 4 ? atomic_load(&c->hosts_seen)
                                                    : atomic_load(&c->demand);
            /* Cluster names are [A-Za-z0-9_-] (the loader checks): no escaping needed. */
            fprintf(out, "%s{cluster=\"%s\"} %u\n", per_cluster[k].name, c->name, v);
        }
    }
    gauge(out, "mongosup_fleet_lease_held", "1 while this host holds its etcd lease.");
    fprintf(out, "mongosup_fleet_lease_held %d\n", atomic_load(&f->has_lease) ? 1 : 0);
    gauge(out, "mongosup_fleet_last_etcd_contact_age_seconds", "Seconds since etcd last answered (-1: never).");
    fprintf(out, "mongosup_fleet_last_etcd_contact_age_seconds %.3f\n", contact_age_s(f));
    fprintf(out, "# HELP mongosup_fleet_lease_losses_total Leases lost (etcd unreachable or expired).\n"
                 "# TYPE mongosup_fleet_lease_losses_total counter\nmongosup_fleet_lease_losses_total %" PRIu64 "\n",
            atomic_load(&f->lease_losses));
    fprintf(out, "# HELP mongosup_fleet_etcd_requests_total HTTP requests sent to etcd.\n"
                 "# TYPE mongosup_fleet_etcd_requests_total counter\nmongosup_fleet_etcd_requests_total %" PRIu64 "\n",
            msup_etcd_requests(f->etcd));
    return !ferror(out);
}
