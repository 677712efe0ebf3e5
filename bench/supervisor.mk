# bench/supervisor.mk: failure detection and recovery of mongosupd next to the driver alone; its CPU and RSS.
BENCH_BINARIES += bench/detect_bench
bench_detect_bench_SOURCES = bench/detect_bench.c tests/peer/peer.c tests/peer/peer.h
bench_detect_bench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests $(PEER_CPPFLAGS) \
	-DMONGOSUP_BUILDDIR=\"$(abs_top_builddir)\"
bench_detect_bench_CFLAGS = $(BENCH_CFLAGS)
bench_detect_bench_LDADD = $(BENCH_LIBS)
