# docs/local.mk: build rules for docs/.
# Monitor and control tools (tools/): manual pages and the monitoring guide.
dist_man_MANS += docs/mongosup-top.1 docs/mongosupctl.1
EXTRA_DIST += docs/monitoring.md
# Operating mongosupd (supervisor/).
EXTRA_DIST += docs/operations.md
# User documentation: concepts, troubleshooting, configuration, segment; the daemon and file manual pages.
dist_man_MANS += docs/mongosupd.8 docs/mongosup.conf.5
EXTRA_DIST += docs/concepts.md docs/troubleshooting.md docs/configuration.md docs/segment.md
# The C API reference (lib/, worker side).
EXTRA_DIST += docs/api.md
# The connection budget (lib/budget.c) and the fleet-wide one (fleet/).
EXTRA_DIST += docs/budget.md docs/fleet.md
# The trust model (lib/segment, supervisor/control, tools).
EXTRA_DIST += docs/security.md
# mod_mongosup, the Apache httpd module (apache/).
EXTRA_DIST += docs/apache.md
# The Python package (python/): pymongo / Motor / gunicorn guide.
EXTRA_DIST += docs/python.md
# Measured figures of every benchmark (bench/run-all.sh) and what they mean.
EXTRA_DIST += docs/benchmarks.md
