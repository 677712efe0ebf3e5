# tests/tools.mk: tests of mongosup-top, mongosupctl and the /metrics endpoint.
TOOLS_TEST_CFLAGS = $(TEST_CFLAGS) $(JSONC_CFLAGS) -I$(top_srcdir)/tools -I$(top_srcdir)/supervisor \
	-DMSUP_BUILDDIR=\"$(abs_top_builddir)\"
TOOLS_TEST_SOURCES = tests/tools_fixture.h tests/tools_fixture.c tests/tools_promcheck.h tests/tools_promcheck.c
TOOLS_TEST_LIBS = tools/libmsup_export.la $(TEST_LIBS) $(JSONC_LIBS) -lm

check_PROGRAMS += tests/tools_export_test tests/tools_ctl_test tests/tools_top_test tests/tools_metrics_test \
	tests/tools_daemon_test
TESTS += tests/tools_export_test tests/tools_ctl_test tests/tools_top_test tests/tools_metrics_test \
	tests/tools_daemon_test
# The tests run the built tools (and the daemon): build them first.
TOOLS_TEST_DEPS = tools/mongosup-top tools/mongosupctl
EXTRA_tests_tools_export_test_DEPENDENCIES = $(TOOLS_TEST_DEPS)
EXTRA_tests_tools_ctl_test_DEPENDENCIES = $(TOOLS_TEST_DEPS)
EXTRA_tests_tools_top_test_DEPENDENCIES = $(TOOLS_TEST_DEPS)
EXTRA_tests_tools_daemon_test_DEPENDENCIES = $(TOOLS_TEST_DEPS) supervisor/mongosupd

tests_tools_export_test_SOURCES = tests/tools_export_test.c $(TOOLS_TEST_SOURCES)
tests_tools_export_test_CFLAGS = $(TOOLS_TEST_CFLAGS)
tests_tools_export_test_LDADD = $(TOOLS_TEST_LIBS)
tests_tools_ctl_test_SOURCES = tests/tools_ctl_test.c $(TOOLS_TEST_SOURCES)
tests_tools_ctl_test_CFLAGS = $(TOOLS_TEST_CFLAGS)
tests_tools_ctl_test_LDADD = $(TOOLS_TEST_LIBS)
tests_tools_top_test_SOURCES = tests/tools_top_test.c $(TOOLS_TEST_SOURCES)
tests_tools_top_test_CFLAGS = $(TOOLS_TEST_CFLAGS)
tests_tools_top_test_LDADD = $(TOOLS_TEST_LIBS)
tests_tools_metrics_test_SOURCES = tests/tools_metrics_test.c $(TOOLS_TEST_SOURCES)
tests_tools_metrics_test_CFLAGS = $(TOOLS_TEST_CFLAGS) $(MHD_CFLAGS)
tests_tools_metrics_test_LDADD = $(MSUP_METRICS_LIBS) $(TOOLS_TEST_LIBS) $(MHD_LIBS)
tests_tools_daemon_test_SOURCES = tests/tools_daemon_test.c $(TOOLS_TEST_SOURCES)
tests_tools_daemon_test_CFLAGS = $(TOOLS_TEST_CFLAGS)
tests_tools_daemon_test_LDADD = $(TOOLS_TEST_LIBS)

# The control socket against a real mongosupd (supervisor/control.c, tools/ctlclient.c).
check_PROGRAMS += tests/control_socket_test
TESTS += tests/control_socket_test
EXTRA_tests_control_socket_test_DEPENDENCIES = $(TOOLS_TEST_DEPS) supervisor/mongosupd
tests_control_socket_test_SOURCES = tests/control_socket_test.c tools/ctlclient.c tools/ctlclient.h \
	$(TOOLS_TEST_SOURCES)
tests_control_socket_test_CFLAGS = $(TOOLS_TEST_CFLAGS)
tests_control_socket_test_LDADD = $(TOOLS_TEST_LIBS)

# The live view's models: history, averages, sparklines, filter, latency lines (no terminal).
check_PROGRAMS += tests/tools_topview_test
TESTS += tests/tools_topview_test
tests_tools_topview_test_SOURCES = tests/tools_topview_test.c $(TOOLS_TEST_SOURCES)
tests_tools_topview_test_CFLAGS = $(TOOLS_TEST_CFLAGS)
tests_tools_topview_test_LDADD = tools/libmsup_topview.la $(TOOLS_TEST_LIBS)
