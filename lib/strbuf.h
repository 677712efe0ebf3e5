/* strbuf.h: one small string builder, growing on the heap or bounded by the caller's buffer, with percent-encoding (internal). */
#ifndef MONGOSUP_STRBUF_H
#define MONGOSUP_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Growing: start from MSUP_STRBUF_GROWING; an allocation failure sets oom
 * and ignores every later append (check oom once at the end); free with
 * msup_strbuf_wipe (it zeroes the bytes: URIs may carry a password).
 * Bounded: msup_strbuf_init_fixed on the caller's buffer; appends what
 * fits and sets truncated.  Either way p is NUL-terminated after any
 * append (a fresh growing builder has p == NULL).
 */
typedef struct msup_strbuf {
    char *p;
    size_t len;
    size_t cap;     /* bytes, NUL included */
    bool fixed;     /* the caller's buffer: never reallocated */
    bool truncated; /* fixed: something did not fit */
    bool oom;       /* growing: an allocation failed */
} msup_strbuf_t;

#define MSUP_STRBUF_GROWING {0}

void msup_strbuf_init_fixed(msup_strbuf_t *sb, char *buf, size_t cap);
void msup_strbuf_putn(msup_strbuf_t *sb, const char *s, size_t n);
void msup_strbuf_puts(msup_strbuf_t *sb, const char *s);
/* Percent-encodes all but the unreserved characters (RFC 3986) and those in keep. */
void msup_strbuf_put_encoded(msup_strbuf_t *sb, const char *s, const char *keep);
/* The last character, '\0' when empty. */
char msup_strbuf_last(const msup_strbuf_t *sb);
/* Growing: zeroes and frees the bytes.  Fixed: nothing to free. */
void msup_strbuf_wipe(msup_strbuf_t *sb);

#endif
