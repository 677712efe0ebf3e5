# bench/local.mk: benchmark programs (built with the project, run by `make bench`).
# Each benchmark adds itself to BENCH_BINARIES in its own fragment below.
BENCH_BINARIES =
BENCH_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS) $(LIBCONFIG_CFLAGS) -O2
BENCH_LIBS = lib/libmsup_core.la $(MONGOC_LIBS) $(SHM_LIBS) $(PTHREAD_LIBS)

include bench/record.mk
include bench/supervisor.mk
include bench/render.mk
include bench/checkout.mk
include bench/budget.mk
include bench/opcost.mk
include bench/control.mk
include bench/failfast.mk
include bench/storm.mk
include bench/slowlog.mk
include bench/fleet.mk

noinst_PROGRAMS += $(BENCH_BINARIES)

# make bench: runs every benchmark and writes docs/benchmarks.md.
bench: $(BENCH_BINARIES)
	$(SHELL) $(top_srcdir)/bench/run-all.sh $(abs_top_builddir) $(abs_top_srcdir)/docs/benchmarks.md
.PHONY: bench
EXTRA_DIST += bench/run-all.sh
# The commentary run-all.sh appends after each benchmark's output (NAME.md) and at the end (reading.md).
EXTRA_DIST += bench/notes/failfast_bench.md bench/notes/opcost_bench.md \
	bench/notes/record_bench.md bench/notes/render_bench.md bench/notes/reading.md
