# supervisor/local.mk: mongosupd, the supervisor daemon.
sbin_PROGRAMS += supervisor/mongosupd
supervisor_mongosupd_SOURCES = \
	supervisor/main.c supervisor/supervisor.h \
	supervisor/control.c supervisor/control.h \
	supervisor/control_path.c supervisor/control_path.h \
	supervisor/log.c supervisor/log.h \
	supervisor/pidfile.c supervisor/pidfile.h \
	supervisor/health.c supervisor/health.h \
	supervisor/health_state.c supervisor/health_state.h \
	supervisor/reconnect.c supervisor/reconnect.h \
	supervisor/reaper.c supervisor/reaper.h \
	supervisor/reload.c supervisor/reload.h \
	supervisor/hostcap.c supervisor/hostcap.h \
	supervisor/shutdown.c supervisor/shutdown.h \
	supervisor/slowlog_drain.c supervisor/slowlog_drain.h
supervisor_mongosupd_CPPFLAGS = $(AM_CPPFLAGS) -DMSUP_WITH_METRICS
supervisor_mongosupd_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS) $(LIBCONFIG_CFLAGS)
# The /metrics endpoint (supervisor/metrics.c, built in tools/local.mk) comes
# first: static archives are searched in order.
supervisor_mongosupd_LDADD = $(MSUP_METRICS_LIBS) lib/libmsup_core.la $(MONGOC_LIBS) $(SHM_LIBS) $(PTHREAD_LIBS)

# ---- /metrics endpoint (tools/metrics engineer; the library is defined in tools/local.mk) ----
# libmsup_core is listed again after the metrics libraries: static archives are searched in order.
supervisor_mongosupd_CFLAGS += -DMSUP_WITH_METRICS $(MHD_CFLAGS)
supervisor_mongosupd_LDADD += $(MSUP_METRICS_LIBS) lib/libmsup_core.la $(MHD_LIBS) $(JSONC_LIBS)
# ---- end of the /metrics block ----

# ---- the fleet-wide budget (fleet/local.mk builds the library) ----
supervisor_mongosupd_LDADD += fleet/libmsup_fleet.la lib/libmsup_core.la $(CURL_LIBS) $(JSONC_LIBS)
# ---- end of the fleet block ----
