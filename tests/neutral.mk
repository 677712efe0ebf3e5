# tests/neutral.mk: the driver-neutral worker API's suite (C) and the Python package's pytest suite.
check_PROGRAMS += tests/neutral_api_test
TESTS += tests/neutral_api_test
tests_neutral_api_test_SOURCES = tests/neutral_api_test.c $(WORKER_TEST_SOURCES)
tests_neutral_api_test_CPPFLAGS = $(WORKER_TEST_CPPFLAGS)
tests_neutral_api_test_CFLAGS = $(TEST_CFLAGS)
tests_neutral_api_test_LDADD = $(TEST_LIBS)
