# bench/record.mk: the record path and the reader (segment aggregation).
BENCH_BINARIES += bench/record_bench
bench_record_bench_SOURCES = bench/record_bench.c
bench_record_bench_CFLAGS = $(BENCH_CFLAGS)
bench_record_bench_LDADD = $(BENCH_LIBS)
