# apache/local.mk: mod_mongosup, the Apache httpd module (built when configure found apxs), and its a2enmod files.
if HAVE_APXS
# A libtool module against apxs's includes and flags.  libmsup_core and the
# exporters are linked in (static convenience libraries); only the module
# record is exported, so no mongosup_* symbol can clash with another module's.
# -z nodelete: Apache unloads and reloads DSOs at every restart; libmongoc
# must not be unloaded under the driver's globals.
apachemod_LTLIBRARIES = apache/mod_mongosup.la
apache_mod_mongosup_la_SOURCES = apache/mod_mongosup.h apache/module.h apache/mod_mongosup.c apache/request.c \
	apache/status.c apache/demo.c
apache_mod_mongosup_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tools $(APACHE_CPPFLAGS)
apache_mod_mongosup_la_CFLAGS = $(AM_CFLAGS) $(APACHE_CFLAGS) $(MONGOC_CFLAGS)
apache_mod_mongosup_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared -no-undefined \
	-export-symbols-regex '^mongosup_module$$' -Wl,-z,nodelete
apache_mod_mongosup_la_LIBADD = tools/libmsup_export.la lib/libmsup_core.la $(MONGOC_LIBS) $(JSONC_LIBS) \
	$(LIBCONFIG_LIBS) $(SHM_LIBS) $(PTHREAD_LIBS)
include_HEADERS += apache/mod_mongosup.h

# mods-available/mongosup.conf is installed as it is; mongosup.load names
# the installed .so, so it is written at install time from the apachemoddir
# of that `make install` (a copy made at build time kept the path of the
# build's configuration when apachemoddir=DIR was given to make install).
apacheconf_modsdir = $(apacheconfdir)/mods-available
apacheconf_mods_DATA = apache/mongosup.conf
msup_apache_built = yes
else
msup_apache_built =
endif
EXTRA_DIST += apache/mongosup.load.in apache/mongosup.conf

# (Outside the conditional: automake wants each of these rules once; without
# apxs (msup_apache_built empty) they install and remove nothing.)
# Apache loads the .so; a libtool archive has no use in its module folder
# (Debian ships none there).  The .so and mongosup.load go at uninstall by
# name, since the archive that libtool's uninstall reads is gone.
install-data-hook: install-apache-module-tidy
install-apache-module-tidy:
	@if test -n "$(msup_apache_built)"; then \
	  rm -f "$(DESTDIR)$(apachemoddir)/mod_mongosup.la"; \
	  echo " writing $(DESTDIR)$(apacheconfdir)/mods-available/mongosup.load"; \
	  $(MKDIR_P) "$(DESTDIR)$(apacheconfdir)/mods-available" && \
	  sed -e 's|@apachemoddir[@]|$(apachemoddir)|g' $(top_srcdir)/apache/mongosup.load.in \
	    > "$(DESTDIR)$(apacheconfdir)/mods-available/mongosup.load"; \
	fi
uninstall-local: uninstall-apache-module
uninstall-apache-module:
	@if test -n "$(msup_apache_built)"; then \
	  rm -f "$(DESTDIR)$(apachemoddir)/mod_mongosup.so" "$(DESTDIR)$(apacheconfdir)/mods-available/mongosup.load"; \
	fi
.PHONY: install-apache-module-tidy uninstall-apache-module
