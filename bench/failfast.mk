# bench/failfast.mk: a killed and a hung cluster under load, through mongosup and through a plain mongoc pool in the same run.
BENCH_BINARIES += bench/failfast_bench
bench_failfast_bench_SOURCES = bench/failfast_bench.c tests/peer/peer.c tests/peer/peer.h
bench_failfast_bench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests $(PEER_CPPFLAGS) \
	-DMONGOSUP_BUILDDIR=\"$(abs_top_builddir)\"
bench_failfast_bench_CFLAGS = $(BENCH_CFLAGS)
bench_failfast_bench_LDADD = $(BENCH_LIBS) $(LIBCONFIG_LIBS)
