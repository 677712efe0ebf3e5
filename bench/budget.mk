# bench/budget.mk: cost of taking and giving back a budget token, against an unlimited counter and none.
BENCH_BINARIES += bench/budget_bench
bench_budget_bench_SOURCES = bench/budget_bench.c
bench_budget_bench_CFLAGS = $(BENCH_CFLAGS)
bench_budget_bench_LDADD = $(BENCH_LIBS)
