# bench/opcost.mk: instructions per ping and find (callgrind) via mongosup_checkout vs a plain mongoc pool, same effective URI.
BENCH_BINARIES += bench/opcost_bench
bench_opcost_bench_SOURCES = bench/opcost_bench.c tests/peer/peer.c tests/peer/peer.h
bench_opcost_bench_CPPFLAGS = $(AM_CPPFLAGS) $(PEER_CPPFLAGS)
bench_opcost_bench_CFLAGS = $(BENCH_CFLAGS) -I$(top_srcdir)/lib
bench_opcost_bench_LDADD = $(BENCH_LIBS) $(LIBCONFIG_LIBS)
