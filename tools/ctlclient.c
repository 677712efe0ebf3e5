/* ctlclient.c: one request on mongosupd's control socket, bounded in time, from a peer whose credentials we checked. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctlclient.h"
#include "error.h"
#include "segment.h" /* msup_mono_ns */

/* More than any answer the supervisor gives (one line per cluster). */
#define ANSWER_LIMIT (64 * 1024)

static int ms_left(uint64_t deadline)
{
    uint64_t now = msup_mono_ns();
    return now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
}

/* Waits for fd to be ready for `events`; false at the deadline. */
static bool wait_ready(int fd, short events, uint64_t deadline)
{
    for (;;) {
        int left = ms_left(deadline);
        if (left == 0)
            return false;
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, left);
        if (rc > 0)
            return true;
        if (rc < 0 && errno != EINTR)
            return false;
    }
}

static msup_ctl_status_t connect_to(int fd, const char *path, uint64_t deadline, unsigned timeout_ms,
                                    mongosup_error_t *error)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        msup_fail(error, MONGOSUP_E_INVALID_ARG, "control socket path %s is too long", path);
        return MSUP_CTL_FAILED;
    }
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    /* A full backlog makes a non-blocking connect fail with EAGAIN at once
     * (AF_UNIX): try again until the deadline. */
    while (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (errno == EAGAIN || errno == EINTR) {
            if (ms_left(deadline) == 0) {
                msup_fail(error, MONGOSUP_E_SYSTEM, "mongosupd did not accept a connection on %s within %u ms", path,
                          timeout_ms);
                return MSUP_CTL_FAILED;
            }
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        if (errno == ENOENT) {
            msup_fail(error, MONGOSUP_E_SYSTEM,
                      "no control socket at %s: mongosupd is not running, or listens elsewhere "
                      "(supervisor.control_socket, -s PATH)",
                      path);
            return MSUP_CTL_NO_LISTENER;
        }
        if (errno == ECONNREFUSED) {
            msup_fail(error, MONGOSUP_E_SYSTEM, "nothing listens on %s: mongosupd is not running (stale socket)", path);
            return MSUP_CTL_NO_LISTENER;
        }
        if (errno == EACCES || errno == EPERM) {
            msup_fail(error, MONGOSUP_E_SYSTEM,
                      "permission denied on %s: run mongosupctl as mongosupd's user or root (uid %u may not)", path,
                      (unsigned)geteuid());
            return MSUP_CTL_FAILED;
        }
        msup_fail_errno(error, MONGOSUP_E_SYSTEM, "control socket %s: connect", path);
        return MSUP_CTL_FAILED;
    }
    return MSUP_CTL_ANSWER_OK;
}

/* Root, ourselves, or whoever alone may put a socket in that directory. */
static bool peer_trusted(int fd, const char *path, mongosup_error_t *error)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return msup_fail_errno(error, MONGOSUP_E_SYSTEM, "control socket %s: reading the peer's credentials", path);
    if (cred.uid == 0 || cred.uid == geteuid())
        return true;
    char dir[sizeof ((struct sockaddr_un *)0)->sun_path];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
        *(slash == dir ? slash + 1 : slash) = '\0';
    struct stat st;
    if (slash != NULL && stat(dir, &st) == 0 && st.st_uid == cred.uid && !(st.st_mode & (S_IWGRP | S_IWOTH)))
        return true;
    return msup_fail(error, MONGOSUP_E_SYSTEM,
                     "the process answering on %s (pid %d) runs as uid %u, neither root, uid %u nor the owner of %s: "
                     "not trusted",
                     path, (int)cred.pid, (unsigned)cred.uid, (unsigned)geteuid(), slash ? dir : path);
}

static bool send_all(int fd, const char *buf, size_t len, uint64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_ready(fd, POLLOUT, deadline))
                return false;
        } else {
            return false;
        }
    }
    return true;
}

/* Reads until the supervisor closes (it does after its verdict).  Returns
 * the text (NUL-terminated, malloc'd), or NULL with *timed_out set. */
static char *read_all(int fd, uint64_t deadline, bool *timed_out)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    *timed_out = false;
    while (buf != NULL) {
        if (len + 1 >= cap) {
            if (cap >= ANSWER_LIMIT)
                break; /* an answer this long is not mongosupd's: cut it */
            char *b = realloc(buf, cap * 2);
            if (b == NULL)
                break;
            buf = b;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
        if (n > 0) {
            len += (size_t)n;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            break;
        } else if (!wait_ready(fd, POLLIN, deadline)) {
            *timed_out = true;
            free(buf);
            return NULL;
        }
    }
    if (buf != NULL)
        buf[len] = '\0';
    return buf;
}

/* Copies src to dst escaping control characters (but newlines) as \xHH:
 * an answer never drives the operator's terminal. */
static void escape_into(char *dst, size_t n, const char *src, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        if ((ch < 0x20 && ch != '\n') || ch == 0x7f)
            o += (size_t)snprintf(dst + o, n - o, "\\x%02x", ch);
        else
            dst[o++] = (char)ch;
    }
    dst[o < n ? o : n - 1] = '\0';
}

static msup_ctl_status_t parse_answer(char *text, msup_ctl_answer_t *answer, const char *path,
                                      mongosup_error_t *error)
{
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    char *last = strrchr(text, '\n');
    char *verdict = last ? last + 1 : text;
    size_t before = last ? (size_t)(last - text) + 1 : 0;
    answer->lines = malloc(before * 4 + 1);
    if (answer->lines == NULL) {
        msup_fail(error, MONGOSUP_E_SYSTEM, "out of memory");
        return MSUP_CTL_FAILED;
    }
    escape_into(answer->lines, before * 4 + 1, text, before);
    msup_ctl_status_t st;
    const char *rest;
    if (strncmp(verdict, "ok", 2) == 0 && (verdict[2] == '\0' || verdict[2] == ' ')) {
        st = MSUP_CTL_ANSWER_OK;
        rest = verdict[2] ? verdict + 3 : "";
    } else if (strncmp(verdict, "error ", 6) == 0) {
        st = MSUP_CTL_ANSWER_ERROR;
        rest = verdict + 6;
    } else {
        msup_fail(error, MONGOSUP_E_SYSTEM, "no verdict from the process on %s (the connection ended early)", path);
        return MSUP_CTL_FAILED;
    }
    escape_into(answer->verdict, sizeof answer->verdict, rest, strlen(rest));
    return st;
}

msup_ctl_status_t msup_ctl_request(const char *path, const char *request, unsigned timeout_ms,
                                   msup_ctl_answer_t *answer, mongosup_error_t *error)
{
    *answer = (msup_ctl_answer_t){.lines = NULL};
    uint64_t deadline = msup_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        msup_fail_errno(error, MONGOSUP_E_SYSTEM, "socket");
        return MSUP_CTL_FAILED;
    }
    msup_ctl_status_t st = connect_to(fd, path, deadline, timeout_ms, error);
    if (st != MSUP_CTL_ANSWER_OK) {
        close(fd);
        return st;
    }
    if (!peer_trusted(fd, path, error)) {
        close(fd);
        return MSUP_CTL_FAILED;
    }
    char line[512];
    int n = snprintf(line, sizeof line, "%s\n", request);
    bool timed_out = false;
    /* A refusal is written at accept and the connection closed: the send
     * may then fail while the answer waits to be read. */
    bool sent = n > 0 && (size_t)n < sizeof line && send_all(fd, line, (size_t)n, deadline);
    char *text = read_all(fd, deadline, &timed_out);
    close(fd);
    if (text != NULL && !sent && text[0] == '\0') {
        free(text);
        text = NULL;
    }
    if (text == NULL) {
        if (timed_out)
            msup_fail(error, MONGOSUP_E_SYSTEM, "no answer from mongosupd on %s within %u ms", path, timeout_ms);
        else
            msup_fail(error, MONGOSUP_E_SYSTEM, "control socket %s: the request could not be sent", path);
        return MSUP_CTL_FAILED;
    }
    st = parse_answer(text, answer, path, error);
    free(text);
    return st;
}

void msup_ctl_answer_free(msup_ctl_answer_t *answer)
{
    free(answer->lines);
    answer->lines = NULL;
}
