# lib/local.mk: libmongosup (installed) and libmsup_core (the same code, for in-tree programs and tests).
noinst_LTLIBRARIES += lib/libmsup_core.la
lib_libmsup_core_la_SOURCES = \
	lib/mongosup.h lib/layout.h lib/error.h lib/error.c \
	lib/segment.h lib/segment.c lib/shmname.h lib/shmname.c lib/stats.h lib/stats.c lib/slowlog.h lib/slowlog.c lib/slots.h lib/slots.c \
	lib/snapshot.h lib/snapshot.c \
	lib/config.h lib/config_int.h lib/config_schema.c lib/config_diag.c lib/config_load.c \
	lib/config_dump.c lib/config_fleet.c lib/config_file.c lib/secrets.c lib/uri_build.c lib/redact.h lib/redact.c lib/strbuf.h lib/strbuf.c lib/textsafe.h lib/textsafe.c lib/stdio_guard.h lib/stdio_guard.c lib/listen.h lib/listen.c lib/version.c \
	$(LIB_WORKER_SOURCES)
lib_libmsup_core_la_CPPFLAGS = $(AM_CPPFLAGS) -DMONGOSUP_BUILDING
lib_libmsup_core_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden $(MONGOC_CFLAGS) $(LIBCONFIG_CFLAGS)
lib_libmsup_core_la_LIBADD = $(MONGOC_LIBS) $(LIBCONFIG_LIBS) $(SHM_LIBS) $(PTHREAD_LIBS)

lib_LTLIBRARIES += lib/libmongosup.la
lib_libmongosup_la_SOURCES =
lib_libmongosup_la_LIBADD = lib/libmsup_core.la
lib_libmongosup_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(MONGOSUP_LT_VERSION) -no-undefined
include_HEADERS += lib/mongosup.h
pkgconfig_DATA += lib/mongosup.pc
DISTCLEANFILES += lib/mongosup.pc
EXTRA_DIST += lib/mongosup.pc.in

# The worker-side library (pools, APM, circuit breaker): lib/worker.mk.
include lib/worker.mk
