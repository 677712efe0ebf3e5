/*
 * peer_test.c - CUnit suite for the test peer (mongopeer.py + peer.c) and
 * for libmongoc 1.23's behaviour under the faults the peer injects.
 *
 * Usage: peer_test [SUBSTRING...]   runs only tests whose name contains one
 * of the substrings.  MONGOSUP_TEST_URI=mongodb://... also runs the /real
 * tests against that deployment; fault tests need the peer and say so.
 * MONGOSUP_TEST_VERBOSE=1 shows the driver's log.
 */
#include "peer.h"

#include <mongoc/mongoc.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* helpers                                                                 */

static int slow_factor = 1; /* 4 under valgrind */

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

static void
quiet_log (mongoc_log_level_t level, const char *domain, const char *message, void *data)
{
   (void) data;
   if (getenv ("MONGOSUP_TEST_VERBOSE")) {
      mongoc_log_default_handler (level, domain, message, NULL);
   }
}

static void
skip (const char *test, const char *why)
{
   printf ("\n  SKIP %s: %s ", test, why);
   fflush (stdout);
}

static mongoc_client_t *
client_new (const char *uri_str)
{
   bson_error_t err;
   mongoc_uri_t *uri = mongoc_uri_new_with_error (uri_str, &err);
   if (!uri) {
      fprintf (stderr, "bad uri %s: %s\n", uri_str, err.message);
      return NULL;
   }
   mongoc_client_t *c = mongoc_client_new_from_uri_with_error (uri, &err);
   mongoc_uri_destroy (uri);
   if (!c) {
      fprintf (stderr, "client %s: %s\n", uri_str, err.message);
      return NULL;
   }
   mongoc_client_set_error_api (c, MONGOC_ERROR_API_VERSION_2);
   mongoc_client_set_appname (c, "peer_test");
   return c;
}

static mongoc_client_t *
peer_client (test_peer_t *peer, const char *options)
{
   char *u = test_peer_uri_with (peer, options);
   mongoc_client_t *c = client_new (u);
   free (u);
   return c;
}

static mongoc_client_pool_t *
pool_new (const char *uri_str)
{
   bson_error_t err;
   mongoc_uri_t *uri = mongoc_uri_new_with_error (uri_str, &err);
   if (!uri) {
      fprintf (stderr, "bad uri %s: %s\n", uri_str, err.message);
      return NULL;
   }
   mongoc_client_pool_t *p = mongoc_client_pool_new_with_error (uri, &err);
   mongoc_uri_destroy (uri);
   if (!p) {
      fprintf (stderr, "pool %s: %s\n", uri_str, err.message);
      return NULL;
   }
   mongoc_client_pool_set_error_api (p, MONGOC_ERROR_API_VERSION_2);
   mongoc_client_pool_set_appname (p, "peer_test");
   return p;
}

static mongoc_client_pool_t *
peer_pool (test_peer_t *peer, const char *options)
{
   char *u = test_peer_uri_with (peer, options);
   mongoc_client_pool_t *p = pool_new (u);
   free (u);
   return p;
}

static bool
insert_id (mongoc_client_t *c, const char *coll_name, int64_t id, bson_error_t *err)
{
   mongoc_collection_t *coll = mongoc_client_get_collection (c, "test", coll_name);
   bson_t *doc = BCON_NEW ("_id", BCON_INT64 (id), "v", BCON_INT32 (1));
   bool ok = mongoc_collection_insert_one (coll, doc, NULL, NULL, err);
   bson_destroy (doc);
   mongoc_collection_destroy (coll);
   return ok;
}

/* Insert; the reply is returned in *reply (caller destroys). */
static bool
insert_reply (mongoc_client_t *c, const char *coll_name, int64_t id, bson_t *reply, bson_error_t *err)
{
   mongoc_collection_t *coll = mongoc_client_get_collection (c, "test", coll_name);
   bson_t *doc = BCON_NEW ("_id", BCON_INT64 (id));
   bool ok = mongoc_collection_insert_one (coll, doc, NULL, reply, err);
   bson_destroy (doc);
   mongoc_collection_destroy (coll);
   return ok;
}

/* Run a find and count the documents; -1 on error (err filled). */
static long
find_count (mongoc_client_t *c,
            const char *coll_name,
            const bson_t *filter,
            const bson_t *opts,
            const mongoc_read_prefs_t *prefs,
            bson_error_t *err)
{
   mongoc_collection_t *coll = mongoc_client_get_collection (c, "test", coll_name);
   bson_t empty = BSON_INITIALIZER;
   mongoc_cursor_t *cur =
      mongoc_collection_find_with_opts (coll, filter ? filter : &empty, opts, prefs);
   const bson_t *doc;
   long n = 0;
   while (mongoc_cursor_next (cur, &doc)) {
      n++;
   }
   if (mongoc_cursor_error (cur, err)) {
      n = -1;
   }
   mongoc_cursor_destroy (cur);
   mongoc_collection_destroy (coll);
   bson_destroy (&empty);
   return n;
}

static bool
ping (mongoc_client_t *c, bson_error_t *err)
{
   bson_t *cmd = BCON_NEW ("ping", BCON_INT32 (1));
   bool ok = mongoc_client_command_simple (c, "admin", cmd, NULL, NULL, err);
   bson_destroy (cmd);
   return ok;
}

/* One insert / find / update / count / delete cycle on document `id`. */
static bool
crud_cycle (mongoc_client_t *c, const char *coll_name, int64_t id, bson_error_t *err)
{
   mongoc_collection_t *coll = mongoc_client_get_collection (c, "test", coll_name);
   bson_t *doc = BCON_NEW ("_id", BCON_INT64 (id), "v", BCON_INT32 (1));
   bson_t *filter = BCON_NEW ("_id", BCON_INT64 (id));
   bson_t *upd = BCON_NEW ("$inc", "{", "v", BCON_INT32 (1), "}");
   bson_t *want = BCON_NEW ("_id", BCON_INT64 (id), "v", BCON_INT32 (2));
   bool ok = false;
   bson_t reply;

   if (!mongoc_collection_insert_one (coll, doc, NULL, NULL, err)) {
      goto done;
   }
   if (find_count (c, coll_name, filter, NULL, NULL, err) != 1) {
      goto done;
   }
   if (!mongoc_collection_update_one (coll, filter, upd, NULL, &reply, err)) {
      bson_destroy (&reply);
      goto done;
   }
   bson_destroy (&reply);
   if (mongoc_collection_count_documents (coll, want, NULL, NULL, NULL, err) != 1) {
      goto done;
   }
   if (!mongoc_collection_delete_one (coll, filter, NULL, NULL, err)) {
      goto done;
   }
   ok = true;
done:
   bson_destroy (doc);
   bson_destroy (filter);
   bson_destroy (upd);
   bson_destroy (want);
   mongoc_collection_destroy (coll);
   return ok;
}

/* Type name of the server description on `port`, or "" when absent. */
static void
server_type (mongoc_client_t *c, int port, char *out, size_t out_len)
{
   size_t n = 0;
   mongoc_server_description_t **sds = mongoc_client_get_server_descriptions (c, &n);
   snprintf (out, out_len, "%s", "");
   for (size_t i = 0; i < n; i++) {
      if (mongoc_server_description_host (sds[i])->port == port) {
         snprintf (out, out_len, "%s", mongoc_server_description_type (sds[i]));
      }
   }
   mongoc_server_descriptions_destroy_all (sds, n);
}

static bool
wait_server_type (mongoc_client_t *c, int port, const char *type, int timeout_ms)
{
   char t[32];
   int64_t deadline = now_ms () + timeout_ms;
   do {
      server_type (c, port, t, sizeof t);
      /* mongoc_client_get_server_descriptions omits Unknown servers */
      if (strcmp (t, type) == 0 || (!t[0] && !strcmp (type, "Unknown"))) {
         return true;
      }
      sleep_ms (50);
   } while (now_ms () < deadline);
   fprintf (stderr, "server on port %d is %s, not %s\n", port, t, type);
   return false;
}

static bool
wait_stat (test_peer_t *peer, const char *key, long want, int timeout_ms)
{
   int64_t deadline = now_ms () + timeout_ms;
   long v;
   do {
      v = test_peer_stat (peer, key);
      if (v == want) {
         return true;
      }
      sleep_ms (20);
   } while (now_ms () < deadline);
   fprintf (stderr, "stat %s is %ld, want %ld\n", key, v, want);
   return false;
}

#define START(var, mode, n)                      \
   test_peer_t *var = test_peer_start (mode, n, NULL); \
   CU_ASSERT_PTR_NOT_NULL_FATAL (var)

/* ---------------------------------------------------------------------- */
/* /peer/start                                                             */

static void
test_start_ready_stop (void)
{
   /* How fast python starts depends on the machine's load: printed, not
    * asserted (START fails if READY does not come within its deadline). */
   int64_t t0 = now_ms ();
   START (peer, "standalone", 1);
   int64_t ready = now_ms () - t0;
   printf ("(ready in %d ms) ", (int) ready);
   CU_ASSERT (test_peer_port (peer, 0) > 0);
   CU_ASSERT_EQUAL (test_peer_members (peer), 1);
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"ping\"}", NULL, 0));

   char want[64];
   snprintf (want, sizeof want, "mongodb://127.0.0.1:%d/", test_peer_port (peer, 0));
   CU_ASSERT_STRING_EQUAL (test_peer_uri (peer), want);

   mongoc_client_t *c = peer_client (peer, NULL);
   bson_error_t err;
   CU_ASSERT (ping (c, &err));
   mongoc_client_destroy (c);

   /* It exits by itself at EOF: no SIGKILL after the stop timeout. */
   pid_t pid = test_peer_pid (peer);
   unsigned forced = test_peer_forced_stops ();
   t0 = now_ms ();
   test_peer_stop (&peer);
   printf ("(stopped in %d ms) ", (int) (now_ms () - t0));
   CU_ASSERT_PTR_NULL (peer);
   CU_ASSERT_EQUAL (test_peer_forced_stops (), forced);
   CU_ASSERT (kill (pid, 0) != 0 && errno == ESRCH);
}

static void
test_start_parallel (void)
{
   const char *modes[] = {"standalone", "rs", "mongos", "standalone"};
   const int members[] = {1, 3, 2, 1};
   test_peer_t *peers[4];
   int64_t t0 = now_ms ();

   for (int i = 0; i < 4; i++) {
      peers[i] = test_peer_start (modes[i], members[i], NULL);
      CU_ASSERT_PTR_NOT_NULL_FATAL (peers[i]);
      CU_ASSERT_EQUAL (test_peer_members (peers[i]), members[i]);
   }
   printf ("(4 peers ready in %d ms) ", (int) (now_ms () - t0));
   for (int i = 0; i < 4; i++) {
      for (int j = 0; j < 4; j++) {
         for (int a = 0; i != j && a < members[i]; a++) {
            for (int b = 0; b < members[j]; b++) {
               CU_ASSERT_NOT_EQUAL (test_peer_port (peers[i], a), test_peer_port (peers[j], b));
            }
         }
      }
   }
   CU_ASSERT (strstr (test_peer_uri (peers[1]), "/?replicaSet=rs0") != NULL);
   /* Stop the oldest first: if a later child had inherited its stdin, it
    * would not see EOF and stop would need its SIGKILL fallback. */
   unsigned forced = test_peer_forced_stops ();
   for (int i = 0; i < 4; i++) {
      test_peer_stop (&peers[i]);
   }
   CU_ASSERT_EQUAL (test_peer_forced_stops (), forced);
}

/* CI runs the tests with stdin closed: the peer's command pipe then gets
 * descriptor 0, and the peer must still receive its commands. */
static void
test_start_closed_stdin (void)
{
   int saved = dup (STDIN_FILENO);
   CU_ASSERT_FATAL (saved >= 0);
   close (STDIN_FILENO);
   test_peer_t *peer = test_peer_start ("standalone", 1, NULL);
   CU_ASSERT_FATAL (dup2 (saved, STDIN_FILENO) == STDIN_FILENO);
   close (saved);
   CU_ASSERT_PTR_NOT_NULL_FATAL (peer);
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"ping\"}", NULL, 0));
   mongoc_client_t *c = peer_client (peer, NULL);
   bson_error_t err;
   CU_ASSERT (ping (c, &err));
   mongoc_client_destroy (c);
   test_peer_stop (&peer);
}

/* ---------------------------------------------------------------------- */
/* /peer/protocol                                                          */

static void
test_protocol_control (void)
{
   START (peer, "rs", 3);
   char reply[4096];

   CU_ASSERT_FALSE (test_peer_command (peer, "not json", reply, sizeof reply));
   CU_ASSERT (strstr (reply, "\"ok\": false") != NULL);
   CU_ASSERT_FALSE (test_peer_command (peer, "{\"cmd\":\"nonsense\"}", NULL, 0));
   CU_ASSERT_FALSE (test_peer_command (peer, "{\"cmd\":\"member_down\",\"member\":7}", NULL, 0));
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"stats\"}", reply, sizeof reply));
   CU_ASSERT (strstr (reply, "\"members\"") != NULL);
   CU_ASSERT_EQUAL (test_peer_stat (peer, "members.0.up"), 1);
   CU_ASSERT_EQUAL (test_peer_stat (peer, "members.2.port"), test_peer_port (peer, 2));
   CU_ASSERT_EQUAL (test_peer_stat (peer, "primary"), 0);
   CU_ASSERT_EQUAL (test_peer_stat (peer, "cmd.insert"), 0);
   CU_ASSERT (test_peer_commandf (peer, "{\"cmd\":\"fail\",\"command\":\"%s\",\"times\":%d}", "insert", 3));
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"rules\"}", reply, sizeof reply));
   CU_ASSERT (strstr (reply, "\"times\": 3") != NULL);
   CU_ASSERT_EQUAL (test_peer_stat (peer, "rules"), 1);
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"clear\"}", NULL, 0));
   CU_ASSERT_EQUAL (test_peer_stat (peer, "rules"), 0);
   CU_ASSERT_EQUAL (test_peer_count (peer, "test", "nothing"), 0);
   test_peer_stop (&peer);
   test_peer_stop (&peer); /* NULL-safe */
}

static void
test_protocol_unknown_command (void)
{
   START (peer, "standalone", 1);
   mongoc_client_t *c = peer_client (peer, "socketTimeoutMS=2000");
   bson_t *cmd = BCON_NEW ("noSuchCommand", BCON_INT32 (1));
   bson_error_t err;
   int64_t t0 = now_ms ();
   CU_ASSERT_FALSE (mongoc_client_command_simple (c, "admin", cmd, NULL, NULL, &err));
   CU_ASSERT (now_ms () - t0 < 1000 * slow_factor);
   CU_ASSERT_EQUAL (err.domain, MONGOC_ERROR_SERVER);
   CU_ASSERT_EQUAL (err.code, 59);
   CU_ASSERT_EQUAL (test_peer_stat (peer, "cmd.noSuchCommand"), 1);
   bson_destroy (cmd);
   mongoc_client_destroy (c);
   test_peer_stop (&peer);
}

/* ---------------------------------------------------------------------- */
/* CRUD (shared by /peer and /real)                                        */

/* Full CRUD walk on `uri`; peer may be NULL (real deployment). */
static void
crud_basic (const char *uri, test_peer_t *peer, const char *coll_name)
{
   mongoc_client_t *c = client_new (uri);
   CU_ASSERT_PTR_NOT_NULL_FATAL (c);
   mongoc_collection_t *coll = mongoc_client_get_collection (c, "test", coll_name);
   bson_error_t err;
   bson_t reply;

   mongoc_collection_drop (coll, NULL);

   /* insert_many, then a duplicate key */
   bson_t *docs[5];
   for (int i = 0; i < 5; i++) {
      docs[i] = BCON_NEW ("_id", BCON_INT32 (i), "k", BCON_INT32 (i % 2), "s", BCON_UTF8 ("x"));
   }
   CU_ASSERT (mongoc_collection_insert_many (coll, (const bson_t **) docs, 5, NULL, &reply, &err));
   bson_destroy (&reply);
   CU_ASSERT_FALSE (mongoc_collection_insert_one (coll, docs[0], NULL, &reply, &err));
   CU_ASSERT_EQUAL (err.domain, MONGOC_ERROR_SERVER);
   CU_ASSERT_EQUAL (err.code, 11000);
   bson_destroy (&reply);
   for (int i = 0; i < 5; i++) {
      bson_destroy (docs[i]);
   }

   /* find with filter, sort, limit */
   bson_t *f = BCON_NEW ("k", BCON_INT32 (1));
   CU_ASSERT_EQUAL (find_count (c, coll_name, f, NULL, NULL, &err), 2);
   bson_destroy (f);
   f = BCON_NEW ("_id", "{", "$gte", BCON_INT32 (2), "}");
   bson_t *opts = BCON_NEW ("sort", "{", "_id", BCON_INT32 (-1), "}", "limit", BCON_INT64 (2));
   mongoc_cursor_t *cur = mongoc_collection_find_with_opts (coll, f, opts, NULL);
   const bson_t *doc;
   int expect = 4;
   while (mongoc_cursor_next (cur, &doc)) {
      bson_iter_t it;
      CU_ASSERT (bson_iter_init_find (&it, doc, "_id") && bson_iter_as_int64 (&it) == expect);
      expect--;
   }
   CU_ASSERT_FALSE (mongoc_cursor_error (cur, &err));
   CU_ASSERT_EQUAL (expect, 2);
   mongoc_cursor_destroy (cur);
   bson_destroy (opts);

   /* count_documents, update_many, upsert, replace, delete */
   CU_ASSERT_EQUAL (mongoc_collection_count_documents (coll, f, NULL, NULL, NULL, &err), 3);
   bson_destroy (f);
   f = BCON_NEW ("k", BCON_INT32 (0));
   bson_t *u = BCON_NEW ("$set", "{", "s", BCON_UTF8 ("y"), "}");
   CU_ASSERT (mongoc_collection_update_many (coll, f, u, NULL, &reply, &err));
   bson_iter_t it;
   CU_ASSERT (bson_iter_init_find (&it, &reply, "modifiedCount") && bson_iter_as_int64 (&it) == 3);
   bson_destroy (&reply);
   bson_destroy (f);
   bson_destroy (u);

   f = BCON_NEW ("_id", BCON_INT32 (100));
   u = BCON_NEW ("$set", "{", "s", BCON_UTF8 ("new"), "}");
   opts = BCON_NEW ("upsert", BCON_BOOL (true));
   CU_ASSERT (mongoc_collection_update_one (coll, f, u, opts, &reply, &err));
   CU_ASSERT (bson_iter_init_find (&it, &reply, "upsertedCount") && bson_iter_as_int64 (&it) == 1);
   bson_destroy (&reply);
   bson_destroy (u);
   bson_destroy (opts);
   bson_t *repl = BCON_NEW ("s", BCON_UTF8 ("replaced"));
   CU_ASSERT (mongoc_collection_replace_one (coll, f, repl, NULL, &reply, &err));
   CU_ASSERT (bson_iter_init_find (&it, &reply, "matchedCount") && bson_iter_as_int64 (&it) == 1);
   bson_destroy (&reply);
   bson_destroy (repl);
   bson_destroy (f);
   f = BCON_NEW ("s", BCON_UTF8 ("replaced"));
   CU_ASSERT_EQUAL (mongoc_collection_count_documents (coll, f, NULL, NULL, NULL, &err), 1);
   bson_destroy (f);

   f = BCON_NEW ("s", BCON_UTF8 ("y"));
   CU_ASSERT (mongoc_collection_delete_many (coll, f, NULL, &reply, &err));
   CU_ASSERT (bson_iter_init_find (&it, &reply, "deletedCount") && bson_iter_as_int64 (&it) == 3);
   bson_destroy (&reply);
   bson_destroy (f);
   bson_t empty = BSON_INITIALIZER;
   CU_ASSERT_EQUAL (mongoc_collection_count_documents (coll, &empty, NULL, NULL, NULL, &err), 3);
   CU_ASSERT_EQUAL (mongoc_collection_estimated_document_count (coll, NULL, NULL, NULL, &err), 3);
   if (peer) {
      CU_ASSERT_EQUAL (test_peer_count (peer, "test", coll_name), 3);
   }
   CU_ASSERT (mongoc_collection_drop (coll, &err));
   bson_destroy (&empty);
   mongoc_collection_destroy (coll);
   mongoc_client_destroy (c);
}

static void
crud_cursor (const char *uri, test_peer_t *peer, const char *coll_name)
{
   mongoc_client_t *c = client_new (uri);
   CU_ASSERT_PTR_NOT_NULL_FATAL (c);
   mongoc_collection_t *coll = mongoc_client_get_collection (c, "test", coll_name);
   mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts (coll, NULL);
   bson_error_t err;
   bson_t reply;

   mongoc_collection_drop (coll, NULL);
   for (int i = 0; i < 250; i++) {
      bson_t *d = BCON_NEW ("_id", BCON_INT32 (i));
      mongoc_bulk_operation_insert (bulk, d);
      bson_destroy (d);
   }
   CU_ASSERT (mongoc_bulk_operation_execute (bulk, &reply, &err) != 0);
   bson_destroy (&reply);
   mongoc_bulk_operation_destroy (bulk);

   bson_t *opts = BCON_NEW ("batchSize", BCON_INT32 (20));
   CU_ASSERT_EQUAL (find_count (c, coll_name, NULL, opts, NULL, &err), 250);
   if (peer) {
      CU_ASSERT_EQUAL (test_peer_stat (peer, "cmd.getMore"), 12);
   }
   /* abandon a cursor after one batch: the driver kills it */
   bson_t empty = BSON_INITIALIZER;
   mongoc_cursor_t *cur = mongoc_collection_find_with_opts (coll, &empty, opts, NULL);
   const bson_t *doc;
   CU_ASSERT (mongoc_cursor_next (cur, &doc));
   mongoc_cursor_destroy (cur);
   if (peer) {
      CU_ASSERT_EQUAL (test_peer_stat (peer, "cmd.killCursors"), 1);
      CU_ASSERT_EQUAL (test_peer_stat (peer, "cursors"), 0);
   }
   /* aggregate count */
   CU_ASSERT_EQUAL (mongoc_collection_count_documents (coll, &empty, NULL, NULL, NULL, &err), 250);
   CU_ASSERT (mongoc_collection_drop (coll, &err));
   bson_destroy (&empty);
   bson_destroy (opts);
   mongoc_collection_destroy (coll);
   mongoc_client_destroy (c);
}

typedef struct {
   mongoc_client_pool_t *pool;
   const char *coll;
   int thread;
   int cycles;
   int ok;
   bson_error_t err;
} crud_worker_t;

static void *
crud_worker (void *arg)
{
   crud_worker_t *w = arg;
   mongoc_client_t *c = mongoc_client_pool_pop (w->pool);
   for (int i = 0; i < w->cycles; i++) {
      if (crud_cycle (c, w->coll, (int64_t) w->thread * 100000 + i, &w->err)) {
         w->ok++;
      }
   }
   mongoc_client_pool_push (w->pool, c);
   return NULL;
}

static void
crud_pool_threads (const char *uri, test_peer_t *peer, const char *coll_name)
{
   enum { THREADS = 4, CYCLES = 50 };
   mongoc_client_pool_t *pool = pool_new (uri);
   CU_ASSERT_PTR_NOT_NULL_FATAL (pool);
   crud_worker_t w[THREADS];
   pthread_t th[THREADS];
   int64_t t0 = now_ms ();

   for (int i = 0; i < THREADS; i++) {
      memset (&w[i], 0, sizeof w[i]);
      w[i].pool = pool;
      w[i].coll = coll_name;
      w[i].thread = i;
      w[i].cycles = CYCLES;
      pthread_create (&th[i], NULL, crud_worker, &w[i]);
   }
   for (int i = 0; i < THREADS; i++) {
      pthread_join (th[i], NULL);
      CU_ASSERT_EQUAL (w[i].ok, CYCLES);
      if (w[i].ok != CYCLES) {
         fprintf (stderr, "thread %d: %s\n", i, w[i].err.message);
      }
   }
   printf ("(%d cycles in %d ms) ", THREADS * CYCLES, (int) (now_ms () - t0));
   if (peer) {
      CU_ASSERT_EQUAL (test_peer_stat (peer, "cmd.insert"), THREADS * CYCLES);
      CU_ASSERT_EQUAL (test_peer_stat (peer, "cmd.delete"), THREADS * CYCLES);
      CU_ASSERT_EQUAL (test_peer_count (peer, "test", coll_name), 0);
      long max = test_peer_stat (peer, "conn.max");
      /* 4 application connections plus the monitor's */
      CU_ASSERT (max >= 2 && max <= THREADS + 3);
      CU_ASSERT (test_peer_stat (peer, "conn.current") >= 1);
   }
   mongoc_client_pool_destroy (pool);
   if (peer) {
      CU_ASSERT (wait_stat (peer, "conn.current", 0, 2000));
   }
}

static void
test_crud_basic (void)
{
   START (peer, "standalone", 1);
   crud_basic (test_peer_uri (peer), peer, "crud_basic");
   test_peer_stop (&peer);
}

static void
test_crud_cursor (void)
{
   START (peer, "standalone", 1);
   crud_cursor (test_peer_uri (peer), peer, "crud_cursor");
   test_peer_stop (&peer);
}

static void
test_crud_pool_threads (void)
{
   START (peer, "standalone", 1);
   crud_pool_threads (test_peer_uri (peer), peer, "crud_pool");
   test_peer_stop (&peer);
}

static void
test_crud_pool_threads_rs (void)
{
   START (peer, "rs", 3);
   crud_pool_threads (test_peer_uri (peer), peer, "crud_pool_rs");
   CU_ASSERT_EQUAL (test_peer_stat (peer, "members.0.cmd.insert"), 200);
   test_peer_stop (&peer);
}

/* ---------------------------------------------------------------------- */
/* /peer/rs and /peer/mongos                                               */

static void
test_rs_discovery (void)
{
   START (peer, "rs", 3);
   char uri[128];
   /* seed: one secondary only */
   snprintf (uri, sizeof uri, "mongodb://127.0.0.1:%d/?replicaSet=rs0", test_peer_port (peer, 1));
   mongoc_client_t *c = client_new (uri);
   bson_error_t err;

   CU_ASSERT (insert_id (c, "disc", 1, &err));
   CU_ASSERT_EQUAL (test_peer_stat (peer, "members.0.cmd.insert"), 1);
   CU_ASSERT_EQUAL (test_peer_stat (peer, "members.1.cmd.insert"), 0);
   char t[32];
   server_type (c, test_peer_port (peer, 0), t, sizeof t);
   CU_ASSERT_STRING_EQUAL (t, "RSPrimary");
   for (int i = 1; i < 3; i++) {
      server_type (c, test_peer_port (peer, i), t, sizeof t);
      CU_ASSERT_STRING_EQUAL (t, "RSSecondary");
   }
   /* secondary reads go to a secondary and see the (shared) data */
   mongoc_read_prefs_t *rp = mongoc_read_prefs_new (MONGOC_READ_SECONDARY);
   CU_ASSERT_EQUAL (find_count (c, "disc", NULL, NULL, rp, &err), 1);
   CU_ASSERT_EQUAL (test_peer_stat (peer, "members.0.cmd.find"), 0);
   CU_ASSERT_EQUAL (test_peer_stat (peer, "members.1.cmd.find") +
                       test_peer_stat (peer, "members.2.cmd.find"),
                    1);
   mongoc_read_prefs_destroy (rp);
   mongoc_client_destroy (c);
   test_peer_stop (&peer);
}

static void
test_rs_not_primary (void)
{
   START (peer, "rs", 3);
   char *uri = test_peer_member_uri (peer, 1, "retryWrites=false");
   mongoc_client_t *c = client_new (uri);
   bson_error_t err;
   bson_t reply;

   CU_ASSERT_FALSE (insert_reply (c, "np", 1, &reply, &err));
   CU_ASSERT_EQUAL (err.domain, MONGOC_ERROR_SERVER);
   CU_ASSERT_EQUAL (err.code, 10107);
   bson_destroy (&reply);
   /* reads on a secondary are fine */
   mongoc_read_prefs_t *rp = mongoc_read_prefs_new (MONGOC_READ_SECONDARY_PREFERRED);
   CU_ASSERT_EQUAL (find_count (c, "np", NULL, NULL, rp, &err), 0);
   mongoc_read_prefs_destroy (rp);
   mongoc_client_destroy (c);
   free (uri);
   test_peer_stop (&peer);
}

typedef struct {
   mongoc_client_pool_t *pool;
   volatile int stop;
   int ok;
   int failed;
   bson_error_t err;
} writer_t;

static void *
writer_main (void *arg)
{
   writer_t *w = arg;
   mongoc_client_t *c = mongoc_client_pool_pop (w->pool);
   int64_t id = 0;
   while (!__atomic_load_n (&w->stop, __ATOMIC_SEQ_CST)) {
      if (insert_id (c, "cont", id++, &w->err)) {
         w->ok++;
      } else {
         w->failed++;
         fprintf (stderr, "write %d failed: %s\n", (int) id - 1, w->err.message);
      }
      sleep_ms (2);
   }
   mongoc_client_pool_push (w->pool, c);
   return NULL;
}

static void
test_rs_primary_change (void)
{
   START (peer, "rs", 3);
   mongoc_client_pool_t *pool =
      peer_pool (peer, "heartbeatFrequencyMS=500&serverSelectionTimeoutMS=5000");
   writer_t w;
   pthread_t th;
   memset (&w, 0, sizeof w);
   w.pool = pool;
   pthread_create (&th, NULL, writer_main, &w);

   sleep_ms (400);
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"primary\",\"member\":1}", NULL, 0));
   sleep_ms (800);
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"stepdown\"}", NULL, 0)); /* -> 2 */
   CU_ASSERT_EQUAL (test_peer_stat (peer, "primary"), 2);
   sleep_ms (800);
   __atomic_store_n (&w.stop, 1, __ATOMIC_SEQ_CST);
   pthread_join (th, NULL);

   printf ("(%d writes, %d failed) ", w.ok, w.failed);
   CU_ASSERT_EQUAL (w.failed, 0);
   CU_ASSERT (w.ok > 10);
   for (int i = 0; i < 3; i++) {
      char key[64];
      snprintf (key, sizeof key, "members.%d.cmd.insert", i);
      CU_ASSERT (test_peer_stat (peer, key) > 0);
   }
   /* writes refused by old primaries were not applied: exactly once each */
   CU_ASSERT_EQUAL (test_peer_count (peer, "test", "cont"), w.ok);
   mongoc_client_pool_destroy (pool);
   test_peer_stop (&peer);
}

static void
test_rs_no_primary (void)
{
   START (peer, "rs", 3);
   mongoc_client_t *c = peer_client (peer, "serverSelectionTimeoutMS=700&heartbeatFrequencyMS=500");
   bson_error_t err;

   CU_ASSERT (insert_id (c, "nop", 1, &err));
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"no_primary\"}", NULL, 0));
   int64_t t0 = now_ms ();
   CU_ASSERT_FALSE (insert_id (c, "nop", 2, &err));
   CU_ASSERT (now_ms () - t0 < 3000 * slow_factor);
   CU_ASSERT (err.domain == MONGOC_ERROR_SERVER_SELECTION ||
              (err.domain == MONGOC_ERROR_SERVER && err.code == 10107));
   /* reads that accept a secondary still work */
   mongoc_read_prefs_t *rp = mongoc_read_prefs_new (MONGOC_READ_SECONDARY_PREFERRED);
   CU_ASSERT_EQUAL (find_count (c, "nop", NULL, NULL, rp, &err), 1);
   mongoc_read_prefs_destroy (rp);

   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"primary\",\"member\":2}", NULL, 0));
   CU_ASSERT (insert_id (c, "nop", 3, &err));
   CU_ASSERT_EQUAL (test_peer_stat (peer, "members.2.cmd.insert"), 1);
   CU_ASSERT_EQUAL (test_peer_count (peer, "test", "nop"), 2);
   mongoc_client_destroy (c);
   test_peer_stop (&peer);
}

static void
test_rs_member_down_up (void)
{
   START (peer, "rs", 3);
   mongoc_client_pool_t *pool = peer_pool (peer, "heartbeatFrequencyMS=500&connectTimeoutMS=1000");
   mongoc_client_t *c = mongoc_client_pool_pop (pool);
   bson_error_t err;
   int port2 = test_peer_port (peer, 2);

   CU_ASSERT (ping (c, &err));
   CU_ASSERT (wait_server_type (c, port2, "RSSecondary", 3000));
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"member_down\",\"member\":2}", NULL, 0));
   CU_ASSERT_EQUAL (test_peer_stat (peer, "members.2.up"), 0);
   CU_ASSERT (wait_stat (peer, "members.2.conn.current", 0, 1000));
   CU_ASSERT (wait_server_type (c, port2, "Unknown", 3000 * slow_factor));
   CU_ASSERT (insert_id (c, "down", 1, &err)); /* the primary is unaffected */

   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"member_up\",\"member\":2}", NULL, 0));
   CU_ASSERT_EQUAL (test_peer_stat (peer, "members.2.up"), 1);
   CU_ASSERT_EQUAL (test_peer_port (peer, 2), port2);
   CU_ASSERT (wait_server_type (c, port2, "RSSecondary", 3000 * slow_factor));
   CU_ASSERT (test_peer_stat (peer, "members.2.conn.current") >= 1);
   mongoc_client_pool_push (pool, c);
   mongoc_client_pool_destroy (pool);
   test_peer_stop (&peer);
}

static void
test_mongos_basic (void)
{
   START (peer, "mongos", 2);
   mongoc_client_pool_t *pool = peer_pool (peer, NULL);
   mongoc_client_t *c = mongoc_client_pool_pop (pool);
   bson_error_t err;

   CU_ASSERT (crud_cycle (c, "ms", 1, &err));
   for (int i = 0; i < 2; i++) {
      /* the pool's monitors discover each mongos on their own */
      CU_ASSERT (wait_server_type (c, test_peer_port (peer, i), "Mongos", 3000 * slow_factor));
   }
   /* retryable writes work through mongos too */
   CU_ASSERT (test_peer_command (
      peer,
      "{\"cmd\":\"fail\",\"command\":\"insert\",\"times\":1,\"code\":91,"
      "\"labels\":[\"RetryableWriteError\"]}",
      NULL,
      0));
   CU_ASSERT (insert_id (c, "ms", 2, &err));
   CU_ASSERT_EQUAL (test_peer_stat (peer, "cmd.insert"), 3);
   CU_ASSERT_EQUAL (test_peer_count (peer, "test", "ms"), 1);
   mongoc_client_pool_push (pool, c);
   mongoc_client_pool_destroy (pool);
   test_peer_stop (&peer);
}

/* ---------------------------------------------------------------------- */
/* /peer/fault                                                             */

static void
test_fault_fail_next (void)
{
   START (peer, "standalone", 1);
   mongoc_client_t *c = peer_client (peer, NULL);
   bson_error_t err;

   CU_ASSERT (test_peer_command (
      peer, "{\"cmd\":\"fail\",\"command\":\"insert\",\"times\":2,\"code\":2,\"errmsg\":\"boom\"}", NULL, 0));
   for (int i = 0; i < 2; i++) {
      CU_ASSERT_FALSE (insert_id (c, "fn", i, &err));
      CU_ASSERT_EQUAL (err.domain, MONGOC_ERROR_SERVER);
      CU_ASSERT_EQUAL (err.code, 2);
      CU_ASSERT (strstr (err.message, "boom") != NULL);
   }
   CU_ASSERT (insert_id (c, "fn", 3, &err));
   CU_ASSERT_EQUAL (test_peer_stat (peer, "rules"), 0);
   CU_ASSERT_EQUAL (test_peer_count (peer, "test", "fn"), 1);
   /* other commands are unaffected by a command-specific rule */
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"fail\",\"command\":\"find\",\"times\":1,\"code\":13}", NULL, 0));
   CU_ASSERT (ping (c, &err));
   CU_ASSERT_EQUAL (find_count (c, "fn", NULL, NULL, NULL, &err), -1);
   CU_ASSERT_EQUAL (err.code, 13);
   mongoc_client_destroy (c);
   test_peer_stop (&peer);
}

#define RETRYABLE_FAIL                                                    \
   "{\"cmd\":\"fail\",\"command\":\"insert\",\"times\":%d,\"code\":91," \
   "\"labels\":[\"RetryableWriteError\"]}"

static void
test_fault_retryable_write (void)
{
   START (peer, "rs", 3);
   mongoc_client_t *c = peer_client (peer, NULL);
   bson_error_t err;

   CU_ASSERT (test_peer_commandf (peer, RETRYABLE_FAIL, 1));
   CU_ASSERT (insert_id (c, "rw", 1, &err));
   CU_ASSERT_EQUAL (test_peer_stat (peer, "cmd.insert"), 2); /* retried once */
   CU_ASSERT_EQUAL (test_peer_count (peer, "test", "rw"), 1);
   mongoc_client_destroy (c);
   test_peer_stop (&peer);
}

static void
test_fault_retryable_write_twice (void)
{
   START (peer, "rs", 3);
   mongoc_client_t *c = peer_client (peer, NULL);
   bson_error_t err;
   bson_t reply;

   CU_ASSERT (test_peer_commandf (peer, RETRYABLE_FAIL, 2));
   CU_ASSERT_FALSE (insert_reply (c, "rw2", 1, &reply, &err));
   CU_ASSERT_EQUAL (err.domain, MONGOC_ERROR_SERVER);
   CU_ASSERT_EQUAL (err.code, 91);
   CU_ASSERT (mongoc_error_has_label (&reply, "RetryableWriteError"));
   bson_destroy (&reply);
   CU_ASSERT_EQUAL (test_peer_stat (peer, "cmd.insert"), 2); /* only one retry */
   CU_ASSERT_EQUAL (test_peer_count (peer, "test", "rw2"), 0);
   CU_ASSERT (insert_id (c, "rw2", 2, &err));
   mongoc_client_destroy (c);
   test_peer_stop (&peer);
}

static void
test_fault_retryable_read (void)
{
   START (peer, "rs", 3);
   mongoc_client_t *c = peer_client (peer, NULL);
   bson_error_t err;

   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"fail\",\"command\":\"find\",\"times\":1,\"code\":91}", NULL, 0));
   CU_ASSERT_EQUAL (find_count (c, "rr", NULL, NULL, NULL, &err), 0);
   CU_ASSERT_EQUAL (test_peer_stat (peer, "cmd.find"), 2);
   mongoc_client_destroy (c);
   test_peer_stop (&peer);
}

static void
test_fault_write_concern_error (void)
{
   START (peer, "standalone", 1);
   mongoc_client_t *c = peer_client (peer, NULL);
   bson_error_t err;
   bson_t reply;

   CU_ASSERT (test_peer_command (peer,
                                 "{\"cmd\":\"fail\",\"command\":\"insert\",\"code\":64,"
                                 "\"write_concern_error\":true}",
                                 NULL,
                                 0));
   CU_ASSERT_FALSE (insert_reply (c, "wce", 1, &reply, &err));
   CU_ASSERT_EQUAL (err.domain, MONGOC_ERROR_WRITE_CONCERN);
   CU_ASSERT_EQUAL (err.code, 64);
   bson_destroy (&reply);
   mongoc_client_destroy (c);
   test_peer_stop (&peer);
}

static void
test_fault_delay (void)
{
   START (peer, "standalone", 1);
   mongoc_client_t *c = peer_client (peer, "socketTimeoutMS=2000");
   mongoc_client_t *fast = peer_client (peer, "socketTimeoutMS=200&retryReads=false");
   bson_error_t err;

   CU_ASSERT (ping (c, &err));
   CU_ASSERT (ping (fast, &err));
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"delay\",\"ms\":300,\"command\":\"find\"}", NULL, 0));
   int64_t t0 = now_ms ();
   CU_ASSERT_EQUAL (find_count (c, "d", NULL, NULL, NULL, &err), 0);
   int64_t t = now_ms () - t0;
   CU_ASSERT (t >= 290 && t < 1500 * slow_factor);
   CU_ASSERT (ping (c, &err)); /* only find is delayed */

   t0 = now_ms ();
   CU_ASSERT_EQUAL (find_count (fast, "d", NULL, NULL, NULL, &err), -1);
   t = now_ms () - t0;
   printf ("(timed out after %d ms) ", (int) t);
   CU_ASSERT_EQUAL (err.domain, MONGOC_ERROR_STREAM);
   CU_ASSERT (t >= 190 && t < 1000 * slow_factor);

   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"clear\"}", NULL, 0));
   t0 = now_ms ();
   CU_ASSERT_EQUAL (find_count (c, "d", NULL, NULL, NULL, &err), 0);
   CU_ASSERT (now_ms () - t0 < 250 * slow_factor);
   mongoc_client_destroy (fast);
   mongoc_client_destroy (c);
   test_peer_stop (&peer);
}

static void
test_fault_hangup_before (void)
{
   START (peer, "standalone", 1);
   mongoc_client_t *c = peer_client (peer, NULL);
   bson_error_t err;

   CU_ASSERT (ping (c, &err));
   long conns = test_peer_stat (peer, "conn.total");
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"hangup\",\"mode\":\"before\",\"command\":\"insert\"}", NULL, 0));
   /* a standalone has no retryable writes: the error reaches the caller */
   CU_ASSERT_FALSE (insert_id (c, "hb", 1, &err));
   CU_ASSERT_EQUAL (err.domain, MONGOC_ERROR_STREAM);
   CU_ASSERT_EQUAL (test_peer_count (peer, "test", "hb"), 0);
   /* the next call reconnects */
   CU_ASSERT (insert_id (c, "hb", 2, &err));
   CU_ASSERT (test_peer_stat (peer, "conn.total") > conns);
   mongoc_client_destroy (c);
   test_peer_stop (&peer);

   /* on a replica set the write is retried on a new connection */
   START (rs, "rs", 3);
   c = peer_client (rs, NULL);
   CU_ASSERT (test_peer_command (rs, "{\"cmd\":\"hangup\",\"mode\":\"before\",\"command\":\"insert\"}", NULL, 0));
   CU_ASSERT (insert_id (c, "hb", 1, &err));
   CU_ASSERT_EQUAL (test_peer_stat (rs, "cmd.insert"), 2);
   CU_ASSERT_EQUAL (test_peer_count (rs, "test", "hb"), 1);
   mongoc_client_destroy (c);
   test_peer_stop (&rs);
}

static void
test_fault_hangup_mid (void)
{
   START (peer, "standalone", 1);
   mongoc_client_t *c = peer_client (peer, NULL);
   bson_error_t err;

   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"hangup\",\"mode\":\"mid\",\"command\":\"insert\"}", NULL, 0));
   CU_ASSERT_FALSE (insert_id (c, "hm", 1, &err));
   CU_ASSERT_EQUAL (err.domain, MONGOC_ERROR_STREAM);
   /* executed, but the reply was cut */
   CU_ASSERT_EQUAL (test_peer_count (peer, "test", "hm"), 1);
   mongoc_client_destroy (c);
   test_peer_stop (&peer);

   /* replica set: retried with the same txnNumber, applied once */
   START (rs, "rs", 3);
   c = peer_client (rs, NULL);
   CU_ASSERT (test_peer_command (rs, "{\"cmd\":\"hangup\",\"mode\":\"mid\",\"command\":\"insert\"}", NULL, 0));
   bool ok = insert_id (c, "hm", 1, &err);
   CU_ASSERT (ok);
   if (!ok) {
      fprintf (stderr, "hangup-mid rs: %d/%d %s\n", err.domain, err.code, err.message);
   }
   CU_ASSERT_EQUAL (test_peer_stat (rs, "cmd.insert"), 2);
   CU_ASSERT_EQUAL (test_peer_count (rs, "test", "hm"), 1);
   mongoc_client_destroy (c);
   test_peer_stop (&rs);
}

static void
test_fault_blackhole (void)
{
   START (peer, "standalone", 1);
   mongoc_client_t *c = peer_client (peer, "socketTimeoutMS=500&retryReads=false");
   bson_error_t err;

   CU_ASSERT (ping (c, &err));
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"blackhole\",\"command\":\"find\"}", NULL, 0));
   int64_t t0 = now_ms ();
   CU_ASSERT_EQUAL (find_count (c, "bh", NULL, NULL, NULL, &err), -1);
   int64_t t = now_ms () - t0;
   printf ("(failed after %d ms) ", (int) t);
   CU_ASSERT_EQUAL (err.domain, MONGOC_ERROR_STREAM);
   CU_ASSERT_EQUAL (err.code, MONGOC_ERROR_STREAM_SOCKET);
   CU_ASSERT (t >= 490 && t < 1500 * slow_factor);
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"clear\"}", NULL, 0));
   CU_ASSERT_EQUAL (find_count (c, "bh", NULL, NULL, NULL, &err), 0);
   mongoc_client_destroy (c);
   test_peer_stop (&peer);
}

static void
test_fault_drop_connections (void)
{
   START (peer, "standalone", 1);
   mongoc_client_pool_t *pool = peer_pool (peer, "heartbeatFrequencyMS=500");
   mongoc_client_t *c = mongoc_client_pool_pop (pool);
   bson_error_t err;

   CU_ASSERT_EQUAL (find_count (c, "dc", NULL, NULL, NULL, &err), 0);
   long total = test_peer_stat (peer, "conn.total");
   CU_ASSERT (total >= 2); /* monitor + application */
   CU_ASSERT (test_peer_command (peer, "{\"cmd\":\"drop_connections\"}", NULL, 0));
   /* retryable reads hide the dead pooled socket */
   CU_ASSERT_EQUAL (find_count (c, "dc", NULL, NULL, NULL, &err), 0);
   CU_ASSERT (test_peer_stat (peer, "conn.total") > total);
   mongoc_client_pool_push (pool, c);
   mongoc_client_pool_destroy (pool);
   test_peer_stop (&peer);
}

/* ---------------------------------------------------------------------- */
/* /peer/process                                                           */

static void
test_process_sigstop (void)
{
   START (peer, "standalone", 1);
   mongoc_client_pool_t *pool = peer_pool (
      peer, "socketTimeoutMS=500&connectTimeoutMS=1000&retryReads=false&serverSelectionTimeoutMS=2000");
   mongoc_client_t *c = mongoc_client_pool_pop (pool);
   bson_error_t err;

   CU_ASSERT_EQUAL (find_count (c, "st", NULL, NULL, NULL, &err), 0);
   test_peer_kill (peer, SIGSTOP);
   int64_t t0 = now_ms ();
   CU_ASSERT_EQUAL (find_count (c, "st", NULL, NULL, NULL, &err), -1);
   int64_t t = now_ms () - t0;
   printf ("(failed after %d ms) ", (int) t);
   CU_ASSERT_EQUAL (err.domain, MONGOC_ERROR_STREAM);
   CU_ASSERT (t >= 450 && t < 1500 * slow_factor);
   test_peer_kill (peer, SIGCONT);

   t0 = now_ms ();
   long n;
   do {
      n = find_count (c, "st", NULL, NULL, NULL, &err);
   } while (n != 0 && now_ms () - t0 < 5000);
   printf ("(serving %d ms after SIGCONT) ", (int) (now_ms () - t0));
   CU_ASSERT_EQUAL (n, 0);
   mongoc_client_pool_push (pool, c);
   mongoc_client_pool_destroy (pool);
   test_peer_stop (&peer);
}

static void
restart_case (const char *mode, int members)
{
   START (peer, mode, members);
   mongoc_client_pool_t *pool = peer_pool (
      peer,
      "heartbeatFrequencyMS=500&connectTimeoutMS=1000&serverSelectionTimeoutMS=1000&retryReads=false");
   mongoc_client_t *c = mongoc_client_pool_pop (pool);
   bson_error_t err;
   int ports[TEST_PEER_MAX_MEMBERS];

   for (int i = 0; i < members; i++) {
      ports[i] = test_peer_port (peer, i);
   }
   CU_ASSERT (insert_id (c, "kr", 1, &err));
   pid_t old = test_peer_pid (peer);
   test_peer_kill (peer, SIGKILL);
   CU_ASSERT_EQUAL (test_peer_pid (peer), -1);
   CU_ASSERT (kill (old, 0) != 0);
   /* in-flight use of the pooled connection fails at once */
   int64_t t1 = now_ms ();
   CU_ASSERT_EQUAL (find_count (c, "kr", NULL, NULL, NULL, &err), -1);
   CU_ASSERT_EQUAL (err.domain, MONGOC_ERROR_STREAM);
   CU_ASSERT (now_ms () - t1 < 500 * slow_factor);

   CU_ASSERT_FATAL (test_peer_restart (peer));
   int64_t t0 = now_ms ();
   for (int i = 0; i < members; i++) {
      CU_ASSERT_EQUAL (test_peer_port (peer, i), ports[i]);
   }
   bool ok;
   do {
      ok = insert_id (c, "kr", 2, &err);
   } while (!ok && now_ms () - t0 < 5000);
   int64_t t = now_ms () - t0;
   printf ("(%s serving %d ms after restart) ", mode, (int) t);
   CU_ASSERT (ok);
   CU_ASSERT (t < 2000 * slow_factor); /* ~ heartbeatFrequencyMS */
   CU_ASSERT_EQUAL (test_peer_count (peer, "test", "kr"), 1); /* fresh process */
   mongoc_client_pool_push (pool, c);
   mongoc_client_pool_destroy (pool);
   test_peer_stop (&peer);
}

static void
test_process_kill_restart (void)
{
   restart_case ("standalone", 1);
}

static void
test_process_kill_restart_rs (void)
{
   restart_case ("rs", 3);
}

/* ---------------------------------------------------------------------- */
/* /real: the same CRUD against $MONGOSUP_TEST_URI                         */

static void
real_coll (char *buf, size_t len, const char *what)
{
   snprintf (buf, len, "mongosup_peer_test_%s_%d", what, (int) getpid ());
}

static void
test_real_crud_basic (void)
{
   char coll[96];
   if (!test_peer_real_deployment ()) {
      skip ("/real/crud/basic", "MONGOSUP_TEST_URI is not set");
      return;
   }
   real_coll (coll, sizeof coll, "basic");
   crud_basic (test_peer_real_uri (), NULL, coll);
}

static void
test_real_crud_cursor (void)
{
   char coll[96];
   if (!test_peer_real_deployment ()) {
      skip ("/real/crud/cursor", "MONGOSUP_TEST_URI is not set");
      return;
   }
   real_coll (coll, sizeof coll, "cursor");
   crud_cursor (test_peer_real_uri (), NULL, coll);
}

static void
test_real_crud_pool_threads (void)
{
   char coll[96];
   if (!test_peer_real_deployment ()) {
      skip ("/real/crud/pool-4-threads", "MONGOSUP_TEST_URI is not set");
      return;
   }
   real_coll (coll, sizeof coll, "pool");
   crud_pool_threads (test_peer_real_uri (), NULL, coll);
}

static void
test_real_faults (void)
{
   if (test_peer_real_deployment ()) {
      skip ("/real/fault/*",
            "fault injection needs the peer; the /peer/fault and /peer/process tests ran "
            "against the peer only");
   } else {
      skip ("/real/fault/*", "MONGOSUP_TEST_URI is not set");
   }
}

/* ---------------------------------------------------------------------- */

typedef struct {
   const char *name;
   CU_TestFunc fn;
} test_def_t;

static const test_def_t peer_tests[] = {
   {"/peer/start/ready-and-stop", test_start_ready_stop},
   {"/peer/start/parallel", test_start_parallel},
   {"/peer/start/closed-stdin", test_start_closed_stdin},
   {"/peer/protocol/control", test_protocol_control},
   {"/peer/protocol/unknown-command", test_protocol_unknown_command},
   {"/peer/crud/basic", test_crud_basic},
   {"/peer/crud/cursor", test_crud_cursor},
   {"/peer/crud/pool-4-threads", test_crud_pool_threads},
   {"/peer/crud/pool-4-threads-rs", test_crud_pool_threads_rs},
   {"/peer/rs/discovery", test_rs_discovery},
   {"/peer/rs/not-primary", test_rs_not_primary},
   {"/peer/rs/primary-change", test_rs_primary_change},
   {"/peer/rs/no-primary", test_rs_no_primary},
   {"/peer/rs/member-down-up", test_rs_member_down_up},
   {"/peer/mongos/basic", test_mongos_basic},
   {"/peer/fault/fail-next", test_fault_fail_next},
   {"/peer/fault/retryable-write", test_fault_retryable_write},
   {"/peer/fault/retryable-write-twice", test_fault_retryable_write_twice},
   {"/peer/fault/retryable-read", test_fault_retryable_read},
   {"/peer/fault/write-concern-error", test_fault_write_concern_error},
   {"/peer/fault/delay", test_fault_delay},
   {"/peer/fault/hangup-before", test_fault_hangup_before},
   {"/peer/fault/hangup-mid", test_fault_hangup_mid},
   {"/peer/fault/blackhole", test_fault_blackhole},
   {"/peer/fault/drop-connections", test_fault_drop_connections},
   {"/peer/process/sigstop", test_process_sigstop},
   {"/peer/process/kill-restart", test_process_kill_restart},
   {"/peer/process/kill-restart-rs", test_process_kill_restart_rs},
   {NULL, NULL},
};

static const test_def_t real_tests[] = {
   {"/real/crud/basic", test_real_crud_basic},
   {"/real/crud/cursor", test_real_crud_cursor},
   {"/real/crud/pool-4-threads", test_real_crud_pool_threads},
   {"/real/fault/skipped", test_real_faults},
   {NULL, NULL},
};

static bool
selected (const char *name, int argc, char **argv)
{
   if (argc < 2) {
      return true;
   }
   for (int i = 1; i < argc; i++) {
      if (strstr (name, argv[i])) {
         return true;
      }
   }
   return false;
}

static bool
add_suite (const char *name, const test_def_t *tests, int argc, char **argv)
{
   CU_pSuite s = CU_add_suite (name, NULL, NULL);
   if (!s) {
      return false;
   }
   for (int i = 0; tests[i].name; i++) {
      if (selected (tests[i].name, argc, argv) && !CU_add_test (s, tests[i].name, tests[i].fn)) {
         return false;
      }
   }
   return true;
}

int
main (int argc, char **argv)
{
   const char *pre = getenv ("LD_PRELOAD");
   if ((pre && strstr (pre, "vgpreload")) || getenv ("MONGOSUP_UNDER_VALGRIND") ||
       getenv ("MONGOSUP_TEST_SLOW")) {
      slow_factor = 4;
   }
   mongoc_init ();
   mongoc_log_set_handler (quiet_log, NULL);

   if (CU_initialize_registry () != CUE_SUCCESS) {
      return 1;
   }
   if (!add_suite ("/peer", peer_tests, argc, argv) ||
       !add_suite ("/real", real_tests, argc, argv)) {
      CU_cleanup_registry ();
      return 1;
   }
   CU_basic_set_mode (CU_BRM_VERBOSE);
   CU_basic_run_tests ();
   unsigned failed = CU_get_number_of_failures () + CU_get_number_of_tests_failed ();
   unsigned ran = CU_get_number_of_tests_run ();
   CU_cleanup_registry ();
   mongoc_cleanup ();
   return (failed || ran == 0) ? 1 : 0;
}
