# tests/neutral.mk: the driver-neutral worker API's suite (C) and the Python package's pytest suite.
check_PROGRAMS += tests/neutral_api_test
TESTS += tests/neutral_api_test
tests_neutral_api_test_SOURCES = tests/neutral_api_test.c $(WORKER_TEST_SOURCES)
tests_neutral_api_test_CPPFLAGS = $(WORKER_TEST_CPPFLAGS)
tests_neutral_api_test_CFLAGS = $(TEST_CFLAGS)
tests_neutral_api_test_LDADD = $(TEST_LIBS)

# The Python package (python/) with pymongo, Motor and a real gunicorn: a script, so check-valgrind skips it.
TESTS += tests/python.sh
# make install DESTDIR=... of the package, and an import from the installed tree (python/local.mk).
TESTS += tests/python_install.sh
EXTRA_DIST += tests/python.sh tests/python_install.sh tests/python/conftest.py tests/python/test_manager.py tests/python/test_gunicorn.py \
	tests/python/test_motor.py tests/python/wsgi_app.py tests/python/gunicorn_conf.py \
	tests/python/test_proxy.py tests/python/poolstate.py
EXTRA_DIST += bench/python_record_bench.py
