/*
 * peer.h - start, drive and stop the MongoDB test peer (mongopeer.py).
 *
 * The peer is a child process running tests/peer/mongopeer.py with
 * /usr/bin/python3 (Debian's python3-mockupdb).  It serves a standalone, a
 * replica set or a set of mongos on 127.0.0.1, and takes line-based JSON
 * control requests on its stdin (see the top of mongopeer.py for the list).
 *
 * Locating the script: $MONGOSUP_PEER_SCRIPT if set, else the compile-time
 * PEER_SCRIPT define (-DPEER_SCRIPT=\"$(abs_top_srcdir)/tests/peer/mongopeer.py\").
 * The interpreter is $MONGOSUP_PEER_PYTHON if set, else /usr/bin/python3.
 *
 * Real deployments: when $MONGOSUP_TEST_URI is set, integration suites also
 * run against it (test_peer_real_deployment()); tests that need peer faults
 * skip themselves there and say so.
 *
 * All functions are safe to call from any thread; one peer serialises its
 * own control requests.  Pipes are created with O_CLOEXEC so that peers
 * started later never inherit another peer's stdin.
 */
#ifndef MONGOSUP_TESTS_PEER_H
#define MONGOSUP_TESTS_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct test_peer test_peer_t;

#define TEST_PEER_MAX_MEMBERS 16

/*
 * Start a peer and wait (up to 30 s: a loaded machine) for its READY line.
 * mode: "standalone", "rs" or "mongos".  members: number of servers (<= 0
 * means the default: 3 for "rs", 1 otherwise; a standalone always has 1).
 * ports: NULL for port 0 (the OS picks), or `members` ports to bind.
 * Returns NULL (and prints why on stderr) on failure.
 */
test_peer_t *test_peer_start (const char *mode, int members, const int *ports);

/* Like test_peer_start, with extra command-line arguments for mongopeer.py
 * (NULL-terminated, may be NULL), e.g. {"--set-name", "other", NULL}. */
test_peer_t *test_peer_start_args (const char *mode,
                                   int members,
                                   const int *ports,
                                   const char *const *extra_args);

/*
 * Start the counting TCP proxy (countproxy.py, beside the peer's script) in
 * front of a standalone peer: its own process, forwarding every connection
 * to the peer.  The returned handle works like a peer's: test_peer_uri is
 * the proxy's address, test_peer_command / test_peer_stat speak the
 * proxy's control protocol (see the top of countproxy.py: "conn.max",
 * "handshakes.app_max", "bypass.count", "workers.open_max", ...), and
 * test_peer_stop stops it.  The upstream peer may be killed and restarted
 * behind it (same port).  Stop the proxy before the peer.
 */
test_peer_t *test_peer_start_proxy (const test_peer_t *upstream);

/*
 * Send one control request (a JSON object, no newline) and wait up to 20 s
 * for its one-line reply.  The reply is copied into reply/reply_len when
 * reply is not NULL (truncated, always NUL-terminated).  Returns true when
 * the reply says "ok": true.
 */
bool test_peer_command (test_peer_t *peer,
                        const char *json_line,
                        char *reply,
                        size_t reply_len);

/* printf-style test_peer_command without a reply buffer. */
bool test_peer_commandf (test_peer_t *peer, const char *fmt, ...)
   __attribute__ ((format (printf, 2, 3)));

/* Number of members, port of member i (0-based), child pid (-1 if none). */
int test_peer_members (const test_peer_t *peer);
int test_peer_port (const test_peer_t *peer, int member);
pid_t test_peer_pid (const test_peer_t *peer);
const char *test_peer_mode (const test_peer_t *peer);

/*
 * Connection string for the whole peer:
 *   standalone  mongodb://127.0.0.1:p/
 *   rs          mongodb://127.0.0.1:p1,127.0.0.1:p2,.../?replicaSet=rs0
 *   mongos      mongodb://127.0.0.1:p1,127.0.0.1:p2/
 * Owned by the peer; valid until test_peer_stop.
 */
const char *test_peer_uri (const test_peer_t *peer);

/*
 * The same URI with URI options appended ("socketTimeoutMS=500&..."; may be
 * NULL or empty).  Caller frees the result with free().
 */
char *test_peer_uri_with (const test_peer_t *peer, const char *options);

/* URI of one member with directConnection=true, plus options.  free() it. */
char *test_peer_member_uri (const test_peer_t *peer, int member,
                            const char *options);

/* Send a signal to the child (SIGKILL, SIGSTOP, SIGCONT, ...).  SIGSTOP
 * and SIGCONT return once the child has stopped / resumed (waitpid
 * WUNTRACED / WCONTINUED, at most 2 s).  After SIGKILL the child is reaped,
 * and test_peer_restart starts it again.  Control requests to a stopped peer
 * time out (20 s): send SIGCONT first. */
void test_peer_kill (test_peer_t *peer, int sig);

/* Kill the child if it is still running and start a new one with the same
 * mode, members, extra arguments and ports; waits for READY.  The new
 * process starts with empty data, no faults and zeroed statistics. */
bool test_peer_restart (test_peer_t *peer);

/*
 * One number from {"cmd":"stats"}, by dotted path:
 *   "cmd.insert", "conn.current", "conn.max", "conn.total", "cursors",
 *   "handshakes.current", "handshakes.max", "handshakes.total" (first hellos
 *   being answered: connections in their handshake),
 *   "members.1.cmd.find", "members.0.conn.current", "members.2.up", ...
 * Missing counters are 0 (a command never received); returns -1 when the
 * peer does not answer.
 */
long test_peer_stat (test_peer_t *peer, const char *key);

/* Number of documents in db.coll on the peer (-1 on error). */
long test_peer_count (test_peer_t *peer, const char *db, const char *coll);

/* Close the child's stdin (it exits at once), wait up to 10 s, then
 * SIGKILL.  Frees the peer and sets *peer to NULL.  NULL-safe. */
void test_peer_stop (test_peer_t **peer);

/* How many test_peer_stop calls, in this process, found a peer that had not
 * exited by itself at EOF within the stop timeout and killed it. */
unsigned test_peer_forced_stops (void);

/* True when $MONGOSUP_TEST_URI names a real deployment. */
bool test_peer_real_deployment (void);
/* $MONGOSUP_TEST_URI or NULL. */
const char *test_peer_real_uri (void);

#ifdef __cplusplus
}
#endif

#endif /* MONGOSUP_TESTS_PEER_H */
