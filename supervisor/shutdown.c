/* shutdown.c: drain with a deadline, escalate to stragglers, fold everything, summarise, unlink. */
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "health.h"
#include "log.h"
#include "reaper.h"
#include "shutdown.h"
#include "snapshot.h"

msup_escalate_t msup_escalate_parse(const char *name)
{
    if (name != NULL && strcmp(name, "kill") == 0)
        return MSUP_ESCALATE_KILL;
    if (name != NULL && strcmp(name, "none") == 0)
        return MSUP_ESCALATE_NONE;
    return MSUP_ESCALATE_TERM_KILL;
}

/* Signals every live worker.  A slot is worker-writable: its pid is
 * signalled only when that process still has the slot's start time and
 * maps this very stats segment (a forged slot names anything else). */
static unsigned signal_workers(msup_sup_t *sup, int sig)
{
    unsigned sent = 0;
    for (uint32_t i = 0; i < sup->seg.max_workers; i++) {
        msup_slot_t *slot = msup_segment_slot(&sup->seg, i);
        if (atomic_load_explicit(&slot->state, memory_order_acquire) != MSUP_SLOT_ACTIVE)
            continue;
        pid_t pid = slot->pid;
        uint64_t start_time = slot->start_time;
        if (pid <= 0 || pid == getpid())
            continue;
        if (!msup_proc_maps_segment(pid, start_time, &sup->seg)) {
            msup_log(LOG_WARNING, "slot %u names pid %d, which is not a worker of segment %s: not signalled", i,
                     (int)pid, sup->seg.name);
            continue;
        }
        if (kill(pid, sig) == 0) {
            sent++;
            msup_log(LOG_INFO, "sent SIG%s to worker pid %d (slot %u)", sigabbrev_np(sig), (int)pid, i);
        }
    }
    return sent;
}

/* Keeps the supervisor's periodic work going while waiting for every slot
 * to be reaped or the deadline.  Returns false when a second TERM/INT came. */
static bool wait_slots(msup_sup_t *sup, uint64_t deadline_mono_ns)
{
    for (;;) {
        msup_sup_tick(sup, true);
        unsigned exited;
        if (msup_reaper_live_slots(&sup->seg, &exited) == 0 && exited == 0)
            return true;
        uint64_t now = msup_mono_ns();
        if (now >= deadline_mono_ns)
            return true;
        uint64_t left_ms = (deadline_mono_ns - now) / 1000000u + 1;
        int sig = msup_sup_wait_signal(sup, left_ms < 50 ? (uint32_t)left_ms : 50u);
        if (sig == SIGTERM || sig == SIGINT) {
            msup_log(LOG_WARNING, "second SIG%s: stopping now", sigabbrev_np(sig));
            return false;
        }
        if (sig == SIGHUP)
            msup_log(LOG_NOTICE, "SIGHUP ignored: shutting down");
    }
}

static void final_summary(msup_sup_t *sup, unsigned left_attached)
{
    msup_snapshot_t snap;
    mongosup_error_t err;
    if (!msup_snapshot_take(&sup->seg, &snap, &err)) {
        msup_log(LOG_ERR, "final summary: %s", err.message);
        return;
    }
    for (uint32_t c = 0; c < snap.cluster_count; c++) {
        const msup_cluster_snap_t *cs = &snap.clusters[c];
        const msup_totals_t *t = &cs->totals;
        msup_log(LOG_NOTICE,
                 "final: cluster %.*s: %llu ops (%llu read, %llu write, %llu command), %llu failures, %llu checkouts, "
                 "%llu checkout timeouts, %llu pool rebuilds, %llu checks passed, %llu failed, %llu transitions, "
                 "last health %s",
                 (int)sizeof cs->name, cs->name, (unsigned long long)msup_totals_ops(t),
                 (unsigned long long)t->ops[MSUP_OP_READ],
                 (unsigned long long)t->ops[MSUP_OP_WRITE], (unsigned long long)t->ops[MSUP_OP_COMMAND],
                 (unsigned long long)msup_totals_failures(t), (unsigned long long)t->checkouts,
                 (unsigned long long)t->checkout_timeouts, (unsigned long long)t->reconnects,
                 (unsigned long long)cs->checks_passed, (unsigned long long)cs->checks_failed,
                 (unsigned long long)cs->transitions, msup_health_name(cs->health));
    }
    msup_log(LOG_NOTICE, "final: %llu worker slots reaped in all (%llu by this supervisor), %u workers left attached",
             (unsigned long long)snap.slots_reaped, (unsigned long long)sup->slots_reaped, left_attached);
    msup_snapshot_free(&snap);
}

/* Stops every checker without waiting on any one of them, then waits for
 * the busy ones together (each is bounded by its check timeout, plus the
 * watchdog margin for a call the driver does not bound), heartbeat going. */
static void stop_checkers(msup_sup_t *sup)
{
    uint32_t longest_ms = 0;
    for (size_t c = 0; c < sup->cfg->cluster_count; c++)
        if (sup->cfg->clusters[c].check_timeout_ms > longest_ms)
            longest_ms = sup->cfg->clusters[c].check_timeout_ms;
    for (uint32_t i = 0; i < MSUP_MAX_CLUSTERS; i++)
        msup_checker_stop(&sup->checkers[i], 0);
    uint64_t deadline = msup_mono_ns() + (uint64_t)(longest_ms + MSUP_WATCHDOG_MARGIN_MS) * 1000000u;
    while (msup_checkers_running() > 0 && msup_mono_ns() < deadline) {
        msup_sup_tick(sup, false);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (msup_checkers_running() > 0)
        msup_log(LOG_WARNING, "%u checker threads still stuck in a call (name resolution?); not waiting for them",
                 msup_checkers_running());
}

int msup_shutdown_run(msup_sup_t *sup, const char *reason)
{
    const msup_supervisor_cfg_t *sc = &sup->cfg->supervisor;
    msup_header_t *hdr = msup_segment_hdr(&sup->seg);
    uint64_t start = msup_mono_ns();
    uint64_t deadline = start + (uint64_t)sc->drain_timeout_ms * 1000000u;

    /* Phase DRAINING: the deadline is published before the phase, so a
     * worker that sees DRAINING always sees its deadline. */
    atomic_store_explicit(&hdr->drain_deadline_mono_ns, deadline, memory_order_relaxed);
    atomic_store_explicit(&hdr->drain_started_ns, msup_now_ns(), memory_order_relaxed);
    atomic_store_explicit(&hdr->phase, MSUP_PHASE_DRAINING, memory_order_release);
    unsigned live = msup_reaper_live_slots(&sup->seg, NULL);
    msup_log(LOG_NOTICE, "shutdown (%s): DRAINING %u workers, deadline in %u ms", reason, live, sc->drain_timeout_ms);
    if (sc->shutdown_signal > 0 && live > 0)
        msup_log(LOG_INFO, "sent SIG%s to %u workers", sigabbrev_np(sc->shutdown_signal),
                 signal_workers(sup, sc->shutdown_signal));
    bool patient = wait_slots(sup, deadline);

    /* Phase STOPPING: no more health checks; escalate to stragglers. */
    atomic_store_explicit(&hdr->phase, MSUP_PHASE_STOPPING, memory_order_release);
    stop_checkers(sup);
    live = msup_reaper_live_slots(&sup->seg, NULL);
    msup_escalate_t esc = msup_escalate_parse(sc->escalate);
    if (live > 0) {
        msup_log(LOG_WARNING, "STOPPING: %u workers still attached after %llu ms", live,
                 (unsigned long long)((msup_mono_ns() - start) / 1000000u));
        if (esc == MSUP_ESCALATE_TERM_KILL && patient) {
            signal_workers(sup, SIGTERM);
            patient = wait_slots(sup, msup_mono_ns() + (uint64_t)sc->escalate_grace_ms * 1000000u);
        }
        if (esc != MSUP_ESCALATE_NONE && msup_reaper_live_slots(&sup->seg, NULL) > 0) {
            signal_workers(sup, SIGKILL);
            /* A killed process vanishes quickly; give the reaper a moment. */
            wait_slots(sup, msup_mono_ns() + 1000000000u);
        }
        live = msup_reaper_live_slots(&sup->seg, NULL);
        if (live > 0)
            msup_log(LOG_WARNING, "leaving %u workers attached (escalate = %s)", live,
                     sc->escalate ? sc->escalate : "term-kill");
    }
    msup_sup_tick(sup, true);
    live = msup_reaper_live_slots(&sup->seg, NULL);
    final_summary(sup, live);
    atomic_store_explicit(&hdr->phase, MSUP_PHASE_STOPPED, memory_order_release);
    if (live > 0 && !sc->keep_segment) {
        /* Unlinking would hide those workers from the next supervisor: it
         * adopts this segment instead, and reaps them when they go. */
        msup_log(LOG_WARNING, "segment %s kept: %u workers still attached", sup->seg.name, live);
    } else if (!sc->keep_segment && (msup_segment_replaced(&sup->seg) || msup_ctlseg_replaced(&sup->seg))) {
        /* Unlinking by name would remove somebody else's segment. */
        msup_log(LOG_WARNING, "segment %s not removed: the name now refers to another segment", sup->seg.name);
    } else if (!sc->keep_segment) {
        mongosup_error_t err;
        if (msup_segment_unlink(sup->seg.name, &err))
            msup_log(LOG_NOTICE, "segment %s removed", sup->seg.name);
        else
            msup_log(LOG_ERR, "%s", err.message);
    }
    msup_log(LOG_NOTICE, "STOPPED after %llu ms", (unsigned long long)((msup_mono_ns() - start) / 1000000u));
    return 0;
}
