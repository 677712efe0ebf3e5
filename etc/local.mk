# etc/local.mk: the example configuration (documentation, never installed over
# /etc) and the systemd unit for mongosupd.
EXTRA_DIST += etc/mongosup.conf.example etc/mongosupd.service.in

# The unit is generated with the configured paths; installed when a unit
# directory is known (override with make systemdunitdir=...).
systemdunitdir = $(prefix)/lib/systemd/system
systemdunit_DATA = etc/mongosupd.service
CLEANFILES += etc/mongosupd.service
etc/mongosupd.service: etc/mongosupd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) etc && sed \
	  -e 's|@sbindir[@]|$(sbindir)|g' \
	  -e 's|@bindir[@]|$(bindir)|g' \
	  -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	  -e 's|@docdir[@]|$(docdir)|g' \
	  $(srcdir)/etc/mongosupd.service.in > $@

# The example configuration goes with the documentation.
exampledir = $(docdir)/examples
example_DATA = etc/mongosup.conf.example
