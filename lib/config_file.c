/* config_file.c: reads the files the loader needs (the configuration, password files) without ever blocking, and only if they are regular files. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_int.h"

const char *msup_cfg_file_kind(mode_t mode)
{
    if (S_ISREG(mode))
        return "a regular file";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISLNK(mode))
        return "a symbolic link";
    return "not a regular file";
}

static bool fail_why(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail_why(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return false;
}

/*
 * stat(2) first, so that a FIFO, a directory or a device is refused without
 * being opened at all (opening a tape or a terminal has side effects of its
 * own); then open with O_NONBLOCK (should the path have been swapped for a
 * FIFO meanwhile, open returns at once instead of waiting for a writer) and
 * O_NOCTTY, and check with fstat that the descriptor is the regular file
 * that was looked at.  Symbolic links are followed: the checks apply to the
 * file that is read (see docs/security.md for why).
 */
bool msup_cfg_read_file(const char *path, size_t max, msup_cfg_file_t *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    struct stat before, st;
    if (stat(path, &before) != 0)
        return fail_why(why, why_len, "cannot open %s: %s", path, strerror(errno));
    if (!S_ISREG(before.st_mode))
        return fail_why(why, why_len, "%s is %s, not a regular file", path, msup_cfg_file_kind(before.st_mode));
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return fail_why(why, why_len, "cannot open %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fail_why(why, why_len, "cannot open %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode) || st.st_dev != before.st_dev || st.st_ino != before.st_ino) {
        close(fd);
        return fail_why(why, why_len, "%s is %s, not a regular file", path,
                        S_ISREG(st.st_mode) ? "being replaced" : msup_cfg_file_kind(st.st_mode));
    }
    /* One byte more than allowed tells "too long" from "exactly max". */
    char *buf = malloc(max + 2);
    if (buf == NULL) {
        close(fd);
        return fail_why(why, why_len, "cannot read %s: %s", path, strerror(ENOMEM));
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, max + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            explicit_bzero(buf, len);
            free(buf);
            return fail_why(why, why_len, "cannot read %s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > max) {
            close(fd);
            explicit_bzero(buf, len);
            free(buf);
            return fail_why(why, why_len, "%s is longer than %zu bytes", path, max);
        }
    }
    close(fd);
    buf[len] = '\0';
    out->data = buf;
    out->len = len;
    out->mode = st.st_mode;
    return true;
}

bool msup_cfg_check_not_special(const char *path, char *why, size_t why_len)
{
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode))
        return true;
    return fail_why(why, why_len, "%s is %s, not a regular file", path, msup_cfg_file_kind(st.st_mode));
}

void msup_cfg_file_free(msup_cfg_file_t *f)
{
    if (f->data != NULL) {
        explicit_bzero(f->data, f->len);
        free(f->data);
    }
    memset(f, 0, sizeof *f);
}

/* libconfig 1.5 (Debian 12) opens @include'd files itself with fopen(3), with
 * no hook to give it a descriptor: a FIFO there would block and a directory
 * would make its scanner exit(2).  The scanner honours "@include" only as the
 * first word of a line outside a string, so that is what is looked for. */
int msup_cfg_find_include(const char *text)
{
    enum { CODE, STRING, LINE_COMMENT, BLOCK_COMMENT } state = CODE;
    int line = 1;
    bool line_start = true;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '\n') {
            line++;
            line_start = true;
            if (state == LINE_COMMENT)
                state = CODE;
            continue;
        }
        switch (state) {
        case CODE:
            if (line_start && (*p == ' ' || *p == '\t'))
                continue;
            if (line_start && strncmp(p, "@include", 8) == 0)
                return line;
            line_start = false;
            if (*p == '"')
                state = STRING;
            else if (*p == '#' || (p[0] == '/' && p[1] == '/'))
                state = LINE_COMMENT;
            else if (p[0] == '/' && p[1] == '*') {
                state = BLOCK_COMMENT;
                p++;
            }
            break;
        case STRING:
            line_start = false;
            if (*p == '\\' && p[1] != '\0')
                p++;
            else if (*p == '"')
                state = CODE;
            break;
        case LINE_COMMENT:
            line_start = false;
            break;
        case BLOCK_COMMENT:
            line_start = false;
            if (p[0] == '*' && p[1] == '/') {
                state = CODE;
                p++;
            }
            break;
        }
    }
    return 0;
}
