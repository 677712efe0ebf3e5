# tests/neutral.mk: the driver-neutral worker API's suite (C) and the Python package's pytest suite.
check_PROGRAMS += tests/neutral_api_test
TESTS += tests/neutral_api_test
tests_neutral_api_test_SOURCES = tests/neutral_api_test.c $(WORKER_TEST_SOURCES)
tests_neutral_api_test_CPPFLAGS = $(WORKER_TEST_CPPFLAGS)
tests_neutral_api_test_CFLAGS = $(TEST_CFLAGS)
tests_neutral_api_test_LDADD = $(TEST_LIBS)

# The Python package (python/) with pymongo, Motor and a real gunicorn: a script, so check-valgrind skips it.
TESTS += tests/python.sh
EXTRA_DIST += tests/python.sh tests/python/conftest.py tests/python/test_manager.py tests/python/test_gunicorn.py \
	tests/python/test_motor.py tests/python/wsgi_app.py tests/python/gunicorn_conf.py \
	python/pyproject.toml python/README.md python/mongosup/__init__.py python/mongosup/_native.py \
	python/mongosup/errors.py python/mongosup/classify.py python/mongosup/listeners.py \
	python/mongosup/manager.py python/mongosup/motor.py python/mongosup/retry.py python/mongosup/gunicorn.py
EXTRA_DIST += bench/python_record_bench.py
