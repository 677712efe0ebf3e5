/* record_bench.c: ns per recorded operation (own slot vs shared mutex vs shared atomics) and reader cost. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "segment.h"
#include "slots.h"
#include "snapshot.h"
#include "stats.h"

enum mode { OWN_SLOT, SHARED_MUTEX, SHARED_ATOMIC };
static const char *const mode_names[] = {"own slot (relaxed atomics)", "baseline a: process-shared mutex",
                                         "baseline b: one shared atomic line"};

/* Baseline (a): the same data under a process-shared mutex, plain adds. */
typedef struct locked_stats {
    pthread_mutex_t lock;
    uint64_t ops[MSUP_OP__COUNT];
    uint64_t count, sum, max;
    uint64_t hist[MSUP_HIST_BUCKETS];
} locked_stats_t;

static long iterations = 20 * 1000 * 1000;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Latencies drawn from a fixed cycle: most around 300 us, a tail to 50 ms. */
static inline uint64_t latency(long i)
{
    static const uint64_t cycle[16] = {210, 250, 280, 300, 320, 350, 400, 450,
                                       280, 300, 310, 330, 900, 2500, 12000, 50000};
    return cycle[i & 15];
}

static void run_child(enum mode m, msup_segment_t *seg, uint32_t slot, locked_stats_t *locked, int go_fd,
                      int result_fd)
{
    char go;
    if (read(go_fd, &go, 1) < 0)
        _exit(2);
    msup_stats_t *own = msup_slot_stats(seg, slot, 0);
    msup_stats_t *shared = msup_slot_stats(seg, seg->max_workers - 1, 0);
    double t0 = now_s();
    for (long i = 0; i < iterations; i++) {
        uint64_t us = latency(i);
        switch (m) {
        case OWN_SLOT:
            msup_stats_record_op(own, (enum msup_op_class)(i % 3), us);
            break;
        case SHARED_ATOMIC:
            msup_stats_record_op(shared, (enum msup_op_class)(i % 3), us);
            break;
        case SHARED_MUTEX:
            pthread_mutex_lock(&locked->lock);
            locked->ops[i % 3]++;
            locked->hist[msup_hist_index(us)]++;
            locked->count++;
            locked->sum += us;
            if (us > locked->max)
                locked->max = us;
            pthread_mutex_unlock(&locked->lock);
            break;
        }
    }
    double ns = (now_s() - t0) * 1e9 / (double)iterations;
    if (write(result_fd, &ns, sizeof ns) != sizeof ns)
        _exit(3);
    _exit(0);
}

/* Mean ns per record over nprocs processes running at once. */
static double run_once(enum mode m, int nprocs, msup_segment_t *seg, locked_stats_t *locked)
{
    int go[2], res[2];
    if (pipe(go) != 0 || pipe(res) != 0)
        exit(1);
    pid_t kids[8];
    for (int p = 0; p < nprocs; p++) {
        kids[p] = fork();
        if (kids[p] == 0) {
            close(go[1]);
            run_child(m, seg, (uint32_t)p, locked, go[0], res[1]);
        }
    }
    close(go[0]);
    close(go[1]); /* all start together */
    double sum = 0;
    for (int p = 0; p < nprocs; p++) {
        double ns = 0;
        if (read(res[0], &ns, sizeof ns) != sizeof ns)
            exit(1);
        sum += ns;
        waitpid(kids[p], NULL, 0);
    }
    close(res[0]);
    close(res[1]);
    return sum / nprocs;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_of(enum mode m, int nprocs, int runs, msup_segment_t *seg, locked_stats_t *locked)
{
    double v[16];
    for (int r = 0; r < runs; r++)
        v[r] = run_once(m, nprocs, seg, locked);
    qsort(v, (size_t)runs, sizeof v[0], cmp_double);
    return v[runs / 2];
}

static void bench_record(int runs)
{
    msup_geometry_t g = {.max_workers = 4, .max_clusters = 1, .mode = 0600, .group = (gid_t)-1, .environment = "bench"};
    msup_segment_t seg;
    mongosup_error_t err;
    char name[64];
    snprintf(name, sizeof name, "/msup-bench-record-%d", (int)getpid());
    msup_segment_unlink(name, NULL); /* our pid's name: left by an earlier run whose pid this one reuses */
    if (!msup_segment_create(name, &g, &seg, &err)) {
        fprintf(stderr, "record_bench: %s\n", err.message);
        exit(1);
    }
    locked_stats_t *locked = mmap(NULL, sizeof *locked, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&locked->lock, &attr);

    double r[3][3];
    printf("## Record path (%ld records per process, median of %d runs)\n\n", iterations, runs);
    printf("| mode | 1 process ns/record | 2 processes ns/record |\n|---|---:|---:|\n");
    for (int m = 0; m < 3; m++) {
        r[m][1] = median_of((enum mode)m, 1, runs, &seg, locked);
        r[m][2] = median_of((enum mode)m, 2, runs, &seg, locked);
        printf("| %s | %.2f | %.2f |\n", mode_names[m], r[m][1], r[m][2]);
    }
    printf("\nratios: own slot 2 proc / 1 proc = %.2fx (target <= 1.2x); mutex / own slot with 2 processes = %.1fx "
           "(target >= 5x); shared atomic line / own slot with 2 processes = %.1fx; own slot 1 process %.2f ns "
           "(target <= 15 ns)\n\n",
           r[OWN_SLOT][2] / r[OWN_SLOT][1], r[SHARED_MUTEX][2] / r[OWN_SLOT][2],
           r[SHARED_ATOMIC][2] / r[OWN_SLOT][2], r[OWN_SLOT][1]);
    munmap(locked, sizeof *locked);
    msup_segment_close(&seg);
    msup_segment_unlink(name, NULL); /* both objects: the configured name and its .stats */
}

/* Reader: aggregate every slot of a 1024 x 8 segment, histograms included. */
static void bench_reader(int runs, bool every_octave)
{
    msup_geometry_t g = {.max_workers = 1024, .max_clusters = 8, .mode = 0600, .group = (gid_t)-1, .environment = "bench"};
    msup_segment_t seg;
    mongosup_error_t err;
    char name[64];
    snprintf(name, sizeof name, "/msup-bench-reader-%d", (int)getpid());
    msup_segment_unlink(name, NULL); /* our pid's name: left by an earlier run whose pid this one reuses */
    if (!msup_segment_create(name, &g, &seg, &err)) {
        fprintf(stderr, "record_bench: %s\n", err.message);
        exit(1);
    }
    for (uint32_t c = 0; c < 8; c++) {
        snprintf(seg.reg[c].name, sizeof seg.reg[c].name, "cluster%u", c);
        atomic_store(&seg.reg[c].row_state, MSUP_ROW_ACTIVE);
    }
    atomic_store(&seg.shdr->cluster_count, 8);
    for (uint32_t w = 0; w < 1024; w++) {
        if (msup_slot_claim(&seg, getpid(), "bench", &err) < 0)
            exit(1);
        for (uint32_t c = 0; c < 8; c++) {
            msup_stats_t *s = msup_slot_stats(&seg, w, c);
            for (long i = 0; i < 200; i++)
                msup_stats_record_op(s, MSUP_OP_READ, every_octave ? (1ull << (i % 26)) + (uint64_t)i : latency(i + w));
        }
    }
    double v[32];
    uint64_t check = 0;
    for (int r = 0; r < runs; r++) {
        msup_snapshot_t snap;
        double t0 = now_s();
        if (!msup_snapshot_take(&seg, &snap, &err)) {
            fprintf(stderr, "record_bench: %s\n", err.message);
            exit(1);
        }
        v[r] = (now_s() - t0) * 1e3;
        check += snap.clusters[7].totals.hist_count;
        msup_snapshot_free(&snap);
    }
    qsort(v, (size_t)runs, sizeof v[0], cmp_double);
    printf("| 1024 workers x 8 clusters, %s | %.2f ms | %.2f ms | %.1f MiB |\n",
           every_octave ? "every octave written (worst case)" : "typical latencies (4 octaves)", v[runs / 2],
           v[runs - 1], (double)seg.size / (1024.0 * 1024.0));
    if (check != (uint64_t)runs * 1024 * 200)
        printf("reader check failed: %llu\n", (unsigned long long)check);
    msup_segment_close(&seg);
    msup_segment_unlink(name, NULL); /* both objects: the configured name and its .stats */
}

/* The floor: one relaxed atomic add (a locked instruction on x86) alone. */
static double one_atomic_add_ns(void)
{
    static _Atomic uint64_t counter;
    long n = iterations * 3;
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    return (now_s() - t0) * 1e9 / (double)n;
}

int main(int argc, char **argv)
{
    int runs = 5;
    if (argc > 1 && strcmp(argv[1], "--reader") == 0) {
        /* The reader alone, one case: for interleaved reruns on a shared
         * machine and for counting its instructions under callgrind
         * (--toggle-collect=msup_snapshot_take). */
        bool worst = argc > 2 && strcmp(argv[2], "worst") == 0;
        int n = argc > 3 ? atoi(argv[3]) : 15;
        if ((argc > 2 && !worst && strcmp(argv[2], "typical") != 0) || n < 1 || n > 32) {
            fprintf(stderr, "usage: record_bench --reader [typical|worst] [runs 1..32]\n");
            return 2;
        }
        printf("| segment | median | worst | segment size |\n|---|---:|---:|---:|\n");
        bench_reader(n, worst);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--quick") == 0) {
        iterations = 1000 * 1000;
        runs = 3;
    }
    printf("floor on this machine: one relaxed atomic add costs %.2f ns (a record is three of them)\n\n",
           one_atomic_add_ns());
    bench_record(runs);
    printf("## Reader (msup_snapshot_take, median and worst of 15; target <= 5 ms)\n\n");
    printf("| segment | median | worst | segment size |\n|---|---:|---:|---:|\n");
    bench_reader(15, false);
    bench_reader(15, true);
    return 0;
}
