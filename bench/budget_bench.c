/* budget_bench.c: cost of a budget token (take + give back) against an unlimited counter and no budget, 1 and 2 processes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "budget.h"
#include "slots.h"

enum mode { NO_BUDGET, UNLIMITED, LIMITED, MODE__COUNT };
static const char *const mode_name[MODE__COUNT] = {
    "no budget (account off)",
    "unlimited counter (max_connections = 0)",
    "limited (CAS below max_connections)",
};

static msup_segment_t seg;
static msup_budget_limits_t limits; /* the effective limits a worker would enforce */

/* One process's loop: grow + shrink of a one-token account, as the pool
 * would call them for a client created and destroyed.  Returns ns/op. */
static double run_loop(enum mode mode, long iterations)
{
    mongosup_error_t err;
    int idx = msup_slot_claim(&seg, getpid(), "bench", &err);
    if (idx < 0) {
        fprintf(stderr, "budget_bench: %s\n", err.message);
        exit(1);
    }
    msup_budget_account_t acct;
    msup_budget_cost_t cost = {.per_client = 1, .per_pool = 0};
    msup_budget_account_init(&acct, mode == NO_BUDGET ? NULL : &seg, 0, msup_slot_stats(&seg, (uint32_t)idx, 0),
                             cost, 0, &limits);
    uint64_t now = msup_mono_ns();
    uint64_t t0 = msup_mono_ns();
    for (long i = 0; i < iterations; i++) {
        if (!msup_budget_account_grow(&acct, now)) {
            fprintf(stderr, "budget_bench: grow refused\n");
            exit(1);
        }
        msup_budget_account_shrink(&acct, 1);
    }
    double ns = (double)(msup_mono_ns() - t0) / (double)iterations;
    msup_budget_account_close(&acct);
    msup_slot_release(&seg, (uint32_t)idx);
    msup_slots_reap_all(&seg);
    return ns;
}

/* Runs the loop in `procs` processes at once (all on the same row line);
 * returns the mean ns/op. */
static double measure(enum mode mode, int procs, long iterations)
{
    msup_budget_apply_limits(&limits, mode == LIMITED ? 1000000u : 0u, 0);
    if (procs == 1)
        return run_loop(mode, iterations);
    double *results = mmap(NULL, sizeof(double) * (size_t)procs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                           -1, 0);
    int go[2];
    if (results == MAP_FAILED || pipe(go) != 0) {
        perror("budget_bench");
        exit(1);
    }
    pid_t kids[8];
    for (int p = 0; p < procs; p++) {
        kids[p] = fork();
        if (kids[p] == 0) {
            char byte;
            close(go[1]);
            if (read(go[0], &byte, 1) < 0)
                _exit(1);
            results[p] = run_loop(mode, iterations);
            _exit(0);
        }
    }
    close(go[0]);
    close(go[1]); /* everyone starts at once */
    double sum = 0;
    for (int p = 0; p < procs; p++) {
        waitpid(kids[p], NULL, 0);
        sum += results[p];
    }
    munmap(results, sizeof(double) * (size_t)procs);
    return sum / procs;
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 5000000;
    if (iterations <= 0) {
        fprintf(stderr, "usage: budget_bench [iterations > 0]\n");
        return 2;
    }
    char name[64];
    snprintf(name, sizeof name, "/msup-bench-budget-%d", (int)getpid());
    msup_segment_unlink(name, NULL); /* our pid's name: left by an earlier run whose pid this one reuses */
    msup_geometry_t g = {.max_workers = 8, .max_clusters = 1, .mode = 0600, .group = (gid_t)-1,
                         .environment = "bench"};
    mongosup_error_t err;
    if (!msup_segment_create(name, &g, &seg, &err)) {
        fprintf(stderr, "budget_bench: %s\n", err.message);
        return 1;
    }
    atomic_store(&msup_segment_reg(&seg, 0)->row_state, MSUP_ROW_ACTIVE);

    printf("Connection budget: one grow + one shrink of a pool's account (a client created and destroyed),\n");
    printf("%ld iterations per process; 2 processes hammer the same row's budget line.\n", iterations);
    printf("The hot path (an idle client at hand) calls none of this.\n\n");
    printf("| %-40s | %9s | %8s | %9s | %8s |\n", "mode", "1 proc ns", "ratio", "2 proc ns", "ratio");
    printf("|%.42s|%.11s|%.10s|%.11s|%.10s|\n", "------------------------------------------",
           "-----------", "----------", "-----------", "----------");
    double base = 0;
    for (int m = 0; m < MODE__COUNT; m++) {
        measure((enum mode)m, 1, iterations / 10); /* warm-up */
        double one = measure((enum mode)m, 1, iterations);
        double two = measure((enum mode)m, 2, iterations);
        if (m == NO_BUDGET)
            base = one > 0 ? one : 1e-9;
        printf("| %-40s | %9.1f | %7.1fx | %9.1f | %7.1fx |\n", mode_name[m], one, one / base, two, two / base);
    }
    printf("\nratio: against \"no budget\" with 1 process, measured in this run.\n");
    msup_segment_close(&seg);
    msup_segment_unlink(name, NULL); /* both objects: the configured name and its .stats */
    return 0;
}
