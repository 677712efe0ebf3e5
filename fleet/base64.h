/* base64.h: standard base64 (with padding) for etcd's JSON gateway, which carries keys and values that way. */
#ifndef MONGOSUP_FLEET_BASE64_H
#define MONGOSUP_FLEET_BASE64_H

#include <stdbool.h>
#include <stddef.h>

/* Encodes n bytes into out (NUL-terminated); out needs 4 * ((n + 2) / 3) + 1 bytes. */
void msup_b64_encode(const void *in, size_t n, char *out);

/* Decodes text into out (at most out_max bytes, NUL added: out_max + 1
 * bytes of room); false on a character outside the alphabet, bad padding
 * or an output longer than out_max. */
bool msup_b64_decode(const char *text, char *out, size_t out_max, size_t *out_len);

#endif
