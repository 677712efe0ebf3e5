# tests/config.mk: the configuration loader and redaction tests (included by Makefile.am).
check_PROGRAMS += %D%/config_test
TESTS += %D%/config_test
%C%_config_test_SOURCES = %D%/config_test.c
%C%_config_test_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS) $(LIBCONFIG_CFLAGS) -I$(top_srcdir)/lib
%C%_config_test_LDADD = lib/libmsup_core.la $(MONGOC_LIBS) $(LIBCONFIG_LIBS) $(CUNIT_LIBS)
