# bench/control.mk: round trips on mongosupd's control socket, alone and under idle and slow clients.
BENCH_BINARIES += bench/control_bench
bench_control_bench_SOURCES = bench/control_bench.c tools/ctlclient.c tools/ctlclient.h
bench_control_bench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tools -DMONGOSUP_BUILDDIR=\"$(abs_top_builddir)\"
bench_control_bench_CFLAGS = $(BENCH_CFLAGS)
bench_control_bench_LDADD = $(BENCH_LIBS)
