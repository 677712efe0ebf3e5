/* strbuf.c: the string builder shared by the configuration loader and the redaction helpers. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

void msup_strbuf_init_fixed(msup_strbuf_t *sb, char *buf, size_t cap)
{
    *sb = (msup_strbuf_t){.p = buf, .cap = cap, .fixed = true};
    if (cap > 0)
        buf[0] = '\0';
}

/* Growing: room for n more bytes and the NUL, or oom. */
static bool reserve(msup_strbuf_t *sb, size_t n)
{
    if (sb->len + n + 1 <= sb->cap)
        return true;
    size_t cap = sb->cap > 0 ? sb->cap : 256;
    while (sb->len + n + 1 > cap)
        cap *= 2;
    char *p = malloc(cap);
    if (p == NULL) {
        sb->oom = true;
        return false;
    }
    /* Not realloc: the old bytes may hold a password, wipe them. */
    if (sb->p != NULL) {
        memcpy(p, sb->p, sb->len + 1);
        explicit_bzero(sb->p, sb->cap);
        free(sb->p);
    }
    sb->p = p;
    sb->cap = cap;
    return true;
}

void msup_strbuf_putn(msup_strbuf_t *sb, const char *s, size_t n)
{
    if (sb->fixed) {
        if (sb->cap == 0) {
            sb->truncated = sb->truncated || n > 0;
            return;
        }
        size_t room = sb->cap - 1 - sb->len;
        if (n > room) {
            n = room;
            sb->truncated = true;
        }
    } else if (sb->oom || !reserve(sb, n)) {
        return;
    }
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

void msup_strbuf_puts(msup_strbuf_t *sb, const char *s)
{
    msup_strbuf_putn(sb, s, strlen(s));
}

void msup_strbuf_put_encoded(msup_strbuf_t *sb, const char *s, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || strchr("-._~", ch) != NULL || (keep != NULL && strchr(keep, ch) != NULL)) {
            msup_strbuf_putn(sb, s, 1);
        } else {
            char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            msup_strbuf_putn(sb, enc, 3);
        }
    }
}

char msup_strbuf_last(const msup_strbuf_t *sb)
{
    return sb->len > 0 ? sb->p[sb->len - 1] : '\0';
}

void msup_strbuf_wipe(msup_strbuf_t *sb)
{
    if (sb->fixed)
        return;
    if (sb->p != NULL)
        explicit_bzero(sb->p, sb->cap);
    free(sb->p);
    *sb = (msup_strbuf_t)MSUP_STRBUF_GROWING;
}
