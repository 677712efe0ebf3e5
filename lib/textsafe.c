/* textsafe.c: UTF-8 validation, boundary-safe truncation and escaping of untrusted text (rules in textsafe.h). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "textsafe.h"

/* Length of the valid UTF-8 sequence at s (n bytes available), storing its
 * code point; 0 when s[0] does not begin a valid sequence.  A sequence that
 * is valid so far but runs out of bytes sets *cut (the input was cut inside
 * a character: the caller drops it rather than calling it invalid). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, bool *cut)
{
    unsigned char b = s[0];
    size_t len;
    uint32_t min, c;
    *cut = false;
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b >= 0xc2 && b <= 0xdf) {
        len = 2, min = 0x80, c = b & 0x1fu;
    } else if (b >= 0xe0 && b <= 0xef) {
        len = 3, min = 0x800, c = b & 0x0fu;
    } else if (b >= 0xf0 && b <= 0xf4) {
        len = 4, min = 0x10000, c = b & 0x07u;
    } else {
        return 0; /* continuation byte, C0/C1 lead (overlong), F5..FF */
    }
    for (size_t i = 1; i < len; i++) {
        if (i == n) {
            *cut = true;
            return 0;
        }
        if ((s[i] & 0xc0u) != 0x80u)
            return 0;
        c = c << 6 | (s[i] & 0x3fu);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

static bool is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

enum sink { SINK_STORE, SINK_TERMINAL, SINK_JSON };

/* The one loop behind the three rules: each input character (or invalid
 * byte) becomes one output unit, written whole or not at all. */
static size_t transform(enum sink sink, char *dst, size_t cap, const char *src, size_t srclen)
{
    if (cap == 0)
        return 0;
    size_t out = 0;
    const unsigned char *s = (const unsigned char *)src;
    size_t n = src != NULL ? strnlen(src, srclen) : 0;
    for (size_t i = 0; i < n;) {
        char unit[8];
        size_t ulen;
        uint32_t cp = 0;
        bool cut;
        size_t len = utf8_decode(s + i, n - i, &cp, &cut);
        if (cut)
            break; /* the input ends inside a character */
        if (len == 0) {
            if (sink == SINK_TERMINAL)
                ulen = (size_t)snprintf(unit, sizeof unit, "\\x%02x", s[i]);
            else
                memcpy(unit, "\xef\xbf\xbd", ulen = 3); /* U+FFFD */
            len = 1;
        } else if (sink == SINK_TERMINAL && is_control(cp)) {
            ulen = (size_t)snprintf(unit, sizeof unit, "\\x%02x", (unsigned)cp);
        } else if (sink == SINK_JSON && is_control(cp)) {
            ulen = (size_t)snprintf(unit, sizeof unit, "\\u%04x", (unsigned)cp);
        } else if (sink == SINK_JSON && (cp == '"' || cp == '\\')) {
            unit[0] = '\\', unit[1] = (char)cp, ulen = 2;
        } else {
            memcpy(unit, s + i, ulen = len);
        }
        if (out + ulen >= cap)
            break;
        memcpy(dst + out, unit, ulen);
        out += ulen;
        i += len;
    }
    dst[out] = '\0';
    return out;
}

size_t msup_text_copy(char *dst, size_t cap, const char *src, size_t srclen)
{
    return transform(SINK_STORE, dst, cap, src, srclen);
}

size_t msup_text_vformat(char *dst, size_t cap, const char *fmt, va_list ap)
{
    char tmp[1024];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    return msup_text_copy(dst, cap, tmp, sizeof tmp);
}

size_t msup_text_format(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = msup_text_vformat(dst, cap, fmt, ap);
    va_end(ap);
    return n;
}

size_t msup_text_escape(char *dst, size_t cap, const char *src, size_t srclen)
{
    return transform(SINK_TERMINAL, dst, cap, src, srclen);
}

size_t msup_text_json(char *dst, size_t cap, const char *src, size_t srclen)
{
    return transform(SINK_JSON, dst, cap, src, srclen);
}

size_t msup_text_cut_tail(char *s)
{
    size_t n = strlen(s);
    /* A character has at most 3 continuation bytes: look back that far. */
    size_t i = n;
    while (i > 0 && n - i < 3 && ((unsigned char)s[i - 1] & 0xc0u) == 0x80u)
        i--;
    if (i > 0 && (unsigned char)s[i - 1] >= 0xc0u) {
        uint32_t cp;
        bool cut;
        (void)utf8_decode((const unsigned char *)s + i - 1, n - i + 1, &cp, &cut);
        if (cut) {
            s[i - 1] = '\0';
            return i - 1;
        }
    }
    return n;
}
