/* worker_fork.c: process-wide worker state: the fork epoch (inherited handles), the driver's log, abandoned handles. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "redact.h"
#include "worker.h"

/* Bumped in every child by pthread_atfork: a handle whose epoch differs was
 * inherited across fork.  A load and a compare instead of getpid() (a real
 * syscall in current glibc) on every checkout. */
static _Atomic uint64_t fork_epoch;
static pthread_once_t process_once = PTHREAD_ONCE_INIT;
/* Handles we may not free (inherited across fork, or clients still out at
 * detach): kept reachable here, never destroyed. */
static _Atomic(mongosup_t *) abandoned;

static void on_fork_child(void)
{
    atomic_fetch_add_explicit(&fork_epoch, 1, memory_order_relaxed);
}

/* The driver logs pooled monitor errors at DEBUG on stdout, and the idle
 * cap that trimming needs (mongoc_client_pool_min_size) logs a deprecation
 * warning on every call: keep warnings and worse, redacted, on stderr. */
static void driver_log(mongoc_log_level_t level, const char *domain, const char *message, void *data)
{
    (void)data;
    if (level > MONGOC_LOG_LEVEL_WARNING || strstr(message, "mongoc_client_pool_min_size") != NULL)
        return;
    char text[1024];
    msup_redact_text(message, text, sizeof text);
    fprintf(stderr, "mongosup[%d]: driver %s: %s\n", (int)getpid(), domain ? domain : "", text);
}

static void process_init_once(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
    mongoc_log_set_handler(driver_log, NULL);
}

void msup_process_init(void)
{
    pthread_once(&process_once, process_init_once);
}

uint64_t msup_fork_epoch(void)
{
    return atomic_load_explicit(&fork_epoch, memory_order_relaxed);
}

bool msup_handle_inherited(const mongosup_t *h)
{
    return h->fork_epoch != atomic_load_explicit(&fork_epoch, memory_order_relaxed);
}

void msup_handle_abandon(mongosup_t *h)
{
    mongosup_t *head = atomic_load_explicit(&abandoned, memory_order_relaxed);
    do {
        h->next_abandoned = head;
    } while (!atomic_compare_exchange_weak_explicit(&abandoned, &head, h, memory_order_release,
                                                    memory_order_relaxed));
}
