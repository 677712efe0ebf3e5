/* ctl.c: mongosupctl, control of a running mongosupd through its segment and signals. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "export.h"
#include "target.h"

/* Exit status (documented in mongosupctl(1)). */
enum {
    CTL_OK = 0,           /* status: every cluster UP */
    CTL_DEGRADED = 1,     /* status: some cluster DEGRADED; other commands: the request failed */
    CTL_DOWN = 2,         /* status: some cluster DOWN or UNKNOWN */
    CTL_NO_SUPERVISOR = 3,/* no segment, or no live supervisor */
    CTL_USAGE = 64,
};
#define CTL_FAILED 1

static const char *progname = "mongosupctl";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mongosupctl [-n /SEGMENT | -c CONFIG [-e ENV]] COMMAND [ARGS]\n"
            "commands:\n"
            "  status [-q]                      health summary; exit 0 all UP, 1 some DEGRADED,\n"
            "                                   2 some DOWN/UNKNOWN, 3 no supervisor or segment\n"
            "  reconnect CLUSTER                ask the supervisor to make workers rebuild their pools\n"
            "  reload                           SIGHUP: reload the configuration\n"
            "  shutdown [--wait [--timeout N]]  SIGTERM: phased shutdown; --wait until STOPPED (N s, default 60)\n"
            "  workers                          the worker table\n"
            "Exit status 64: usage error.\n");
}

/* The configuration's segment.owner ((uid_t)-1: none): owners we accept besides us and root. */
static uid_t segment_owner = (uid_t)-1;

static int open_segment(const char *name, bool writable, msup_segment_t *seg)
{
    mongosup_error_t err;
    bool ok = writable ? msup_segment_open_requests(name, segment_owner, seg, &err)
                       : msup_segment_open_readonly(name, segment_owner, seg, &err);
    if (!ok) {
        fprintf(stderr, "%s: %s\n", progname, err.message);
        return CTL_NO_SUPERVISOR;
    }
    return CTL_OK;
}

/* The supervisor process the control segment publishes, if it holds the
 * segment's lock and still runs (the pid alone could have been reused: the
 * start time tells). */
static pid_t live_supervisor(const msup_segment_t *seg)
{
    const msup_control_t *ctl = msup_segment_control(seg);
    if (ctl == NULL || msup_supervisor_liveness(seg) == MSUP_SUPERVISOR_GONE)
        return 0;
    pid_t pid = atomic_load_explicit(&ctl->hdr->supervisor_pid, memory_order_acquire);
    uint64_t start = atomic_load_explicit(&ctl->hdr->supervisor_start_time, memory_order_acquire);
    if (pid <= 0 || start == 0)
        return 0;
    return msup_proc_start_time(pid) == start ? pid : 0;
}

static int cmd_status(const char *name, bool quiet)
{
    msup_segment_t seg;
    if (open_segment(name, false, &seg) != CTL_OK)
        return CTL_NO_SUPERVISOR;
    msup_snapshot_t snap;
    mongosup_error_t err;
    if (!msup_snapshot_take(&seg, &snap, &err)) {
        fprintf(stderr, "%s: %s\n", progname, err.message);
        msup_segment_close(&seg);
        return CTL_NO_SUPERVISOR;
    }
    int rc = CTL_OK;
    bool alive = snap.supervisor_alive && live_supervisor(&seg) != 0;
    if (!alive) {
        rc = CTL_NO_SUPERVISOR;
    } else {
        for (uint32_t i = 0; i < snap.cluster_count; i++) {
            uint32_t h = snap.clusters[i].health;
            if (h == MSUP_HEALTH_DEGRADED && rc < CTL_DEGRADED)
                rc = CTL_DEGRADED;
            else if (h != MSUP_HEALTH_UP && h != MSUP_HEALTH_DEGRADED)
                rc = CTL_DOWN;
        }
    }
    if (!quiet) {
        if (!alive)
            printf("segment %s: no live supervisor (%s; pid %d, heartbeat %llums old)\n", snap.segment_name,
                   msup_liveness_name(snap.liveness), (int)snap.supervisor_pid,
                   (unsigned long long)snap.heartbeat_age_ms);
        else
            printf("segment %s: supervisor pid %d, phase %s, %u cluster(s), %u worker(s)\n", snap.segment_name,
                   (int)snap.supervisor_pid, msup_phase_name(snap.phase), snap.cluster_count, snap.worker_count);
        for (uint32_t i = 0; i < snap.cluster_count; i++) {
            const msup_cluster_snap_t *c = &snap.clusters[i];
            char rtt[32];
            msup_fmt_latency_us(rtt, sizeof rtt, c->last_rtt_us);
            printf("  %-24s %-8s rtt %s\n", c->name, msup_health_name(c->health), c->last_check_ns ? rtt : "-");
        }
    }
    msup_snapshot_free(&snap);
    msup_segment_close(&seg);
    return rc;
}

static int cmd_reconnect(const char *name, const char *cluster)
{
    msup_segment_t seg;
    if (open_segment(name, true, &seg) != CTL_OK)
        return CTL_NO_SUPERVISOR;
    int rc = CTL_OK;
    int idx = msup_segment_find_cluster(&seg, cluster);
    if (idx < 0) {
        fprintf(stderr, "%s: segment %s has no cluster '%s'\n", progname, name, cluster);
        rc = CTL_FAILED;
    } else if (!msup_supervisor_alive(&seg)) {
        /* Nobody would act on the request now, and a stale one would fire
         * whenever a supervisor comes back: refuse instead. */
        fprintf(stderr, "%s: no live supervisor for segment %s: reconnect not requested\n", progname, name);
        rc = CTL_NO_SUPERVISOR;
    } else {
        msup_cluster_row_t *row = msup_segment_row(&seg, (uint32_t)idx);
        uint64_t n = atomic_fetch_add_explicit(&row->reconnect_requests, 1, memory_order_acq_rel) + 1;
        printf("reconnect of cluster %s requested (request %llu, generation now %llu)\n", cluster,
               (unsigned long long)n,
               (unsigned long long)atomic_load_explicit(&row->reconnect_generation, memory_order_acquire));
    }
    msup_segment_close(&seg);
    return rc;
}

static int signal_supervisor(const msup_segment_t *seg, int sig, const char *what)
{
    pid_t pid = live_supervisor(seg);
    if (pid == 0) {
        const msup_control_t *ctl = msup_segment_control(seg);
        fprintf(stderr, "%s: no supervisor runs for segment %s (published pid %d is gone or reused)\n", progname,
                seg->name, ctl ? (int)atomic_load_explicit(&ctl->hdr->supervisor_pid, memory_order_relaxed) : 0);
        return CTL_NO_SUPERVISOR;
    }
    if (kill(pid, sig) != 0) {
        fprintf(stderr, "%s: cannot signal mongosupd pid %d: %s\n", progname, (int)pid, strerror(errno));
        return CTL_FAILED;
    }
    printf("%s: sent SIG%s to mongosupd pid %d\n", what, sigabbrev_np(sig), (int)pid);
    return CTL_OK;
}

static int cmd_reload(const char *name)
{
    msup_segment_t seg;
    if (open_segment(name, false, &seg) != CTL_OK)
        return CTL_NO_SUPERVISOR;
    int rc = signal_supervisor(&seg, SIGHUP, "reload");
    msup_segment_close(&seg);
    return rc;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int cmd_shutdown(const char *name, bool wait, double timeout_s)
{
    msup_segment_t seg;
    if (open_segment(name, false, &seg) != CTL_OK)
        return CTL_NO_SUPERVISOR;
    int rc = signal_supervisor(&seg, SIGTERM, "shutdown");
    if (rc != CTL_OK || !wait) {
        msup_segment_close(&seg);
        return rc;
    }
    uint64_t deadline = msup_mono_ns() + (uint64_t)(timeout_s * 1e9);
    uint32_t last_phase = UINT32_MAX;
    for (;;) {
        if (msup_segment_replaced(&seg) || msup_control_replaced(&seg)) {
            printf("shutdown: segment %s removed: the supervisor has stopped\n", name);
            break;
        }
        uint32_t phase = msup_segment_phase(&seg);
        if (phase != last_phase) {
            printf("shutdown: phase %s\n", msup_phase_name(phase));
            fflush(stdout);
            last_phase = phase;
        }
        if (phase == MSUP_PHASE_STOPPED)
            break;
        if (msup_mono_ns() >= deadline) {
            fprintf(stderr, "%s: shutdown did not finish within %.0f s (phase %s)\n", progname, timeout_s,
                    msup_phase_name(phase));
            rc = CTL_FAILED;
            break;
        }
        sleep_ms(100);
    }
    msup_segment_close(&seg);
    return rc;
}

static int cmd_workers(const char *name)
{
    msup_segment_t seg;
    if (open_segment(name, false, &seg) != CTL_OK)
        return CTL_NO_SUPERVISOR;
    msup_snapshot_t snap;
    mongosup_error_t err;
    int rc = CTL_OK;
    if (!msup_snapshot_take(&seg, &snap, &err)) {
        fprintf(stderr, "%s: %s\n", progname, err.message);
        msup_segment_close(&seg);
        return CTL_NO_SUPERVISOR;
    }
    msup_view_t view;
    memset(&view, 0, sizeof view);
    if (!msup_view_build(&view, &snap, NULL) || !msup_export_text_workers(&view, stdout))
        rc = CTL_FAILED;
    msup_view_free(&view);
    msup_snapshot_free(&snap);
    msup_segment_close(&seg);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"segment", required_argument, NULL, 'n'}, {"config", required_argument, NULL, 'c'},
        {"env", required_argument, NULL, 'e'},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    msup_target_t target = {NULL, NULL, NULL};
    int opt;
    /* '+': stop at the command, whose own options follow it. */
    while ((opt = getopt_long(argc, argv, "+n:c:e:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n': target.segment = optarg; break;
        case 'c': target.config_path = optarg; break;
        case 'e': target.environment = optarg; break;
        case 'h': usage(stdout); return CTL_OK;
        default: usage(stderr); return CTL_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "%s: no command given\n", progname);
        usage(stderr);
        return CTL_USAGE;
    }
    const char *cmd = argv[optind];
    char **args = argv + optind + 1;
    int nargs = argc - optind - 1;

    bool quiet = false, wait = false;
    double timeout_s = 60;
    const char *cluster = NULL;
    if (strcmp(cmd, "status") == 0) {
        for (int i = 0; i < nargs; i++) {
            if (strcmp(args[i], "-q") == 0 || strcmp(args[i], "--quiet") == 0)
                quiet = true;
            else
                goto bad_args;
        }
    } else if (strcmp(cmd, "reconnect") == 0) {
        if (nargs != 1)
            goto bad_args;
        cluster = args[0];
    } else if (strcmp(cmd, "reload") == 0 || strcmp(cmd, "workers") == 0) {
        if (nargs != 0)
            goto bad_args;
    } else if (strcmp(cmd, "shutdown") == 0) {
        for (int i = 0; i < nargs; i++) {
            if (strcmp(args[i], "--wait") == 0) {
                wait = true;
            } else if (strcmp(args[i], "--timeout") == 0 && i + 1 < nargs) {
                char *end;
                timeout_s = strtod(args[++i], &end);
                if (*end != '\0' || !(timeout_s > 0 && timeout_s <= 86400))
                    goto bad_args;
            } else {
                goto bad_args;
            }
        }
    } else {
        fprintf(stderr, "%s: unknown command '%s'\n", progname, cmd);
        usage(stderr);
        return CTL_USAGE;
    }

    char name[MSUP_NAME_MAX];
    mongosup_error_t err;
    if (!msup_target_resolve(&target, name, sizeof name, &segment_owner, &err)) {
        fprintf(stderr, "%s: %s\n", progname, err.message);
        return err.code == MONGOSUP_E_INVALID_ARG ? CTL_USAGE : CTL_NO_SUPERVISOR;
    }
    if (strcmp(cmd, "status") == 0)
        return cmd_status(name, quiet);
    if (strcmp(cmd, "reconnect") == 0)
        return cmd_reconnect(name, cluster);
    if (strcmp(cmd, "reload") == 0)
        return cmd_reload(name);
    if (strcmp(cmd, "shutdown") == 0)
        return cmd_shutdown(name, wait, timeout_s);
    return cmd_workers(name);

bad_args:
    fprintf(stderr, "%s: bad arguments for '%s'\n", progname, cmd);
    usage(stderr);
    return CTL_USAGE;
}
