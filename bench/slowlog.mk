# bench/slowlog.mk: the record path with the slow-operation check against the record alone (callgrind instructions, ns).
BENCH_BINARIES += bench/slowlog_bench
bench_slowlog_bench_SOURCES = bench/slowlog_bench.c
bench_slowlog_bench_CFLAGS = $(BENCH_CFLAGS)
bench_slowlog_bench_LDADD = $(BENCH_LIBS)
