# tests/budget.mk: the connection budget's module suite (CAS races across processes, reaping, limits, fairness).
check_PROGRAMS += tests/budget_test
TESTS += tests/budget_test
tests_budget_test_SOURCES = tests/budget_test.c tests/peer/peer.c tests/peer/peer.h
tests_budget_test_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests $(PEER_CPPFLAGS)
tests_budget_test_CFLAGS = $(TEST_CFLAGS)
tests_budget_test_LDADD = $(TEST_LIBS)
