/* control.c: the control socket: safe creation, SO_PEERCRED checks, deadlines, and the one-line protocol of docs/operations.md. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "control_path.h"
#include "../fleet/fleet.h"
#include "error.h"
#include "log.h"
#include "reconnect.h"
#include "reload.h"
#include "snapshot.h"

/* An answer: a status line per cluster at most, plus the verdict; `fleet`
 * answers at most FLEET_LINES lines (fleet/fleet.h), plus the verdict. */
#define FLEET_LINES (2 * MSUP_MAX_CLUSTERS + 2)
#define ANSWER_MAX ((FLEET_LINES + 1) * 192)
/* Connections accepted per serve pass: the main loop's other work waits
 * for no flood. */
#define ACCEPTS_PER_PASS 64

typedef enum { PEER_NONE, PEER_READER, PEER_ADMIN } peer_role_t;

typedef struct conn {
    int fd;                  /* -1: free */
    uint64_t accepted_mono_ns;
    uint64_t deadline_mono_ns;
    struct ucred cred;
    peer_role_t role;
    bool answering;          /* request taken: writing the answer, then close */
    size_t in_len;
    char in[MSUP_CONTROL_LINE_MAX];
    size_t out_len, out_off;
    char out[ANSWER_MAX];
} conn_t;

struct msup_control {
    int listen_fd;
    char path[MSUP_CONTROL_PATH_MAX];
    dev_t dev;               /* of our socket file: unlinked at close only if the path still names it */
    ino_t ino;
    gid_t group;
    conn_t conns[MSUP_CONTROL_MAX_CONNS];
    int poll_conn[MSUP_CONTROL_POLLFDS]; /* pollfd index -> conn index (-1: the listener) */
    size_t poll_n;
    char shutdown_reason[96];
};

/* ------------------------------------------------------------------ */
/* Creation                                                             */

/* The directory holds the only name by which clients find us: whoever
 * may write it may put another socket there. */
static bool check_dir(const char *path, bool creatable, mongosup_error_t *error)
{
    char dir[MSUP_CONTROL_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        return msup_fail(error, MONGOSUP_E_CONFIG, "control socket %s: the path must be absolute", path);
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    uid_t euid = geteuid();
    struct stat st;
    if (stat(dir, &st) != 0 && errno == ENOENT && creatable) {
        if (mkdir(dir, euid == 0 ? 0755 : 0700) != 0 && errno != EEXIST)
            return msup_fail_errno(error, MONGOSUP_E_SYSTEM, "control socket directory %s: mkdir", dir);
        if (chmod(dir, euid == 0 ? 0755 : 0700) != 0 && errno != EPERM) /* mkdir applied the umask */
            return msup_fail_errno(error, MONGOSUP_E_SYSTEM, "control socket directory %s: chmod", dir);
    }
    if (stat(dir, &st) != 0)
        return msup_fail_errno(error, MONGOSUP_E_SYSTEM, "control socket directory %s", dir);
    if (!S_ISDIR(st.st_mode))
        return msup_fail(error, MONGOSUP_E_CONFIG, "control socket directory %s is not a directory", dir);
    if (st.st_uid != euid && st.st_uid != 0)
        return msup_fail(error, MONGOSUP_E_CONFIG,
                         "control socket directory %s is owned by uid %u, not by uid %u or root: refused", dir,
                         (unsigned)st.st_uid, (unsigned)euid);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return msup_fail(error, MONGOSUP_E_CONFIG,
                         "control socket directory %s is writable by group or others (mode %04o): anyone who can "
                         "write it could replace the socket; refused",
                         dir, (unsigned)(st.st_mode & 07777));
    return true;
}

static void fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    snprintf(sa->sun_path, sizeof sa->sun_path, "%s", path);
}

/* What is at path already: nothing, or a stale socket of ours (removed). */
static bool clear_path(const char *path, mongosup_error_t *error)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return true;
        return msup_fail_errno(error, MONGOSUP_E_SYSTEM, "control socket %s", path);
    }
    if (!S_ISSOCK(st.st_mode))
        return msup_fail(error, MONGOSUP_E_CONFIG,
                         "control socket %s exists and is not a socket: refusing to start (remove it, or set "
                         "supervisor.control_socket)",
                         path);
    if (st.st_uid != geteuid())
        return msup_fail(error, MONGOSUP_E_CONFIG,
                         "control socket %s exists and is owned by uid %u, not by uid %u: refusing to start", path,
                         (unsigned)st.st_uid, (unsigned)geteuid());
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return msup_fail_errno(error, MONGOSUP_E_SYSTEM, "control socket: socket");
    struct sockaddr_un sa;
    fill_addr(&sa, path);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int err = errno;
    close(fd);
    if (rc == 0)
        return msup_fail(error, MONGOSUP_E_CONFIG,
                         "another process answers on the control socket %s (another mongosupd?): refusing to start",
                         path);
    if (err != ECONNREFUSED) {
        errno = err;
        return msup_fail_errno(error, MONGOSUP_E_SYSTEM, "control socket %s: probing the existing socket", path);
    }
    if (unlink(path) != 0 && errno != ENOENT)
        return msup_fail_errno(error, MONGOSUP_E_SYSTEM, "control socket %s: removing the stale socket", path);
    msup_log(LOG_NOTICE, "control socket %s: removed a stale socket nobody answered on", path);
    return true;
}

bool msup_control_open(const char *path, bool creatable_dir, gid_t group, msup_control_t **out,
                       mongosup_error_t *error)
{
    *out = NULL;
    if (strlen(path) >= MSUP_CONTROL_PATH_MAX)
        return msup_fail(error, MONGOSUP_E_CONFIG, "control socket %s: longer than %d bytes", path,
                         MSUP_CONTROL_PATH_MAX - 1);
    if (!check_dir(path, creatable_dir, error) || !clear_path(path, error))
        return false;
    msup_control_t *ctl = calloc(1, sizeof *ctl);
    if (ctl == NULL)
        return msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
    snprintf(ctl->path, sizeof ctl->path, "%s", path);
    ctl->group = group;
    for (int i = 0; i < MSUP_CONTROL_MAX_CONNS; i++)
        ctl->conns[i].fd = -1;
    ctl->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ctl->listen_fd < 0) {
        free(ctl);
        return msup_fail_errno(error, MONGOSUP_E_SYSTEM, "control socket: socket");
    }
    struct sockaddr_un sa;
    fill_addr(&sa, path);
    /* 0600 from the first instant: chmod after bind would leave a window.
     * The umask is process-wide: mongosupd calls this before its threads. */
    mode_t old = umask(0177);
    int rc = bind(ctl->listen_fd, (struct sockaddr *)&sa, sizeof sa);
    int err = errno;
    umask(old);
    if (rc != 0) {
        close(ctl->listen_fd);
        free(ctl);
        errno = err;
        return msup_fail_errno(error, MONGOSUP_E_SYSTEM, "control socket %s: bind", path);
    }
    struct stat st;
    bool ok = listen(ctl->listen_fd, 128) == 0 || !msup_fail_errno(error, MONGOSUP_E_SYSTEM, "control socket %s: listen", path);
    /* The directory is ours alone: the path still names our socket. */
    if (ok && group != (gid_t)-1)
        ok = (chown(path, (uid_t)-1, group) == 0 && chmod(path, 0660) == 0) ||
             !msup_fail_errno(error, MONGOSUP_E_SYSTEM, "control socket %s: giving it to group %u", path,
                              (unsigned)group);
    if (ok)
        ok = lstat(path, &st) == 0 || !msup_fail_errno(error, MONGOSUP_E_SYSTEM, "control socket %s", path);
    if (!ok) {
        close(ctl->listen_fd);
        unlink(path);
        free(ctl);
        return false;
    }
    ctl->dev = st.st_dev;
    ctl->ino = st.st_ino;
    *out = ctl;
    return true;
}

static void conn_close(conn_t *c)
{
    if (c->fd < 0)
        return;
    /* Unread input would make the kernel reset the connection and the
     * client could lose our answer: take what is left first. */
    char sink[512];
    for (int i = 0; i < 8 && read(c->fd, sink, sizeof sink) > 0; i++)
        ;
    close(c->fd);
    c->fd = -1;
}

void msup_control_close(msup_control_t **ctl)
{
    if (ctl == NULL || *ctl == NULL)
        return;
    msup_control_t *c = *ctl;
    for (int i = 0; i < MSUP_CONTROL_MAX_CONNS; i++)
        conn_close(&c->conns[i]);
    close(c->listen_fd);
    struct stat st;
    if (lstat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
        unlink(c->path);
    free(c);
    *ctl = NULL;
}

/* ------------------------------------------------------------------ */
/* Answers                                                              */

/* Appends one answer line; control characters (from a file name in a
 * loader message, say) are escaped so that a line stays a line. */
static void reply(conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(conn_t *c, const char *fmt, ...)
{
    char raw[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    size_t room = sizeof c->out - c->out_len;
    for (const unsigned char *p = (const unsigned char *)raw; *p != '\0' && room > 5; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            int k = snprintf(c->out + c->out_len, room, "\\x%02x", *p);
            c->out_len += (size_t)k;
            room -= (size_t)k;
        } else {
            c->out[c->out_len++] = (char)*p;
            room--;
        }
    }
    if (room > 0)
        c->out[c->out_len++] = '\n';
}

static bool flush_answer(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return false;
        c->out_off = c->out_len; /* the client went away: nothing more to send */
    }
    return true;
}

/* An answer that ends the connection at once (refusals, overload). */
static void answer_and_close(conn_t *c)
{
    c->answering = true;
    flush_answer(c);
    conn_close(c);
}

/* ------------------------------------------------------------------ */
/* Commands                                                             */

static uint32_t phase_of(const msup_sup_t *sup)
{
    return atomic_load_explicit(&msup_segment_hdr(&sup->seg)->phase, memory_order_acquire);
}

static uint64_t generation_of(const msup_sup_t *sup)
{
    return atomic_load_explicit(&msup_segment_hdr(&sup->seg)->config_generation, memory_order_acquire);
}

/* A supervisor that is shutting down takes no more changes. */
static bool running(const msup_sup_t *sup)
{
    return phase_of(sup) == MSUP_PHASE_RUNNING && sup->shutdown_request == NULL;
}

static bool refuse_unless_running(conn_t *c, const msup_sup_t *sup, const char *what)
{
    if (running(sup))
        return false;
    reply(c, "error shutting down (phase %s): %s refused", msup_phase_name(phase_of(sup)), what);
    return true;
}

static void cmd_ping(msup_control_t *ctl, conn_t *c, msup_sup_t *sup, const char *arg)
{
    (void)ctl, (void)arg;
    reply(c, "ok mongosupd %s pid %d phase %s generation %llu", mongosup_version(), (int)getpid(),
          msup_phase_name(phase_of(sup)), (unsigned long long)generation_of(sup));
}

static void cmd_status(msup_control_t *ctl, conn_t *c, msup_sup_t *sup, const char *arg)
{
    (void)ctl, (void)arg;
    unsigned n = 0;
    for (uint32_t i = 0; i < sup->seg.max_clusters; i++) {
        const msup_cluster_row_t *row = msup_segment_row(&sup->seg, i);
        if (atomic_load_explicit(&row->row_state, memory_order_acquire) != MSUP_ROW_ACTIVE)
            continue;
        reply(c, "cluster %.*s %s reconnect-generation %llu", (int)sizeof row->name, row->name,
              msup_health_name(atomic_load_explicit(&row->health, memory_order_acquire)),
              (unsigned long long)atomic_load_explicit(&row->reconnect_generation, memory_order_acquire));
        n++;
    }
    reply(c, "ok %u clusters, phase %s, generation %llu", n, msup_phase_name(phase_of(sup)),
          (unsigned long long)generation_of(sup));
}

static void emit_fleet_line(void *arg, const char *line)
{
    reply(arg, "%s", line);
}

static void cmd_fleet(msup_control_t *ctl, conn_t *c, msup_sup_t *sup, const char *arg)
{
    (void)ctl, (void)arg;
    if (sup->fleet == NULL) {
        reply(c, "error no fleet: no fleet group, or no cluster with fleet_max_connections");
        return;
    }
    msup_fleet_describe(sup->fleet, emit_fleet_line, c, FLEET_LINES);
    reply(c, "ok fleet of host %s", sup->cfg->fleet.host_id);
}

static void cmd_reload(msup_control_t *ctl, conn_t *c, msup_sup_t *sup, const char *arg)
{
    (void)ctl, (void)arg;
    if (refuse_unless_running(c, sup, "reload"))
        return;
    char cause[96];
    snprintf(cause, sizeof cause, "control socket (uid %u, pid %d)", (unsigned)c->cred.uid, (int)c->cred.pid);
    mongosup_error_t err;
    if (msup_reload(sup, cause, &err))
        reply(c, "ok generation %llu", (unsigned long long)generation_of(sup));
    else
        reply(c, "error %s", err.message);
}

static void cmd_shutdown(msup_control_t *ctl, conn_t *c, msup_sup_t *sup, const char *arg)
{
    (void)arg;
    if (!running(sup)) {
        /* Not an error for the caller: what it asked for is under way. */
        reply(c, "ok already shutting down (phase %s)", msup_phase_name(phase_of(sup)));
        return;
    }
    snprintf(ctl->shutdown_reason, sizeof ctl->shutdown_reason, "mongosupctl shutdown (uid %u, pid %d)",
             (unsigned)c->cred.uid, (int)c->cred.pid);
    sup->shutdown_request = ctl->shutdown_reason;
    reply(c, "ok DRAINING (drain_timeout_ms %u)", sup->cfg->supervisor.drain_timeout_ms);
}

static void cmd_reconnect(msup_control_t *ctl, conn_t *c, msup_sup_t *sup, const char *arg)
{
    (void)ctl;
    if (refuse_unless_running(c, sup, "reconnect"))
        return;
    uint64_t gen = 0;
    bool deferred = false;
    mongosup_error_t err;
    if (!msup_reconnect_request(sup, arg, &gen, &deferred, &err))
        reply(c, "error %s", err.message);
    else if (deferred)
        reply(c, "ok cluster %s: reconnect deferred by reconnect_min_interval_ms (generation still %llu)", arg,
              (unsigned long long)gen);
    else
        reply(c, "ok cluster %s: generation %llu", arg, (unsigned long long)gen);
}

typedef struct command {
    const char *name;
    peer_role_t needs;
    bool takes_arg;
    void (*run)(msup_control_t *ctl, conn_t *c, msup_sup_t *sup, const char *arg);
} command_t;

static const command_t commands[] = {
    {"ping", PEER_READER, false, cmd_ping},        {"status", PEER_READER, false, cmd_status},
    {"fleet", PEER_READER, false, cmd_fleet},
    {"reload", PEER_ADMIN, false, cmd_reload},     {"shutdown", PEER_ADMIN, false, cmd_shutdown},
    {"reconnect", PEER_ADMIN, true, cmd_reconnect},
};

static void run_request(msup_control_t *ctl, conn_t *c, msup_sup_t *sup)
{
    c->answering = true;
    char *line = c->in;
    line[strcspn(line, "\r\n")] = '\0';
    char *arg = strchr(line, ' ');
    if (arg != NULL) {
        *arg++ = '\0';
        arg += strspn(arg, " ");
        arg[strcspn(arg, " ")] = '\0'; /* one argument at most */
    }
    const command_t *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, line) == 0)
            cmd = &commands[i];
    if (cmd == NULL) {
        reply(c, "error unknown command '%.64s' (commands: ping, status, fleet, reload, shutdown, reconnect CLUSTER)", line);
        return;
    }
    if (cmd->takes_arg != (arg != NULL && *arg != '\0')) {
        reply(c, cmd->takes_arg ? "error %s needs an argument" : "error %s takes no argument", cmd->name);
        return;
    }
    if (c->role < cmd->needs) {
        msup_log(LOG_WARNING, "control: '%s' refused to uid %u (pid %d): not mongosupd's uid or root", cmd->name,
                 (unsigned)c->cred.uid, (int)c->cred.pid);
        reply(c, "error refused: %s needs uid %u or root, not uid %u", cmd->name, (unsigned)geteuid(),
              (unsigned)c->cred.uid);
        return;
    }
    if (cmd->needs == PEER_ADMIN)
        msup_log(LOG_NOTICE, "control: '%s%s%s' from uid %u (pid %d)", cmd->name, arg ? " " : "", arg ? arg : "",
                 (unsigned)c->cred.uid, (int)c->cred.pid);
    cmd->run(ctl, c, sup, arg);
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */

static bool in_group(int fd, gid_t primary, gid_t group)
{
    if (group == (gid_t)-1)
        return false;
    if (primary == group)
        return true;
    gid_t groups[256];
    socklen_t len = sizeof groups;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0)
        return false; /* more than 256 groups, or an old kernel: the primary group only */
    for (size_t i = 0; i < len / sizeof groups[0]; i++)
        if (groups[i] == group)
            return true;
    return false;
}

/* The slot for a new connection: a free one, or the oldest that has not
 * sent its request (idle or slow clients never lock out an operator). */
static conn_t *take_slot(msup_control_t *ctl)
{
    conn_t *oldest = NULL;
    for (int i = 0; i < MSUP_CONTROL_MAX_CONNS; i++) {
        conn_t *c = &ctl->conns[i];
        if (c->fd < 0)
            return c;
        if (!c->answering && (oldest == NULL || c->accepted_mono_ns < oldest->accepted_mono_ns))
            oldest = c;
    }
    if (oldest != NULL) {
        reply(oldest, "error closed: too many control connections, this one sent no request");
        answer_and_close(oldest);
    }
    return oldest;
}

static void accept_new(msup_control_t *ctl, uint64_t now)
{
    for (int n = 0; n < ACCEPTS_PER_PASS; n++) {
        int fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                msup_log(LOG_WARNING, "control socket %s: accept: %s", ctl->path, strerror(errno));
            return;
        }
        conn_t tmp = {.fd = fd};
        conn_t *c = take_slot(ctl);
        if (c == NULL) {
            reply(&tmp, "error busy: too many control connections");
            answer_and_close(&tmp);
            continue;
        }
        *c = (conn_t){.fd = fd, .accepted_mono_ns = now,
                      .deadline_mono_ns = now + (uint64_t)MSUP_CONTROL_DEADLINE_MS * 1000000u};
        socklen_t len = sizeof c->cred;
        uid_t euid = geteuid();
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) != 0) {
            reply(c, "error refused: cannot read the peer's credentials");
            answer_and_close(c);
            continue;
        }
        c->role = c->cred.uid == euid || c->cred.uid == 0 ? PEER_ADMIN
                  : in_group(fd, c->cred.gid, ctl->group) ? PEER_READER
                                                           : PEER_NONE;
        if (c->role == PEER_NONE) {
            msup_log(LOG_WARNING, "control: connection from uid %u (pid %d) refused: not mongosupd's uid, root or "
                                  "the segment's group",
                     (unsigned)c->cred.uid, (int)c->cred.pid);
            reply(c, "error refused: uid %u may not use this socket (uid %u, root%s)", (unsigned)c->cred.uid,
                  (unsigned)euid, ctl->group != (gid_t)-1 ? " or the segment's group for ping and status" : "");
            answer_and_close(c);
        }
    }
}

static void read_request(msup_control_t *ctl, conn_t *c, msup_sup_t *sup)
{
    for (;;) {
        size_t room = sizeof c->in - 1 - c->in_len;
        if (room == 0) {
            c->answering = true;
            reply(c, "error request longer than %d bytes", MSUP_CONTROL_LINE_MAX - 1);
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, room, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            /* The client closed its side: a request without its newline
             * is still one; nothing at all is a probe. */
            if (c->in_len == 0) {
                conn_close(c);
                return;
            }
            c->in[c->in_len] = '\0';
            run_request(ctl, c, sup);
            return;
        }
        c->in_len += (size_t)n;
        c->in[c->in_len] = '\0';
        if (memchr(c->in, '\n', c->in_len) != NULL) {
            run_request(ctl, c, sup);
            return;
        }
    }
}

size_t msup_control_pollfds(msup_control_t *ctl, struct pollfd *fds, uint32_t *timeout_ms)
{
    if (ctl == NULL)
        return 0;
    uint64_t now = msup_mono_ns();
    size_t n = 0;
    fds[n] = (struct pollfd){.fd = ctl->listen_fd, .events = POLLIN};
    ctl->poll_conn[n++] = -1;
    for (int i = 0; i < MSUP_CONTROL_MAX_CONNS; i++) {
        const conn_t *c = &ctl->conns[i];
        if (c->fd < 0)
            continue;
        fds[n] = (struct pollfd){.fd = c->fd, .events = c->answering ? POLLOUT : POLLIN};
        ctl->poll_conn[n++] = i;
        uint64_t left_ms = c->deadline_mono_ns > now ? (c->deadline_mono_ns - now) / 1000000u + 1 : 0;
        if (left_ms < *timeout_ms)
            *timeout_ms = (uint32_t)left_ms;
    }
    ctl->poll_n = n;
    return n;
}

void msup_control_serve(msup_control_t *ctl, const struct pollfd *fds, size_t n, msup_sup_t *sup)
{
    if (ctl == NULL)
        return;
    uint64_t now = msup_mono_ns();
    for (size_t k = 0; k < n && k < ctl->poll_n; k++) {
        if (fds[k].revents == 0)
            continue;
        if (ctl->poll_conn[k] < 0) {
            accept_new(ctl, now);
            continue;
        }
        conn_t *c = &ctl->conns[ctl->poll_conn[k]];
        if (c->fd != fds[k].fd)
            continue; /* replaced by accept_new in this pass */
        if (!c->answering)
            read_request(ctl, c, sup);
        if (c->fd >= 0 && c->answering && flush_answer(c))
            conn_close(c);
    }
    now = msup_mono_ns();
    for (int i = 0; i < MSUP_CONTROL_MAX_CONNS; i++) {
        conn_t *c = &ctl->conns[i];
        if (c->fd < 0 || now < c->deadline_mono_ns)
            continue;
        if (!c->answering) {
            reply(c, "error timeout: no complete request within %d ms", MSUP_CONTROL_DEADLINE_MS);
            flush_answer(c);
        }
        conn_close(c);
    }
}
