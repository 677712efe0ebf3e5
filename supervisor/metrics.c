/* metrics.c: mongosupd's optional Prometheus endpoint: libmicrohttpd serves the exposition of a fresh snapshot. */
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "error.h"
#include "export.h"
#include "listen.h"
#include "metrics.h"

#if MHD_VERSION < 0x00097002
typedef int msup_mhd_result_t;
#else
typedef enum MHD_Result msup_mhd_result_t;
#endif

static struct MHD_Daemon *daemon_handle;
static unsigned bound_port;
/* More families after the segment's (the fleet's, fleet/fleet.h): set before start. */
static msup_metrics_extra_fn extra_render;
static void *extra_arg;

/*
 * Keeping scrapes answering while hundreds of clients sit on the port.
 *
 * libmicrohttpd's own timeout is an *idle* timeout: a slowloris client that
 * sends one header byte a second never reaches it, and once the connection
 * limit is full every new connection (the scraper's) is refused.  A per-IP
 * limit does not help on loopback, where the scraper shares 127.0.0.1 with
 * the attackers.  So the endpoint tracks every connection that is still
 * waiting for a complete request (from its accept, or from its last
 * response on a kept-alive connection) and, each time a new connection
 * arrives:
 *   - ends every waiting connection older than MSUP_METRICS_REQUEST_DEADLINE_S
 *     (a real scraper sends its request at once);
 *   - when more than MSUP_METRICS_SOFT_LIMIT connections are open, ends the
 *     connection that has waited longest for its request,
 * so the newest connection always gets a place below libmicrohttpd's hard
 * limit.  "Ending" is shutdown(2) on the socket, done on the server's own
 * thread inside its notification callback: the socket is certainly still the
 * connection's (libmicrohttpd closes it only after MHD_CONNECTION_NOTIFY_CLOSED,
 * on that same thread), and libmicrohttpd then sees the end of the stream and
 * releases the connection itself.
 */
#define MSUP_METRICS_HARD_LIMIT        256u /* libmicrohttpd refuses beyond */
#define MSUP_METRICS_SOFT_LIMIT        192u /* evict the longest waiter beyond */
#define MSUP_METRICS_REQUEST_DEADLINE_S 3u  /* to send a whole request */
#define MSUP_METRICS_IDLE_TIMEOUT_S    5u   /* libmicrohttpd's idle timeout */
#define MSUP_METRICS_CONN_MEMORY       (16u * 1024u) /* per connection: a GET's headers */

typedef struct tracked_conn {
    struct tracked_conn *prev, *next; /* in `waiting` (oldest first) or alone */
    int fd;
    bool waiting;             /* no complete request since `since_ns` */
    uint64_t since_ns;        /* CLOCK_MONOTONIC */
} tracked_conn_t;

static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static tracked_conn_t waiting_head = {&waiting_head, &waiting_head, -1, false, 0};
static unsigned open_conns;
static uint64_t evicted_conns;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void unlink_waiting(tracked_conn_t *c)
{
    if (!c->waiting)
        return;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->prev = c->next = c;
    c->waiting = false;
}

static void append_waiting(tracked_conn_t *c, uint64_t now)
{
    unlink_waiting(c);
    c->since_ns = now;
    c->prev = waiting_head.prev;
    c->next = &waiting_head;
    waiting_head.prev->next = c;
    waiting_head.prev = c;
    c->waiting = true;
}

/* Ends a waiting connection (see above); it stays counted until closed. */
static void evict(tracked_conn_t *c)
{
    unlink_waiting(c);
    shutdown(c->fd, SHUT_RDWR);
    evicted_conns++;
}

static void make_room(uint64_t now)
{
    const uint64_t deadline = (uint64_t)MSUP_METRICS_REQUEST_DEADLINE_S * 1000000000u;
    while (waiting_head.next != &waiting_head && now - waiting_head.next->since_ns > deadline)
        evict(waiting_head.next);
    /* Called before the new connection joins the waiters, so it is never
     * the one ended.  Ended connections count in open_conns until
     * libmicrohttpd releases them: end only as many as the excess. */
    unsigned excess = open_conns > MSUP_METRICS_SOFT_LIMIT ? open_conns - MSUP_METRICS_SOFT_LIMIT : 0;
    while (excess-- > 0 && waiting_head.next != &waiting_head)
        evict(waiting_head.next);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    pthread_mutex_lock(&conns_lock);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        tracked_conn_t *c = info ? calloc(1, sizeof *c) : NULL;
        if (c != NULL) {
            uint64_t now = mono_ns();
            c->fd = info->connect_fd;
            c->prev = c->next = c;
            open_conns++;
            make_room(now);
            append_waiting(c, now);
        }
        *socket_context = c;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL) {
        tracked_conn_t *c = *socket_context;
        unlink_waiting(c);
        open_conns--;
        free(c);
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&conns_lock);
}

static tracked_conn_t *tracked(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* A response is queued: the connection is no longer a waiter (a request
 * that trickles a body stays one, and meets the deadline). */
static void request_answered(struct MHD_Connection *conn)
{
    pthread_mutex_lock(&conns_lock);
    tracked_conn_t *c = tracked(conn);
    if (c != NULL)
        unlink_waiting(c);
    pthread_mutex_unlock(&conns_lock);
}

/* A response went out: a kept-alive connection waits for its next request. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)req_cls;
    (void)toe;
    pthread_mutex_lock(&conns_lock);
    tracked_conn_t *c = tracked(conn);
    if (c != NULL)
        append_waiting(c, mono_ns());
    pthread_mutex_unlock(&conns_lock);
}

static msup_mhd_result_t reply(struct MHD_Connection *conn, unsigned status, const char *type, char *body,
                               size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    request_answered(conn);
    msup_mhd_result_t ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static msup_mhd_result_t reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    char *body = strdup(text);
    return body ? reply(conn, status, "text/plain; charset=utf-8", body, strlen(body)) : MHD_NO;
}

/* Renders the exposition into a heap buffer that the response frees. */
static msup_mhd_result_t serve_metrics(struct MHD_Connection *conn, const msup_segment_t *seg)
{
    msup_snapshot_t snap;
    mongosup_error_t err;
    if (!msup_snapshot_take(seg, &snap, &err)) {
        char msg[sizeof err.message + 8];
        snprintf(msg, sizeof msg, "%s\n", err.message);
        return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
    }
    char *body = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&body, &len);
    bool ok = out != NULL && msup_export_prometheus(&snap, out);
    if (ok && extra_render != NULL)
        ok = extra_render(out, extra_arg);
    if (out != NULL && fclose(out) != 0)
        ok = false;
    msup_snapshot_free(&snap);
    if (!ok) {
        free(body);
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render the metrics\n");
    }
    return reply(conn, MHD_HTTP_OK, MSUP_PROM_CONTENT_TYPE, body, len);
}

static msup_mhd_result_t on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                    const char *version, const char *upload_data, size_t *upload_data_size,
                                    void **req_cls)
{
    (void)version;
    (void)upload_data;
    /* The first call only announces the headers; a GET has no body to wait for. */
    if (*req_cls == NULL) {
        static int marker;
        *req_cls = &marker;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* ignore any body */
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(conn, cls);
    if (strcmp(url, "/") == 0)
        return reply_text(conn, MHD_HTTP_OK, "mongosupd: metrics at /metrics\n");
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n");
}

void msup_metrics_set_extra(msup_metrics_extra_fn render, void *arg)
{
    extra_render = render;
    extra_arg = arg;
}

bool msup_metrics_start(const char *listen, const msup_segment_t *seg, mongosup_error_t *err)
{
    if (daemon_handle != NULL)
        return msup_fail(err, MONGOSUP_E_INVALID_ARG, "the metrics endpoint is already running");
    if (listen == NULL || listen[0] == '\0')
        return msup_fail(err, MONGOSUP_E_CONFIG, "metrics_listen is empty");
    char host[256], port[8];
    if (!msup_listen_parse(listen, false, host, sizeof host, port, sizeof port, err))
        return false;
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0)
        return msup_fail(err, MONGOSUP_E_CONFIG, "metrics_listen '%s': %s", listen, gai_strerror(gai));
    /* One server thread with epoll: hundreds of connections cost no scan. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
        flags |= MHD_USE_EPOLL;
    else
        flags |= MHD_USE_POLL;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    uint16_t port_num = (uint16_t)atoi(port);
    daemon_handle = MHD_start_daemon(
        flags, port_num, NULL, NULL, on_request, (void *)seg, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, MSUP_METRICS_HARD_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        MSUP_METRICS_IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MSUP_METRICS_CONN_MEMORY,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (daemon_handle == NULL)
        return msup_fail(err, MONGOSUP_E_SYSTEM, "metrics_listen '%s': cannot listen (address in use or not local?)",
                         listen);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon_handle, MHD_DAEMON_INFO_BIND_PORT);
    bound_port = info ? info->port : port_num;
    return true;
}

void msup_metrics_stop(void)
{
    if (daemon_handle != NULL)
        MHD_stop_daemon(daemon_handle);
    daemon_handle = NULL;
    bound_port = 0;
}

msup_metrics_conns_t msup_metrics_conns(void)
{
    pthread_mutex_lock(&conns_lock);
    msup_metrics_conns_t c = {.open = open_conns, .evicted = evicted_conns};
    pthread_mutex_unlock(&conns_lock);
    return c;
}

unsigned msup_metrics_port(void)
{
    return bound_port;
}
