# bench/storm.mk: the connection budget under storms (time to fairness, handshakes at once, time to shrink), refereed by the counting proxy.
BENCH_BINARIES += bench/storm_bench
bench_storm_bench_SOURCES = bench/storm_bench.c tests/peer/peer.c tests/peer/peer.h \
	tests/segment_fixture.c tests/segment_fixture.h tests/testmain.c tests/testmain.h
bench_storm_bench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests $(PEER_CPPFLAGS)
bench_storm_bench_CFLAGS = $(BENCH_CFLAGS)
bench_storm_bench_LDADD = $(BENCH_LIBS) $(LIBCONFIG_LIBS) $(CUNIT_LIBS)
