/* log.c: levels, stderr or syslog, one line per event, the driver's log routed in and redacted. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "log.h"
#include "redact.h"
#include "textsafe.h"

static atomic_int log_max_level = LOG_INFO;
static atomic_bool log_syslog = false;

static const char *level_name(int level)
{
    static const char *const names[] = {"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"};
    return level >= 0 && level <= LOG_DEBUG ? names[level] : "?";
}

void msup_log_open(bool use_syslog, int max_level)
{
    if (use_syslog && !atomic_load(&log_syslog))
        openlog("mongosupd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    else if (!use_syslog && atomic_load(&log_syslog))
        closelog();
    atomic_store(&log_syslog, use_syslog);
    atomic_store(&log_max_level, max_level);
}

void msup_log_set_level(int max_level)
{
    atomic_store(&log_max_level, max_level);
}

int msup_log_level(void)
{
    return atomic_load(&log_max_level);
}

bool msup_log_to_syslog(void)
{
    return atomic_load(&log_syslog);
}

void msup_log_close(void)
{
    if (atomic_exchange(&log_syslog, false))
        closelog();
}

/* Formats the whole line first and writes it with one write(2): lines from
 * the checker threads and the main loop never interleave. */
static void emit(int level, const char *text)
{
    if (atomic_load(&log_syslog)) {
        syslog(level, "%s", text);
        return;
    }
    char line[1200];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld mongosupd[%d]: %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
                     (int)getpid(), level_name(level));
    if (n < 0)
        return;
    size_t len = (size_t)n;
    len += msup_text_copy(line + len, sizeof line - 1 - len, text, strlen(text));
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

void msup_log(int level, const char *fmt, ...)
{
    if (level > atomic_load(&log_max_level))
        return;
    char raw[1024], text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* Names and messages come from the configuration, the segment and the
     * servers: control characters and terminal escapes are shown as \xHH
     * (one event stays one line: a newline would forge a second). */
    msup_text_escape(text, sizeof text, raw, sizeof raw);
    emit(level, text);
}

static int driver_level(mongoc_log_level_t level)
{
    switch (level) {
    case MONGOC_LOG_LEVEL_ERROR: return LOG_ERR;
    case MONGOC_LOG_LEVEL_CRITICAL: return LOG_CRIT;
    case MONGOC_LOG_LEVEL_WARNING: return LOG_WARNING;
    case MONGOC_LOG_LEVEL_MESSAGE: return LOG_NOTICE;
    case MONGOC_LOG_LEVEL_INFO: return LOG_INFO;
    default: return LOG_DEBUG;
    }
}

/* The driver may quote a URI or a command in its messages: redact them all. */
static void driver_handler(mongoc_log_level_t level, const char *domain, const char *message, void *user_data)
{
    (void)user_data;
    if (level == MONGOC_LOG_LEVEL_TRACE)
        return;
    int ours = driver_level(level);
    /* Dropping a checker's client after a failure tries endSessions on the
     * dead server and warns each time: expected, so debug. */
    if (strstr(message, "endSessions") != NULL)
        ours = LOG_DEBUG;
    if (ours > atomic_load(&log_max_level))
        return;
    char clean[900];
    msup_redact_text(message, clean, sizeof clean);
    msup_log(ours, "mongoc[%s]: %s", domain ? domain : "?", clean);
}

void msup_log_route_driver(void)
{
    mongoc_log_trace_disable();
    mongoc_log_set_handler(driver_handler, NULL);
}

bool msup_log_parse_level(const char *name, int *level)
{
    static const struct { const char *name; int level; } table[] = {
        {"err", LOG_ERR}, {"error", LOG_ERR}, {"warning", LOG_WARNING}, {"warn", LOG_WARNING},
        {"notice", LOG_NOTICE}, {"info", LOG_INFO}, {"debug", LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcasecmp(name, table[i].name) == 0) {
            *level = table[i].level;
            return true;
        }
    }
    return false;
}
