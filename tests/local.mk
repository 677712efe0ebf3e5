# tests/local.mk: the CUnit suites; each module's suite is one binary.
check_LTLIBRARIES += tests/libtestmain.la
tests_libtestmain_la_SOURCES = tests/testmain.c tests/testmain.h tests/segment_fixture.c tests/segment_fixture.h
tests_libtestmain_la_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS)

TEST_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS) $(LIBCONFIG_CFLAGS)
TEST_LIBS = tests/libtestmain.la lib/libmsup_core.la $(CUNIT_LIBS) $(MONGOC_LIBS) $(SHM_LIBS) $(PTHREAD_LIBS)

check_PROGRAMS += tests/segment_test tests/stats_test tests/slots_test tests/textsafe_test tests/slowlog_test
TESTS += tests/segment_test tests/stats_test tests/slots_test tests/textsafe_test tests/slowlog_test
tests_slowlog_test_SOURCES = tests/slowlog_test.c
tests_slowlog_test_CFLAGS = $(TEST_CFLAGS)
tests_slowlog_test_LDADD = $(TEST_LIBS)
tests_segment_test_SOURCES = tests/segment_test.c
tests_segment_test_CFLAGS = $(TEST_CFLAGS)
tests_segment_test_LDADD = $(TEST_LIBS)
tests_stats_test_SOURCES = tests/stats_test.c
tests_stats_test_CFLAGS = $(TEST_CFLAGS)
tests_stats_test_LDADD = $(TEST_LIBS)
tests_slots_test_SOURCES = tests/slots_test.c
tests_slots_test_CFLAGS = $(TEST_CFLAGS)
tests_slots_test_LDADD = $(TEST_LIBS)
tests_textsafe_test_SOURCES = tests/textsafe_test.c
tests_textsafe_test_CFLAGS = $(TEST_CFLAGS)
tests_textsafe_test_LDADD = $(TEST_LIBS)

include tests/config.mk
include tests/peer/local.mk
include tests/worker.mk
include tests/tools.mk
include tests/supervisor.mk
include tests/budget.mk
include tests/apache.mk
include tests/neutral.mk

# The README's demo, run against the built tree (a shell test: not run under valgrind).
TESTS += tests/demo_test.sh
EXTRA_DIST += tests/demo_test.sh scripts/demo.sh scripts/test.sh scripts/show-failures.sh
