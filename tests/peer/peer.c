/*
 * peer.c - child-process control for tests/peer/mongopeer.py (see peer.h).
 */
#include "peer.h"

#include <bson/bson.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PEER_SCRIPT
#define PEER_SCRIPT "tests/peer/mongopeer.py"
#endif

#ifndef PEER_PYTHON
#define PEER_PYTHON "/usr/bin/python3"
#endif
/* Deadlines, not delays: python's start-up (mockupdb, pymongo's bson) took
 * more than 5 s on a loaded 2-core machine, and a missed READY failed the
 * whole test.  A peer that starts takes what it takes; one that hangs is
 * still given up on.  A start slower than PEER_SLOW_START_MS is said. */
#define PEER_READY_TIMEOUT_MS 30000
#define PEER_REPLY_TIMEOUT_MS 20000
#define PEER_SLOW_START_MS 5000
/* A peer exits by itself at EOF on its stdin; one that has not after this
 * long is killed and counted (test_peer_forced_stops). */
#define PEER_STOP_TIMEOUT_MS 10000
#define PEER_MAX_EXTRA 16

struct test_peer {
   pthread_mutex_t mu;
   char script[1024]; /* mongopeer.py, or countproxy.py beside it */
   char mode[16];
   int members;
   int ports[TEST_PEER_MAX_MEMBERS];
   char *extra[PEER_MAX_EXTRA + 1];
   pid_t pid;
   bool stopped; /* SIGSTOPped by test_peer_kill */
   int to_child;   /* child's stdin (write end) */
   int from_child; /* child's stdout (read end) */
   char *buf;      /* bytes read from the child, not yet consumed */
   size_t buf_len;
   size_t buf_cap;
   char *line; /* last line read */
   char uri[64 + TEST_PEER_MAX_MEMBERS * 24];
};

static int64_t
now_ms (void)
{
   struct timespec ts;
   clock_gettime (CLOCK_MONOTONIC, &ts);
   return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms (int ms)
{
   struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
   while (nanosleep (&ts, &ts) != 0 && errno == EINTR) {
   }
}

bool
test_peer_real_deployment (void)
{
   return test_peer_real_uri () != NULL;
}

const char *
test_peer_real_uri (void)
{
   const char *u = getenv ("MONGOSUP_TEST_URI");
   return (u && *u) ? u : NULL;
}

static const char *
script_path (void)
{
   const char *s = getenv ("MONGOSUP_PEER_SCRIPT");
   return (s && *s) ? s : PEER_SCRIPT;
}

static const char *
python_path (void)
{
   const char *s = getenv ("MONGOSUP_PEER_PYTHON");
   return (s && *s) ? s : PEER_PYTHON;
}

static void
close_fd (int *fd)
{
   if (*fd >= 0) {
      close (*fd);
      *fd = -1;
   }
}

/* Read one '\n'-terminated line from the child into peer->line (without the
 * newline).  Caller holds mu.  Returns false on timeout, EOF or error. */
static bool
read_line (test_peer_t *peer, int timeout_ms)
{
   int64_t deadline = now_ms () + timeout_ms;

   for (;;) {
      char *nl = peer->buf_len ? memchr (peer->buf, '\n', peer->buf_len) : NULL;
      if (nl) {
         size_t n = (size_t) (nl - peer->buf);
         free (peer->line);
         peer->line = malloc (n + 1);
         if (!peer->line) {
            return false;
         }
         memcpy (peer->line, peer->buf, n);
         peer->line[n] = '\0';
         memmove (peer->buf, nl + 1, peer->buf_len - n - 1);
         peer->buf_len -= n + 1;
         return true;
      }
      if (peer->from_child < 0) {
         return false;
      }
      int64_t left = deadline - now_ms ();
      if (left <= 0) {
         return false;
      }
      struct pollfd pfd = {.fd = peer->from_child, .events = POLLIN};
      int r = poll (&pfd, 1, (int) left);
      if (r < 0 && errno == EINTR) {
         continue;
      }
      if (r <= 0) {
         return false;
      }
      if (peer->buf_cap - peer->buf_len < 4096) {
         size_t cap = peer->buf_cap ? peer->buf_cap * 2 : 65536;
         char *nb = realloc (peer->buf, cap);
         if (!nb) {
            return false;
         }
         peer->buf = nb;
         peer->buf_cap = cap;
      }
      ssize_t got = read (
         peer->from_child, peer->buf + peer->buf_len, peer->buf_cap - peer->buf_len);
      if (got < 0 && errno == EINTR) {
         continue;
      }
      if (got <= 0) {
         return false;
      }
      peer->buf_len += (size_t) got;
   }
}

static bool
write_all (int fd, const char *p, size_t n)
{
   while (n > 0) {
      ssize_t w = write (fd, p, n);
      if (w < 0 && errno == EINTR) {
         continue;
      }
      if (w <= 0) {
         return false;
      }
      p += w;
      n -= (size_t) w;
   }
   return true;
}

static void
build_uri (test_peer_t *peer)
{
   size_t off = 0;
   off += (size_t) snprintf (peer->uri, sizeof peer->uri, "mongodb://");
   for (int i = 0; i < peer->members; i++) {
      off += (size_t) snprintf (peer->uri + off,
                                sizeof peer->uri - off,
                                "%s127.0.0.1:%d",
                                i ? "," : "",
                                peer->ports[i]);
   }
   if (strcmp (peer->mode, "rs") == 0) {
      const char *set = "rs0";
      for (int i = 0; peer->extra[i] && peer->extra[i + 1]; i++) {
         if (strcmp (peer->extra[i], "--set-name") == 0) {
            set = peer->extra[i + 1];
         }
      }
      snprintf (peer->uri + off, sizeof peer->uri - off, "/?replicaSet=%s", set);
   } else {
      snprintf (peer->uri + off, sizeof peer->uri - off, "/");
   }
}

/* Parse `READY {json}` and fill in ports. */
static bool
parse_ready (test_peer_t *peer)
{
   const char *line = peer->line;
   if (strncmp (line, "READY ", 6) != 0) {
      fprintf (stderr, "test_peer: unexpected first line: %s\n", line);
      return false;
   }
   bson_error_t err;
   bson_t *doc = bson_new_from_json ((const uint8_t *) line + 6, -1, &err);
   if (!doc) {
      fprintf (stderr, "test_peer: bad READY line (%s): %s\n", err.message, line);
      return false;
   }
   bson_iter_t it, child;
   int n = 0;
   if (bson_iter_init_find (&it, doc, "ports") && BSON_ITER_HOLDS_ARRAY (&it) &&
       bson_iter_recurse (&it, &child)) {
      while (bson_iter_next (&child) && n < TEST_PEER_MAX_MEMBERS) {
         peer->ports[n++] = (int) bson_iter_as_int64 (&child);
      }
   }
   bson_destroy (doc);
   if (n < 1) {
      fprintf (stderr, "test_peer: READY line without ports: %s\n", line);
      return false;
   }
   peer->members = n;
   build_uri (peer);
   return true;
}

static atomic_uint forced_stops;

/* Waits for the child to exit, SIGKILLs it after timeout_ms.  Returns true
 * when it had to kill it. */
static bool
reap (test_peer_t *peer, int timeout_ms)
{
   bool killed = false;
   if (peer->pid <= 0) {
      return false;
   }
   int64_t deadline = now_ms () + timeout_ms;
   for (;;) {
      int status;
      pid_t r = waitpid (peer->pid, &status, WNOHANG);
      if (r == peer->pid || (r < 0 && errno == ECHILD)) {
         break;
      }
      if (now_ms () >= deadline) {
         kill (peer->pid, SIGKILL);
         while (waitpid (peer->pid, &status, 0) < 0 && errno == EINTR) {
         }
         killed = true;
         break;
      }
      sleep_ms (2);
   }
   peer->pid = -1;
   return killed;
}

/* Start the child and wait for READY.  Caller holds mu (or owns peer). */
/* In the forked child: makes fd the child's descriptor target. When the
 * test runs with a closed stdin (CI does), pipe2() may have handed out
 * descriptor 0 itself: dup2(0, 0) is a no-op that keeps FD_CLOEXEC, and
 * exec would close the peer's command pipe. Async-signal-safe. */
static bool
child_stdio (int fd, int target)
{
   if (fd == target) {
      return fcntl (fd, F_SETFD, 0) == 0;
   }
   return dup2 (fd, target) >= 0;
}

static bool
spawn (test_peer_t *peer, bool same_ports)
{
   char members_arg[16], ports_arg[TEST_PEER_MAX_MEMBERS * 8 + 1];
   const char *argv[16 + PEER_MAX_EXTRA];
   int argc = 0;

   argv[argc++] = python_path ();
   argv[argc++] = peer->script;
   argv[argc++] = "--mode";
   argv[argc++] = peer->mode;
   if (peer->members > 0) {
      snprintf (members_arg, sizeof members_arg, "%d", peer->members);
      argv[argc++] = "--members";
      argv[argc++] = members_arg;
   }
   if (same_ports) {
      size_t off = 0;
      ports_arg[0] = '\0';
      for (int i = 0; i < peer->members; i++) {
         off += (size_t) snprintf (ports_arg + off,
                                   sizeof ports_arg - off,
                                   "%s%d",
                                   i ? "," : "",
                                   peer->ports[i]);
      }
      argv[argc++] = "--ports";
      argv[argc++] = ports_arg;
   }
   for (int i = 0; peer->extra[i]; i++) {
      argv[argc++] = peer->extra[i];
   }
   argv[argc] = NULL;

   int in_pipe[2], out_pipe[2];
   if (pipe2 (in_pipe, O_CLOEXEC) != 0) {
      perror ("test_peer: pipe2");
      return false;
   }
   if (pipe2 (out_pipe, O_CLOEXEC) != 0) {
      perror ("test_peer: pipe2");
      close (in_pipe[0]);
      close (in_pipe[1]);
      return false;
   }

   pid_t pid = fork ();
   if (pid < 0) {
      perror ("test_peer: fork");
      close (in_pipe[0]);
      close (in_pipe[1]);
      close (out_pipe[0]);
      close (out_pipe[1]);
      return false;
   }
   if (pid == 0) {
      /* Child: only async-signal-safe calls until exec. dup2 clears
       * FD_CLOEXEC on the new descriptors. */
      if (!child_stdio (in_pipe[0], STDIN_FILENO) ||
          !child_stdio (out_pipe[1], STDOUT_FILENO)) {
         _exit (126);
      }
      /* Do not leak the test's sockets (driver connections to this or
       * other peers) into the peer: a socket the test closes must close. */
      if (close_range (3, ~0U, 0) != 0) {
         for (int fd = 3; fd < 1024; fd++) {
            close (fd);
         }
      }
      signal (SIGPIPE, SIG_DFL);
      execv (argv[0], (char *const *) argv);
      _exit (127);
   }
   close (in_pipe[0]);
   close (out_pipe[1]);
   peer->pid = pid;
   peer->stopped = false;
   peer->to_child = in_pipe[1];
   peer->from_child = out_pipe[0];
   peer->buf_len = 0;

   int64_t started = now_ms ();
   if (!read_line (peer, PEER_READY_TIMEOUT_MS)) {
      fprintf (stderr,
               "test_peer: %s %s did not become ready in %d ms (pid %d)\n",
               argv[0],
               argv[1],
               PEER_READY_TIMEOUT_MS,
               (int) pid);
      kill (pid, SIGKILL);
      reap (peer, 1000);
      close_fd (&peer->to_child);
      close_fd (&peer->from_child);
      return false;
   }
   if (now_ms () - started > PEER_SLOW_START_MS) {
      fprintf (stderr,
               "test_peer: %s took %lld ms to become ready\n",
               argv[1],
               (long long) (now_ms () - started));
   }
   if (!parse_ready (peer)) {
      kill (pid, SIGKILL);
      reap (peer, 1000);
      close_fd (&peer->to_child);
      close_fd (&peer->from_child);
      return false;
   }
   return true;
}

static void
peer_free (test_peer_t *peer)
{
   for (int i = 0; peer->extra[i]; i++) {
      free (peer->extra[i]);
   }
   free (peer->buf);
   free (peer->line);
   pthread_mutex_destroy (&peer->mu);
   free (peer);
}

/* A write to a dead peer's stdin must fail with EPIPE, not kill the test. */
static void
ignore_sigpipe (void)
{
   struct sigaction sa;
   if (sigaction (SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
      signal (SIGPIPE, SIG_IGN);
   }
}

static test_peer_t *
start_script (const char *script,
              const char *mode,
              int members,
              const int *ports,
              const char *const *extra_args)
{
   static pthread_once_t once = PTHREAD_ONCE_INIT;

   if (!mode || (strcmp (mode, "standalone") && strcmp (mode, "rs") &&
                 strcmp (mode, "mongos"))) {
      fprintf (stderr, "test_peer: bad mode %s\n", mode ? mode : "(null)");
      return NULL;
   }
   if (members > TEST_PEER_MAX_MEMBERS || (ports && members <= 0)) {
      fprintf (stderr, "test_peer: bad member count %d\n", members);
      return NULL;
   }
   pthread_once (&once, ignore_sigpipe);

   test_peer_t *peer = calloc (1, sizeof *peer);
   if (!peer) {
      return NULL;
   }
   pthread_mutex_init (&peer->mu, NULL);
   snprintf (peer->script, sizeof peer->script, "%s", script ? script : script_path ());
   snprintf (peer->mode, sizeof peer->mode, "%s", mode);
   peer->members = members > 0 ? members : 0;
   peer->pid = -1;
   peer->to_child = -1;
   peer->from_child = -1;
   for (int i = 0; extra_args && extra_args[i] && i < PEER_MAX_EXTRA; i++) {
      peer->extra[i] = strdup (extra_args[i]);
   }
   if (ports) {
      memcpy (peer->ports, ports, sizeof (int) * (size_t) members);
   }
   if (!spawn (peer, ports != NULL)) {
      peer_free (peer);
      return NULL;
   }
   return peer;
}

test_peer_t *
test_peer_start_args (const char *mode,
                      int members,
                      const int *ports,
                      const char *const *extra_args)
{
   return start_script (NULL, mode, members, ports, extra_args);
}

test_peer_t *
test_peer_start_proxy (const test_peer_t *upstream)
{
   if (!upstream || strcmp (upstream->mode, "standalone") != 0) {
      fprintf (stderr, "test_peer: the counting proxy fronts a standalone peer\n");
      return NULL;
   }
   char script[sizeof upstream->script], port[16];
   snprintf (script, sizeof script, "%s", upstream->script);
   char *slash = strrchr (script, '/');
   size_t dir = slash ? (size_t) (slash - script) + 1 : 0;
   snprintf (script + dir, sizeof script - dir, "countproxy.py");
   snprintf (port, sizeof port, "%d", upstream->ports[0]);
   const char *const args[] = {"--upstream", port, NULL};
   return start_script (script, "standalone", 1, NULL, args);
}

test_peer_t *
test_peer_start (const char *mode, int members, const int *ports)
{
   return test_peer_start_args (mode, members, ports, NULL);
}

static bool
reply_ok (const char *line)
{
   bson_error_t err;
   bson_t *doc = bson_new_from_json ((const uint8_t *) line, -1, &err);
   bson_iter_t it;
   bool ok = false;
   if (doc) {
      ok = bson_iter_init_find (&it, doc, "ok") && BSON_ITER_HOLDS_BOOL (&it) &&
           bson_iter_bool (&it);
      bson_destroy (doc);
   }
   return ok;
}

/* Send a request and read its reply into peer->line. Caller holds mu. */
static bool
roundtrip (test_peer_t *peer, const char *json_line)
{
   free (peer->line);
   peer->line = NULL;
   if (peer->to_child < 0) {
      return false;
   }
   if (!write_all (peer->to_child, json_line, strlen (json_line)) ||
       !write_all (peer->to_child, "\n", 1)) {
      return false;
   }
   return read_line (peer, PEER_REPLY_TIMEOUT_MS);
}

bool
test_peer_command (test_peer_t *peer, const char *json_line, char *reply, size_t reply_len)
{
   bool ok = false;

   if (reply && reply_len) {
      reply[0] = '\0';
   }
   if (!peer || !json_line) {
      return false;
   }
   pthread_mutex_lock (&peer->mu);
   if (roundtrip (peer, json_line)) {
      ok = reply_ok (peer->line);
      if (reply && reply_len) {
         snprintf (reply, reply_len, "%s", peer->line);
      }
      if (!ok) {
         fprintf (stderr, "test_peer: %s -> %s\n", json_line, peer->line);
      }
   } else {
      fprintf (stderr, "test_peer: no reply to %s\n", json_line);
   }
   pthread_mutex_unlock (&peer->mu);
   return ok;
}

bool
test_peer_commandf (test_peer_t *peer, const char *fmt, ...)
{
   char line[4096];
   va_list ap;
   va_start (ap, fmt);
   int n = vsnprintf (line, sizeof line, fmt, ap);
   va_end (ap);
   if (n < 0 || (size_t) n >= sizeof line) {
      return false;
   }
   return test_peer_command (peer, line, NULL, 0);
}

int
test_peer_members (const test_peer_t *peer)
{
   return peer ? peer->members : 0;
}

int
test_peer_port (const test_peer_t *peer, int member)
{
   if (!peer || member < 0 || member >= peer->members) {
      return -1;
   }
   return peer->ports[member];
}

pid_t
test_peer_pid (const test_peer_t *peer)
{
   return peer ? peer->pid : -1;
}

const char *
test_peer_mode (const test_peer_t *peer)
{
   return peer ? peer->mode : NULL;
}

const char *
test_peer_uri (const test_peer_t *peer)
{
   return peer ? peer->uri : NULL;
}

char *
test_peer_uri_with (const test_peer_t *peer, const char *options)
{
   if (!peer) {
      return NULL;
   }
   if (!options || !*options) {
      return strdup (peer->uri);
   }
   bool has_query = strchr (peer->uri, '?') != NULL;
   size_t n = strlen (peer->uri) + strlen (options) + 2;
   char *s = malloc (n);
   if (s) {
      snprintf (s, n, "%s%s%s", peer->uri, has_query ? "&" : "?", options);
   }
   return s;
}

char *
test_peer_member_uri (const test_peer_t *peer, int member, const char *options)
{
   int port = test_peer_port (peer, member);
   if (port < 0) {
      return NULL;
   }
   size_t n = 96 + (options ? strlen (options) : 0);
   char *s = malloc (n);
   if (s) {
      snprintf (s,
                n,
                "mongodb://127.0.0.1:%d/?directConnection=true%s%s",
                port,
                options && *options ? "&" : "",
                options ? options : "");
   }
   return s;
}

void
test_peer_kill (test_peer_t *peer, int sig)
{
   if (!peer) {
      return;
   }
   pthread_mutex_lock (&peer->mu);
   if (peer->pid > 0) {
      kill (peer->pid, sig);
      if (sig == SIGSTOP || (sig == SIGCONT && peer->stopped)) {
         /* kill() returns before every thread has stopped (or resumed):
          * wait for the state change so a test's next call sees it. */
         int64_t deadline = now_ms () + 2000;
         int status;
         for (;;) {
            pid_t r = waitpid (peer->pid, &status, WNOHANG | (sig == SIGSTOP ? WUNTRACED : WCONTINUED));
            if (r == peer->pid || (r < 0 && errno != EINTR) || now_ms () >= deadline) {
               break;
            }
            sleep_ms (1);
         }
         peer->stopped = sig == SIGSTOP;
      }
      if (sig == SIGKILL) {
         reap (peer, 5000);
         close_fd (&peer->to_child);
         close_fd (&peer->from_child);
      }
   }
   pthread_mutex_unlock (&peer->mu);
}

bool
test_peer_restart (test_peer_t *peer)
{
   bool ok;
   if (!peer) {
      return false;
   }
   pthread_mutex_lock (&peer->mu);
   if (peer->pid > 0) {
      kill (peer->pid, SIGKILL);
      reap (peer, 5000);
   }
   close_fd (&peer->to_child);
   close_fd (&peer->from_child);
   ok = spawn (peer, true);
   pthread_mutex_unlock (&peer->mu);
   return ok;
}

long
test_peer_stat (test_peer_t *peer, const char *key)
{
   long v = -1;
   if (!peer || !key) {
      return -1;
   }
   pthread_mutex_lock (&peer->mu);
   if (roundtrip (peer, "{\"cmd\":\"stats\"}")) {
      bson_error_t err;
      bson_t *doc = bson_new_from_json ((const uint8_t *) peer->line, -1, &err);
      if (doc) {
         bson_iter_t it, found;
         v = 0;
         if (bson_iter_init (&it, doc) && bson_iter_find_descendant (&it, key, &found)) {
            if (BSON_ITER_HOLDS_BOOL (&found)) {
               v = bson_iter_bool (&found) ? 1 : 0;
            } else if (BSON_ITER_HOLDS_NUMBER (&found)) {
               v = (long) bson_iter_as_int64 (&found);
            }
         }
         bson_destroy (doc);
      }
   }
   pthread_mutex_unlock (&peer->mu);
   return v;
}

long
test_peer_count (test_peer_t *peer, const char *db, const char *coll)
{
   char line[512];
   long v = -1;
   if (!peer || !db || !coll) {
      return -1;
   }
   snprintf (line,
             sizeof line,
             "{\"cmd\":\"data\",\"db\":\"%s\",\"coll\":\"%s\",\"docs\":false}",
             db,
             coll);
   pthread_mutex_lock (&peer->mu);
   if (roundtrip (peer, line) && reply_ok (peer->line)) {
      bson_error_t err;
      bson_t *doc = bson_new_from_json ((const uint8_t *) peer->line, -1, &err);
      bson_iter_t it;
      if (doc) {
         if (bson_iter_init_find (&it, doc, "count") && BSON_ITER_HOLDS_NUMBER (&it)) {
            v = (long) bson_iter_as_int64 (&it);
         }
         bson_destroy (doc);
      }
   }
   pthread_mutex_unlock (&peer->mu);
   return v;
}

void
test_peer_stop (test_peer_t **peerp)
{
   if (!peerp || !*peerp) {
      return;
   }
   test_peer_t *peer = *peerp;
   *peerp = NULL;
   pthread_mutex_lock (&peer->mu);
   if (peer->pid > 0) {
      kill (peer->pid, SIGCONT); /* a stopped peer cannot see EOF */
   }
   close_fd (&peer->to_child);
   if (reap (peer, PEER_STOP_TIMEOUT_MS)) {
      forced_stops++;
   }
   close_fd (&peer->from_child);
   pthread_mutex_unlock (&peer->mu);
   peer_free (peer);
}

unsigned
test_peer_forced_stops (void)
{
   return forced_stops;
}
