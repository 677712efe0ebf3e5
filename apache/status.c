/* status.c: SetHandler mongosup-status: the segment as JSON (mongosup-top --json's code), plain text, or a short HTML page. */
#include <httpd.h> /* first: the other Apache headers need its types */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ap_mpm.h>
#include <apr_strings.h>
#include <http_log.h>
#include <http_protocol.h>
#include <scoreboard.h>

#include "export.h"
#include "module.h"

APLOG_USE_MODULE(mongosup);

/* The Apache generation of a child of this server, or -1 when the pid is
 * not one of its live children (another server's worker, an exited one). */
static int apache_generation_of(pid_t pid)
{
    int limit = 0;
    if (ap_scoreboard_image == NULL || ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit) != APR_SUCCESS)
        return -1;
    for (int i = 0; i < limit; i++) {
        process_score *ps = ap_get_scoreboard_process(i);
        if (ps != NULL && ps->pid == pid && pid != 0)
            return ps->generation;
    }
    return -1;
}

/* Everything from the segment is escaped: names, URIs, appnames and error
 * texts are written by other processes.  ap_escape_html2 with toasc also
 * turns bytes outside ASCII into character references. */
static const char *esc(request_rec *r, const char *s)
{
    return ap_escape_html2(r->pool, s, 1);
}

static void html_table(request_rec *r, const char *caption, const char *const *titles, unsigned cols,
                       const msup_view_row_t *rows, uint32_t n, bool with_apache)
{
    ap_rprintf(r, "<h2>%s</h2>\n<table border=\"1\" cellspacing=\"0\" cellpadding=\"3\">\n<tr>", caption);
    for (unsigned c = 0; c < cols; c++)
        ap_rprintf(r, "<th>%s</th>", esc(r, titles[c]));
    if (with_apache)
        ap_rputs("<th>APACHE</th>", r);
    ap_rputs("</tr>\n", r);
    for (uint32_t i = 0; i < n; i++) {
        ap_rputs("<tr>", r);
        for (unsigned c = 0; c < cols; c++)
            ap_rprintf(r, "<td>%s</td>", esc(r, rows[i].cell[c]));
        if (with_apache) {
            int gen = apache_generation_of((pid_t)rows[i].key[MSUP_WCOL_PID]);
            if (gen >= 0)
                ap_rprintf(r, "<td>child, generation %d</td>", gen);
            else
                ap_rputs("<td>-</td>", r);
        }
        ap_rputs("</tr>\n", r);
    }
    ap_rputs("</table>\n", r);
}

static void html_page(request_rec *r, const msup_view_t *view)
{
    ap_set_content_type(r, "text/html; charset=utf-8");
    ap_rputs("<!DOCTYPE html>\n<html><head><title>mongosup status</title></head><body>\n<h1>mongosup</h1>\n<pre>",
             r);
    for (uint32_t i = 0; i < view->header_lines; i++)
        ap_rprintf(r, "%s\n", esc(r, view->header[i]));
    ap_rputs("</pre>\n", r);
    html_table(r, "Clusters", msup_cluster_col_title, MSUP_CCOL__COUNT, view->clusters, view->cluster_rows, false);
    html_table(r, "Workers", msup_worker_col_title, MSUP_WCOL__COUNT, view->workers, view->worker_rows, true);
    ap_rputs("<p>Also as <a href=\"?json\">JSON</a> (the schema of mongosup-top --json) and "
             "<a href=\"?text\">plain text</a> (mongosup-top --once).</p>\n</body></html>\n", r);
}

/* The exporters write to a FILE: a memory stream, then one write. */
static int send_stream(request_rec *r, const char *type, char *buf, size_t len, bool ok)
{
    if (!ok) {
        free(buf);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_mongosup: the status could not be rendered");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_set_content_type(r, type);
    ap_rwrite(buf, (int)len, r);
    free(buf);
    return OK;
}

static bool query_has(const request_rec *r, const char *word)
{
    if (r->args == NULL)
        return false;
    size_t n = strlen(word);
    for (const char *p = r->args; (p = strstr(p, word)) != NULL; p += n)
        if ((p == r->args || p[-1] == '&') && (p[n] == '\0' || p[n] == '&' || p[n] == '='))
            return true;
    return false;
}

int msup_ap_status_handler(request_rec *r)
{
    if (r->method_number != M_GET)
        return HTTP_METHOD_NOT_ALLOWED;
    if (msup_ap.cfg == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_mongosup: mongosup-status without MongosupConfig");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    msup_snapshot_t snap;
    mongosup_error_t err;
    if (!msup_snapshot_read(msup_ap.segment, msup_ap.segment_owner, &snap, &err)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_mongosup: status: %s", err.message);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    int rc;
    bool json = query_has(r, "json"), text = query_has(r, "text");
    if (json || text) {
        char *buf = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&buf, &len);
        if (out == NULL) {
            msup_snapshot_free(&snap);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        bool ok;
        if (json) {
            ok = msup_export_json(&snap, out, query_has(r, "pretty"));
        } else {
            msup_view_t view;
            memset(&view, 0, sizeof view);
            ok = msup_view_build(&view, &snap, NULL) && msup_export_text(&view, out);
            msup_view_free(&view);
        }
        ok = fclose(out) == 0 && ok;
        rc = send_stream(r, json ? "application/json" : "text/plain; charset=utf-8", buf, len, ok);
    } else {
        msup_view_t view;
        memset(&view, 0, sizeof view);
        if (msup_view_build(&view, &snap, NULL)) {
            html_page(r, &view);
            rc = OK;
        } else {
            rc = HTTP_INTERNAL_SERVER_ERROR;
        }
        msup_view_free(&view);
    }
    msup_snapshot_free(&snap);
    return rc;
}
