/* main.c: mongosupd's command line, start-up (segment, single instance, control socket), signals and main loop. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "../lib/config.h" /* not autoconf's config.h, which -I. finds first */
#include "control.h"
#include "control_path.h"
#include "error.h"
#include "../fleet/fleet.h"
#include "health.h"
#include "hostcap.h"
#include "log.h"
#include "mongosup.h"
#include "pidfile.h"
#include "redact.h"
#include "reaper.h"
#include "reconnect.h"
#include "reload.h"
#include "shutdown.h"
#include "slowlog_drain.h"
#include "stdio_guard.h"
#include "supervisor.h"

/* The /metrics endpoint (supervisor/metrics.c) is compiled in by local.mk. */
#ifdef MSUP_WITH_METRICS
#include "metrics.h"
#endif

#define PROG "mongosupd"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " -c FILE [-e ENV] [--check-config] [--pidfile PATH] [-v]\n"
            "  -c, --config FILE    configuration file (libconfig)\n"
            "  -e, --environment ENV  environment (default: $MONGOSUP_ENV, then the file's default_environment)\n"
            "  -t, --check-config   validate FILE, print the resolved configuration (redacted), exit 0 or 1\n"
            "  -p, --pidfile PATH   pidfile held with a lock while running (overrides the file)\n"
            "  -v, --verbose        log at debug level\n"
            "  -h, --help           this help\n"
            "  -V, --version        print the version\n"
            "Runs in the foreground. Signals: HUP reloads, TERM/INT drain and stop (twice: stop now).\n"
            "mongosupctl reaches it on its control socket (supervisor.control_socket).\n");
}

/* One clear line and a non-zero exit, as varnishd and haproxy do. */
static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, PROG ": %s%s%s%s (try '" PROG " -h')\n", what, arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
    return 2;
}

typedef struct options {
    const char *config;
    const char *env;
    const char *pidfile;
    bool check_config;
    bool verbose;
} options_t;

/* Returns -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, options_t *o)
{
    static const struct option longs[] = {
        {"config", required_argument, NULL, 'c'}, {"env", required_argument, NULL, 'e'},
        {"environment", required_argument, NULL, 'e'},
        {"check-config", no_argument, NULL, 't'}, {"pidfile", required_argument, NULL, 'p'},
        {"verbose", no_argument, NULL, 'v'},      {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":c:e:tp:vhV", longs, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'e': o->env = optarg; break;
        case 't': o->check_config = true; break;
        case 'p': o->pidfile = optarg; break;
        case 'v': o->verbose = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf(PROG " %s\n", mongosup_version()); return 0;
        case ':': return usage_error("missing argument for option", argv[optind - 1]);
        default:
            if (strncmp(argv[optind - 1], "--", 2) == 0) {
                /* getopt_long sets optopt to the option's value when it
                 * was given an argument it does not take. */
                return usage_error(optopt != 0 ? "option takes no argument" : "unknown or ambiguous option",
                                   argv[optind - 1]);
            }
            if (optopt != 0) {
                char opt[3] = {'-', (char)optopt, '\0'};
                return usage_error("unknown option", opt);
            }
            return usage_error("unknown option", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument", argv[optind]);
    if (o->config == NULL)
        return usage_error("a configuration file is required: -c FILE", NULL);
    if (o->config[0] == '\0')
        return usage_error("empty argument for option", "-c");
    if (o->pidfile != NULL && o->pidfile[0] == '\0')
        return usage_error("empty argument for option", "-p");
    if (o->env != NULL && o->env[0] == '\0')
        return usage_error("empty argument for option", "-e");
    return -1;
}

static void heartbeat(msup_sup_t *sup)
{
    msup_header_t *h = msup_segment_hdr(&sup->seg);
    atomic_store_explicit(&h->heartbeat_ns, msup_now_ns(), memory_order_relaxed);
    atomic_store_explicit(&h->heartbeat_mono_ns, msup_mono_ns(), memory_order_release);
}

/* Once a second: is the segment still the one we run, and still sane?  A
 * corrupted header is reported (once) but not acted on: every table we
 * touch was located at open time, and workers stay served.  A removed or
 * replaced segment ends the main loop (see run()). */
static void check_segment(msup_sup_t *sup, uint64_t now)
{
    if (now < sup->next_integrity_mono_ns)
        return;
    sup->next_integrity_mono_ns = now + 1000000000u;
    mongosup_error_t err;
    const msup_ctlseg_t *ctl = msup_segment_control(&sup->seg);
    bool valid = msup_layout_validate(ctl->base, ctl->size, &err) &&
                 msup_layout_validate(sup->seg.base, sup->seg.size, &err);
    if (!valid && !sup->segment_invalid)
        msup_log(LOG_ERR, "segment %s: %s; still supervising with the geometry read at start (stop the workers "
                          "and mongosupd and remove the segment to recreate it)", sup->seg.name, err.message);
    else if (valid && sup->segment_invalid)
        msup_log(LOG_NOTICE, "segment %s: its layout is valid again", sup->seg.name);
    sup->segment_invalid = !valid;
    if (!sup->segment_gone && (msup_ctlseg_replaced(&sup->seg) || msup_segment_replaced(&sup->seg))) {
        sup->segment_gone = true;
        msup_log(LOG_ERR, "segment %s was removed or replaced under mongosupd", sup->seg.name);
    }
}

void msup_sup_tick(msup_sup_t *sup, bool reap_now)
{
    const msup_supervisor_cfg_t *sc = &sup->cfg->supervisor;
    uint64_t now = msup_mono_ns();
    check_segment(sup, now);
    if (now >= sup->next_heartbeat_mono_ns) {
        heartbeat(sup);
        uint32_t every = sc->heartbeat_interval_ms && sc->heartbeat_interval_ms < 1000 ? sc->heartbeat_interval_ms : 1000;
        sup->next_heartbeat_mono_ns = now + (uint64_t)every * 1000000u;
    }
    for (uint32_t i = 0; i < MSUP_MAX_CLUSTERS; i++) {
        if (sup->checkers[i] != NULL)
            msup_checker_watchdog(sup->checkers[i], now);
    }
    if (atomic_load_explicit(&msup_segment_hdr(&sup->seg)->phase, memory_order_relaxed) == MSUP_PHASE_RUNNING)
        msup_reconnect_tick(sup, now);
    if (reap_now || now >= sup->next_reap_mono_ns) {
        msup_reaper_run(sup);
        uint32_t every = sc->reap_interval_ms && sc->reap_interval_ms < 1000 ? sc->reap_interval_ms : 1000;
        sup->next_reap_mono_ns = now + (uint64_t)every * 1000000u;
    }
    msup_slowlog_drain(sup, now);
}

int msup_sup_wait_signal(msup_sup_t *sup, uint32_t timeout_ms)
{
    struct pollfd fds[1 + MSUP_CONTROL_POLLFDS];
    fds[0] = (struct pollfd){.fd = sup->signal_fd, .events = POLLIN};
    size_t n = msup_control_pollfds(sup->control, fds + 1, &timeout_ms);
    if (poll(fds, 1 + n, (int)timeout_ms) < 0 && errno != EINTR)
        msup_log(LOG_ERR, "poll: %s", strerror(errno));
    /* Deadlines are enforced even when nothing was ready. */
    msup_control_serve(sup->control, fds + 1, n, sup);
    struct signalfd_siginfo si;
    if ((fds[0].revents & POLLIN) && read(sup->signal_fd, &si, sizeof si) == (ssize_t)sizeof si)
        return (int)si.ssi_signo;
    return 0;
}

/* The segments, one supervisor per segment: the control segment's OFD lock
 * (taken before anything is written; the kernel drops it when we die),
 * then the stats segment.  Publishes our start time and heartbeat. */
static bool claim_segment(msup_sup_t *sup, const msup_geometry_t *geo, const char *name, mongosup_error_t *error)
{
    msup_ctlseg_t *ctl = msup_ctlseg_claim(name, geo, &sup->segment_created, error);
    if (ctl == NULL)
        return false;
    bool stats_created;
    if (!msup_segment_open_or_create(name, geo, &sup->seg, &stats_created, error)) {
        msup_ctlseg_close(ctl);
        return false;
    }
    msup_segment_set_control(&sup->seg, ctl);
    msup_header_t *h = ctl->hdr;
    atomic_store_explicit(&h->supervisor_started_ns, msup_now_ns(), memory_order_relaxed);
    heartbeat(sup);
    if (!sup->segment_created) {
        uint64_t n = atomic_fetch_add_explicit(&h->supervisor_restarts, 1, memory_order_relaxed) + 1;
        msup_log(LOG_NOTICE, "adopted segment %s from a previous supervisor; restart #%llu", sup->seg.name,
                 (unsigned long long)n);
    }
    return true;
}

static int run(msup_sup_t *sup)
{
    const char *reason = NULL;
    while (reason == NULL) {
        msup_sup_tick(sup, false);
        if (sup->segment_gone) {
            /* Workers that attach now find (or create) the new object; a
             * service manager restarts us (Restart=on-failure) onto it.
             * No drain: the workers we could reach are not those. */
            msup_log(LOG_ERR, "exiting with status 1 so that mongosupd starts again on the current segment");
            return 1;
        }
        uint32_t hb = sup->cfg->supervisor.heartbeat_interval_ms;
        switch (msup_sup_wait_signal(sup, hb && hb < 100 ? hb : 100)) {
        case SIGHUP: msup_reload(sup, "SIGHUP", NULL); break;
        case SIGTERM: reason = "SIGTERM"; break;
        case SIGINT: reason = "SIGINT"; break;
        default: break;
        }
        if (reason == NULL)
            reason = sup->shutdown_request; /* the control socket's `shutdown` */
    }
    return msup_shutdown_run(sup, reason);
}

/* A failure before the main loop: one plain line on stderr (as for a bad
 * command line or file), and the same in syslog when that is the log. */
static int startup_failure(const char *message)
{
    char clean[sizeof ((mongosup_error_t *)0)->message];
    msup_redact_text(message, clean, sizeof clean);
    if (msup_log_to_syslog())
        msup_log(LOG_ERR, "%s", clean);
    fprintf(stderr, PROG ": %s\n", clean);
    return 1;
}

int main(int argc, char **argv)
{
    /* Before anything opens a file: see stdio_guard.h. */
    if (!msup_stdio_guard())
        return 1;
    options_t o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;

    /* Signals are taken synchronously by the main loop (a signalfd): block
     * them first, before any thread exists so that every thread inherits the
     * mask, and so that a SIGHUP or SIGTERM during start-up waits for the
     * loop instead of killing us (SIGHUP's default action) with the pidfile
     * and the segment half set up. */
    msup_sup_t sup = {.config_path = o.config, .environment = o.env, .verbose = o.verbose, .signal_fd = -1};
    sigemptyset(&sup.signals);
    sigaddset(&sup.signals, SIGHUP);
    sigaddset(&sup.signals, SIGTERM);
    sigaddset(&sup.signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sup.signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Parsing a URI makes the driver print its own complaint on stderr,
     * in its own format; the loader's error already says it, in one line. */
    mongoc_log_set_handler(NULL, NULL);
    mongosup_error_t err;
    mongosup_config_t *cfg = mongosup_config_load(o.config, o.env, &err);
    if (cfg == NULL)
        return startup_failure(err.message);
    /* The file's pidfile (not --pidfile): mongosupctl -c FILE finds the
     * same path. */
    char control_path[MSUP_CONTROL_PATH_MAX];
    bool control_dir_creatable = false;
    if (!msup_control_path_resolve(cfg->supervisor.control_socket, cfg->supervisor.pidfile, cfg->segment_name,
                                   control_path, sizeof control_path, &control_dir_creatable, &err)) {
        mongosup_config_destroy(&cfg);
        return startup_failure(err.message);
    }
    if (o.check_config) {
        msup_config_dump(cfg, stdout);
        printf("# control socket: %s\n", control_path);
        mongosup_config_destroy(&cfg);
        return fflush(stdout) == 0 ? 0 : 1;
    }

    const msup_supervisor_cfg_t *sc = &cfg->supervisor;
    msup_log_open(sc->log != NULL && strcmp(sc->log, "syslog") == 0, o.verbose ? LOG_DEBUG : sc->log_level);

    msup_pidfile_t pidfile = {.fd = -1};
    const char *pidpath = o.pidfile ? o.pidfile : sc->pidfile;
    if (pidpath != NULL && pidpath[0] != '\0' && !msup_pidfile_acquire(&pidfile, pidpath, &err)) {
        rc = startup_failure(err.message);
        mongosup_config_destroy(&cfg);
        msup_log_close();
        return rc;
    }

    mongoc_init();
    msup_log_route_driver();
    rc = 1;
    /* The main loop polls the control socket and these signals together. */
    sup.signal_fd = signalfd(-1, &sup.signals, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sup.signal_fd < 0) {
        msup_fail_errno(&err, MONGOSUP_E_SYSTEM, "signalfd");
        startup_failure(err.message);
        goto out;
    }

    msup_geometry_t geo = msup_geometry_of(cfg);
    if (!claim_segment(&sup, &geo, cfg->segment_name, &err)) {
        startup_failure(err.message);
        goto out;
    }
    msup_header_t *hdr = msup_segment_hdr(&sup.seg);
    uint32_t phase = atomic_load_explicit(&hdr->phase, memory_order_acquire);
    if (phase == MSUP_PHASE_DRAINING || phase == MSUP_PHASE_STOPPING)
        msup_log(LOG_WARNING, "the previous supervisor died while shutting down; running again");
    /* The control socket after the claim: a second mongosupd on this
     * segment is told so by the claim, and a socket nobody answers on is
     * truly stale.  Before the checker threads (bind runs under a umask). */
    bool ready = msup_control_open(control_path, control_dir_creatable, cfg->segment_group, &sup.control, &err);
    if (!ready)
        startup_failure(err.message);
    /* Rows first (config_generation bumped), then RUNNING: workers that see
     * RUNNING find their clusters. */
    if (!ready || !msup_config_apply(&sup, cfg, &err)) {
        atomic_store_explicit(&hdr->supervisor_pid, 0, memory_order_release);
        msup_segment_close(&sup.seg);
        goto out;
    }
    cfg = NULL; /* owned by sup now */
    atomic_store_explicit(&hdr->drain_deadline_mono_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&hdr->phase, MSUP_PHASE_RUNNING, memory_order_release);
    msup_log(LOG_NOTICE,
             "mongosupd %s running: environment %s, segment %s (%s, %u workers x %u clusters), %zu clusters, "
             "control socket %s",
             mongosup_version(), sup.cfg->environment, sup.seg.name, sup.segment_created ? "created" : "adopted",
             sup.seg.max_workers, sup.seg.max_clusters, sup.cfg->cluster_count, control_path);
    msup_reaper_run(&sup); /* what died while no supervisor ran */
    /* Its own thread: etcd trouble never stalls the checks or the heartbeat. */
    sup.fleet = msup_fleet_start(&sup.seg, sup.cfg, msup_hostcap_apply, &err);
    if (sup.fleet == NULL && err.code != MONGOSUP_OK)
        msup_log(LOG_ERR, "%s: the fleet's clusters keep their floors", err.message);

#ifdef MSUP_WITH_METRICS
    bool metrics = false;
    if (sup.fleet != NULL)
        msup_metrics_set_extra(msup_fleet_prometheus, sup.fleet);
    if (sup.cfg->supervisor.metrics_listen != NULL && sup.cfg->supervisor.metrics_listen[0] != '\0') {
        metrics = msup_metrics_start(sup.cfg->supervisor.metrics_listen, &sup.seg, &err);
        if (!metrics)
            msup_log(LOG_ERR, "metrics: %s", err.message);
        else
            msup_log(LOG_NOTICE, "metrics: serving GET /metrics on %s", sup.cfg->supervisor.metrics_listen);
    }
#endif
    rc = run(&sup);
    msup_control_close(&sup.control); /* STOPPED: clients find no socket rather than no answer */
#ifdef MSUP_WITH_METRICS
    if (metrics)
        msup_metrics_stop();
#endif
    /* After the endpoint, which renders the fleet.  A drain that left no
     * worker attached: nothing holds connections, so the room can go back
     * to the other hosts now rather than at the lease's expiry. */
    msup_fleet_stop(&sup.fleet, atomic_load_explicit(&msup_segment_hdr(&sup.seg)->phase, memory_order_acquire) ==
                                        MSUP_PHASE_STOPPED &&
                                    msup_reaper_live_slots(&sup.seg, NULL) == 0);
    for (uint32_t i = 0; i < MSUP_MAX_CLUSTERS; i++)
        msup_checker_stop(&sup.checkers[i], 0); /* shutdown stopped them: a no-op */
    msup_segment_close(&sup.seg);
out:
    msup_control_close(&sup.control);
    if (sup.signal_fd >= 0)
        close(sup.signal_fd);
    mongosup_config_destroy(&sup.cfg);
    mongosup_config_destroy(&cfg);
    msup_pidfile_release(&pidfile);
    /* A checker thread still inside the driver (a lookup that never ends)
     * must not see it torn down: the exit takes it instead. */
    if (msup_checkers_running() == 0)
        mongoc_cleanup();
    msup_log_close();
    return rc;
}
