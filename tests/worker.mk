# tests/worker.mk: the worker-side library's suites (attach, pools, APM, faults, prefork, reconnect, budget, reload, hot path, fail-fast, slow-operation log).
WORKER_TEST_SOURCES = tests/worker_fixture.c tests/worker_fixture.h tests/peer/peer.c tests/peer/peer.h
WORKER_TEST_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests $(PEER_CPPFLAGS)
WORKER_TESTS = tests/worker_classify_test tests/worker_pool_test tests/worker_faults_test \
	tests/worker_prefork_test tests/worker_reconnect_test tests/worker_budget_test \
	tests/worker_reload_test tests/worker_hotpath_test tests/worker_cutoff_test tests/worker_failfast_test \
	tests/worker_slowlog_test

check_PROGRAMS += $(WORKER_TESTS)
TESTS += $(WORKER_TESTS)

tests_worker_classify_test_SOURCES = tests/worker_classify_test.c
tests_worker_classify_test_CPPFLAGS = $(WORKER_TEST_CPPFLAGS)
tests_worker_classify_test_CFLAGS = $(TEST_CFLAGS)
tests_worker_classify_test_LDADD = $(TEST_LIBS)

tests_worker_pool_test_SOURCES = tests/worker_pool_test.c $(WORKER_TEST_SOURCES)
tests_worker_pool_test_CPPFLAGS = $(WORKER_TEST_CPPFLAGS)
tests_worker_pool_test_CFLAGS = $(TEST_CFLAGS)
tests_worker_pool_test_LDADD = $(TEST_LIBS)

tests_worker_faults_test_SOURCES = tests/worker_faults_test.c $(WORKER_TEST_SOURCES)
tests_worker_faults_test_CPPFLAGS = $(WORKER_TEST_CPPFLAGS)
tests_worker_faults_test_CFLAGS = $(TEST_CFLAGS)
tests_worker_faults_test_LDADD = $(TEST_LIBS)

tests_worker_prefork_test_SOURCES = tests/worker_prefork_test.c $(WORKER_TEST_SOURCES)
tests_worker_prefork_test_CPPFLAGS = $(WORKER_TEST_CPPFLAGS)
tests_worker_prefork_test_CFLAGS = $(TEST_CFLAGS)
tests_worker_prefork_test_LDADD = $(TEST_LIBS)

tests_worker_reconnect_test_SOURCES = tests/worker_reconnect_test.c $(WORKER_TEST_SOURCES)
tests_worker_reconnect_test_CPPFLAGS = $(WORKER_TEST_CPPFLAGS)
tests_worker_reconnect_test_CFLAGS = $(TEST_CFLAGS)
tests_worker_reconnect_test_LDADD = $(TEST_LIBS)

tests_worker_budget_test_SOURCES = tests/worker_budget_test.c $(WORKER_TEST_SOURCES)
tests_worker_budget_test_CPPFLAGS = $(WORKER_TEST_CPPFLAGS)
tests_worker_budget_test_CFLAGS = $(TEST_CFLAGS)
tests_worker_budget_test_LDADD = $(TEST_LIBS)

tests_worker_reload_test_SOURCES = tests/worker_reload_test.c $(WORKER_TEST_SOURCES)
tests_worker_reload_test_CPPFLAGS = $(WORKER_TEST_CPPFLAGS)
tests_worker_reload_test_CFLAGS = $(TEST_CFLAGS)
tests_worker_reload_test_LDADD = $(TEST_LIBS)

tests_worker_hotpath_test_SOURCES = tests/worker_hotpath_test.c $(WORKER_TEST_SOURCES)
tests_worker_hotpath_test_CPPFLAGS = $(WORKER_TEST_CPPFLAGS)
tests_worker_hotpath_test_CFLAGS = $(TEST_CFLAGS)
tests_worker_hotpath_test_LDADD = $(TEST_LIBS)

tests_worker_cutoff_test_SOURCES = tests/worker_cutoff_test.c
tests_worker_cutoff_test_CPPFLAGS = $(WORKER_TEST_CPPFLAGS)
tests_worker_cutoff_test_CFLAGS = $(TEST_CFLAGS)
tests_worker_cutoff_test_LDADD = $(TEST_LIBS)

tests_worker_failfast_test_SOURCES = tests/worker_failfast_test.c $(WORKER_TEST_SOURCES)
tests_worker_failfast_test_CPPFLAGS = $(WORKER_TEST_CPPFLAGS) -DMONGOSUP_BUILDDIR=\"$(abs_top_builddir)\"
tests_worker_failfast_test_CFLAGS = $(TEST_CFLAGS)
tests_worker_failfast_test_LDADD = $(TEST_LIBS)

tests_worker_slowlog_test_SOURCES = tests/worker_slowlog_test.c $(WORKER_TEST_SOURCES)
tests_worker_slowlog_test_CPPFLAGS = $(WORKER_TEST_CPPFLAGS) -I$(top_srcdir)/tools
tests_worker_slowlog_test_CFLAGS = $(TEST_CFLAGS) $(JSONC_CFLAGS)
tests_worker_slowlog_test_LDADD = tools/libmsup_export.la $(TEST_LIBS) $(JSONC_LIBS)
