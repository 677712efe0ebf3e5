# fleet/local.mk: the fleet-wide connection budget (issue 13): the share computation, etcd client and protocol that mongosupd runs, and their tests.
noinst_LTLIBRARIES += fleet/libmsup_fleet.la
fleet_libmsup_fleet_la_SOURCES = fleet/share.h fleet/share.c
fleet_libmsup_fleet_la_CFLAGS = $(AM_CFLAGS)

check_PROGRAMS += tests/fleet_share_test
TESTS += tests/fleet_share_test
tests_fleet_share_test_SOURCES = tests/fleet_share_test.c
tests_fleet_share_test_CFLAGS = $(TEST_CFLAGS)
tests_fleet_share_test_LDADD = fleet/libmsup_fleet.la $(TEST_LIBS)
