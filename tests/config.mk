# tests/config.mk: the configuration loader, the files it reads, and redaction tests (included by Makefile.am).
check_PROGRAMS += %D%/config_test
TESTS += %D%/config_test
%C%_config_test_SOURCES = %D%/config_test.c
%C%_config_test_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS) $(LIBCONFIG_CFLAGS) -I$(top_srcdir)/lib
%C%_config_test_LDADD = lib/libmsup_core.la $(MONGOC_LIBS) $(LIBCONFIG_LIBS) $(CUNIT_LIBS)

# The files the loader is given (FIFOs, directories, devices, symlinks), segment
# names, and mongosupd keeping its environment across a reload.
check_PROGRAMS += %D%/config_files_test
TESTS += %D%/config_files_test
%C%_config_files_test_SOURCES = %D%/config_files_test.c
%C%_config_files_test_CPPFLAGS = $(AM_CPPFLAGS) -DMONGOSUP_BUILDDIR=\"$(abs_top_builddir)\"
%C%_config_files_test_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/lib
%C%_config_files_test_LDADD = $(TEST_LIBS) $(LIBCONFIG_LIBS)
EXTRA_%C%_config_files_test_DEPENDENCIES = supervisor/mongosupd
