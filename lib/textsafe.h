/* textsafe.h: making untrusted text (names and messages from the segment or a server) safe to store and to show. */
#ifndef MONGOSUP_TEXTSAFE_H
#define MONGOSUP_TEXTSAFE_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Text in the segment comes from servers (error messages), from the
 * configuration (names) and, for a forged segment, from anyone who can write
 * it.  Three rules, one per kind of sink:
 *
 *  - storing (msup_text_copy, msup_text_format): the result is valid UTF-8;
 *    a byte that does not begin a valid sequence (overlong forms, surrogates
 *    and values above U+10FFFF included) becomes U+FFFD, and a cut to the
 *    destination's size never falls inside a character;
 *  - showing on a terminal (msup_text_escape): additionally every control
 *    character (C0 0x00-0x1f, DEL 0x7f, C1 U+0080-U+009F: ESC and CSI start
 *    terminal escape sequences, \r rewrites a line) and every invalid byte is
 *    written as the four characters \xHH, so nothing reaches the terminal
 *    but printable text;
 *  - JSON string contents (msup_text_json): valid UTF-8, '"' and '\' escaped,
 *    every control character as \u00HH, invalid bytes as U+FFFD.
 *
 * Each function writes at most `cap` bytes including the terminating NUL
 * (nothing when cap is 0), never cuts a character or an escape in half,
 * stops at `srclen` bytes or at a NUL, and returns the length written.  A
 * character that the end of the input cuts (a valid start, too few bytes:
 * the source was itself truncated) is dropped, not replaced.
 * They allocate nothing and take no lock (the record path calls
 * msup_text_copy).
 */

size_t msup_text_copy(char *dst, size_t cap, const char *src, size_t srclen);

/* snprintf(dst, cap, fmt, ...), then the storing rule (a cut argument never
 * leaves half a character).  The formatted text is cut at 1023 bytes. */
size_t msup_text_format(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
size_t msup_text_vformat(char *dst, size_t cap, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

size_t msup_text_escape(char *dst, size_t cap, const char *src, size_t srclen);

size_t msup_text_json(char *dst, size_t cap, const char *src, size_t srclen);

/* When `s` ends inside a multi-byte character (a byte-counting cut such as
 * snprintf's leaves it so), drops that partial character; returns the new
 * length.  Bytes before the end are left alone (the rules above take care
 * of them wherever the text is stored or shown). */
size_t msup_text_cut_tail(char *s);

/* Bytes that the output of each function needs, for `srclen` input bytes
 * (NUL included): 3 (U+FFFD) / 4 (\xHH) / 6 (\u00HH) per input byte. */
#define MSUP_TEXT_COPY_CAP(srclen)   ((srclen) * 3 + 1)
#define MSUP_TEXT_ESCAPE_CAP(srclen) ((srclen) * 4 + 1)
#define MSUP_TEXT_JSON_CAP(srclen)   ((srclen) * 6 + 1)

#endif
