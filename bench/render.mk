# bench/render.mk: the monitor's render cost (snapshot, text, JSON, Prometheus) at 1024 workers x 8 clusters.
BENCH_BINARIES += bench/render_bench
bench_render_bench_SOURCES = bench/render_bench.c tests/tools_fixture.c tests/tools_fixture.h
bench_render_bench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tools -I$(top_srcdir)/tests \
	-DMSUP_BUILDDIR=\"$(abs_top_builddir)\"
bench_render_bench_CFLAGS = $(BENCH_CFLAGS)
bench_render_bench_LDADD = tools/libmsup_export.la $(BENCH_LIBS)
