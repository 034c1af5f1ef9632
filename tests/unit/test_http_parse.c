/* The HTTP/1.1 request parser and chunked decoder, src/runtime/http/http_parse.h
 * (R: E1, Y9): every rule of the header's contract as a table of refusals
 * (status + reason) and accepted shapes (fields), the limits at exactly the
 * limit and one over, leading empty lines, the chunked decoder, find/lists,
 * and the split-anywhere promise over tests/http/corpus (the corpus the h11
 * differential test uses). Builds alone too:
 *   gcc -std=gnu11 -I src/runtime tests/unit/test_http_parse.c src/runtime/http/http_parse.c -lcmocka */
#define _GNU_SOURCE /* vasprintf */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define MAXF 128
static const hale_h1_limits LIM = {.max_head_bytes = 8192, .max_target_bytes = 4096, .max_fields = 100};

/* One parse result, with the fields copied out so that results of
 * different feeds can be compared. */
typedef struct {
    hale_h1_status st;
    hale_h1_head head;
    hale_h1_field fields[MAXF];
    int err_status;
    const char *reason;
} result;

/* Feeds in[0..n) in pieces of `step` bytes (0: whole), or cut at the one
 * offset `cut` (when step is 0 and cut is in 1..n-1); every call gets a
 * fresh copy of the bytes so far (the buffer may move between calls). */
static void parse_fed(const char *in, size_t n, size_t step, size_t cut, const hale_h1_limits *lim,
                      result *r) {
    hale_h1_parser p;
    hale_h1_reset(&p);
    hale_h1_error err = {0};
    memset(r, 0, sizeof *r);
    assert_true(lim->max_fields <= MAXF);
    size_t avail = 0;
    r->st = HALE_H1_MORE;
    while (r->st == HALE_H1_MORE && avail < n) {
        if (step) avail = avail + step < n ? avail + step : n;
        else if (cut && cut < n && avail < cut) avail = cut;
        else avail = n;
        char *copy = malloc(avail ? avail : 1);
        assert_non_null(copy);
        memcpy(copy, in, avail);
        r->st = hale_h1_parse(&p, copy, avail, lim, r->fields, &r->head, &err);
        free(copy);
    }
    if (r->st == HALE_H1_ERROR) {
        r->err_status = err.status;
        r->reason = err.reason;
        assert_non_null(err.reason);
        assert_non_null(err.detail);
        memset(r->fields, 0, sizeof r->fields);
    } else if (r->st != HALE_H1_DONE) {
        memset(r->fields, 0, sizeof r->fields);
    } else {
        for (unsigned i = r->head.nfields; i < MAXF; i++) memset(&r->fields[i], 0, sizeof r->fields[i]);
    }
}

static void parse_lim(const char *in, size_t n, const hale_h1_limits *lim, result *r) {
    parse_fed(in, n, 0, 0, lim, r);
}

static int same(const result *a, const result *b) {
    if (a->st != b->st) return 0;
    if (a->st == HALE_H1_ERROR) return a->err_status == b->err_status && strcmp(a->reason, b->reason) == 0;
    if (a->st == HALE_H1_MORE) return 1;
    return memcmp(&a->head, &b->head, sizeof a->head) == 0 &&
           memcmp(a->fields, b->fields, sizeof a->fields) == 0;
}

/* Whole, every single cut, and byte by byte give the same result. */
static void check_splits(const char *in, size_t n, const hale_h1_limits *lim, const char *label) {
    result whole, r;
    parse_lim(in, n, lim, &whole);
    for (size_t k = 1; k < n; k++) {
        parse_fed(in, n, 0, k, lim, &r);
        if (!same(&whole, &r)) fail_msg("%s: a cut at %zu changes the result", label, k);
    }
    parse_fed(in, n, 1, 0, lim, &r);
    if (!same(&whole, &r)) fail_msg("%s: byte-by-byte feeding changes the result", label);
}

/* ---- refusals ---- */

typedef struct {
    const char *in;
    size_t len; /* 0: strlen */
    int status;
    const char *reason;
} refusal;

#define R(in, st, why) {in, sizeof(in) - 1, st, why}
#define HOST "Host: x\r\n"

static const refusal refusals[] = {
    /* line ends (RFC 9112 2.2) */
    R("GET / HTTP/1.1\nHost: x\r\n\r\n", 400, "bare_lf"),
    R("GET / HTTP/1.1\r\nHost: x\n\r\n", 400, "bare_lf"),
    R("GET / HTTP/1.1\r\nHost: x\r\n\n", 400, "bare_lf"),
    R("GET / HTTP/1.1\r\nHo\n", 400, "bare_lf"),
    R("GET /\n", 400, "bare_lf"),
    R("GET\n", 400, "bare_lf"),
    R("\n", 400, "bare_lf"),
    R("\r\n\n", 400, "bare_lf"),
    R("GET / HTTP/1.1\rX", 400, "bare_cr"),
    R("\rX", 400, "bare_cr"),
    R("GET / HTTP/1.1\r\nHost: x\r\n\rX", 400, "bare_cr"),
    R("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400, "bad_header_value"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX: a\r \r\n\r\n", 400, "bad_header_value"),
    /* the request line (RFC 9112 3) */
    R("GET  / HTTP/1.1\r\n", 400, "bad_request_line"),
    R(" GET / HTTP/1.1\r\n", 400, "bad_request_line"),
    R("GET\t/ HTTP/1.1\r\n", 400, "bad_request_line"),
    R("G(T / HTTP/1.1\r\n", 400, "bad_request_line"),
    R("GET / HTTP/1.1 \r\n", 400, "bad_request_line"),
    R("GET /  HTTP/1.1\r\n", 400, "bad_request_line"),
    R("GET /\r\n\r\n", 400, "bad_request_line"),
    R("GET / HTTP/1.1\r\r\n", 400, "bare_cr"),
    R("GET / http/1.1\r\n", 400, "bad_version"),
    R("GET / HTTP/1.10", 400, "bad_version"),
    R("GET / HTTP/1\r\n", 400, "bad_version"),
    R("GET / HTTP/1.x\r\n", 400, "bad_version"),
    R("GET / HTTP/1.\x80\r\n", 400, "bad_version"),
    R("GET / HTTP/1.2\r\n", 505, "unsupported_version"),
    R("GET / HTTP/2.0\r\n", 505, "unsupported_version"),
    R("GET / HTTP/0.9\r\n", 505, "unsupported_version"),
    R("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n", 400, "bad_request_line"), /* a 9th empty line */
    /* targets (RFC 9112 3.2, RFC 3986) */
    R("GET /a b HTTP/1.1\r\n", 400, "bad_request_line"),  /* "b" is no version */
    R("GET /a#f HTTP/1.1\r\n", 400, "bad_target"),
    R("GET /a\"b HTTP/1.1\r\n", 400, "bad_target"),
    R("GET /a\\b HTTP/1.1\r\n", 400, "bad_target"),
    R("GET /a{b HTTP/1.1\r\n", 400, "bad_target"),
    R("GET /a^b HTTP/1.1\r\n", 400, "bad_target"),
    R("GET /a|b HTTP/1.1\r\n", 400, "bad_target"),
    R("GET /a[b HTTP/1.1\r\n", 400, "bad_target"),
    R("GET /\x80 HTTP/1.1\r\n", 400, "bad_target"),
    R("GET /a\x7f HTTP/1.1\r\n", 400, "bad_target"),
    R("GET /a\tb HTTP/1.1\r\n", 400, "bad_target"),
    R("GET /a%2 HTTP/1.1\r\n", 400, "bad_target"),
    R("GET /a% HTTP/1.1\r\n", 400, "bad_target"),
    R("GET /a%zz HTTP/1.1\r\n", 400, "bad_target"),
    R("GET /%g0 HTTP/1.1\r\n", 400, "bad_target"),
    R("GET a/b HTTP/1.1\r\n", 400, "bad_target"),
    R("GET * HTTP/1.1\r\n", 400, "bad_target"),
    R("GET ** HTTP/1.1\r\n", 400, "bad_target"),
    R("OPTIONS *x HTTP/1.1\r\n", 400, "bad_target"),
    R("GET ftp://x/ HTTP/1.1\r\n", 400, "bad_target"),
    R("GET http:/x HTTP/1.1\r\n", 400, "bad_target"),
    R("GET http:// HTTP/1.1\r\n", 400, "bad_target"),
    R("GET http:///x HTTP/1.1\r\n", 400, "bad_target"),
    R("GET http://:80/x HTTP/1.1\r\n", 400, "bad_target"),
    R("GET http://u@x/ HTTP/1.1\r\n", 400, "bad_target"),
    R("GET http://u:p@x/ HTTP/1.1\r\n", 400, "bad_target"),
    R("GET http://x{/ HTTP/1.1\r\n", 400, "bad_target"),
    /* the authority has Host's grammar (these were accepted without a Host) */
    R("GET http://a:1:2/ HTTP/1.0\r\n\r\n", 400, "bad_target"),
    R("GET http://a:8o/ HTTP/1.0\r\n\r\n", 400, "bad_target"),
    R("GET http://a%zz/ HTTP/1.0\r\n\r\n", 400, "bad_target"),
    R("GET http://[:1]/ HTTP/1.0\r\n\r\n", 400, "bad_target"),
    R("GET http://a[b]/ HTTP/1.0\r\n\r\n", 400, "bad_target"),
    R("GET http://x/[ HTTP/1.1\r\n", 400, "bad_target"),
    R("GET http://x?[ HTTP/1.1\r\n", 400, "bad_target"),
    R("GET /[::1] HTTP/1.1\r\n", 400, "bad_target"),
    R("CONNECT x:443 HTTP/1.1\r\n", 400, "bad_target"),
    R("PUT /v1/kv/zz\0Hello HTTP/1.1\r\n", 400, "bad_target"),
    R("GET \r\n", 400, "bad_request_line"),
    /* field lines (RFC 9110 5.1, 5.5; RFC 9112 5) */
    R("GET / HTTP/1.1\r\n: v\r\n", 400, "bad_header_name"),
    R("GET / HTTP/1.1\r\nHost: x\r\n:\r\n", 400, "bad_header_name"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX A: 1\r\n", 400, "bad_header_name"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX : 1\r\n", 400, "bad_header_name"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX\t: 1\r\n", 400, "bad_header_name"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n", 400, "bad_header_name"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX-\xc3\xa9: 1\r\n", 400, "bad_header_name"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX\r\n", 400, "bad_header_name"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX\0: 1\r\n", 400, "bad_header_name"),
    R("GET / HTTP/1.1\r\n X: 1\r\n", 400, "bad_header_name"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n", 400, "obsolete_line_folding"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n", 400, "obsolete_line_folding"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n", 400, "bad_header_value"),
    R("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\0002\r\n", 400, "bad_header_value"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX: a\x01\r\n", 400, "bad_header_value"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX: \x1b[0m\r\n", 400, "bad_header_value"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX: a\x7f\r\n", 400, "bad_header_value"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX: a\x0b\r\n", 400, "bad_header_value"),
    R("GET / HTTP/1.1\r\nHost: x\r\nX: a\x0c\r\n", 400, "bad_header_value"),
    /* Host (RFC 9112 3.2) */
    R("GET / HTTP/1.1\r\n\r\n", 400, "missing_host"),
    R("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "duplicate_host"),
    R("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400, "duplicate_host"),
    R("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: a]\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: a%\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: [:1]:8080\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: []\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: [a[b]\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: [::1%eth0]\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: [1.2.3.4]\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: [v1.]\r\n\r\n", 400, "bad_host"),
    R("GET / HTTP/1.1\r\nHost: [v.x]\r\n\r\n", 400, "bad_host"),
    R("GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", 400, "host_mismatch"),
    R("GET http://a:80/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "host_mismatch"),
    R("GET http://a/ HTTP/1.1\r\nHost:\r\n\r\n", 400, "host_mismatch"),
    /* framing (RFC 9112 6, RFC 9110 8.6) */
    R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400,
      "duplicate_content_length"),
    R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400,
      "conflicting_content_length"),
    R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\n", 400, "bad_content_length"),
    R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "bad_content_length"),
    R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n", 400, "bad_content_length"),
    R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x1\r\n\r\n", 400, "bad_content_length"),
    R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n", 400, "bad_content_length"),
    R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400, "bad_content_length"),
    R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551617\r\n\r\n", 400,
      "bad_content_length"),
    R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 00000000000000000001\r\n\r\n", 400,
      "bad_content_length"),
    R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
      "content_length_with_transfer_encoding"),
    R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", 400,
      "content_length_with_transfer_encoding"),
    R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\n", 400,
      "content_length_with_transfer_encoding"),
    R("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "transfer_encoding_in_http10"),
    R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
      "unsupported_transfer_encoding"),
    R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501,
      "unsupported_transfer_encoding"),
    R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 501,
      "unsupported_transfer_encoding"),
    R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      501, "unsupported_transfer_encoding"),
    R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 501,
      "unsupported_transfer_encoding"),
    R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 501,
      "unsupported_transfer_encoding"),
    R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 501,
      "unsupported_transfer_encoding"),
    R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n", 501, "unsupported_transfer_encoding"),
    R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\0, gzip\r\n\r\n", 400, "bad_header_value"),
    /* Expect (RFC 9110 10.1.1) */
    R("PUT / HTTP/1.1\r\nHost: x\r\nExpect: fancy\r\n\r\n", 417, "expectation_failed"),
    R("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue, x\r\n\r\n", 417, "expectation_failed"),
    /* issue 14's desync shape: the empty name is refused before the follower */
    R("GET /health/liveness HTTP/1.1\r\nHost: x\r\n: v\r\nDELETE /v1/kv/zz HTTP/1.1\r\nHost: x\r\n\r\n", 400,
      "bad_header_name"),
};

static void test_refusals(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++) {
        const refusal *c = &refusals[i];
        result r;
        parse_lim(c->in, c->len, &LIM, &r);
        if (r.st != HALE_H1_ERROR) fail_msg("case %zu (%s): not refused (status %d)", i, c->in, r.st);
        if (r.err_status != c->status || strcmp(r.reason, c->reason) != 0)
            fail_msg("case %zu (%s): %d %s, expected %d %s", i, c->in, r.err_status, r.reason, c->status,
                     c->reason);
        check_splits(c->in, c->len, &LIM, c->in);
    }
}

/* A refusal comes as soon as the bytes make it certain, without the rest
 * of the head: each of these is a prefix, refused as it stands. */
static void test_refusals_are_early(void **state) {
    (void)state;
    static const refusal early[] = {
        R("GET / HTTP/1.1\n", 400, "bare_lf"),
        R("GET /a b ", 400, "bad_request_line"),
        R("GET /a\"", 400, "bad_target"),
        R("GET  ", 400, "bad_request_line"),
        R("GET / HTTP/1.1\r\nX: a\x01", 400, "bad_header_value"),
        R("GET / HTTP/1.1\r\nHost: x\r\n ", 400, "obsolete_line_folding"),
        R("GET / HTTP/1.1\r\nX A", 400, "bad_header_name"),
        R("GET / HTTP/2.0\r", 505, "unsupported_version"),
        R("GET /a%z", 400, "bad_target"),
        R("GET /a%4z", 400, "bad_target"),
        R("GET /a%%", 400, "bad_target"),
        R("GET /a% ", 400, "bad_target"),
        R("GET /a%4 ", 400, "bad_target"),
    };
    for (size_t i = 0; i < sizeof early / sizeof *early; i++) {
        result r;
        parse_lim(early[i].in, early[i].len, &LIM, &r);
        if (r.st != HALE_H1_ERROR || strcmp(r.reason, early[i].reason) != 0 || r.err_status != early[i].status)
            fail_msg("early case %zu (%s): st %d %s", i, early[i].in, r.st, r.st == HALE_H1_ERROR ? r.reason : "");
    }
    /* and a prefix of a good request is just incomplete */
    static const char good[] = "POST http://x:8/a?b HTTP/1.1\r\nHost: x:8\r\nContent-Length: 2\r\n\r\n";
    for (size_t k = 0; k < sizeof good - 1; k++) {
        result r;
        parse_lim(good, k, &LIM, &r);
        if (r.st != HALE_H1_MORE) fail_msg("prefix of %zu bytes: st %d", k, r.st);
    }
}

/* ---- accepted shapes ---- */

typedef struct {
    const char *in;
    const char *method, *target, *path;
    int form, minor;
    const char *fields; /* "name=value\n..." */
    const char *host;   /* NULL: no Host */
    long long content_length; /* -1: none */
    int chunked, keep_alive, expect_continue;
    size_t extra; /* bytes after the head (a body, a follower) */
} shape;

static const shape shapes[] = {
    {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/", "/", HALE_H1_ORIGIN, 1, "Host=x\n", "x", -1, 0, 1, 0, 0},
    {"GET /a/b?c=d%20e&f HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", "GET", "/a/b?c=d%20e&f",
     "/a/b?c=d%20e&f", HALE_H1_ORIGIN, 1, "Host=example.com:8080\n", "example.com:8080", -1, 0, 1, 0, 0},
    {"GET /-._~!$&'()*+,;=:@/?/? HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/-._~!$&'()*+,;=:@/?/?",
     "/-._~!$&'()*+,;=:@/?/?", HALE_H1_ORIGIN, 1, "Host=x\n", "x", -1, 0, 1, 0, 0},
    {"M-S~!#$%&'*+.^_`| / HTTP/1.1\r\nHost: x\r\n\r\n", "M-S~!#$%&'*+.^_`|", "/", "/", HALE_H1_ORIGIN, 1,
     "Host=x\n", "x", -1, 0, 1, 0, 0},
    /* OWS is trimmed; inner whitespace kept; empty values; obs-text */
    {"GET / HTTP/1.1\r\nHost: x\r\nA:  a b  \r\nB:\t\tc\t\r\nC:\r\nD: \r\nE: caf\xc3\xa9\xff\r\n\r\n", "GET", "/",
     "/", HALE_H1_ORIGIN, 1, "Host=x\nA=a b\nB=c\nC=\nD=\nE=caf\xc3\xa9\xff\n", "x", -1, 0, 1, 0, 0},
    {"GET / HTTP/1.1\r\nhOsT:x\r\n\r\n", "GET", "/", "/", HALE_H1_ORIGIN, 1, "hOsT=x\n", "x", -1, 0, 1, 0, 0},
    /* Host forms */
    {"GET / HTTP/1.1\r\nHost:\r\n\r\n", "GET", "/", "/", HALE_H1_ORIGIN, 1, "Host=\n", "", -1, 0, 1, 0, 0},
    {"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "GET", "/", "/", HALE_H1_ORIGIN, 1, "Host=[::1]:8080\n",
     "[::1]:8080", -1, 0, 1, 0, 0},
    {"GET / HTTP/1.1\r\nHost: [v1f.a:b~]\r\n\r\n", "GET", "/", "/", HALE_H1_ORIGIN, 1, "Host=[v1f.a:b~]\n",
     "[v1f.a:b~]", -1, 0, 1, 0, 0},
    {"GET / HTTP/1.1\r\nHost: [::ffff:1.2.3.4]\r\n\r\n", "GET", "/", "/", HALE_H1_ORIGIN, 1,
     "Host=[::ffff:1.2.3.4]\n", "[::ffff:1.2.3.4]", -1, 0, 1, 0, 0},
    {"GET /%41%2f?%7E HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/%41%2f?%7E", "/%41%2f?%7E", HALE_H1_ORIGIN, 1,
     "Host=x\n", "x", -1, 0, 1, 0, 0},
    {"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "GET", "/", "/", HALE_H1_ORIGIN, 1, "Host=127.0.0.1\n",
     "127.0.0.1", -1, 0, 1, 0, 0},
    {"GET / HTTP/1.1\r\nHost: a%41b\r\n\r\n", "GET", "/", "/", HALE_H1_ORIGIN, 1, "Host=a%41b\n", "a%41b", -1,
     0, 1, 0, 0},
    /* HTTP/1.0: no Host needed, keep-alive only when asked */
    {"GET / HTTP/1.0\r\n\r\n", "GET", "/", "/", HALE_H1_ORIGIN, 0, "", NULL, -1, 0, 0, 0, 0},
    {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET", "/", "/", HALE_H1_ORIGIN, 0,
     "Connection=Keep-Alive\n", NULL, -1, 0, 1, 0, 0},
    {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", "GET", "/", "/", HALE_H1_ORIGIN, 0,
     "Connection=keep-alive, close\n", NULL, -1, 0, 0, 0, 0},
    {"PUT / HTTP/1.0\r\nExpect: fancy\r\n\r\n", "PUT", "/", "/", HALE_H1_ORIGIN, 0, "Expect=fancy\n", NULL, -1,
     0, 0, 0, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, CLOSE\r\n\r\n", "GET", "/", "/", HALE_H1_ORIGIN, 1,
     "Host=x\nConnection=foo, CLOSE\n", "x", -1, 0, 0, 0, 0},
    /* absolute-form: routed by its path; authority = Host */
    {"GET http://Example.com/v1/kv/a?x HTTP/1.1\r\nHost: example.COM\r\n\r\n", "GET",
     "http://Example.com/v1/kv/a?x", "/v1/kv/a?x", HALE_H1_ABSOLUTE, 1, "Host=example.COM\n", "example.COM",
     -1, 0, 1, 0, 0},
    {"GET HTTPS://x:8443/p HTTP/1.1\r\nHost: x:8443\r\n\r\n", "GET", "HTTPS://x:8443/p", "/p", HALE_H1_ABSOLUTE,
     1, "Host=x:8443\n", "x:8443", -1, 0, 1, 0, 0},
    {"GET http://[::1]:80/ HTTP/1.0\r\n\r\n", "GET", "http://[::1]:80/", "/", HALE_H1_ABSOLUTE, 0, "", NULL, -1,
     0, 0, 0, 0},
    {"GET http://[::1]/x HTTP/1.1\r\nHost: [::1]\r\n\r\n", "GET", "http://[::1]/x", "/x", HALE_H1_ABSOLUTE, 1,
     "Host=[::1]\n", "[::1]", -1, 0, 1, 0, 0},
    /* asterisk-form */
    {"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "OPTIONS", "*", "*", HALE_H1_ASTERISK, 1, "Host=x\n", "x", -1, 0,
     1, 0, 0},
    /* framing */
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0005\r\n\r\nhello", "POST", "/", "/", HALE_H1_ORIGIN, 1,
     "Host=x\nContent-Length=0005\n", "x", 5, 0, 1, 0, 5},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999999999999\r\n\r\n", "POST", "/", "/",
     HALE_H1_ORIGIN, 1, "Host=x\nContent-Length=9999999999999999999\n", "x", -2, 0, 1, 0, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked \r\n\r\n0\r\n\r\n", "POST", "/", "/",
     HALE_H1_ORIGIN, 1, "Host=x\nTransfer-Encoding=Chunked\n", "x", -1, 1, 1, 0, 5},
    {"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", "PUT", "/", "/",
     HALE_H1_ORIGIN, 1, "Host=x\nExpect=100-Continue\nContent-Length=1\n", "x", 1, 0, 1, 1, 0},
    /* leading empty lines (RFC 9112 2.2): skipped, counted in head_len */
    {"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/", "/", HALE_H1_ORIGIN, 1, "Host=x\n", "x", -1, 0, 1,
     0, 0},
    {"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/", "/", HALE_H1_ORIGIN, 1,
     "Host=x\n", "x", -1, 0, 1, 0, 0},
    /* a pipelined follower is not part of the head */
    {"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n", "GET", "/a", "/a", HALE_H1_ORIGIN, 1, "Host=x\n",
     "x", -1, 0, 1, 0, 17},
};

static void check_shape(size_t i, const shape *c) {
    size_t n = strlen(c->in);
    result r;
    parse_lim(c->in, n, &LIM, &r);
    if (r.st != HALE_H1_DONE)
        fail_msg("shape %zu (%s): st %d %s", i, c->in, r.st, r.st == HALE_H1_ERROR ? r.reason : "");
    const hale_h1_head *h = &r.head;
    const char *b = c->in;
    assert_int_equal(h->method_len, strlen(c->method));
    assert_memory_equal(b + h->method_off, c->method, h->method_len);
    assert_int_equal(h->target_len, strlen(c->target));
    assert_memory_equal(b + h->target_off, c->target, h->target_len);
    assert_int_equal(h->path_len, strlen(c->path));
    assert_memory_equal(b + h->path_off, c->path, h->path_len);
    assert_int_equal(h->form, c->form);
    assert_int_equal(h->minor, c->minor);
    /* the fields, in order */
    char got[2048] = "";
    size_t gl = 0;
    for (unsigned k = 0; k < h->nfields; k++) {
        const hale_h1_field *f = &r.fields[k];
        gl += (size_t)snprintf(got + gl, sizeof got - gl, "%.*s=%.*s\n", (int)f->name_len, b + f->name_off,
                               (int)f->value_len, b + f->value_off);
    }
    if (strcmp(got, c->fields) != 0) fail_msg("shape %zu: fields\n%s\nexpected\n%s", i, got, c->fields);
    assert_int_equal(h->has_host, c->host != NULL);
    if (c->host) {
        assert_int_equal(h->host_len, strlen(c->host));
        assert_memory_equal(b + h->host_off, c->host, h->host_len);
    }
    if (c->content_length == -2) {
        assert_true(h->has_content_length);
        assert_true(h->content_length == 9999999999999999999ULL);
    } else {
        assert_int_equal(h->has_content_length, c->content_length >= 0);
        if (c->content_length >= 0) assert_int_equal(h->content_length, c->content_length);
    }
    assert_int_equal(h->chunked, c->chunked);
    assert_int_equal(h->keep_alive, c->keep_alive);
    assert_int_equal(h->expect_continue, c->expect_continue);
    assert_int_equal(h->head_len, n - c->extra);
    check_splits(c->in, n, &LIM, c->in);
}

static void test_accepted_shapes(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) check_shape(i, &shapes[i]);
}

/* ---- limits: exactly at the limit, and one over ---- */

static char *build(size_t *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *build(size_t *n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int k = vasprintf(&s, fmt, ap);
    va_end(ap);
    assert_true(k >= 0);
    *n = (size_t)k;
    return s;
}

static char *repeat(char c, size_t n) {
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void expect(const char *in, size_t n, const hale_h1_limits *lim, int status, const char *reason) {
    result r;
    parse_lim(in, n, lim, &r);
    if (status == 0) {
        if (r.st != HALE_H1_DONE) fail_msg("refused %d %s", r.err_status, r.st == HALE_H1_ERROR ? r.reason : "");
    } else {
        if (r.st != HALE_H1_ERROR) fail_msg("not refused (st %d), expected %d %s", r.st, status, reason);
        assert_int_equal(r.err_status, status);
        assert_string_equal(r.reason, reason);
    }
}

static void test_limit_target(void **state) {
    (void)state;
    hale_h1_limits lim = {.max_head_bytes = 8192, .max_target_bytes = 16, .max_fields = 10};
    size_t n;
    char *t = repeat('a', 15); /* "/" + 15 = 16 bytes */
    char *in = build(&n, "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", t);
    expect(in, n, &lim, 0, NULL);
    free(in);
    in = build(&n, "GET /%sa HTTP/1.1\r\nHost: x\r\n\r\n", t);
    expect(in, n, &lim, 414, "uri_too_long");
    /* refused at the 17th target byte, before the rest arrives */
    expect(in, 4 + 17, &lim, 414, "uri_too_long");
    free(in);
    free(t);
    /* the default: 4096 */
    t = repeat('b', 4095);
    in = build(&n, "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", t);
    expect(in, n, &LIM, 0, NULL);
    free(in);
    in = build(&n, "GET /%sb HTTP/1.1\r\nHost: x\r\n\r\n", t);
    expect(in, n, &LIM, 414, "uri_too_long");
    free(in);
    free(t);
}

static void test_limit_head_bytes(void **state) {
    (void)state;
    hale_h1_limits lim = {.max_head_bytes = 64, .max_target_bytes = 64, .max_fields = 10};
    /* "GET / HTTP/1.1\r\n" 16 + "Host: x\r\n" 9 + "X: " 3 + v + "\r\n" 2 + "\r\n" 2 = 32 + v */
    size_t n;
    char *v = repeat('v', 32);
    char *in = build(&n, "GET / HTTP/1.1\r\nHost: x\r\nX: %s\r\n\r\n", v);
    assert_int_equal(n, 64);
    expect(in, n, &lim, 0, NULL);
    free(in);
    in = build(&n, "GET / HTTP/1.1\r\nHost: x\r\nX: %sv\r\n\r\n", v);
    expect(in, n, &lim, 431, "headers_too_large");
    expect(in, 65, &lim, 431, "headers_too_large"); /* without waiting for the end */
    free(in);
    /* leading empty lines do not count against the head */
    in = build(&n, "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nX: %s\r\n\r\n", v);
    expect(in, n, &lim, 0, NULL);
    free(in);
    /* the bytes after the head (a body, a follower) do not count either */
    in = build(&n, "GET / HTTP/1.1\r\nHost: x\r\nX: %s\r\n\r\nGET / HTTP/1.1\r\n", v);
    expect(in, n, &lim, 0, NULL);
    free(in);
    free(v);
    /* the default: 8192 */
    v = repeat('w', 8192 - 32);
    in = build(&n, "GET / HTTP/1.1\r\nHost: x\r\nX: %s\r\n\r\n", v);
    expect(in, n, &LIM, 0, NULL);
    free(in);
    in = build(&n, "GET / HTTP/1.1\r\nHost: x\r\nX: %sw\r\n\r\n", v);
    expect(in, n, &LIM, 431, "headers_too_large");
    free(in);
    free(v);
}

static void test_limit_fields(void **state) {
    (void)state;
    hale_h1_limits lim = {.max_head_bytes = 8192, .max_target_bytes = 64, .max_fields = 3};
    static const char at[] = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n";
    static const char over[] = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    expect(at, sizeof at - 1, &lim, 0, NULL);
    expect(over, sizeof over - 1, &lim, 431, "too_many_headers");
    expect(over, sizeof over - 1 - 7, &lim, 431, "too_many_headers"); /* at the 4th name's first byte */
    check_splits(over, sizeof over - 1, &lim, "fields over");
    /* the default: 100 */
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 99; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "X-%d: %d\r\n", i, i);
    memcpy(buf + n, "\r\n", 3);
    expect(buf, n + 2, &LIM, 0, NULL);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "X-last: 1\r\n\r\n");
    expect(buf, n, &LIM, 431, "too_many_headers");
}

static void test_leading_empty_lines(void **state) {
    (void)state;
    char buf[256];
    for (int k = 0; k <= 9; k++) {
        size_t n = 0;
        for (int i = 0; i < k; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "\r\n");
        n += (size_t)snprintf(buf + n, sizeof buf - n, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        result r;
        parse_lim(buf, n, &LIM, &r);
        if (k <= 8) {
            assert_int_equal(r.st, HALE_H1_DONE);
            assert_int_equal(r.head.method_off, 2 * k);
            assert_int_equal(r.head.head_len, n);
        } else {
            assert_int_equal(r.st, HALE_H1_ERROR);
            assert_string_equal(r.reason, "bad_request_line");
        }
        check_splits(buf, n, &LIM, "leading empty lines");
    }
    /* nothing but empty lines so far: incomplete */
    result r;
    parse_lim("\r\n\r\n", 4, &LIM, &r);
    assert_int_equal(r.st, HALE_H1_MORE);
}

/* Once DONE, the parser is not to be called again; reset makes it new. */
static void test_reset_and_reuse(void **state) {
    (void)state;
    static const char in[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: y\r\n\r\n";
    hale_h1_parser p;
    hale_h1_field f[4];
    hale_h1_head h = {0};
    hale_h1_error e = {0};
    hale_h1_limits lim = {.max_head_bytes = 8192, .max_target_bytes = 64, .max_fields = 4};
    hale_h1_reset(&p);
    assert_int_equal(hale_h1_parse(&p, in, sizeof in - 1, &lim, f, &h, &e), HALE_H1_DONE);
    assert_int_equal(h.head_len, 28);
    assert_int_equal(hale_h1_parse(&p, in, sizeof in - 1, &lim, f, &h, &e), HALE_H1_ERROR);
    hale_h1_reset(&p);
    assert_int_equal(hale_h1_parse(&p, in + 28, sizeof in - 1 - 28, &lim, f, &h, &e), HALE_H1_DONE);
    assert_memory_equal(in + 28 + h.path_off, "/b", 2);
    assert_int_equal(hale_h1_find(in + 28, f, h.nfields, "HOST"), 0);
}

/* ---- find / lists ---- */

static void test_find_and_lists(void **state) {
    (void)state;
    static const char in[] = "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\nConnection: keep-alive, Close\r\n\r\n";
    result r;
    parse_lim(in, sizeof in - 1, &LIM, &r);
    assert_int_equal(r.st, HALE_H1_DONE);
    assert_int_equal(hale_h1_find(in, r.fields, r.head.nfields, "host"), 0);
    assert_int_equal(hale_h1_find(in, r.fields, r.head.nfields, "X-a"), 1); /* the first */
    assert_int_equal(hale_h1_find(in, r.fields, r.head.nfields, "X"), -1);
    assert_int_equal(hale_h1_find(in, r.fields, r.head.nfields, "X-AB"), -1);
    assert_int_equal(hale_h1_find(in, r.fields, 0, "host"), -1);
    int c = hale_h1_find(in, r.fields, r.head.nfields, "connection");
    assert_int_equal(c, 3);
    const char *v = in + r.fields[c].value_off;
    size_t vl = r.fields[c].value_len;
    assert_true(hale_h1_lists(v, vl, "close"));
    assert_true(hale_h1_lists(v, vl, "KEEP-ALIVE"));
    assert_false(hale_h1_lists(v, vl, "keep"));
    assert_false(hale_h1_lists(v, vl, "alive"));
    assert_true(hale_h1_lists(" ,, a ,\tb\t,", 11, "b"));
    assert_true(hale_h1_lists(" ,, a ,\tb\t,", 11, "a"));
    assert_false(hale_h1_lists("", 0, "close"));
    assert_false(hale_h1_lists("closed", 6, "close"));
    assert_false(hale_h1_lists("close", 4, "close")); /* only len bytes are read */
    assert_true(hale_h1_lists("a b, close", 10, "close"));
    assert_false(hale_h1_lists("a close", 7, "close"));
}

/* ---- chunked ---- */

typedef struct {
    hale_h1_chunk_status st;
    char data[16384];
    size_t len;
    size_t consumed;
    int err_status;
    const char *reason;
} chunk_result;

/* Feeds in[0..n) in pieces of `step` bytes (0: whole), or cut at `cut`,
 * until DONE or ERROR; the caller drops what was consumed each time. */
static void chunk_fed(const char *in, size_t n, size_t step, size_t cut, const hale_h1_limits *lim,
                      chunk_result *r) {
    hale_h1_chunked c;
    hale_h1_chunked_reset(&c);
    memset(r, 0, sizeof *r);
    size_t off = 0, end = 0;
    r->st = HALE_H1_CHUNK_MORE;
    while (r->st != HALE_H1_CHUNK_DONE && r->st != HALE_H1_CHUNK_ERROR && end < n) {
        if (step) end = end + step < n ? end + step : n;
        else if (cut && cut < n && end < cut) end = cut;
        else end = n;
        while (off < end) {
            size_t used = 0, doff = 0, dlen = 0;
            hale_h1_error e = {0};
            r->st = hale_h1_chunked_feed(&c, in + off, end - off, lim, &used, &doff, &dlen, &e);
            assert_true(used <= end - off);
            if (r->st == HALE_H1_CHUNK_ERROR) {
                r->err_status = e.status;
                r->reason = e.reason;
                break;
            }
            if (r->st == HALE_H1_CHUNK_MORE) assert_int_equal(used, end - off);
            if (r->st == HALE_H1_CHUNK_DATA) {
                assert_true(dlen > 0 && doff + dlen <= used);
                assert_true(r->len + dlen <= sizeof r->data);
                memcpy(r->data + r->len, in + off + doff, dlen);
                r->len += dlen;
            }
            off += used;
            if (r->st == HALE_H1_CHUNK_DONE) break;
        }
    }
    r->consumed = off;
    if (r->st == HALE_H1_CHUNK_DATA) r->st = HALE_H1_CHUNK_MORE; /* all given was data */
}

typedef struct {
    const char *in;
    size_t len;
    const char *body; /* NULL: refused */
    size_t body_len;
    size_t consumed;  /* 0: the whole input */
    int status;       /* when refused */
    const char *reason;
} chunk_case;

#define OK(in, body) {in, sizeof(in) - 1, body, sizeof(body) - 1, 0, 0, NULL}
#define OKC(in, body, used) {in, sizeof(in) - 1, body, sizeof(body) - 1, used, 0, NULL}
#define BADC(in) {in, sizeof(in) - 1, NULL, 0, 0, 400, "bad_chunk"}

static const chunk_case chunk_cases[] = {
    OK("0\r\n\r\n", ""),
    OK("5\r\nhello\r\n0\r\n\r\n", "hello"),
    OK("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"),
    OK("a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", "01234567890123456789"),
    OK("0005\r\nhello\r\n000\r\n\r\n", "hello"),
    OK("000000000000005\r\nhello\r\n0\r\n\r\n", "hello"), /* 15 digits */
    OK("3\r\n\r\n\0\r\n0\r\n\r\n", "\r\n\0"),
    /* extensions (RFC 9112 7.1.1), parsed and dropped */
    OK("5;a\r\nhello\r\n0\r\n\r\n", "hello"),
    OK("5;a=b\r\nhello\r\n0;last\r\n\r\n", "hello"),
    OK("5 ; a = b ; c\r\nhello\r\n0\r\n\r\n", "hello"),
    OK("5\t;\ta\t=\tb\r\nhello\r\n0\r\n\r\n", "hello"),
    OK("5;a=\"q \\\" ;=\"\r\nhello\r\n0\r\n\r\n", "hello"),
    OK("5;a=\"\"\r\nhello\r\n0\r\n\r\n", "hello"),
    OK("5;a=\"\xc3\xa9\"\r\nhello\r\n0\r\n\r\n", "hello"),
    OK("5;a;b;c=d\r\nhello\r\n0\r\n\r\n", "hello"),
    OK("5;a=\"x\" ;b\r\nhello\r\n0\r\n\r\n", "hello"),
    /* trailers (RFC 9112 7.1.2), checked and dropped */
    OK("0\r\nX-Sum: 1\r\n\r\n", ""),
    OK("0\r\nX: a b\t\r\nY:\r\n\r\n", ""),
    OK("0\r\nX: caf\xc3\xa9\r\n\r\n", ""),
    /* what follows the body is left for the next request */
    OKC("1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "x", 11),
    BADC("\r\n"),
    BADC("x\r\n"),
    BADC("-1\r\n"),
    BADC("0x5\r\nhello\r\n0\r\n\r\n"),
    BADC("5\nhello\r\n0\r\n\r\n"),
    BADC("5\rhello\r\n0\r\n\r\n"),
    BADC("5 \r\nhello\r\n0\r\n\r\n"),
    BADC("5\t\r\nhello\r\n0\r\n\r\n"),
    BADC("5\r\nhelloX\r\n0\r\n\r\n"),
    BADC("5\r\nhello\n0\r\n\r\n"),
    BADC("5\r\nhello\rX0\r\n\r\n"),
    BADC("0000000000000005\r\nhello\r\n0\r\n\r\n"), /* 16 digits */
    BADC("fffffffffffffffff\r\n"),
    BADC("5;\r\nhello\r\n0\r\n\r\n"),
    BADC("5;=b\r\nhello\r\n0\r\n\r\n"),
    BADC("5;a=\r\nhello\r\n0\r\n\r\n"),
    BADC("5;a=b \r\nhello\r\n0\r\n\r\n"),
    BADC("5;a \r\nhello\r\n0\r\n\r\n"),
    BADC("5;a=\"x\r\nhello\r\n0\r\n\r\n"),
    BADC("5;a=\"x\\\r\nhello\r\n0\r\n\r\n"),
    BADC("5;a=b c\r\nhello\r\n0\r\n\r\n"),
    BADC("5;a=\x01\r\nhello\r\n0\r\n\r\n"),
    BADC("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n"),
    BADC("5;a\rb\r\nhello\r\n0\r\n\r\n"),
    BADC("5;a\nhello\r\n0\r\n\r\n"),
    BADC("5;a@b\r\nhello\r\n0\r\n\r\n"),
    BADC("5x\r\nhello\r\n0\r\n\r\n"),
    BADC("0\r\nX: y\n\r\n"),
    BADC("0\r\nX: y\r\n z\r\n\r\n"),
    BADC("0\r\nX: a\x01b\r\n\r\n"),
    BADC("0\r\nX: a\0b\r\n\r\n"),
    BADC("0\r\nX : y\r\n\r\n"),
    BADC("0\r\nXy\r\n\r\n"),
    BADC("0\r\n: y\r\n\r\n"),
    BADC("0\r\nX: y\rz\r\n\r\n"),
    BADC("0\r\n\n"),
    BADC("0\r\n\rX"),
};

static int chunk_same(const chunk_result *a, const chunk_result *b) {
    if (a->st != b->st) return 0;
    if (a->st == HALE_H1_CHUNK_ERROR) return a->err_status == b->err_status && !strcmp(a->reason, b->reason);
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0 &&
           (a->st != HALE_H1_CHUNK_DONE || a->consumed == b->consumed);
}

static void chunk_check_splits(const char *in, size_t n, const hale_h1_limits *lim, const char *label) {
    chunk_result *whole = malloc(sizeof *whole), *r = malloc(sizeof *r);
    assert_non_null(whole);
    assert_non_null(r);
    chunk_fed(in, n, 0, 0, lim, whole);
    for (size_t k = 1; k < n; k++) {
        chunk_fed(in, n, 0, k, lim, r);
        if (!chunk_same(whole, r)) fail_msg("%s: a cut at %zu changes the chunked result", label, k);
    }
    chunk_fed(in, n, 1, 0, lim, r);
    if (!chunk_same(whole, r)) fail_msg("%s: byte-by-byte changes the chunked result", label);
    free(whole);
    free(r);
}

static void test_chunked(void **state) {
    (void)state;
    chunk_result *r = malloc(sizeof *r);
    assert_non_null(r);
    for (size_t i = 0; i < sizeof chunk_cases / sizeof *chunk_cases; i++) {
        const chunk_case *c = &chunk_cases[i];
        chunk_fed(c->in, c->len, 0, 0, &LIM, r);
        if (c->body) {
            if (r->st != HALE_H1_CHUNK_DONE)
                fail_msg("chunk case %zu (%s): st %d %s", i, c->in, r->st, r->reason ? r->reason : "");
            assert_int_equal(r->len, c->body_len);
            if (c->body_len) assert_memory_equal(r->data, c->body, c->body_len);
            assert_int_equal(r->consumed, c->consumed ? c->consumed : c->len);
        } else {
            if (r->st != HALE_H1_CHUNK_ERROR) fail_msg("chunk case %zu (%s): not refused (st %d)", i, c->in, r->st);
            assert_int_equal(r->err_status, c->status);
            assert_string_equal(r->reason, c->reason);
        }
        chunk_check_splits(c->in, c->len, &LIM, c->in);
    }
    /* every prefix of a good body is incomplete, never refused */
    static const char good[] = "5;a=\"b\"\r\nhello\r\n0\r\nX: y\r\n\r\n";
    for (size_t k = 0; k < sizeof good - 1; k++) {
        chunk_fed(good, k, 0, 0, &LIM, r);
        if (r->st != HALE_H1_CHUNK_MORE) fail_msg("chunked prefix %zu: st %d", k, r->st);
    }
    free(r);
}

static void test_chunked_limits(void **state) {
    (void)state;
    hale_h1_limits lim = {.max_head_bytes = 32, .max_target_bytes = 16, .max_fields = 2};
    chunk_result *r = malloc(sizeof *r);
    assert_non_null(r);
    /* a size line of exactly 32 bytes (CRLF included), then 33 */
    size_t n;
    for (size_t len = 32; len <= 33; len++) {
        char *a = repeat('a', len - 4);
        char *in = build(&n, "1;%s\r\nx\r\n0\r\n\r\n", a);
        chunk_fed(in, n, 0, 0, &lim, r);
        assert_int_equal(r->st, len == 32 ? HALE_H1_CHUNK_DONE : HALE_H1_CHUNK_ERROR);
        if (len == 33) assert_string_equal(r->reason, "bad_chunk");
        chunk_check_splits(in, n, &lim, "size line");
        free(in);
        free(a);
    }
    /* the trailer section: 32 bytes with its final CRLF, then 33 */
    for (size_t len = 32; len <= 33; len++) {
        char *a = repeat('a', len - 7);
        char *in = build(&n, "0\r\nX: %s\r\n\r\n", a);
        chunk_fed(in, n, 0, 0, &lim, r);
        assert_int_equal(r->st, len == 32 ? HALE_H1_CHUNK_DONE : HALE_H1_CHUNK_ERROR);
        if (len == 33) {
            assert_int_equal(r->err_status, 431);
            assert_string_equal(r->reason, "headers_too_large");
        }
        chunk_check_splits(in, n, &lim, "trailer section");
        free(in);
        free(a);
    }
    /* trailer fields: 2, then 3 */
    static const char f2[] = "0\r\nA: 1\r\nB: 2\r\n\r\n";
    static const char f3[] = "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    chunk_fed(f2, sizeof f2 - 1, 0, 0, &lim, r);
    assert_int_equal(r->st, HALE_H1_CHUNK_DONE);
    chunk_fed(f3, sizeof f3 - 1, 0, 0, &lim, r);
    assert_int_equal(r->st, HALE_H1_CHUNK_ERROR);
    assert_int_equal(r->err_status, 431);
    assert_string_equal(r->reason, "too_many_headers");
    /* a chunk far larger than the limits is fine: data is not bounded here */
    hale_h1_chunked c;
    hale_h1_chunked_reset(&c);
    size_t used = 0, doff = 0, dlen = 0;
    hale_h1_error e = {0};
    assert_int_equal(hale_h1_chunked_feed(&c, "fffffffffffffff\r\nab", 19, &lim, &used, &doff, &dlen, &e),
                     HALE_H1_CHUNK_DATA);
    assert_int_equal(doff, 17);
    assert_int_equal(dlen, 2);
    assert_int_equal(c.remaining, 0xfffffffffffffffULL - 2);
    free(r);
}

/* ---- the corpus: any split gives the same head and body ---- */

static void test_corpus_split_anywhere(void **state) {
    (void)state;
    DIR *d = opendir("tests/http/corpus");
    if (!d) fail_msg("tests/http/corpus: run from the source tree");
    struct dirent *de;
    int files = 0;
    chunk_result *cw = malloc(sizeof *cw), *cr = malloc(sizeof *cr);
    assert_non_null(cw);
    assert_non_null(cr);
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (nl < 6 || strcmp(de->d_name + nl - 5, ".http") != 0) continue;
        char path[512];
        snprintf(path, sizeof path, "tests/http/corpus/%s", de->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        static char buf[65536];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        files++;
        size_t lim_n = n > 3000 ? 3000 : n; /* long entries: the first 3000 cuts */
        result whole, r;
        parse_lim(buf, n, &LIM, &whole);
        for (size_t k = 1; k < lim_n; k++) {
            parse_fed(buf, n, 0, k, &LIM, &r);
            if (!same(&whole, &r)) fail_msg("%s: a cut at %zu changes the head", de->d_name, k);
        }
        parse_fed(buf, n, 1, 0, &LIM, &r);
        if (!same(&whole, &r)) fail_msg("%s: byte by byte changes the head", de->d_name);
        if (whole.st == HALE_H1_DONE && whole.head.chunked) {
            const char *body = buf + whole.head.head_len;
            size_t bn = n - whole.head.head_len;
            chunk_fed(body, bn, 0, 0, &LIM, cw);
            for (size_t k = 1; k < bn && k < 3000; k++) {
                chunk_fed(body, bn, 0, k, &LIM, cr);
                if (!chunk_same(cw, cr)) fail_msg("%s: a cut at %zu changes the body", de->d_name, k);
            }
        }
    }
    closedir(d);
    free(cw);
    free(cr);
    assert_true(files >= 100);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_refusals_are_early),
        cmocka_unit_test(test_accepted_shapes),
        cmocka_unit_test(test_limit_target),
        cmocka_unit_test(test_limit_head_bytes),
        cmocka_unit_test(test_limit_fields),
        cmocka_unit_test(test_leading_empty_lines),
        cmocka_unit_test(test_reset_and_reuse),
        cmocka_unit_test(test_find_and_lists),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_chunked_limits),
        cmocka_unit_test(test_corpus_split_anywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
