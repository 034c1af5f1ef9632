/* libFuzzer target for the request parser and chunked decoder alone
 * (src/runtime/http/http_parse.h). R: Y2 E1
 *
 * Each input is parsed whole, then again fed in pieces cut at 1-3 points
 * derived from the input (every call with a fresh copy of the bytes so far,
 * allocated to its exact length, as the buffer may move between calls);
 * any difference (status, refusal status/reason/detail, a head field, a
 * field offset, the bytes consumed) aborts. That for two sets of limits:
 * the default ones and small ones, so that 414/431 come up. The chunked
 * decoder then runs on the bytes after the head (on the whole input when
 * there is no head), whole and cut at the same points, with the same check.
 * Invariants of a parsed head (offsets inside it, no CR/LF/NUL in a value)
 * are asserted too. fuzz_http keeps fuzzing the whole request path. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define MAXF 100
#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "fuzz_http_parse: %s:%d: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                               \
        }                                                                          \
    } while (0)

typedef struct {
    hale_h1_status st;
    hale_h1_head head;
    hale_h1_field f[MAXF];
    hale_h1_error err;
} head_result;

/* Parses in[0..n), cut at cuts[0..nc) (ascending, inside 1..n-1). */
static void parse(const uint8_t *in, size_t n, const size_t *cuts, size_t nc, const hale_h1_limits *lim,
                  head_result *r) {
    hale_h1_parser p;
    hale_h1_reset(&p);
    memset(r, 0, sizeof *r);
    r->st = HALE_H1_MORE;
    size_t avail = 0, next = 0;
    while (r->st == HALE_H1_MORE && avail < n) {
        avail = next < nc ? cuts[next++] : n;
        char *copy = malloc(avail ? avail : 1);
        CHECK(copy);
        memcpy(copy, in, avail);
        r->st = hale_h1_parse(&p, copy, avail, lim, r->f, &r->head, &r->err);
        free(copy);
    }
}

static void same_head(const head_result *a, const head_result *b) {
    CHECK(a->st == b->st);
    if (a->st == HALE_H1_ERROR) {
        CHECK(a->err.status == b->err.status);
        CHECK(strcmp(a->err.reason, b->err.reason) == 0);
        CHECK(strcmp(a->err.detail, b->err.detail) == 0);
        return;
    }
    if (a->st != HALE_H1_DONE) return;
    const hale_h1_head *x = &a->head, *y = &b->head;
    CHECK(x->method_off == y->method_off && x->method_len == y->method_len);
    CHECK(x->target_off == y->target_off && x->target_len == y->target_len);
    CHECK(x->path_off == y->path_off && x->path_len == y->path_len);
    CHECK(x->form == y->form && x->minor == y->minor && x->nfields == y->nfields);
    CHECK(x->has_host == y->has_host && x->host_off == y->host_off && x->host_len == y->host_len);
    CHECK(x->has_content_length == y->has_content_length && x->content_length == y->content_length);
    CHECK(x->chunked == y->chunked && x->keep_alive == y->keep_alive);
    CHECK(x->expect_continue == y->expect_continue && x->head_len == y->head_len);
    for (unsigned i = 0; i < x->nfields; i++) {
        CHECK(a->f[i].name_off == b->f[i].name_off && a->f[i].name_len == b->f[i].name_len);
        CHECK(a->f[i].value_off == b->f[i].value_off && a->f[i].value_len == b->f[i].value_len);
    }
}

/* What a parsed head promises about the bytes. */
static void check_head(const uint8_t *in, size_t n, const head_result *r, const hale_h1_limits *lim) {
    if (r->st == HALE_H1_ERROR) {
        int s = r->err.status;
        CHECK(s == 400 || s == 413 || s == 414 || s == 417 || s == 431 || s == 501 || s == 505);
        CHECK(r->err.reason && r->err.detail);
        return;
    }
    if (r->st != HALE_H1_DONE) return;
    const hale_h1_head *h = &r->head;
    CHECK(h->head_len >= 4 && h->head_len <= n);
    CHECK(memcmp(in + h->head_len - 4, "\r\n\r\n", 4) == 0);
    CHECK(h->method_len > 0 && h->method_off + h->method_len < h->head_len);
    CHECK(h->target_len > 0 && h->target_len <= lim->max_target_bytes);
    CHECK(h->target_off == h->method_off + h->method_len + 1);
    CHECK(h->path_off >= h->target_off && h->path_off + h->path_len == h->target_off + h->target_len);
    CHECK(!memchr(in + h->target_off, ' ', h->target_len));
    CHECK(h->minor == 0 || h->minor == 1);
    CHECK(h->nfields <= lim->max_fields);
    CHECK(!(h->chunked && h->has_content_length));
    CHECK(h->chunked == 0 || h->chunked == 1);
    CHECK(h->head_len - h->method_off <= lim->max_head_bytes);
    for (unsigned i = 0; i < h->nfields; i++) {
        const hale_h1_field *f = &r->f[i];
        CHECK(f->name_len > 0 && f->value_off >= f->name_off + f->name_len + 1);
        CHECK(f->value_off + f->value_len < h->head_len);
        CHECK(in[f->name_off + f->name_len] == ':');
        for (uint32_t k = 0; k < f->value_len; k++) {
            uint8_t c = in[f->value_off + k];
            CHECK(c == '\t' || c >= 0x20);
            CHECK(c != 0x7f);
        }
        if (f->value_len) {
            uint8_t a = in[f->value_off], z = in[f->value_off + f->value_len - 1];
            CHECK(a != ' ' && a != '\t' && z != ' ' && z != '\t');
        }
    }
}

typedef struct {
    hale_h1_chunk_status st;
    size_t consumed;
    size_t body_len;
    uint64_t body_hash;
    int err_status;
    const char *reason;
} chunk_result;

static void chunked(const uint8_t *in, size_t n, const size_t *cuts, size_t nc, const hale_h1_limits *lim,
                    chunk_result *r) {
    hale_h1_chunked c;
    hale_h1_chunked_reset(&c);
    memset(r, 0, sizeof *r);
    r->body_hash = 1469598103934665603ULL;
    r->st = HALE_H1_CHUNK_MORE;
    size_t off = 0, end = 0, next = 0;
    while (end < n && r->st != HALE_H1_CHUNK_DONE && r->st != HALE_H1_CHUNK_ERROR) {
        end = next < nc ? cuts[next++] : n;
        while (off < end) {
            size_t used = 0, doff = 0, dlen = 0;
            hale_h1_error e = {0};
            r->st = hale_h1_chunked_feed(&c, (const char *)in + off, end - off, lim, &used, &doff, &dlen, &e);
            CHECK(used <= end - off);
            if (r->st == HALE_H1_CHUNK_ERROR) {
                CHECK(e.status == 400 || e.status == 431);
                r->err_status = e.status;
                r->reason = e.reason;
                break;
            }
            if (r->st == HALE_H1_CHUNK_MORE) CHECK(used == end - off);
            if (r->st == HALE_H1_CHUNK_DATA) {
                CHECK(dlen > 0 && doff + dlen <= used);
                for (size_t k = 0; k < dlen; k++) r->body_hash = (r->body_hash ^ in[off + doff + k]) * 1099511628211ULL;
                r->body_len += dlen;
            }
            off += used;
            if (r->st == HALE_H1_CHUNK_DONE) break;
        }
    }
    r->consumed = off;
    if (r->st == HALE_H1_CHUNK_DATA) r->st = HALE_H1_CHUNK_MORE;
}

static void same_chunked(const chunk_result *a, const chunk_result *b) {
    CHECK(a->st == b->st);
    if (a->st == HALE_H1_CHUNK_ERROR) {
        CHECK(a->err_status == b->err_status && strcmp(a->reason, b->reason) == 0);
        return;
    }
    CHECK(a->body_len == b->body_len && a->body_hash == b->body_hash);
    if (a->st == HALE_H1_CHUNK_DONE) CHECK(a->consumed == b->consumed);
}

/* 1-3 cuts inside 1..n-1, ascending, from a hash of the input. */
static size_t cuts_for(const uint8_t *in, size_t n, size_t *cuts) {
    if (n < 2) return 0;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ in[i]) * 1099511628211ULL;
    size_t want = 1 + (size_t)(h % 3), nc = 0;
    for (size_t i = 0; i < want; i++) {
        h = h * 6364136223846793005ULL + 1442695040888963407ULL;
        cuts[nc++] = 1 + (size_t)((h >> 17) % (n - 1));
    }
    for (size_t i = 1; i < nc; i++) /* sort */
        for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
            size_t t = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = t;
        }
    size_t k = 0; /* drop repeats */
    for (size_t i = 0; i < nc; i++)
        if (k == 0 || cuts[i] != cuts[k - 1]) cuts[k++] = cuts[i];
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const hale_h1_limits lims[2] = {
        {.max_head_bytes = 8192, .max_target_bytes = 4096, .max_fields = 100},
        {.max_head_bytes = 96, .max_target_bytes = 24, .max_fields = 4},
    };
    static head_result whole, split;
    size_t cuts[3], nc = cuts_for(data, size, cuts);
    for (int l = 0; l < 2; l++) {
        parse(data, size, NULL, 0, &lims[l], &whole);
        check_head(data, size, &whole, &lims[l]);
        parse(data, size, cuts, nc, &lims[l], &split);
        same_head(&whole, &split);
        /* the body: after the head, or the whole input */
        size_t off = whole.st == HALE_H1_DONE ? whole.head.head_len : 0;
        const uint8_t *b = data + off;
        size_t bn = size - off, bcuts[3], bnc = 0;
        for (size_t i = 0; i < nc; i++)
            if (cuts[i] > off) bcuts[bnc++] = cuts[i] - off;
        chunk_result cw, cs;
        chunked(b, bn, NULL, 0, &lims[l], &cw);
        chunked(b, bn, bcuts, bnc, &lims[l], &cs);
        same_chunked(&cw, &cs);
    }
    return 0;
}
