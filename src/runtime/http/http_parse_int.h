/* http_parse_int: what the head parser (http_parse.c) and the chunked
 * decoder (http_chunked.c) share: the character classes of RFC 9110 5.6.2
 * and RFC 3986 2, and the error helper. Internal to the engine. */
#ifndef HALE_HTTP_PARSE_INT_H
#define HALE_HTTP_PARSE_INT_H

#include "http_parse.h"

enum { C_TCHAR = 1, C_TARGET = 2, C_VCHAR = 4, C_HEX = 8, C_HOST = 16 };

/* Filled once when the program loads (http_parse.c), then only read. */
extern unsigned char hale_h1_cls[256];

#define IS(c, k) (hale_h1_cls[(unsigned char)(c)] & (k))

static inline int hale_h1_hexval(unsigned char c) {
    if (c <= '9') return c - '0';
    return (c | 0x20) - 'a' + 10;
}

/* Records the refusal in err and returns HALE_H1_ERROR. */
static inline hale_h1_status hale_h1_fail(hale_h1_error *err, int status, const char *reason,
                                          const char *detail) {
    err->status = status;
    err->reason = reason;
    err->detail = detail;
    return HALE_H1_ERROR;
}

#endif
