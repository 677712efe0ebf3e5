#!/bin/sh
# show-failures.sh: prints why one test failed, most telling lines first, in a bounded number of lines.
#
#   show-failures.sh [--recap] OUTPUT [VALGRIND_LOG]
#
# OUTPUT is the test's output (automake's tests/x.log, check-valgrind's
# tests/x.valgrind.out), VALGRIND_LOG the memcheck log of that run.  CI shows
# only the end of its output, and a failing test's log can be flooded by one
# warning repeated by every forked worker: a plain tail cut the failed
# assertion out.  So this prints, in order:
#   1. each failed CUnit test: its "Test: NAME ...FAILED" line, the numbered
#      "N. file:line  - expr" lines, and the test's own lines printed between
#      them (SKIP notes, measured figures), repeated lines collapsed;
#      a test that started but never finished (a crash, a kill) is named;
#   2. with VALGRIND_LOG: the error records and ERROR SUMMARY of each process
#      that had errors (forked children log into the same file);
#   3. the last TAIL_LINES lines of OUTPUT, runs of similar lines collapsed.
# --recap prints only the failed-assertion lines and the non-zero error
# summaries: the callers print a recap of every failing test at the very end.
# POSIX sh and awk only (Debian's awk is mawk).
set -u
recap=0
if [ "${1:-}" = "--recap" ]; then
    recap=1
    shift
fi
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: show-failures.sh [--recap] OUTPUT [VALGRIND_LOG]" >&2
    exit 2
fi
out=$1
vglog=${2:-}
TAIL_LINES=${TAIL_LINES:-60}
# The own lines shown per failed test at most (after collapsing repeats).
OWN_LINES=${OWN_LINES:-25}

# The failed tests of a CUnit verbose run.  A test's window runs from its
# "  Test: NAME ..." line to the next test, suite or run summary; the result
# ("passed" / "FAILED") ends the line that holds the test's last stdout
# output.  Lines equal once their digits are masked are shown once, with a
# count: 32 workers printing the same warning take one line.
failed_tests() {
    awk -v recap="$recap" -v own_max="$OWN_LINES" '
    function mask(s) { gsub(/[0-9]+/, "#", s); return s }
    function flush_window(   i, k, shown, more) {
        if (name == "")
            return
        if (!failed && !passed) {
            print "  " name ": started but did not finish (crashed, killed or hung)"
            print "    " head
        } else if (failed) {
            print "  " name ": FAILED"
            print "    " (length(head) > 300 ? substr(head, 1, 300) "..." : head)
            shown = 0; more = 0
            for (i = 1; i <= n; i++) {
                if (kind[i] == "assert") {
                    print "    " line[i]
                } else if (!recap || line[i] ~ /SKIP/) {
                    k = mask(line[i])
                    if (k in count && first[k] != i)
                        continue
                    if (shown >= own_max) { more++; continue }
                    shown++
                    print "    | " line[i] (count[k] > 1 ? "   [" count[k] " times]" : "")
                }
            }
            if (more > 0)
                print "    | (" more " more lines of this test: see the tail)"
        }
        name = ""; n = 0; failed = 0; passed = 0
        for (k in count) { delete count[k]; delete first[k] }
    }
    /^  Test: / {
        flush_window()
        head = $0
        sub(/^  Test: /, "")
        name = $0
        sub(/ \.\.\..*$/, "", name)
        if (head ~ /FAILED[ \t]*$/) failed = 1
        else if (head ~ /passed[ \t]*$/) passed = 1
        next
    }
    /^Suite: / || /^Run Summary:/ { flush_window(); if ($0 ~ /^Run Summary:/) summary = 1; next }
    summary && /^ +tests +[0-9]/ { tests_line = $0; next }
    name != "" {
        if (failed && $0 ~ /^    [0-9]+\. .*:[0-9]+  ?- /) {
            n++; line[n] = $0; kind[n] = "assert"; sub(/^ +/, "", line[n])
            next
        }
        # After the result come the next test'"'"'s stderr lines (stdout is
        # line-buffered: its "Test:" line is written later).
        if (failed || passed)
            next
        if ($0 ~ /FAILED[ \t]*$/) failed = 1
        else if ($0 ~ /passed[ \t]*$/) passed = 1
        if ($0 ~ /^[ \t]*$/)
            next
        n++; line[n] = $0; kind[n] = "own"
        k = mask($0); count[k]++
        if (count[k] == 1) first[k] = n
    }
    END {
        flush_window()
        if (tests_line != "" && !recap)
            print "  CUnit run summary:" tests_line
    }' "$1"
}

# Error records and summaries of the processes whose memcheck ERROR SUMMARY
# is not zero, at most 80 record lines; the banner and heap statistics are
# left out.  "Process terminating" records (a crash under memcheck) count too.
valgrind_errors() {
    awk -v recap="$recap" '
    function pid_of(s) { sub(/^==/, "", s); sub(/==.*$/, "", s); return s }
    NR == FNR {
        if ($0 ~ /ERROR SUMMARY: [1-9]/ || $0 ~ /Process terminating/) bad[pid_of($0)] = 1
        next
    }
    {
        p = pid_of($0)
        if (!(p in bad)) next
        body = $0; sub(/^==[0-9]+== ?/, "", body)
        if (body ~ /ERROR SUMMARY: [1-9]/) { print "  " $0; next }
        if (recap) next
        if (body ~ /^(Memcheck, a memory|Copyright|Using Valgrind|Command:|Parent PID:|HEAP SUMMARY|  *in use at exit|  *total heap usage|For lists of|For counts of|Rerun with|  *suppressed:|LEAK SUMMARY|  *still reachable|  *possibly lost|  *of which reachable)/)
            next
        if (body ~ /^[ \t]*$/) {
            if (shown == 0 || blank) next
            blank = 1
        } else {
            blank = 0
        }
        if (shown < 80) { print "  " $0; shown++ }
        else dropped++
    }
    END {
        if (recap) exit
        if (dropped > 0) print "  (" dropped " more valgrind lines: see the log)"
        n = 0
        for (p in bad) n++
        if (n == 0) print "  (none: no memcheck error, the test itself failed)"
    }
    ' "$1" "$1"
}

# The output with each run of consecutive lines that differ only in their
# digits (one warning from many workers) shown as its first line and a count.
collapse_runs() {
    awk '
    function mask(s) { gsub(/[0-9]+/, "#", s); return s }
    function flush_run() {
        if (run > 1) print "    [" run - 1 " more like the line above]"
    }
    { k = mask($0) }
    NR > 1 && k == prev && k !~ /^[ \t]*$/ { run++; next }
    { flush_run(); print; prev = k; run = 1 }
    END { flush_run() }' "$1"
}

if [ ! -r "$out" ]; then
    echo "show-failures.sh: cannot read $out" >&2
    exit 2
fi
if [ "$recap" -eq 1 ]; then
    echo "== $out"
    failed_tests "$out"
    if [ -n "$vglog" ] && [ -r "$vglog" ]; then
        valgrind_errors "$vglog"
    fi
    exit 0
fi
echo "---- $out: failed tests"
failed_tests "$out"
if [ -n "$vglog" ]; then
    echo "---- $vglog: processes with memcheck errors"
    if [ -r "$vglog" ]; then
        valgrind_errors "$vglog"
    else
        echo "  (no valgrind log)"
    fi
fi
echo "---- $out: its last $TAIL_LINES lines (runs of similar lines collapsed)"
collapse_runs "$out" | tail -n "$TAIL_LINES"
