/* opcost_bench.c: instructions per ping and per find (callgrind) through mongosup_checkout against a plain mongoc pool with the same effective URI. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <valgrind/callgrind.h>
#include <valgrind/valgrind.h>

#include "mongosup.h"
#include "segment.h"
#include "../lib/config.h" /* not autoconf's config.h */
#include "../tests/peer/peer.h"

/*
 * Instruction counts do not depend on how busy the machine is, which a 1%
 * bound needs.  The program re-executes itself under
 *   valgrind --tool=callgrind --collect-atstart=no
 * and in that run switches collection on (CALLGRIND_TOGGLE_COLLECT) only on
 * the calling thread and only around each measured loop, then dumps the
 * counters (CALLGRIND_DUMP_STATS_AT) named after the loop: the monitor
 * threads of both pools, the upkeep thread and the test peer (another
 * process, MockupDB) stay out.  The parent reads the dumps and prints the
 * figures.  Variants, each timed by the same loop:
 *   plain      mongoc_client_pool_pop / push on the user's URI
 *   spelled    the same, the URI with every option the loader used to write
 *              (what mongosup gave the driver before it wrote only
 *              non-default options): the cost of a longer option list
 *   mongosup   mongosup_checkout / checkin, the loader's URI
 */

enum { ROUNDS = 3 };

static const char *const variants[] = {"plain", "spelled", "mongosup"};
static const char *const ops[] = {"ping", "find"};
#define NVARIANTS 3
#define NOPS 2

typedef struct {
    mongoc_client_pool_t *pool; /* plain and spelled */
    mongosup_t *sup;            /* mongosup */
} target_t;

static mongoc_client_t *take(const target_t *t)
{
    if (t->sup != NULL) {
        mongosup_error_t error;
        mongoc_client_t *c = mongosup_checkout(t->sup, "bench", &error);
        if (c == NULL) {
            fprintf(stderr, "opcost_bench: checkout: %s\n", error.message);
            exit(1);
        }
        return c;
    }
    return mongoc_client_pool_pop(t->pool);
}

static void give_back(const target_t *t, mongoc_client_t *c)
{
    if (t->sup != NULL)
        mongosup_checkin(t->sup, c, NULL);
    else
        mongoc_client_pool_push(t->pool, c);
}

static void one_op(mongoc_client_t *c, int op, const bson_t *ping, const bson_t *filter)
{
    bson_error_t error;
    bool ok = true;
    if (op == 0) {
        ok = mongoc_client_command_simple(c, "admin", ping, NULL, NULL, &error);
    } else {
        mongoc_collection_t *coll = mongoc_client_get_collection(c, "bench", "docs");
        mongoc_cursor_t *cursor = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
        const bson_t *doc;
        while (mongoc_cursor_next(cursor, &doc))
            ;
        ok = !mongoc_cursor_error(cursor, &error);
        mongoc_cursor_destroy(cursor);
        mongoc_collection_destroy(coll);
    }
    if (!ok) {
        fprintf(stderr, "opcost_bench: %s failed: %s\n", ops[op], error.message);
        exit(1);
    }
}

/* The measured loop: checkout/pop, the operation, checkin/push; n times. */
static void __attribute__((noinline)) measured_loop(const target_t *t, int op, long n, const bson_t *ping,
                                                    const bson_t *filter)
{
    CALLGRIND_TOGGLE_COLLECT;
    for (long i = 0; i < n; i++) {
        mongoc_client_t *c = take(t);
        one_op(c, op, ping, filter);
        give_back(t, c);
    }
    CALLGRIND_TOGGLE_COLLECT;
}

static mongoc_client_pool_t *plain_pool(const char *uri_text)
{
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_text, &error);
    mongoc_client_pool_t *pool = uri != NULL ? mongoc_client_pool_new_with_error(uri, &error) : NULL;
    mongoc_uri_destroy(uri);
    if (pool == NULL) {
        fprintf(stderr, "opcost_bench: %s: %s\n", uri_text, error.message);
        exit(1);
    }
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    return pool;
}

/* Under callgrind: runs the loops and leaves one dump per (round, variant, op). */
static int measure(long n)
{
    test_peer_t *peer = test_peer_start("standalone", 1, NULL);
    if (peer == NULL)
        return 1;
    int port = test_peer_port(peer, 0);
    char conf[64], segment[64], user_uri[160];
    snprintf(conf, sizeof conf, "/tmp/opcost-bench-%d.conf", (int)getpid());
    snprintf(segment, sizeof segment, "/msup-opcost-%d", (int)getpid());
    /* The same effective options for every variant: the user's small pool
     * and short selection timeout, and mongosup's checkout bound (5 s, the
     * wait_queue_timeout_ms default, where mongoc waits forever). */
    snprintf(user_uri, sizeof user_uri,
             "mongodb://127.0.0.1:%d/?maxPoolSize=4&serverSelectionTimeoutMS=3000&waitQueueTimeoutMS=5000", port);
    FILE *fp = fopen(conf, "w");
    if (fp == NULL) {
        perror("opcost_bench: config");
        return 1;
    }
    fprintf(fp,
            "segment = { name = \"%s\"; max_workers = 4; max_clusters = 1; };\n"
            "default_environment = \"bench\";\n"
            "environments = { bench = { clusters = { bench = {\n"
            "  mongo_uri = \"mongodb://127.0.0.1:%d/\"; max_pool_size = 4; server_selection_timeout_ms = 3000;\n"
            "  }; }; }; };\n",
            segment, port);
    fclose(fp);

    mongoc_init();
    mongosup_error_t error;
    mongosup_config_t *cfg = mongosup_config_load(conf, NULL, &error);
    mongosup_t *sup = cfg != NULL ? mongosup_attach(cfg, &error) : NULL;
    if (sup == NULL) {
        fprintf(stderr, "opcost_bench: %s\n", error.message);
        return 1;
    }
    /* What the loader used to write for these settings: every option. */
    char spelled_uri[512];
    snprintf(spelled_uri, sizeof spelled_uri,
             "mongodb://127.0.0.1:%d/?maxPoolSize=4&waitQueueTimeoutMS=5000&connectTimeoutMS=10000"
             "&socketTimeoutMS=300000&serverSelectionTimeoutMS=3000&heartbeatFrequencyMS=10000"
             "&retryWrites=true&retryReads=true",
             port);
    target_t targets[NVARIANTS] = {{plain_pool(user_uri), NULL}, {plain_pool(spelled_uri), NULL}, {NULL, sup}};
    char sup_uri[MSUP_URI_DISPLAY_MAX];
    mongosup_uri_redact(cfg->clusters[0].uri, sup_uri, sizeof sup_uri, NULL);
    printf("uri plain %s\nuri spelled %s\nuri mongosup %s\n", user_uri, spelled_uri, sup_uri);
    fflush(stdout);

    bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
    bson_t *filter = bson_new();
    {
        /* The document find reads, through a client of its own: no variant
         * keeps state (sessions, connections) from it. */
        mongoc_client_t *c = mongoc_client_new(user_uri);
        mongoc_collection_t *coll = mongoc_client_get_collection(c, "bench", "docs");
        bson_t *doc = BCON_NEW("_id", BCON_INT32(1), "name", BCON_UTF8("one document"));
        bson_error_t berr;
        if (!mongoc_collection_insert_one(coll, doc, NULL, NULL, &berr)) {
            fprintf(stderr, "opcost_bench: insert: %s\n", berr.message);
            return 1;
        }
        bson_destroy(doc);
        mongoc_collection_destroy(coll);
        mongoc_client_destroy(c);
    }
    /* Warm every variant (connections, topology, lazy driver state). */
    for (int v = 0; v < NVARIANTS; v++)
        for (int op = 0; op < NOPS; op++)
            for (int i = 0; i < 20; i++) {
                mongoc_client_t *c = take(&targets[v]);
                one_op(c, op, ping, filter);
                give_back(&targets[v], c);
            }
    CALLGRIND_ZERO_STATS;
    for (int r = 0; r < ROUNDS; r++)
        for (int op = 0; op < NOPS; op++)
            for (int v = 0; v < NVARIANTS; v++) {
                char name[64];
                measured_loop(&targets[v], op, n, ping, filter);
                snprintf(name, sizeof name, "opcost %s %s %d", variants[v], ops[op], r);
                CALLGRIND_DUMP_STATS_AT(name);
            }

    bson_destroy(ping);
    bson_destroy(filter);
    mongoc_client_pool_destroy(targets[0].pool);
    mongoc_client_pool_destroy(targets[1].pool);
    mongosup_detach(&sup, 1000);
    mongosup_config_destroy(&cfg);
    msup_segment_unlink(segment, NULL);
    unlink(conf);
    test_peer_stop(&peer);
    mongoc_cleanup();
    return 0;
}

/* ---- the parent: run under callgrind, read the dumps ---------------- */

/* Reads "desc: Trigger: Client Request: opcost V O R" and the total of a dump. */
static bool read_dump(const char *path, int *variant, int *op, unsigned long long *total)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[512];
    bool named = false, counted = false;
    while (fgets(line, sizeof line, f) != NULL) {
        char v[32], o[32];
        int r;
        const char *trig = strstr(line, "opcost ");
        if (strncmp(line, "desc: Trigger:", 14) == 0 && trig != NULL && sscanf(trig, "opcost %31s %31s %d", v, o, &r) == 3) {
            for (int i = 0; i < NVARIANTS; i++)
                if (strcmp(v, variants[i]) == 0)
                    *variant = i;
            for (int i = 0; i < NOPS; i++)
                if (strcmp(o, ops[i]) == 0)
                    *op = i;
            named = *variant >= 0 && *op >= 0;
        }
        if (sscanf(line, "summary: %llu", total) == 1 || sscanf(line, "totals: %llu", total) == 1)
            counted = true;
    }
    fclose(f);
    return named && counted;
}

int main(int argc, char **argv)
{
    long n = 300;
    if (argc > 2 && strcmp(argv[1], "--measure") == 0)
        return measure(atol(argv[2]));
    if (argc > 1)
        n = atol(argv[1]);
    if (n <= 0) {
        fprintf(stderr, "usage: opcost_bench [operations per loop]\n");
        return 2;
    }
    if (RUNNING_ON_VALGRIND) {
        fprintf(stderr, "opcost_bench: run it natively; it starts callgrind itself\n");
        return 2;
    }
    char dir[] = "/tmp/opcost-bench.XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("opcost_bench: mkdtemp");
        return 1;
    }
    char out_opt[PATH_MAX], self[PATH_MAX], count[32], log[PATH_MAX];
    snprintf(out_opt, sizeof out_opt, "--callgrind-out-file=%s/cg.out", dir);
    snprintf(log, sizeof log, "%s/run.log", dir);
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        perror("opcost_bench: /proc/self/exe");
        return 1;
    }
    self[len] = '\0';
    snprintf(count, sizeof count, "%ld", n);
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen(log, "w", stdout) == NULL || dup2(fileno(stdout), 2) < 0)
            _exit(126);
        execlp("valgrind", "valgrind", "--tool=callgrind", "--collect-atstart=no", out_opt, self, "--measure",
               count, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("opcost_bench: the callgrind run failed (exit %d; is valgrind installed?); see %s\n",
               WIFEXITED(st) ? WEXITSTATUS(st) : -1, log);
        return 0; /* a missing tool is no failed measurement */
    }

    unsigned long long best[NVARIANTS][NOPS], worst[NVARIANTS][NOPS];
    for (int v = 0; v < NVARIANTS; v++)
        for (int o = 0; o < NOPS; o++)
            best[v][o] = worst[v][o] = 0;
    char uris[NVARIANTS][400] = {{0}};
    FILE *lf = fopen(log, "r");
    char line[600];
    while (lf != NULL && fgets(line, sizeof line, lf) != NULL)
        for (int v = 0; v < NVARIANTS; v++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "uri %s ", variants[v]);
            if (strncmp(line, prefix, strlen(prefix)) == 0)
                snprintf(uris[v], sizeof uris[v], "%.*s", (int)strcspn(line + strlen(prefix), "\n"),
                         line + strlen(prefix));
        }
    if (lf != NULL)
        fclose(lf);
    for (int i = 1; i <= ROUNDS * NVARIANTS * NOPS + 1; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/cg.out.%d", dir, i);
        int v = -1, o = -1;
        unsigned long long total = 0;
        if (read_dump(path, &v, &o, &total)) {
            if (best[v][o] == 0 || total < best[v][o])
                best[v][o] = total;
            if (total > worst[v][o])
                worst[v][o] = total;
        }
        unlink(path);
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/cg.out", dir);
    unlink(path);
    unlink(log);
    rmdir(dir);

    printf("Client instructions per operation (callgrind, only the thread running the loop, only inside it; the test\n"
           "peer is another process), loop of %ld checkout/pop + operation + checkin/push, lowest of %d rounds:\n\n",
           n, ROUNDS);
    printf("| operation | plain mongoc pool | plain pool, every option spelled out | mongosup | mongosup vs plain |\n");
    printf("|---|---:|---:|---:|---:|\n");
    bool met = true;
    for (int o = 0; o < NOPS; o++) {
        double plain = (double)best[0][o] / n, spelled = (double)best[1][o] / n, sup = (double)best[2][o] / n;
        if (plain <= 0) {
            printf("| %s | (no figure) | | | |\n", ops[o]);
            met = false;
            continue;
        }
        printf("| %s | %.0f | %.0f (%+.2f%%) | %.0f | %+.0f (%+.2f%%) |\n", ops[o], plain, spelled,
               (spelled / plain - 1) * 100, sup, sup - plain, (sup / plain - 1) * 100);
        met = met && sup <= plain * 1.01;
    }
    printf("\nSpread between rounds (highest over lowest):");
    for (int o = 0; o < NOPS; o++)
        for (int v = 0; v < NVARIANTS; v++)
            printf("%s %s %s %+.2f%%", v == 0 && o == 0 ? "" : ";", ops[o], variants[v],
                   best[v][o] > 0 ? ((double)worst[v][o] / (double)best[v][o] - 1) * 100 : 0.0);
    printf(".\n");
    printf("\nURIs the driver got: plain `%s`; spelled out `%s`; mongosup `%s`.\n", uris[0], uris[1],
           uris[2]);
    printf("\nTarget: mongosup at most +1%% instructions per operation against the plain pool: %s.\n",
           met ? "met" : "NOT met");
    return 0;
}
