/* prefork_server.c: a prefork HTTP server (master + N workers) that serves MongoDB-backed requests through libmongosup. */

/*
 * The shape to copy into your own server:
 *
 *   master:  mongosup_config_load, mongoc_init, listen, fork N workers,
 *            respawn any that dies abnormally (like Apache's prefork MPM);
 *            SIGTERM/SIGQUIT: pass it on to the workers and wait for them.
 *   worker:  mongosup_attach (after fork!), serve requests with
 *            mongosup_checkout/checkin or mongosup_run, poll
 *            mongosup_draining between requests, mongosup_detach, exit 0.
 *
 * Requests (HTTP/1.0, one per connection, on 127.0.0.1):
 *   GET  /users/ID   find one {_id: ID} in <users db>.users       (cluster "users")
 *   POST /events     insert one event in <analytics db>.events    (cluster "analytics", retried)
 *   GET  /health     200 "ok" (no database)
 * Answers: 200, 404 (no such user), 503 (circuit open, pool timeout,
 * shutting down), 500 (other database errors).
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "mongosup.h"

#define MAX_WORKERS 64

static volatile sig_atomic_t stop_signal; /* master and workers: the signal that asks us to stop */
static const char *progname = "mongosup-demo-server";

static void on_stop(int sig)
{
    stop_signal = sig;
}

/* The master's SIGCHLD handler: its only job is to end sigsuspend. */
static void on_child(int sig)
{
    (void)sig;
}

/* ------------------------------------------------------------------ worker */

typedef struct worker_ctx {
    mongosup_t *sup;
    int listen_fd;
    int index;
} worker_ctx_t;

static void reply(int fd, int status, const char *body)
{
    const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found" : status == 503 ? "Service Unavailable"
                       : status == 400 ? "Bad Request" : "Internal Server Error";
    char head[256];
    int n = snprintf(head, sizeof head, "HTTP/1.0 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n", status, reason, strlen(body));
    if (write(fd, head, (size_t)n) < 0 || write(fd, body, strlen(body)) < 0)
        return; /* the client went away: nothing to do */
}

static int status_of(const mongosup_error_t *err)
{
    switch (err->code) {
    case MONGOSUP_E_CIRCUIT_OPEN:
    case MONGOSUP_E_POOL_TIMEOUT:
    case MONGOSUP_E_SHUTTING_DOWN:
        return 503;
    default:
        return 500;
    }
}

static void get_user(worker_ctx_t *w, int fd, long id)
{
    mongosup_error_t err;
    mongoc_client_t *client = mongosup_checkout(w->sup, "users", &err);
    if (client == NULL) {
        reply(fd, status_of(&err), "{\"error\":\"users cluster unavailable\"}\n");
        return;
    }
    const char *db = mongosup_client_database(w->sup, client);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, db ? db : "demo", "users");
    bson_t *filter = BCON_NEW("_id", BCON_INT64(id));
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    const bson_t *doc;
    bson_error_t error;
    if (mongoc_cursor_next(cursor, &doc)) {
        char *json = bson_as_relaxed_extended_json(doc, NULL);
        reply(fd, 200, json);
        bson_free(json);
        mongosup_checkin(w->sup, client, NULL);
    } else if (mongoc_cursor_error(cursor, &error)) {
        reply(fd, 500, "{\"error\":\"find failed\"}\n");
        mongosup_checkin(w->sup, client, &error);
    } else {
        reply(fd, 404, "{\"error\":\"no such user\"}\n");
        mongosup_checkin(w->sup, client, NULL);
    }
    mongoc_cursor_destroy(cursor);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
}

typedef struct event_ctx {
    mongosup_t *sup;
    int worker;
} event_ctx_t;

/* One attempt of the insert; mongosup_run retries it on transient errors. */
static bool insert_event(mongoc_client_t *client, void *p, bson_t *reply_doc, bson_error_t *error)
{
    event_ctx_t *ctx = p;
    const char *db = mongosup_client_database(ctx->sup, client);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, db ? db : "demo", "events");
    bson_t *doc = BCON_NEW("worker", BCON_INT32(ctx->worker), "pid", BCON_INT32((int32_t)getpid()), "at",
                           BCON_DATE_TIME(bson_get_monotonic_time() / 1000));
    bool ok = mongoc_collection_insert_one(coll, doc, NULL, reply_doc, error);
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
    return ok;
}

static void post_event(worker_ctx_t *w, int fd)
{
    event_ctx_t ctx = {w->sup, w->index};
    mongosup_error_t err;
    if (mongosup_run(w->sup, "analytics", insert_event, &ctx, &err))
        reply(fd, 200, "{\"ok\":1}\n");
    else
        reply(fd, status_of(&err), "{\"error\":\"insert failed\"}\n");
}

static void serve_one(worker_ctx_t *w, int fd)
{
    char buf[2048];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n <= 0)
        return;
    buf[n] = '\0';
    long id;
    if (sscanf(buf, "GET /users/%ld", &id) == 1)
        get_user(w, fd, id);
    else if (strncmp(buf, "POST /events", 12) == 0)
        post_event(w, fd);
    else if (strncmp(buf, "GET /health", 11) == 0)
        reply(fd, 200, "\"ok\"\n");
    else
        reply(fd, 400, "{\"error\":\"unknown request\"}\n");
}

static void *serve_loop(void *p)
{
    worker_ctx_t *w = p;
    while (!stop_signal && !mongosup_draining(w->sup)) {
        struct pollfd pfd = {w->listen_fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue; /* look at draining at least every 100 ms */
        /* Every worker polls the same listening socket, and one connection
         * wakes them all: the others find nothing to accept.  The socket is
         * non-blocking so that they get EAGAIN and go back to polling; a
         * blocking accept() would wait for the next connection, deaf to a
         * stop (SA_RESTART restarts it), and the worker would never exit.
         * The accepted socket is blocking (accept4 without SOCK_NONBLOCK). */
        int fd = accept4(w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue; /* another worker took it, or the client gave up */
        struct timeval tv = {5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        serve_one(w, fd);
        close(fd);
    }
    return NULL;
}

static int worker_main(const mongosup_config_t *cfg, int listen_fd, int index, int threads, uint32_t drain_ms,
                       pid_t master)
{
    /* A worker must not outlive its master (killed with SIGKILL, say):
     * Linux sends us SIGTERM when it dies, and we drain like on a stop. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master)
        return 0; /* the master died before prctl took effect */
    signal(SIGTERM, on_stop);
    signal(SIGQUIT, on_stop);
    signal(SIGINT, SIG_IGN); /* Ctrl-C goes to the master, which passes SIGTERM on */
    mongosup_error_t err;
    worker_ctx_t w = {.listen_fd = listen_fd, .index = index};
    w.sup = mongosup_attach(cfg, &err);
    if (w.sup == NULL) {
        fprintf(stderr, "%s: worker %d: %s\n", progname, index, err.message);
        return 2;
    }
    pthread_t tids[16];
    for (int t = 0; t < threads; t++)
        pthread_create(&tids[t], NULL, serve_loop, &w);
    for (int t = 0; t < threads; t++)
        pthread_join(tids[t], NULL);
    bool drained = mongosup_draining(w.sup);
    mongosup_detach(&w.sup, drain_ms);
    fprintf(stderr, "%s: worker %d (pid %d) exits: %s\n", progname, index, (int)getpid(),
            drained ? "drained by the supervisor" : "asked to stop");
    return 0;
}

/* ------------------------------------------------------------------ master */

static int listen_on(int port)
{
    /* Non-blocking: the workers poll it and more than one may wake for one
     * connection (serve_loop). */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 512) != 0) {
        fprintf(stderr, "%s: cannot listen on 127.0.0.1:%d: %s\n", progname, port, strerror(errno));
        exit(1);
    }
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    return ntohs(sa.sin_port);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: %s -c FILE [-e ENV] [-w WORKERS] [-t THREADS] [-p PORT] [--drain-ms MS]\n"
                 "  a prefork HTTP demo server: GET /users/ID, POST /events, GET /health on 127.0.0.1\n",
            progname);
}

int main(int argc, char **argv)
{
    const char *conf = NULL, *env = NULL;
    int workers = 4, threads = 2, port = 0;
    uint32_t drain_ms = 10000;
    static const struct option longopts[] = {{"drain-ms", required_argument, NULL, 'D'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:e:w:t:p:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'e': env = optarg; break;
        case 'w': workers = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'p': port = atoi(optarg); break;
        case 'D': drain_ms = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 64;
        }
    }
    if (conf == NULL || optind != argc || workers < 1 || workers > MAX_WORKERS || threads < 1 || threads > 16 ||
        port < 0 || port > 65535) {
        usage(stderr);
        return 64;
    }
    mongoc_init();
    mongosup_error_t err;
    mongosup_config_t *cfg = mongosup_config_load(conf, env, &err);
    if (cfg == NULL) {
        fprintf(stderr, "%s: %s\n", progname, err.message);
        return 1;
    }
    int listen_fd = listen_on(port);
    printf("%s: listening on 127.0.0.1:%d with %d workers x %d threads (environment %s)\n", progname,
           bound_port(listen_fd), workers, threads, mongosup_config_environment(cfg));
    fflush(stdout);

    /* The master sleeps only in sigsuspend, and these signals are blocked
     * everywhere else: one that arrives while the loop runs stays pending and
     * ends the next sigsuspend at once.  (Testing stop_signal and then
     * blocking in waitpid would lose a stop that lands between the two.) */
    sigset_t wake_signals, unblocked;
    sigemptyset(&wake_signals);
    sigaddset(&wake_signals, SIGTERM);
    sigaddset(&wake_signals, SIGQUIT);
    sigaddset(&wake_signals, SIGINT);
    sigaddset(&wake_signals, SIGCHLD);
    sigprocmask(SIG_BLOCK, &wake_signals, &unblocked);
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct sigaction child_sa = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGCHLD, &child_sa, NULL);
    pid_t master = getpid();
    /* pids[i]: > 0 running, 0 to be (re)spawned, -1 finished (drained). */
    pid_t pids[MAX_WORKERS] = {0};
    int respawns = 0;
    bool forwarded = false;
    for (;;) {
        int running = 0;
        for (int i = 0; i < workers; i++) {
            if (pids[i] == 0 && !stop_signal) {
                pid_t pid = fork();
                if (pid == 0) {
                    /* The worker installs its own handlers and takes signals
                     * like any process: undo the master's arrangement. */
                    signal(SIGCHLD, SIG_DFL);
                    sigprocmask(SIG_SETMASK, &unblocked, NULL);
                    _exit(worker_main(cfg, listen_fd, i, threads, drain_ms, master));
                }
                pids[i] = pid;
            }
            running += pids[i] > 0;
        }
        if (running == 0)
            break;
        if (stop_signal && !forwarded) {
            /* Pass the request on once; workers drain and exit 0. */
            for (int i = 0; i < workers; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGTERM);
            forwarded = true;
        }
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            sigsuspend(&unblocked); /* a worker exited or a stop signal: look again */
            continue;
        }
        for (int i = 0; i < workers; i++) {
            if (pids[i] != pid)
                continue;
            bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (clean || stop_signal) {
                pids[i] = -1; /* drained, or we are stopping: not respawned */
            } else {
                pids[i] = 0;
                respawns++;
                usleep(200 * 1000); /* a crash loop must not spin */
                fprintf(stderr, "%s: worker %d (pid %d) died (%s %d): respawning\n", progname, i, (int)pid,
                        WIFSIGNALED(status) ? "signal" : "exit",
                        WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            }
        }
    }
    printf("%s: all workers have exited (%d respawned)\n", progname, respawns);
    close(listen_fd);
    mongosup_config_destroy(&cfg);
    mongoc_cleanup();
    return 0;
}
