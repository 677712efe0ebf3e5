/* base64.c: standard base64 encode and strict decode (etcd's gateway keys and values). */
#include <string.h>

#include "base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void msup_b64_encode(const void *in, size_t n, char *out)
{
    const unsigned char *p = in;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? alphabet[v & 63] : '=';
    }
    out[o] = '\0';
}

static int value_of(char c)
{
    const char *p = c != '\0' ? strchr(alphabet, c) : NULL;
    return p != NULL ? (int)(p - alphabet) : -1;
}

bool msup_b64_decode(const char *text, char *out, size_t out_max, size_t *out_len)
{
    size_t n = strlen(text), o = 0;
    if (n % 4 != 0)
        return false;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int a = value_of(text[i]), b = value_of(text[i + 1]);
        int c = text[i + 2] == '=' && last ? -2 : value_of(text[i + 2]);
        int d = text[i + 3] == '=' && last ? -2 : value_of(text[i + 3]);
        if (a < 0 || b < 0 || c == -1 || d == -1 || (c == -2 && d != -2))
            return false;
        unsigned v = (unsigned)a << 18 | (unsigned)b << 12 | (c >= 0 ? (unsigned)c << 6 : 0) | (d >= 0 ? (unsigned)d : 0);
        size_t bytes = c < 0 ? 1 : d < 0 ? 2 : 3;
        if (o + bytes > out_max)
            return false;
        out[o++] = (char)(v >> 16);
        if (bytes > 1)
            out[o++] = (char)(v >> 8);
        if (bytes > 2)
            out[o++] = (char)v;
    }
    out[o] = '\0';
    *out_len = o;
    return true;
}
