# bench/fleet.mk: the fleet budget: rebalance after a host dies or joins (real etcd, 4 mongosupd), etcd requests per host, checkout with and without a fleet (ns, callgrind).
BENCH_BINARIES += bench/fleet_bench
bench_fleet_bench_SOURCES = bench/fleet_bench.c tests/fleet_fixture.c tests/fleet_fixture.h tests/testmain.c tests/testmain.h \
	tests/segment_fixture.c tests/segment_fixture.h tests/peer/peer.c tests/peer/peer.h
bench_fleet_bench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests $(PEER_CPPFLAGS) \
	-DMONGOSUP_BUILDDIR=\"$(abs_top_builddir)\" -DVALGRIND_SUPP=\"$(abs_top_srcdir)/tests/valgrind.supp\"
bench_fleet_bench_CFLAGS = $(BENCH_CFLAGS) $(CURL_CFLAGS)
bench_fleet_bench_LDADD = fleet/libmsup_fleet.la $(BENCH_LIBS) $(LIBCONFIG_LIBS) $(CUNIT_LIBS) $(CURL_LIBS) $(JSONC_LIBS)
EXTRA_bench_fleet_bench_DEPENDENCIES = supervisor/mongosupd tools/mongosupctl
