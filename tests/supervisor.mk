# tests/supervisor.mk: mongosupd's tests: the pure hysteresis, and the daemon run as a real process.
check_PROGRAMS += tests/supervisor_health_state_test tests/supervisor_log_test tests/supervisor_daemon_test
TESTS += tests/supervisor_health_state_test tests/supervisor_log_test tests/supervisor_daemon_test

tests_supervisor_health_state_test_SOURCES = tests/supervisor_health_state_test.c \
	supervisor/health_state.c supervisor/health_state.h
tests_supervisor_health_state_test_CFLAGS = $(TEST_CFLAGS)
tests_supervisor_health_state_test_LDADD = $(TEST_LIBS)

tests_supervisor_log_test_SOURCES = tests/supervisor_log_test.c supervisor/log.c supervisor/log.h
tests_supervisor_log_test_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/supervisor
tests_supervisor_log_test_CFLAGS = $(TEST_CFLAGS)
tests_supervisor_log_test_LDADD = $(TEST_LIBS)

# The daemon test starts supervisor/mongosupd ($MONGOSUP_TEST_BUILDDIR, else
# MONGOSUPD_PATH) and the test peer; it re-executes itself as worker processes.
# MONGOSUP_VALGRIND_DAEMON=1 runs mongosupd itself under valgrind (bounds widen).
tests_supervisor_daemon_test_SOURCES = tests/supervisor_daemon_test.c tests/peer/peer.c tests/peer/peer.h \
	tools/ctlclient.c tools/ctlclient.h
tests_supervisor_daemon_test_CPPFLAGS = $(AM_CPPFLAGS) $(PEER_CPPFLAGS) -I$(top_srcdir)/tools \
	-DMONGOSUPD_PATH=\"$(abs_top_builddir)/supervisor/mongosupd\" \
	-DVALGRIND_SUPP=\"$(abs_top_srcdir)/tests/valgrind.supp\"
tests_supervisor_daemon_test_CFLAGS = $(TEST_CFLAGS)
tests_supervisor_daemon_test_LDADD = $(TEST_LIBS)
EXTRA_tests_supervisor_daemon_test_DEPENDENCIES = supervisor/mongosupd
