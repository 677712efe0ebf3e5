# bench/checkout.mk: client-side cost of checkout + ping + checkin through libmongosup vs a raw mongoc pool.
BENCH_BINARIES += bench/checkout_bench
bench_checkout_bench_SOURCES = bench/checkout_bench.c
bench_checkout_bench_CFLAGS = $(BENCH_CFLAGS)
bench_checkout_bench_LDADD = $(BENCH_LIBS) $(LIBCONFIG_LIBS)
