# examples/local.mk: the prefork demo server and its load generator.
noinst_PROGRAMS += examples/mongosup-demo-server examples/mongosup-demo-load
examples_mongosup_demo_server_SOURCES = examples/prefork_server.c
examples_mongosup_demo_server_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS)
examples_mongosup_demo_server_LDADD = lib/libmongosup.la $(MONGOC_LIBS) $(PTHREAD_LIBS)
examples_mongosup_demo_load_SOURCES = examples/loadgen.c
examples_mongosup_demo_load_CFLAGS = $(AM_CFLAGS)
examples_mongosup_demo_load_LDADD = $(PTHREAD_LIBS)
