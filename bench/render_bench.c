/* render_bench.c: the cost of one mongosup-top refresh at 1024 workers x 8 clusters, against a plain read of the segment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "export.h"
#include "tools_fixture.h"

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct {
    const char *what;
    double ms; /* CPU per iteration */
} figure_t;

int main(int argc, char **argv)
{
    uint32_t workers = argc > 1 ? (uint32_t)atoi(argv[1]) : 1024;
    uint32_t clusters = argc > 2 ? (uint32_t)atoi(argv[2]) : 8;
    int iters = argc > 3 ? atoi(argv[3]) : 30;
    if (workers == 0 || clusters == 0 || clusters > MSUP_MAX_CLUSTERS || iters <= 0) {
        fprintf(stderr, "usage: render_bench [WORKERS [CLUSTERS [ITERATIONS]]]\n");
        return 64;
    }
    char name[64];
    snprintf(name, sizeof name, "/msup-bench-render-%d", (int)getpid());
    msup_segment_t seg;
    if (!fx_create_big(name, workers, clusters, &seg))
        return 1;
    FILE *sink = fopen("/dev/null", "w");
    if (sink == NULL)
        return 1;
    mongosup_error_t err;
    msup_snapshot_t prev, now;
    msup_view_t view;
    memset(&view, 0, sizeof view);
    if (!msup_snapshot_take(&seg, &prev, &err)) {
        fprintf(stderr, "render_bench: %s\n", err.message);
        return 1;
    }

    /* Baseline: one plain pass over every byte of the segment (what any
     * reader must at least touch), measured in the same run. */
    volatile uint64_t checksum = 0;
    double t0 = cpu_ms();
    for (int i = 0; i < iters; i++) {
        const uint64_t *w = seg.base;
        uint64_t sum = 0;
        for (size_t k = 0; k < seg.size / 8; k++)
            sum += w[k];
        checksum += sum;
    }
    figure_t base = {"baseline: read the whole segment", (cpu_ms() - t0) / iters};

    figure_t fig[4] = {{"snapshot take", 0}, {"view + text render", 0}, {"JSON (json-c)", 0}, {"Prometheus", 0}};
    for (int i = 0; i < iters; i++) {
        double a = cpu_ms();
        if (!msup_snapshot_take(&seg, &now, &err)) {
            fprintf(stderr, "render_bench: %s\n", err.message);
            return 1;
        }
        double b = cpu_ms();
        msup_view_build(&view, &now, &prev);
        msup_export_text(&view, sink);
        double c = cpu_ms();
        msup_export_json(&now, sink, false);
        double d = cpu_ms();
        msup_export_prometheus(&now, sink);
        double e = cpu_ms();
        fig[0].ms += b - a;
        fig[1].ms += c - b;
        fig[2].ms += d - c;
        fig[3].ms += e - d;
        msup_snapshot_free(&prev);
        prev = now;
    }
    printf("render_bench: %u workers x %u clusters, segment %.1f MiB, %d iterations (CPU time per iteration)\n",
           workers, clusters, (double)seg.size / (1024.0 * 1024.0), iters);
    printf("  %-36s %8.3f ms\n", base.what, base.ms);
    for (int k = 0; k < 4; k++) {
        fig[k].ms /= iters;
        printf("  %-36s %8.3f ms  (x%.1f baseline)\n", fig[k].what, fig[k].ms, base.ms > 0 ? fig[k].ms / base.ms : 0);
    }
    double live = fig[0].ms + fig[1].ms;
    printf("  live view refresh (snapshot + text)  %8.3f ms  -> %.2f%% of one core at a 1 s refresh "
           "(target <= 10 ms, <= 2%%): %s\n",
           live, live / 10.0, live <= 10.0 ? "OK" : "OVER");
    printf("  /metrics scrape (snapshot + prom)    %8.3f ms\n", fig[0].ms + fig[3].ms);
    printf("  --json (snapshot + JSON)             %8.3f ms\n", fig[0].ms + fig[2].ms);
    msup_snapshot_free(&prev);
    msup_view_free(&view);
    fclose(sink);
    msup_segment_close(&seg);
    msup_segment_unlink(name, NULL);
    return checksum == 42 ? 2 : 0; /* keeps the baseline loop from being optimised away */
}
