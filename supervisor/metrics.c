/* metrics.c: mongosupd's optional Prometheus endpoint: libmicrohttpd serves the exposition of a fresh snapshot. */
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

static msup_mhd_result_t reply(struct MHD_Connection *conn, unsigned status, const char *type, char *body,
                               size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
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
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    uint16_t port_num = (uint16_t)atoi(port);
    daemon_handle = MHD_start_daemon(flags, port_num, NULL, NULL, on_request, (void *)seg, MHD_OPTION_SOCK_ADDR,
                                     ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
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

unsigned msup_metrics_port(void)
{
    return bound_port;
}
