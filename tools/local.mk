# tools/local.mk: mongosup-top, mongosupctl, and the exporters they share with mongosupd's /metrics.

# The table model and the text / JSON / Prometheus exporters, plus the
# segment-name resolution of the tools.  No curses in here: mongosupd links
# it too (through MSUP_METRICS_LIBS below).
noinst_LTLIBRARIES += tools/libmsup_export.la
tools_libmsup_export_la_SOURCES = tools/export.h tools/view.c tools/export_text.c tools/export_json.c \
	tools/export_prom.c tools/target.h tools/target.c tools/snapshot_read.c
tools_libmsup_export_la_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS) $(JSONC_CFLAGS)
tools_libmsup_export_la_LIBADD = $(JSONC_LIBS)

# The live view's own models (history, drill-down, latency, filter): curses-free, unit-tested.
noinst_LTLIBRARIES += tools/libmsup_topview.la
tools_libmsup_topview_la_SOURCES = tools/history.h tools/history.c tools/drill.h tools/drill.c \
	tools/latency.h tools/latency.c tools/filter.h tools/filter.c
tools_libmsup_topview_la_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS)
tools_libmsup_topview_la_LIBADD = -lm

bin_PROGRAMS += tools/mongosup-top tools/mongosupctl
tools_mongosup_top_SOURCES = tools/top.h tools/top.c tools/top_state.h tools/top_draw.c tools/top_slow.c tools/top_main.c
tools_mongosup_top_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS) $(CURSES_CFLAGS)
tools_mongosup_top_LDADD = tools/libmsup_topview.la tools/libmsup_export.la lib/libmsup_core.la $(CURSES_LIBS)
tools_mongosupctl_SOURCES = tools/ctl.c tools/ctlclient.c tools/ctlclient.h \
	supervisor/control_path.c supervisor/control_path.h
tools_mongosupctl_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/supervisor
tools_mongosupctl_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS)
tools_mongosupctl_LDADD = tools/libmsup_export.la lib/libmsup_core.la

# ---- mongosupd's Prometheus endpoint (owner: tools/metrics engineer) ----
# supervisor/metrics.c is built here as a convenience library so that
# mongosupd needs one line: mongosupd_LDADD = $(MSUP_METRICS_LIBS) lib/libmsup_core.la ...
# (before libmsup_core: static archives are searched in order).
noinst_LTLIBRARIES += supervisor/libmsup_metrics.la
supervisor_libmsup_metrics_la_SOURCES = supervisor/metrics.h supervisor/metrics.c
supervisor_libmsup_metrics_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tools
supervisor_libmsup_metrics_la_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS) $(MHD_CFLAGS)
supervisor_libmsup_metrics_la_LIBADD = $(MHD_LIBS)
MSUP_METRICS_LIBS = supervisor/libmsup_metrics.la tools/libmsup_export.la
# ---- end of the Prometheus endpoint block ----
