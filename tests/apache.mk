# tests/apache.mk: mod_mongosup in a real Apache httpd (prefork), started by the test with the peer and mongosupd.
if HAVE_APXS
check_PROGRAMS += tests/apache_test
TESTS += tests/apache_test
tests_apache_test_SOURCES = tests/apache_test.c tests/apache_fixture.c tests/apache_fixture.h \
	tests/peer/peer.c tests/peer/peer.h
tests_apache_test_CPPFLAGS = $(AM_CPPFLAGS) $(PEER_CPPFLAGS) -DMSUP_BUILDDIR=\"$(abs_top_builddir)\" \
	-DAPACHE2_BIN=\"$(APACHE2_BIN)\" -DAB_BIN=\"$(AB_BIN)\" -DAPACHE_LIBEXECDIR=\"$(APACHE_LIBEXECDIR)\" \
	-DVALGRIND_BIN=\"$(VALGRIND)\" -DVALGRIND_SUPP=\"$(abs_top_srcdir)/tests/valgrind.supp\"
tests_apache_test_CFLAGS = $(TEST_CFLAGS) $(JSONC_CFLAGS)
tests_apache_test_LDADD = $(TEST_LIBS) $(JSONC_LIBS)
# The test runs the module, mongosupd and mongosup-top: build them first.
EXTRA_tests_apache_test_DEPENDENCIES = apache/mod_mongosup.la supervisor/mongosupd tools/mongosup-top
# make install into a DESTDIR, a2enmod, apache2 -t on the installed files.
TESTS += tests/apache_install_test.sh
APACHE_TESTS_ENVIRONMENT = export MONGOSUP_TEST_APACHE2='$(APACHE2_BIN)'; \
	export MONGOSUP_TEST_APACHE_LIBEXECDIR='$(APACHE_LIBEXECDIR)';
endif
EXTRA_DIST += tests/apache_install_test.sh
