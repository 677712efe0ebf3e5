/* top_main.c: mongosup-top's command line: the live view, --once, --json and --prometheus. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "export.h"
#include "stdio_guard.h"
#include "target.h"
#include "top.h"

#define EXIT_USAGE 64

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mongosup-top [-n /SEGMENT | -c CONFIG [-e ENV]] [-i SECONDS]\n"
            "                    [--once | --json [--pretty] | --prometheus]\n"
            "  -n, --segment NAME   segment to read (default: $MONGOSUP_SEGMENT)\n"
            "  -c, --config FILE    read the segment name from a mongosup configuration\n"
            "  -e, --env ENV        environment of the configuration\n"
            "  -i, --interval SEC   refresh interval of the live view (default 1); with\n"
            "                       --once, sample twice SEC apart to show rates\n"
            "      --once           print the view once as plain text and exit\n"
            "      --json           print one JSON document (schema mongosup/1) and exit\n"
            "      --pretty         indent the JSON\n"
            "      --prometheus     print the Prometheus text exposition and exit\n"
            "  -h, --help           this help\n"
            "Exit status: 0 success, 1 segment missing, corrupted or unreadable, 64 usage.\n");
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The non-interactive modes: one snapshot (two for --once -i), one document. */
static int print_once(const char *name, uid_t owner, int mode, bool pretty, double interval_s, bool sample_twice)
{
    msup_segment_t seg;
    mongosup_error_t err;
    if (!msup_segment_open_readonly(name, owner, &seg, &err)) {
        fprintf(stderr, "mongosup-top: %s\n", err.message);
        return 1;
    }
    msup_snapshot_t prev, now;
    bool have_prev = false, ok = false;
    if (mode == 'o' && sample_twice) {
        if (!msup_snapshot_take(&seg, &prev, &err))
            goto fail;
        have_prev = true;
        sleep_s(interval_s);
    }
    if (!msup_snapshot_take(&seg, &now, &err))
        goto fail;
    if (mode == 'j') {
        ok = msup_export_json(&now, stdout, pretty);
    } else if (mode == 'p') {
        ok = msup_export_prometheus(&now, stdout);
    } else {
        msup_view_t view;
        memset(&view, 0, sizeof view);
        ok = msup_view_build(&view, &now, have_prev ? &prev : NULL) && msup_export_text(&view, stdout);
        msup_view_free(&view);
    }
    msup_snapshot_free(&now);
    if (have_prev)
        msup_snapshot_free(&prev);
    msup_segment_close(&seg);
    if (fflush(stdout) != 0 || !ok) {
        fprintf(stderr, "mongosup-top: cannot write the output\n");
        return 1;
    }
    return 0;
fail:
    fprintf(stderr, "mongosup-top: %s\n", err.message);
    if (have_prev)
        msup_snapshot_free(&prev);
    msup_segment_close(&seg);
    return 1;
}

int main(int argc, char **argv)
{
    /* Before anything opens a file: see stdio_guard.h. */
    if (!msup_stdio_guard())
        return 1;
    static const struct option longopts[] = {
        {"segment", required_argument, NULL, 'n'}, {"config", required_argument, NULL, 'c'},
        {"env", required_argument, NULL, 'e'},     {"interval", required_argument, NULL, 'i'},
        {"once", no_argument, NULL, 'o'},          {"json", no_argument, NULL, 'j'},
        {"pretty", no_argument, NULL, 'P'},        {"prometheus", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    msup_target_t target = {NULL, NULL, NULL};
    int mode = 0;
    bool pretty = false, interval_given = false;
    double interval_s = 1.0;
    int opt;
    while ((opt = getopt_long(argc, argv, "n:c:e:i:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n': target.segment = optarg; break;
        case 'c': target.config_path = optarg; break;
        case 'e': target.environment = optarg; break;
        case 'i': {
            char *end;
            interval_s = strtod(optarg, &end);
            if (*end != '\0' || !(interval_s >= 0.1 && interval_s <= 3600)) {
                fprintf(stderr, "mongosup-top: interval '%s' must be a number of seconds in 0.1..3600\n", optarg);
                return EXIT_USAGE;
            }
            interval_given = true;
            break;
        }
        case 'o': case 'j': case 'p':
            if (mode != 0 && mode != opt) {
                fprintf(stderr, "mongosup-top: --once, --json and --prometheus exclude each other\n");
                return EXIT_USAGE;
            }
            mode = opt;
            break;
        case 'P': pretty = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mongosup-top: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (pretty && mode != 'j') {
        fprintf(stderr, "mongosup-top: --pretty goes with --json\n");
        return EXIT_USAGE;
    }
    char name[MSUP_NAME_MAX];
    uid_t owner;
    mongosup_error_t err;
    if (!msup_target_resolve(&target, name, sizeof name, &owner, &err)) {
        fprintf(stderr, "mongosup-top: %s\n", err.message);
        return err.code == MONGOSUP_E_INVALID_ARG ? EXIT_USAGE : 1;
    }
    if (mode != 0)
        return print_once(name, owner, mode, pretty, interval_s, interval_given);
    return msup_top_live(name, owner, interval_s);
}
