/* tools_top_test.c: the live view of mongosup-top driven in tmux (send-keys, capture-pane), across a supervisor restart. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testmain.h"
#include "tools_fixture.h"

static char seg_name[64];
static char tmux[128]; /* "tmux -L <socket>" */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *capture(void)
{
    char cmd[256];
    int st;
    snprintf(cmd, sizeof cmd, "%s capture-pane -p -t top", tmux);
    return fx_run(cmd, false, &st);
}

/* Waits (up to 5 s) until the screen shows `text` (or no longer shows it). */
static bool screen_has(const char *text, bool want)
{
    for (int i = 0; i < 100; i++) {
        char *screen = capture();
        bool has = screen != NULL && strstr(screen, text) != NULL;
        if (has == want) {
            free(screen);
            return true;
        }
        if (i == 99)
            fprintf(stderr, "\nscreen %s '%s':\n%s\n", want ? "lacks" : "still shows", text, screen ? screen : "");
        free(screen);
        sleep_ms(50);
    }
    return false;
}

static void keys(const char *k)
{
    char cmd[256];
    int st;
    snprintf(cmd, sizeof cmd, "%s send-keys -t top %s", tmux, k);
    free(fx_run(cmd, true, &st));
    CU_ASSERT_EQUAL(st, 0);
}

static void test_live_view(void)
{
    if (access("/usr/bin/tmux", X_OK) != 0) {
        fprintf(stderr, "\ntmux missing: the live view test is skipped\n");
        return;
    }
    snprintf(seg_name, sizeof seg_name, "%s", msup_test_segment_name("top"));
    snprintf(tmux, sizeof tmux, "tmux -L msup-test-%d -f /dev/null", (int)getpid());
    msup_segment_t seg;
    CU_ASSERT_FATAL(fx_create(seg_name, getpid(), getpid(), &seg));

    char cmd[1024];
    int st;
    snprintf(cmd, sizeof cmd, "TERM=xterm-256color %s new-session -d -s top -x 200 -y 40 '%s -n %s -i 0.2'", tmux,
             fx_tool("mongosup-top"), seg_name);
    free(fx_run(cmd, true, &st));
    CU_ASSERT_FATAL(st == 0);

    /* The cluster rows. */
    CU_ASSERT(screen_has("CLUSTER^", true));
    CU_ASSERT(screen_has("users", true));
    CU_ASSERT(screen_has("DEGRADED", true));
    CU_ASSERT(screen_has("7/50", true));
    CU_ASSERT(screen_has("environment production", true));

    /* Keys: sort, reverse, worker table, pause, help. */
    keys("s");
    CU_ASSERT(screen_has("STATE^", true));
    keys("r");
    CU_ASSERT(screen_has("STATEv", true));
    keys("Tab");
    CU_ASSERT(screen_has("Workers: 3", true));
    CU_ASSERT(screen_has("web-old", true));
    keys("c");
    CU_ASSERT(screen_has("Clusters (TAB", true));
    keys("p");
    CU_ASSERT(screen_has("[PAUSED]", true));
    keys("p");
    CU_ASSERT(screen_has("[PAUSED]", false));
    keys("h");
    CU_ASSERT(screen_has("mongosup-top keys", true));
    keys("x");
    CU_ASSERT(screen_has("mongosup-top keys", false));

    /* Terminal resize. */
    snprintf(cmd, sizeof cmd, "%s resize-window -t top -x 90 -y 20", tmux);
    free(fx_run(cmd, true, &st));
    CU_ASSERT(screen_has("billing", true));

    /* Supervisor restart: the segment disappears, then comes back recreated. */
    msup_segment_close(&seg);
    msup_segment_unlink(seg_name, NULL);
    CU_ASSERT(screen_has("waiting", true));
    CU_ASSERT(screen_has("does not exist", true));
    CU_ASSERT_FATAL(fx_create(seg_name, getpid(), getpid(), &seg));
    strcpy(msup_segment_row(&seg, 1)->name, "reborn");
    strcpy(msup_segment_reg(&seg, 1)->name, "reborn");
    CU_ASSERT(screen_has("reborn", true));
    CU_ASSERT(screen_has("waiting", false));

    /* Corruption in place: a clear message, the view keeps running. */
    msup_segment_hdr(&seg)->layout_version = 42;
    CU_ASSERT(screen_has("layout version 42", true));
    msup_segment_hdr(&seg)->layout_version = MSUP_LAYOUT_VERSION;
    CU_ASSERT(screen_has("reborn", true));

    /* Truncated under the map: a clear message instead of a fault. */
    msup_segment_close(&seg);
    char stats_name[MSUP_NAME_MAX + 8];
    snprintf(stats_name, sizeof stats_name, "%s.stats", seg_name);
    int fd = shm_open(stats_name, O_RDWR, 0);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(ftruncate(fd, 4096) == 0);
    close(fd);
    CU_ASSERT(screen_has("truncated", true));
    msup_segment_unlink(seg_name, NULL);
    CU_ASSERT_FATAL(fx_create(seg_name, getpid(), getpid(), &seg));
    CU_ASSERT(screen_has("orders", true));

    /* q quits: the session ends with its only program. */
    keys("q");
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        snprintf(cmd, sizeof cmd, "%s has-session -t top", tmux);
        free(fx_run(cmd, true, &st));
        gone = st != 0;
        if (!gone)
            sleep_ms(50);
    }
    CU_ASSERT(gone);
    snprintf(cmd, sizeof cmd, "%s kill-server", tmux);
    free(fx_run(cmd, true, &st));
    msup_segment_close(&seg);
    msup_segment_unlink(seg_name, NULL);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/top/live/tmux", test_live_view},
        {NULL, NULL},
    };
    return msup_test_main("tools_top", tests, argc, argv);
}
