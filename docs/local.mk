# docs/local.mk: build rules for docs/.
# Monitor and control tools (tools/): manual pages and the monitoring guide.
dist_man_MANS += docs/mongosup-top.1 docs/mongosupctl.1
EXTRA_DIST += docs/monitoring.md
