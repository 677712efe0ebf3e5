/* ctl.c: mongosupctl: status read from the segment, requests (reload, shutdown, reconnect) over mongosupd's control socket. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/config.h" /* not autoconf's config.h, which -I. finds first */
#include "control_path.h"
#include "ctlclient.h"
#include "export.h"
#include "stdio_guard.h"
#include "target.h"
#include "textsafe.h"

/* Exit status (documented in mongosupctl(1)). */
enum {
    CTL_OK = 0,           /* status: every cluster UP */
    CTL_DEGRADED = 1,     /* status: some cluster DEGRADED; other commands: refused, failed or no answer */
    CTL_DOWN = 2,         /* status: some cluster DOWN or UNKNOWN */
    CTL_NO_SUPERVISOR = 3,/* no segment, or no live supervisor */
    CTL_USAGE = 64,
};
#define CTL_FAILED 1

static const char *progname = "mongosupctl";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mongosupctl [-n /SEGMENT | -c CONFIG [-e ENV]] [-s SOCKET] [-t SECONDS] COMMAND [ARGS]\n"
            "  -s, --socket PATH   mongosupd's control socket (default: from the configuration or the segment)\n"
            "  -t, --answer-timeout SECONDS  how long to wait for mongosupd's answer (default 30)\n"
            "commands:\n"
            "  status [-q]                      health summary; exit 0 all UP, 1 some DEGRADED,\n"
            "                                   2 some DOWN/UNKNOWN, 3 no supervisor or segment\n"
            "  workers                          the worker table\n"
            "  ping                             is mongosupd answering on its control socket?\n"
            "  fleet                            the fleet-wide budget: lease, this host's caps, the hosts seen\n"
            "  reconnect CLUSTER                make the workers rebuild their pools to CLUSTER\n"
            "  reload                           reload the configuration; exit 1 with the reason if rejected\n"
            "  shutdown [--wait [--timeout N]]  phased shutdown; --wait until STOPPED (N s, default 60)\n"
            "The last five talk to the control socket; exit 1 when refused or failed, 3 when nothing listens.\n"
            "Exit status 64: usage error.\n");
}

/* The configuration's segment.owner ((uid_t)-1: none): owners we accept besides us and root. */
static uid_t segment_owner = (uid_t)-1;

static int open_segment(const char *name, msup_segment_t *seg)
{
    mongosup_error_t err;
    if (!msup_segment_open_readonly(name, segment_owner, seg, &err)) {
        fprintf(stderr, "%s: %s\n", progname, err.message);
        return CTL_NO_SUPERVISOR;
    }
    return CTL_OK;
}

/* The supervisor process the control segment publishes, if it holds the
 * segment's lock and still runs (the pid alone could have been reused: the
 * start time tells).  Only displayed: nothing is ever sent to it. */
static pid_t live_supervisor(const msup_segment_t *seg)
{
    const msup_ctlseg_t *ctl = msup_segment_control(seg);
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
    if (open_segment(name, &seg) != CTL_OK)
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
        /* Names from the segment reach a terminal: escaped (textsafe.h). */
        char seg_shown[MSUP_TEXT_ESCAPE_CAP(sizeof snap.segment_name)];
        msup_text_escape(seg_shown, sizeof seg_shown, snap.segment_name, sizeof snap.segment_name);
        if (!alive)
            printf("segment %s: no live supervisor (%s; pid %d, heartbeat %llums old)\n", seg_shown,
                   msup_liveness_name(snap.liveness), (int)snap.supervisor_pid,
                   (unsigned long long)snap.heartbeat_age_ms);
        else
            printf("segment %s: supervisor pid %d, phase %s, %u cluster(s), %u worker(s)\n", seg_shown,
                   (int)snap.supervisor_pid, msup_phase_name(snap.phase), snap.cluster_count, snap.worker_count);
        for (uint32_t i = 0; i < snap.cluster_count; i++) {
            const msup_cluster_snap_t *c = &snap.clusters[i];
            char rtt[32], shown_name[MSUP_TEXT_ESCAPE_CAP(sizeof c->name)];
            msup_fmt_latency_us(rtt, sizeof rtt, c->last_rtt_us);
            msup_text_escape(shown_name, sizeof shown_name, c->name, sizeof c->name);
            printf("  %-24s %-8s rtt %s", shown_name, msup_health_name(c->health), c->last_check_ns ? rtt : "-");
            if (c->workers_uri_mismatch > 0) /* the health shown is not theirs (layout.h) */
                printf("  uri_mismatch %u worker(s)", c->workers_uri_mismatch);
            putchar('\n');
        }
    }
    msup_snapshot_free(&snap);
    msup_segment_close(&seg);
    return rc;
}

/* One request on the control socket; prints the answer.  Returns the
 * exit status. */
static int request(const char *socket_path, const char *what, const char *line, unsigned timeout_ms)
{
    msup_ctl_answer_t answer;
    mongosup_error_t err;
    msup_ctl_status_t st = msup_ctl_request(socket_path, line, timeout_ms, &answer, &err);
    int rc;
    switch (st) {
    case MSUP_CTL_ANSWER_OK:
        fputs(answer.lines, stdout);
        printf("%s: %s\n", what, answer.verdict);
        rc = CTL_OK;
        break;
    case MSUP_CTL_ANSWER_ERROR:
        fputs(answer.lines, stdout);
        fprintf(stderr, "%s: %s: %s\n", progname, what, answer.verdict);
        rc = CTL_FAILED;
        break;
    case MSUP_CTL_NO_LISTENER:
        fprintf(stderr, "%s: %s: %s\n", progname, what, err.message);
        rc = CTL_NO_SUPERVISOR;
        break;
    default:
        fprintf(stderr, "%s: %s: %s\n", progname, what, err.message);
        rc = CTL_FAILED;
        break;
    }
    msup_ctl_answer_free(&answer);
    return rc;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The request first; with --wait, the phases seen in the segment (opened
 * before the request, so that a wrong name is told before anything is
 * asked) until STOPPED or the segment is removed. */
static int cmd_shutdown(const char *socket_path, const char *name, bool wait, double timeout_s, unsigned answer_ms)
{
    if (!wait)
        return request(socket_path, "shutdown", "shutdown", answer_ms);
    msup_segment_t seg;
    if (open_segment(name, &seg) != CTL_OK)
        return CTL_NO_SUPERVISOR;
    int rc = request(socket_path, "shutdown", "shutdown", answer_ms);
    if (rc != CTL_OK) {
        msup_segment_close(&seg);
        return rc;
    }
    uint64_t deadline = msup_mono_ns() + (uint64_t)(timeout_s * 1e9);
    /* The answer comes just before the phase moves: RUNNING is not news. */
    uint32_t last_phase = MSUP_PHASE_RUNNING;
    for (;;) {
        if (msup_segment_replaced(&seg) || msup_ctlseg_replaced(&seg)) {
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
    if (open_segment(name, &seg) != CTL_OK)
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

/* The control socket: -s, else the rule of control_path.h applied to the
 * configuration (-c: its control_socket or pidfile), else to the segment
 * name alone. */
static bool resolve_socket(const msup_target_t *target, const char *socket_flag, const char *segment, char *out,
                           size_t n, mongosup_error_t *error)
{
    if (socket_flag != NULL) {
        snprintf(out, n, "%s", socket_flag);
        return true;
    }
    if (target->config_path == NULL)
        return msup_control_path_resolve(NULL, NULL, segment, out, n, NULL, error);
    mongosup_config_t *cfg = mongosup_config_load(target->config_path, target->environment, error);
    if (cfg == NULL)
        return false;
    bool ok = msup_control_path_resolve(cfg->supervisor.control_socket, cfg->supervisor.pidfile, segment, out, n,
                                        NULL, error);
    mongosup_config_destroy(&cfg);
    return ok;
}

int main(int argc, char **argv)
{
    /* Before anything opens a file: see stdio_guard.h. */
    if (!msup_stdio_guard())
        return 1;
    static const struct option longopts[] = {
        {"segment", required_argument, NULL, 'n'}, {"config", required_argument, NULL, 'c'},
        {"env", required_argument, NULL, 'e'},     {"socket", required_argument, NULL, 's'},
        {"answer-timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    msup_target_t target = {NULL, NULL, NULL};
    const char *socket_flag = NULL;
    double answer_s = 30;
    int opt;
    /* '+': stop at the command, whose own options follow it. */
    while ((opt = getopt_long(argc, argv, "+n:c:e:s:t:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n': target.segment = optarg; break;
        case 'c': target.config_path = optarg; break;
        case 'e': target.environment = optarg; break;
        case 's':
            if (optarg[0] != '/') {
                fprintf(stderr, "%s: control socket path '%s' must be absolute\n", progname, optarg);
                return CTL_USAGE;
            }
            socket_flag = optarg;
            break;
        case 't': {
            char *end;
            answer_s = strtod(optarg, &end);
            if (*end != '\0' || !(answer_s > 0 && answer_s <= 3600)) {
                fprintf(stderr, "%s: bad answer timeout '%s' (seconds, 0 < N <= 3600)\n", progname, optarg);
                return CTL_USAGE;
            }
            break;
        }
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
        if (nargs != 1 || strlen(args[0]) >= MSUP_NAME_MAX || strpbrk(args[0], " \t\r\n") != NULL)
            goto bad_args;
        cluster = args[0];
    } else if (strcmp(cmd, "reload") == 0 || strcmp(cmd, "workers") == 0 || strcmp(cmd, "ping") == 0 ||
               strcmp(cmd, "fleet") == 0) {
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

    bool on_socket = strcmp(cmd, "status") != 0 && strcmp(cmd, "workers") != 0;
    char name[MSUP_NAME_MAX] = "";
    char socket_path[MSUP_CONTROL_PATH_MAX];
    mongosup_error_t err;
    /* With -s, a request needs no segment (but --wait watches it). */
    /* A file we cannot read names no socket: for a request that is a
     * failure to ask (1), not an absent supervisor (3). */
    int unresolved = on_socket ? CTL_FAILED : CTL_NO_SUPERVISOR;
    if ((!on_socket || socket_flag == NULL || wait) && !msup_target_resolve(&target, name, sizeof name, &segment_owner, &err)) {
        fprintf(stderr, "%s: %s\n", progname, err.message);
        return err.code == MONGOSUP_E_INVALID_ARG ? CTL_USAGE : unresolved;
    }
    if (on_socket && !resolve_socket(&target, socket_flag, name, socket_path, sizeof socket_path, &err)) {
        fprintf(stderr, "%s: %s\n", progname, err.message);
        return err.code == MONGOSUP_E_INVALID_ARG ? CTL_USAGE : unresolved;
    }
    unsigned answer_ms = (unsigned)(answer_s * 1000);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(name, quiet);
    if (strcmp(cmd, "workers") == 0)
        return cmd_workers(name);
    if (strcmp(cmd, "shutdown") == 0)
        return cmd_shutdown(socket_path, name, wait, timeout_s, answer_ms);
    if (strcmp(cmd, "reconnect") == 0) {
        char line[MSUP_NAME_MAX + 16];
        snprintf(line, sizeof line, "reconnect %s", cluster);
        return request(socket_path, "reconnect", line, answer_ms);
    }
    return request(socket_path, cmd, cmd, answer_ms);

bad_args:
    fprintf(stderr, "%s: bad arguments for '%s'\n", progname, cmd);
    usage(stderr);
    return CTL_USAGE;
}
