/* slowlog_bench.c: instructions (callgrind) and ns per record: the record path alone against the record path with the slow-operation check, same run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#include "slowlog.h"
#include "stats.h"

/*
 * The question: what does an operation that is not slow pay for the
 * slow-operation log?  apm.c records every operation with
 * msup_stats_record_op_slow (the record, then one comparison with the
 * cluster's threshold); before the log it called msup_stats_record_op.
 * Three loops over the same latencies, in one run:
 *   record         msup_stats_record_op (the baseline)
 *   check, off     msup_stats_record_op_slow, threshold UINT64_MAX (slow_op_ms = 0)
 *   check, on      the same, threshold 10 s: on, and no operation is slow
 * Natively: ns per record (median of 5).  Under callgrind (the program
 * starts it on itself): instructions per record, exact.
 */

enum { VARIANTS = 3 };
static const char *const names[VARIANTS] = {"record", "check-off", "check-on"};
static const char *const labels[VARIANTS] = {"msup_stats_record_op (before the log)",
                                             "record + check, slow_op_ms = 0",
                                             "record + check, slow_op_ms = 10000, nothing slow"};

static msup_stats_t *stats;
static _Atomic uint64_t threshold;
static msup_slowlog_t *sink; /* where a slow one would go (never in these loops) */

static inline uint64_t latency(long i)
{
    static const uint64_t cycle[16] = {210, 250, 280, 300, 320, 350, 400, 450,
                                       280, 300, 310, 330, 900, 2500, 12000, 50000};
    return cycle[i & 15];
}

static void __attribute__((noinline)) loop(int variant, long n)
{
    for (long i = 0; i < n; i++) {
        uint64_t us = latency(i);
        enum msup_op_class cls = (enum msup_op_class)(i % 3);
        if (variant == 0) {
            msup_stats_record_op(stats, cls, us);
        } else if (msup_stats_record_op_slow(stats, cls, us, &threshold)) {
            msup_slowop_in_t op = {.command = "find", .duration_us = us, .slow = true};
            msup_slowlog_record(sink, &op);
        }
    }
}

static void set_threshold(int variant)
{
    atomic_store(&threshold, variant == 2 ? 10000000u : UINT64_MAX);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Under callgrind: one dump per variant, counting only inside the loop. */
static int measure(long n)
{
    for (int v = 0; v < VARIANTS; v++) {
        set_threshold(v);
        loop(v, 1000); /* warm */
        CALLGRIND_ZERO_STATS;
        CALLGRIND_TOGGLE_COLLECT;
        loop(v, n);
        CALLGRIND_TOGGLE_COLLECT;
        char name[64];
        snprintf(name, sizeof name, "slowlog %s", names[v]);
        CALLGRIND_DUMP_STATS_AT(name);
    }
    return 0;
}

static bool read_dump(const char *path, int *variant, unsigned long long *total)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[512], v[32];
    bool named = false, counted = false;
    while (fgets(line, sizeof line, f) != NULL) {
        const char *trig = strstr(line, "slowlog ");
        if (strncmp(line, "desc: Trigger:", 14) == 0 && trig != NULL && sscanf(trig, "slowlog %31s", v) == 1)
            for (int i = 0; i < VARIANTS; i++)
                if (strcmp(v, names[i]) == 0) {
                    *variant = i;
                    named = true;
                }
        if (sscanf(line, "summary: %llu", total) == 1 || sscanf(line, "totals: %llu", total) == 1)
            counted = true;
    }
    fclose(f);
    return named && counted;
}

/* Instructions per record of each variant, from a callgrind run of this program. */
static bool instructions(long n, double *per_record)
{
    char dir[] = "/tmp/slowlog-bench.XXXXXX";
    if (mkdtemp(dir) == NULL)
        return false;
    char out_opt[300], self[4096], count[32], log[300];
    snprintf(out_opt, sizeof out_opt, "--callgrind-out-file=%s/cg.out", dir);
    snprintf(log, sizeof log, "%s/run.log", dir);
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return false;
    self[len] = '\0';
    snprintf(count, sizeof count, "%ld", n);
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen(log, "w", stdout) == NULL || dup2(fileno(stdout), 2) < 0)
            _exit(126);
        execlp("valgrind", "valgrind", "--tool=callgrind", "--collect-atstart=no", out_opt, self, "--measure", count,
               (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    int found = 0;
    for (int i = 1; i <= VARIANTS + 1; i++) {
        char path[400];
        snprintf(path, sizeof path, "%s/cg.out.%d", dir, i);
        int v = -1;
        unsigned long long total = 0;
        if (read_dump(path, &v, &total)) {
            per_record[v] = (double)total / (double)n;
            found++;
        }
        unlink(path);
    }
    char path[400];
    snprintf(path, sizeof path, "%s/cg.out", dir);
    unlink(path);
    unlink(log);
    rmdir(dir);
    return ok && found == VARIANTS;
}

int main(int argc, char **argv)
{
    stats = aligned_alloc(64, sizeof *stats);
    sink = aligned_alloc(64, sizeof *sink);
    memset(stats, 0, sizeof *stats);
    memset(sink, 0, sizeof *sink);
    if (argc > 2 && strcmp(argv[1], "--measure") == 0)
        return measure(atol(argv[2]));
    long n = argc > 1 && strcmp(argv[1], "--quick") == 0 ? 1000000 : 20000000;

    double ns[VARIANTS];
    for (int v = 0; v < VARIANTS; v++) {
        double runs[5];
        set_threshold(v);
        for (int r = 0; r < 5; r++) {
            double t0 = now_s();
            loop(v, n);
            runs[r] = (now_s() - t0) * 1e9 / (double)n;
        }
        qsort(runs, 5, sizeof runs[0], cmp_double);
        ns[v] = runs[2];
    }
    double ir[VARIANTS] = {0};
    bool have_ir = !RUNNING_ON_VALGRIND && instructions(100000, ir);
    printf("## Record path with the slow-operation check (%ld records, median of 5; instructions: callgrind, "
           "100000 records, only inside the loop)\n\n",
           n);
    printf("| variant | ns/record | instructions/record | instructions more than the record alone |\n");
    printf("|---|---:|---:|---:|\n");
    for (int v = 0; v < VARIANTS; v++) {
        if (have_ir)
            printf("| %s | %.2f | %.2f | %+.2f |\n", labels[v], ns[v], ir[v], ir[v] - ir[0]);
        else
            printf("| %s | %.2f | (no callgrind) | |\n", labels[v], ns[v]);
    }
    if (have_ir)
        printf("\nratios: check off / record = %.3f (instructions), %.2f (time); check on, nothing slow / record = %.3f "
               "(instructions), %.2f (time)\n",
               ir[1] / ir[0], ns[1] / ns[0], ir[2] / ir[0], ns[2] / ns[0]);
    free(stats);
    free(sink);
    return 0;
}
