/* textsafe_test.c: UTF-8 boundary cuts, invalid input, terminal and JSON escaping (lib/textsafe.c). */
#include <string.h>

#include "testmain.h"
#include "textsafe.h"

#define EURO "\xe2\x82\xac" /* U+20AC, 3 bytes */
#define FFFD "\xef\xbf\xbd"

static void test_copy_valid_and_cut(void)
{
    char out[16];
    CU_ASSERT_EQUAL(msup_text_copy(out, sizeof out, "plain", 99), 5);
    CU_ASSERT_STRING_EQUAL(out, "plain");
    /* 12 ASCII + a 3-byte character: 15 bytes fit in 16 with the NUL. */
    CU_ASSERT_EQUAL(msup_text_copy(out, sizeof out, "abcdefghijkl" EURO, 99), 15);
    CU_ASSERT_STRING_EQUAL(out, "abcdefghijkl" EURO);
    /* One byte more: the character no longer fits and is dropped whole. */
    CU_ASSERT_EQUAL(msup_text_copy(out, sizeof out, "abcdefghijklm" EURO, 99), 13);
    CU_ASSERT_STRING_EQUAL(out, "abcdefghijklm");
    /* A source limit that falls inside a character: dropped, not replaced. */
    CU_ASSERT_EQUAL(msup_text_copy(out, sizeof out, "ab" EURO "cd", 4), 2);
    CU_ASSERT_STRING_EQUAL(out, "ab");
    /* A source that was itself cut inside a character (ends at NUL). */
    CU_ASSERT_EQUAL(msup_text_copy(out, sizeof out, "ab\xe2\x82", 99), 2);
    CU_ASSERT_STRING_EQUAL(out, "ab");
    /* 4-byte characters and the largest code point are kept. */
    CU_ASSERT_EQUAL(msup_text_copy(out, sizeof out, "\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf", 99), 8);
    /* cap 1: only the NUL; cap 0: nothing written. */
    out[0] = 'x';
    CU_ASSERT_EQUAL(msup_text_copy(out, 1, "abc", 3), 0);
    CU_ASSERT_EQUAL(out[0], '\0');
    out[0] = 'x';
    CU_ASSERT_EQUAL(msup_text_copy(out, 0, "abc", 3), 0);
    CU_ASSERT_EQUAL(out[0], 'x');
    CU_ASSERT_EQUAL(msup_text_copy(out, sizeof out, NULL, 3), 0);
    CU_ASSERT_STRING_EQUAL(out, "");
}

static void test_copy_invalid(void)
{
    static const struct { const char *in, *want; } cases[] = {
        {"a\x9b" "b", "a" FFFD "b"},                 /* bare continuation byte (C1 CSI in Latin-1) */
        {"a\xc3(b", "a" FFFD "(b"},                  /* lead without continuation */
        {"\xc0\xaf", FFFD FFFD},                     /* overlong '/' */
        {"\xe0\x80\xaf", FFFD FFFD FFFD},            /* overlong, 3 bytes */
        {"\xed\xa0\x80", FFFD FFFD FFFD},            /* UTF-16 surrogate */
        {"\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD},   /* above U+10FFFF */
        {"\xff\xfe", FFFD FFFD},
        {"ok" EURO, "ok" EURO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        msup_text_copy(out, sizeof out, cases[i].in, 64);
        if (strcmp(out, cases[i].want) != 0)
            fprintf(stderr, "\ncase %zu: got '%s'\n", i, out);
        CU_ASSERT_STRING_EQUAL(out, cases[i].want);
    }
    /* A replacement that does not fit whole is not written. */
    char out[5];
    CU_ASSERT_EQUAL(msup_text_copy(out, sizeof out, "ab\xff", 9), 2);
    CU_ASSERT_STRING_EQUAL(out, "ab");
}

static void test_escape_terminal(void)
{
    char out[128];
    msup_text_escape(out, sizeof out, "x\x1b[2J\ry\x7f\x9b" "z\xc2\x9b" "w\x07" EURO, 99);
    /* ESC, CR, DEL, a bare 0x9b byte, U+009B (CSI as a code point), BEL. */
    CU_ASSERT_STRING_EQUAL(out, "x\\x1b[2J\\x0dy\\x7f\\x9bz\\x9bw\\x07" EURO);
    msup_text_escape(out, sizeof out, "tab\there\nnl", 99);
    CU_ASSERT_STRING_EQUAL(out, "tab\\x09here\\x0anl");
    /* An escape is never cut: "ab\x1b" needs 6 bytes + NUL. */
    CU_ASSERT_EQUAL(msup_text_escape(out, 6, "ab\x1b", 9), 2);
    CU_ASSERT_STRING_EQUAL(out, "ab");
    CU_ASSERT_EQUAL(msup_text_escape(out, 7, "ab\x1b", 9), 6);
    /* The worst case fits MSUP_TEXT_ESCAPE_CAP. */
    char worst[MSUP_TEXT_ESCAPE_CAP(4)];
    CU_ASSERT_EQUAL(msup_text_escape(worst, sizeof worst, "\x01\x02\x03\x04", 4), 16);
    /* The output is never more than printable ASCII and valid non-control UTF-8. */
    char all[256], esc[MSUP_TEXT_ESCAPE_CAP(256)];
    for (int i = 0; i < 255; i++)
        all[i] = (char)(i + 1);
    all[255] = '\0';
    msup_text_escape(esc, sizeof esc, all, sizeof all);
    for (const unsigned char *p = (const unsigned char *)esc; *p; p++)
        CU_ASSERT(*p >= 0x20 && *p < 0x7f);
}

static void test_json(void)
{
    char out[128];
    msup_text_json(out, sizeof out, "q\"b\\s\x1b[1m\x9b\xc2\x85" EURO "\x7f", 99);
    CU_ASSERT_STRING_EQUAL(out, "q\\\"b\\\\s\\u001b[1m" FFFD "\\u0085" EURO "\\u007f");
    /* An escape is never cut. */
    CU_ASSERT_EQUAL(msup_text_json(out, 8, "ab\x01", 9), 2);
    char worst[MSUP_TEXT_JSON_CAP(2)];
    CU_ASSERT_EQUAL(msup_text_json(worst, sizeof worst, "\x01\x02", 2), 12);
}

static void test_format_and_cut_tail(void)
{
    char out[8];
    /* snprintf would keep 7 bytes: "abcde" + 2 of the euro's 3. */
    CU_ASSERT_EQUAL(msup_text_format(out, sizeof out, "%s%s", "abcde", EURO), 5);
    CU_ASSERT_STRING_EQUAL(out, "abcde");
    CU_ASSERT_EQUAL(msup_text_format(out, sizeof out, "%d-%s", 42, "x\xff"), 7);
    CU_ASSERT_STRING_EQUAL(out, "42-x" FFFD);

    char s[16] = "abc\xe2\x82";
    CU_ASSERT_EQUAL(msup_text_cut_tail(s), 3);
    CU_ASSERT_STRING_EQUAL(s, "abc");
    snprintf(s, sizeof s, "abc" EURO);
    CU_ASSERT_EQUAL(msup_text_cut_tail(s), 6); /* whole: kept */
    snprintf(s, sizeof s, "ab\xf0\x9f\x98");
    CU_ASSERT_EQUAL(msup_text_cut_tail(s), 2);
    snprintf(s, sizeof s, "ab\x82");  /* a stray continuation byte is not a cut character */
    CU_ASSERT_EQUAL(msup_text_cut_tail(s), 3);
    s[0] = '\0';
    CU_ASSERT_EQUAL(msup_text_cut_tail(s), 0);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/textsafe/copy/valid-and-cut", test_copy_valid_and_cut},
        {"/textsafe/copy/invalid", test_copy_invalid},
        {"/textsafe/escape/terminal", test_escape_terminal},
        {"/textsafe/json", test_json},
        {"/textsafe/format-and-cut-tail", test_format_and_cut_tail},
        {NULL, NULL},
    };
    return msup_test_main("textsafe", tests, argc, argv);
}
