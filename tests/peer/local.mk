# tests/peer/local.mk: the MongoDB test peer (mongopeer.py, run with
# /usr/bin/python3 + python3-mockupdb), its C API (peer.c/peer.h) and the
# CUnit suite that checks the peer and the driver's behaviour under faults.
#
# Other test programs that link peer.c add the same define:
#   $(PEER_CPPFLAGS)  (-DPEER_SCRIPT=\"$(abs_top_srcdir)/tests/peer/mongopeer.py\")
PEER_CPPFLAGS = -DPEER_SCRIPT=\"$(abs_top_srcdir)/tests/peer/mongopeer.py\"

check_PROGRAMS += %D%/peer_test
TESTS += %D%/peer_test
%C%_peer_test_SOURCES = %D%/peer_test.c %D%/peer.c %D%/peer.h
%C%_peer_test_CPPFLAGS = $(AM_CPPFLAGS) $(PEER_CPPFLAGS)
%C%_peer_test_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS)
%C%_peer_test_LDADD = $(MONGOC_LIBS) $(CUNIT_LIBS) $(PTHREAD_LIBS)
EXTRA_DIST += %D%/mongopeer.py %D%/countproxy.py
