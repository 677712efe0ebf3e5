# fleet/local.mk: the fleet-wide connection budget (issue 13): the share computation, etcd client and protocol that mongosupd runs, and their tests.
noinst_LTLIBRARIES += fleet/libmsup_fleet.la
fleet_libmsup_fleet_la_SOURCES = fleet/share.h fleet/share.c fleet/plan.h fleet/plan.c fleet/base64.h fleet/base64.c \
	fleet/record.h fleet/record.c fleet/etcd.h fleet/etcd.c fleet/fleet.h fleet/fleet_int.h fleet/fleet.c fleet/show.c
fleet_libmsup_fleet_la_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS) $(LIBCONFIG_CFLAGS) $(JSONC_CFLAGS) $(CURL_CFLAGS)
fleet_libmsup_fleet_la_LIBADD = $(CURL_LIBS) $(JSONC_LIBS)

check_PROGRAMS += tests/fleet_share_test
TESTS += tests/fleet_share_test
tests_fleet_share_test_SOURCES = tests/fleet_share_test.c
tests_fleet_share_test_CFLAGS = $(TEST_CFLAGS)
tests_fleet_share_test_LDADD = fleet/libmsup_fleet.la $(TEST_LIBS)

check_PROGRAMS += tests/fleet_plan_test
TESTS += tests/fleet_plan_test
tests_fleet_plan_test_SOURCES = tests/fleet_plan_test.c
tests_fleet_plan_test_CFLAGS = $(TEST_CFLAGS)
tests_fleet_plan_test_LDADD = fleet/libmsup_fleet.la $(TEST_LIBS)

check_PROGRAMS += tests/fleet_record_test
TESTS += tests/fleet_record_test
tests_fleet_record_test_SOURCES = tests/fleet_record_test.c
tests_fleet_record_test_CFLAGS = $(TEST_CFLAGS)
tests_fleet_record_test_LDADD = fleet/libmsup_fleet.la $(TEST_LIBS) $(JSONC_LIBS)

# End to end: 4 mongosupd against a real etcd (Debian's etcd-server, started by
# the test on free loopback ports) and the test peer.
check_PROGRAMS += tests/fleet_test
TESTS += tests/fleet_test
tests_fleet_test_SOURCES = tests/fleet_test.c tests/fleet_fixture.c tests/fleet_fixture.h tests/peer/peer.c tests/peer/peer.h \
	tests/tools_promcheck.c tests/tools_promcheck.h
tests_fleet_test_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests $(PEER_CPPFLAGS) \
	-DMONGOSUP_BUILDDIR=\"$(abs_top_builddir)\" -DVALGRIND_SUPP=\"$(abs_top_srcdir)/tests/valgrind.supp\"
tests_fleet_test_CFLAGS = $(TEST_CFLAGS) $(CURL_CFLAGS)
tests_fleet_test_LDADD = fleet/libmsup_fleet.la $(TEST_LIBS) $(CURL_LIBS) $(JSONC_LIBS)
EXTRA_tests_fleet_test_DEPENDENCIES = supervisor/mongosupd tools/mongosupctl
