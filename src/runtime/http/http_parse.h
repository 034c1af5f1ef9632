/* http_parse: the HTTP/1.1 request-head parser and chunked-body decoder
 * (RFC 9112, field rules of RFC 9110). A pure module: bytes in, a parsed
 * head or a refusal out; no I/O, no allocation, no global state.
 *
 * Promises:
 *  - Incremental: call hale_h1_parse() again with the same bytes plus more
 *    (the buffer may move between calls: only offsets are kept). Any split
 *    of the same bytes gives the same result, and a refusal is given as
 *    soon as the bytes seen so far make it certain (a bare LF, a bad
 *    request line, a target over the limit) without waiting for the rest.
 *  - Strict by construction, no leniency switches: CRLF only (a bare CR or
 *    LF is refused); the request line is exactly `method SP target SP
 *    HTTP/1.x`; methods and field names are tokens; field values have no
 *    NUL, CR, LF or other control characters but HTAB; no obs-fold; no
 *    whitespace before a colon. Up to 8 empty lines before the request line
 *    are skipped (RFC 9112 2.2).
 *  - Targets: origin-form, absolute-form (http/https URI: its path is what
 *    is routed; its authority must equal Host) and asterisk-form (OPTIONS
 *    only). Characters are those of RFC 3986 (pchar, '/', '?'), and every
 *    '%' is followed by two hex digits.
 *  - Framing is decided here, once: Content-Length is one field of 1*DIGIT
 *    without overflow (a repeat, equal or not, is refused: RFC 9110 8.6
 *    allows it); Transfer-Encoding is accepted only as exactly `chunked`
 *    and only in HTTP/1.1, never together with Content-Length; Host must
 *    appear exactly once in HTTP/1.1 (at most once in HTTP/1.0).
 *  - Every refusal carries the status to answer (400, 413, 414, 417, 431,
 *    501, 505), a short reason (a metric label) and a sentence for people.
 *  - Fields are offsets into the caller's buffer, in the caller's array of
 *    `max_fields`; nothing is copied.
 */
#ifndef HALE_HTTP_PARSE_H
#define HALE_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

typedef struct hale_h1_limits {
    size_t max_head_bytes;   /* request line + fields + CRLFs; over: 431 */
    size_t max_target_bytes; /* request target; over: 414 */
    unsigned max_fields;     /* field lines; over: 431 */
} hale_h1_limits;

/* A refusal: what to answer and why. Strings are literals. */
typedef struct hale_h1_error {
    int status;          /* 400, 413, 414, 417, 431, 501, 505 */
    const char *reason;  /* "bare_lf", "bad_header_name", ... */
    const char *detail;  /* a sentence for the JSON body */
} hale_h1_error;

/* One field line: offsets and lengths into the buffer. The value has its
 * leading and trailing whitespace removed. */
typedef struct hale_h1_field {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
} hale_h1_field;

enum { HALE_H1_ORIGIN = 0, HALE_H1_ABSOLUTE = 1, HALE_H1_ASTERISK = 2 };

/* The parsed head: offsets into the buffer handed to hale_h1_parse. */
typedef struct hale_h1_head {
    uint32_t method_off, method_len;
    uint32_t target_off, target_len; /* as sent */
    uint32_t path_off, path_len;     /* what is routed, query included: starts
                                        with '/', or is "*"; in absolute-form it
                                        may be empty or start with '?' (the
                                        path is then "/", RFC 9112 3.2.2) */
    int form;                        /* HALE_H1_ORIGIN ... */
    int minor;                       /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    unsigned nfields;
    int has_host;
    uint32_t host_off, host_len;     /* the Host value (empty allowed) */
    int has_content_length;
    uint64_t content_length;
    int chunked;                     /* Transfer-Encoding: chunked */
    int keep_alive;                  /* after this exchange, per version and
                                        Connection (close / keep-alive) */
    int expect_continue;             /* Expect: 100-continue (HTTP/1.1) */
    size_t head_len;                 /* bytes of the head, final CRLF included */
} hale_h1_head;

/* Parser state between calls. Zero it (or hale_h1_reset) per request. */
typedef struct hale_h1_parser {
    size_t pos;          /* bytes examined so far */
    size_t line_start;   /* start of the line being read */
    size_t skipped;      /* leading empty lines' bytes */
    int state;           /* internal */
    unsigned nfields;
    unsigned empty_lines;
    hale_h1_head head;   /* filled as lines complete */
} hale_h1_parser;

typedef enum {
    HALE_H1_MORE = 0,   /* incomplete: call again with more bytes */
    HALE_H1_DONE = 1,   /* *out is filled; out->head_len bytes were used */
    HALE_H1_ERROR = -1, /* *err is filled; the connection must close */
} hale_h1_status;

void hale_h1_reset(hale_h1_parser *p);

/* Parses buf[0..len), the bytes received so far for this request (the same
 * bytes as the previous call plus any new ones). fields has room for
 * lim->max_fields entries. On DONE, *out holds the head (also valid:
 * fields[0..out->nfields)). */
hale_h1_status hale_h1_parse(hale_h1_parser *p, const char *buf, size_t len,
                             const hale_h1_limits *lim, hale_h1_field *fields,
                             hale_h1_head *out, hale_h1_error *err);

/* After a refusal: 1 when the request line was complete (p->head has the
 * method and target), 2 when every field line was too (the refusal came
 * from the framing checks; p->nfields fields are in the caller's array),
 * else 0. Lets the caller log what it can of a refused request. */
int hale_h1_progress(const hale_h1_parser *p);

/* The first field named `name` (case-insensitive), or -1. */
int hale_h1_find(const char *buf, const hale_h1_field *fields, unsigned n, const char *name);

/* True when a comma-separated field value lists `token` (case-insensitive),
 * e.g. Connection: "keep-alive, close" lists "close". */
int hale_h1_lists(const char *value, size_t len, const char *token);

/* ---- chunked transfer coding (RFC 9112 7.1) ----
 * chunk-size is hex (at most 15 digits), chunk extensions are parsed to
 * their grammar (BWS ";" BWS name [BWS "=" BWS token/quoted-string]) and
 * dropped, each size line and the whole
 * trailer section are bounded, trailer fields are checked like header
 * fields and dropped. */
typedef struct hale_h1_chunked {
    int state;
    uint64_t remaining;      /* data bytes left in the current chunk */
    size_t line_bytes;       /* bytes of the current size/trailer line */
    size_t trailer_bytes;    /* whole trailer section so far */
    unsigned trailer_fields;
    int digits;
    int ext_state;           /* where in a chunk extension */
    int ext_ws;              /* whitespace since the last extension part */
} hale_h1_chunked;

typedef enum {
    HALE_H1_CHUNK_MORE = 0,  /* consumed everything given; more is needed */
    HALE_H1_CHUNK_DATA = 1,  /* body bytes: see data_off, data_len */
    HALE_H1_CHUNK_DONE = 2,  /* the last chunk and trailers are complete */
    HALE_H1_CHUNK_ERROR = -1,
} hale_h1_chunk_status;

void hale_h1_chunked_reset(hale_h1_chunked *c);

/* Decodes from in[0..n). *consumed is how many bytes of `in` were used (the
 * caller drops them and calls again with the rest, or with more). On DATA,
 * the body bytes are in[*data_off .. *data_off + *data_len), within the
 * consumed part. lim bounds the size lines and trailers (max_head_bytes,
 * max_fields). */
hale_h1_chunk_status hale_h1_chunked_feed(hale_h1_chunked *c, const char *in, size_t n,
                                          const hale_h1_limits *lim, size_t *consumed,
                                          size_t *data_off, size_t *data_len,
                                          hale_h1_error *err);

#endif
